//! `health_score.library_version()`: the version of the library the server loaded. After a
//! package upgrade the new library serves databases whose SQL objects are still the old
//! version's until `ALTER EXTENSION health_score UPDATE`; this and `pg_extension.extversion`
//! tell the two apart (docs/upgrading.md).

use super::{text_datum, v1_function};

v1_function!(hs_library_version, pg_finfo_hs_library_version, |_fcinfo| { Ok(text_datum(env!("CARGO_PKG_VERSION"))) });
