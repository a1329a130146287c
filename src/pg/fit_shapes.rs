//! `fit` and `fit_report` with `"shapes": true` (SQL in `sql/fit_shapes.sql`): the per-row
//! observations, the `_fit_shapes` aggregate that collects them and fits weights and shapes in
//! its final function, returning the fitted model with its report. Plain V1 functions for the
//! per-row work, a hand-written `CREATE AGGREGATE` (pgrx issue #2351).

use pgrx::pg_sys;

use crate::core::bytes::Reader;
use crate::core::shapes::{self, ShapeData, ShapeOptions};
use crate::core::{Error, Json, Model};

use super::jsonb::JsonbRef;
use super::scoring::{evaluate_call, InputKind, ModelKind};
use super::{
    arg, bytea_aggregate_state, bytea_bytes, bytea_datum, bytea_final_state_mut, bytea_state_merge, partial_state,
    return_null, text_datum, v1_function,
};

pgrx::extension_sql_file!("../../sql/fit_shapes.sql", name = "fit_shapes", requires = ["fit"]);

thread_local! {
    /// The encoding buffer reused across rows.
    static ENCODED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `_fit_shape_row(model jsonb, input)`: the row's observations of each leaf, encoded
/// (`shapes::encode_observations`); empty when a leaf was reweighted away.
unsafe fn fit_shape_row(fcinfo: pg_sys::FunctionCallInfo, input_kind: InputKind) -> Result<pg_sys::Datum, Error> {
    let mut buf = ENCODED.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let datum =
        evaluate_call(fcinfo, ModelKind::Inline, input_kind, 1, false, true, |_, compiled, values, _, nodes| {
            match shapes::observe(&compiled.model, nodes, values) {
                Some(observations) => shapes::encode_observations(&observations, &mut buf),
                None => buf.clear(),
            }
            bytea_datum(&[&buf])
        })?;
    ENCODED.with(|b| *b.borrow_mut() = buf);
    Ok(datum.unwrap_or_else(|| return_null(fcinfo)))
}

v1_function!(hs_fit_shape_row, pg_finfo_hs_fit_shape_row, |fcinfo| { fit_shape_row(fcinfo, InputKind::Row) });
v1_function!(hs_fit_shape_row_columns, pg_finfo_hs_fit_shape_row_columns, |fcinfo| {
    fit_shape_row(fcinfo, InputKind::Columns)
});

/// The aggregate's state: the settings (`{"model", "options"}`) from its first row, the rows.
#[derive(Default)]
struct ShapeState {
    settings: Option<Json>,
    data: Option<ShapeData>,
    outcome_unknown: u64,
}

fn model_of(settings: &Json) -> Result<Model, Error> {
    Model::parse(settings.get("model").unwrap_or(&Json::Null))
}

impl ShapeState {
    fn data(&mut self) -> Result<&mut ShapeData, Error> {
        if self.data.is_none() {
            let settings = self
                .settings
                .as_ref()
                .ok_or_else(|| Error::InvalidArgument { message: "_fit_shapes: no settings".into(), hint: None })?;
            self.data = Some(ShapeData::new(&model_of(settings)?));
        }
        Ok(self.data.as_mut().expect("set above"))
    }

    fn combine(&mut self, other: &ShapeState) -> Result<(), Error> {
        if self.settings.is_none() {
            self.settings = other.settings.clone();
        }
        self.outcome_unknown += other.outcome_unknown;
        if let Some(theirs) = &other.data {
            match &mut self.data {
                Some(mine) => mine.append(theirs)?,
                None => self.data = Some(theirs.clone()),
            }
        }
        Ok(())
    }

    fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        write_settings(self.settings.as_ref(), &mut out);
        out.extend_from_slice(&self.outcome_unknown.to_le_bytes());
        if let Some(data) = &self.data {
            out.push(1);
            data.to_bytes(&mut out)?;
        } else {
            out.push(0);
        }
        Ok(out)
    }

    fn from_bytes(bytes: &[u8]) -> Option<ShapeState> {
        let mut r = Reader::new(bytes);
        let settings = read_settings(&mut r)?;
        let outcome_unknown = r.u64()?;
        let data = match r.u8()? {
            0 => None,
            _ => Some(ShapeData::from_bytes(r.rest())?),
        };
        Some(ShapeState { settings, data, outcome_unknown })
    }
}

