// The `#[pg_test]`s of `src/pg/row_support.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

use crate::pg::test_support::*;

#[pg_test]
fn row_forms_pass_columns_and_agree_with_the_record_path() {
    setup_model();
    Spi::run(
        "CREATE TABLE wide (id int, dropped_soon text, logins int, active numeric, nps text, overdue int);
         INSERT INTO wide VALUES (1, 'x', 12, 30, 'passive', 0), (2, 'y', NULL, 5, NULL, 3);
         ALTER TABLE wide DROP COLUMN dropped_soon;
         CREATE VIEW wide_view AS SELECT * FROM wide",
    )
    .unwrap();
    // the planner passes the columns instead of a composite value
    let plan =
        Spi::get_one::<pgrx::Json>("EXPLAIN (VERBOSE, FORMAT JSON) SELECT health_score.score('churn', w) FROM wide w")
            .unwrap()
            .unwrap();
    assert!(plan.0.to_string().contains("_score_columns"), "{}", plan.0);
    // a ROW() of anonymous type keeps the record path; all three agree with the core
    for id in [1, 2] {
        let by_columns = sql_f64(&format!("SELECT health_score.score('churn', w) FROM wide w WHERE id = {id}"));
        let by_view = sql_f64(&format!("SELECT health_score.score('churn', v) FROM wide_view v WHERE id = {id}"));
        let by_record = sql_f64(&format!(
            "SELECT health_score.score('churn', r) FROM (SELECT w.logins, w.active, w.nps, w.overdue FROM wide w WHERE id = {id} OFFSET 0) r"
        ));
        let expected = core_score(if id == 1 {
            serde_json::json!({"logins": 12, "active": 30, "nps": "passive", "overdue": 0})
        } else {
            serde_json::json!({"active": 5, "overdue": 3})
        });
        assert!(close(by_columns, expected) && close(by_view, expected) && close(by_record, expected), "row {id}");
    }
    // explain and assess take the same path
    let rows =
        Spi::get_one::<i64>("SELECT count(*) FROM wide w, health_score.explain('churn', w) e WHERE w.id = 1").unwrap();
    assert_eq!(rows, Some(5));
    let band =
        Spi::get_one::<String>("SELECT (health_score.assess('churn', w)).band FROM wide w WHERE id = 1").unwrap();
    let expected = core_score(serde_json::json!({"logins": 12, "active": 30, "nps": "passive", "overdue": 0})).unwrap();
    let expected_band = if expected >= 70.0 {
        "green"
    } else if expected >= 40.0 {
        "yellow"
    } else {
        "red"
    };
    assert_eq!(band.as_deref(), Some(expected_band));
}

#[pg_test]
fn a_null_row_from_an_outer_join_scores_null() {
    Spi::run(
        "SELECT health_score.set_model('zeroes', '{\"missing\": \"zero\", \"components\": [{\"name\": \"logins\", \"weight\": 1, \"normalize\": {\"type\": \"linear\", \"min\": 0, \"max\": 10}}]}');
         CREATE TABLE people (id int); INSERT INTO people VALUES (1), (2);
         CREATE TABLE usage (id int, logins int); INSERT INTO usage VALUES (1, 5);",
    )
    .unwrap();
    let scores = Spi::get_one::<String>(
        "SELECT string_agg(coalesce(health_score.score('zeroes', u)::text, 'NULL'), ',' ORDER BY p.id)
           FROM people p LEFT JOIN usage u USING (id)",
    )
    .unwrap();
    // person 2 has no usage row at all: NULL, not a score of zeroes
    assert_eq!(scores.as_deref(), Some("50,NULL"));
}

#[pg_test]
fn a_row_of_an_outer_query_is_scored_whole() {
    setup_model();
    Spi::run(
        "CREATE TABLE outer_rows (id int, logins int, active numeric, nps text, overdue int);
         INSERT INTO outer_rows VALUES (1, 12, 30, 'passive', 0), (2, NULL, 5, NULL, 3);",
    )
    .unwrap();
    // a LATERAL subquery that cannot be pulled up (LIMIT) and a correlated subquery reach the
    // row as an outer reference, which must not be split into columns the outer scan lacks
    let lateral = Spi::get_one::<String>(
        "SELECT string_agg(o.id || ':' || d.component, ',' ORDER BY o.id)
           FROM outer_rows o
           LEFT JOIN LATERAL (SELECT e.component FROM health_score.explain('churn', o) e
                               WHERE e.input IS NOT NULL AND e.normalized IS NOT NULL
                               ORDER BY e.weight * (1 - e.normalized) DESC, e.component LIMIT 1) d ON true",
    )
    .unwrap();
    assert!(lateral.is_some_and(|l| l.starts_with("1:") && l.contains(",2:")));
    for id in [1, 2] {
        let correlated = sql_f64(&format!(
            "SELECT (SELECT health_score.score('churn', o) OFFSET 0) FROM outer_rows o WHERE o.id = {id}"
        ));
        let direct = sql_f64(&format!("SELECT health_score.score('churn', o) FROM outer_rows o WHERE o.id = {id}"));
        assert!(close(correlated, direct) && direct.is_some(), "row {id}");
    }
}
