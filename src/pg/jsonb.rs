//! Reading binary JSONB without a text round trip: the model as a `Json` tree (once per
//! model), input values by key lookup (per row), numbers straight from `numeric` digits.

use std::borrow::Cow;
use std::ffi::CStr;

use pgrx::pg_sys;

use crate::core::interrupts::Ticker;
use crate::core::{limits, Fault, Json, Value};

const JB_FOBJECT: u32 = 0x2000_0000;

/// A detoasted JSONB datum's root container.
pub struct JsonbRef {
    ptr: *mut pg_sys::varlena,
}

impl JsonbRef {
    /// # Safety
    /// `datum` must be a non-null jsonb datum; the result lives in the current memory context.
    pub unsafe fn from_datum(datum: pg_sys::Datum) -> JsonbRef {
        JsonbRef { ptr: super::detoast(datum) }
    }

    /// The bytes of the whole value (header included), for comparing and fingerprinting.
    pub fn bytes(&self) -> &[u8] {
        unsafe {
            let (_, data_len) = super::varlena_bytes(self.ptr as *const u8);
            std::slice::from_raw_parts(self.ptr as *const u8, data_len + pg_sys::VARHDRSZ)
        }
    }

    fn root(&self) -> *mut pg_sys::JsonbContainer {
        unsafe { (self.ptr as *mut u8).add(pg_sys::VARHDRSZ) as *mut pg_sys::JsonbContainer }
    }

    pub fn is_object(&self) -> bool {
        unsafe { (*self.root()).header & JB_FOBJECT != 0 }
    }

    /// The value when it is a scalar (not an object or array), with its text.
    pub fn scalar<'a>(&'a self) -> Option<Value<'a>> {
        const JB_FSCALAR: u32 = 0x1000_0000;
        unsafe {
            if (*self.root()).header & JB_FSCALAR == 0 {
                return None;
            }
            let mut v = std::mem::MaybeUninit::<pg_sys::JsonbValue>::zeroed();
            if !pg_sys::JsonbExtractScalar(self.root(), v.as_mut_ptr()) {
                return None;
            }
            Some(scalar_value(&*v.as_ptr(), true))
        }
    }

    /// The whole value as a tree. Containers nested deeper than one level past
    /// `limits::MAX_JSON_DEPTH` come out empty: the tree stays shallow enough for recursion
    /// (its drop included), and `limits::check` still sees, and reports, the excess.
    pub fn to_json(&self) -> Json {
        unsafe { container_to_json(self.root()) }
    }

    /// The value as a model's tree, or the fault of a model larger than `MAX_MODEL_BYTES`.
    pub fn model_json(&self) -> Result<Json, Fault> {
        let size = self.bytes().len();
        if size > limits::MAX_MODEL_BYTES {
            return Err(Fault {
                path: "$".into(),
                message: format!(
                    "the model is {size} bytes, more than the limit of {} (16 MiB)",
                    limits::MAX_MODEL_BYTES
                ),
            });
        }
        Ok(self.to_json())
    }

    /// The value of `key` in the root object, as the scoring core reads it. `want_text` asks
    /// for numbers' own text too (for categories and `explain`).
    pub fn value<'a>(&'a self, key: &str, want_text: bool) -> Value<'a> {
        unsafe {
            let mut found = std::mem::MaybeUninit::<pg_sys::JsonbValue>::zeroed();
            let res = pg_sys::getKeyJsonValueFromContainer(
                self.root(),
                key.as_ptr() as *const std::ffi::c_char,
                key.len() as i32,
                found.as_mut_ptr(),
            );
            if res.is_null() {
                return Value::Missing;
            }
            scalar_value(&*res, want_text)
        }
    }

    /// The number at `key` then `inner` (`value -> key -> inner`), None when either is absent,
    /// is not inside an object, or is not a number.
    pub fn nested_number(&self, key: &str, inner: &str) -> Option<f64> {
        // getKeyJsonValueFromContainer reads an array's entries as an object's: only objects
        if !self.is_object() {
            return None;
        }
        unsafe {
            let outer = pg_sys::getKeyJsonValueFromContainer(
                self.root(),
                key.as_ptr() as *const std::ffi::c_char,
                key.len() as i32,
                std::ptr::null_mut(),
            );
            if outer.is_null()
                || (*outer).type_ != pg_sys::jbvType::jbvBinary
                || (*(*outer).val.binary.data).header & JB_FOBJECT == 0
            {
                return None;
            }
            let found = pg_sys::getKeyJsonValueFromContainer(
                (*outer).val.binary.data,
                inner.as_ptr() as *const std::ffi::c_char,
                inner.len() as i32,
                std::ptr::null_mut(),
            );
            if found.is_null() || (*found).type_ != pg_sys::jbvType::jbvNumeric {
                return None;
            }
            match numeric_value((*found).val.numeric, false) {
                Value::Number { value, .. } => Some(value),
                _ => None,
            }
        }
    }
}

