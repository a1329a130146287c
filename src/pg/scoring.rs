//! `score`, `band`, `assess`, `explain`, `churn_probability` in their four forms (model inline
//! or by name, input as JSONB or as a row), `validate`, and `_components` (a model's tree).

use pgrx::pg_sys;

use crate::core::manual::Manual;
use crate::core::{Error, Evaluation, Model, NodeResult, Scratch, Summary, Value};

use super::jsonb::JsonbRef;
use super::models::{self, ModelArg, ModelSlot};
use super::row::{row_type, ColumnPlan, Field, RowPlan};
use super::{
    arg, c_symbol, call_site, float8_datum, raising, result_desc, return_null, text_datum, v1_function, JsonbArg,
};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!("../../sql/scoring.sql", name = "scoring", requires = ["roles"]);

#[derive(Clone, Copy)]
pub(super) enum ModelKind {
    Inline,
    Named,
    /// Either, by the argument's type (for the columns forms, shared by both).
    ByType,
}

#[derive(Clone, Copy)]
pub(super) enum InputKind {
    Json,
    Row,
    /// `(row_type oid, names text[], VARIADIC "any")`: a row's columns as separate arguments,
    /// which the planner support of the row forms passes instead of the whole row.
    Columns,
}

/// Where a call's CSM inputs (docs/acting.md#csm-inputs) come from.
#[derive(Clone, Copy)]
pub(super) enum ManualFrom {
    /// The call scores the input as it is.
    Nothing,
    /// The argument at this position: the entity's JSON as `_manual_sql` gathers it (NULL: none).
    Json(usize),
    /// The entity key at this position (NULL: none): the model's active manual inputs are
    /// loaded once per call site.
    Entity(usize),
}

#[derive(Default)]
pub(super) struct Site {
    model: ModelSlot,
    row: Option<RowPlan>,
    columns: Option<ColumnPlan>,
    inline_model: Option<bool>,
    pub(super) result_desc: Option<pg_sys::TupleDesc>,
    /// Rows scored at this call site (snapshot reports progress by it).
    pub(super) rows: u64,
    /// For snapshot's components.
    pub(super) components: super::snapshot::ComponentsWriter,
    /// The CSM inputs of the row being scored (None: it has none), and per input slot of the
    /// model the manual input applied to it.
    pub(super) manual: Option<std::rc::Rc<Manual>>,
    pub(super) manual_applied: Vec<Option<usize>>,
    /// The entity forms' manual inputs, loaded at the first call (again when the model changes).
    entities: Option<(std::rc::Rc<super::models::Compiled>, super::csm::Entities)>,
    /// Buffers reused across rows; always left empty between calls.
    values: Vec<Value<'static>>,
    scratch: Scratch,
}

