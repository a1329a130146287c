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
    aggregate_context, arg, bytea_bytes, bytea_state_mut, c_symbol, call_site, float8_datum, new_bytea, raising,
    require_aggregate_call, return_null, state_datum, text_arg, v1_function, BuiltDatum,
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

/// The model argument as the states keep it: a tag (0 none, 1 inline, 2 named) and its bytes.
fn put_model(out: &mut Vec<u8>, model: Option<&AggModel>) {
    match model {
        None => out.push(0),
        Some(AggModel::Inline(b)) => {
            out.push(1);
            put_bytes(out, b);
        }
        Some(AggModel::Named(n)) => {
            out.push(2);
            put_bytes(out, n.as_bytes());
        }
    }
}

/// What `put_model` wrote; None when the bytes are not that.
fn read_model(r: &mut Reader<'_>) -> Option<Option<AggModel>> {
    Some(match r.u8()? {
        0 => None,
        1 => Some(AggModel::Inline(r.bytes()?.to_vec())),
        2 => Some(AggModel::Named(read_string(r)?)),
        _ => return None,
    })
}

fn serialize(state: &AggState) -> Vec<u8> {
    let mut out = Vec::new();
    put_model(&mut out, state.model.as_ref());
    out.extend_from_slice(&(state.entries.len() as u32).to_le_bytes());
    for (key, value) in &state.entries {
        put_entry(&mut out, key, value);
    }
    out
}

fn put_entry(out: &mut Vec<u8>, key: &str, value: &Stored) {
    put_bytes(out, key.as_bytes());
    match value {
        Stored::Missing => out.push(0),
        Stored::Number(v, t) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
            put_bytes(out, t.as_bytes());
        }
        Stored::Float(v) => {
            out.push(2);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Stored::Text(s) => {
            out.push(3);
            put_bytes(out, s.as_bytes());
        }
        Stored::Bool(b) => out.push(if *b { 5 } else { 4 }),
        Stored::Structured(s) => {
            out.push(6);
            put_bytes(out, s.as_bytes());
        }
    }
}

fn read_entry(r: &mut Reader<'_>) -> Option<(String, Stored)> {
    let key = read_string(r)?;
    let value = match r.u8()? {
        0 => Stored::Missing,
        1 => Stored::Number(r.f64()?, read_string(r)?),
        2 => Stored::Float(r.f64()?),
        3 => Stored::Text(read_string(r)?),
        4 => Stored::Bool(false),
        5 => Stored::Bool(true),
        6 => Stored::Structured(read_string(r)?),
        _ => return None,
    };
    Some((key, value))
}

fn read_string(r: &mut Reader<'_>) -> Option<String> {
    r.bytes().map(|b| String::from_utf8_lossy(b).into_owned())
}

