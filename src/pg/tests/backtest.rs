// The `#[pg_test]`s of `src/pg/backtest.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

use crate::pg::test_support::*;

#[pg_test]
fn auc_equals_plain_pair_counting_and_runs_in_parallel() {
    setup_outcomes();
    let expected = sql_f64(
        "SELECT avg(CASE WHEN c.score < r.score THEN 1.0 WHEN c.score = r.score THEN 0.5 ELSE 0 END)::float8
           FROM outcomes c, outcomes r
          WHERE c.churned AND NOT r.churned
            AND c.score NOT IN ('NaN', 'Infinity', '-Infinity') AND r.score NOT IN ('NaN', 'Infinity', '-Infinity')",
    );
    let auc = sql_f64("SELECT health_score.auc(score, churned) FROM outcomes");
    assert!((auc.unwrap() - expected.unwrap()).abs() < 1e-12, "{auc:?} vs {expected:?}");
    // a churn probability (here: the score negated) gives 1 - AUC
    let flipped = sql_f64("SELECT health_score.auc(-score, churned) FROM outcomes");
    assert!((flipped.unwrap() - (1.0 - expected.unwrap())).abs() < 1e-12);
    assert_eq!(sql_f64("SELECT health_score.auc(score, churned) FROM outcomes WHERE churned"), None);
    force_parallel_aggregation();
    assert_parallel_aggregate("SELECT grp, health_score.auc(score, churned) FROM outcomes GROUP BY grp");
    let total = "SELECT sum(a) FROM (SELECT health_score.auc(score, churned) AS a FROM outcomes GROUP BY grp) x";
    let parallel = sql_f64(total);
    Spi::run("SET LOCAL max_parallel_workers_per_gather = 0").unwrap();
    assert_eq!(parallel, sql_f64(total), "exact: the same in parallel");
}

/// As a window aggregate, over a growing and a moving frame, `auc` equals `auc` over each
/// frame's rows: its final function sorts the state it is shown, which later rows add to.
#[pg_test]
fn auc_over_window_frames_equals_auc_over_their_rows() {
    setup_outcomes();
    for (frame, low, high) in [
        ("ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW", -1_000_000, 0),
        ("ROWS BETWEEN 20 PRECEDING AND 5 FOLLOWING", -20, 5),
    ] {
        let differing = Spi::get_one::<i64>(&format!(
            "WITH framed AS (SELECT id, grp, health_score.auc(score, churned) OVER w AS a, row_number() OVER w AS at
                               FROM outcomes WINDOW w AS (PARTITION BY grp ORDER BY id {frame})),
                  numbered AS (SELECT o.*, row_number() OVER (PARTITION BY grp ORDER BY id) AS at FROM outcomes o)
             SELECT count(*) FROM framed f
              WHERE f.a IS DISTINCT FROM (SELECT health_score.auc(n.score, n.churned) FROM numbered n
                                           WHERE n.grp = f.grp AND n.at BETWEEN f.at + {low} AND f.at + {high})"
        ))
        .unwrap();
        assert_eq!(differing, Some(0), "{frame}");
    }
}

