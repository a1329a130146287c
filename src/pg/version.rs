//! `health_score.library_version()`: the version of the library the server loaded. After a
//! package upgrade the new library serves databases whose SQL objects are still the old
//! version's until `ALTER EXTENSION health_score UPDATE`; this and `pg_extension.extversion`
//! tell the two apart (docs/upgrading.md).

use super::c_symbol;

#[pgrx::pg_extern(sql = false)]
fn library_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
c_symbol!(hs_library_version, pg_finfo_hs_library_version => library_version_wrapper);
