//! `rescore` is PL/pgSQL over the scoring functions and the snapshot history; it has no Rust
//! of its own. Its SQL is `sql/rescore.sql`.

pgrx::extension_sql_file!("../../sql/rescore.sql", name = "rescore", requires = ["roles", "registry", "history"]);

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    include!("tests/rescore.rs");
}
