//! `score_agg(model, input_key, value)`: scores the object built from a group's metric rows.
//!
//! The state (`internal`) keeps the model argument and the (key, value) pairs; the model is
//! compiled only in the final function, through the same caches as the scalar functions.
//! Written as plain V1 functions with a hand-written `CREATE AGGREGATE` (pgrx 0.18.1 emits a
//! wrong deserial signature for internal states, pgrx issue #2351).

use std::borrow::Cow;
use std::collections::HashMap;

use pgrx::pg_sys;

use crate::core::bytes::{Reader, StateKind};
use crate::core::{Error, Scratch, Value};

use super::jsonb::{numeric_text, JsonbRef};
use super::models::{ModelArg, ModelSlot};
use super::{
    aggregate_context, arg, c_symbol, call_site, float8_datum, raising, state_datum, text_arg, v1_function, BuiltDatum,
};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!("../../sql/score_agg.sql", name = "score_agg", requires = ["roles"]);

#[derive(Clone, PartialEq)]
enum AggModel {
    /// The JSONB model's bytes, varlena header included.
    Inline(Vec<u8>),
    Named(String),
}

#[derive(Clone)]
enum Stored {
    Missing,
    /// A JSON number: its double and its text.
    Number(f64, String),
    /// A double precision value.
    Float(f64),
    Text(String),
    Bool(bool),
    Structured(String),
}

#[derive(Default, Clone)]
struct AggState {
    model: Option<AggModel>,
    /// The model argument's address last checked, to skip comparing a constant every row.
    model_seen_at: usize,
    entries: Vec<(String, Stored)>,
}

fn mismatch() -> Error {
    Error::InvalidArgument {
        message: "score_agg: the model must be the same in every row of a group".into(),
        hint: Some("pass the model as a constant or a registered model's name".into()),
    }
}

/// The state in `arg`, or a new one owned by `ctx` (dropped when that context is reset).
unsafe fn state_in(arg: Option<pg_sys::Datum>, ctx: pg_sys::MemoryContext) -> *mut AggState {
    match arg {
        Some(d) if !d.is_null() => d.cast_mut_ptr::<AggState>(),
        _ => pgrx::PgMemoryContexts::For(ctx).leak_and_drop_on_delete(AggState::default()),
    }
}

unsafe fn stored_from_jsonb(datum: pg_sys::Datum) -> Stored {
    let jsonb = JsonbRef::from_datum(datum);
    match jsonb.scalar() {
        Some(Value::Missing) => Stored::Missing,
        Some(Value::Number { value, text }) => Stored::Number(value, text.map(Cow::into_owned).unwrap_or_default()),
        Some(Value::Text(s)) => Stored::Text(s.into_owned()),
        Some(Value::Bool(b)) => Stored::Bool(b),
        Some(Value::Structured(s)) => Stored::Structured(s.into_owned()),
        None => Stored::Structured(jsonb.to_json().to_text()),
    }
}

v1_function!(hs_score_agg_trans, pg_finfo_hs_score_agg_trans, |fcinfo| {
    let ctx = aggregate_context(fcinfo, "score_agg")?;
    let state = &mut *state_in(arg(fcinfo, 0), ctx);
    let flinfo = (*fcinfo).flinfo;
    // the model is taken from rows with a NULL key too: a group of only such rows scores the
    // empty object (which zero or imputed rules can still score), as the key is ignored
    if let Some(model) = arg(fcinfo, 1) {
        if model.value() != state.model_seen_at {
            let this = if pg_sys::get_fn_expr_argtype(flinfo, 1) == pg_sys::JSONBOID {
                AggModel::Inline(JsonbRef::from_datum(model).bytes().to_vec())
            } else {
                AggModel::Named(text_arg(model).into_owned())
            };
            match &state.model {
                None => state.model = Some(this),
                Some(m) if *m == this => {}
                Some(_) => return Err(mismatch()),
            }
            state.model_seen_at = model.value();
        }
    }
    if let (Some(_), Some(key)) = (arg(fcinfo, 1), arg(fcinfo, 2)) {
        let value = match arg(fcinfo, 3) {
            None => Stored::Missing,
            Some(v) => {
                let value_type = pg_sys::get_fn_expr_argtype(flinfo, 3);
                if value_type == pg_sys::JSONBOID {
                    stored_from_jsonb(v)
                } else if value_type == pg_sys::FLOAT8OID {
                    Stored::Float(f64::from_bits(v.value() as u64))
                } else {
                    Stored::Text(text_arg(v).into_owned())
                }
            }
        };
        state.entries.push((text_arg(key).into_owned(), value));
    }
    Ok(pg_sys::Datum::from(state as *mut AggState))
});

