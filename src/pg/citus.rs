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
pgrx::extension_sql_file!("../../sql/citus.sql", name = "citus", requires = ["roles", "registry", "latest"]);

/// `CoordinatorOnly` on a worker of a Citus cluster: a server whose local group is not the
/// coordinator's (0). A server without Citus, or with Citus and no cluster yet, is its own
/// coordinator.
pub fn require_coordinator(what: &str) -> Result<(), Error> {
    if on_worker() {
        return Err(Error::CoordinatorOnly { what: what.chars().take(200).collect() });
    }
    Ok(())
}

/// Whether this server is a worker of a Citus cluster: its local group is not the
/// coordinator's (0).
pub fn on_worker() -> bool {
    // readable by PUBLIC (Citus grants it)
    citus_installed()
        && matches!(Spi::get_one::<i32>("SELECT groupid FROM pg_catalog.pg_dist_local_group"), Ok(Some(group)) if group != 0)
}

// _require_coordinator(what text) → void, for the PL/pgSQL and SQL functions
v1_function!(hs_require_coordinator, pg_finfo_hs_require_coordinator, |fcinfo| {
    let what = arg(fcinfo, 0).map(|d| text_arg(d).into_owned()).unwrap_or_default();
    require_coordinator(&what)?;
    Ok(pg_sys::Datum::from(0usize))
});

/// On a worker of a Citus cluster whose history `health_score.distribute` distributed: the
/// shard of `health_score_internal.model_replica` placed on this server, qualified for a query.
pub fn registry_replica_on_worker() -> Option<String> {
    if !citus_installed() {
        return None;
    }
    // pg_dist_shard and pg_dist_local_group are readable by PUBLIC (Citus grants them)
    let query = "SELECT pg_catalog.quote_ident('model_replica_' OPERATOR(pg_catalog.||) s.shardid)
                   FROM pg_catalog.pg_dist_shard s, pg_catalog.pg_dist_local_group g
                  WHERE s.logicalrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass('health_score_internal.model_replica')
                    AND g.groupid OPERATOR(pg_catalog.<>) 0
                    AND pg_catalog.to_regclass('health_score_internal.model_replica_' OPERATOR(pg_catalog.||) s.shardid) IS NOT NULL";
    Spi::get_one::<String>(query).ok().flatten().map(|shard| format!("health_score_internal.{shard}"))
}

/// Whether a table is one of Citus's (distributed or reference) in this database.
pub fn is_citus_table(relation: pg_sys::Oid) -> bool {
    if !citus_installed() {
        return false;
    }
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid OPERATOR(pg_catalog.=) $1)",
        &[relation.into()],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

// _is_citus_table(regclass) → boolean, for the PL/pgSQL functions (which cannot name Citus's
// catalog where it is not installed)
v1_function!(hs_is_citus_table, pg_finfo_hs_is_citus_table, |fcinfo| {
    let relation = match arg(fcinfo, 0) {
        Some(d) => pg_sys::Oid::from(d.value() as u32),
        None => return Ok(pg_sys::Datum::from(false)),
    };
    Ok(pg_sys::Datum::from(is_citus_table(relation)))
});
