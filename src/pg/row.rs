//! Reading a table row (`record`) as model inputs: columns by name, planned once per row type
//! and model at each call site, then deformed per row without any text round trip.

use std::borrow::Cow;
use std::ffi::CStr;
use std::rc::Rc;

use pgrx::pg_sys;

use crate::core::{Error, Model, Value};

use super::models::Compiled;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    /// text, varchar: the value's own bytes
    TextLike,
    /// char(n): its bytes without the padding, as `col::text` gives them
    Bpchar,
    Bool,
    /// anything else: only its text output (a category)
    Other,
}

struct Column {
    /// The field's position in the row (or among the call's column arguments).
    attno: usize,
    kind: Kind,
    output_fn: pg_sys::Oid,
    categorical: bool,
}

fn kind_of(base_type: pg_sys::Oid) -> Kind {
    match base_type {
        pg_sys::INT2OID => Kind::Int2,
        pg_sys::INT4OID => Kind::Int4,
        pg_sys::INT8OID => Kind::Int8,
        pg_sys::FLOAT4OID => Kind::Float4,
        pg_sys::FLOAT8OID => Kind::Float8,
        pg_sys::NUMERICOID => Kind::Numeric,
        pg_sys::TEXTOID | pg_sys::VARCHAROID => Kind::TextLike,
        pg_sys::BPCHAROID => Kind::Bpchar,
        pg_sys::BOOLOID => Kind::Bool,
        _ => Kind::Other,
    }
}

fn is_numeric(kind: Kind) -> bool {
    matches!(kind, Kind::Int2 | Kind::Int4 | Kind::Int8 | Kind::Float4 | Kind::Float8 | Kind::Numeric)
}

/// What keeps a relation's rows from being scored, all of it: the inputs with no column of
/// their name, and the numeric inputs whose column is of another type (with that type).
///
/// # Safety
/// Must run inside a call (it reads the catalogs).
pub unsafe fn source_problems(
    model: &Model,
    columns: &[(String, pg_sys::Oid)],
) -> (Vec<String>, Vec<(String, String)>) {
    let (mut missing, mut mismatched) = (Vec::new(), Vec::new());
    for slot in &model.inputs {
        match columns.iter().find(|(name, _)| *name == slot.key) {
            None => missing.push(slot.key.clone()),
            Some((_, typid)) if slot.numeric && !is_numeric(kind_of(pg_sys::getBaseType(*typid))) => {
                mismatched.push((slot.key.clone(), type_name(*typid)))
            }
            Some(_) => {}
        }
    }
    (missing, mismatched)
}

unsafe fn type_name(typid: pg_sys::Oid) -> String {
    // none under Citus, where a worker knows no coordinator OID (src/pg/row_support.rs)
    if typid == pg_sys::InvalidOid {
        return "a table's row".into();
    }
    // "???" for an oid that names no type (a hand-typed call of an internal function)
    let name = pg_sys::format_type_extended(typid, -1, pg_sys::FORMAT_TYPE_ALLOW_INVALID as pg_sys::bits16);
    CStr::from_ptr(name).to_string_lossy().into_owned()
}

/// Where each of a model's inputs is among a row's fields, and how to read it.
pub struct ColumnPlan {
    model: Rc<Compiled>,
    columns: Vec<Column>,
}

/// One field a row offers: its position, name and type.
pub struct Field {
    pub position: usize,
    pub name: String,
    pub typid: pg_sys::Oid,
}

impl ColumnPlan {
    /// # Safety
    /// Must run inside a call (it reads the catalogs).
    pub unsafe fn new(compiled: Rc<Compiled>, fields: &[Field], row_type: pg_sys::Oid) -> Result<ColumnPlan, Error> {
        let model: &Model = &compiled.model;
        let mut columns = Vec::with_capacity(model.inputs.len());
        for slot in &model.inputs {
            let Some(field) = fields.iter().find(|f| f.name == slot.key) else {
                return Err(Error::UndefinedColumn { input: slot.key.clone(), row_type: type_name(row_type) });
            };
            let kind = kind_of(pg_sys::getBaseType(field.typid));
            if slot.numeric && !is_numeric(kind) {
                return Err(Error::DatatypeMismatch {
                    input: slot.key.clone(),
                    column_type: type_name(field.typid),
                    wanted: "a numeric type (smallint, integer, bigint, numeric, real or double precision)".into(),
                });
            }
            let mut output_fn = pg_sys::InvalidOid;
            let mut is_varlena = false;
            pg_sys::getTypeOutputInfo(field.typid, &mut output_fn, &mut is_varlena);
            columns.push(Column { attno: field.position, kind, output_fn, categorical: slot.categorical });
        }
        Ok(ColumnPlan { model: compiled, columns })
    }

    pub fn is_for(&self, compiled: &Rc<Compiled>) -> bool {
        Rc::ptr_eq(&self.model, compiled)
    }

    /// Appends the model's input values to `out`; `field(i)` is the datum at position `i`, None
    /// when NULL. `want_text` asks for every value's text (for `explain`); categories always
    /// get theirs. The values borrow from the datums, which live in the current memory context.
    /// Returns whether any value owns memory (a text output); when none does, dropping them is
    /// a no-op the caller may skip.
    ///
    /// # Safety
    /// The datums must be of the types the plan was made for.
    #[inline]
    pub unsafe fn read_into<'a>(
        &self,
        field: impl Fn(usize) -> Option<pg_sys::Datum>,
        want_text: bool,
        out: &mut Vec<Value<'a>>,
    ) -> bool {
        let n = self.columns.len();
        out.reserve(n);
        let start = out.len();
        let slots = out.as_mut_ptr().add(start);
        let mut owns = false;
        for (i, c) in self.columns.iter().enumerate() {
            match field(c.attno) {
                None => slots.add(i).write(Value::Missing),
                Some(d) => owns |= read_column(slots.add(i), c, d, want_text || c.categorical),
            }
        }
        out.set_len(start + n);
        owns
    }
}

