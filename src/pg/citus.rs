//! Citus (docs/scale-out.md): where it is installed, the functions that keep the cluster's own
//! state (the registry, schedules, generated views, the history's settings, the alert queue,
//! CSM inputs) run on the coordinator only, and say so on a worker. The planner's part is in
//! `row_support.rs`.

use pgrx::pg_sys;
use pgrx::spi::Spi;

use crate::core::Error;

use super::row_support::citus_installed;
use super::{arg, text_arg, v1_function};

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!("../../sql/citus.sql", name = "citus", requires = ["roles"]);

/// `CoordinatorOnly` on a worker of a Citus cluster: a server whose local group is not the
/// coordinator's (0). A server without Citus, or with Citus and no cluster yet, is its own
/// coordinator.
pub fn require_coordinator(what: &str) -> Result<(), Error> {
    if !citus_installed() {
        return Ok(());
    }
    // readable by PUBLIC (Citus grants it)
    match Spi::get_one::<i32>("SELECT groupid FROM pg_catalog.pg_dist_local_group") {
        Ok(Some(group)) if group != 0 => Err(Error::CoordinatorOnly { what: what.chars().take(200).collect() }),
        _ => Ok(()),
    }
}

// _require_coordinator(what text) → void, for the PL/pgSQL and SQL functions
v1_function!(hs_require_coordinator, pg_finfo_hs_require_coordinator, |fcinfo| {
    let what = arg(fcinfo, 0).map(|d| text_arg(d).into_owned()).unwrap_or_default();
    require_coordinator(&what)?;
    Ok(pg_sys::Datum::from(0usize))
});
