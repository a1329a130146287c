//! Band hysteresis (docs/model-format.md): `band(model, input, previous_band)` in its four
//! forms, and `_band_after`, the band a snapshot stores from an entity's previous band. Their
//! SQL is in `sql/scoring.sql` and `sql/storage.sql`; the rule is the core's `Model::band_after`.

use pgrx::pg_sys;

use crate::core::error::shortened;
use crate::core::Error;

use super::models::{ModelArg, ModelSlot};
use super::scoring::{evaluate_call, four_forms, InputKind, ModelKind};
use super::{arg, call_site, result_desc, return_null, text_arg, text_datum, v1_function};

/// `band(model, input, previous_band)`: the band with the model's hysteresis from a previous
/// band the caller knows (NULL: the plain band).
unsafe fn band_after_fn(fcinfo: pg_sys::FunctionCallInfo, m: ModelKind, i: InputKind) -> Result<pg_sys::Datum, Error> {
    let previous = arg(fcinfo, 2).map(|d| text_arg(d));
    let band = evaluate_call(fcinfo, m, i, 1, false, false, |_, model, _, s, _| {
        model.band_after(s.segment, s.score, previous.as_deref()).map(|(_, b)| text_datum(&b.name))
    })?;
    match band {
        Some(Some(d)) => Ok(d),
        _ => Ok(return_null(fcinfo)),
    }
}

four_forms!(band_after_fn: hs_band_after_jj/pg_finfo_hs_band_after_jj, hs_band_after_nj/pg_finfo_hs_band_after_nj, hs_band_after_jr/pg_finfo_hs_band_after_jr, hs_band_after_nr/pg_finfo_hs_band_after_nr);

/// `_band_after`'s call site: the model version, and the result's descriptor.
#[derive(Default)]
struct BandSite {
    model: ModelSlot,
    result_desc: Option<pg_sys::TupleDesc>,
}

// _band_after(model text, segment text, score float8, previous_band text) → (band, band_rank):
// the band a snapshot stores for a score of the model version ('name@3') under the segment
// override named (NULL: the base model), with hysteresis from the entity's previous band.
v1_function!(hs_band_after_stored, pg_finfo_hs_band_after_stored, |fcinfo| {
    let (Some(model), Some(score)) = (arg(fcinfo, 0), arg(fcinfo, 2)) else { return Ok(return_null(fcinfo)) };
    let site: &mut BandSite = call_site(fcinfo);
    let compiled = site.model.get(fcinfo, 0, ModelArg::NamedDatum(model))?;
    let segment = match arg(fcinfo, 1) {
        Some(name) => {
            let name = text_arg(name);
            let Some(index) = compiled.segment_index(&name) else {
                return Err(Error::InvalidArgument {
                    message: format!(
                        "_band_after: {} has no segment override \"{}\"",
                        shortened(&text_arg(model), 200),
                        shortened(&name, 200)
                    ),
                    hint: Some("pass the segment a score of this model version was computed under".into()),
                });
            };
            Some(index)
        }
        None => None,
    };
    let previous = arg(fcinfo, 3).map(|d| text_arg(d));
    let score = f64::from_bits(score.value() as u64);
    let Some((rank, band)) = compiled.band_after(segment, Some(score), previous.as_deref()) else {
        return Ok(return_null(fcinfo));
    };
    let mut values = [text_datum(&band.name), pg_sys::Datum::from(rank as i32)];
    let mut nulls = [false, false];
    let desc = result_desc(fcinfo, &mut site.result_desc);
    let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
    Ok(pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data))
});

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/hysteresis.rs");
}
