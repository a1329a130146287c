//! `suggest` and `add_components` (SQL in `sql/suggest.sql`): the `_suggest` aggregate keeps
//! each row's observations of the model's leaves and its candidate columns' values, on the
//! training or the held-out side, and ranks the candidates in its final function.

use pgrx::pg_sys;

use crate::core::suggest::{self, Candidate, SuggestData, SuggestOptions};
use crate::core::{Error, Json, Model};

use super::fit_shapes::{read_settings, write_settings};
use super::jsonb::JsonbRef;
use super::{
    arg, bytea_aggregate_state, bytea_bytes, bytea_final_state_mut, bytea_state_merge, c_symbol, partial_state,
    raising, text_datum, v1_function, JsonbArg, TextArg,
};

pgrx::extension_sql_file!("../../sql/suggest.sql", name = "suggest", requires = ["fit_shapes"]);

/// The aggregate's state: the settings (`{"model", "options", "numeric", "categorical"}`)
/// from its first row, and the rows.
#[derive(Default)]
struct SuggestState {
    settings: Option<Json>,
    max_categories: usize,
    data: Option<SuggestData>,
}

fn names(settings: &Json, key: &str) -> Vec<String> {
    match settings.get(key) {
        Some(Json::Array(items)) => {
            items.iter().filter_map(|i| if let Json::String(s) = i { Some(s.clone()) } else { None }).collect()
        }
        _ => Vec::new(),
    }
}

fn parsed(settings: &Json) -> Result<(Model, SuggestOptions), Error> {
    let model = Model::parse(settings.get("model").unwrap_or(&Json::Null))?;
    let options = SuggestOptions::from_json(settings.get("options").unwrap_or(&Json::Null), &model)?;
    Ok((model, options))
}

impl SuggestState {
    fn start(&mut self, settings: Json) -> Result<(), Error> {
        let (model, options) = parsed(&settings)?;
        self.max_categories = options.max_categories;
        self.data =
            Some(SuggestData::new(&model, names(&settings, "numeric").len(), names(&settings, "categorical").len()));
        self.settings = Some(settings);
        Ok(())
    }

    fn combine(&mut self, other: &SuggestState) -> Result<(), Error> {
        if self.settings.is_none() {
            self.settings = other.settings.clone();
            self.max_categories = other.max_categories;
        }
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
        out.extend_from_slice(&(self.max_categories as u64).to_le_bytes());
        if let Some(data) = &self.data {
            data.to_bytes(&mut out)?;
        }
        Ok(out)
    }

    fn from_bytes(bytes: &[u8]) -> Option<SuggestState> {
        let mut r = crate::core::bytes::Reader::new(bytes);
        let settings = read_settings(&mut r)?;
        let max_categories = r.u64()? as usize;
        if settings.is_none() {
            return Some(SuggestState::default());
        }
        let data = SuggestData::from_bytes(r.rest())?;
        Some(SuggestState { settings, max_categories, data: Some(data) })
    }
}

/// The elements of a one-dimensional array (NULLs as None), each as `read` takes it.
unsafe fn elements<T>(
    datum: pg_sys::Datum,
    element_type: pg_sys::Oid,
    read: impl Fn(pg_sys::Datum) -> T,
) -> Vec<Option<T>> {
    let array = pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) as *mut pg_sys::ArrayType;
    let (mut length, mut by_value, mut align) = (0i16, false, 0 as std::ffi::c_char);
    pg_sys::get_typlenbyvalalign(element_type, &mut length, &mut by_value, &mut align);
    let mut values: *mut pg_sys::Datum = std::ptr::null_mut();
    let mut nulls: *mut bool = std::ptr::null_mut();
    let mut count = 0;
    pg_sys::deconstruct_array(array, element_type, length.into(), by_value, align, &mut values, &mut nulls, &mut count);
    (0..count as usize).map(|i| (!*nulls.add(i)).then(|| read(*values.add(i)))).collect()
}

// _suggest's state is a `bytea` (`fmgr::expanded`), which Citus aggregates partially on its
// workers.
partial_state!(SuggestState, crate::core::bytes::StateKind::Suggest, "_suggest");

