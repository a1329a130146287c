//! CSM inputs (docs/acting.md#csm-inputs): the recording functions (doors that run
//! `_record_manual` as the tables' owner and pass the caller on), the checks a recorded value
//! must pass, the entity forms of the scoring functions, and what snapshot and the generated
//! views share with them: an entity's manual inputs read from the JSON `_manual_sql` gathers,
//! and what the row shows of the ones applied. Their SQL is in `sql/csm.sql`.

use std::collections::HashMap;
use std::rc::Rc;

use pgrx::datum::DatumWithOid;
use pgrx::spi::Spi;
use pgrx::{pg_sys, IntoDatum};

use crate::core::manual::Manual;
use crate::core::{Band, Error, Evaluation, Json, Model};

use super::jsonb::JsonbRef;
use super::scoring::{evaluate_call_manual, InputKind, ManualFrom, ModelKind};
use super::{arg, float8_datum, raising, result_desc, return_null, text_arg, text_datum, v1_function, TextArg};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!("../../sql/csm.sql", name = "csm", requires = ["roles", "registry", "scoring", "storage"]);

/// A model's active manual inputs and band overrides by entity key, as the entity forms load
/// them once per call site (and so per statement), with the caller's rights.
pub(super) struct Entities {
    by_key: HashMap<String, Rc<Manual>>,
}

impl Entities {
    pub fn load(model: &str) -> Result<Entities, Error> {
        let failed = |e: pgrx::spi::SpiError| Error::InvalidArgument {
            message: format!("reading the manual inputs of {model} failed: {e}"),
            hint: None,
        };
        let by_key = Spi::connect(|client| -> Result<HashMap<String, Rc<Manual>>, Error> {
            let name = [DatumWithOid::from(model)];
            let query: Option<String> = client
                .select("SELECT health_score_internal._manual_sql($1, 'pg_catalog.now()')", Some(1), &name)
                .map_err(failed)?
                .first()
                .get(1)
                .map_err(failed)?;
            let Some(query) = query else { return Ok(HashMap::new()) };
            let mut by_key = HashMap::new();
            for row in client.select(&query, None, &[]).map_err(failed)? {
                let key: Option<String> = row.get(1).map_err(failed)?;
                let manual: Option<pgrx::JsonB> = row.get(2).map_err(failed)?;
                if let (Some(key), Some(manual)) = (key, manual) {
                    by_key.insert(key, Rc::new(Manual::from_json(&Json::from(&manual.0))));
                }
            }
            Ok(by_key)
        })?;
        Ok(Entities { by_key })
    }

    pub fn get(&self, key: &str) -> Option<Rc<Manual>> {
        self.by_key.get(key).cloned()
    }
}

/// An entity's manual inputs from the JSON argument of snapshot's and the views' row functions.
pub(super) unsafe fn manual_of_datum(d: pg_sys::Datum) -> Rc<Manual> {
    Rc::new(Manual::from_json(&JsonbRef::from_datum(d).to_json()))
}

fn to_serde(json: &Json) -> serde_json::Value {
    match json {
        Json::Null => serde_json::Value::Null,
        Json::Bool(b) => serde_json::Value::Bool(*b),
        Json::Number(x) => serde_json::Number::from_f64(*x).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Json::String(s) => serde_json::Value::String(s.clone()),
        Json::Array(items) => serde_json::Value::Array(items.iter().map(to_serde).collect()),
        Json::Object(pairs) => serde_json::Value::Object(pairs.iter().map(|(k, v)| (k.clone(), to_serde(v))).collect()),
    }
}

fn jsonb_datum(value: serde_json::Value) -> pg_sys::Datum {
    pgrx::JsonB(value).into_datum().unwrap_or(pg_sys::Datum::from(0usize))
}

/// The band override in force for an entity: its band when it is one of the list applied
/// under the entity's segment (an override naming another band is not applied).
pub(super) fn override_band<'m>(
    model: &'m Model,
    segment: Option<usize>,
    manual: Option<&Manual>,
) -> Option<(usize, &'m Band)> {
    model.band_named(segment, &manual?.band.as_ref()?.band)
}

