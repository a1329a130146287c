//! `auc(score float8, churned boolean) → float8`: the aggregate over `core::auc`.
//! Plain V1 functions with a hand-written `CREATE AGGREGATE` (pgrx issue #2351).

use pgrx::pg_sys;

use crate::core::AucState;

use super::{aggregate_state, arg, c_symbol, partial_state_functions, v1_function};

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
