//! The per-row part of the views `health_score.create_view` generates (their SQL is in
//! `sql/views.sql`): score, band, coverage, segment and every component's points.

use pgrx::pg_sys;

use crate::core::Error;

use super::csm::override_band;
use super::result_desc;
use super::scoring::{evaluate_call_manual, InputKind, ManualFrom, ModelKind, Site};
use super::{float8_datum, return_null, text_datum, v1_function};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!(
    "../../sql/views.sql",
    name = "views",
    requires = ["roles", "registry", "scoring", "history", "csm"]
);

/// The views generated before 0.3.0 call `_view_row(model, row)`; since, `_view_row(model,
/// manual, row)` with the entity's CSM inputs (the JSON `_manual_sql` gathers).
unsafe fn view_row(
    fcinfo: pg_sys::FunctionCallInfo,
    input_kind: InputKind,
    with_manual: bool,
) -> Result<pg_sys::Datum, Error> {
    let (input_at, manual_from) = if with_manual { (2, ManualFrom::Json(1)) } else { (1, ManualFrom::Nothing) };
    let outcome = evaluate_call_manual(
        fcinfo,
        ModelKind::Named,
        input_kind,
        input_at,
        manual_from,
        false,
        true,
        |site: &mut Site, model, _, s, nodes| {
            let zero = pg_sys::Datum::from(0usize);
            let band =
                override_band(model, s.segment, site.manual.as_deref()).or_else(|| model.band_of(s.segment, s.score));
            // points in model order, as the view's columns expect them; NULL with the score
            let points = s.score.map(|_| {
                let (_, points) = model.points(s.segment, nodes);
                super::float8_array(&points)
            });
            let mut values = [
                s.score.map(float8_datum).unwrap_or(zero),
                band.map(|(_, b)| text_datum(&b.name)).unwrap_or(zero),
                float8_datum(s.coverage),
                model.segment_name(s.segment).map(text_datum).unwrap_or(zero),
                points.unwrap_or(zero),
            ];
            let mut nulls = [s.score.is_none(), band.is_none(), false, s.segment.is_none(), points.is_none()];
            let desc = result_desc(fcinfo, &mut site.result_desc);
            let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
            pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data)
        },
    )?;
    Ok(outcome.unwrap_or_else(|| return_null(fcinfo)))
}

v1_function!(hs_view_row, pg_finfo_hs_view_row, |fcinfo| { view_row(fcinfo, InputKind::Row, false) });
v1_function!(hs_view_row_columns, pg_finfo_hs_view_row_columns, |fcinfo| {
    view_row(fcinfo, InputKind::Columns, false)
});
v1_function!(hs_view_row_manual, pg_finfo_hs_view_row_manual, |fcinfo| { view_row(fcinfo, InputKind::Row, true) });
v1_function!(hs_view_row_manual_columns, pg_finfo_hs_view_row_manual_columns, |fcinfo| {
    view_row(fcinfo, InputKind::Columns, true)
});

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/views.rs");
}
