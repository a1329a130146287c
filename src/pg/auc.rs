//! `auc(score float8, churned boolean) → float8`: the aggregate over `core::auc`.
//! Plain V1 functions with a hand-written `CREATE AGGREGATE` (pgrx issue #2351).

use pgrx::pg_sys;

use crate::core::AucState;

use super::{aggregate_state, arg, float8_array, float8_datum, partial_state_functions, return_null, v1_function};

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
    hs_auc_combine,
    pg_finfo_hs_auc_combine,
    hs_auc_serialize,
    pg_finfo_hs_auc_serialize,
    hs_auc_deserialize,
    pg_finfo_hs_auc_deserialize
);

v1_function!(hs_auc_final, pg_finfo_hs_auc_final, |fcinfo| {
    let Some(d) = arg(fcinfo, 0).filter(|d| !d.is_null()) else { return Ok(return_null(fcinfo)) };
    // sorting in place keeps the same scores, so the state stays good for more rows or frames
    match (*d.cast_mut_ptr::<AucState>()).finish() {
        Some(auc) => Ok(float8_datum(auc)),
        None => Ok(return_null(fcinfo)),
    }
});

// The calibration fitted to the same state as auc's (the scores of each class): {a, b}, NULL
// when a class is empty or the fit does not settle.
v1_function!(hs_calibration_final, pg_finfo_hs_calibration_final, |fcinfo| {
    let Some(d) = arg(fcinfo, 0).filter(|d| !d.is_null()) else { return Ok(return_null(fcinfo)) };
    let state = &*d.cast_mut_ptr::<AucState>();
    let Some((a, b)) = crate::core::calibrate::calibrate(&state.churned, &state.retained, CALIBRATION_L2) else {
        return Ok(return_null(fcinfo));
    };
    Ok(float8_array(&[a, b]))
});

/// The slope's L2 penalty of `calibrate` (on the mean log-loss).
const CALIBRATION_L2: f64 = 1e-4;
