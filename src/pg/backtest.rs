//! `_backtest(score, band, band_rank, churned)`: one snapshot time of `backtest` (totals, AUC
//! and churn per band) over `core::backtest`. Plain V1 functions with a hand-written
//! `CREATE AGGREGATE` (pgrx issue #2351), like `auc`.

use pgrx::pg_sys;

use crate::core::{BacktestState, Error};

use super::{aggregate_context, arg, bytea_bytes, bytea_datum, return_null, text_arg, text_datum, v1_function};

/// The state in argument 0, or a new empty one owned by the aggregate's memory context.
unsafe fn state_arg(fcinfo: pg_sys::FunctionCallInfo) -> Result<*mut BacktestState, Error> {
    match arg(fcinfo, 0) {
        Some(d) if !d.is_null() => Ok(d.cast_mut_ptr::<BacktestState>()),
        _ => {
            let ctx = aggregate_context(fcinfo, "backtest")?;
            Ok(pgrx::PgMemoryContexts::For(ctx).leak_and_drop_on_delete(BacktestState::default()))
        }
    }
}

v1_function!(hs_backtest_trans, pg_finfo_hs_backtest_trans, |fcinfo| {
    let state = state_arg(fcinfo)?;
    let score = arg(fcinfo, 1).map(|d| f64::from_bits(d.value() as u64));
    let band = arg(fcinfo, 2).zip(arg(fcinfo, 3));
    let band = band.as_ref().map(|(name, rank)| (text_arg(*name), rank.value() as i32));
    let churned = arg(fcinfo, 4).is_some_and(|d| d.value() != 0);
    (*state).add(score, band.as_ref().map(|(name, rank)| (name.as_ref(), *rank)), churned)?;
    Ok(pg_sys::Datum::from(state))
});

v1_function!(hs_backtest_combine, pg_finfo_hs_backtest_combine, |fcinfo| {
    let state = state_arg(fcinfo)?;
    if let Some(other) = arg(fcinfo, 1).filter(|d| !d.is_null()) {
        (*state).combine(&*other.cast_mut_ptr::<BacktestState>())?;
    }
    Ok(pg_sys::Datum::from(state))
});

v1_function!(hs_backtest_serialize, pg_finfo_hs_backtest_serialize, |fcinfo| {
    let bytes = match arg(fcinfo, 0) {
        Some(d) if !d.is_null() => (*d.cast_mut_ptr::<BacktestState>()).to_bytes(),
        _ => BacktestState::default().to_bytes(),
    };
    Ok(bytea_datum(&bytes))
});

v1_function!(hs_backtest_deserialize, pg_finfo_hs_backtest_deserialize, |fcinfo| {
    let Some(d) = arg(fcinfo, 0) else { return Ok(return_null(fcinfo)) };
    let state = BacktestState::from_bytes(bytea_bytes(d))
        .ok_or_else(|| Error::InvalidArgument { message: "backtest: corrupt serialized state".into(), hint: None })?;
    // lives in the current (per-call) context, from which combine copies
    Ok(pg_sys::Datum::from(pgrx::PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state)))
});

v1_function!(hs_backtest_final, pg_finfo_hs_backtest_final, |fcinfo| {
    let Some(d) = arg(fcinfo, 0).filter(|d| !d.is_null()) else { return Ok(return_null(fcinfo)) };
    // sorting in place keeps the same counts and scores, so the state stays good for more rows
    Ok(text_datum(&(*d.cast_mut_ptr::<BacktestState>()).finish()))
});
