//! How snapshots are stored (`sql/storage.sql`): the compact table partitioned by model and
//! time, the `health_score.scores` view over it, and its partitions; and how long they are
//! kept (`sql/retention.sql`). PL/pgSQL and SQL only; the record a row keeps is written by
//! `snapshot.rs` and read back by `_record_components` there. Tests: `tests/storage.rs`.

pgrx::extension_sql_file!("../../sql/storage.sql", name = "storage", requires = ["roles", "registry", "scoring"]);
pgrx::extension_sql_file!("../../sql/retention.sql", name = "retention", requires = ["roles", "history", "latest"]);

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/storage.rs");
}