/// Evaluates the call's model (argument 0) over its input (argument `input_at` on) and hands
/// the outcome to `f`; None when an argument is NULL.
pub(super) unsafe fn evaluate_call<R>(
    fcinfo: pg_sys::FunctionCallInfo,
    model_kind: ModelKind,
    input_kind: InputKind,
    input_at: usize,
    want_text: bool,
    detail: bool,
    f: impl FnOnce(&mut Site, &std::rc::Rc<super::models::Compiled>, &[Value<'_>], &Summary, &[NodeResult]) -> R,
) -> Result<Option<R>, Error> {
    evaluate_call_manual(fcinfo, model_kind, input_kind, input_at, ManualFrom::Nothing, want_text, detail, f)
}

/// `evaluate_call` with the entity's CSM inputs applied over the input's values: `f` finds
/// them in `site.manual` and `site.manual_applied`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn evaluate_call_manual<R>(
    fcinfo: pg_sys::FunctionCallInfo,
    model_kind: ModelKind,
    input_kind: InputKind,
    input_at: usize,
    manual_from: ManualFrom,
    want_text: bool,
    detail: bool,
    f: impl FnOnce(&mut Site, &std::rc::Rc<super::models::Compiled>, &[Value<'_>], &Summary, &[NodeResult]) -> R,
) -> Result<Option<R>, Error> {
    let (Some(model_datum), Some(input_datum)) = (arg(fcinfo, 0), arg(fcinfo, input_at)) else {
        return Ok(None);
    };
    let site: &mut Site = call_site(fcinfo);
    let inline = match model_kind {
        ModelKind::Inline => true,
        ModelKind::Named => false,
        ModelKind::ByType => *site
            .inline_model
            .get_or_insert_with(|| pg_sys::get_fn_expr_argtype((*fcinfo).flinfo, 0) == pg_sys::JSONBOID),
    };
    let model_arg = if inline { ModelArg::Inline(model_datum) } else { ModelArg::NamedDatum(model_datum) };

    let compiled = site.model.get(fcinfo, 0, model_arg)?;
    let model = &compiled.model;
    // The buffer outlives this row's values, so it is emptied before it is put back.
    let mut values: Vec<Value<'_>> = std::mem::take(&mut site.values);
    // whether some value owns memory: unless one does, the buffer is emptied without dropping
    // each value in turn (which costs more per row than one would think)
    let mut owns = true;
    let json_input;
    match input_kind {
        InputKind::Json => {
            json_input = JsonbRef::from_datum(input_datum);
            let input = &json_input;
            if !input.is_object() {
                return Err(Error::InvalidArgument {
                    message: format!("the input must be a JSON object, not {}", input.to_json().kind()),
                    hint: Some("pass an object of input key to value, such as '{\"logins\": 12}'::jsonb".into()),
                });
            }
            values.extend(model.inputs.iter().map(|slot| input.value(&slot.key, want_text || slot.categorical)));
            if values.iter().all(Value::is_missing) && !values.is_empty() {
                unnamed_columns(input, model)?;
            }
        }
        InputKind::Row => {
            let header = super::detoast(input_datum) as pg_sys::HeapTupleHeader;
            let (typid, typmod) = row_type(header);
            let mut plan = match site.row.take() {
                Some(p) if p.fits(&compiled, typid, typmod) => p,
                _ => RowPlan::new(compiled.clone(), typid, typmod, (*(*fcinfo).flinfo).fn_mcxt)?,
            };
            owns = plan.read_into(header, want_text, &mut values);
            site.row = Some(plan);
        }
        InputKind::Columns => {
            let plan = match site.columns.take() {
                Some(p) if p.is_for(&compiled) => p,
                _ => columns_plan(fcinfo, compiled.clone(), input_at)?,
            };
            let args = (*fcinfo).args.as_slice((*fcinfo).nargs as usize);
            owns = plan.read_into(|i| (!args[i].isnull).then_some(args[i].value), want_text, &mut values);
            site.columns = Some(plan);
            // a row that is NULL as a whole (the outer side of an outer join) arrives as
            // all-NULL columns: NULL, as the STRICT row form gives
            if values.iter().all(Value::is_missing) && args.get(input_at + 2..).unwrap_or(&[]).iter().all(|a| a.isnull)
            {
                site.values = recycle(values, owns);
                return Ok(None);
            }
        }
    }
    site.manual = match manual_from {
        ManualFrom::Nothing => None,
        ManualFrom::Json(at) => arg(fcinfo, at).map(|d| super::csm::manual_of_datum(d)),
        ManualFrom::Entity(at) => match arg(fcinfo, at) {
            Some(key) => {
                // the model's name is parsed, and its manual inputs read, once per model
                let (for_model, entities) = match site.entities.take() {
                    Some((for_model, loaded)) if std::rc::Rc::ptr_eq(&for_model, &compiled) => (for_model, loaded),
                    _ => {
                        let spec = super::text_arg(model_datum);
                        let (name, _) = models::parse_model_ref(&spec)?;
                        (compiled.clone(), super::csm::Entities::load(name)?)
                    }
                };
                let manual = entities.get(&super::text_arg(key));
                site.entities = Some((for_model, entities));
                manual
            }
            None => None,
        },
    };
    if let Some(manual) = &site.manual {
        site.manual_applied = manual.apply(model, &mut values);
        owns = true;
    }
    let mut scratch = std::mem::take(&mut site.scratch);
    let summary = if want_text || detail {
        model.evaluate_into::<true>(&values, &mut scratch)
    } else {
        model.evaluate_into::<false>(&values, &mut scratch)
    };
    let result = summary.map(|s| f(site, &compiled, &values, &s, &scratch.nodes));
    site.scratch = scratch;
    site.values = recycle(values, owns);
    result.map(Some)
}

/// Where the model's inputs are among the call's column arguments: the row type at `at`, the
/// column names at `at + 1`, the columns from `at + 2` on.
/// An input that reads none of the model's inputs and whose keys are all `f1`, `f2`, …: the
/// columns of a row that lost its names (`to_jsonb` of a subquery's or a view's row as Citus
/// passes it to a worker, or of a `ROW(...)`), which would score as entirely missing. 42703.
fn unnamed_columns(input: &JsonbRef, model: &crate::core::Model) -> Result<(), Error> {
    let crate::core::Json::Object(members) = input.to_json() else { return Ok(()) };
    let unnamed = |k: &str| k.len() > 1 && k.starts_with('f') && k[1..].bytes().all(|b| b.is_ascii_digit());
    if members.is_empty() || !members.iter().all(|(k, _)| unnamed(k)) {
        return Ok(());
    }
    let wanted: Vec<String> =
        model.inputs.iter().take(3).map(|slot| crate::core::error::quoted_excerpt(&slot.key)).collect();
    Err(Error::SourceColumns {
        types: false,
        message: format!(
            "the input's keys are f1 to f{}, columns that lost their names, not the model's inputs ({}{})",
            members.len(),
            wanted.join(", "),
            if model.inputs.len() > 3 { ", ..." } else { "" }
        ),
        hint: "to_jsonb of an anonymous row (a ROW(...), or a subquery's or view's row on a Citus worker) has no column names: pass a table's own row (score('m', a) for FROM accounts a), or build the object with jsonb_build_object('logins', logins, ...)".into(),
    })
}

unsafe fn columns_plan(
    fcinfo: pg_sys::FunctionCallInfo,
    compiled: std::rc::Rc<super::models::Compiled>,
    at: usize,
) -> Result<ColumnPlan, Error> {
    use pgrx::FromDatum;
    // The planner's rewrite builds these calls right; anyone may also type one, so every
    // argument is checked against the others before it is trusted.
    let misuse = |what: &str| Error::InvalidArgument {
        message: format!("internal function misused: {what}"),
        hint: Some("this is the planner's form of score, band, assess, explain and their kin: call those".into()),
    };
    let row_type = arg(fcinfo, at).map(|d| pg_sys::Oid::from(d.value() as u32)).unwrap_or(pg_sys::InvalidOid);
    let names = arg(fcinfo, at + 1).and_then(|d| Vec::<Option<String>>::from_datum(d, false)).unwrap_or_default();
    let flinfo = (*fcinfo).flinfo;
    let columns = ((*fcinfo).nargs as usize).saturating_sub(at + 2);
    if pg_sys::get_fn_expr_variadic(flinfo) {
        return Err(misuse("the columns must be passed one by one, not as a VARIADIC array"));
    }
    if names.len() != columns {
        return Err(misuse(&format!("{} column names for {columns} columns", names.len())));
    }
    let mut fields = Vec::with_capacity(columns);
    for (i, name) in names.into_iter().enumerate() {
        let typid = pg_sys::get_fn_expr_argtype(flinfo, (at + 2 + i) as i32);
        let Some(name) = name.filter(|_| typid != pg_sys::InvalidOid) else {
            return Err(misuse("a column without a name or a type"));
        };
        fields.push(Field { position: at + 2 + i, name, typid });
    }
    ColumnPlan::new(compiled, &fields, row_type)
}

/// An emptied buffer, re-typed so that it can outlive the values it held. `owns` says whether
/// some value may own memory; when none does, they are forgotten rather than dropped.
fn recycle<'a>(mut values: Vec<Value<'a>>, owns: bool) -> Vec<Value<'static>> {
    if owns {
        values.clear();
    } else {
        // SAFETY: no value owns memory, so not running their drops leaks nothing.
        unsafe { values.set_len(0) };
    }
    // SAFETY: the vector is empty, so nothing borrowed for 'a survives; only the allocation
    // is kept, and the two types differ in a lifetime only.
    unsafe { std::mem::transmute::<Vec<Value<'a>>, Vec<Value<'static>>>(values) }
}

unsafe fn score_fn(fcinfo: pg_sys::FunctionCallInfo, m: ModelKind, i: InputKind) -> Result<pg_sys::Datum, Error> {
    match evaluate_call(fcinfo, m, i, 1, false, false, |_, _, _, s, _| s.score)? {
        Some(Some(score)) => Ok(float8_datum(score)),
        _ => Ok(return_null(fcinfo)),
    }
}

unsafe fn band_fn(fcinfo: pg_sys::FunctionCallInfo, m: ModelKind, i: InputKind) -> Result<pg_sys::Datum, Error> {
    let band = evaluate_call(fcinfo, m, i, 1, false, false, |_, model, _, s, _| {
        model.band_of(s.segment, s.score).map(|(_, b)| text_datum(&b.name))
    })?;
    match band {
        Some(Some(d)) => Ok(d),
        _ => Ok(return_null(fcinfo)),
    }
}

unsafe fn probability_fn(fcinfo: pg_sys::FunctionCallInfo, m: ModelKind, i: InputKind) -> Result<pg_sys::Datum, Error> {
    match evaluate_call(fcinfo, m, i, 1, false, false, |_, model, _, s, _| model.churn_probability(s.score))? {
        Some(Some(p)) => Ok(float8_datum(p)),
        _ => Ok(return_null(fcinfo)),
    }
}

unsafe fn assess_fn(fcinfo: pg_sys::FunctionCallInfo, m: ModelKind, i: InputKind) -> Result<pg_sys::Datum, Error> {
    let datum = evaluate_call(fcinfo, m, i, 1, false, false, |site, model, _, s, _| {
        let band = model.band_of(s.segment, s.score);
        let segment = model.segment_name(s.segment);
        let mut values = [
            s.score.map(float8_datum).unwrap_or(pg_sys::Datum::from(0usize)),
            band.map(|(_, b)| text_datum(&b.name)).unwrap_or(pg_sys::Datum::from(0usize)),
            float8_datum(s.coverage),
            segment.map(text_datum).unwrap_or(pg_sys::Datum::from(0usize)),
        ];
        let mut nulls = [s.score.is_none(), band.is_none(), false, segment.is_none()];
        let desc = result_desc(fcinfo, &mut site.result_desc);
        let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data)
    })?;
    Ok(datum.unwrap_or_else(|| return_null(fcinfo)))
}