/// Adds one row (arguments 1 to 6: design, churned, held, numbers, categories, settings) to
/// `state`: a NULL design (a NULL row) and a row without an outcome are skipped.
unsafe fn add_row(state: &mut SuggestState, fcinfo: pg_sys::FunctionCallInfo) -> Result<(), Error> {
    if state.settings.is_none() {
        if let Some(settings) = arg(fcinfo, 6) {
            state.start(JsonbRef::from_datum(settings).to_json())?;
        }
    }
    if let (Some(design), Some(churned), Some(data)) = (arg(fcinfo, 1), arg(fcinfo, 2), state.data.as_mut()) {
        let held = arg(fcinfo, 3).is_some_and(|d| d.value() != 0);
        let numbers = arg(fcinfo, 4)
            .map(|d| elements(d, pg_sys::FLOAT8OID, |v| f64::from_bits(v.value() as u64)))
            .unwrap_or_default();
        let texts = arg(fcinfo, 5).map(|d| elements(d, pg_sys::TEXTOID, |v| super::text_arg(v))).unwrap_or_default();
        let categories: Vec<Option<&str>> = texts.iter().map(|t| t.as_deref()).collect();
        data.add(bytea_bytes(design), &numbers, &categories, churned.value() != 0, held, state.max_categories)?;
    }
    Ok(())
}

// _suggest_step(state bytea, design bytea, churned boolean, held boolean, numbers float8[],
// categories text[], settings jsonb) → bytea
v1_function!(hs_suggest_step, pg_finfo_hs_suggest_step, |fcinfo| {
    let (datum, state) = bytea_aggregate_state::<SuggestState>(fcinfo)?;
    add_row(state, fcinfo)?;
    Ok(datum)
});

// _suggest_merge(state bytea, other bytea) → bytea
bytea_state_merge!(SuggestState, hs_suggest_merge, pg_finfo_hs_suggest_merge);

// _suggest_result(state bytea) → text (below)
v1_function!(hs_suggest_result, pg_finfo_hs_suggest_result, |fcinfo| {
    let result = match bytea_final_state_mut::<SuggestState>(fcinfo)? {
        Some(state) => suggestions(&state)?,
        None => suggestions(&SuggestState::default())?,
    };
    Ok(text_datum(&result))
});

// {"baseline_holdout_auc", "suggestions": [{"rank", "column", "component", "holdout_auc", "gain",
// "leak", "exact"}], "too_many_categories"} as JSON text.
fn suggestions(state: &SuggestState) -> Result<String, Error> {
    let (Some(settings), Some(data)) = (&state.settings, &state.data) else {
        return Err(Error::InvalidArgument {
            message: "suggest: the source has no rows".into(),
            hint: Some("suggest needs accounts with a known outcome".into()),
        });
    };
    let (model, options) = parsed(settings)?;
    let candidates: Vec<Candidate> = names(settings, "numeric")
        .into_iter()
        .map(|column| Candidate { column, categorical: false })
        .chain(names(settings, "categorical").into_iter().map(|column| Candidate { column, categorical: true }))
        .collect();
    let model_json = settings.get("model").cloned().unwrap_or(Json::Null);
    let found = suggest::suggest(&model_json, &model, &candidates, data, &options)?;
    let to_value = |j: &Json| serde_json::from_str::<serde_json::Value>(&j.to_text()).unwrap_or_default();
    let suggestions: Vec<serde_json::Value> = found
        .suggestions
        .iter()
        .map(|s| {
            serde_json::json!({
                "rank": s.rank, "column": s.column, "component": to_value(&s.component),
                "holdout_auc": s.holdout_auc, "gain": s.gain, "leak": s.leak, "exact": s.exact,
            })
        })
        .collect();
    Ok(serde_json::json!({
        "baseline_holdout_auc": found.baseline_holdout_auc, "suggestions": suggestions,
        "too_many_categories": found.too_many_categories,
    })
    .to_string())
}

// add_components(model jsonb, components jsonb, parent text DEFAULT NULL) → jsonb: NULL when the
// model or the components are.
#[pgrx::pg_extern(sql = false)]
fn add_components(
    model: Option<JsonbArg>,
    components: Option<JsonbArg>,
    parent: Option<TextArg>,
) -> Option<pgrx::JsonB> {
    let (model, components) = unsafe { (model?.read().to_json(), components?.read().to_json()) };
    raising(|| {
        let out = suggest::add_components(&model, &components, parent.as_ref().map(|p| p.0.as_str()))?;
        let value: serde_json::Value = serde_json::from_str(&out.to_text())
            .map_err(|e| Error::InvalidArgument { message: format!("add_components: {e}"), hint: None })?;
        Ok(Some(pgrx::JsonB(value)))
    })
}
c_symbol!(hs_add_components, pg_finfo_hs_add_components => add_components_wrapper);
