//! The doors to the registries. `health_score.model_versions`, `model_names` and `views` are
//! writable by their owner (the superuser who created the extension) alone, so that no admin
//! can forge a version or plant a view registration. `set_model` and `create_view` are these
//! C functions: each notes who called it, becomes the registry's owner for one fixed query
//! of the extension's own, and passes the caller on, so that a version records its real
//! author and a generated view belongs to (and reads with the rights of) whoever created it.
//! A `SECURITY DEFINER` function could not do this: inside one, the caller is already gone.
//! docs/security.md lists every function that runs with rights other than its caller's.

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::Spi;

use crate::core::Error;

use super::{arg, return_null, v1_function};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!("../../sql/registry.sql", name = "registry", requires = ["roles"]);

/// Runs `f` as the owner of the registry, in a security-restricted operation (as PostgreSQL
/// runs index expressions and maintenance commands), and is the caller again afterwards,
/// whether `f` returns or raises (an ERROR unwinds through the guard; the transaction's
/// abort would restore the user too).
unsafe fn as_registry_owner<T>(f: impl FnOnce(pg_sys::Oid) -> Result<T, Error>) -> Result<T, Error> {
    struct Restore(pg_sys::Oid, i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            unsafe { pg_sys::SetUserIdAndSecContext(self.0, self.1) }
        }
    }
    let mut caller = pg_sys::InvalidOid;
    let mut context = 0;
    pg_sys::GetUserIdAndSecContext(&mut caller, &mut context);
    let owner = registry_owner()?;
    let _restore = Restore(caller, context);
    let restricted = (pg_sys::SECURITY_LOCAL_USERID_CHANGE | pg_sys::SECURITY_RESTRICTED_OPERATION) as i32;
    pg_sys::SetUserIdAndSecContext(owner, context | restricted);
    f(caller)
}

/// The owner of `health_score.model_versions`, looked up as the caller (anyone may read
/// pg_class) with every name qualified.
fn registry_owner() -> Result<pg_sys::Oid, Error> {
    let owner = Spi::get_one::<pg_sys::Oid>(
        "SELECT c.relowner FROM pg_catalog.pg_class c \
          WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('health_score.model_versions')",
    )
    .map_err(|e| internal(format!("looking up the registry's owner failed: {e}")))?;
    owner.ok_or_else(|| internal("the table health_score.model_versions is missing".into()))
}

fn internal(message: String) -> Error {
    Error::InvalidArgument { message, hint: None }
}

/// Runs one of the extension's registry functions as the registry's owner, the caller's oid
/// appended to `args`, and returns its single by-value result.
pub(super) unsafe fn call_as_owner<T: pgrx::FromDatum + pgrx::IntoDatum>(
    query: &str,
    args: Vec<DatumWithOid<'_>>,
) -> Result<Option<T>, Error> {
    as_registry_owner(|caller| {
        let mut args = args;
        args.push(DatumWithOid::new(caller, pg_sys::OIDOID));
        Spi::connect_mut(|client| {
            let table = client.update(query, Some(1), &args)?;
            table.first().get::<T>(1)
        })
        .map_err(|e| internal(format!("{e}")))
    })
}

unsafe fn optional(fcinfo: pg_sys::FunctionCallInfo, n: usize, type_oid: pg_sys::Oid) -> DatumWithOid<'static> {
    match arg(fcinfo, n) {
        Some(d) => DatumWithOid::new(d, type_oid),
        None => DatumWithOid::null_oid(type_oid),
    }
}

// The two doors stay V1 functions although each runs once per call: they hand their
// arguments' datums to SPI as they came (a text read into Rust and written back could change in
// a database whose encoding is not UTF-8), so there is nothing for pgrx to convert.

// set_model(name text, config jsonb) RETURNS integer: _record_model_version validates
// (NULLs included), numbers and inserts
v1_function!(hs_set_model, pg_finfo_hs_set_model, |fcinfo| {
    super::citus::require_coordinator("set_model")?;
    let args = vec![optional(fcinfo, 0, pg_sys::TEXTOID), optional(fcinfo, 1, pg_sys::JSONBOID)];
    let version = call_as_owner::<i32>("SELECT health_score_internal._record_model_version($1, $2, $3)", args)?;
    // Under Citus, plans hold the config of the version a name stood for when they were made
    // (src/pg/row_support.rs). Cached plans depend on the functions they call, and a
    // distributed plan on nothing else: every session plans its statements that call a
    // function again after this commits, with the new version.
    if super::row_support::citus_installed() {
        pg_sys::CacheInvalidateCatalog(pg_sys::ProcedureRelationId);
    }
    Ok(version.map(pg_sys::Datum::from).unwrap_or_else(|| return_null(fcinfo)))
});

// _create_view(view_schema name, view_name name, model text, source regclass, key_column
// text, carried text[]) RETURNS regclass, STRICT: the view is the caller's, checked and built
// by _generate_view
v1_function!(hs_create_view, pg_finfo_hs_create_view, |fcinfo| {
    let args = vec![
        optional(fcinfo, 0, pg_sys::NAMEOID),
        optional(fcinfo, 1, pg_sys::NAMEOID),
        optional(fcinfo, 2, pg_sys::TEXTOID),
        optional(fcinfo, 3, pg_sys::REGCLASSOID),
        optional(fcinfo, 4, pg_sys::TEXTOID),
        optional(fcinfo, 5, pg_sys::TEXTARRAYOID),
    ];
    let view = call_as_owner::<pg_sys::Oid>(
        "SELECT health_score_internal._generate_view($1, $2, $3, $4, $5, pg_catalog.pg_get_userbyid($7), true, $6)::pg_catalog.oid",
        args,
    )?;
    Ok(view.map(pg_sys::Datum::from).unwrap_or_else(|| return_null(fcinfo)))
});

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/registry.rs");
}
