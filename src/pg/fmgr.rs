//! The fmgr layer: how the library's C functions meet PostgreSQL's function manager. The V1
//! declaration macro (every function runs under pgrx's guard and returns `Result<Datum,
//! Error>`), argument access by position, NULL results, varlena and text access, bytea,
//! aggregate contexts and partial states, result datums and tuple descriptors, and the
//! PostgreSQL functions called directly. The concept modules use these, never `fcinfo`'s
//! fields themselves; `signatures.rs` lists the SQL declaration each function reads.

use pgrx::pg_sys;

use crate::core::Error;

/// Declares a version-1 C function: its info record, and a body that runs under pgrx's guard
/// (a Rust panic becomes an ERROR, never a crash) and returns `Result<Datum, Error>`.
macro_rules! v1_function {
    ($name:ident, $finfo:ident, |$fcinfo:ident| $body:block) => {
        $crate::pg::finfo_v1!($finfo);

        #[unsafe(no_mangle)]
        #[doc(hidden)]
        #[allow(clippy::missing_safety_doc)]
        pub unsafe extern "C-unwind" fn $name($fcinfo: ::pgrx::pg_sys::FunctionCallInfo) -> ::pgrx::pg_sys::Datum {
            unsafe {
                ::pgrx::pg_sys::submodules::panic::pgrx_extern_c_guard(|| {
                    // a closure so that `?` in the body returns here, to be raised as an error
                    #[allow(unused_unsafe, clippy::redundant_closure_call)]
                    let result: ::std::result::Result<::pgrx::pg_sys::Datum, $crate::core::Error> =
                        (|| unsafe { $body })();
                    match result {
                        Ok(datum) => datum,
                        Err(e) => $crate::pg::raise(&e),
                    }
                })
            }
        }
    };
}
pub(crate) use v1_function;

/// The info record PostgreSQL looks up beside a C symbol: the function uses calling convention 1.
macro_rules! finfo_v1 {
    ($finfo:ident) => {
        #[unsafe(no_mangle)]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
            const V1: ::pgrx::pg_sys::Pg_finfo_record = ::pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}
pub(crate) use finfo_v1;

mod expanded;
mod pg_extern;
pub use expanded::*;
pub use pg_extern::*;

/// Declares the combine, serialize and deserialize functions of an internal-state aggregate
/// whose state type has `combine(&mut self, &Self) -> Result<(), Error>`, `to_bytes(&self) ->
/// Result<Vec<u8>, Error>` and `from_bytes(&[u8]) -> Option<Self>`; `$kind` is its
/// `core::bytes::StateKind` (the serialized states share one header), `$aggregate` names it in
/// errors. Each is a `#[pg_extern]` function `$fn` whose wrapper `$wrapper` is exported as the
/// C symbol `$symbol` (`c_symbol!`).
macro_rules! partial_state_functions {
    ($state:ty, $kind:expr, $aggregate:literal,
     combine: $combine:ident => $combine_wrapper:ident as $combine_symbol:ident, $combine_finfo:ident,
     serialize: $serialize:ident => $serialize_wrapper:ident as $serialize_symbol:ident, $serialize_finfo:ident,
     deserialize: $deserialize:ident => $deserialize_wrapper:ident as $deserialize_symbol:ident, $deserialize_finfo:ident) => {
        #[::pgrx::pg_extern(sql = false)]
        unsafe fn $combine(
            state: ::pgrx::Internal,
            other: ::pgrx::Internal,
            fcinfo: ::pgrx::pg_sys::FunctionCallInfo,
        ) -> ::pgrx::Internal {
            $crate::pg::raising(|| {
                let state = $crate::pg::aggregate_state_in::<$state>(fcinfo, state, $aggregate)?;
                if let Some(other) = other.get::<$state>() {
                    (*state).combine(other)?;
                }
                Ok(::pgrx::Internal::from(Some(::pgrx::pg_sys::Datum::from(state))))
            })
        }
        $crate::pg::c_symbol!($combine_symbol, $combine_finfo => $combine_wrapper);

        #[::pgrx::pg_extern(sql = false)]
        unsafe fn $serialize(mut state: ::pgrx::Internal) -> $crate::pg::BuiltDatum {
            $crate::pg::raising(|| {
                let bytes = match state.get_mut::<$state>() {
                    Some(state) => state.to_bytes()?,
                    None => <$state>::default().to_bytes()?,
                };
                Ok($crate::pg::BuiltDatum($crate::pg::state_datum($kind, &bytes)))
            })
        }
        $crate::pg::c_symbol!($serialize_symbol, $serialize_finfo => $serialize_wrapper);

        #[::pgrx::pg_extern(sql = false)]
        fn $deserialize(bytes: &[u8], _unused: ::pgrx::Internal) -> ::pgrx::Internal {
            $crate::pg::raising(|| {
                let payload = $crate::core::bytes::state_payload(bytes, $kind);
                let state = payload.and_then(<$state>::from_bytes).ok_or_else(|| $crate::core::Error::InvalidArgument {
                    message: concat!($aggregate, ": corrupt serialized state, or no memory to read it into").into(),
                    hint: None,
                })?;
                // lives in the current (per-call) context, from which combine copies
                let state = ::pgrx::PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state);
                Ok(::pgrx::Internal::from(Some(::pgrx::pg_sys::Datum::from(state))))
            })
        }
        $crate::pg::c_symbol!($deserialize_symbol, $deserialize_finfo => $deserialize_wrapper);
    };
}
pub(crate) use partial_state_functions;

