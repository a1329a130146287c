//! `auc(score float8, churned boolean) → float8`: the aggregate over `core::auc`.
//! Plain V1 functions with a hand-written `CREATE AGGREGATE` (pgrx issue #2351).

use pgrx::pg_sys;

use crate::core::auc::flat;
use crate::core::{AucState, Error};

use super::{
    aggregate_state, arg, bytea_bytes, bytea_state_mut, c_symbol, float8_array, float8_datum, new_bytea,
    partial_state_functions, require_aggregate_call, return_null, v1_function,
};

// auc's own state is a flat `bytea` (`core::auc::flat`), filled in place: a state Citus can
// aggregate partially on its workers, which it cannot do with an `internal` one. The
// `internal` functions below it serve installs of 0.1.0 and 0.2.0 until they are updated.

fn corrupt() -> Error {
    Error::InvalidArgument { message: "auc: corrupt state".into(), hint: None }
}

/// A new empty flat state holding `capacity` scores, in the current memory context.
unsafe fn new_flat(capacity: usize) -> (pg_sys::Datum, &'static mut [u8]) {
    let (datum, buf) = new_bytea(flat::len_for(capacity));
    flat::init(buf);
    (datum, buf)
}

// _auc_step(state bytea, score float8, churned boolean) → bytea
v1_function!(hs_auc_step, pg_finfo_hs_auc_step, |fcinfo| {
    require_aggregate_call(fcinfo, "auc")?;
    let (mut state, mut buf) = match arg(fcinfo, 0) {
        Some(d) => bytea_state_mut(d),
        None => new_flat(16),
    };
    let counts = flat::counts(buf).ok_or_else(corrupt)?;
    if let (Some(score), Some(churned)) = (arg(fcinfo, 1), arg(fcinfo, 2)) {
        let (score, churned) = (f64::from_bits(score.value() as u64), churned.value() != 0);
        if !flat::push_counted(buf, counts, score, churned)? {
            let (nc, nr, _) = counts;
            // full: a copy twice the size, which the aggregate keeps instead (and frees this one)
            let (bigger, into) = new_flat(flat::capacity_for(nc + nr));
            flat::copy_into(buf, None, into)?;
            (state, buf) = (bigger, into);
            flat::push(buf, score, churned)?;
        }
    }
    Ok(state)
});

// _auc_merge(state bytea, other bytea) → bytea: adds other's scores to the state's
v1_function!(hs_auc_merge, pg_finfo_hs_auc_merge, |fcinfo| {
    require_aggregate_call(fcinfo, "auc")?;
    let other = arg(fcinfo, 1).map(|d| bytea_bytes(d));
    let on = match other {
        Some(o) => flat::counts(o).map(|(c, r, _)| c + r).ok_or_else(corrupt)?,
        None => 0,
    };
    let (state, buf) = match arg(fcinfo, 0) {
        Some(d) => bytea_state_mut(d),
        None => new_flat(on),
    };
    let (nc, nr, cap) = flat::counts(buf).ok_or_else(corrupt)?;
    let Some(other) = other else { return Ok(state) };
    if nc + nr + on <= cap {
        flat::append(buf, other)?;
        return Ok(state);
    }
    let (bigger, into) = new_flat(flat::capacity_for(nc + nr + on));
    flat::copy_into(buf, Some(other), into)?;
    Ok(bigger)
});

// _auc_result(state bytea) → float8
v1_function!(hs_auc_result, pg_finfo_hs_auc_result, |fcinfo| {
    let Some(d) = arg(fcinfo, 0) else { return Ok(return_null(fcinfo)) };
    let mut state = flat::state(bytea_bytes(d)).ok_or_else(corrupt)?;
    Ok(match state.finish() {
        Some(auc) => float8_datum(auc),
        None => return_null(fcinfo),
    })
});

// _calibration_result(state bytea) → float8[]: the calibration fitted to auc's state (the
// scores of each class): {a, b}, NULL when a class is empty or the fit does not settle
v1_function!(hs_calibration_result, pg_finfo_hs_calibration_result, |fcinfo| {
    let Some(d) = arg(fcinfo, 0) else { return Ok(return_null(fcinfo)) };
    let mut state = flat::state(bytea_bytes(d)).ok_or_else(corrupt)?;
    // sorted, so that the sums (and the fit to the last bit) do not depend on the order the
    // rows came in: parallel workers and Citus's workers deliver them in any order
    state.churned.sort_unstable_by(f64::total_cmp);
    state.retained.sort_unstable_by(f64::total_cmp);
    Ok(match crate::core::calibrate::calibrate(&state.churned, &state.retained, CALIBRATION_L2) {
        Some((a, b)) => float8_array(&[a, b]),
        None => return_null(fcinfo),
    })
});

v1_function!(hs_auc_trans, pg_finfo_hs_auc_trans, |fcinfo| {
    let state = aggregate_state::<AucState>(fcinfo, "auc")?;
    if let (Some(score), Some(churned)) = (arg(fcinfo, 1), arg(fcinfo, 2)) {
        (*state).add(f64::from_bits(score.value() as u64), churned.value() != 0)?;
    }
    Ok(pg_sys::Datum::from(state))
});

partial_state_functions!(
    AucState,
    crate::core::bytes::StateKind::Auc,
    "auc",
    combine: auc_combine => auc_combine_wrapper as hs_auc_combine, pg_finfo_hs_auc_combine,
    serialize: auc_serialize => auc_serialize_wrapper as hs_auc_serialize, pg_finfo_hs_auc_serialize,
    deserialize: auc_deserialize => auc_deserialize_wrapper as hs_auc_deserialize, pg_finfo_hs_auc_deserialize
);

#[pgrx::pg_extern(sql = false)]
fn auc_final(mut state: pgrx::Internal) -> Option<f64> {
    // sorting in place keeps the same scores, so the state stays good for more rows or frames
    unsafe { state.get_mut::<AucState>() }?.finish()
}
c_symbol!(hs_auc_final, pg_finfo_hs_auc_final => auc_final_wrapper);

// The calibration fitted to the same state as auc's (the scores of each class): {a, b}, NULL
// when a class is empty or the fit does not settle.
#[pgrx::pg_extern(sql = false)]
fn calibration_final(state: pgrx::Internal) -> Option<Vec<f64>> {
    let state = unsafe { state.get::<AucState>() }?;
    let (a, b) = crate::core::calibrate::calibrate(&state.churned, &state.retained, CALIBRATION_L2)?;
    Some(vec![a, b])
}
c_symbol!(hs_calibration_final, pg_finfo_hs_calibration_final => calibration_final_wrapper);

/// The slope's L2 penalty of `calibrate` (on the mean log-loss).
const CALIBRATION_L2: f64 = 1e-4;
