// The `#[pg_test]`s of `src/pg/storage.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

use crate::pg::test_support::*;

fn strings(query: &str) -> Vec<String> {
    Spi::connect(|c| {
        c.select(query, None, &[]).unwrap().map(|row| row.get::<String>(1).unwrap().unwrap_or_default()).collect()
    })
}

#[pg_test]
fn a_snapshot_keeps_the_record_and_reads_back_the_components_explain_gives() {
    setup_accounts();
    Spi::run(
        "SET LOCAL client_min_messages = warning;
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01', keep_inputs => false)",
    )
    .unwrap();
    // stored as the record, never as JSONB
    let stored = strings(
        "SELECT format('%s %s %s', entity_key, record IS NOT NULL, components IS NULL)
           FROM health_score_internal.score_rows ORDER BY entity_key",
    );
    assert_eq!(stored, ["1 t t", "2 t t", "3 t t"]);
    // every component's points and n read back as explain computes them from the row
    let differences = Spi::get_one::<i64>(
        "SELECT count(*) FROM accounts a
           JOIN health_score.scores s ON s.entity_key = a.id::text
           CROSS JOIN LATERAL health_score.explain('churn', a) e
          WHERE (s.components -> e.component ->> 'points')::float8 IS DISTINCT FROM e.contribution
             OR (s.components -> e.component ->> 'n')::float8 IS DISTINCT FROM e.normalized",
    )
    .unwrap();
    assert_eq!(differences, Some(0));
    let components =
        Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores s, jsonb_object_keys(s.components)").unwrap();
    assert_eq!(components, Some(3 * 5), "five components (a group and four leaves) per entity");
    // the scalars as score and band give them
    assert!(close(
        sql_f64("SELECT score FROM health_score.scores WHERE entity_key = '1'"),
        core_score(serde_json::json!({"logins": 20, "active": 100, "nps": "promoter", "overdue": 0}))
    ));
}

