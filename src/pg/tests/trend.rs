// The `#[pg_test]`s of `src/pg/trend.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

use crate::pg::test_support::*;

#[pg_test]
fn trend_agrees_with_built_in_aggregates() {
    setup_series();
    let mismatches = Spi::get_one::<i64>(
        "WITH t AS (SELECT account, health_score.trend(at, score) AS t FROM series GROUP BY account),
              b AS (SELECT account, count(*) AS n, min(at) AS first_at, max(at) AS last_at, min(score) AS lo, max(score) AS hi,
                           regr_slope(score, extract(epoch FROM at) / 86400) AS slope
                      FROM series WHERE at IS NOT NULL AND score IS NOT NULL GROUP BY account),
              f AS (SELECT b.account,
                           (SELECT avg(score) FROM series s WHERE s.account = b.account AND s.at = b.first_at AND score IS NOT NULL) AS first_score,
                           (SELECT avg(score) FROM series s WHERE s.account = b.account AND s.at = b.last_at AND score IS NOT NULL) AS last_score
                      FROM b)
         SELECT count(*) FROM t JOIN b USING (account) JOIN f USING (account)
          WHERE (t).n <> b.n OR (t).first_at <> b.first_at OR (t).last_at <> b.last_at
             OR abs((t).first_score - f.first_score) > 1e-9 OR abs((t).last_score - f.last_score) > 1e-9
             OR abs((t).delta - (f.last_score - f.first_score)) > 1e-9
             OR abs((t).pct_change - 100 * (f.last_score - f.first_score) / nullif(f.first_score, 0)) > 1e-9 * greatest(1, abs((t).pct_change))
             OR ((t).pct_change IS NULL) <> (f.first_score = 0)
             OR (t).min_score <> b.lo OR (t).max_score <> b.hi
             OR abs((t).slope_per_day - b.slope) > 1e-9 * greatest(1, abs(b.slope))",
    )
    .unwrap();
    assert_eq!(mismatches, Some(0));
    let groups = Spi::get_one::<i64>(
        "SELECT count(*) FROM (SELECT health_score.trend(at, score) FROM series GROUP BY account) t",
    )
    .unwrap();
    assert_eq!(groups, Some(60));
    // nothing to count: NULL; one time only: no slope; a first score of 0: no percentage
    let empty = Spi::get_one::<bool>(
        "SELECT health_score.trend(at, score) IS NULL FROM series WHERE account = 2 AND at IS NULL",
    )
    .unwrap();
    assert_eq!(empty, Some(true));
    let row = Spi::get_two::<i64, bool>(
        "SELECT (t).n, (t).slope_per_day IS NULL AND (t).pct_change IS NULL AND (t).delta = 0 AND (t).max_score = 0
           FROM (SELECT health_score.trend(at, s) AS t FROM (VALUES (timestamptz '2026-01-01', 0::float8), ('2026-01-01', -0.0), ('2026-01-01', 0)) v(at, s)) x",
    )
    .unwrap();
    assert_eq!(row, (Some(3), Some(true)));
    install_error_helper();
    let (state, message) = error_of("SELECT health_score.trend(now(), 'NaN'::float8)");
    assert_eq!(state, "22023");
    assert!(message.contains("finite"), "{message}");
    let (state, _) = error_of("SELECT health_score.trend('infinity'::timestamptz, 1)");
    assert_eq!(state, "22023");
}

#[pg_test]
fn trend_runs_in_parallel_and_over_window_frames() {
    setup_series();
    force_parallel_aggregation();
    assert_parallel_aggregate("SELECT account, health_score.trend(at, score) FROM series GROUP BY account");
    let total = "SELECT sum((t).slope_per_day)::float8 FROM (SELECT health_score.trend(at, score) t FROM series GROUP BY account) x";
    let parallel = sql_f64(total);
    Spi::run("SET LOCAL max_parallel_workers_per_gather = 0").unwrap();
    assert!(close(parallel, sql_f64(total)));
    // a rolling 7-day trend per account equals the trend of each row's own 7-day window
    let mismatches = Spi::get_one::<i64>(
        "WITH w AS (SELECT account, at, health_score.trend(at, score) OVER (PARTITION BY account ORDER BY at RANGE interval '7 days' PRECEDING) AS t
                      FROM series WHERE at IS NOT NULL)
         SELECT count(*) FROM w
          WHERE coalesce((t).n, 0) <> (SELECT count(*) FROM series s WHERE s.account = w.account AND s.at BETWEEN w.at - interval '7 days' AND w.at AND s.score IS NOT NULL)
             OR abs(coalesce((t).slope_per_day, 0) - coalesce((SELECT regr_slope(score, extract(epoch FROM at) / 86400) FROM series s
                     WHERE s.account = w.account AND s.at BETWEEN w.at - interval '7 days' AND w.at), 0)) > 1e-9",
    )
    .unwrap();
    assert_eq!(mismatches, Some(0));
}

