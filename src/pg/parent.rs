//! `parent_health(model, child_key, score, weight [, band, components]) → parent_summary`: a
//! parent account's health from its children's, the aggregate over `core::parent`. Plain V1
//! functions with a hand-written `CREATE AGGREGATE` (pgrx issue #2351). The model (its bands)
//! is read once per group, from the group's first row.

use pgrx::{pg_sys, IntoDatum};

use crate::core::{Child, Error, ParentState};

use super::jsonb::JsonbRef;
use super::models::{ModelArg, ModelSlot};
use super::{
    aggregate_state, arg, c_symbol, call_site, float8_datum, partial_state_functions, result_desc, text_arg,
    text_datum, v1_function, BuiltDatum,
};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!("../../sql/parent.sql", name = "parent", requires = ["roles", "registry"]);

/// The transition's call site: the model, by name or inline.
#[derive(Default)]
struct TransSite {
    model: ModelSlot,
    inline_model: Option<bool>,
}

// (state, model, child_key, score, weight [, band, components])
v1_function!(hs_parent_trans, pg_finfo_hs_parent_trans, |fcinfo| {
    let state = aggregate_state::<ParentState>(fcinfo, "parent_health")?;
    if !(*state).has_model() {
        let Some(model) = arg(fcinfo, 1) else {
            return Err(Error::InvalidArgument {
                message: "parent_health: the model must not be NULL".into(),
                hint: Some("name a registered model, such as parent_health('churn', ...), or pass one inline".into()),
            });
        };
        let site: &mut TransSite = call_site(fcinfo);
        let inline = *site
            .inline_model
            .get_or_insert_with(|| pg_sys::get_fn_expr_argtype((*fcinfo).flinfo, 1) == pg_sys::JSONBOID);
        let model_arg = if inline { ModelArg::Inline(model) } else { ModelArg::NamedDatum(model) };
        let compiled = site.model.get(fcinfo, 1, model_arg)?;
        (*state).set_bands(compiled.base.bands.clone().unwrap_or_default());
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
    (*state).add(&Child {
        key: &key,
        score: float(3),
        weight: float(4),
        band: band.as_deref(),
        components: components.as_ref(),
    })?;
    Ok(pg_sys::Datum::from(state))
});

partial_state_functions!(
    ParentState,
    crate::core::bytes::StateKind::Parent,
    "parent_health",
    combine: parent_combine => parent_combine_wrapper as hs_parent_combine, pg_finfo_hs_parent_combine,
    serialize: parent_serialize => parent_serialize_wrapper as hs_parent_serialize, pg_finfo_hs_parent_serialize,
    deserialize: parent_deserialize => parent_deserialize_wrapper as hs_parent_deserialize, pg_finfo_hs_parent_deserialize
);

#[pgrx::pg_extern(sql = false)]
unsafe fn parent_final(state: pgrx::Internal, fcinfo: pg_sys::FunctionCallInfo) -> Option<BuiltDatum> {
    let h = state.get::<ParentState>()?.finish();
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
    Some(BuiltDatum(pg_sys::HeapTupleHeaderGetDatum((*tuple).t_data)))
}
c_symbol!(hs_parent_final, pg_finfo_hs_parent_final => parent_final_wrapper);

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/parent.rs");
}