#[pgrx::pg_extern(sql = false)]
unsafe fn score_agg_combine(
    first: pgrx::Internal,
    second: pgrx::Internal,
    fcinfo: pg_sys::FunctionCallInfo,
) -> pgrx::Internal {
    raising(|| {
        let ctx = aggregate_context(fcinfo, "score_agg")?;
        let state = state_in(first.unwrap(), ctx);
        if let Some(other) = second.get::<AggState>() {
            let state = &mut *state;
            match (&state.model, &other.model) {
                (None, Some(m)) => state.model = Some(m.clone()),
                (Some(a), Some(b)) if a != b => return Err(mismatch()),
                _ => {}
            }
            state.entries.extend(other.entries.iter().cloned());
        }
        Ok(pgrx::Internal::from(Some(pg_sys::Datum::from(state))))
    })
}
c_symbol!(hs_score_agg_combine, pg_finfo_hs_score_agg_combine => score_agg_combine_wrapper);

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn serialize(state: &AggState) -> Vec<u8> {
    let mut out = Vec::new();
    match &state.model {
        None => out.push(0),
        Some(AggModel::Inline(b)) => {
            out.push(1);
            put_bytes(&mut out, b);
        }
        Some(AggModel::Named(n)) => {
            out.push(2);
            put_bytes(&mut out, n.as_bytes());
        }
    }
    out.extend_from_slice(&(state.entries.len() as u32).to_le_bytes());
    for (key, value) in &state.entries {
        put_bytes(&mut out, key.as_bytes());
        match value {
            Stored::Missing => out.push(0),
            Stored::Number(v, t) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
                put_bytes(&mut out, t.as_bytes());
            }
            Stored::Float(v) => {
                out.push(2);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Stored::Text(s) => {
                out.push(3);
                put_bytes(&mut out, s.as_bytes());
            }
            Stored::Bool(b) => out.push(if *b { 5 } else { 4 }),
            Stored::Structured(s) => {
                out.push(6);
                put_bytes(&mut out, s.as_bytes());
            }
        }
    }
    out
}

fn read_string(r: &mut Reader<'_>) -> Option<String> {
    r.bytes().map(|b| String::from_utf8_lossy(b).into_owned())
}

fn deserialize(bytes: &[u8]) -> Option<AggState> {
    let mut r = Reader::new(bytes);
    let model = match r.u8()? {
        0 => None,
        1 => Some(AggModel::Inline(r.bytes()?.to_vec())),
        2 => Some(AggModel::Named(read_string(&mut r)?)),
        _ => return None,
    };
    let count = r.u32()? as usize;
    let mut entries = Vec::with_capacity(count.min(bytes.len()));
    for _ in 0..count {
        let key = read_string(&mut r)?;
        let value = match r.u8()? {
            0 => Stored::Missing,
            1 => Stored::Number(r.f64()?, read_string(&mut r)?),
            2 => Stored::Float(r.f64()?),
            3 => Stored::Text(read_string(&mut r)?),
            4 => Stored::Bool(false),
            5 => Stored::Bool(true),
            6 => Stored::Structured(read_string(&mut r)?),
            _ => return None,
        };
        entries.push((key, value));
    }
    Some(AggState { model, model_seen_at: 0, entries })
}

