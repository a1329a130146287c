//! The alert queue (`sql/alert_queue.sql`): rules per model, events raised by `snapshot` as it
//! writes, claimed by workers with a lease. All SQL: this module declares it and holds its tests.

// The SQL of this concept: its declarations, GRANTs and COMMENTs.
pgrx::extension_sql_file!(
    "../../sql/alert_queue.sql",
    name = "alert_queue",
    requires = ["roles", "registry", "history", "latest"]
);

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/alert_queue.rs");
}
