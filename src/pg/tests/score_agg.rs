// The `#[pg_test]`s of `src/pg/score_agg.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

use crate::pg::test_support::*;

#[pg_test]
fn score_agg_equals_scoring_the_object() {
    setup_model();
    Spi::run(
        "CREATE TABLE metrics AS
         SELECT a AS account_id, m AS metric,
                CASE m WHEN 'nps' THEN NULL ELSE ((a * 7 + length(m)) % 23)::float8 END AS value,
                CASE m WHEN 'nps' THEN (ARRAY['promoter','passive','3.0'])[a % 3 + 1] END AS label
           FROM generate_series(1, 200) a, unnest(ARRAY['logins','active','overdue','nps']) m
          WHERE (a + length(m)) % 5 <> 0",
    )
    .unwrap();
    let mismatches = Spi::get_one::<i64>(
        "WITH agg AS (
             SELECT account_id,
                    health_score.score_agg('churn', metric, coalesce(to_jsonb(value), to_jsonb(label))) AS s,
                    jsonb_object_agg(metric, coalesce(to_jsonb(value), to_jsonb(label))) AS obj
               FROM metrics GROUP BY account_id)
         SELECT count(*) FROM agg
          WHERE s IS DISTINCT FROM health_score.score('churn', obj)
            AND NOT abs(s - health_score.score('churn', obj)) < 1e-9",
    )
    .unwrap();
    assert_eq!(mismatches, Some(0));
    // float8 and text values, inline model
    let same = Spi::get_one::<bool>(&format!(
        "SELECT bool_and(a IS NOT DISTINCT FROM b) FROM (
            SELECT account_id,
                   health_score.score_agg($${MODEL}$$::jsonb, metric, value) FILTER (WHERE metric <> 'nps') AS a,
                   health_score.score($${MODEL}$$::jsonb, jsonb_object_agg(metric, value) FILTER (WHERE metric <> 'nps')) AS b
              FROM metrics GROUP BY account_id) t"
    ))
    .unwrap();
    assert_eq!(same, Some(true));
    let text_form = sql_f64("SELECT health_score.score_agg('churn', k, v) FROM (VALUES ('logins', '10'), ('nps', 'promoter'), (NULL, 'ignored')) t(k, v)");
    assert!(close(text_form, core_score(serde_json::json!({"logins": "10", "nps": "promoter"}))));
    // a group of NULL keys only is the empty object: NULL under reweight, 0 when missing is zero
    let zero = r#"{"missing": "zero", "components": [{"name": "a", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}}]}"#;
    let empty = format!(
        "SELECT health_score.score_agg($${zero}$$::jsonb, k, v) FROM (VALUES (NULL::text, '5'::jsonb)) t(k, v)"
    );
    assert_eq!(sql_f64(&empty), Some(0.0));
    let reweighted = empty.replace(r#""missing": "zero", "#, "");
    assert_eq!(sql_f64(&reweighted), None);
    install_error_helper();
    let (state, message) =
        error_of("SELECT health_score.score_agg('churn', k, v) FROM (VALUES ('logins', 1.0), ('logins', 2.0)) t(k, v)");
    assert_eq!(state, "22023");
    assert!(message.contains("\"logins\""), "{message}");
}

#[pg_test]
fn score_agg_runs_in_parallel() {
    setup_model();
    Spi::run(
        "CREATE TABLE big_metrics AS
         SELECT a % 200 AS account_id, 'k' || (a / 200) AS metric, (a % 17)::float8 AS value
           FROM generate_series(0, 19999) a;
         UPDATE big_metrics SET metric = 'logins' WHERE metric = 'k0';
         UPDATE big_metrics SET metric = 'active' WHERE metric = 'k1';
         ANALYZE big_metrics;",
    )
    .unwrap();
    force_parallel_aggregation();
    assert_parallel_aggregate(
        "SELECT account_id, health_score.score_agg('churn', metric, value) FROM big_metrics GROUP BY account_id",
    );
    // and the parallel result equals the serial one
    let parallel = sql_f64("SELECT sum(s) FROM (SELECT health_score.score_agg('churn', metric, value) s FROM big_metrics GROUP BY account_id) t");
    Spi::run("SET LOCAL max_parallel_workers_per_gather = 0").unwrap();
    let serial = sql_f64("SELECT sum(s) FROM (SELECT health_score.score_agg('churn', metric, value) s FROM big_metrics GROUP BY account_id) t");
    assert!(close(parallel, serial));
}
