//! The PostgreSQL skin: converts arguments, caches compiled models, raises errors.
//! One module per SQL concept, each loading its concept's SQL file from `sql/`.

pub mod alert_queue;
pub mod auc;
pub mod backtest;
pub mod citus;
pub mod csm;
pub mod drivers;
pub mod fit;
pub mod fit_shapes;
pub mod fmgr;
pub mod hysteresis;
pub mod jsonb;
pub mod jsonb_build;
pub mod latest;
pub mod models;
pub mod parent;
pub mod registry;
pub mod rescore;
pub mod row;
pub mod row_support;
pub mod schedule;
pub mod score_agg;
pub mod scoring;
pub mod signatures;
pub mod snapshot;
pub mod storage;
pub mod suggest;
pub mod trend;
pub mod version;
pub mod views;

// The roles come before everything else: every concept's file grants to them.
pgrx::extension_sql_file!("../../sql/roles.sql", name = "roles", bootstrap);

pub use fmgr::*;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

use crate::core::Error;

/// Raises a core error as a PostgreSQL ERROR with its SQLSTATE, detail and hint.
pub fn raise(e: &Error) -> ! {
    raise_as(e, e)
}

/// Raises `e` with the SQLSTATE of `kind` (itself, or the error it wraps).
fn raise_as(e: &Error, kind: &Error) -> ! {
    let code = match kind {
        Error::InvalidModel(_) | Error::InvalidInput { .. } | Error::InvalidArgument { .. } => {
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        }
        Error::UnknownModel { .. } => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        Error::UndefinedColumn { .. } => PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
        Error::DatatypeMismatch { .. } => PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
        Error::SourceColumns { types: false, .. } => PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
        Error::SourceColumns { types: true, .. } => PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
        Error::LimitExceeded { .. } => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        Error::OutOfMemory { .. } => PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
        Error::CoordinatorOnly { .. } => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        Error::ForEntity { error, .. } => raise_as(e, error),
    };
    use crate::core::error::{shortened, MAX_DETAIL_CHARS, MAX_HINT_CHARS, MAX_MESSAGE_CHARS};
    let mut report = ErrorReport::new(code, shortened(&e.message(), MAX_MESSAGE_CHARS).into_owned(), "health_score");
    if let Some(detail) = e.detail() {
        report = report.set_detail(shortened(&detail, MAX_DETAIL_CHARS).into_owned());
    }
    if let Some(hint) = e.hint() {
        report = report.set_hint(shortened(&hint, MAX_HINT_CHARS).into_owned());
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

#[cfg(any(test, feature = "pg_test"))]
pub(crate) mod test_support;
