//! What the `#[pg_test]`s share: the model most of them score, setups of tables they read,
//! and helpers that compute expected values independently (by hand or by the pure core on the
//! same JSON), never copied from what the SQL printed.

use pgrx::prelude::*;

use crate::core::{Json, Model};

pub(crate) const MODEL: &str = r#"{
  "bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 40}, {"name": "green", "min": 70}],
  "calibration": {"intercept": 2, "slope": -0.05},
  "components": [
    {"name": "usage", "weight": 2, "components": [
      {"name": "logins", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 20}},
      {"name": "seats", "weight": 1, "input": "active", "normalize": {"type": "log", "min": 0, "max": 100}}
    ]},
    {"name": "nps", "weight": 1, "normalize": {"type": "map", "values": {"promoter": 1, "passive": 0.5, "3.0": 0.25, "true": 0.75}}},
    {"name": "overdue", "weight": 1, "missing": "zero", "normalize": {"type": "steps", "steps": [{"at": 0, "score": 1}, {"at": 1, "score": 0.3}]}}
  ]
}"#;

pub(crate) fn core_score(input: serde_json::Value) -> Option<f64> {
    let model = Model::parse(&Json::from(serde_json::from_str::<serde_json::Value>(MODEL).unwrap())).unwrap();
    let input = Json::from(input);
    model.evaluate(&model.values_from_json(&input)).unwrap().score
}

pub(crate) fn sql_f64(query: &str) -> Option<f64> {
    Spi::get_one::<f64>(query).expect("query runs")
}

pub(crate) fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        (None, None) => true,
        _ => false,
    }
}

pub(crate) fn setup_model() {
    Spi::run(&format!("SELECT health_score.set_model('churn', $${MODEL}$$::jsonb)")).unwrap();
}

/// Runs `query` in a subtransaction and returns the SQLSTATE and message of its error. The
/// helper is a temporary function: tests run side by side, and a shared one would make them
/// wait on (and deadlock over) each other's uncommitted definitions.
pub(crate) fn error_of(query: &str) -> (String, String) {
    let q = query.replace('\'', "''");
    let row = Spi::get_two::<String, String>(&format!("SELECT * FROM pg_temp.health_score_test_error('{q}')"))
        .expect("error helper runs");
    (row.0.unwrap_or_default(), row.1.unwrap_or_default())
}

pub(crate) fn install_error_helper() {
    Spi::run(
        "CREATE OR REPLACE FUNCTION pg_temp.health_score_test_error(q text, OUT state text, OUT message text)
         LANGUAGE plpgsql AS $$
         BEGIN
             EXECUTE q;
             state := 'none';
         EXCEPTION WHEN OTHERS THEN
             GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT;
         END $$",
    )
    .unwrap();
}

/// Makes the planner choose parallel partial aggregation even for small test tables.
pub(crate) fn force_parallel_aggregation() {
    Spi::run(
        "SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
         SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2;
         SET LOCAL enable_hashagg = off",
    )
    .unwrap();
}

/// The query's plan aggregates in parallel: Partial and Finalize Aggregate under Gather.
pub(crate) fn assert_parallel_aggregate(query: &str) {
    let plan = Spi::explain(query).unwrap();
    let text = format!("{:?}", plan.0);
    assert!(text.contains("Partial") && text.contains("Finalize") && text.contains("Gather"), "{query}: {text}");
}

pub(crate) fn setup_series() {
    // 60 accounts × 40 days, two snapshots on some days (ties), some NULL scores and times
    Spi::run(
        "CREATE TABLE series AS
         SELECT a AS account, timestamptz '2026-01-01 00:00+00' + d * interval '1 day' + (a % 3) * interval '1 hour' AS at,
                CASE WHEN (a * d) % 23 = 0 THEN NULL ELSE ((a * 37 + d * d * 11) % 1000) / 10.0 END::float8 AS score
           FROM generate_series(1, 60) a, generate_series(0, 39) d;
         INSERT INTO series SELECT account, at, score + 5 FROM series WHERE score IS NOT NULL AND (account + extract(day FROM at)::int) % 7 = 0;
         INSERT INTO series VALUES (1, NULL, 50), (2, NULL, NULL);
         ANALYZE series",
    )
    .unwrap();
}

pub(crate) fn setup_accounts() {
    setup_model();
    Spi::run(
        "CREATE TABLE accounts (id int, logins int, active numeric, nps text, overdue int);
         INSERT INTO accounts VALUES (1, 20, 100, 'promoter', 0), (2, 10, 9, 'passive', 2), (3, 0, NULL, NULL, NULL);",
    )
    .unwrap();
}

pub(crate) fn setup_outcomes() {
    Spi::run(
        "CREATE TABLE outcomes AS
           SELECT g AS id, g % 4 AS grp, ((g * 7) % 13) / 2.0::float8 AS score, (g * 5) % 3 = 0 AS churned
             FROM generate_series(1, 240) g;
         INSERT INTO outcomes VALUES (1001, 1, NULL, true), (1002, 2, 'NaN', true), (1003, 3, 'Infinity', false),
                                     (1004, 0, 3, NULL), (1005, 1, -0.0, true), (1006, 2, 0, false);
         ANALYZE outcomes;",
    )
    .unwrap();
}