unsafe fn text_of<'a>(s: &pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_1) -> Cow<'a, str> {
    super::utf8(std::slice::from_raw_parts(s.val as *const u8, s.len.max(0) as usize))
}

unsafe fn scalar_value<'a>(v: &pg_sys::JsonbValue, want_text: bool) -> Value<'a> {
    match v.type_ {
        pg_sys::jbvType::jbvNull => Value::Missing,
        pg_sys::jbvType::jbvBool => Value::Bool(v.val.boolean),
        pg_sys::jbvType::jbvString => Value::Text(text_of(&v.val.string)),
        pg_sys::jbvType::jbvNumeric => numeric_value(v.val.numeric, want_text),
        pg_sys::jbvType::jbvBinary => {
            let text = pg_sys::JsonbToCString(std::ptr::null_mut(), v.val.binary.data, v.val.binary.len);
            Value::Structured(Cow::Owned(CStr::from_ptr(text).to_string_lossy().into_owned()))
        }
        _ => Value::Structured(Cow::Borrowed("(unsupported jsonb value)")),
    }
}

/// A `numeric` as a core value: its double, and its text when asked for or when the number
/// does not fit a double (the text then names the value in messages).
///
/// # Safety
/// `num` must point at a valid, detoasted `numeric`.
pub unsafe fn numeric_value<'a>(num: pg_sys::Numeric, want_text: bool) -> Value<'a> {
    match numeric_to_f64_fast(num) {
        Some(value) if !want_text => Value::Number { value, text: None },
        fast => {
            let text = numeric_text(num);
            let value = fast.unwrap_or_else(|| text.parse::<f64>().unwrap_or(f64::NAN));
            Value::Number { value, text: Some(Cow::Owned(text)) }
        }
    }
}

/// `numeric_out` of a numeric.
///
/// # Safety
/// `num` must point at a valid, detoasted `numeric`.
pub unsafe fn numeric_text(num: pg_sys::Numeric) -> String {
    let d = pg_sys::DirectFunctionCall1Coll(
        Some(super::builtins::numeric_out),
        pg_sys::InvalidOid,
        pg_sys::Datum::from(num),
    );
    let cstr = d.cast_mut_ptr::<std::ffi::c_char>();
    let s = CStr::from_ptr(cstr).to_string_lossy().into_owned();
    pg_sys::pfree(cstr.cast());
    s
}

/// Exact double of a numeric when Clinger's fast path applies (a mantissa of at most 2^53
/// and a power of ten of at most 22), which covers the numbers real inputs carry; the result
/// equals what parsing its text would give. None otherwise (the caller parses the text).
///
/// The layout is PostgreSQL's on-disk numeric format (stable across releases, pg_upgrade
/// relies on it): a uint16 header, for the long form an int16 weight, then base-10000 digits.
///
/// # Safety
/// `num` must point at a valid, detoasted `numeric`.
pub unsafe fn numeric_to_f64_fast(num: pg_sys::Numeric) -> Option<f64> {
    const SIGN_MASK: u16 = 0xC000;
    const SHORT: u16 = 0x8000;
    const NEG: u16 = 0x4000;
    let (data, len) = super::varlena_bytes(num as *const u8);
    if len < 2 {
        return None;
    }
    let header = u16::from_ne_bytes([*data, *data.add(1)]);
    let (negative, weight, digits_at) = match header & SIGN_MASK {
        SHORT => {
            let negative = header & 0x2000 != 0;
            let mut weight = (header & 0x003F) as i32;
            if header & 0x0040 != 0 {
                weight |= !0x3F;
            }
            (negative, weight, 2usize)
        }
        0x0000 | NEG => {
            if len < 4 {
                return None;
            }
            let weight = i16::from_ne_bytes([*data.add(2), *data.add(3)]) as i32;
            (header & SIGN_MASK == NEG, weight, 4usize)
        }
        _ => return None, // NaN and infinities (not in JSONB)
    };
    let ndigits = (len - digits_at) / 2;
    if ndigits == 0 {
        return Some(0.0);
    }
    if ndigits > 4 {
        return None;
    }
    let mut mantissa: u64 = 0;
    for i in 0..ndigits {
        let at = digits_at + 2 * i;
        let d = i16::from_ne_bytes([*data.add(at), *data.add(at + 1)]);
        mantissa = mantissa * 10_000 + d as u64;
    }
    let mut exp10 = 4 * (weight - (ndigits as i32 - 1));
    while mantissa != 0 && mantissa.is_multiple_of(10) && exp10 < 0 {
        mantissa /= 10;
        exp10 += 1;
    }
    if mantissa > (1u64 << 53) {
        return None;
    }
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ];
    let m = mantissa as f64;
    let value = match exp10 {
        0..=22 => m * POW10[exp10 as usize],
        -22..=-1 => m / POW10[(-exp10) as usize],
        _ => return None,
    };
    Some(if negative { -value } else { value })
}

