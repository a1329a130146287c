// The `#[pg_test]`s of `src/pg/rescore.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

use crate::pg::test_support::*;

#[pg_test]
fn rescore_recomputes_stored_inputs_under_another_version() {
    install_error_helper();
    setup_accounts();
    Spi::run("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01')").unwrap();
    Spi::run("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-02', keep_inputs => false)").unwrap();
    // the raw inputs version 1 reads, as text (null when missing)
    let stored = Spi::get_one::<pgrx::JsonB>(
        "SELECT inputs FROM health_score.scores WHERE entity_key = '2' AND scored_at = '2026-01-01'",
    )
    .unwrap()
    .unwrap();
    assert_eq!(stored.0, serde_json::json!({"logins": "10", "active": "9", "nps": "passive", "overdue": "2"}));
    // version 2 weighs logins much more and reads a new input no stored row has
    let v2 = MODEL.replacen(r#""name": "logins", "weight": 1"#, r#""name": "logins", "weight": 9"#, 1).replacen(
        r#""components": ["#,
        r#""components": [{"name": "csat", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 5}},"#,
        1,
    );
    Spi::run(&format!("SELECT health_score.set_model('churn', $${v2}$$::jsonb)")).unwrap();
    let written = Spi::get_one::<i64>("SELECT health_score.rescore('churn', 2, '2026-01-01', '2026-01-31')").unwrap();
    // the keep_inputs => false snapshot is skipped
    assert_eq!(written, Some(3));
    // each rescored score is version 2's score of the same row, with csat missing
    let mismatches = Spi::get_one::<i64>(
        "SELECT count(*) FROM health_score.rescored r JOIN accounts a ON r.entity_key = a.id::text
          WHERE r.model_version = 2 AND r.original_version = 1
            AND r.score IS DISTINCT FROM health_score.score('churn@2', to_jsonb(a) - 'id')",
    )
    .unwrap();
    assert_eq!(mismatches, Some(0));
    let logins_points = sql_f64(
        "SELECT (components -> 'logins' ->> 'points')::float8 FROM health_score.rescored WHERE entity_key = '1'",
    );
    let original = sql_f64("SELECT (components -> 'logins' ->> 'points')::float8 FROM health_score.scores WHERE entity_key = '1' AND scored_at = '2026-01-01'");
    assert!(logins_points.unwrap() > original.unwrap());
    // the originals are untouched
    assert_eq!(
        Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores WHERE model_version = 1").unwrap(),
        Some(6)
    );
    // backtest reads the rescored history of the version the reference stands for
    Spi::run("CREATE TABLE churn_events (account_id int, churned_at date); INSERT INTO churn_events VALUES (3, '2026-01-20')")
        .unwrap();
    let (accounts, churned) = Spi::get_two::<i64, i64>(
        "SELECT accounts, churned FROM health_score.backtest('churn@2', 'churn_events', 'account_id', 'churned_at', '30 days', 'rescored')",
    )
    .unwrap();
    assert_eq!((accounts, churned), (Some(3), Some(1)));
    assert_eq!(error_of("SELECT health_score.rescore('churn', 7, '2026-01-01', '2026-01-31')").0, "42704");
    let (state, message) = error_of("SELECT health_score.rescore('churn', 2, '2026-01-31', '2026-01-01')");
    assert_eq!(state, "22023");
    assert!(message.starts_with("rescore: from_at (") && message.contains(") is after to_at ("), "{message}");
}