/// The call site's cache in `fn_extra`, created on first use and dropped with the
/// function's memory context (at the end of the statement's execution).
///
/// # Safety
/// `fcinfo` must be a valid call whose `fn_extra` only this code uses, always with type `T`.
#[inline]
pub unsafe fn call_site<T: Default>(fcinfo: pg_sys::FunctionCallInfo) -> &'static mut T {
    let flinfo = (*fcinfo).flinfo;
    if (*flinfo).fn_extra.is_null() {
        let ptr = pgrx::PgMemoryContexts::For((*flinfo).fn_mcxt).leak_and_drop_on_delete(T::default());
        (*flinfo).fn_extra = ptr.cast();
    }
    &mut *((*flinfo).fn_extra as *mut T)
}

/// Argument `n` of a call, None when it is NULL.
///
/// # Safety
/// `fcinfo` must be a valid call with more than `n` arguments.
#[inline(always)]
pub unsafe fn arg(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<pg_sys::Datum> {
    if pgrx::fcinfo::pg_arg_is_null(fcinfo, n) {
        None
    } else {
        Some(pgrx::fcinfo::pg_getarg_datum_raw(fcinfo, n))
    }
}

/// Marks the call's result NULL and returns the datum to hand back.
///
/// # Safety
/// `fcinfo` must be a valid call.
pub unsafe fn return_null(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    (*fcinfo).isnull = true;
    pg_sys::Datum::from(0usize)
}

/// A varlena datum with a plain 4-byte header, detoasted only when it is not one already
/// (`PG_DETOAST_DATUM`, without the call on the common path).
///
/// # Safety
/// `datum` must be a varlena datum (of any header form).
pub unsafe fn detoast(datum: pg_sys::Datum) -> *mut pg_sys::varlena {
    let p = datum.cast_mut_ptr::<pg_sys::varlena>();
    if *(p as *const u8) & 0x03 == 0 {
        p
    } else {
        pg_sys::pg_detoast_datum(p)
    }
}

/// A varlena datum detoasted as `PG_DETOAST_DATUM_PACKED` does (short headers kept), calling
/// into PostgreSQL only when the value is compressed or stored out of line.
///
/// # Safety
/// `datum` must be a varlena datum (of any header form).
#[inline(always)]
pub unsafe fn detoast_packed(datum: pg_sys::Datum) -> *mut pg_sys::varlena {
    let p = datum.cast_mut_ptr::<pg_sys::varlena>();
    let first = *(p as *const u8);
    let external = first == 0x01;
    let compressed = first & 0x03 == 0x02;
    if external || compressed {
        pg_sys::pg_detoast_datum_packed(p)
    } else {
        p
    }
}

/// A text datum's contents (detoasted into the current memory context).
///
/// # Safety
/// `datum` must be a `text` (or other varlena string) datum; the result borrows from it or
/// from its detoasted copy, so it must not outlive the current memory context.
pub unsafe fn text_arg<'a>(datum: pg_sys::Datum) -> std::borrow::Cow<'a, str> {
    let v = detoast_packed(datum);
    let (data, len) = varlena_bytes(v as *const u8);
    utf8(std::slice::from_raw_parts(data, len))
}

/// Text from the database's bytes: borrowed when valid UTF-8 (the usual case, checked with
/// the fast validator), else a lossy copy.
#[inline(always)]
pub fn utf8(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    use std::sync::atomic::{AtomicU8, Ordering};
    // 0: not known yet, 1: UTF8, 2: another encoding. A plain static, not a thread-local:
    // thread-local access from a shared library costs a call per row.
    static DATABASE_ENCODING: AtomicU8 = AtomicU8::new(0);
    let mut known = DATABASE_ENCODING.load(Ordering::Relaxed);
    if known == 0 {
        let is_utf8 = unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32 };
        known = if is_utf8 { 1 } else { 2 };
        DATABASE_ENCODING.store(known, Ordering::Relaxed);
    }
    if known == 1 {
        // SAFETY: PostgreSQL validates the encoding of every text value it stores or builds in
        // a UTF8 database, so these bytes are valid UTF-8.
        return std::borrow::Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// (data, length) of an uncompressed varlena with a 1- or 4-byte header.
///
/// # Safety
/// `p` must point at a varlena that is neither compressed nor stored out of line.
#[inline(always)]
pub unsafe fn varlena_bytes(p: *const u8) -> (*const u8, usize) {
    let v = p as *const pg_sys::varlena;
    (pgrx::varlena::vardata_any(v) as *const u8, pgrx::varlena::varsize_any_exhdr(v))
}

/// A `bytea` datum (4-byte header) holding `parts` one after the other, in the current memory
/// context.
pub fn bytea_datum(parts: &[&[u8]]) -> pg_sys::Datum {
    let total = parts.iter().map(|p| p.len()).sum::<usize>() + pg_sys::VARHDRSZ;
    unsafe {
        let out = pg_sys::palloc(total) as *mut u8;
        pgrx::varlena::set_varsize_4b(out as *mut pg_sys::varlena, total as i32);
        let mut at = out.add(pg_sys::VARHDRSZ);
        for part in parts {
            std::ptr::copy_nonoverlapping(part.as_ptr(), at, part.len());
            at = at.add(part.len());
        }
        pg_sys::Datum::from(out)
    }
}

/// A new `bytea` of `len` zero bytes in the current memory context, and its contents to fill.
///
/// # Safety
/// Must be called inside a PostgreSQL backend; the slice lives as long as the current memory
/// context.
pub unsafe fn new_bytea<'a>(len: usize) -> (pg_sys::Datum, &'a mut [u8]) {
    let total = len + pg_sys::VARHDRSZ;
    let out = pg_sys::palloc0(total) as *mut u8;
    pgrx::varlena::set_varsize_4b(out as *mut pg_sys::varlena, total as i32);
    (pg_sys::Datum::from(out), std::slice::from_raw_parts_mut(out.add(pg_sys::VARHDRSZ), len))
}

/// A `bytea` aggregate state that this call may change in place: the datum itself when it is
/// a plain varlena with a 4-byte header (a state the aggregate keeps in its own memory), else
/// a detoasted copy in the current memory context (which the aggregate then keeps instead);
/// with its contents.
///
/// # Safety
/// `d` must be a `bytea` datum that belongs to the aggregate calling (its transition value,
/// never an argument of the query).
pub unsafe fn bytea_state_mut<'a>(d: pg_sys::Datum) -> (pg_sys::Datum, &'a mut [u8]) {
    let v = detoast(d);
    let len = pgrx::varlena::varsize_any_exhdr(v);
    (pg_sys::Datum::from(v), std::slice::from_raw_parts_mut(pgrx::varlena::vardata_any(v) as *mut u8, len))
}

