//! `parent_health(model, child_key, score, weight [, band, components]) → parent_summary`: a
//! parent account's health from its children's, the aggregate over `core::parent`. Plain V1
//! functions with a hand-written `CREATE AGGREGATE` (pgrx issue #2351). The model (its bands)
//! is read once per group, from the group's first row.

use pgrx::{pg_sys, IntoDatum};

use crate::core::{Child, Error, ParentState};

use super::jsonb::JsonbRef;
use super::models::{ModelArg, ModelSlot};
use super::{
    arg, bytea_aggregate_state, bytea_final_state_mut, bytea_state_merge, call_site, float8_datum, partial_state,
    result_desc, return_null, text_arg, text_datum, v1_function,
};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!("../../sql/parent.sql", name = "parent", requires = ["roles", "registry"]);

// parent_health's state is a `bytea` (`fmgr::expanded`), which Citus aggregates partially on
// its workers.
partial_state!(ParentState, crate::core::bytes::StateKind::Parent, "parent_health");

/// Adds one child (arguments 1 to 4 or 6: model, child_key, score, weight [, band,
/// components]) to `state`, reading the model's bands first when the state has none; the
/// model is inline (jsonb) or a name as `inline` says.
unsafe fn add_child(state: &mut ParentState, fcinfo: pg_sys::FunctionCallInfo, inline: bool) -> Result<(), Error> {
    if !state.has_model() {
        let Some(model) = arg(fcinfo, 1) else {
            return Err(Error::InvalidArgument {
                message: "parent_health: the model must not be NULL".into(),
                hint: Some("name a registered model, such as parent_health('churn', ...), or pass one inline".into()),
            });
        };
        // the transition's call site keeps the model, by name or inline
        let site: &mut ModelSlot = call_site(fcinfo);
        let model_arg = if inline { ModelArg::Inline(model) } else { ModelArg::NamedDatum(model) };
        let compiled = site.get(fcinfo, 1, model_arg)?;
        state.set_bands(compiled.base.bands.clone().unwrap_or_default());
    }
    let key = arg(fcinfo, 2).map(|d| text_arg(d));
    let float = |n: usize| arg(fcinfo, n).map(|d| f64::from_bits(d.value() as u64));
    let detailed = (*fcinfo).nargs >= 7;
    let band = if detailed { arg(fcinfo, 5).map(|d| text_arg(d)) } else { None };
    let components = if detailed { arg(fcinfo, 6).map(|d| JsonbRef::from_datum(d).to_json()) } else { None };
    let Some(key) = key else {
        return Err(Error::InvalidArgument {
            message: "parent_health: a child's key must not be NULL".into(),
            hint: Some("pass each child's own key (its entity_key), which names the lowest child".into()),
        });
    };
    state.add(&Child {
        key: &key,
        score: float(3),
        weight: float(4),
        band: band.as_deref(),
        components: components.as_ref(),
    })
}

// _parent_step(state bytea, model text, child_key, score, weight [, band, components]) → bytea.
// One symbol per model type: Citus calls a transition function without the call's expression.
v1_function!(hs_parent_step_named, pg_finfo_hs_parent_step_named, |fcinfo| {
    let (datum, state) = bytea_aggregate_state::<ParentState>(fcinfo)?;
    add_child(state, fcinfo, false)?;
    Ok(datum)
});

// _parent_step(state bytea, model jsonb, child_key, score, weight [, band, components]) → bytea
v1_function!(hs_parent_step_inline, pg_finfo_hs_parent_step_inline, |fcinfo| {
    let (datum, state) = bytea_aggregate_state::<ParentState>(fcinfo)?;
    add_child(state, fcinfo, true)?;
    Ok(datum)
});

// _parent_merge(state bytea, other bytea) → bytea
bytea_state_merge!(ParentState, hs_parent_merge, pg_finfo_hs_parent_merge);

// _parent_result(state bytea) → parent_summary
v1_function!(hs_parent_result, pg_finfo_hs_parent_result, |fcinfo| {
    Ok(match bytea_final_state_mut::<ParentState>(fcinfo)? {
        Some(state) => summary(&state, fcinfo),
        None => return_null(fcinfo),
    })
});

/// The `parent_summary` of a state.
unsafe fn summary(state: &ParentState, fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let h = state.finish();
    let site: &mut Option<pg_sys::TupleDesc> = call_site(fcinfo);
    let desc = result_desc(fcinfo, site);
    let zero = pg_sys::Datum::from(0usize);
    let object = |pairs: Vec<(String, serde_json::Value)>| {
        pgrx::JsonB(serde_json::Value::Object(pairs.into_iter().collect())).into_datum()
    };
    let per_band = object(h.per_band.iter().map(|(b, n)| (b.clone(), serde_json::json!(n))).collect());
    let points = h.points.map(|p| object(p.into_iter().map(|(c, v)| (c, serde_json::json!(v))).collect()));
    let cells = [
        h.score.map(float8_datum),
        h.band.as_deref().map(text_datum),
        Some(pg_sys::Datum::from(h.children as i64)),
        Some(pg_sys::Datum::from(h.left_out as i64)),
        Some(float8_datum(h.total_weight)),
        h.lowest_child.as_deref().map(text_datum),
        h.lowest_score.map(float8_datum),
        per_band,
        points.flatten(),
    ];
    let mut values = cells.map(|c| c.unwrap_or(zero));
    let mut nulls = cells.map(|c| c.is_none());
    let tuple = pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr());
    pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/parent.rs");
}