fn deserialize(bytes: &[u8]) -> Option<AggState> {
    let mut r = Reader::new(bytes);
    let model = read_model(&mut r)?;
    let count = r.u32()? as usize;
    let mut entries = Vec::with_capacity(count.min(bytes.len()));
    for _ in 0..count {
        entries.push(read_entry(&mut r)?);
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

// score_agg's own state is a flat `bytea` (not internal): Citus aggregates it partially on its
// workers. After the varlena header: the state header (2 bytes), 2 zero bytes, the bytes used
// after the head (u64), the number of entries (u64), the address of the model argument last
// checked (u64: this process's own, which a merge does not take), then the model as
// `serialize` writes it (a tag, and its bytes) and the entries one after the other. The
// transition appends in place; when the buffer is full it copies it into one twice as large
// (which the aggregate keeps instead). The internal functions above serve installs of 0.1.0
// and 0.2.0 until they are updated.
const FLAT_HEAD: usize = 28;

fn corrupt() -> Error {
    Error::InvalidArgument { message: "score_agg: corrupt state".into(), hint: None }
}

fn word(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

fn set_word(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The bytes used after the head of a well-formed flat state.
fn flat_used(buf: &[u8]) -> Option<usize> {
    if buf.len() < FLAT_HEAD || buf[..2] != crate::core::bytes::state_header(StateKind::FlatScoreAgg) {
        return None;
    }
    let used = usize::try_from(word(buf, 4)).ok()?;
    (used >= 1 && used <= buf.len() - FLAT_HEAD).then_some(used)
}

/// Whether the state holds a model, and the length of its model part.
fn model_part(buf: &[u8], used: usize) -> Option<(bool, usize)> {
    let data = &buf[FLAT_HEAD..FLAT_HEAD + used];
    let mut r = Reader::new(data);
    let has = read_model(&mut r)?.is_some();
    Some((has, data.len() - r.rest().len()))
}

/// A new flat state without a model or entries, with room for `capacity` bytes after its head.
unsafe fn flat_new(capacity: usize) -> (pg_sys::Datum, &'static mut [u8]) {
    let (datum, buf) = new_bytea(FLAT_HEAD + capacity.max(1));
    buf[..2].copy_from_slice(&crate::core::bytes::state_header(StateKind::FlatScoreAgg));
    set_word(buf, 4, 1);
    (datum, buf)
}

/// The state with room for `extra` more bytes: itself, or a copy twice as large.
unsafe fn reserve(
    datum: pg_sys::Datum,
    buf: &'static mut [u8],
    extra: usize,
) -> Result<(pg_sys::Datum, &'static mut [u8]), Error> {
    let used = word(buf, 4) as usize;
    let need = FLAT_HEAD + used + extra;
    if need <= buf.len() {
        return Ok((datum, buf));
    }
    // a varlena holds at most 1 GB
    let len = need.max(2 * buf.len());
    if len > 0x3FFF_FFFF - pg_sys::VARHDRSZ {
        return Err(Error::LimitExceeded {
            message: "score_agg: a group's rows take more than 1 GB".into(),
            hint: "score smaller groups, or fewer keys per group".into(),
        });
    }
    let (bigger, into) = new_bytea(len);
    into[..FLAT_HEAD + used].copy_from_slice(&buf[..FLAT_HEAD + used]);
    Ok((bigger, into))
}

/// Appends `bytes` after the used part (room reserved).
fn append(buf: &mut [u8], bytes: &[u8]) {
    let used = word(buf, 4) as usize;
    buf[FLAT_HEAD + used..FLAT_HEAD + used + bytes.len()].copy_from_slice(bytes);
    set_word(buf, 4, (used + bytes.len()) as u64);
}

fn model_bytes(model: &AggModel) -> Vec<u8> {
    let mut out = Vec::new();
    put_model(&mut out, Some(model));
    out
}

/// The kinds of the value argument, one transition function each: Citus calls them without
/// the call's expression, so their types cannot be asked.
#[derive(Clone, Copy)]
enum ValueKind {
    Jsonb,
    Float,
    Text,
}

unsafe fn flat_step(
    fcinfo: pg_sys::FunctionCallInfo,
    model_is_jsonb: bool,
    kind: ValueKind,
) -> Result<pg_sys::Datum, Error> {
    require_aggregate_call(fcinfo, "score_agg")?;
    let (mut datum, mut buf) = match arg(fcinfo, 0) {
        Some(d) => bytea_state_mut(d),
        None => flat_new(256),
    };
    let used = flat_used(buf).ok_or_else(corrupt)?;
    // the model is taken from rows with a NULL key too: a group of only such rows scores the
    // empty object (which zero or imputed rules can still score), as the key is ignored
    if let Some(model) = arg(fcinfo, 1) {
        if model.value() as u64 != word(buf, 20) {
            let this = if model_is_jsonb {
                AggModel::Inline(JsonbRef::from_datum(model).bytes().to_vec())
            } else {
                AggModel::Named(text_arg(model).into_owned())
            };
            let encoded = model_bytes(&this);
            let (has, len) = model_part(buf, used).ok_or_else(corrupt)?;
            if !has {
                // entries come with a model: there are none to keep
                if word(buf, 12) != 0 {
                    return Err(corrupt());
                }
                set_word(buf, 4, 0);
                (datum, buf) = reserve(datum, buf, encoded.len())?;
                append(buf, &encoded);
            } else if buf[FLAT_HEAD..FLAT_HEAD + len] != encoded[..] {
                return Err(mismatch());
            }
            set_word(buf, 20, model.value() as u64);
        }
    }
    if let (Some(_), Some(key)) = (arg(fcinfo, 1), arg(fcinfo, 2)) {
        let value = match arg(fcinfo, 3) {
            None => Stored::Missing,
            Some(v) => match kind {
                ValueKind::Jsonb => stored_from_jsonb(v),
                ValueKind::Float => Stored::Float(f64::from_bits(v.value() as u64)),
                ValueKind::Text => Stored::Text(text_arg(v).into_owned()),
            },
        };
        let mut entry = Vec::new();
        put_entry(&mut entry, &text_arg(key), &value);
        (datum, buf) = reserve(datum, buf, entry.len())?;
        append(buf, &entry);
        set_word(buf, 12, word(buf, 12) + 1);
    }
    Ok(datum)
}

// _score_agg_step(state bytea, model jsonb|text, input_key text, value jsonb|float8|text) → bytea
v1_function!(hs_score_agg_step_jj, pg_finfo_hs_score_agg_step_jj, |fcinfo| {
    flat_step(fcinfo, true, ValueKind::Jsonb)
});
v1_function!(hs_score_agg_step_jf, pg_finfo_hs_score_agg_step_jf, |fcinfo| {
    flat_step(fcinfo, true, ValueKind::Float)
});
v1_function!(hs_score_agg_step_jt, pg_finfo_hs_score_agg_step_jt, |fcinfo| {
    flat_step(fcinfo, true, ValueKind::Text)
});
v1_function!(hs_score_agg_step_nj, pg_finfo_hs_score_agg_step_nj, |fcinfo| {
    flat_step(fcinfo, false, ValueKind::Jsonb)
});
v1_function!(hs_score_agg_step_nf, pg_finfo_hs_score_agg_step_nf, |fcinfo| {
    flat_step(fcinfo, false, ValueKind::Float)
});
v1_function!(hs_score_agg_step_nt, pg_finfo_hs_score_agg_step_nt, |fcinfo| {
    flat_step(fcinfo, false, ValueKind::Text)
});

// _score_agg_merge(state bytea, other bytea) → bytea
v1_function!(hs_score_agg_merge, pg_finfo_hs_score_agg_merge, |fcinfo| {
    require_aggregate_call(fcinfo, "score_agg")?;
    let (mut datum, mut buf) = match arg(fcinfo, 0) {
        Some(d) => bytea_state_mut(d),
        None => flat_new(256),
    };
    let used = flat_used(buf).ok_or_else(corrupt)?;
    let Some(other) = arg(fcinfo, 1).map(|d| bytea_bytes(d)) else { return Ok(datum) };
    let other_used = flat_used(other).ok_or_else(corrupt)?;
    let (other_has, other_len) = model_part(other, other_used).ok_or_else(corrupt)?;
    // a state without a model has no entries either
    if !other_has {
        return Ok(datum);
    }
    let other_data = &other[FLAT_HEAD..FLAT_HEAD + other_used];
    let (has, len) = model_part(buf, used).ok_or_else(corrupt)?;
    if !has {
        if word(buf, 12) != 0 {
            return Err(corrupt());
        }
        set_word(buf, 4, 0);
        (datum, buf) = reserve(datum, buf, other_used)?;
        append(buf, other_data);
    } else {
        if buf[FLAT_HEAD..FLAT_HEAD + len] != other_data[..other_len] {
            return Err(mismatch());
        }
        (datum, buf) = reserve(datum, buf, other_used - other_len)?;
        append(buf, &other_data[other_len..]);
    }
    set_word(buf, 12, word(buf, 12) + word(other, 12));
    Ok(datum)
});

/// The state a flat one holds; None unless it is well-formed to its last byte.
fn flat_state(buf: &[u8]) -> Option<AggState> {
    let used = flat_used(buf)?;
    let mut r = Reader::new(&buf[FLAT_HEAD..FLAT_HEAD + used]);
    let model = read_model(&mut r)?;
    let count = usize::try_from(word(buf, 12)).ok()?;
    let mut entries = Vec::with_capacity(count.min(used));
    for _ in 0..count {
        entries.push(read_entry(&mut r)?);
    }
    r.rest().is_empty().then_some(AggState { model, model_seen_at: 0, entries })
}

// _score_agg_result(state bytea) → float8
v1_function!(hs_score_agg_result, pg_finfo_hs_score_agg_result, |fcinfo| {
    let Some(d) = arg(fcinfo, 0) else { return Ok(return_null(fcinfo)) };
    let state = flat_state(bytea_bytes(d)).ok_or_else(corrupt)?;
    let Some(model) = state.model.as_ref() else { return Ok(return_null(fcinfo)) };
    Ok(match score_final(&state, model, fcinfo)? {
        Some(score) => float8_datum(score),
        None => return_null(fcinfo),
    })
});

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
