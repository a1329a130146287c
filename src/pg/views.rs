//! The per-row part of the views `health_score.create_view` generates (their SQL is in
//! `sql/views.sql`): score, band, coverage, segment and every component's points.

use pgrx::pg_sys;

use crate::core::Error;

use super::csm::override_band;
use super::result_desc;
use super::scoring::{evaluate_call_manual, InputKind, ManualFrom, ModelKind, Site};
use super::{arg, float8_datum, return_null, text_arg, text_datum, v1_function};
use crate::core::error::shortened;

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

// _check_source(caller text, model text, source regclass): before a view of the source is
// generated, 42703 naming every input of the model version ('name@3') the source has no column
// for, then 42804 naming every numeric input whose column is not numeric; "caller" prefixes
// the message.
v1_function!(hs_check_source, pg_finfo_hs_check_source, |fcinfo| {
    let (Some(caller), Some(model), Some(source)) = (arg(fcinfo, 0), arg(fcinfo, 1), arg(fcinfo, 2)) else {
        return Ok(return_null(fcinfo));
    };
    let compiled = super::models::resolve_name(&text_arg(model))?;
    let relid = pg_sys::Oid::from(source.value() as u32);
    let row_type = pg_sys::get_rel_type_id(relid);
    if row_type == pg_sys::InvalidOid {
        return Ok(return_null(fcinfo));
    }
    let desc = pg_sys::lookup_rowtype_tupdesc(row_type, -1);
    let columns: Vec<(String, pg_sys::Oid)> = super::tuple_desc_attributes(desc)
        .iter()
        .filter(|a| !a.attisdropped)
        .map(|a| (std::ffi::CStr::from_ptr(a.attname.data.as_ptr()).to_string_lossy().into_owned(), a.atttypid))
        .collect();
    pg_sys::DecrTupleDescRefCount(desc);
    let (missing, mismatched) = super::row::source_problems(&compiled.model, &columns);
    let relation = {
        let name = pg_sys::format_type_extended(row_type, -1, 0);
        std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned()
    };
    let quoted = |names: &mut dyn Iterator<Item = &String>| {
        names.map(|n| format!("\"{}\"", shortened(n, 100))).collect::<Vec<_>>().join(", ")
    };
    let caller = text_arg(caller);
    if !missing.is_empty() {
        let listed: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        return Err(Error::SourceColumns {
            types: false,
            message: format!(
                "{caller}: {relation} has no column for the input{} {} of {}",
                if missing.len() > 1 { "s" } else { "" },
                quoted(&mut missing.iter()),
                text_arg(model)
            ),
            hint: format!(
                "its columns: {}; name the columns as the model's inputs in a view of the source",
                shortened(&listed.join(", "), 200)
            ),
        });
    }
    if !mismatched.is_empty() {
        let described: Vec<String> =
            mismatched.iter().map(|(input, ty)| format!("\"{}\" ({ty})", shortened(input, 100))).collect();
        return Err(Error::SourceColumns {
            types: true,
            message: format!(
                "{caller}: the numeric input{} {} of {} {} not numeric in {relation}",
                if mismatched.len() > 1 { "s" } else { "" },
                described.join(", "),
                text_arg(model),
                if mismatched.len() > 1 { "are" } else { "is" }
            ),
            hint: "numeric normalizers read smallint, integer, bigint, numeric, real or double precision columns; cast the column in a view of the source".into(),
        });
    }
    Ok(return_null(fcinfo))
});

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/views.rs");
}