/// The settings an aggregate read from its first row, as its serialized state carries them
/// (a worker's state may be the only one that saw a row).
pub(super) fn write_settings(settings: Option<&Json>, out: &mut Vec<u8>) {
    let text = settings.map(Json::to_text).unwrap_or_default();
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// `write_settings` read back: None for bytes that are not settings, Some(None) for none.
pub(super) fn read_settings(r: &mut Reader<'_>) -> Option<Option<Json>> {
    let n = r.u64()? as usize;
    let text = std::str::from_utf8(r.take(n)?).ok()?;
    if text.is_empty() {
        return Some(None);
    }
    Some(Some(Json::from(&serde_json::from_str::<serde_json::Value>(text).ok()?)))
}

// _fit_shapes's state is a `bytea` (`fmgr::expanded`), which Citus aggregates partially on
// its workers.
partial_state!(ShapeState, crate::core::bytes::StateKind::FitShapes, "_fit_shapes");

/// Adds one row (arguments 1 to 3: design, churned, settings) to `state`: a NULL design (a
/// NULL row) is skipped; the settings are read from the first row.
unsafe fn add_row(state: &mut ShapeState, fcinfo: pg_sys::FunctionCallInfo) -> Result<(), Error> {
    if state.settings.is_none() {
        if let Some(settings) = arg(fcinfo, 3) {
            state.settings = Some(JsonbRef::from_datum(settings).to_json());
        }
    }
    if let Some(design) = arg(fcinfo, 1) {
        match arg(fcinfo, 2).map(|d| d.value() != 0) {
            Some(churned) => state.data()?.add_encoded(bytea_bytes(design), churned)?,
            None => state.outcome_unknown += 1,
        }
    }
    Ok(())
}

// _fit_shapes_step(state bytea, design bytea, churned boolean, settings jsonb) → bytea
v1_function!(hs_fit_shapes_step, pg_finfo_hs_fit_shapes_step, |fcinfo| {
    let (datum, state) = bytea_aggregate_state::<ShapeState>(fcinfo)?;
    add_row(state, fcinfo)?;
    Ok(datum)
});

// _fit_shapes_merge(state bytea, other bytea) → bytea
bytea_state_merge!(ShapeState, hs_fit_shapes_merge, pg_finfo_hs_fit_shapes_merge);

// _fit_shapes_result(state bytea) → text (below)
v1_function!(hs_fit_shapes_result, pg_finfo_hs_fit_shapes_result, |fcinfo| {
    let result = match bytea_final_state_mut::<ShapeState>(fcinfo)? {
        Some(state) => fit_shapes_result(&state)?,
        None => fit_shapes_result(&ShapeState::default())?,
    };
    Ok(text_datum(&result.to_string()))
});

fn no_rows() -> Error {
    Error::InvalidArgument {
        message: "fit: the design has no rows (no account with a known outcome whose leaves all count)".into(),
        hint: Some("rows where a leaf is left out by \"reweight\" cannot be fitted; give such components \"missing\": \"zero\" or an impute".into()),
    }
}

// The fitted model and its report (as JSON text in _fit_shapes_result), in the form
// _fit_apply gives for weights: {"model", "segments": [{"segment": null, "rows", "churned",
// "excluded", "intercept", "iterations", "gradient_norm", "components": [{"component",
// "parent", "old_weight", "new_weight", "at_bound", "old_normalizer", "new_normalizer",
// "direction"}]}], "rows_used", "rows_excluded", "outcome_unknown"}.
fn fit_shapes_result(state: &ShapeState) -> Result<serde_json::Value, Error> {
    let settings = state.settings.as_ref().ok_or_else(no_rows)?;
    let json = settings.get("model").cloned().unwrap_or(Json::Null);
    let model = model_of(settings)?;
    let options = ShapeOptions::from_json(settings.get("options").unwrap_or(&Json::Null), &model)?;
    let empty = ShapeData::new(&model);
    let data = state.data.as_ref().unwrap_or(&empty);
    if data.rows() == 0 {
        return Err(no_rows());
    }
    let fit = shapes::fit_shapes(&model, data, &options)?;
    let fitted = shapes::apply_shapes(&json, &model, &fit);
    let weights: Vec<f64> = fit.leaves.iter().map(|l| l.weight).collect();
    let new_tree = model.tree_weights(&weights);
    let leaves = model.leaves();
    let to_value = |j: &Json| serde_json::from_str::<serde_json::Value>(&j.to_text()).unwrap_or_default();
    let (old_normalizers, new_normalizers) = (shapes::normalizers_by_name(&json), shapes::normalizers_by_name(&fitted));
    let components: Vec<serde_json::Value> = model
        .nodes
        .iter()
        .enumerate()
        .map(|(id, node)| {
            let shape = leaves.iter().position(|&l| l == id).map(|i| &fit.leaves[i]);
            let old_normalizer = old_normalizers.get(&node.name).map(to_value);
            let new_normalizer = new_normalizers.get(&node.name).map(to_value);
            serde_json::json!({
                "component": node.name, "parent": node.parent.map(|p| model.nodes[p].name.clone()),
                "old_weight": model.base.weights[id], "new_weight": new_tree[id],
                "at_bound": shape.map(|s| s.at_bound),
                "old_normalizer": old_normalizer, "new_normalizer": new_normalizer,
                "direction": shape.and_then(|s| s.direction).map(|d| d.as_str()),
            })
        })
        .collect();
    let churned = data.churned();
    Ok(serde_json::json!({
        "model": to_value(&fitted),
        "segments": [{
            "segment": null, "rows": fit.rows, "churned": churned, "excluded": fit.excluded,
            "intercept": fit.intercept, "iterations": fit.iterations, "gradient_norm": fit.gradient_norm,
            "components": components,
        }],
        "rows_used": fit.rows, "rows_excluded": fit.excluded, "outcome_unknown": state.outcome_unknown,
    }))
}