unsafe fn explain_fn(fcinfo: pg_sys::FunctionCallInfo, m: ModelKind, i: InputKind) -> Result<pg_sys::Datum, Error> {
    let rows = evaluate_call(fcinfo, m, i, 1, true, true, |_, model, values, s, nodes| {
        let eval = Evaluation { segment: s.segment, score: s.score, coverage: s.coverage, nodes: nodes.to_vec() };
        model.explain(values, &eval)
    })?;
    pg_sys::InitMaterializedSRF(fcinfo, 0);
    let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
    let zero = pg_sys::Datum::from(0usize);
    for row in rows.unwrap_or_default() {
        let text = |s: &Option<String>| s.as_deref().map(text_datum);
        let float = |v: Option<f64>| v.map(float8_datum);
        let cells: [_; super::signatures::EXPLAIN_COLUMNS.len()] = [
            Some(text_datum(&row.component)),
            text(&row.parent),
            text(&row.input),
            text(&row.raw),
            float(row.normalized),
            Some(float8_datum(row.weight)),
            float(row.contribution),
            Some(text_datum(row.status.as_str())),
        ];
        let mut values = cells.map(|c| c.unwrap_or(zero));
        let mut nulls = cells.map(|c| c.is_none());
        pg_sys::tuplestore_putvalues((*rsinfo).setResult, (*rsinfo).setDesc, values.as_mut_ptr(), nulls.as_mut_ptr());
    }
    Ok(zero)
}

