//! `_backtest(score, band, band_rank, churned)`: one snapshot time of `backtest` (totals, AUC
//! and churn per band) over `core::backtest`. Plain V1 functions with a hand-written
//! `CREATE AGGREGATE` (pgrx issue #2351), like `auc`.

use pgrx::pg_sys;

use crate::core::BacktestState;

use super::{
    aggregate_state, arg, bytea_aggregate_state, bytea_final_state_mut, bytea_state_merge, c_symbol, partial_state,
    partial_state_functions, return_null, text_arg, text_datum, v1_function,
};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!(
    "../../sql/outcomes.sql",
    name = "outcomes",
    requires = ["roles", "registry", "scoring", "history"]
);

// _backtest's state is a `bytea` (`fmgr::expanded`), which Citus aggregates partially on its
// workers; the `internal` functions below serve installs of 0.1.0 and 0.2.0 until they are
// updated.
partial_state!(BacktestState, crate::core::bytes::StateKind::Backtest, "backtest");

/// Counts one account (arguments 1 to 4: score, band, band rank, churned) in `state`.
unsafe fn add_account(state: &mut BacktestState, fcinfo: pg_sys::FunctionCallInfo) -> Result<(), crate::core::Error> {
    let score = arg(fcinfo, 1).map(|d| f64::from_bits(d.value() as u64));
    let band = arg(fcinfo, 2).zip(arg(fcinfo, 3));
    let band = band.as_ref().map(|(name, rank)| (text_arg(*name), rank.value() as i32));
    let churned = arg(fcinfo, 4).is_some_and(|d| d.value() != 0);
    state.add(score, band.as_ref().map(|(name, rank)| (name.as_ref(), *rank)), churned)
}

// _backtest_step(state bytea, score float8, band text, band_rank int4, churned boolean) → bytea
v1_function!(hs_backtest_step, pg_finfo_hs_backtest_step, |fcinfo| {
    let (datum, state) = bytea_aggregate_state::<BacktestState>(fcinfo)?;
    add_account(state, fcinfo)?;
    Ok(datum)
});

// _backtest_merge(state bytea, other bytea) → bytea
bytea_state_merge!(BacktestState, hs_backtest_merge, pg_finfo_hs_backtest_merge);

// _backtest_result(state bytea) → text
v1_function!(hs_backtest_result, pg_finfo_hs_backtest_result, |fcinfo| {
    // sorting in place keeps the same counts and scores, so the state stays good for more rows
    Ok(match bytea_final_state_mut::<BacktestState>(fcinfo)? {
        Some(mut state) => text_datum(&state.finish()),
        None => return_null(fcinfo),
    })
});

v1_function!(hs_backtest_trans, pg_finfo_hs_backtest_trans, |fcinfo| {
    let state = aggregate_state::<BacktestState>(fcinfo, "backtest")?;
    add_account(&mut *state, fcinfo)?;
    Ok(pg_sys::Datum::from(state))
});

partial_state_functions!(
    BacktestState,
    crate::core::bytes::StateKind::Backtest,
    "backtest",
    combine: backtest_combine => backtest_combine_wrapper as hs_backtest_combine, pg_finfo_hs_backtest_combine,
    serialize: backtest_serialize => backtest_serialize_wrapper as hs_backtest_serialize, pg_finfo_hs_backtest_serialize,
    deserialize: backtest_deserialize => backtest_deserialize_wrapper as hs_backtest_deserialize, pg_finfo_hs_backtest_deserialize
);

#[pgrx::pg_extern(sql = false)]
fn backtest_final(mut state: pgrx::Internal) -> Option<String> {
    // sorting in place keeps the same counts and scores, so the state stays good for more rows
    Some(unsafe { state.get_mut::<BacktestState>() }?.finish())
}
c_symbol!(hs_backtest_final, pg_finfo_hs_backtest_final => backtest_final_wrapper);

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/backtest.rs");
}
