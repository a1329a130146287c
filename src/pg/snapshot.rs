//! The per-row part of `health_score.snapshot` (whose SQL is in `sql/history.sql`): one
//! entity scored with everything a row of `health_score.scores` stores, and the version a
//! model reference stands for.

use std::rc::Rc;

use pgrx::pg_sys;

use crate::core::{stored, Error, NodeResult};

use super::csm::{applied_json, override_band};
use super::jsonb_build::{finish, key_order as key_order_of, start, write_number, write_object, write_string};
use super::models::{Compiled, ModelArg, ModelSlot};
use super::result_desc;
use super::scoring::{evaluate_call_manual, InputKind, ManualFrom, ModelKind, Site};
use super::{
    arg, bytea_bytes, bytea_datum, c_symbol, call_site, detoast_packed, float8_datum, raising, return_null, text_arg,
    text_datum, utf8, v1_function, varlena_bytes, TextArg,
};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!(
    "../../sql/history.sql",
    name = "history",
    requires = ["roles", "registry", "scoring", "storage"]
);

/// The row's model argument is 0, the key column's name 1, the key 2, the row from 3 on; the
/// compact forms take the entity's manual inputs at 3 and the row from 4 on.
const INPUT_AT: usize = 3;
const MANUAL_AT: usize = 3;

/// Long snapshots say how far they are every this many rows.
const PROGRESS_EVERY: u64 = 100_000;

/// What a snapshot row function returns besides the scalars.
#[derive(Clone, Copy)]
enum Detail {
    /// The components as JSONB (the row of `health_score.scores` as 0.2.0 stores it, and
    /// `rescore`'s).
    Components,
    /// The stored record (`core::stored`), from which `_record_components` gives the same JSONB.
    Record,
}

/// Writes the components of evaluations as JSONB, `{"<component>": {"n": n, "points": points},
/// ...}` ("n" sorts before "points"), points NULL without a score: one buffer reused across
/// rows, and the stored order of the model's component names kept while the model is the same.
#[derive(Default)]
pub(super) struct ComponentsWriter {
    jsonb: Vec<u8>,
    key_order: Option<(Rc<Compiled>, Vec<usize>)>,
}

impl ComponentsWriter {
    unsafe fn write(
        &mut self,
        compiled: &Rc<Compiled>,
        score: Option<f64>,
        segment: Option<usize>,
        nodes: &[NodeResult],
    ) -> pg_sys::Datum {
        let model = &compiled.model;
        let (_, points) = model.points(segment, nodes);
        let name = |id: usize| model.nodes[id].name.as_str();
        let order = match self.key_order.take() {
            Some((for_model, order)) if Rc::ptr_eq(&for_model, compiled) => order,
            _ => key_order_of(model.nodes.len(), name),
        };
        const FIELDS: [&str; 2] = ["n", "points"];
        let buf = &mut self.jsonb;
        start(buf);
        write_object(buf, name, &order, |buf, id| {
            let n = nodes[id].normalized;
            let p = score.map(|_| points[id]);
            write_object(
                buf,
                |field| FIELDS[field],
                &[0, 1],
                |buf, field| write_number(buf, if field == 0 { n } else { p }),
            )
        });
        finish(buf);
        self.key_order = Some((compiled.clone(), order));
        let jsonb = pg_sys::palloc(buf.len()) as *mut u8;
        std::ptr::copy_nonoverlapping(buf.as_ptr(), jsonb, buf.len());
        pg_sys::Datum::from(jsonb)
    }
}