#[pgrx::pg_extern(sql = false)]
fn score_agg_serialize(state: pgrx::Internal) -> BuiltDatum {
    let bytes = unsafe { state.get::<AggState>() }.map_or_else(|| serialize(&AggState::default()), serialize);
    BuiltDatum(state_datum(StateKind::ScoreAgg, &bytes))
}
c_symbol!(hs_score_agg_serialize, pg_finfo_hs_score_agg_serialize => score_agg_serialize_wrapper);

#[pgrx::pg_extern(sql = false)]
fn score_agg_deserialize(bytes: &[u8], _unused: pgrx::Internal) -> pgrx::Internal {
    let state = crate::core::bytes::state_payload(bytes, StateKind::ScoreAgg).and_then(deserialize);
    let state = raising(|| {
        state
            .ok_or_else(|| Error::InvalidArgument { message: "score_agg: corrupt serialized state".into(), hint: None })
    });
    // deserialized states live in the current (per-call) context; combine copies from them
    let ptr = pgrx::PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state);
    pgrx::Internal::from(Some(pg_sys::Datum::from(ptr)))
}
c_symbol!(hs_score_agg_deserialize, pg_finfo_hs_score_agg_deserialize => score_agg_deserialize_wrapper);

#[derive(Default)]
struct FinalSite {
    model: ModelSlot,
}

/// The PostgreSQL text of a double as a JSON number (`to_jsonb(x)->>0`), a map's category.
unsafe fn float_category(v: f64) -> String {
    let num =
        pg_sys::DirectFunctionCall1Coll(Some(super::builtins::float8_numeric), pg_sys::InvalidOid, float8_datum(v));
    numeric_text(num.cast_mut_ptr())
}

#[pgrx::pg_extern(sql = false)]
unsafe fn score_agg_final(state: pgrx::Internal, fcinfo: pg_sys::FunctionCallInfo) -> Option<f64> {
    let state = state.get::<AggState>()?;
    let model_arg = state.model.as_ref()?;
    raising(|| score_final(state, model_arg, fcinfo))
}
c_symbol!(hs_score_agg_final, pg_finfo_hs_score_agg_final => score_agg_final_wrapper);

/// The score of a group's collected object under its model.
unsafe fn score_final(
    state: &AggState,
    model_arg: &AggModel,
    fcinfo: pg_sys::FunctionCallInfo,
) -> Result<Option<f64>, Error> {
    let mut by_key: HashMap<&str, &Stored> = HashMap::with_capacity(state.entries.len());
    for (key, value) in &state.entries {
        if by_key.insert(key.as_str(), value).is_some() {
            return Err(Error::InvalidArgument {
                message: format!("score_agg: input key \"{key}\" appears more than once in a group"),
                hint: Some("each (group, input_key) must have one row; aggregate the metric first, for example with max() or sum() in a subquery".into()),
            });
        }
    }
    let site: &mut FinalSite = call_site(fcinfo);
    let compiled = match model_arg {
        AggModel::Inline(bytes) => site.model.get(fcinfo, 0, ModelArg::Inline(pg_sys::Datum::from(bytes.as_ptr())))?,
        AggModel::Named(name) => site.model.get(fcinfo, 0, ModelArg::Named(name))?,
    };
    let model = &compiled.model;
    let values: Vec<Value<'_>> = model
        .inputs
        .iter()
        .map(|slot| match by_key.get(slot.key.as_str()) {
            None | Some(Stored::Missing) => Value::Missing,
            Some(Stored::Number(v, t)) => Value::Number { value: *v, text: Some(Cow::Borrowed(t.as_str())) },
            Some(Stored::Float(v)) => Value::Number {
                value: *v,
                text: if slot.categorical { Some(Cow::Owned(float_category(*v))) } else { None },
            },
            Some(Stored::Text(s)) => Value::Text(Cow::Borrowed(s.as_str())),
            Some(Stored::Bool(b)) => Value::Bool(*b),
            Some(Stored::Structured(s)) => Value::Structured(Cow::Borrowed(s.as_str())),
        })
        .collect();
    // the summary path, as score() takes: the same input gives score()'s double to the bit
    Ok(model.evaluate_into::<false>(&values, &mut Scratch::default())?.score)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/score_agg.rs");
}