#[pg_test]
fn trends_gives_each_entitys_trend_in_a_window_as_columns() {
    install_error_helper();
    Spi::run(
        r#"SELECT health_score.set_model('t', '{"components": [{"name": "x", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 100}}]}');
           CREATE TABLE src (id text, x float8);
           INSERT INTO src SELECT 'e' || g, g * 10 FROM generate_series(1, 3) g;
           SELECT health_score.snapshot('t', 'src', 'id', '2026-01-01');
           UPDATE src SET x = x + 7 WHERE id = 'e1';
           SELECT health_score.snapshot('t', 'src', 'id', '2026-01-03');
           UPDATE src SET x = x - 4;
           SELECT health_score.snapshot('t', 'src', 'id', '2026-01-10');"#,
    )
    .unwrap();
    // the same by plain SQL over the window (2026-01-02, 2026-01-10]
    let mismatches = Spi::get_one::<i64>(
        "WITH w AS (SELECT entity_key, scored_at, score FROM health_score.scores
                     WHERE model = 't' AND scored_at > '2026-01-02' AND scored_at <= '2026-01-10'),
              plain AS (SELECT entity_key, count(*) AS n, min(score) AS lo, max(score) AS hi,
                               regr_slope(score, extract(epoch FROM scored_at) / 86400) AS slope,
                               (array_agg(score ORDER BY scored_at))[1] AS first,
                               (array_agg(score ORDER BY scored_at DESC))[1] AS last
                          FROM w GROUP BY entity_key)
         SELECT count(*) FROM plain p FULL JOIN health_score.trends('t', '8 days', '2026-01-10') t USING (entity_key)
          WHERE t.n IS DISTINCT FROM p.n OR t.min_score IS DISTINCT FROM p.lo OR t.max_score IS DISTINCT FROM p.hi
             OR abs(t.slope_per_day - p.slope) > 1e-9 OR t.first_score IS DISTINCT FROM p.first
             OR t.last_score IS DISTINCT FROM p.last OR abs(t.delta - (p.last - p.first)) > 1e-9",
    )
    .unwrap();
    assert_eq!(mismatches, Some(0));
    assert_eq!(
        Spi::get_one::<i64>("SELECT count(*) FROM health_score.trends('t', '8 days', '2026-01-10')").unwrap(),
        Some(3)
    );
    assert_eq!(error_of("SELECT * FROM health_score.trends('nope')").0, "42704");
    assert_eq!(error_of("SELECT * FROM health_score.trends('t@1')").0, "22023");
    assert_eq!(error_of("SELECT * FROM health_score.trends('t', '-1 day')").0, "22023");
}

/// The flat-state support functions of trend, auc and score_agg stay executable (Citus checks the
/// caller's right to them), so they defend themselves: a call from outside an aggregate, and
/// a forged state in a user's own aggregate over them, end in 22023, never in a misread.
#[pg_test]
fn flat_state_functions_refuse_outside_calls_and_forged_states() {
    install_error_helper();
    for q in [
        "SELECT health_score_internal._auc_step(NULL, 1, true)",
        "SELECT health_score_internal._auc_merge(NULL, NULL)",
        "SELECT health_score_internal._trend_step(NULL, now(), 1)",
        "SELECT health_score_internal._trend_merge(NULL, NULL)",
        "SELECT health_score_internal._score_agg_step(NULL, '{}'::jsonb, 'a', 1::float8)",
        "SELECT health_score_internal._score_agg_merge(NULL, NULL)",
    ] {
        let (state, message) = error_of(q);
        assert_eq!(state, "22023", "{q}: {message}");
        assert!(message.contains("can only be called by the aggregate"), "{q}: {message}");
    }
    Spi::run(
        "CREATE AGGREGATE pg_temp.forged_auc(double precision, boolean) (SFUNC = health_score_internal._auc_step,
             STYPE = bytea, INITCOND = '\\x0109000000ffffffffffffff7f0000000000000000100000000000000000',
             FINALFUNC = health_score_internal._auc_result);
         CREATE AGGREGATE pg_temp.forged_trend(timestamptz, double precision) (SFUNC = health_score_internal._trend_step,
             STYPE = bytea, INITCOND = '\\x010a0000', FINALFUNC = health_score_internal._trend_result);
         CREATE AGGREGATE pg_temp.merged_auc(bytea) (SFUNC = health_score_internal._auc_merge, STYPE = bytea,
             FINALFUNC = health_score_internal._auc_result);
         CREATE AGGREGATE pg_temp.merged_trend(bytea) (SFUNC = health_score_internal._trend_merge, STYPE = bytea,
             FINALFUNC = health_score_internal._trend_result);
         CREATE AGGREGATE pg_temp.forged_score_agg(text, text, double precision) (SFUNC = health_score_internal._score_agg_step,
             STYPE = bytea, INITCOND = '\\x010b0000ff00000000000000', FINALFUNC = health_score_internal._score_agg_result);
         CREATE AGGREGATE pg_temp.merged_score_agg(bytea) (SFUNC = health_score_internal._score_agg_merge, STYPE = bytea,
             FINALFUNC = health_score_internal._score_agg_result);",
    )
    .unwrap();
    for q in [
        "SELECT pg_temp.forged_auc(x, x > 5) FROM generate_series(1, 10) x",
        "SELECT pg_temp.forged_trend(now(), x) FROM generate_series(1, 10) x",
        "SELECT pg_temp.merged_auc(b) FROM (VALUES ('\\x0109'::bytea), ('\\x'::bytea)) v(b)",
        "SELECT pg_temp.merged_auc(b) FROM (VALUES ('\\x01030000000000000000000000000000000000000000000000000000'::bytea)) v(b)",
        "SELECT pg_temp.merged_trend(b) FROM (VALUES ('\\x010a00000000'::bytea)) v(b)",
        "SELECT pg_temp.forged_score_agg('m', 'logins', 1) FROM generate_series(1, 3)",
        "SELECT pg_temp.merged_score_agg(b) FROM (VALUES ('\\x010b0000010000000000000005000000000000000000000000000000020100000078'::bytea)) v(b)",
    ] {
        let (state, message) = error_of(q);
        assert_eq!(state, "22023", "{q}: {message}");
        assert!(message.contains("corrupt state"), "{q}: {message}");
    }
}