unsafe fn snapshot_row(
    fcinfo: pg_sys::FunctionCallInfo,
    input_kind: InputKind,
    detail: Detail,
) -> Result<pg_sys::Datum, Error> {
    let Some(key) = arg(fcinfo, 2) else {
        let column = arg(fcinfo, 1).map(|d| text_arg(d).into_owned()).unwrap_or_default();
        return Err(Error::InvalidArgument {
            message: format!("snapshot: a source row has a NULL key (column \"{column}\")"),
            hint: Some("every row needs its entity's key; filter such rows out in a view".into()),
        });
    };
    let key = text_arg(key);
    let (input_at, manual_from) = match detail {
        Detail::Components => (INPUT_AT, ManualFrom::Nothing),
        Detail::Record => (MANUAL_AT + 1, ManualFrom::Json(MANUAL_AT)),
    };
    let outcome = evaluate_call_manual(
        fcinfo,
        ModelKind::Named,
        input_kind,
        input_at,
        manual_from,
        false,
        true,
        |site: &mut Site, compiled, _, s, nodes| {
            site.rows += 1;
            if site.rows.is_multiple_of(PROGRESS_EVERY) {
                pgrx::notice!("snapshot: {} rows scored", site.rows);
            }
            let model = &compiled.model;
            let band = model.band_of(s.segment, s.score);
            let detail_kind = detail;
            let detail = match detail {
                Detail::Components => site.components.write(compiled, s.score, s.segment, nodes),
                Detail::Record => bytea_datum(&[&stored::encode(model, s.segment, nodes)]),
            };
            let zero = pg_sys::Datum::from(0usize);
            let mut values = [
                s.score.map(float8_datum).unwrap_or(zero),
                band.map(|(_, b)| text_datum(&b.name)).unwrap_or(zero),
                band.map(|(rank, _)| pg_sys::Datum::from(rank as i32)).unwrap_or(zero),
                float8_datum(s.coverage),
                model.segment_name(s.segment).map(text_datum).unwrap_or(zero),
                detail,
                zero,
                zero,
                zero,
            ];
            let mut nulls = [
                s.score.is_none(),
                band.is_none(),
                band.is_none(),
                false,
                s.segment.is_none(),
                false,
                true,
                true,
                true,
            ];
            // the compact forms also say which band override and manual inputs applied
            if let (Detail::Record, Some(manual)) = (detail_kind, site.manual.as_deref()) {
                let forced = override_band(model, s.segment, Some(manual));
                if let Some((rank, band)) = forced {
                    (values[6], values[7]) = (text_datum(&band.name), pg_sys::Datum::from(rank as i32));
                    (nulls[6], nulls[7]) = (false, false);
                }
                if let Some(shown) = applied_json(manual, &site.manual_applied, forced.is_some()) {
                    (values[8], nulls[8]) = (shown, false);
                }
            }
            let width = match detail_kind {
                Detail::Components => 6,
                Detail::Record => 9,
            };
            let desc = result_desc(fcinfo, &mut site.result_desc);
            debug_assert_eq!((*desc).natts as usize, width);
            let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
            pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data)
        },
    );
    match outcome {
        Ok(Some(datum)) => Ok(datum),
        Ok(None) => Ok(return_null(fcinfo)),
        Err(e) => Err(Error::ForEntity { key: key.into_owned(), error: Box::new(e) }),
    }
}

v1_function!(hs_snapshot_row, pg_finfo_hs_snapshot_row, |fcinfo| {
    snapshot_row(fcinfo, InputKind::Row, Detail::Components)
});
v1_function!(hs_snapshot_row_columns, pg_finfo_hs_snapshot_row_columns, |fcinfo| {
    snapshot_row(fcinfo, InputKind::Columns, Detail::Components)
});

// The compact forms: the stored record in place of the components.
v1_function!(hs_snapshot_record, pg_finfo_hs_snapshot_record, |fcinfo| {
    snapshot_row(fcinfo, InputKind::Row, Detail::Record)
});
v1_function!(hs_snapshot_record_columns, pg_finfo_hs_snapshot_record_columns, |fcinfo| {
    snapshot_row(fcinfo, InputKind::Columns, Detail::Record)
});

/// `_record_components`' call site: the model version, and the components' writer.
#[derive(Default)]
struct RecordSite {
    model: ModelSlot,
    components: ComponentsWriter,
}

// _record_components(model text, record bytea) → jsonb: the components a stored record of
// the model version ('name@3') gives back, as _snapshot_row writes them; 22023 for bytes that
// are not a record of that version.
v1_function!(hs_record_components, pg_finfo_hs_record_components, |fcinfo| {
    let (Some(model), Some(record)) = (arg(fcinfo, 0), arg(fcinfo, 1)) else { return Ok(return_null(fcinfo)) };
    let site: &mut RecordSite = call_site(fcinfo);
    let compiled = site.model.get(fcinfo, 0, ModelArg::NamedDatum(model))?;
    let Some(eval) = stored::decode(&compiled.model, bytea_bytes(record)) else {
        return Err(Error::InvalidArgument {
            message: format!("_record_components: the bytes are not a stored record of {}", text_arg(model)),
            hint: Some("pass the model version that took the snapshot (its model_version)".into()),
        });
    };
    Ok(site.components.write(&compiled, eval.score, eval.segment, &eval.nodes))
});

// The version a model reference ('name' or 'name@3') stands for now; 42704 when none.
#[pgrx::pg_extern(sql = false)]
fn resolve_model(spec: TextArg) -> i32 {
    raising(|| super::models::resolve_version(&spec.0))
}
c_symbol!(hs_resolve_model, pg_finfo_hs_resolve_model => resolve_model_wrapper);