#[pg_test]
fn band_report_and_evaluate_against_outcomes() {
    setup_model();
    Spi::run(
        "CREATE TABLE book AS
           SELECT g AS id, (g * 7) % 21 AS logins, ((g * 11) % 100)::numeric AS active,
                  (ARRAY['promoter', 'passive', NULL])[1 + g % 3] AS nps, g % 4 AS overdue,
                  CASE WHEN g % 50 = 0 THEN NULL ELSE ((g * 7) % 21 < 6 OR g % 9 = 0)::int END AS churned
             FROM generate_series(1, 300) g;",
    )
    .unwrap();
    // band_report: every band in rank order, counts as band() and the outcome give them
    let mismatches = Spi::get_one::<i64>(
        "WITH expected AS (
             SELECT health_score.band('churn', b) AS band, count(*) AS accounts, sum(b.churned) AS churned
               FROM book b WHERE b.churned IS NOT NULL GROUP BY 1),
         overall AS (SELECT avg(churned)::float8 AS rate FROM book WHERE churned IS NOT NULL)
         SELECT count(*) FROM health_score.band_report('churn', 'book', 'churned') r
           LEFT JOIN expected e USING (band), overall
          WHERE r.band IS NOT NULL
            AND (r.accounts <> coalesce(e.accounts, 0) OR r.churned <> coalesce(e.churned, 0)
                 OR abs(r.lift - (e.churned::float8 / e.accounts) / overall.rate) > 1e-12)",
    )
    .unwrap();
    assert_eq!(mismatches, Some(0));
    let ranks = Spi::get_one::<String>(
        "SELECT string_agg(coalesce(band, 'NULL') || coalesce(band_rank::text, ''), ',') FROM health_score.band_report('churn', 'book', 'churned')",
    )
    .unwrap();
    assert_eq!(ranks.as_deref(), Some("red0,yellow1,green2,NULL"));
    // evaluate: AUC, log-loss and Brier of the calibration (p = σ(2 − 0.05 s)), computed by hand
    let row = Spi::get_three::<i64, f64, f64>(
        "WITH s AS (SELECT health_score.score('churn', b) AS score, b.churned = 1 AS churned FROM book b WHERE b.churned IS NOT NULL),
              p AS (SELECT *, 1 / (1 + exp(-(2 - 0.05 * score))) AS p FROM s)
         SELECT e.accounts,
                abs(e.log_loss - (SELECT avg(CASE WHEN churned THEN -ln(p) ELSE -ln(1 - p) END) FROM p))
              + abs(e.brier - (SELECT avg((p - churned::int) ^ 2) FROM p)),
                abs(e.auc - (SELECT health_score.auc(score, churned) FROM s))
           FROM health_score.evaluate('churn', 'book', 'churned') e",
    )
    .unwrap();
    assert_eq!(row.0, Some(294));
    assert!(row.1.unwrap() < 1e-12 && row.2.unwrap() == 0.0, "{row:?}");
    assert_eq!(
        Spi::get_one::<i64>("SELECT outcome_unknown FROM health_score.evaluate('churn', 'book', 'churned')").unwrap(),
        Some(6)
    );
    // an inline model gives the same; a bad outcome value is a clear error
    let inline = sql_f64(&format!("SELECT auc FROM health_score.evaluate($${MODEL}$$::jsonb, 'book', 'churned')"));
    assert_eq!(inline, sql_f64("SELECT auc FROM health_score.evaluate('churn', 'book', 'churned')"));
    install_error_helper();
    Spi::run("UPDATE book SET churned = 2 WHERE id = 1").unwrap();
    assert_eq!(error_of("SELECT * FROM health_score.evaluate('churn', 'book', 'churned')").0, "22023");
    assert_eq!(error_of("SELECT * FROM health_score.evaluate('churn', 'book', 'nps')").0, "42804");
    // a missing outcome column names it, and the hint names the columns there are
    let (state, message) = error_of("SELECT * FROM health_score.evaluate('churn', 'book', 'churnd')");
    assert_eq!((state.as_str(), message.as_str()), ("42703", "outcome column churnd: public.book has no such column"));
    let hint_lists_them = Spi::get_one::<bool>(
        "SELECT health_score_internal._columns_hint('book') = 'public.book has the columns ' || string_agg(attname, ', ' ORDER BY attnum)
           FROM pg_attribute WHERE attrelid = 'book'::regclass AND attnum > 0 AND NOT attisdropped",
    )
    .unwrap();
    assert_eq!(hint_lists_them, Some(true));
}

