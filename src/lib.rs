//! health_score: explainable customer health scores inside PostgreSQL.
//!
//! `core` is the scoring model in plain Rust (no PostgreSQL types); `pg` is the extension's
//! SQL surface around it. The SQL declarations live in `sql/health_score.sql`.

pub mod core;
pub mod pg;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/health_score.sql", name = "health_score_objects", finalize);

#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