/// The contents of a `bytea` datum (detoasted into the current memory context).
///
/// # Safety
/// `d` must be a `bytea` datum; the slice lives as long as the current memory context.
pub unsafe fn bytea_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    pgrx::varlena::varlena_to_byte_slice(pg_sys::pg_detoast_datum(d.cast_mut_ptr()))
}

/// An aggregate's serialized partial state: the shared header (`core::bytes::StateHeader`:
/// format version and state kind) and the state's own bytes, in one `bytea`.
pub fn state_datum(kind: crate::core::bytes::StateKind, payload: &[u8]) -> pg_sys::Datum {
    bytea_datum(&[&crate::core::bytes::state_header(kind), payload])
}

/// The state's own bytes of a serialized partial state, None when the header is not this
/// library's for `kind` (a corrupt state, or one of another format version).
///
/// # Safety
/// `d` must be a `bytea` datum; the slice lives as long as the current memory context.
pub unsafe fn state_payload<'a>(d: pg_sys::Datum, kind: crate::core::bytes::StateKind) -> Option<&'a [u8]> {
    crate::core::bytes::state_payload(bytea_bytes(d), kind)
}

/// The aggregate's memory context, or an error naming `aggregate` when the function was not
/// called as part of an aggregate.
///
/// # Safety
/// `fcinfo` must be a valid call.
pub unsafe fn aggregate_context(
    fcinfo: pg_sys::FunctionCallInfo,
    aggregate: &str,
) -> Result<pg_sys::MemoryContext, Error> {
    let mut ctx: pg_sys::MemoryContext = std::ptr::null_mut();
    if pg_sys::AggCheckCallContext(fcinfo, &mut ctx) == 0 {
        return Err(Error::InvalidArgument {
            message: format!("{aggregate} support functions can only be called by the aggregate"),
            hint: None,
        });
    }
    Ok(ctx)
}