/// What a stored snapshot row shows of the CSM inputs applied: the manual inputs that replaced
/// a value the model reads and the band override in force (snapshot adds the model's own
/// band), or None when nothing applied.
pub(super) fn applied_json(manual: &Manual, applied: &[Option<usize>], band_forced: bool) -> Option<pg_sys::Datum> {
    let inputs: serde_json::Map<String, serde_json::Value> =
        applied.iter().flatten().map(|&i| (manual.inputs[i].key.clone(), to_serde(&manual.inputs[i].detail))).collect();
    let band = manual.band.as_ref().filter(|_| band_forced);
    if inputs.is_empty() && band.is_none() {
        return None;
    }
    let mut out = serde_json::Map::new();
    if !inputs.is_empty() {
        out.insert("inputs".into(), serde_json::Value::Object(inputs));
    }
    if let Some(band) = band {
        out.insert("band".into(), to_serde(&band.detail));
    }
    Some(jsonb_datum(serde_json::Value::Object(out)))
}

// _check_manual_value(model text, input text, value text): 22023 unless every leaf of the
// latest version reading the input can use the value.
#[pgrx::pg_extern(sql = false)]
fn check_manual_value(model: TextArg, input: TextArg, value: TextArg) {
    raising(|| super::models::resolve_name(&model.0)?.check_manual_value(&input.0, &value.0))
}
super::c_symbol!(hs_check_manual_value, pg_finfo_hs_check_manual_value => check_manual_value_wrapper);

// _check_band_override(model text, band text): 22023 unless the band is in some band list of
// the latest version.
#[pgrx::pg_extern(sql = false)]
fn check_band_override(model: TextArg, band: TextArg) {
    raising(|| {
        let compiled = super::models::resolve_name(&model.0)?;
        let names = compiled.band_names();
        if names.contains(&band.0.as_ref()) {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            message: format!(
                "set_band_override: {} has no band \"{}\"",
                crate::core::error::shortened(&model.0, 200),
                crate::core::error::shortened(&band.0, 200)
            ),
            hint: Some(if names.is_empty() {
                "the model has no bands; give it bands in a new version first".into()
            } else {
                format!("its bands: {}", names.join(", "))
            }),
        })
    })
}
super::c_symbol!(hs_check_band_override, pg_finfo_hs_check_band_override => check_band_override_wrapper);

/// The recording functions' arguments as `_record_manual` takes them: (kind, model,
/// entity_key, input, value, reason, expires_at); NULL where the function has none.
unsafe fn record(
    fcinfo: pg_sys::FunctionCallInfo,
    kind: &str,
    positions: [Option<usize>; 5],
) -> Result<Option<bool>, Error> {
    // (every one of the five is text)
    let mut args = vec![DatumWithOid::from(kind)];
    for position in positions {
        args.push(match position.and_then(|p| arg(fcinfo, p)) {
            Some(d) => DatumWithOid::new(d, pg_sys::TEXTOID),
            None => DatumWithOid::null_oid(pg_sys::TEXTOID),
        });
    }
    // the reason and the expiry come after the model, key, input and value
    let reason_at = positions[4];
    let expires_at = reason_at.map(|r| r + 1).filter(|&e| e < (*fcinfo).nargs as usize);
    args.push(match expires_at.and_then(|e| arg(fcinfo, e)) {
        Some(d) => DatumWithOid::new(d, pg_sys::TIMESTAMPTZOID),
        None => DatumWithOid::null_oid(pg_sys::TIMESTAMPTZOID),
    });
    super::registry::call_as_owner::<bool>(
        "SELECT health_score_internal._record_manual($1, $2, $3, $4, $5, $6, $7, $8)",
        args,
    )
}

// set_manual_input(model, entity_key, input, value, reason, expires_at)
v1_function!(hs_set_manual_input, pg_finfo_hs_set_manual_input, |fcinfo| {
    super::citus::require_coordinator("set_manual_input")?;
    if arg(fcinfo, 3).is_none() {
        return Err(Error::InvalidArgument {
            message: "set_manual_input: value must not be NULL".into(),
            hint: Some("to remove a manual input, call health_score.clear_manual_input".into()),
        });
    }
    record(fcinfo, "input", [Some(0), Some(1), Some(2), Some(3), Some(4)])?;
    Ok(return_null(fcinfo))
});

// clear_manual_input(model, entity_key, input, reason) → whether there was one
v1_function!(hs_clear_manual_input, pg_finfo_hs_clear_manual_input, |fcinfo| {
    super::citus::require_coordinator("clear_manual_input")?;
    let cleared = record(fcinfo, "input", [Some(0), Some(1), Some(2), None, Some(3)])?;
    Ok(pg_sys::Datum::from(cleared.unwrap_or(false)))
});

