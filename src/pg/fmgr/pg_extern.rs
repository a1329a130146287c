//! The functions that run once per statement, group or worker (validation, the aggregates'
//! final, combine, serialize and deserialize functions, the fit helpers, model references)
//! are `#[pg_extern(sql = false)]` functions: pgrx converts their arguments and results. Their
//! SQL declarations stay in `sql/`, naming the C symbols the install scripts have always named;
//! `c_symbol!` exports each of those for pgrx's wrapper. The per-row paths keep `v1_function!`,
//! where reading the arguments in place is measured to matter (docs/performance.md).

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::nullable::Nullable;
use pgrx::pg_sys;

use crate::core::Error;

use super::super::jsonb::JsonbRef;

/// Exports `$symbol`, the C symbol an SQL declaration (and the frozen install scripts) name,
/// for `$wrapper`, the function pgrx's `#[pg_extern(sql = false)]` generated: one more call,
/// once per statement.
macro_rules! c_symbol {
    ($symbol:ident, $finfo:ident => $wrapper:ident) => {
        $crate::pg::finfo_v1!($finfo);

        #[unsafe(no_mangle)]
        #[doc(hidden)]
        #[allow(clippy::missing_safety_doc)]
        pub unsafe extern "C-unwind" fn $symbol(fcinfo: ::pgrx::pg_sys::FunctionCallInfo) -> ::pgrx::pg_sys::Datum {
            unsafe { $wrapper(fcinfo) }
        }
    };
}
pub(crate) use c_symbol;

/// The value of `f`, or its error raised with its SQLSTATE, detail and hint (pgrx would raise
/// an `Err` as 22000 with the message alone).
pub fn raising<T>(f: impl FnOnce() -> Result<T, Error>) -> T {
    f().unwrap_or_else(|e| super::super::raise(&e))
}

/// A `jsonb` argument, handed over as the datum and read in place with `JsonbRef`: pgrx's
/// `JsonB` goes through text and serde_json, which refuse numbers that jsonb holds (1e400) and
/// would change the error a model gets.
pub struct JsonbArg(pg_sys::Datum);

impl JsonbArg {
    /// # Safety
    /// The datum must still be valid: use it within the call it was passed to.
    pub unsafe fn read(&self) -> JsonbRef {
        JsonbRef::from_datum(self.0)
    }
}

impl pgrx::FromDatum for JsonbArg {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        (!is_null).then_some(JsonbArg(datum))
    }
}

pgrx::impl_sql_translatable!(JsonbArg, arg_only = "jsonb");

/// A `text` argument as `text_arg` reads it (invalid UTF-8, possible in a database of another
/// encoding, read lossily): pgrx's `&str` and `String` panic on it.
pub struct TextArg(pub String);

impl pgrx::FromDatum for TextArg {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        (!is_null).then(|| TextArg(super::text_arg(datum).into_owned()))
    }
}

pgrx::impl_sql_translatable!(TextArg, arg_only = "text");

/// pgrx unboxes an argument type through `ArgAbi`; these read theirs with `FromDatum`, as
/// pgrx's own argument types do.
macro_rules! argument_from_datum {
    ($($arg:ty),*) => {
        $(unsafe impl<'fcx> ArgAbi<'fcx> for $arg {
            unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                arg.unbox_arg_using_from_datum().unwrap_or_else(|| panic!("argument {index} must not be null"))
            }

            unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
                arg.unbox_arg_using_from_datum().into()
            }
        })*
    };
}
argument_from_datum!(JsonbArg, TextArg);

/// A result datum built here (a composite with `result_desc`, a `bytea` with the state
/// header), returned as it is.
pub struct BuiltDatum(pub pg_sys::Datum);

unsafe impl BoxRet for BuiltDatum {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        fcinfo.return_raw_datum(self.0)
    }
}

unsafe impl pgrx::pgrx_sql_entity_graph::metadata::SqlTranslatable for BuiltDatum {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(BuiltDatum);
    const TYPE_ORIGIN: pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
        pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::External;
    const ARGUMENT_SQL: Result<
        pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef,
        pgrx::pgrx_sql_entity_graph::metadata::ArgumentError,
    > = Err(pgrx::pgrx_sql_entity_graph::metadata::ArgumentError::NotValidAsArgument("BuiltDatum"));
    // never declared by pgrx (`sql = false`): the SQL files declare the real type
    const RETURN_SQL: Result<
        pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef,
        pgrx::pgrx_sql_entity_graph::metadata::ReturnsError,
    > = Ok(pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef::One(
        pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal("record"),
    ));
}