// The name of a model reference ('churn' of 'churn@3'): the SQL functions parse references
// with the parser the scoring functions use.
#[pgrx::pg_extern(sql = false)]
fn model_name(spec: TextArg) -> String {
    raising(|| Ok(super::models::parse_model_ref(&spec.0)?.0.to_string()))
}
c_symbol!(hs_model_name, pg_finfo_hs_model_name => model_name_wrapper);

// The JSONB form, for rescoring stored inputs (health_score.rescore).
v1_function!(hs_snapshot_row_json, pg_finfo_hs_snapshot_row_json, |fcinfo| {
    snapshot_row(fcinfo, InputKind::Json, Detail::Components)
});

// The input keys a model reference reads (each leaf's input and the segment input), in the
// model's order: what snapshot keeps of each row with keep_inputs.
#[pgrx::pg_extern(sql = false)]
fn input_keys(spec: TextArg) -> Vec<String> {
    let compiled = raising(|| super::models::resolve_name(&spec.0));
    compiled.model.inputs.iter().map(|slot| slot.key.clone()).collect()
}
c_symbol!(hs_input_keys, pg_finfo_hs_input_keys => input_keys_wrapper);

/// `_text_object`'s call site: the keys of the last call with their stored order, and the
/// buffer the JSONB is written in.
#[derive(Default)]
struct TextObjectSite {
    keys: Vec<String>,
    order: Vec<usize>,
    jsonb: Vec<u8>,
}

/// A `text[]`'s elements (NULL elements as None), borrowed from the detoasted array.
unsafe fn text_elements<'a>(d: pg_sys::Datum) -> Vec<Option<std::borrow::Cow<'a, str>>> {
    let array = pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as *mut pg_sys::ArrayType;
    let (mut elements, mut nulls, mut count) = (std::ptr::null_mut(), std::ptr::null_mut(), 0);
    pg_sys::deconstruct_array(
        array,
        pg_sys::TEXTOID,
        -1,
        false,
        pg_sys::TYPALIGN_INT as std::ffi::c_char,
        &mut elements,
        &mut nulls,
        &mut count,
    );
    (0..count as usize)
        .map(|i| {
            (!*nulls.add(i)).then(|| {
                let (data, len) = varlena_bytes(detoast_packed(*elements.add(i)) as *const u8);
                utf8(std::slice::from_raw_parts(data, len))
            })
        })
        .collect()
}

// _text_object(keys text[], values text[]) → jsonb: what jsonb_object(keys, values) gives for
// distinct keys, written in binary (snapshot's kept inputs, once per row: jsonb_object cost
// some 2 µs a row).
v1_function!(hs_text_object, pg_finfo_hs_text_object, |fcinfo| {
    let (Some(keys), Some(values)) = (arg(fcinfo, 0), arg(fcinfo, 1)) else { return Ok(return_null(fcinfo)) };
    let site: &mut TextObjectSite = call_site(fcinfo);
    let keys = text_elements(keys);
    let values = text_elements(values);
    if keys.len() != values.len() {
        return Err(Error::InvalidArgument {
            message: format!("_text_object: {} keys and {} values", keys.len(), values.len()),
            hint: None,
        });
    }
    let same_keys =
        site.keys.len() == keys.len() && site.keys.iter().zip(&keys).all(|(a, b)| b.as_deref() == Some(a.as_str()));
    if !same_keys {
        let mut owned = Vec::with_capacity(keys.len());
        for key in &keys {
            let Some(key) = key else {
                return Err(Error::InvalidArgument { message: "_text_object: a NULL key".into(), hint: None });
            };
            owned.push(key.to_string());
        }
        let order = key_order_of(owned.len(), |i| owned[i].as_str());
        if order.windows(2).any(|w| owned[w[0]] == owned[w[1]]) {
            return Err(Error::InvalidArgument { message: "_text_object: a key twice".into(), hint: None });
        }
        site.order = order;
        site.keys = owned;
    }
    let buf = &mut site.jsonb;
    start(buf);
    write_object(buf, |i| site.keys[i].as_str(), &site.order, |buf, i| write_string(buf, values[i].as_deref()));
    finish(buf);
    let out = pg_sys::palloc(buf.len()) as *mut u8;
    std::ptr::copy_nonoverlapping(buf.as_ptr(), out, buf.len());
    Ok(pg_sys::Datum::from(out))
});

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/snapshot.rs");
}