#[pg_test]
fn backtest_counts_churn_within_the_horizon_of_each_snapshot() {
    setup_accounts();
    Spi::run(
        "INSERT INTO accounts SELECT g, (g * 7) % 21, ((g * 11) % 100)::numeric, 'passive', g % 3 FROM generate_series(4, 60) g;
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01');
         UPDATE accounts SET logins = logins / 2 WHERE id % 4 = 0;
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-02-01');
         CREATE TABLE churns (account text, churned_on date);
         INSERT INTO churns SELECT g::text, date '2026-01-01' + (g % 75) FROM generate_series(1, 60) g WHERE g % 3 = 0;
         INSERT INTO churns VALUES ('6', '2026-03-30'), ('9', NULL), ('999', '2026-01-05');",
    )
    .unwrap();
    // the same thing written plainly, snapshot by snapshot, with correlated subqueries
    let mismatches = Spi::get_one::<i64>(
        "WITH plain AS (
             SELECT s.scored_at, count(*) AS accounts,
                    count(*) FILTER (WHERE (SELECT min(c.churned_on) FROM churns c WHERE c.account = s.entity_key
                                             AND c.churned_on > s.scored_at) <= s.scored_at + interval '30 days') AS churned
               FROM health_score.scores s
              WHERE NOT EXISTS (SELECT FROM churns c WHERE c.account = s.entity_key AND c.churned_on <= s.scored_at)
              GROUP BY s.scored_at)
         SELECT count(*) FROM health_score.backtest('churn', 'churns', 'account', 'churned_on', '30 days') b
           FULL JOIN plain p USING (scored_at)
          WHERE b.accounts IS DISTINCT FROM p.accounts OR b.churned IS DISTINCT FROM p.churned
             OR b.complete IS DISTINCT FROM true",
    )
    .unwrap();
    assert_eq!(mismatches, Some(0));
    // the AUC by counting pairs, and the bands by grouping, both written plainly
    let mismatches = Spi::get_one::<i64>(
        "WITH o AS (
             SELECT s.scored_at, s.score, s.band, s.band_rank,
                    coalesce((SELECT min(c.churned_on) FROM churns c WHERE c.account = s.entity_key
                               AND c.churned_on > s.scored_at) <= s.scored_at + interval '30 days', false) AS churned
               FROM health_score.scores s
              WHERE NOT EXISTS (SELECT FROM churns c WHERE c.account = s.entity_key AND c.churned_on <= s.scored_at)
         ), pairs AS (
             SELECT a.scored_at, avg(CASE WHEN a.score < b.score THEN 1 WHEN a.score = b.score THEN 0.5 ELSE 0 END)::float8 AS auc
               FROM o a JOIN o b ON a.scored_at = b.scored_at AND a.churned AND NOT b.churned
              WHERE a.score IS NOT NULL AND b.score IS NOT NULL
              GROUP BY a.scored_at
         ), bands AS (
             SELECT scored_at, band, band_rank, count(*) AS n, count(*) FILTER (WHERE churned) AS k
               FROM o WHERE band IS NOT NULL GROUP BY 1, 2, 3
         )
         SELECT count(*) FROM health_score.backtest('churn', 'churns', 'account', 'churned_on', '30 days') b
           LEFT JOIN pairs p USING (scored_at)
          WHERE p.auc IS NULL OR abs(b.auc - p.auc) > 1e-12
             OR b.bands IS DISTINCT FROM (
                    SELECT jsonb_object_agg(x.band, jsonb_build_object('band_rank', x.band_rank, 'accounts', x.n,
                                                                       'churned', x.k, 'churn_rate', x.k::float8 / x.n))
                      FROM bands x WHERE x.scored_at = b.scored_at)",
    )
    .unwrap();
    assert_eq!(mismatches, Some(0));
    // the second snapshot leaves out who churned in January
    let accounts = Spi::get_one::<i64>(
        "SELECT accounts FROM health_score.backtest('churn', 'churns', 'account', 'churned_on', '30 days') WHERE scored_at = '2026-02-01'",
    )
    .unwrap();
    let churned_in_january = Spi::get_one::<i64>(
        "SELECT count(DISTINCT account) FROM churns WHERE churned_on <= '2026-02-01' AND account::int <= 60",
    )
    .unwrap();
    assert_eq!(accounts, Some(60 - churned_in_january.unwrap()));
    let bands = Spi::get_one::<i64>(
        "SELECT sum((v ->> 'accounts')::bigint)::bigint FROM health_score.backtest('churn', 'churns', 'account', 'churned_on', '30 days') b,
                jsonb_each(b.bands) e(k, v) WHERE b.scored_at = '2026-01-01'",
    )
    .unwrap();
    assert_eq!(bands, Some(60));
    let incomplete = Spi::get_one::<bool>(
        "SELECT bool_and(NOT complete) FROM health_score.backtest('churn', 'churns', 'account', 'churned_on', '100 years')",
    )
    .unwrap();
    assert_eq!(incomplete, Some(true));
    // the churn time must be a date or a timestamp: a text column is a clear error, not a cast failure
    install_error_helper();
    Spi::run("ALTER TABLE churns ADD COLUMN noted text DEFAULT 'soon'").unwrap();
    let (state, message) =
        error_of("SELECT * FROM health_score.backtest('churn', 'churns', 'account', 'noted', '30 days')");
    assert_eq!(state, "42804", "{message}");
    assert!(message.contains("churned_at column noted is of type text"), "{message}");
}