/// `aggregate_context`'s check alone, without a call into PostgreSQL (a transition function
/// runs it on every row): an error naming `aggregate` unless an aggregate or a window
/// aggregate made the call.
///
/// # Safety
/// `fcinfo` must be a valid call.
#[inline(always)]
pub unsafe fn require_aggregate_call(fcinfo: pg_sys::FunctionCallInfo, aggregate: &str) -> Result<(), Error> {
    let context = (*fcinfo).context;
    let tag = if context.is_null() { None } else { Some((*context).type_) };
    if matches!(tag, Some(pg_sys::NodeTag::T_AggState | pg_sys::NodeTag::T_WindowAggState)) {
        return Ok(());
    }
    aggregate_context(fcinfo, aggregate).map(|_| ())
}

/// An internal-state aggregate's state in argument 0, or a new empty one owned by the
/// aggregate's memory context (and dropped with it); `aggregate` names the aggregate in the
/// error when the function was called outside one.
///
/// # Safety
/// `fcinfo` must be a valid call whose argument 0, when not NULL, is a `T` this made.
pub unsafe fn aggregate_state<T: Default>(fcinfo: pg_sys::FunctionCallInfo, aggregate: &str) -> Result<*mut T, Error> {
    aggregate_state_in(fcinfo, pgrx::Internal::from(arg(fcinfo, 0)), aggregate)
}

/// `aggregate_state` for a `#[pg_extern]` function, which has its state argument already.
///
/// # Safety
/// `fcinfo` must be a valid call; `state`, when not NULL, a `T` this made.
pub unsafe fn aggregate_state_in<T: Default>(
    fcinfo: pg_sys::FunctionCallInfo,
    mut state: pgrx::Internal,
    aggregate: &str,
) -> Result<*mut T, Error> {
    match state.get_mut::<T>() {
        Some(state) => Ok(state),
        None => {
            let ctx = aggregate_context(fcinfo, aggregate)?;
            Ok(pgrx::PgMemoryContexts::For(ctx).leak_and_drop_on_delete(T::default()))
        }
    }
}

