// The `#[pg_test]`s of `src/pg/drivers.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

use crate::pg::test_support::*;

#[pg_test]
fn drivers_of_a_model_with_more_than_32_components() {
    // JSONB stores an offset instead of a length in every 32nd entry of an array
    let leaves: Vec<String> = (1..=40)
        .map(|i| {
            format!(r#"{{"name": "l{i}", "weight": {i}, "normalize": {{"type": "linear", "min": 0, "max": 100}}}}"#)
        })
        .collect();
    Spi::run(&format!("SELECT health_score.set_model('wide', '{{\"components\": [{}]}}')", leaves.join(", "))).unwrap();
    let columns: Vec<String> = (1..=40).map(|i| format!("l{i} float8")).collect();
    let first: Vec<String> = (1..=40).map(|i| format!("{}", (i * 7) % 100)).collect();
    let second: Vec<String> = (1..=40).map(|i| format!("{}", (i * 13) % 100)).collect();
    Spi::run(&format!(
        "CREATE TABLE wide (id int, {});
         INSERT INTO wide VALUES (1, {});
         SELECT health_score.snapshot('wide', 'wide', 'id', '2026-01-01');
         UPDATE wide SET ({}) = ({});
         SELECT health_score.snapshot('wide', 'wide', 'id', '2026-01-02');",
        columns.join(", "),
        first.join(", "),
        (1..=40).map(|i| format!("l{i}")).collect::<Vec<_>>().join(", "),
        second.join(", ")
    ))
    .unwrap();
    let rows =
        Spi::get_one::<i64>("SELECT count(*) FROM health_score.drivers('wide', '1', '2026-01-01', '2026-01-02')")
            .unwrap();
    assert_eq!(rows, Some(40));
    // each leaf's change by hand: share i / 820 of the scale, n moves from (7i mod 100) to (13i mod 100) percent
    let wrong = Spi::get_one::<i64>(
        "SELECT count(*) FROM health_score.drivers('wide', '1', '2026-01-01', '2026-01-02') d,
                LATERAL (SELECT substr(d.component, 2)::int AS i) l
          WHERE abs(d.change - l.i / 820.0 * ((l.i * 13 % 100) - (l.i * 7 % 100))) > 1e-9",
    )
    .unwrap();
    assert_eq!(wrong, Some(0));
    let total = sql_f64("SELECT sum(change) FROM health_score.drivers('wide', '1', '2026-01-01', '2026-01-02')");
    let scores = sql_f64("SELECT max(score) FILTER (WHERE scored_at = '2026-01-02') - max(score) FILTER (WHERE scored_at = '2026-01-01') FROM health_score.scores");
    assert!(close(total, scores));
    // the array PostgreSQL reads back equals the one it parses from its own text
    let same = Spi::get_one::<bool>(
        "SELECT d = d::text::jsonb AND jsonb_array_length(d) = 40 AND d -> 35 ->> 'component' = 'l36'
           FROM (SELECT health_score_internal._drivers('wide', 1, a.components, 1, b.components, false) AS d
                   FROM health_score.scores a, health_score.scores b
                  WHERE a.scored_at = '2026-01-01' AND b.scored_at = '2026-01-02') x",
    )
    .unwrap();
    assert_eq!(same, Some(true));
    // components that are not objects of objects (written by hand) count 0, without a crash
    for odd in ["'[1, 2, 3]'", "'5'", r#"'{"l1": [1, 2], "l2": {"points": "x"}, "l3": {"points": 7}}'"#] {
        let points = sql_f64(&format!(
            "SELECT sum((d ->> 'points_before')::float8) FROM jsonb_array_elements(
                 health_score_internal._drivers('wide', 1, {odd}::jsonb, 1, {odd}::jsonb, false)) d"
        ));
        assert_eq!(points, Some(if odd.contains("l3") { 7.0 } else { 0.0 }), "{odd}");
    }
}