#[pg_test]
fn calibrate_fits_the_churn_probability_to_outcomes() {
    setup_model();
    Spi::run(
        "CREATE TABLE book AS
           SELECT g AS id, (g * 7) % 21 AS logins, ((g * 11) % 100)::numeric AS active,
                  (ARRAY['promoter', 'passive', NULL])[1 + g % 3] AS nps, g % 4 AS overdue,
                  ((g * 7) % 21 < 6 OR g % 9 = 0) AS churned
             FROM generate_series(1, 300) g;
         CREATE TABLE fitted AS SELECT health_score.calibrate('churn', 'book', 'churned') AS model;",
    )
    .unwrap();
    // the regularised log-loss has zero gradient at the fitted (a, b), computed plainly
    let gradient = Spi::get_two::<f64, f64>(
        "WITH c AS (SELECT (model -> 'calibration' ->> 'intercept')::float8 AS a, (model -> 'calibration' ->> 'slope')::float8 AS b FROM fitted),
              s AS (SELECT health_score.score('churn', k) AS score, k.churned::int AS y FROM book k),
              p AS (SELECT s.*, 1 / (1 + exp(-(c.a + c.b * s.score))) AS p, c.b FROM s, c WHERE s.score IS NOT NULL)
         SELECT avg(p - y), avg((p - y) * score) + 1e-4 * min(b) FROM p",
    )
    .unwrap();
    assert!(gradient.0.unwrap().abs() < 1e-8 && gradient.1.unwrap().abs() < 1e-8, "{gradient:?}");
    // the rest of the model is unchanged, and it is valid
    let same = Spi::get_one::<bool>(&format!(
        "SELECT (model - 'calibration') = ($${MODEL}$$::jsonb - 'calibration') AND NOT EXISTS (SELECT FROM health_score.validate(model)) FROM fitted"
    ))
    .unwrap();
    assert_eq!(same, Some(true));
    // low scores churn here, so the slope is negative
    let slope = sql_f64("SELECT (model -> 'calibration' ->> 'slope')::float8 FROM fitted");
    assert!(slope.unwrap() < 0.0);
}

