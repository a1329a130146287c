//! `trend(at timestamptz, score float8) → trend_summary`: the aggregate over `core::trend`.
//!
//! The state is a fixed-size plain struct allocated in the aggregate's memory context (no
//! destructor, no per-row allocation). Plain V1 functions with a hand-written `CREATE
//! AGGREGATE` (pgrx issue #2351, as for `score_agg`). The final function only reads the state,
//! so the aggregate also works over window frames.

use pgrx::pg_sys;

use crate::core::{Error, TrendState};

use super::result_desc;
use super::{
    aggregate_context, arg, bytea_bytes, bytea_state_mut, c_symbol, call_site, float8_datum, new_bytea, raising,
    require_aggregate_call, return_null, state_datum, v1_function, BuiltDatum,
};
use crate::core::bytes::StateKind;
use crate::core::trend::flat;

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!("../../sql/trend.sql", name = "trend", requires = ["roles"]);

// trend's own state is a flat `bytea` (`core::trend::flat`), updated in place: a state Citus
// can aggregate partially on its workers, which it cannot do with an `internal` one. The
// `internal` functions below it serve installs of 0.1.0 and 0.2.0 until they are updated.

fn corrupt() -> Error {
    Error::InvalidArgument { message: "trend: corrupt state".into(), hint: None }
}

/// The flat state in argument `n` (a copy when it must be), or a new empty one, in the
/// current memory context; with the state it holds.
unsafe fn flat_arg(
    fcinfo: pg_sys::FunctionCallInfo,
    n: usize,
) -> Result<(pg_sys::Datum, &'static mut [u8], TrendState), Error> {
    require_aggregate_call(fcinfo, "trend")?;
    match arg(fcinfo, n) {
        Some(d) => {
            let (datum, buf) = bytea_state_mut(d);
            let state = flat::read(buf).ok_or_else(corrupt)?;
            Ok((datum, buf, state))
        }
        None => {
            let (datum, buf) = new_bytea(flat::LEN);
            let state = TrendState::default();
            flat::write(&state, buf);
            Ok((datum, buf, state))
        }
    }
}

// _trend_step(state bytea, at timestamptz, score float8) → bytea
v1_function!(hs_trend_step, pg_finfo_hs_trend_step, |fcinfo| {
    let (datum, buf, mut state) = flat_arg(fcinfo, 0)?;
    if let (Some(at), Some(score)) = (arg(fcinfo, 1), arg(fcinfo, 2)) {
        state.add(at.value() as i64, f64::from_bits(score.value() as u64))?;
        flat::write(&state, buf);
    }
    Ok(datum)
});

// _trend_merge(state bytea, other bytea) → bytea
v1_function!(hs_trend_merge, pg_finfo_hs_trend_merge, |fcinfo| {
    let (datum, buf, mut state) = flat_arg(fcinfo, 0)?;
    if let Some(other) = arg(fcinfo, 1) {
        state.combine(&flat::read(bytea_bytes(other)).ok_or_else(corrupt)?);
        flat::write(&state, buf);
    }
    Ok(datum)
});

// _trend_result(state bytea) → trend_summary
v1_function!(hs_trend_result, pg_finfo_hs_trend_result, |fcinfo| {
    let state = match arg(fcinfo, 0) {
        Some(d) => flat::read(bytea_bytes(d)).ok_or_else(corrupt)?,
        None => return Ok(return_null(fcinfo)),
    };
    Ok(match summary(&state, fcinfo) {
        Some(BuiltDatum(d)) => d,
        None => return_null(fcinfo),
    })
});

/// The state in argument 0, or a new empty one in the aggregate's context.
unsafe fn state_arg(fcinfo: pg_sys::FunctionCallInfo) -> Result<*mut TrendState, Error> {
    state_in(arg(fcinfo, 0), fcinfo)
}

/// The state `state`, or a new empty one in the aggregate's context.
unsafe fn state_in(state: Option<pg_sys::Datum>, fcinfo: pg_sys::FunctionCallInfo) -> Result<*mut TrendState, Error> {
    match state {
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

#[pgrx::pg_extern(sql = false)]
unsafe fn trend_combine(
    state: pgrx::Internal,
    other: pgrx::Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> pgrx::Internal {
    let state = raising(|| state_in(state.unwrap(), fcinfo));
    if let Some(other) = other.get::<TrendState>() {
        (*state).combine(other);
    }
    pgrx::Internal::from(Some(pg_sys::Datum::from(state)))
}
c_symbol!(hs_trend_combine, pg_finfo_hs_trend_combine => trend_combine_wrapper);

#[pgrx::pg_extern(sql = false)]
fn trend_serialize(state: pgrx::Internal) -> BuiltDatum {
    let state = unsafe { state.get::<TrendState>() }.copied().unwrap_or_default();
    BuiltDatum(state_datum(StateKind::Trend, &state.to_bytes()))
}
c_symbol!(hs_trend_serialize, pg_finfo_hs_trend_serialize => trend_serialize_wrapper);

#[pgrx::pg_extern(sql = false)]
fn trend_deserialize(bytes: &[u8], _unused: pgrx::Internal) -> pgrx::Internal {
    let state = crate::core::bytes::state_payload(bytes, StateKind::Trend).and_then(TrendState::from_bytes);
    let state = raising(|| {
        state.ok_or_else(|| Error::InvalidArgument { message: "trend: corrupt serialized state".into(), hint: None })
    });
    unsafe {
        let p = pg_sys::palloc(std::mem::size_of::<TrendState>()) as *mut TrendState;
        p.write(state);
        pgrx::Internal::from(Some(pg_sys::Datum::from(p)))
    }
}
c_symbol!(hs_trend_deserialize, pg_finfo_hs_trend_deserialize => trend_deserialize_wrapper);

#[pgrx::pg_extern(sql = false)]
unsafe fn trend_final(state: pgrx::Internal, fcinfo: pg_sys::FunctionCallInfo) -> Option<BuiltDatum> {
    summary(state.get::<TrendState>()?, fcinfo)
}
c_symbol!(hs_trend_final, pg_finfo_hs_trend_final => trend_final_wrapper);

/// The `trend_summary` of a state; None when it counted no point.
unsafe fn summary(state: &TrendState, fcinfo: pg_sys::FunctionCallInfo) -> Option<BuiltDatum> {
    let t = state.finish()?;
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
    Some(BuiltDatum(pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data)))
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/trend.rs");
}