/// How to read one row type (a composite datum) for one model.
pub struct RowPlan {
    columns: ColumnPlan,
    typid: pg_sys::Oid,
    typmod: i32,
    tupdesc: pg_sys::TupleDesc,
    datums: Vec<pg_sys::Datum>,
    nulls: Vec<bool>,
}

impl RowPlan {
    /// # Safety
    /// Must run inside a call; allocates the tuple descriptor copy in `mcxt`.
    pub unsafe fn new(
        compiled: Rc<Compiled>,
        typid: pg_sys::Oid,
        typmod: i32,
        mcxt: pg_sys::MemoryContext,
    ) -> Result<RowPlan, Error> {
        let cached = pg_sys::lookup_rowtype_tupdesc(typid, typmod);
        let old = pg_sys::MemoryContextSwitchTo(mcxt);
        let tupdesc = pg_sys::CreateTupleDescCopy(cached);
        pg_sys::MemoryContextSwitchTo(old);
        pg_sys::DecrTupleDescRefCount(cached);
        let natts = (*tupdesc).natts as usize;
        let fields: Vec<Field> = super::tuple_desc_attributes(tupdesc)
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.attisdropped)
            .map(|(position, a)| Field {
                position,
                name: CStr::from_ptr(a.attname.data.as_ptr()).to_string_lossy().into_owned(),
                typid: a.atttypid,
            })
            .collect();
        Ok(RowPlan {
            columns: ColumnPlan::new(compiled, &fields, typid)?,
            typid,
            typmod,
            tupdesc,
            datums: vec![pg_sys::Datum::from(0usize); natts],
            nulls: vec![true; natts],
        })
    }

    pub fn fits(&self, compiled: &Rc<Compiled>, typid: pg_sys::Oid, typmod: i32) -> bool {
        self.columns.is_for(compiled) && self.typid == typid && self.typmod == typmod
    }

    /// Appends the model's input values from one row to `out` (see `ColumnPlan::read_into`).
    ///
    /// # Safety
    /// `header` must be a detoasted row of the planned type.
    pub unsafe fn read_into<'a>(
        &mut self,
        header: pg_sys::HeapTupleHeader,
        want_text: bool,
        out: &mut Vec<Value<'a>>,
    ) -> bool {
        let mut tuple: pg_sys::HeapTupleData = std::mem::zeroed();
        tuple.t_len = super::varlena_bytes(header as *const u8).1 as u32 + 4;
        tuple.t_data = header;
        super::builtins::heap_deform_tuple(&mut tuple, self.tupdesc, self.datums.as_mut_ptr(), self.nulls.as_mut_ptr());
        let (datums, nulls) = (&self.datums, &self.nulls);
        self.columns.read_into(|i| (!nulls[i]).then(|| datums[i]), want_text, out)
    }
}

unsafe fn output_text<'a>(c: &Column, d: pg_sys::Datum) -> Cow<'a, str> {
    let s = pg_sys::OidOutputFunctionCall(c.output_fn, d);
    let text = CStr::from_ptr(s).to_string_lossy().into_owned();
    pg_sys::pfree(s.cast());
    Cow::Owned(text)
}

/// Writes one column's value to `dst`; returns whether it owns memory.
#[inline(always)]
unsafe fn read_column<'a>(dst: *mut Value<'a>, c: &Column, d: pg_sys::Datum, want_text: bool) -> bool {
    // Each arm writes its value straight to `dst`: a value built in one place and moved to
    // another costs a store-forwarding stall per column on this per-row path.
    let number = |value: f64| {
        if want_text {
            dst.write(Value::Number { value, text: Some(output_text(c, d)) });
        } else {
            dst.write(Value::Number { value, text: None });
        }
        want_text
    };
    match c.kind {
        Kind::Int2 => number(d.value() as i16 as f64),
        Kind::Int4 => number(d.value() as i32 as f64),
        Kind::Int8 => number(d.value() as i64 as f64),
        Kind::Float4 => number(f32::from_bits(d.value() as u32) as f64),
        Kind::Float8 => number(f64::from_bits(d.value() as u64)),
        Kind::Numeric => {
            let num = super::detoast_packed(d);
            let value = super::jsonb::numeric_value(num as pg_sys::Numeric, want_text);
            let owns = matches!(value, Value::Number { text: Some(Cow::Owned(_)), .. });
            dst.write(value);
            owns
        }
        Kind::TextLike | Kind::Bpchar => {
            let v = super::detoast_packed(d);
            let (data, len) = super::varlena_bytes(v as *const u8);
            let mut bytes = std::slice::from_raw_parts(data, len);
            if c.kind == Kind::Bpchar {
                while let [rest @ .., b' '] = bytes {
                    bytes = rest;
                }
            }
            let text = super::utf8(bytes);
            let owns = matches!(text, Cow::Owned(_));
            dst.write(Value::Text(text));
            owns
        }
        Kind::Bool => {
            dst.write(Value::Bool(d.value() != 0));
            false
        }
        Kind::Other => {
            dst.write(Value::Text(output_text(c, d)));
            true
        }
    }
}

/// Type id and typmod of a composite datum.
///
/// # Safety
/// `header` must be a detoasted composite datum.
pub unsafe fn row_type(header: pg_sys::HeapTupleHeader) -> (pg_sys::Oid, i32) {
    let fields = (*header).t_choice.t_datum;
    (fields.datum_typeid, fields.datum_typmod)
}
