//! The per-row part of the views `health_score.create_view` generates (their SQL is in
//! `sql/views.sql`): score, band, coverage, segment and every component's points.

use pgrx::pg_sys;

use crate::core::Error;

use super::result_desc;
use super::scoring::{evaluate_call, InputKind, ModelKind, Site};
use super::{float8_datum, return_null, text_datum, v1_function};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!(
    "../../sql/views.sql",
    name = "views",
    requires = ["roles", "registry", "scoring", "history"]
);

unsafe fn view_row(fcinfo: pg_sys::FunctionCallInfo, input_kind: InputKind) -> Result<pg_sys::Datum, Error> {
    let outcome =
        evaluate_call(fcinfo, ModelKind::Named, input_kind, 1, false, true, |site: &mut Site, model, _, s, nodes| {
            let zero = pg_sys::Datum::from(0usize);
            let band = model.band_of(s.segment, s.score);
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
        })?;
    Ok(outcome.unwrap_or_else(|| return_null(fcinfo)))
}

v1_function!(hs_view_row, pg_finfo_hs_view_row, |fcinfo| { view_row(fcinfo, InputKind::Row) });
v1_function!(hs_view_row_columns, pg_finfo_hs_view_row_columns, |fcinfo| { view_row(fcinfo, InputKind::Columns) });

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/views.rs");
}