macro_rules! four_forms {
    ($imp:ident: $jj:ident/$fjj:ident, $nj:ident/$fnj:ident, $jr:ident/$fjr:ident, $nr:ident/$fnr:ident) => {
        v1_function!($jj, $fjj, |fcinfo| { $imp(fcinfo, ModelKind::Inline, InputKind::Json) });
        v1_function!($nj, $fnj, |fcinfo| { $imp(fcinfo, ModelKind::Named, InputKind::Json) });
        v1_function!($jr, $fjr, |fcinfo| { $imp(fcinfo, ModelKind::Inline, InputKind::Row) });
        v1_function!($nr, $fnr, |fcinfo| { $imp(fcinfo, ModelKind::Named, InputKind::Row) });
    };
}

pub(super) use four_forms;

macro_rules! columns_form {
    ($imp:ident: $name:ident/$finfo:ident) => {
        v1_function!($name, $finfo, |fcinfo| { $imp(fcinfo, ModelKind::ByType, InputKind::Columns) });
    };
}

columns_form!(score_fn: hs_score_columns/pg_finfo_hs_score_columns);
columns_form!(band_fn: hs_band_columns/pg_finfo_hs_band_columns);
columns_form!(assess_fn: hs_assess_columns/pg_finfo_hs_assess_columns);
columns_form!(explain_fn: hs_explain_columns/pg_finfo_hs_explain_columns);
columns_form!(probability_fn: hs_probability_columns/pg_finfo_hs_probability_columns);