unsafe fn container_to_json(container: *mut pg_sys::JsonbContainer) -> Json {
    enum Frame {
        Array(Vec<Json>, bool),
        Object(Vec<(String, Json)>, Option<String>),
    }
    fn attach(stack: &mut [Frame], root: &mut Option<Json>, value: Json) {
        match stack.last_mut() {
            Some(Frame::Array(items, _)) => items.push(value),
            Some(Frame::Object(members, key)) => {
                let k = key.take().unwrap_or_default();
                members.push((k, value));
            }
            None => *root = Some(value),
        }
    }
    let mut it = pg_sys::JsonbIteratorInit(container);
    let mut v = std::mem::MaybeUninit::<pg_sys::JsonbValue>::zeroed().assume_init();
    let mut stack: Vec<Frame> = Vec::new();
    let mut root = None;
    // nesting below the deepest container kept: skipped, to its end
    let mut skipped_depth = 0usize;
    let mut ticker = Ticker::default();
    loop {
        ticker.tick();
        let token = pg_sys::JsonbIteratorNext(&mut it, &mut v, false);
        if skipped_depth > 0 {
            match token {
                pg_sys::JsonbIteratorToken::WJB_BEGIN_ARRAY | pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT => {
                    skipped_depth += 1
                }
                pg_sys::JsonbIteratorToken::WJB_END_ARRAY | pg_sys::JsonbIteratorToken::WJB_END_OBJECT => {
                    skipped_depth -= 1
                }
                pg_sys::JsonbIteratorToken::WJB_DONE => break,
                _ => {}
            }
            if skipped_depth == 0 {
                // the skipped container's own end: it stays in the tree, empty
                let empty = match token {
                    pg_sys::JsonbIteratorToken::WJB_END_OBJECT => Json::Object(Vec::new()),
                    _ => Json::Array(Vec::new()),
                };
                attach(&mut stack, &mut root, empty);
            }
            continue;
        } else if stack.len() > limits::MAX_JSON_DEPTH
            && matches!(
                token,
                pg_sys::JsonbIteratorToken::WJB_BEGIN_ARRAY | pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT
            )
        {
            skipped_depth = 1;
            continue;
        }
        match token {
            pg_sys::JsonbIteratorToken::WJB_DONE => break,
            pg_sys::JsonbIteratorToken::WJB_BEGIN_ARRAY => stack.push(Frame::Array(Vec::new(), v.val.array.rawScalar)),
            pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT => stack.push(Frame::Object(Vec::new(), None)),
            pg_sys::JsonbIteratorToken::WJB_KEY => {
                if let Some(Frame::Object(_, key)) = stack.last_mut() {
                    *key = Some(text_of(&v.val.string).into_owned());
                }
            }
            pg_sys::JsonbIteratorToken::WJB_VALUE | pg_sys::JsonbIteratorToken::WJB_ELEM => {
                let value = scalar_json(&v);
                attach(&mut stack, &mut root, value);
            }
            pg_sys::JsonbIteratorToken::WJB_END_ARRAY | pg_sys::JsonbIteratorToken::WJB_END_OBJECT => {
                let value = match stack.pop() {
                    Some(Frame::Array(mut items, true)) if items.len() == 1 => items.remove(0),
                    Some(Frame::Array(items, _)) => Json::Array(items),
                    Some(Frame::Object(members, _)) => Json::Object(members),
                    None => Json::Null,
                };
                attach(&mut stack, &mut root, value);
            }
            _ => {}
        }
    }
    root.unwrap_or(Json::Null)
}

unsafe fn scalar_json(v: &pg_sys::JsonbValue) -> Json {
    match v.type_ {
        pg_sys::jbvType::jbvBool => Json::Bool(v.val.boolean),
        pg_sys::jbvType::jbvString => Json::String(text_of(&v.val.string).into_owned()),
        pg_sys::jbvType::jbvNumeric => match numeric_value(v.val.numeric, false) {
            Value::Number { value, .. } => Json::Number(if value.is_nan() { f64::INFINITY } else { value }),
            _ => Json::Null,
        },
        _ => Json::Null,
    }
}