// set_band_override(model, entity_key, band, reason, expires_at)
v1_function!(hs_set_band_override, pg_finfo_hs_set_band_override, |fcinfo| {
    super::citus::require_coordinator("set_band_override")?;
    if arg(fcinfo, 2).is_none() {
        return Err(Error::InvalidArgument {
            message: "set_band_override: band must not be NULL".into(),
            hint: Some("to remove a band override, call health_score.clear_band_override".into()),
        });
    }
    record(fcinfo, "band", [Some(0), Some(1), None, Some(2), Some(3)])?;
    Ok(return_null(fcinfo))
});

// clear_band_override(model, entity_key, reason) → whether there was one
v1_function!(hs_clear_band_override, pg_finfo_hs_clear_band_override, |fcinfo| {
    super::citus::require_coordinator("clear_band_override")?;
    let cleared = record(fcinfo, "band", [Some(0), Some(1), None, None, Some(2)])?;
    Ok(pg_sys::Datum::from(cleared.unwrap_or(false)))
});

/// An entity form's evaluation: the model by name (argument 0), the input (1, jsonb or a
/// row), the entity key at `entity_at`; `explain` asks for the values' text and the detail.
unsafe fn evaluate_entity<R>(
    fcinfo: pg_sys::FunctionCallInfo,
    json: bool,
    entity_at: usize,
    explain: bool,
    f: impl FnOnce(
        &mut super::scoring::Site,
        &Rc<super::models::Compiled>,
        &[crate::core::Value<'_>],
        &crate::core::Summary,
        &[crate::core::NodeResult],
    ) -> R,
) -> Result<Option<R>, Error> {
    let input = if json { InputKind::Json } else { InputKind::Row };
    evaluate_call_manual(fcinfo, ModelKind::Named, input, 1, ManualFrom::Entity(entity_at), explain, explain, f)
}

/// score(model text, input, entity_key text) and churn_probability's same form.
unsafe fn score_entity(
    fcinfo: pg_sys::FunctionCallInfo,
    json: bool,
    probability: bool,
) -> Result<pg_sys::Datum, Error> {
    let outcome =
        evaluate_entity(
            fcinfo,
            json,
            2,
            false,
            |_, model, _, s, _| if probability { model.churn_probability(s.score) } else { s.score },
        )?;
    Ok(outcome.flatten().map(float8_datum).unwrap_or_else(|| return_null(fcinfo)))
}

/// band(model text, input, previous_band text, entity_key text): hysteresis from the previous
/// band, then the entity's band override.
unsafe fn band_entity(fcinfo: pg_sys::FunctionCallInfo, json: bool) -> Result<pg_sys::Datum, Error> {
    let previous = arg(fcinfo, 2).map(|d| text_arg(d));
    let band = evaluate_entity(fcinfo, json, 3, false, |site, model, _, s, _| {
        override_band(model, s.segment, site.manual.as_deref())
            .or_else(|| model.band_after(s.segment, s.score, previous.as_deref()))
            .map(|(_, b)| text_datum(&b.name))
    })?;
    Ok(band.flatten().unwrap_or_else(|| return_null(fcinfo)))
}

/// assess(model text, input, entity_key text): the band override in force.
unsafe fn assess_entity(fcinfo: pg_sys::FunctionCallInfo, json: bool) -> Result<pg_sys::Datum, Error> {
    let datum = evaluate_entity(fcinfo, json, 2, false, |site, model, _, s, _| {
        let band =
            override_band(model, s.segment, site.manual.as_deref()).or_else(|| model.band_of(s.segment, s.score));
        let segment = model.segment_name(s.segment);
        let zero = pg_sys::Datum::from(0usize);
        let mut values = [
            s.score.map(float8_datum).unwrap_or(zero),
            band.map(|(_, b)| text_datum(&b.name)).unwrap_or(zero),
            float8_datum(s.coverage),
            segment.map(text_datum).unwrap_or(zero),
        ];
        let mut nulls = [s.score.is_none(), band.is_none(), false, segment.is_none()];
        let desc = result_desc(fcinfo, &mut site.result_desc);
        let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data)
    })?;
    Ok(datum.unwrap_or_else(|| return_null(fcinfo)))
}

/// One row of the entity form of explain: explain's columns, then `manual`.
type ExplainRow = ([Option<pg_sys::Datum>; 8], Option<pg_sys::Datum>);