#[pg_test]
fn latest_history_drivers_and_alerts() {
    setup_accounts();
    // account 1 falls from green to red over three weekly snapshots; account 2 holds
    Spi::run(
        "SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01');
         UPDATE accounts SET logins = 0 WHERE id = 1;
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-08');
         UPDATE accounts SET nps = 'passive', overdue = 5 WHERE id = 1;
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-15');",
    )
    .unwrap();
    let at = |logins: i32, nps: &str, overdue: i32| {
        core_score(serde_json::json!({"logins": logins, "active": 100, "nps": nps, "overdue": overdue})).unwrap()
    };
    let (s1, s2, s3) = (at(20, "promoter", 0), at(0, "promoter", 0), at(0, "passive", 5));
    let latest = Spi::get_three::<String, f64, String>(
        "SELECT band_change, delta, previous_band FROM health_score.latest WHERE model = 'churn' AND entity_key = '1'",
    )
    .unwrap();
    let rank = |s: f64| [40.0, 70.0].iter().filter(|&&min| s >= min).count();
    let expected = match rank(s3).cmp(&rank(s2)) {
        std::cmp::Ordering::Less => "worsened",
        std::cmp::Ordering::Equal => "same",
        std::cmp::Ordering::Greater => "improved",
    };
    assert_eq!(latest.0.as_deref(), Some(expected), "{s2} -> {s3}");
    assert!(close(latest.1, Some(s3 - s2)));
    assert_eq!(
        Spi::get_one::<String>("SELECT band_change FROM health_score.latest WHERE entity_key = '2'")
            .unwrap()
            .as_deref(),
        Some("same")
    );
    let deltas = sql_f64("SELECT sum(delta) FROM health_score.history WHERE entity_key = '1'");
    assert!(close(deltas, Some(s3 - s1)));
    // drivers: top-level changes add up to the score's change; logins explain the first drop
    let total = sql_f64(
        "SELECT sum(change) FROM health_score.drivers('churn', '1', '2026-01-01', '2026-01-15') WHERE parent IS NULL",
    );
    assert!(close(total, Some(s3 - s1)));
    let logins = sql_f64(
        "SELECT change FROM health_score.drivers('churn', '1', '2026-01-01', '2026-01-08') WHERE component = 'logins'",
    );
    assert!(close(logins, Some(s2 - s1)));
    // alerts over 7 days compare with the snapshot a week before the latest; over 30 days with
    // the earliest inside the window
    let week = Spi::get_two::<String, f64>(
        "SELECT entity_key, score_change FROM health_score.alerts('churn', 5, '7 days') ORDER BY entity_key",
    )
    .unwrap();
    assert_eq!(week.0.as_deref(), Some("1"));
    assert!(close(week.1, Some(s3 - s2)));
    let month = sql_f64("SELECT score_change FROM health_score.alerts('churn', 5, '30 days') WHERE entity_key = '1'");
    assert!(close(month, Some(s3 - s1)));
    let none = Spi::get_one::<i64>("SELECT count(*) FROM health_score.alerts('churn', 1000, '7 days') WHERE band_change IS DISTINCT FROM 'worsened'").unwrap();
    assert_eq!(none, Some(0));
    let drivers = Spi::get_one::<String>(
        "SELECT drivers -> 0 ->> 'component' FROM health_score.alerts('churn', 5, '30 days') WHERE entity_key = '1'",
    )
    .unwrap();
    assert!(matches!(drivers.as_deref(), Some("usage" | "logins")), "{drivers:?}");
    // 'Infinity' alerts on band drops only; NaN, negative and NULL drops are errors
    let band_only = Spi::get_one::<i64>(
        "SELECT count(*) FROM health_score.alerts('churn', 'Infinity', '30 days') WHERE band_change IS DISTINCT FROM 'worsened'",
    )
    .unwrap();
    assert_eq!(band_only, Some(0));
    install_error_helper();
    for drop in ["'NaN'", "-1", "NULL"] {
        let (state, message) = error_of(&format!("SELECT * FROM health_score.alerts('churn', {drop}, '7 days')"));
        assert_eq!(state, "22023", "{drop}: {message}");
        assert!(message.starts_with("alerts: min_drop must be"), "{message}");
    }
    // a version reference would have matched no snapshot at all: an error, not an empty answer
    for query in [
        "SELECT * FROM health_score.alerts('churn@1', 5, '7 days')",
        "SELECT * FROM health_score.drivers('churn@1', '1', '2026-01-01', '2026-01-15')",
    ] {
        let (state, message) = error_of(query);
        assert_eq!(state, "22023", "{query}: {message}");
        assert!(message.contains("give the model's name, not a version (churn@1)"), "{message}");
    }
}
