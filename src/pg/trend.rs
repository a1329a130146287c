//! `trend(at timestamptz, score float8) → trend_summary`: the aggregate over `core::trend`.
//!
//! The state is a fixed-size plain struct allocated in the aggregate's memory context (no
//! destructor, no per-row allocation). Plain V1 functions with a hand-written `CREATE
//! AGGREGATE` (pgrx issue #2351, as for `score_agg`). The final function only reads the state,
//! so the aggregate also works over window frames.

use pgrx::pg_sys;

use crate::core::{Error, TrendState};

use super::result_desc;
use super::{aggregate_context, arg, call_site, float8_datum, return_null, state_datum, state_payload, v1_function};
use crate::core::bytes::StateKind;

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!("../../sql/trend.sql", name = "trend", requires = ["roles"]);

/// The state in argument 0, or a new empty one in the aggregate's context.
unsafe fn state_arg(fcinfo: pg_sys::FunctionCallInfo) -> Result<*mut TrendState, Error> {
    match arg(fcinfo, 0) {
        Some(d) if !d.is_null() => Ok(d.cast_mut_ptr::<TrendState>()),
        _ => {
            let ctx = aggregate_context(fcinfo, "trend")?;
            let p = pg_sys::MemoryContextAlloc(ctx, std::mem::size_of::<TrendState>()) as *mut TrendState;
            p.write(TrendState::default());
            Ok(p)
        }
    }
}

v1_function!(hs_trend_trans, pg_finfo_hs_trend_trans, |fcinfo| {
    let state = state_arg(fcinfo)?;
    if let (Some(at), Some(score)) = (arg(fcinfo, 1), arg(fcinfo, 2)) {
        (*state).add(at.value() as i64, f64::from_bits(score.value() as u64))?;
    }
    Ok(pg_sys::Datum::from(state))
});

v1_function!(hs_trend_combine, pg_finfo_hs_trend_combine, |fcinfo| {
    let state = state_arg(fcinfo)?;
    if let Some(other) = arg(fcinfo, 1).filter(|d| !d.is_null()) {
        (*state).combine(&*other.cast_mut_ptr::<TrendState>());
    }
    Ok(pg_sys::Datum::from(state))
});

v1_function!(hs_trend_serialize, pg_finfo_hs_trend_serialize, |fcinfo| {
    let state = match arg(fcinfo, 0) {
        Some(d) if !d.is_null() => *d.cast_mut_ptr::<TrendState>(),
        _ => TrendState::default(),
    };
    Ok(state_datum(StateKind::Trend, &state.to_bytes()))
});

v1_function!(hs_trend_deserialize, pg_finfo_hs_trend_deserialize, |fcinfo| {
    let Some(d) = arg(fcinfo, 0) else { return Ok(return_null(fcinfo)) };
    let state = state_payload(d, StateKind::Trend)
        .and_then(TrendState::from_bytes)
        .ok_or_else(|| Error::InvalidArgument { message: "trend: corrupt serialized state".into(), hint: None })?;
    let p = pg_sys::palloc(std::mem::size_of::<TrendState>()) as *mut TrendState;
    p.write(state);
    Ok(pg_sys::Datum::from(p))
});

v1_function!(hs_trend_final, pg_finfo_hs_trend_final, |fcinfo| {
    let Some(d) = arg(fcinfo, 0).filter(|d| !d.is_null()) else { return Ok(return_null(fcinfo)) };
    let Some(t) = (*d.cast_mut_ptr::<TrendState>()).finish() else { return Ok(return_null(fcinfo)) };
    let site: &mut Option<pg_sys::TupleDesc> = call_site(fcinfo);
    let desc = result_desc(fcinfo, site);
    let float_or_null = |v: Option<f64>| (v.map(float8_datum).unwrap_or(pg_sys::Datum::from(0usize)), v.is_none());
    let fields = [
        (pg_sys::Datum::from(t.n as i64), false),
        (pg_sys::Datum::from(t.first_at), false),
        (float8_datum(t.first_score), false),
        (pg_sys::Datum::from(t.last_at), false),
        (float8_datum(t.last_score), false),
        (float8_datum(t.delta), false),
        float_or_null(t.pct_change),
        float_or_null(t.slope_per_day),
        (float8_datum(t.min_score), false),
        (float8_datum(t.max_score), false),
    ];
    let mut values: Vec<pg_sys::Datum> = fields.iter().map(|f| f.0).collect();
    let mut nulls: Vec<bool> = fields.iter().map(|f| f.1).collect();
    let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
    Ok(pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data))
});

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/trend.rs");
}
