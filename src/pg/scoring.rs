//! `score`, `band`, `assess`, `explain`, `churn_probability` in their four forms (model inline
//! or by name, input as JSONB or as a row), and `validate`.

use pgrx::pg_sys;

use crate::core::{Error, Evaluation, Model, Value};

use super::jsonb::JsonbRef;
use super::models::{self, ModelArg, ModelSlot};
use super::row::{row_type, RowPlan};
use super::{arg, call_site, float8_datum, return_null, text_arg, text_datum, v1_function};

#[derive(Clone, Copy)]
enum ModelKind {
    Inline,
    Named,
}

#[derive(Clone, Copy)]
enum InputKind {
    Json,
    Row,
}

#[derive(Default)]
struct Site {
    model: ModelSlot,
    row: Option<RowPlan>,
    result_desc: Option<pg_sys::TupleDesc>,
}

/// Evaluates the call's model over its input and hands the outcome to `f`; None when an
/// argument is NULL.
unsafe fn evaluate_call<R>(
    fcinfo: pg_sys::FunctionCallInfo,
    model_kind: ModelKind,
    input_kind: InputKind,
    want_text: bool,
    f: impl FnOnce(&mut Site, &Model, &[Value<'_>], Evaluation) -> R,
) -> Result<Option<R>, Error> {
    let (Some(model_datum), Some(input_datum)) = (arg(fcinfo, 0), arg(fcinfo, 1)) else {
        return Ok(None);
    };
    let site: &mut Site = call_site(fcinfo);
    let name;
    let model_arg = match model_kind {
        ModelKind::Inline => ModelArg::Inline(model_datum),
        ModelKind::Named => {
            name = text_arg(model_datum);
            ModelArg::Named(&name)
        }
    };
    let compiled = site.model.get(fcinfo, 0, model_arg)?;
    let model = &compiled.model;
    match input_kind {
        InputKind::Json => {
            let input = JsonbRef::from_datum(input_datum);
            if !input.is_object() {
                return Err(Error::InvalidArgument {
                    message: format!("the input must be a JSON object, not {}", input.to_json().kind()),
                    hint: Some("pass an object of input key to value, such as '{\"logins\": 12}'::jsonb".into()),
                });
            }
            let values: Vec<Value<'_>> = model
                .inputs
                .iter()
                .map(|slot| input.value(&slot.key, want_text || slot.categorical))
                .collect();
            let eval = model.evaluate(&values)?;
            Ok(Some(f(site, model, &values, eval)))
        }
        InputKind::Row => {
            let header = pg_sys::pg_detoast_datum(input_datum.cast_mut_ptr()) as pg_sys::HeapTupleHeader;
            let (typid, typmod) = row_type(header);
            let mut plan = match site.row.take() {
                Some(p) if p.fits(&compiled, typid, typmod) => p,
                _ => RowPlan::new(compiled.clone(), typid, typmod, (*(*fcinfo).flinfo).fn_mcxt)?,
            };
            let result = {
                let values = plan.read(header, want_text);
                match model.evaluate(&values) {
                    Ok(eval) => Ok(Some(f(site, model, &values, eval))),
                    Err(e) => Err(e),
                }
            };
            site.row = Some(plan);
            result
        }
    }
}

unsafe fn score_fn(fcinfo: pg_sys::FunctionCallInfo, m: ModelKind, i: InputKind) -> Result<pg_sys::Datum, Error> {
    match evaluate_call(fcinfo, m, i, false, |_, _, _, eval| eval.score)? {
        Some(Some(score)) => Ok(float8_datum(score)),
        _ => Ok(return_null(fcinfo)),
    }
}

unsafe fn band_fn(fcinfo: pg_sys::FunctionCallInfo, m: ModelKind, i: InputKind) -> Result<pg_sys::Datum, Error> {
    let band = evaluate_call(fcinfo, m, i, false, |_, model, _, eval| {
        model.band_of(eval.segment, eval.score).map(|(_, b)| text_datum(&b.name))
    })?;
    match band {
        Some(Some(d)) => Ok(d),
        _ => Ok(return_null(fcinfo)),
    }
}

unsafe fn probability_fn(fcinfo: pg_sys::FunctionCallInfo, m: ModelKind, i: InputKind) -> Result<pg_sys::Datum, Error> {
    match evaluate_call(fcinfo, m, i, false, |_, model, _, eval| model.churn_probability(eval.score))? {
        Some(Some(p)) => Ok(float8_datum(p)),
        _ => Ok(return_null(fcinfo)),
    }
}

/// The function's composite result type, blessed once per call site.
unsafe fn result_desc(fcinfo: pg_sys::FunctionCallInfo, cached: &mut Option<pg_sys::TupleDesc>) -> pg_sys::TupleDesc {
    if let Some(desc) = cached {
        return *desc;
    }
    let old = pg_sys::MemoryContextSwitchTo((*(*fcinfo).flinfo).fn_mcxt);
    let mut desc: pg_sys::TupleDesc = std::ptr::null_mut();
    pg_sys::get_call_result_type(fcinfo, std::ptr::null_mut(), &mut desc);
    let desc = pg_sys::BlessTupleDesc(desc);
    pg_sys::MemoryContextSwitchTo(old);
    *cached = Some(desc);
    desc
}

unsafe fn assess_fn(fcinfo: pg_sys::FunctionCallInfo, m: ModelKind, i: InputKind) -> Result<pg_sys::Datum, Error> {
    let datum = evaluate_call(fcinfo, m, i, false, |site, model, _, eval| {
        let band = model.band_of(eval.segment, eval.score);
        let segment = model.segment_name(eval.segment);
        let mut values = [
            eval.score.map(float8_datum).unwrap_or(pg_sys::Datum::from(0usize)),
            band.map(|(_, b)| text_datum(&b.name)).unwrap_or(pg_sys::Datum::from(0usize)),
            float8_datum(eval.coverage),
            segment.map(text_datum).unwrap_or(pg_sys::Datum::from(0usize)),
        ];
        let mut nulls = [eval.score.is_none(), band.is_none(), false, segment.is_none()];
        let desc = result_desc(fcinfo, &mut site.result_desc);
        let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data)
    })?;
    Ok(datum.unwrap_or_else(|| return_null(fcinfo)))
}

unsafe fn explain_fn(fcinfo: pg_sys::FunctionCallInfo, m: ModelKind, i: InputKind) -> Result<pg_sys::Datum, Error> {
    let rows = evaluate_call(fcinfo, m, i, true, |_, model, values, eval| model.explain(values, &eval))?;
    pg_sys::InitMaterializedSRF(fcinfo, 0);
    let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
    let zero = pg_sys::Datum::from(0usize);
    for row in rows.unwrap_or_default() {
        let text = |s: &Option<String>| s.as_deref().map(text_datum);
        let float = |v: Option<f64>| v.map(float8_datum);
        let cells = [
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

four_forms!(score_fn: hs_score_jj/pg_finfo_hs_score_jj, hs_score_nj/pg_finfo_hs_score_nj, hs_score_jr/pg_finfo_hs_score_jr, hs_score_nr/pg_finfo_hs_score_nr);
four_forms!(band_fn: hs_band_jj/pg_finfo_hs_band_jj, hs_band_nj/pg_finfo_hs_band_nj, hs_band_jr/pg_finfo_hs_band_jr, hs_band_nr/pg_finfo_hs_band_nr);
four_forms!(assess_fn: hs_assess_jj/pg_finfo_hs_assess_jj, hs_assess_nj/pg_finfo_hs_assess_nj, hs_assess_jr/pg_finfo_hs_assess_jr, hs_assess_nr/pg_finfo_hs_assess_nr);
four_forms!(explain_fn: hs_explain_jj/pg_finfo_hs_explain_jj, hs_explain_nj/pg_finfo_hs_explain_nj, hs_explain_jr/pg_finfo_hs_explain_jr, hs_explain_nr/pg_finfo_hs_explain_nr);
four_forms!(probability_fn: hs_probability_jj/pg_finfo_hs_probability_jj, hs_probability_nj/pg_finfo_hs_probability_nj, hs_probability_jr/pg_finfo_hs_probability_jr, hs_probability_nr/pg_finfo_hs_probability_nr);

v1_function!(hs_validate, pg_finfo_hs_validate, |fcinfo| {
    let faults = match arg(fcinfo, 0) {
        Some(d) => Model::faults(&JsonbRef::from_datum(d).to_json()),
        None => Vec::new(),
    };
    pg_sys::InitMaterializedSRF(fcinfo, 0);
    let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
    for fault in faults {
        let mut values = [text_datum(&fault.path), text_datum(&fault.message)];
        let mut nulls = [false, false];
        pg_sys::tuplestore_putvalues((*rsinfo).setResult, (*rsinfo).setDesc, values.as_mut_ptr(), nulls.as_mut_ptr());
    }
    Ok(pg_sys::Datum::from(0usize))
});

// Raises the model's first fault (22023, with its path) or returns; for set_model.
v1_function!(hs_require_valid_model, pg_finfo_hs_require_valid_model, |fcinfo| {
    if let Some(d) = arg(fcinfo, 0) {
        models::compile(&JsonbRef::from_datum(d))?;
    }
    Ok(pg_sys::Datum::from(0usize))
});