#[pg_test]
fn rows_written_by_hand_keep_their_components_and_follow_updates() {
    setup_accounts();
    install_error_helper();
    Spi::run(
        "SET LOCAL client_min_messages = warning;
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01');
         INSERT INTO health_score.scores (model, model_version, entity_key, scored_at, score, band, band_rank, coverage, components)
         VALUES ('churn', 1, '9', '2026-03-05', 12, 'red', 0, 0.5, '{\"x\": {\"points\": 12, \"n\": 0.5}}')",
    )
    .unwrap();
    let row = strings("SELECT format('%s %s', components, record IS NULL) FROM health_score_internal.score_rows WHERE entity_key = '9'");
    assert_eq!(row, [r#"{"x": {"n": 0.5, "points": 12}} t"#]);
    // a new partition (March) came with it
    assert_eq!(
        strings(
            "SELECT format('%s %s', from_at::date, to_at::date) FROM health_score.history_partitions ORDER BY from_at"
        ),
        ["2026-01-01 2026-02-01", "2026-03-01 2026-04-01"]
    );
    // an update of the scalars keeps the record; one of the components stores them as given
    Spi::run("UPDATE health_score.scores SET score = score + 1 WHERE entity_key = '1'").unwrap();
    assert_eq!(
        strings("SELECT (record IS NOT NULL)::text FROM health_score_internal.score_rows WHERE entity_key = '1'"),
        ["true"]
    );
    let before = strings("SELECT components::text FROM health_score.scores WHERE entity_key = '2'");
    Spi::run("UPDATE health_score.scores SET components = components || '{\"extra\": {\"points\": 0, \"n\": 0}}' WHERE entity_key = '2'")
        .unwrap();
    let after = strings("SELECT components::text FROM health_score.scores WHERE entity_key = '2'");
    assert_ne!(before, after);
    assert!(after[0].contains("\"extra\""), "{after:?}");
    // moving a row to another month moves it to that month's partition
    Spi::run("UPDATE health_score.scores SET scored_at = '2026-05-10' WHERE entity_key = '3'").unwrap();
    assert_eq!(
        strings("SELECT format('%s %s', entity_key, tableoid::regclass::text LIKE '%_20260501') FROM health_score_internal.score_rows WHERE entity_key = '3'"),
        ["3 t"]
    );
    assert_eq!(strings("SELECT scored_at::date::text FROM health_score.latest WHERE entity_key = '3'"), ["2026-05-10"]);
    // the table's NOT NULL columns stay required
    let (state, message) = error_of(
        "INSERT INTO health_score.scores (model, model_version, entity_key, scored_at, coverage, components)
         VALUES ('churn', 1, '10', '2026-01-02', 1, NULL)",
    );
    assert_eq!(
        (state.as_str(), message.as_str()),
        ("23502", "null value in column \"components\" of health_score.scores")
    );
    // DELETE through the view
    Spi::run("DELETE FROM health_score.scores WHERE entity_key IN ('9', '1')").unwrap();
    assert_eq!(strings("SELECT entity_key FROM health_score.scores ORDER BY 1"), ["2", "3"]);
    assert_eq!(strings("SELECT entity_key FROM health_score.latest ORDER BY 1"), ["2", "3"]);
}

#[pg_test]
fn partitions_follow_the_period_set_and_never_overlap() {
    setup_accounts();
    install_error_helper();
    Spi::run(
        "SET LOCAL client_min_messages = warning;
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-31 23:00+00');
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-15');
         SELECT health_score.set_partitioning('churn', 'day');
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-02-03 10:00+00');
         SELECT health_score.set_partitioning('churn', 'year');
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-02-20');
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2025-12-31 23:59+00');",
    )
    .unwrap();
    // a month in UTC; then a day; then a year, cut by its neighbours on either side
    assert_eq!(
        strings(
            "SELECT format('%s..%s', from_at AT TIME ZONE 'UTC', to_at AT TIME ZONE 'UTC')
               FROM health_score.history_partitions WHERE model = 'churn' ORDER BY from_at"
        ),
        [
            "2025-01-01 00:00:00..2026-01-01 00:00:00",
            "2026-01-01 00:00:00..2026-02-01 00:00:00",
            "2026-02-03 00:00:00..2026-02-04 00:00:00",
            "2026-02-04 00:00:00..2027-01-01 00:00:00",
        ]
    );
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores").unwrap(), Some(15));
    assert_eq!(strings("SELECT partition_by FROM health_score.retention WHERE model = 'churn'"), ["year"]);
    for (call, state) in [
        ("SELECT health_score.set_partitioning('churn', 'hour')", "22023"),
        ("SELECT health_score.set_partitioning('churn', NULL)", "22023"),
        ("SELECT health_score.set_partitioning('nope', 'day')", "42704"),
        ("SELECT health_score.set_partitioning('churn@1', 'day')", "22023"),
    ] {
        assert_eq!(error_of(call).0, state, "{call}");
    }
}

#[pg_test]
fn retention_drops_whole_partitions_and_keeps_the_current_state_exact() {
    setup_accounts();
    install_error_helper();
    Spi::run(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE accounts_later AS SELECT * FROM accounts WHERE id <> 3;
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-10');
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-02-10');
         SELECT health_score.snapshot('churn', 'accounts_later', 'id', '2026-03-10');
         SELECT health_score.set_model('other', $${\"components\": [{\"name\": \"logins\", \"weight\": 1, \"normalize\": {\"type\": \"linear\", \"min\": 0, \"max\": 20}}]}$$);
         SELECT health_score.snapshot('other', 'accounts', 'id', '2026-01-10');",
    )
    .unwrap();
    for (keep, state) in [("'-1 day'", "22023"), ("'23 hours'", "22023"), ("'0'", "22023"), ("'1 day'", "none")] {
        let (got, message) = error_of(&format!("SELECT health_score.set_retention('churn', {keep})"));
        assert_eq!(got, state, "{keep}: {message}");
    }
    assert_eq!(error_of("SELECT health_score.set_retention('nope', '1 year')").0, "42704");
    // without a retention nothing goes; with one, the partitions wholly before at - keep
    Spi::run("SELECT health_score.set_retention('churn', NULL)").unwrap();
    assert_eq!(
        Spi::get_one::<i64>("SELECT count(*) FROM health_score.apply_retention(at => '2030-01-01')").unwrap(),
        Some(0)
    );
    Spi::run("SELECT health_score.set_retention('churn', '30 days')").unwrap();
    let dropped = strings(
        "SELECT format('%s %s', dropped_model, from_at::date) FROM health_score.apply_retention(at => '2026-03-31')",
    );
    // 2026-03-31 - 30 days = 03-01: January's and February's partitions end by then
    assert_eq!(dropped, ["churn 2026-01-01", "churn 2026-02-01"]);
    assert_eq!(
        strings("SELECT format('%s %s', model, scored_at::date) FROM health_score.snapshots ORDER BY 1"),
        ["churn 2026-03-10", "other 2026-01-10"]
    );
    // entity 3 had no snapshot left: it leaves the current state; the others lose their previous
    assert_eq!(
        strings("SELECT format('%s %s %s', model, entity_key, coalesce(previous_at::date::text, '-')) FROM health_score.latest ORDER BY 1"),
        ["churn 1 -", "churn 2 -", "other 1 -", "other 2 -", "other 3 -"]
    );
    let reference = Spi::get_one::<i64>(
        "WITH newest AS (SELECT model, entity_key, max(scored_at) AS scored_at FROM health_score.scores GROUP BY 1, 2)
         SELECT count(*) FROM (
           (SELECT model, entity_key, scored_at FROM health_score.latest EXCEPT SELECT * FROM newest)
           UNION ALL
           (SELECT * FROM newest EXCEPT SELECT model, entity_key, scored_at FROM health_score.latest)) d",
    )
    .unwrap();
    assert_eq!(reference, Some(0));
    // the next snapshot of a dropped month creates its partition again
    Spi::run("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-20')").unwrap();
    assert_eq!(
        Spi::get_one::<i64>("SELECT count(*) FROM health_score.history_partitions WHERE model = 'churn'").unwrap(),
        Some(2)
    );
    assert_eq!(error_of("SELECT * FROM health_score.apply_retention(at => 'infinity')").0, "22023");
}