four_forms!(score_fn: hs_score_jj/pg_finfo_hs_score_jj, hs_score_nj/pg_finfo_hs_score_nj, hs_score_jr/pg_finfo_hs_score_jr, hs_score_nr/pg_finfo_hs_score_nr);
four_forms!(band_fn: hs_band_jj/pg_finfo_hs_band_jj, hs_band_nj/pg_finfo_hs_band_nj, hs_band_jr/pg_finfo_hs_band_jr, hs_band_nr/pg_finfo_hs_band_nr);
four_forms!(assess_fn: hs_assess_jj/pg_finfo_hs_assess_jj, hs_assess_nj/pg_finfo_hs_assess_nj, hs_assess_jr/pg_finfo_hs_assess_jr, hs_assess_nr/pg_finfo_hs_assess_nr);
four_forms!(explain_fn: hs_explain_jj/pg_finfo_hs_explain_jj, hs_explain_nj/pg_finfo_hs_explain_nj, hs_explain_jr/pg_finfo_hs_explain_jr, hs_explain_nr/pg_finfo_hs_explain_nr);
four_forms!(probability_fn: hs_probability_jj/pg_finfo_hs_probability_jj, hs_probability_nj/pg_finfo_hs_probability_nj, hs_probability_jr/pg_finfo_hs_probability_jr, hs_probability_nr/pg_finfo_hs_probability_nr);

// _jsonb_of(input text) → jsonb: the text forms' input (or inline model), parsed by jsonb_in; text that
// is not JSON is 22023 with the text cut short (jsonb_in's own error would quote all of it).
v1_function!(hs_jsonb_of, pg_finfo_hs_jsonb_of, |fcinfo| {
    let Some(d) = arg(fcinfo, 0) else { return Ok(return_null(fcinfo)) };
    let text = super::text_arg(d);
    let Ok(c_text) = std::ffi::CString::new(text.as_bytes()) else {
        return Err(not_json(&text));
    };
    let parsed = pgrx::PgTryBuilder::new(|| {
        Some(pg_sys::DirectFunctionCall1Coll(
            Some(super::builtins::jsonb_in),
            pg_sys::InvalidOid,
            pg_sys::Datum::from(c_text.as_ptr()),
        ))
    })
    .catch_others(|_| None)
    .execute();
    parsed.ok_or_else(|| not_json(&text))
});

fn not_json(text: &str) -> Error {
    Error::InvalidArgument {
        message: format!("not JSON: {}", crate::core::error::quoted_excerpt(text)),
        hint: Some("an input is a JSON object of input key to value, such as '{\"logins\": 12}'; a model given inline is a JSON object too".into()),
    }
}

// validate(model jsonb) → (path, message): every fault of a model, none when it is valid.
#[pgrx::pg_extern(sql = false)]
fn validate(
    model: JsonbArg,
) -> pgrx::iter::TableIterator<'static, (pgrx::name!(path, String), pgrx::name!(message, String))> {
    let faults = match unsafe { model.read() }.model_json() {
        Ok(json) => Model::faults(&json),
        Err(fault) => vec![fault],
    };
    pgrx::iter::TableIterator::new(faults.into_iter().map(|fault| (fault.path, fault.message)))
}
c_symbol!(hs_validate, pg_finfo_hs_validate => validate_wrapper);

// Raises the model's first fault (22023, with its path) or returns; for set_model.
#[pgrx::pg_extern(sql = false)]
fn require_valid_model(config: JsonbArg) {
    raising(|| models::compile(&unsafe { config.read() }).map(drop))
}
c_symbol!(hs_require_valid_model, pg_finfo_hs_require_valid_model => require_valid_model_wrapper);

// _components(config) → (component, parent, model_order, description): a valid model's
// components in model order, parents first, from the compiled model (cached like any other).
// alerts and drivers call it for every entity, where the recursive SQL it replaced cost 60 µs
// (9 ms with JIT compiling it anew on every call).
v1_function!(hs_components, pg_finfo_hs_components, |fcinfo| {
    let Some(d) = arg(fcinfo, 0) else { return Ok(return_null(fcinfo)) };
    let compiled = models::compile(&JsonbRef::from_datum(d))?;
    let nodes = &compiled.model.nodes;
    pg_sys::InitMaterializedSRF(fcinfo, 0);
    let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
    let zero = pg_sys::Datum::from(0usize);
    for (order, node) in nodes.iter().enumerate() {
        let cells = [
            Some(text_datum(&node.name)),
            node.parent.map(|p| text_datum(&nodes[p].name)),
            Some(pg_sys::Datum::from(order as i32 + 1)),
            node.description.as_deref().map(text_datum),
        ];
        let mut values = cells.map(|c| c.unwrap_or(zero));
        let mut nulls = cells.map(|c| c.is_none());
        pg_sys::tuplestore_putvalues((*rsinfo).setResult, (*rsinfo).setDesc, values.as_mut_ptr(), nulls.as_mut_ptr());
    }
    Ok(zero)
});

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/scoring.rs");
}