/// explain(model text, input, entity_key text): explain's rows with, per leaf whose value is a
/// manual input, what was recorded; and a last row for a band override in force.
unsafe fn explain_entity(fcinfo: pg_sys::FunctionCallInfo, json: bool) -> Result<pg_sys::Datum, Error> {
    let rows = evaluate_entity(fcinfo, json, 2, true, |site, model, values, s, nodes| -> Vec<ExplainRow> {
        let eval = Evaluation { segment: s.segment, score: s.score, coverage: s.coverage, nodes: nodes.to_vec() };
        let manual = site.manual.as_deref();
        let detail_of = |input: &Option<String>| -> Option<pg_sys::Datum> {
            let manual = manual?;
            let slot = model.inputs.iter().position(|slot| Some(&slot.key) == input.as_ref())?;
            let i = (*site.manual_applied.get(slot)?)?;
            Some(jsonb_datum(to_serde(&manual.inputs[i].detail)))
        };
        let text = |s: &Option<String>| s.as_deref().map(text_datum);
        let mut rows: Vec<ExplainRow> = model
            .explain(values, &eval)
            .into_iter()
            .map(|row| {
                let cells = [
                    Some(text_datum(&row.component)),
                    text(&row.parent),
                    text(&row.input),
                    text(&row.raw),
                    row.normalized.map(float8_datum),
                    Some(float8_datum(row.weight)),
                    row.contribution.map(float8_datum),
                    Some(text_datum(row.status.as_str())),
                ];
                (cells, detail_of(&row.input))
            })
            .collect();
        if let (Some((_, forced)), Some(band)) =
            (override_band(model, s.segment, manual), manual.and_then(|m| m.band.as_ref()))
        {
            let mut detail = to_serde(&band.detail);
            if let serde_json::Value::Object(fields) = &mut detail {
                let own = model.band_of(s.segment, s.score).map(|(_, b)| b.name.clone());
                fields.insert("model_band".into(), own.map_or(serde_json::Value::Null, serde_json::Value::String));
            }
            let status = Some(text_datum("band_override"));
            rows.push((
                [None, None, None, Some(text_datum(&forced.name)), None, None, None, status],
                Some(jsonb_datum(detail)),
            ));
        }
        rows
    })?;
    pg_sys::InitMaterializedSRF(fcinfo, 0);
    let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
    let zero = pg_sys::Datum::from(0usize);
    for (cells, manual) in rows.unwrap_or_default() {
        let mut values = [zero; 9];
        let mut nulls = [true; 9];
        for (i, cell) in cells.iter().chain(std::iter::once(&manual)).enumerate() {
            if let Some(d) = cell {
                values[i] = *d;
                nulls[i] = false;
            }
        }
        pg_sys::tuplestore_putvalues((*rsinfo).setResult, (*rsinfo).setDesc, values.as_mut_ptr(), nulls.as_mut_ptr());
    }
    Ok(zero)
}

v1_function!(hs_score_entity_j, pg_finfo_hs_score_entity_j, |fcinfo| { score_entity(fcinfo, true, false) });
v1_function!(hs_score_entity_r, pg_finfo_hs_score_entity_r, |fcinfo| { score_entity(fcinfo, false, false) });
v1_function!(hs_probability_entity_j, pg_finfo_hs_probability_entity_j, |fcinfo| { score_entity(fcinfo, true, true) });
v1_function!(hs_probability_entity_r, pg_finfo_hs_probability_entity_r, |fcinfo| { score_entity(fcinfo, false, true) });
v1_function!(hs_band_entity_j, pg_finfo_hs_band_entity_j, |fcinfo| { band_entity(fcinfo, true) });
v1_function!(hs_band_entity_r, pg_finfo_hs_band_entity_r, |fcinfo| { band_entity(fcinfo, false) });
v1_function!(hs_assess_entity_j, pg_finfo_hs_assess_entity_j, |fcinfo| { assess_entity(fcinfo, true) });
v1_function!(hs_assess_entity_r, pg_finfo_hs_assess_entity_r, |fcinfo| { assess_entity(fcinfo, false) });
v1_function!(hs_explain_entity_j, pg_finfo_hs_explain_entity_j, |fcinfo| { explain_entity(fcinfo, true) });
v1_function!(hs_explain_entity_r, pg_finfo_hs_explain_entity_r, |fcinfo| { explain_entity(fcinfo, false) });

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/csm.rs");
}
