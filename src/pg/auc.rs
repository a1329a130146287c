//! `auc(score float8, churned boolean) → float8`: the aggregate over `core::auc`.
//! Plain V1 functions with a hand-written `CREATE AGGREGATE` (pgrx issue #2351).

use pgrx::pg_sys;

use crate::core::{AucState, Error};

use super::{aggregate_context, arg, bytea_bytes, bytea_datum, float8_datum, return_null, v1_function};

/// The state in argument 0, or a new empty one owned by the aggregate's memory context.
unsafe fn state_arg(fcinfo: pg_sys::FunctionCallInfo) -> Result<*mut AucState, Error> {
    match arg(fcinfo, 0) {
        Some(d) if !d.is_null() => Ok(d.cast_mut_ptr::<AucState>()),
        _ => {
            let ctx = aggregate_context(fcinfo, "auc")?;
            Ok(pgrx::PgMemoryContexts::For(ctx).leak_and_drop_on_delete(AucState::default()))
        }
    }
}

v1_function!(hs_auc_trans, pg_finfo_hs_auc_trans, |fcinfo| {
    let state = state_arg(fcinfo)?;
    if let (Some(score), Some(churned)) = (arg(fcinfo, 1), arg(fcinfo, 2)) {
        (*state).add(f64::from_bits(score.value() as u64), churned.value() != 0)?;
    }
    Ok(pg_sys::Datum::from(state))
});

v1_function!(hs_auc_combine, pg_finfo_hs_auc_combine, |fcinfo| {
    let state = state_arg(fcinfo)?;
    if let Some(other) = arg(fcinfo, 1).filter(|d| !d.is_null()) {
        (*state).combine(&*other.cast_mut_ptr::<AucState>())?;
    }
    Ok(pg_sys::Datum::from(state))
});

v1_function!(hs_auc_serialize, pg_finfo_hs_auc_serialize, |fcinfo| {
    let bytes = match arg(fcinfo, 0) {
        Some(d) if !d.is_null() => (*d.cast_mut_ptr::<AucState>()).to_bytes(),
        _ => AucState::default().to_bytes(),
    };
    Ok(bytea_datum(&bytes))
});

v1_function!(hs_auc_deserialize, pg_finfo_hs_auc_deserialize, |fcinfo| {
    let Some(d) = arg(fcinfo, 0) else { return Ok(return_null(fcinfo)) };
    let state = AucState::from_bytes(bytea_bytes(d))
        .ok_or_else(|| Error::InvalidArgument { message: "auc: corrupt serialized state".into(), hint: None })?;
    // lives in the current (per-call) context, from which combine copies
    Ok(pg_sys::Datum::from(pgrx::PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state)))
});

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
    let mut datums = [float8_datum(a), float8_datum(b)];
    let array = pg_sys::construct_array(
        datums.as_mut_ptr(),
        2,
        pg_sys::FLOAT8OID,
        8,
        true,
        pg_sys::TYPALIGN_DOUBLE as std::ffi::c_char,
    );
    Ok(pg_sys::Datum::from(array))
});

/// The slope's L2 penalty of `calibrate` (on the mean log-loss).
const CALIBRATION_L2: f64 = 1e-4;
