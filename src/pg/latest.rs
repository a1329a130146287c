//! The current state of each entity (`health_score_internal.current_state`), which `snapshot`
//! keeps in its own statement and triggers keep through changes by hand, and what reads it:
//! the `latest` view and `alerts`. PL/pgSQL and SQL only; its SQL is `sql/latest.sql`. Its
//! tests are with the snapshot's (`tests/snapshot.rs`), which writes it.

pgrx::extension_sql_file!("../../sql/latest.sql", name = "latest", requires = ["roles", "history"]);