/// The `bytea`-state support functions of backtest, parent_health, the fits and suggest stay
/// executable (Citus checks the caller's right to them), so they defend themselves: a call from
/// outside an aggregate, and a forged state in a user's own aggregate over them, end in 22023.
#[pg_test]
fn expanded_state_functions_refuse_outside_calls_and_forged_states() {
    install_error_helper();
    for q in [
        "SELECT health_score_internal._backtest_step(NULL, 1, 'red', 1, true)",
        "SELECT health_score_internal._backtest_merge(NULL, NULL)",
        "SELECT health_score_internal._parent_step(NULL, 'm'::text, 'a', 1, 1)",
        "SELECT health_score_internal._parent_step(NULL, '{}'::jsonb, 'a', 1, 1, 'red', '{}')",
        "SELECT health_score_internal._parent_merge(NULL, NULL)",
        "SELECT health_score_internal._fit_step(NULL, '{-1, 0.5}', true, NULL)",
        "SELECT health_score_internal._fit_merge(NULL, NULL)",
        "SELECT health_score_internal._fit_shapes_step(NULL, '\\x', true, '{}')",
        "SELECT health_score_internal._fit_shapes_merge(NULL, NULL)",
        "SELECT health_score_internal._suggest_step(NULL, '\\x', true, false, '{}', '{}', '{}')",
        "SELECT health_score_internal._suggest_merge(NULL, NULL)",
    ] {
        let (state, message) = error_of(q);
        assert_eq!(state, "22023", "{q}: {message}");
        assert!(message.contains("can only be called by the aggregate"), "{q}: {message}");
    }
    Spi::run(
        "CREATE AGGREGATE pg_temp.forged_backtest(double precision, text, integer, boolean) (
             SFUNC = health_score_internal._backtest_step, STYPE = bytea, INITCOND = '\\x0104ffffffff',
             FINALFUNC = health_score_internal._backtest_result);
         CREATE AGGREGATE pg_temp.merged_backtest(bytea) (SFUNC = health_score_internal._backtest_merge, STYPE = bytea,
             FINALFUNC = health_score_internal._backtest_result);
         CREATE AGGREGATE pg_temp.merged_fit(bytea) (SFUNC = health_score_internal._fit_merge, STYPE = bytea,
             FINALFUNC = health_score_internal._fit_result);
         CREATE AGGREGATE pg_temp.merged_parent(bytea) (SFUNC = health_score_internal._parent_merge, STYPE = bytea,
             FINALFUNC = health_score_internal._parent_result);",
    )
    .unwrap();
    for q in [
        "SELECT pg_temp.forged_backtest(x, 'red', 1, x > 5) FROM generate_series(1, 10) x",
        // another aggregate's kind (auc's flat state) and a truncated one
        "SELECT pg_temp.merged_backtest(b) FROM (VALUES ('\\x010900000000'::bytea)) v(b)",
        "SELECT pg_temp.merged_fit(b) FROM (VALUES ('\\x0105ffffffffffffffff00'::bytea)) v(b)",
        "SELECT pg_temp.merged_parent(b) FROM (VALUES ('\\x010601'::bytea)) v(b)",
        "SELECT health_score_internal._backtest_result('\\x0104'::bytea)",
        "SELECT health_score_internal._fit_shapes_result('\\x0107ffff'::bytea)",
        "SELECT health_score_internal._suggest_result('\\x0108'::bytea)",
    ] {
        let (state, message) = error_of(q);
        assert_eq!(state, "22023", "{q}: {message}");
        assert!(message.contains("corrupt aggregate state"), "{q}: {message}");
    }
    // a fit refuses more leaves than its solver takes before building its matrices: 54000
    Spi::run("CREATE TABLE wide AS SELECT g AS id, g::float8 AS x, g % 2 = 0 AS churned FROM generate_series(1, 40) g")
        .unwrap();
    let wide = "SELECT health_score.fit(jsonb_build_object('components', (SELECT jsonb_agg(jsonb_build_object(
                    'name', 'c' || i, 'input', 'x', 'weight', 1,
                    'normalize', jsonb_build_object('type', 'linear', 'min', 0, 'max', 40))) FROM generate_series(1, 4096) i)),
                'wide', 'churned')";
    let (state, message) = error_of(wide);
    assert_eq!(state, "54000", "{message}");
    assert!(message.contains("at most 4095"), "{message}");
}