pub fn text_datum(s: &str) -> pg_sys::Datum {
    unsafe { pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(s.as_ptr().cast(), s.len() as i32)) }
}

/// A one-dimensional `float8[]` of `values`, in the current memory context.
///
/// # Safety
/// Must be called inside a PostgreSQL backend (it allocates with `palloc`).
pub unsafe fn float8_array(values: &[f64]) -> pg_sys::Datum {
    let mut datums: Vec<pg_sys::Datum> = values.iter().map(|v| pg_sys::Datum::from(v.to_bits())).collect();
    let array = pg_sys::construct_array(
        datums.as_mut_ptr(),
        datums.len() as i32,
        pg_sys::FLOAT8OID,
        8,
        true,
        pg_sys::TYPALIGN_DOUBLE as std::ffi::c_char,
    );
    pg_sys::Datum::from(array)
}

#[inline(always)]
pub fn float8_datum(v: f64) -> pg_sys::Datum {
    pg_sys::Datum::from(v.to_bits())
}

/// The attributes of a tuple descriptor, dropped ones included. PostgreSQL 18 put an array of
/// `CompactAttribute`s first in `TupleDescData` and moved the full `FormData_pg_attribute`s
/// after it (its `TupleDescAttr` macro), so the field `attrs` of 15–17 is gone there.
///
/// # Safety
/// `desc` must be a valid tuple descriptor that outlives the returned slice.
pub unsafe fn tuple_desc_attributes<'a>(desc: pg_sys::TupleDesc) -> &'a [pg_sys::FormData_pg_attribute] {
    let natts = usize::try_from((*desc).natts).unwrap_or(0);
    #[cfg(not(feature = "pg18"))]
    let first = (*desc).attrs.as_ptr();
    #[cfg(feature = "pg18")]
    let first = (*desc).compact_attrs.as_ptr().add(natts).cast::<pg_sys::FormData_pg_attribute>();
    std::slice::from_raw_parts(first, natts)
}

/// PostgreSQL's own V1 functions called directly (pgrx's `pg_sys` versions are Rust wrappers,
/// which `DirectFunctionCall` cannot take).
pub mod builtins {
    use pgrx::pg_sys::{Datum, FunctionCallInfo};
    unsafe extern "C-unwind" {
        pub fn numeric_out(fcinfo: FunctionCallInfo) -> Datum;
        pub fn float8_numeric(fcinfo: FunctionCallInfo) -> Datum;
        pub fn jsonb_in(fcinfo: FunctionCallInfo) -> Datum;
        /// Called without pgrx's per-call guard on the per-row path: it cannot fail on a
        /// tuple PostgreSQL itself built, and the guard (a sigsetjmp) costs more than it does.
        pub fn heap_deform_tuple(
            tuple: pgrx::pg_sys::HeapTuple,
            desc: pgrx::pg_sys::TupleDesc,
            values: *mut Datum,
            isnull: *mut bool,
        );
        /// Also unguarded, for the same reason: they only read the snapshot stack's top
        /// (`GetActiveSnapshot` dereferences it, so `ActiveSnapshotSet` comes first).
        pub fn ActiveSnapshotSet() -> bool;
        pub fn GetActiveSnapshot() -> pgrx::pg_sys::Snapshot;
    }
}

/// The function's composite result type, blessed once per call site.
///
/// # Safety
/// `fcinfo` must be a valid call of a function that returns a composite type; `cached` must
/// belong to the call site (it holds a descriptor in the function's memory context).
pub unsafe fn result_desc(
    fcinfo: pg_sys::FunctionCallInfo,
    cached: &mut Option<pg_sys::TupleDesc>,
) -> pg_sys::TupleDesc {
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
