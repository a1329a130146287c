// `#[pg_test]`s: the SQL surface inside a real PostgreSQL, each test in its own transaction.
// Expected values are computed here independently (by hand or by the pure core on the same
// JSON), never copied from what the SQL printed.

use pgrx::prelude::*;

use crate::core::{Json, Model};

const MODEL: &str = r#"{
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

fn core_score(input: serde_json::Value) -> Option<f64> {
    let model = Model::parse(&Json::from(serde_json::from_str::<serde_json::Value>(MODEL).unwrap())).unwrap();
    let input = Json::from(input);
    model.evaluate(&model.values_from_json(&input)).unwrap().score
}

fn sql_f64(query: &str) -> Option<f64> {
    Spi::get_one::<f64>(query).expect("query runs")
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        (None, None) => true,
        _ => false,
    }
}

fn setup_model() {
    Spi::run(&format!("SELECT health_score.set_model('churn', $${MODEL}$$::jsonb)")).unwrap();
}

/// Runs `query` in a subtransaction and returns the SQLSTATE and message of its error. The
/// helper is a temporary function: tests run side by side, and a shared one would make them
/// wait on (and deadlock over) each other's uncommitted definitions.
fn error_of(query: &str) -> (String, String) {
    let q = query.replace('\'', "''");
    let row = Spi::get_two::<String, String>(&format!(
        "SELECT * FROM pg_temp.health_score_test_error('{q}')"
    ))
    .expect("error helper runs");
    (row.0.unwrap_or_default(), row.1.unwrap_or_default())
}

fn install_error_helper() {
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
fn force_parallel_aggregation() {
    Spi::run(
        "SET LOCAL parallel_setup_cost = 0; SET LOCAL parallel_tuple_cost = 0;
         SET LOCAL min_parallel_table_scan_size = 0; SET LOCAL max_parallel_workers_per_gather = 2;
         SET LOCAL enable_hashagg = off",
    )
    .unwrap();
}

/// The query's plan aggregates in parallel: Partial and Finalize Aggregate under Gather.
fn assert_parallel_aggregate(query: &str) {
    let plan = Spi::explain(query).unwrap();
    let text = format!("{:?}", plan.0);
    assert!(text.contains("Partial") && text.contains("Finalize") && text.contains("Gather"), "{query}: {text}");
}

#[pg_test]
#[allow(clippy::excessive_precision)] // an input with more digits than a double holds, on purpose
fn jsonb_inputs_match_the_core() {
    for input in [
        serde_json::json!({"logins": 10, "active": 9, "nps": "promoter", "overdue": 0}),
        serde_json::json!({"logins": 0.1, "active": "12.5", "nps": "passive"}),
        serde_json::json!({"logins": 123456789.123456789, "active": 1e-7, "nps": "passive", "overdue": 3}),
        serde_json::json!({"logins": -3, "nps": true}),
        serde_json::json!({}),
    ] {
        let got = sql_f64(&format!("SELECT health_score.score($${MODEL}$$::jsonb, $${input}$$::jsonb)"));
        assert!(close(got, core_score(input.clone())), "{input}: {got:?} vs {:?}", core_score(input.clone()));
    }
}

#[pg_test]
fn numbers_keep_their_postgres_text_as_categories() {
    // JSON 3.0 keeps its text "3.0" (as input->>'nps' gives it), so it matches the "3.0" category
    let s = sql_f64(&format!("SELECT health_score.score($${MODEL}$$::jsonb, '{{\"nps\": 3.0}}'::jsonb)"));
    // nps = 0.25 with weight 1; overdue missing -> zero with weight 1: (0.25 + 0) / 2
    assert!(close(s, Some(12.5)), "{s:?}");
    let raw = Spi::get_one::<String>(&format!(
        "SELECT raw FROM health_score.explain($${MODEL}$$::jsonb, '{{\"logins\": 1.50, \"nps\": 3.0}}'::jsonb) WHERE component = 'logins'"
    ))
    .unwrap();
    assert_eq!(raw.as_deref(), Some("1.50"));
}

#[pg_test]
fn numbers_beyond_double_range_are_invalid() {
    install_error_helper();
    let (state, message) = error_of(&format!("SELECT health_score.score($${MODEL}$$::jsonb, '{{\"logins\": 1e400}}'::jsonb)"));
    assert_eq!(state, "22023");
    assert!(message.contains("component \"logins\" (input \"logins\")"), "{message}");
    let (state, message) = error_of("SELECT health_score.score('{\"scale\": 1e400, \"components\": [{\"name\": \"a\", \"weight\": 1, \"normalize\": {\"type\": \"decay\", \"half_life\": 1}}]}'::jsonb, '{}'::jsonb)");
    assert_eq!(state, "22023");
    assert!(message.contains("scale: must be a finite number"), "{message}");
}

#[pg_test]
fn rows_are_read_by_column_name_and_type() {
    setup_model();
    Spi::run(
        "CREATE TABLE accounts (id int, logins smallint, active numeric, nps text, overdue bigint);
         INSERT INTO accounts VALUES (1, 10, 9, 'promoter', 0), (2, NULL, 12.5, 'passive', NULL), (3, 4, NULL, NULL, 2)",
    )
    .unwrap();
    for (id, input) in [
        (1, serde_json::json!({"logins": 10, "active": 9, "nps": "promoter", "overdue": 0})),
        (2, serde_json::json!({"active": 12.5, "nps": "passive"})),
        (3, serde_json::json!({"logins": 4, "overdue": 2})),
    ] {
        let got = sql_f64(&format!("SELECT health_score.score('churn', a) FROM accounts a WHERE id = {id}"));
        assert!(close(got, core_score(input.clone())), "row {id}");
        let inline = sql_f64(&format!("SELECT health_score.score($${MODEL}$$::jsonb, a) FROM accounts a WHERE id = {id}"));
        assert!(close(inline, got));
    }
    // a numeric column's category is its text output; a boolean's is true/false
    Spi::run("CREATE TABLE cats (logins int, active int, nps numeric, overdue real); INSERT INTO cats VALUES (NULL, NULL, 3.0, 0)").unwrap();
    assert!(close(sql_f64("SELECT health_score.score('churn', c) FROM cats c"), Some(100.0 * (0.25 + 1.0) / 2.0)));
    Spi::run("CREATE TABLE flags (nps boolean); INSERT INTO flags VALUES (true)").unwrap();
    // overdue is not a column: 42703, even though it could be missing
    install_error_helper();
    let (state, message) = error_of("SELECT health_score.score('churn', f) FROM flags f");
    assert_eq!(state, "42703", "{message}");
    Spi::run("CREATE TABLE wrong (logins text, active int, nps text, overdue int); INSERT INTO wrong VALUES ('7', 1, 'x', 0)").unwrap();
    let (state, message) = error_of("SELECT health_score.score('churn', w) FROM wrong w");
    assert_eq!(state, "42804", "{message}");
    assert!(message.contains("\"logins\""), "{message}");
}

#[pg_test]
fn assess_band_and_probability_agree_with_score() {
    setup_model();
    let input = serde_json::json!({"logins": 15, "active": 40, "nps": "passive", "overdue": 0});
    let expected = core_score(input.clone()).unwrap();
    let (score, band) = Spi::get_two::<f64, String>(&format!(
        "SELECT score, band FROM health_score.assess('churn', $${input}$$::jsonb)"
    ))
    .unwrap();
    assert!(close(score, Some(expected)));
    let expected_band = if expected >= 70.0 { "green" } else if expected >= 40.0 { "yellow" } else { "red" };
    assert_eq!(band.as_deref(), Some(expected_band));
    let p = sql_f64(&format!("SELECT health_score.churn_probability('churn', $${input}$$::jsonb)"));
    assert!(close(p, Some(1.0 / (1.0 + (-(2.0 - 0.05 * expected)).exp()))));
}

#[pg_test]
fn explain_contributions_sum_to_the_score() {
    let input = r#"{"logins": 3, "active": 70, "nps": "passive", "overdue": 5}"#;
    let total = sql_f64(&format!(
        "SELECT sum(contribution) FROM health_score.explain($${MODEL}$$::jsonb, '{input}'::jsonb) WHERE parent IS NULL"
    ));
    let score = sql_f64(&format!("SELECT health_score.score($${MODEL}$$::jsonb, '{input}'::jsonb)"));
    assert!(close(total, score));
    let rows = Spi::get_one::<i64>(&format!("SELECT count(*) FROM health_score.explain($${MODEL}$$::jsonb, '{input}'::jsonb)")).unwrap();
    assert_eq!(rows, Some(5));
}

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
    let empty = format!("SELECT health_score.score_agg($${zero}$$::jsonb, k, v) FROM (VALUES (NULL::text, '5'::jsonb)) t(k, v)");
    assert_eq!(sql_f64(&empty), Some(0.0));
    let reweighted = empty.replace(r#""missing": "zero", "#, "");
    assert_eq!(sql_f64(&reweighted), None);
    install_error_helper();
    let (state, message) = error_of("SELECT health_score.score_agg('churn', k, v) FROM (VALUES ('logins', 1.0), ('logins', 2.0)) t(k, v)");
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
    assert_parallel_aggregate("SELECT account_id, health_score.score_agg('churn', metric, value) FROM big_metrics GROUP BY account_id");
    // and the parallel result equals the serial one
    let parallel = sql_f64("SELECT sum(s) FROM (SELECT health_score.score_agg('churn', metric, value) s FROM big_metrics GROUP BY account_id) t");
    Spi::run("SET LOCAL max_parallel_workers_per_gather = 0").unwrap();
    let serial = sql_f64("SELECT sum(s) FROM (SELECT health_score.score_agg('churn', metric, value) s FROM big_metrics GROUP BY account_id) t");
    assert!(close(parallel, serial));
}

#[pg_test]
fn scoring_functions_are_parallel_safe_and_get_gather_plans() {
    let unsafe_count = Spi::get_one::<i64>(
        "SELECT count(*) FROM pg_proc WHERE pronamespace IN ('health_score'::regnamespace, 'health_score_internal'::regnamespace)
            AND proname IN ('score', 'band', 'assess', 'explain', 'churn_probability', 'score_agg', 'validate')
            AND proparallel <> 's'",
    )
    .unwrap();
    assert_eq!(unsafe_count, Some(0));
    let with_set_clause = Spi::get_one::<i64>(
        "SELECT count(*) FROM pg_proc WHERE pronamespace IN ('health_score'::regnamespace, 'health_score_internal'::regnamespace)
            AND proname IN ('score', 'band', 'assess', 'explain') AND proconfig IS NOT NULL",
    )
    .unwrap();
    assert_eq!(with_set_clause, Some(0));
    setup_model();
    Spi::run(
        "CREATE TABLE many AS SELECT g AS id, (g % 20)::int AS logins, (g % 90)::numeric AS active,
                'passive'::text AS nps, (g % 3)::int AS overdue FROM generate_series(1, 1000000) g;
         ANALYZE many",
    )
    .unwrap();
    // what analysts run over large tables: aggregates of scores and bands. (Returning every
    // row to the client stays serial: shipping a million rows through Gather costs more than
    // scoring them, and the functions' COST says so.)
    for query in [
        "SELECT avg(health_score.score('churn', m)) FROM many m",
        "SELECT count(*) FROM many m WHERE health_score.band('churn', m) = 'red'",
        "SELECT avg(health_score.score('churn', jsonb_build_object('logins', logins))) FROM many",
    ] {
        let plan = Spi::explain(query).unwrap();
        assert!(format!("{:?}", plan.0).contains("Gather"), "{query}: {:?}", plan.0);
    }
}

#[pg_test]
fn bad_models_and_names_raise_clear_errors() {
    install_error_helper();
    setup_model();
    let (state, message) = error_of("SELECT health_score.score('{\"components\": [{\"name\": \"a\", \"weight\": 1, \"normalize\": {\"type\": \"linear\", \"min\": 10, \"max\": 5}}]}'::jsonb, '{}'::jsonb)");
    assert_eq!(state, "22023");
    assert!(message.contains("components[0].normalize.max: must be greater than min (10)"), "{message}");
    let (state, message) = error_of("SELECT health_score.score('chrun', '{}'::jsonb)");
    assert_eq!(state, "42704");
    assert!(message.contains("\"chrun\""), "{message}");
    let hint = Spi::get_one::<String>(
        "DO $$ BEGIN PERFORM health_score.score('chrun', '{}'::jsonb); EXCEPTION WHEN undefined_object THEN
            DECLARE h text; BEGIN GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT; RAISE NOTICE '%', h; PERFORM set_config('hs.hint', h, true); END; END $$;
         SELECT current_setting('hs.hint')",
    );
    assert!(hint.unwrap().unwrap_or_default().contains("\"churn\""));
    let (state, _) = error_of("SELECT health_score.score('churn@9', '{}'::jsonb)");
    assert_eq!(state, "42704");
    let (state, _) = error_of("SELECT health_score.set_model('Bad Name', '{}'::jsonb)");
    assert_eq!(state, "22023");
    let (state, message) = error_of("SELECT health_score.set_model('ok', '{\"components\": []}'::jsonb)");
    assert_eq!(state, "22023");
    assert!(message.contains("components: must not be empty"), "{message}");
    let (state, _) = error_of("UPDATE health_score.model_versions SET config = '{}'");
    assert_eq!(state, "55000");
    let (state, message) = error_of("SELECT health_score.score('churn', '[1, 2]'::jsonb)");
    assert_eq!(state, "22023", "{message}");
}

#[pg_test]
fn registry_versions_and_pinning() {
    setup_model();
    let v2 = Spi::get_one::<i32>(
        "SELECT health_score.set_model('churn', '{\"description\": \"flat\", \"components\": [{\"name\": \"logins\", \"weight\": 1, \"normalize\": {\"type\": \"linear\", \"min\": 0, \"max\": 10}}]}'::jsonb)",
    )
    .unwrap();
    assert_eq!(v2, Some(2));
    // by name: the latest version; name@1: the first
    assert!(close(sql_f64("SELECT health_score.score('churn', '{\"logins\": 5}'::jsonb)"), Some(50.0)));
    let v1 = sql_f64("SELECT health_score.score('churn@1', '{\"logins\": 5}'::jsonb)");
    assert!(close(v1, core_score(serde_json::json!({"logins": 5}))));
    let described = Spi::get_one::<String>("SELECT description FROM health_score.models WHERE name = 'churn' AND is_latest").unwrap();
    assert_eq!(described.as_deref(), Some("flat"));
}

#[pg_test]
fn one_registry_lookup_per_statement_and_call_site() {
    setup_model();
    Spi::run(
        "CREATE TABLE lookups AS SELECT g AS id, g % 20 AS logins FROM generate_series(1, 2000) g;
         SET LOCAL max_parallel_workers_per_gather = 0",
    )
    .unwrap();
    let scans = || {
        Spi::get_one::<i64>(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables
              WHERE relid = 'health_score.model_versions'::regclass",
        )
        .unwrap()
        .unwrap_or(0)
    };
    let before = scans();
    Spi::run("SELECT health_score.score('churn', jsonb_build_object('logins', logins)) FROM lookups").unwrap();
    assert_eq!(scans() - before, 1, "one call site, one statement, 2000 rows: one lookup");
    let before = scans();
    Spi::run(
        "SELECT health_score.score('churn', jsonb_build_object('logins', logins)),
                health_score.band('churn', jsonb_build_object('logins', logins)) FROM lookups",
    )
    .unwrap();
    assert_eq!(scans() - before, 2, "two call sites: two lookups");
}

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
    let plan = Spi::get_one::<pgrx::Json>("EXPLAIN (VERBOSE, FORMAT JSON) SELECT health_score.score('churn', w) FROM wide w")
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
    let rows = Spi::get_one::<i64>("SELECT count(*) FROM wide w, health_score.explain('churn', w) e WHERE w.id = 1").unwrap();
    assert_eq!(rows, Some(5));
    let band = Spi::get_one::<String>("SELECT (health_score.assess('churn', w)).band FROM wide w WHERE id = 1").unwrap();
    let expected = core_score(serde_json::json!({"logins": 12, "active": 30, "nps": "passive", "overdue": 0})).unwrap();
    let expected_band = if expected >= 70.0 { "green" } else if expected >= 40.0 { "yellow" } else { "red" };
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
fn every_object_has_a_comment() {
    // the test build's own functions (schema "tests") are not part of the extension proper
    let missing = Spi::get_one::<String>(
        "WITH members AS (
             SELECT classid, objid, pg_describe_object(classid, objid, 0) AS what
               FROM pg_depend
              WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
                AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'health_score'))
         SELECT string_agg(what, ', ')
           FROM members
          WHERE obj_description(objid, classid::regclass::text) IS NULL
            AND what <> 'schema tests' AND what NOT LIKE '% tests.%'
            AND NOT (classid = 'pg_type'::regclass AND objid <> 'health_score.assessment'::regtype)",
    )
    .unwrap();
    assert_eq!(missing, None, "objects without COMMENT ON");
}

fn setup_series() {
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
    let groups = Spi::get_one::<i64>("SELECT count(*) FROM (SELECT health_score.trend(at, score) FROM series GROUP BY account) t").unwrap();
    assert_eq!(groups, Some(60));
    // nothing to count: NULL; one time only: no slope; a first score of 0: no percentage
    let empty = Spi::get_one::<bool>("SELECT health_score.trend(at, score) IS NULL FROM series WHERE account = 2 AND at IS NULL").unwrap();
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

fn setup_accounts() {
    setup_model();
    Spi::run(
        "CREATE TABLE accounts (id int, logins int, active numeric, nps text, overdue int);
         INSERT INTO accounts VALUES (1, 20, 100, 'promoter', 0), (2, 10, 9, 'passive', 2), (3, 0, NULL, NULL, NULL);",
    )
    .unwrap();
}

#[pg_test]
fn null_and_out_of_range_arguments_to_the_table_functions_are_clear_errors() {
    setup_accounts();
    Spi::run(
        "ALTER TABLE accounts ADD COLUMN churned boolean;
         CREATE TABLE churn (id int, churned_at timestamptz);
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01');",
    )
    .unwrap();
    install_error_helper();
    // each call with one of its arguments NULL in turn
    let calls: [(&str, &[&str]); 8] = [
        ("band_report", &["'churn'::text", "'accounts'::regclass", "'churned'::text"]),
        ("evaluate", &["'churn'::text", "'accounts'::regclass", "'churned'::text"]),
        ("calibrate", &["'churn'::text", "'accounts'::regclass", "'churned'::text"]),
        ("fit", &["'churn'::text", "'accounts'::regclass", "'churned'::text"]),
        ("fit_report", &["'churn'::text", "'accounts'::regclass", "'churned'::text"]),
        ("backtest", &["'churn'::text", "'churn'::regclass", "'id'::text", "'churned_at'::text", "'90 days'::interval"]),
        ("alerts", &["'churn'::text", "1::float8", "'1 day'::interval"]),
        ("drivers", &["'churn'::text", "'1'::text", "'2026-01-01'::timestamptz", "'2026-01-01'::timestamptz"]),
    ];
    for (function, args) in calls {
        let nullable = if function == "drivers" { 1 } else { args.len() };
        for i in 0..nullable {
            let mut given: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            given[i] = format!("NULL::{}", args[i].rsplit("::").next().unwrap());
            let (state, message) = error_of(&format!("SELECT * FROM health_score.{function}({})", given.join(", ")));
            assert_eq!(state, "22023", "{function} with argument {i} NULL: {message}");
            assert!(message.contains("NULL") || message.contains("must be"), "{function}, argument {i}: {message}");
        }
    }
    // inline models too
    let (state, _) = error_of("SELECT * FROM health_score.evaluate(NULL::jsonb, 'accounts', 'churned')");
    assert_eq!(state, "22023");
    // intervals that reach past the times PostgreSQL represents, and a view name it cannot parse
    let (state, message) = error_of("SELECT * FROM health_score.alerts('churn', 1, '7000 years')");
    assert_eq!(state, "22023", "{message}");
    assert!(message.contains("earliest time"), "{message}");
    let (state, message) = error_of("SELECT * FROM health_score.backtest('churn', 'churn', 'id', 'churned_at', '300000 years')");
    assert_eq!(state, "22023", "{message}");
    assert!(message.contains("latest time"), "{message}");
    let (state, message) = error_of("SELECT health_score.create_view('bad name!', 'churn', 'accounts', 'id')");
    assert_eq!(state, "42602", "{message}");
    assert!(message.starts_with("create_view:"), "{message}");
}

#[pg_test]
fn snapshot_stores_scores_and_components() {
    setup_accounts();
    let written = Spi::get_one::<i64>("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01')").unwrap();
    assert_eq!(written, Some(3));
    // each stored score is the pure core's score of the same input
    let expected = [
        core_score(serde_json::json!({"logins": 20, "active": 100, "nps": "promoter", "overdue": 0})),
        core_score(serde_json::json!({"logins": 10, "active": 9, "nps": "passive", "overdue": 2})),
        core_score(serde_json::json!({"logins": 0})),
    ];
    for (id, want) in expected.iter().enumerate() {
        let got = sql_f64(&format!("SELECT score FROM health_score.scores WHERE model = 'churn' AND entity_key = '{}'", id + 1));
        assert!(close(got, *want), "account {}: {got:?} vs {want:?}", id + 1);
    }
    // and the very double score() gives
    let differ = Spi::get_one::<i64>(
        "SELECT count(*) FROM health_score.scores s JOIN accounts a ON s.entity_key = a.id::text
          WHERE s.score IS DISTINCT FROM health_score.score('churn', a)
             OR s.coverage IS DISTINCT FROM (health_score.assess('churn', a)).coverage",
    )
    .unwrap();
    assert_eq!(differ, Some(0));
    // components hold exactly explain's contributions and normalized values, for every component
    let mismatches = Spi::get_one::<i64>(
        "SELECT count(*) FROM health_score.scores s, accounts a, health_score.explain('churn', a) e
          WHERE s.entity_key = a.id::text
            AND ((s.components -> e.component ->> 'points')::float8 IS DISTINCT FROM e.contribution
              OR (s.components -> e.component ->> 'n')::float8 IS DISTINCT FROM e.normalized)",
    )
    .unwrap();
    assert_eq!(mismatches, Some(0));
    let keys = Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores s, jsonb_object_keys(s.components) k").unwrap();
    assert_eq!(keys, Some(3 * 5));
    // written as binary JSONB, it reads back as PostgreSQL would have built it from text
    let canonical = Spi::get_one::<bool>(
        "SELECT bool_and(components = components::text::jsonb AND components::text = components::text::jsonb::text) FROM health_score.scores",
    )
    .unwrap();
    assert_eq!(canonical, Some(true));
    let row = Spi::get_three::<String, i32, f64>("SELECT band, band_rank, coverage FROM health_score.scores WHERE entity_key = '3'").unwrap();
    // only logins is present: its share is 2/4 × 1/2
    assert_eq!(row, (Some("red".into()), Some(0), Some(0.25)));
}

#[pg_test]
fn snapshot_replaces_adds_and_writes_all_or_nothing() {
    setup_accounts();
    Spi::run("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01')").unwrap();
    Spi::run("UPDATE accounts SET logins = 0 WHERE id = 1").unwrap();
    // the same time again replaces (no duplicates), with the new values
    Spi::run("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01')").unwrap();
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores").unwrap(), Some(3));
    let s1 = sql_f64("SELECT score FROM health_score.scores WHERE entity_key = '1'");
    assert!(close(s1, core_score(serde_json::json!({"logins": 0, "active": 100, "nps": "promoter", "overdue": 0}))));
    // a second source at the same time adds its own entities
    Spi::run(
        "CREATE TABLE more_accounts (key text, logins int, active numeric, nps text, overdue int);
         INSERT INTO more_accounts VALUES ('a-10', 5, 5, 'promoter', 0)",
    )
    .unwrap();
    Spi::run("SELECT health_score.snapshot('churn', 'more_accounts', 'key', '2026-01-01')").unwrap();
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores").unwrap(), Some(4));
    // bad input anywhere: a clear error and nothing written
    install_error_helper();
    Spi::run("INSERT INTO more_accounts VALUES ('a-11', 5, 'NaN', 'promoter', 0)").unwrap();
    let (state, message) = error_of("SELECT health_score.snapshot('churn', 'more_accounts', 'key', '2026-02-01')");
    assert_eq!(state, "22023");
    assert!(message.contains("\"a-11\"") && message.contains("\"seats\""), "{message}");
    Spi::run("INSERT INTO accounts VALUES (NULL, 1, 1, 'passive', 0)").unwrap();
    let (state, message) = error_of("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-02-01')");
    assert_eq!(state, "22023");
    assert!(message.contains("NULL key") && message.contains("\"id\""), "{message}");
    assert_eq!(error_of("SELECT health_score.snapshot('chrun', 'accounts', 'id')").0, "42704");
    assert_eq!(error_of("SELECT health_score.snapshot('churn', 'accounts', 'no_such_column')").0, "42703");
    // a key twice in the source, on a new time and on a time already snapshotted
    Spi::run("CREATE TABLE twice AS SELECT * FROM accounts WHERE id = 2; UPDATE twice SET id = 7; INSERT INTO twice SELECT * FROM twice").unwrap();
    for at in ["2026-03-01", "2026-01-01"] {
        let (state, message) = error_of(&format!("SELECT health_score.snapshot('churn', 'twice', 'id', '{at}')"));
        assert_eq!(state, "21000", "{message}");
        assert!(message.contains("more than one row for the same id, such as \"7\""), "{message}");
    }
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores").unwrap(), Some(4));
    // rows whose run record was deleted are still replaced, not reported as a duplicate key
    Spi::run("DELETE FROM health_score.snapshots; UPDATE accounts SET logins = 10 WHERE id = 1; DELETE FROM accounts WHERE id IS NULL")
        .unwrap();
    assert_eq!(Spi::get_one::<i64>("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01')").unwrap(), Some(3));
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores").unwrap(), Some(4));
    let s1 = sql_f64("SELECT score FROM health_score.scores WHERE entity_key = '1'");
    assert!(close(s1, core_score(serde_json::json!({"logins": 10, "active": 100, "nps": "promoter", "overdue": 0}))));
    // and bands are still compared with the earlier snapshot: account 1 falls to the worst band
    Spi::run(
        "DELETE FROM health_score.snapshots;
         UPDATE accounts SET logins = 0, active = 0, nps = 'passive', overdue = 1000 WHERE id = 1;
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-02-01');",
    )
    .unwrap();
    let (recorded, by_hand) = Spi::get_two::<i64, i64>(
        "SELECT (SELECT worsened FROM health_score.snapshots WHERE scored_at = '2026-02-01'),
                (SELECT count(*) FROM health_score.scores n JOIN health_score.scores o USING (model, entity_key)
                  WHERE n.scored_at = '2026-02-01' AND o.scored_at = '2026-01-01' AND n.band_rank < o.band_rank)",
    )
    .unwrap();
    assert_eq!(recorded, by_hand);
    assert!(by_hand.unwrap() >= 1, "account 1 must have worsened");
}

/// The component tree that drivers, alerts and generated views read: model order (parents
/// first, depth first), parents and descriptions.
#[pg_test]
fn components_come_in_model_order_with_parents_and_descriptions() {
    let rows = Spi::get_one::<String>(
        r#"SELECT string_agg(format('%s/%s/%s/%s', component, coalesce(parent, '-'), model_order, coalesce(description, '-')), ' '
                               ORDER BY model_order)
             FROM health_score_internal._components('{"components": [
                 {"name": "u", "weight": 2, "description": "usage", "components": [
                     {"name": "l", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 1}},
                     {"name": "g", "weight": 1, "components": [
                         {"name": "d", "weight": 1, "description": "deep", "normalize": {"type": "decay", "half_life": 3}}]},
                     {"name": "a", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 1}}]},
                 {"name": "z", "weight": 1, "normalize": {"type": "map", "values": {"x": 1}}}]}')"#,
    )
    .unwrap();
    assert_eq!(rows.as_deref(), Some("u/-/1/usage l/u/2/- g/u/3/- d/g/4/deep a/u/5/- z/-/6/-"));
}

#[pg_test]
fn latest_matches_a_plainly_written_reference_on_random_histories() {
    // three models, entities missing from some snapshots, NULL scores and bands among them
    Spi::run(
        "SELECT setseed(0.25);
         INSERT INTO health_score.scores (model, model_version, entity_key, scored_at, score, band, band_rank, coverage, components)
         SELECT m, 1, e, at, score, (ARRAY['red', 'yellow', 'green'])[floor(score / 40) + 1], floor(score / 40), 1, '{}'
           FROM (SELECT 'm' || i AS m, e::text AS e, timestamptz '2026-01-01' + d * interval '1 day' AS at,
                        CASE WHEN random() < 0.15 THEN NULL ELSE random() * 100 END AS score, random() AS keep
                   FROM generate_series(1, 3) i, generate_series(1, 150) e, generate_series(0, 9) d) r
          WHERE keep < 0.5",
    )
    .unwrap();
    let reference = "SELECT s.model, s.entity_key, s.scored_at, s.model_version, s.score, s.band, s.band_rank, s.coverage,
                            s.segment, p.scored_at, p.score, p.band, p.band_rank, s.score - p.score,
                            CASE WHEN p.scored_at IS NULL THEN 'new'
                                 WHEN s.band_rank < p.band_rank THEN 'worsened'
                                 WHEN s.band_rank > p.band_rank THEN 'improved'
                                 WHEN s.band_rank = p.band_rank THEN 'same' END
                       FROM health_score.scores s
                       LEFT JOIN health_score.scores p
                         ON p.model = s.model AND p.entity_key = s.entity_key
                        AND p.scored_at = (SELECT max(x.scored_at) FROM health_score.scores x
                                            WHERE x.model = s.model AND x.entity_key = s.entity_key AND x.scored_at < s.scored_at)
                      WHERE s.scored_at = (SELECT max(x.scored_at) FROM health_score.scores x
                                            WHERE x.model = s.model AND x.entity_key = s.entity_key)";
    let differ = Spi::get_one::<i64>(&format!(
        "SELECT count(*) FROM ((SELECT * FROM health_score.latest EXCEPT ALL {reference})
                               UNION ALL ({reference} EXCEPT ALL SELECT * FROM health_score.latest)) d"
    ))
    .unwrap();
    assert_eq!(differ, Some(0));
    let entities = Spi::get_one::<i64>("SELECT count(*) FROM (SELECT DISTINCT model, entity_key FROM health_score.scores) e").unwrap();
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.latest").unwrap(), entities);
    // every kind of band change occurred
    let kinds = Spi::get_one::<i64>("SELECT count(DISTINCT coalesce(band_change, 'null')) FROM health_score.latest").unwrap();
    assert_eq!(kinds, Some(5));
}

#[pg_test]
fn drivers_of_a_model_with_more_than_32_components() {
    // JSONB stores an offset instead of a length in every 32nd entry of an array
    let leaves: Vec<String> = (1..=40)
        .map(|i| format!(r#"{{"name": "l{i}", "weight": {i}, "normalize": {{"type": "linear", "min": 0, "max": 100}}}}"#))
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
    let rows = Spi::get_one::<i64>("SELECT count(*) FROM health_score.drivers('wide', '1', '2026-01-01', '2026-01-02')").unwrap();
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
    assert_eq!(Spi::get_one::<String>("SELECT band_change FROM health_score.latest WHERE entity_key = '2'").unwrap().as_deref(), Some("same"));
    let deltas = sql_f64("SELECT sum(delta) FROM health_score.history WHERE entity_key = '1'");
    assert!(close(deltas, Some(s3 - s1)));
    // drivers: top-level changes add up to the score's change; logins explain the first drop
    let total = sql_f64("SELECT sum(change) FROM health_score.drivers('churn', '1', '2026-01-01', '2026-01-15') WHERE parent IS NULL");
    assert!(close(total, Some(s3 - s1)));
    let logins = sql_f64("SELECT change FROM health_score.drivers('churn', '1', '2026-01-01', '2026-01-08') WHERE component = 'logins'");
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

#[pg_test]
fn the_reader_reads_and_scores_but_writes_nothing_and_the_admin_writes() {
    setup_accounts();
    Spi::run(
        "SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01');
         CREATE ROLE hs_test_reader; GRANT health_score_reader TO hs_test_reader;
         CREATE ROLE hs_test_admin; GRANT health_score_admin TO hs_test_admin;
         GRANT SELECT ON accounts TO hs_test_reader, hs_test_admin;",
    )
    .unwrap();
    install_error_helper();
    Spi::run("SET LOCAL ROLE hs_test_reader").unwrap();
    for query in [
        "SELECT count(*) FROM health_score.models",
        "SELECT count(*) FROM health_score.scores",
        "SELECT count(*) FROM health_score.latest",
        "SELECT count(*) FROM health_score.history",
        "SELECT count(*) FROM health_score.snapshots",
        "SELECT count(health_score.score('churn', a)) FROM accounts a",
        "SELECT count(*) FROM health_score.drivers('churn', '1', '2026-01-01', '2026-01-01')",
    ] {
        assert_eq!(error_of(query).0, "none", "{query}");
    }
    for query in [
        "SELECT health_score.set_model('other', '{\"components\": [{\"name\": \"x\", \"weight\": 1, \"normalize\": {\"type\": \"linear\", \"min\": 0, \"max\": 1}}]}')",
        "SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-02-01')",
        "SELECT health_score.schedule('churn', 'accounts', 'id', '* * * * *')",
        "SELECT health_score.create_view('reader_view', 'churn', 'accounts', 'id')",
        "SELECT health_score.refresh_views('churn')",
        "INSERT INTO health_score.model_versions (name, version, config) VALUES ('x', 1, '{}')",
        "UPDATE health_score.scores SET score = 0",
        "DELETE FROM health_score.scores",
        "DELETE FROM health_score.model_versions",
        "INSERT INTO health_score.snapshots VALUES ('x', now(), 'y', 1, 0, 0)",
    ] {
        assert_eq!(error_of(query).0, "42501", "{query}");
    }
    Spi::run("RESET ROLE; SET LOCAL ROLE hs_test_admin").unwrap();
    let v2 = Spi::get_one::<i32>(&format!("SELECT health_score.set_model('churn', $${MODEL}$$::jsonb)")).unwrap();
    assert_eq!(v2, Some(2));
    let written = Spi::get_one::<i64>("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-02-01')").unwrap();
    assert_eq!(written, Some(3));
    Spi::run("RESET ROLE").unwrap();
    // nothing a reader could abuse, dynamic SQL with a pinned search_path, hot paths without SET
    // SECURITY DEFINER only where docs/security.md says why
    let definer = Spi::get_one::<String>(
        "SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc
          WHERE pronamespace IN ('health_score'::regnamespace, 'health_score_internal'::regnamespace) AND prosecdef",
    )
    .unwrap();
    assert_eq!(definer.as_deref(), Some("_forget_view,_lock,refresh_views"));
    let unpinned = Spi::get_one::<i64>(
        "SELECT count(*) FROM pg_proc WHERE pronamespace IN ('health_score'::regnamespace, 'health_score_internal'::regnamespace)
            AND proname IN ('snapshot', 'schedule', 'unschedule', 'drivers', 'alerts', 'refresh_views', 'drop_view')
            AND NOT coalesce(array_to_string(proconfig, ',') LIKE '%search_path%', false)",
    )
    .unwrap();
    assert_eq!(unpinned, Some(0));
}

#[pg_test]
fn generated_views_show_points_follow_new_versions_and_keep_grants() {
    setup_accounts();
    install_error_helper();
    let view = Spi::get_one::<String>("SELECT health_score.create_view('public.\"we\"\"ird name\"', 'churn', 'accounts', 'id')::text")
        .unwrap();
    assert_eq!(view.as_deref(), Some("\"we\"\"ird name\""));
    let columns = Spi::get_one::<String>(
        "SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum)
           FROM pg_attribute WHERE attrelid = 'public.\"we\"\"ird name\"'::regclass AND attnum > 0",
    )
    .unwrap();
    assert_eq!(
        columns.as_deref(),
        Some("id:integer,score:double precision,band:text,coverage:double precision,segment:text,usage_points:double precision,logins_points:double precision,seats_points:double precision,nps_points:double precision,overdue_points:double precision")
    );
    // the same scores as score(), and the top-level points add up to them
    let mismatches = Spi::get_one::<i64>(
        "SELECT count(*) FROM public.\"we\"\"ird name\" v JOIN accounts a USING (id)
          WHERE v.score IS DISTINCT FROM health_score.score('churn', a)
             OR abs(v.usage_points + v.nps_points + v.overdue_points - v.score) > 1e-9
             OR abs(v.logins_points + v.seats_points - v.usage_points) > 1e-9",
    )
    .unwrap();
    assert_eq!(mismatches, Some(0));
    let uncommented = Spi::get_one::<i64>(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.\"we\"\"ird name\"'::regclass AND attnum > 0
            AND col_description(attrelid, attnum) IS NULL",
    )
    .unwrap();
    assert_eq!(uncommented, Some(0));
    assert!(Spi::get_one::<String>("SELECT obj_description('public.\"we\"\"ird name\"'::regclass, 'pg_class')").unwrap().is_some());
    // identifiers are parsed, never pasted
    Spi::run("CREATE TABLE canary (x int)").unwrap();
    let (state, _) = error_of(
        "SELECT health_score.create_view('public.x AS SELECT 1; DROP TABLE canary; CREATE VIEW public.y', 'churn', 'accounts', 'id')",
    );
    assert_ne!(state, "none");
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM pg_class WHERE relname = 'canary'").unwrap(), Some(1));
    assert_eq!(error_of("SELECT health_score.create_view('v2', 'churn', 'accounts', 'no_such')").0, "42703");
    assert_eq!(error_of("SELECT health_score.create_view('v3', 'chrun', 'accounts', 'id')").0, "42704");
    // a new version without "overdue": the view follows, and keeps its grants
    Spi::run(
        "CREATE ROLE hs_test_viewer; GRANT SELECT ON public.\"we\"\"ird name\" TO hs_test_viewer;
         SELECT health_score.set_model('churn', jsonb_set(config, '{components}', (config -> 'components') - 2))
           FROM health_score.models WHERE name = 'churn' AND version = 1;",
    )
    .unwrap();
    let columns = Spi::get_one::<String>(
        "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
          WHERE attrelid = 'public.\"we\"\"ird name\"'::regclass AND attnum > 0",
    )
    .unwrap();
    assert_eq!(columns.as_deref(), Some("id,score,band,coverage,segment,usage_points,logins_points,seats_points,nps_points"));
    let still = Spi::get_one::<bool>(
        "SELECT has_table_privilege('hs_test_viewer', 'public.\"we\"\"ird name\"', 'SELECT')
            AND has_table_privilege('health_score_reader', 'public.\"we\"\"ird name\"', 'SELECT')",
    )
    .unwrap();
    assert_eq!(still, Some(true));
    assert_eq!(Spi::get_one::<i32>("SELECT model_version FROM health_score.views").unwrap(), Some(2));
    assert_eq!(Spi::get_one::<i32>("SELECT health_score.refresh_views('churn')").unwrap(), Some(1));
}

fn setup_outcomes() {
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
    assert_eq!(Spi::get_one::<i64>("SELECT outcome_unknown FROM health_score.evaluate('churn', 'book', 'churned')").unwrap(), Some(6));
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
    let (state, message) = error_of("SELECT * FROM health_score.backtest('churn', 'churns', 'account', 'noted', '30 days')");
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

#[pg_test]
fn rescore_recomputes_stored_inputs_under_another_version() {
    install_error_helper();
    setup_accounts();
    Spi::run("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01')").unwrap();
    Spi::run("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-02', keep_inputs => false)").unwrap();
    // the raw inputs version 1 reads, as text (null when missing)
    let stored = Spi::get_one::<pgrx::JsonB>("SELECT inputs FROM health_score.scores WHERE entity_key = '2' AND scored_at = '2026-01-01'")
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
    let written =
        Spi::get_one::<i64>("SELECT health_score.rescore('churn', 2, '2026-01-01', '2026-01-31')").unwrap();
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
    let logins_points = sql_f64("SELECT (components -> 'logins' ->> 'points')::float8 FROM health_score.rescored WHERE entity_key = '1'");
    let original = sql_f64("SELECT (components -> 'logins' ->> 'points')::float8 FROM health_score.scores WHERE entity_key = '1' AND scored_at = '2026-01-01'");
    assert!(logins_points.unwrap() > original.unwrap());
    // the originals are untouched
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores WHERE model_version = 1").unwrap(), Some(6));
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

#[pg_test]
fn text_object_is_jsonb_object_written_directly() {
    let differ = Spi::get_one::<i64>(
        "SELECT count(*) FROM (VALUES
             ('{logins,nps,a_much_longer_key,b}'::text[], ARRAY['12.5', NULL, 'déjà \"vu\"', '']::text[]),
             ('{}'::text[], '{}'::text[]),
             ('{x}'::text[], '{1e-05}'::text[])) t(k, v)
          WHERE health_score_internal._text_object(k, v) IS DISTINCT FROM jsonb_object(k, v)
             OR health_score_internal._text_object(k, v)::text IS DISTINCT FROM jsonb_object(k, v)::text",
    )
    .unwrap();
    assert_eq!(differ, Some(0));
    // one call site, keys changing from row to row (its cached key order must follow)
    let differ = Spi::get_one::<i64>(
        "SELECT count(*) FROM generate_series(1, 9) g,
                LATERAL (SELECT ARRAY['k' || repeat('x', g % 3), 'z'] AS k, ARRAY[g::text, NULL] AS v) a
          WHERE health_score_internal._text_object(a.k, a.v)::text IS DISTINCT FROM jsonb_object(a.k, a.v)::text",
    )
    .unwrap();
    assert_eq!(differ, Some(0));
    install_error_helper();
    assert_eq!(error_of("SELECT health_score_internal._text_object('{a,b}', '{1}')").0, "22023");
    assert_eq!(error_of("SELECT health_score_internal._text_object('{a,a}', '{1,2}')").0, "22023");
}

/// The call-site cache must never answer for another argument value: PL/pgSQL keeps a simple
/// expression's state (and `fn_extra` with it) across executions with other parameter
/// values, and across the statements of a transaction that register new versions.
#[pg_test]
fn a_call_site_reused_across_executions_scores_each_with_its_own_model() {
    let linear = |max: u32| {
        format!(
            r#"{{"bands": [{{"name": "low", "min": 0}}, {{"name": "high", "min": {max}}}],
                 "components": [{{"name": "x", "weight": 1, "normalize": {{"type": "linear", "min": 0, "max": {max}}}}}]}}"#
        )
    };
    let (m100, m200, m400) = (linear(100), linear(200), linear(400));
    Spi::run(&format!(
        "SELECT health_score.set_model('stale_a', '{m100}'); SELECT health_score.set_model('stale_b', '{m200}');
         SELECT health_score.set_model('stale_c', '{m100}');
         CREATE FUNCTION stale_by_name(m text, i jsonb) RETURNS float8 LANGUAGE plpgsql AS
           $$ BEGIN RETURN health_score.score(m, i); END $$;
         CREATE FUNCTION stale_band(m jsonb, i jsonb) RETURNS text LANGUAGE plpgsql AS
           $$ BEGIN RETURN health_score.band(m, i); END $$;
         CREATE FUNCTION stale_sql(m text, i jsonb) RETURNS float8 LANGUAGE sql STABLE AS
           $$ SELECT health_score.score(m, i) $$;
         CREATE FUNCTION stale_twice() RETURNS text LANGUAGE plpgsql AS $$
         DECLARE r text := '';
         BEGIN
           FOR i IN 1..2 LOOP
             r := r || health_score.score('stale_c', '{{\"x\": 50}}'::jsonb) || ' ';
             PERFORM health_score.set_model('stale_c', '{m200}');
           END LOOP;
           RETURN r;
         END $$;"
    ))
    .unwrap();
    let text = |q: &str| Spi::get_one::<String>(q).unwrap().unwrap();
    // by name, in PL/pgSQL: 50 / 100 and 50 / 200
    assert_eq!(
        text("SELECT string_agg(stale_by_name(k, '{\"x\": 50}')::text, ' ' ORDER BY k) FROM (VALUES ('stale_a'), ('stale_b')) v(k)"),
        "50 25"
    );
    // inline, in PL/pgSQL: each model's own bands (50 is high for max 100 only)
    assert_eq!(
        text(&format!(
            "SELECT string_agg(stale_band(m::jsonb, '{{\"x\": 150}}'), ' ' ORDER BY n)
               FROM (VALUES (1, '{m100}'), (2, '{m200}'), (3, '{m400}')) v(n, m)"
        )),
        "high low low"
    );
    // an SQL function
    assert_eq!(
        text("SELECT string_agg(stale_sql(k, '{\"x\": 50}')::text, ' ' ORDER BY k) FROM (VALUES ('stale_a'), ('stale_b')) v(k)"),
        "50 25"
    );
    // a new version registered between two calls in one transaction
    assert_eq!(text("SELECT stale_twice()"), "50 25 ");
    // a prepared statement with a generic plan: the model is a parameter
    Spi::run(
        "SET LOCAL plan_cache_mode = force_generic_plan;
         PREPARE stale_prepared(text) AS SELECT health_score.score($1, '{\"x\": 50}'::jsonb)",
    )
    .unwrap();
    assert_eq!(sql_f64("EXECUTE stale_prepared('stale_a')"), Some(50.0));
    assert_eq!(sql_f64("EXECUTE stale_prepared('stale_b')"), Some(25.0));
    Spi::run("DEALLOCATE stale_prepared").unwrap();
}

/// A model reference is `name` or `name@N` (N a decimal from 1, no sign, no leading zero);
/// anything else is 22023, and an unknown name of any length is 42704 with a short message.
#[pg_test]
fn malformed_model_references_are_22023_and_long_unknown_names_42704() {
    install_error_helper();
    Spi::run(r#"SELECT health_score.set_model('refs', '{"components": [{"name": "x", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}}]}')"#)
        .unwrap();
    for bad in ["refs@1@1", "@1", "refs@01", "refs@+1", "refs@", ""] {
        let (state, message) = error_of(&format!("SELECT health_score.score('{bad}', '{{}}'::jsonb)"));
        assert_eq!(state, "22023", "{bad:?}: {message}");
        assert!(message.starts_with("invalid model reference"), "{bad:?}: {message}");
    }
    assert_eq!(sql_f64(r#"SELECT health_score.score('refs@1', '{"x": 5}'::jsonb)"#), Some(50.0));
    // rescore takes the version as its own argument: a version in the model was ignored
    let (state, message) = error_of("SELECT health_score.rescore('refs@1', 1, now(), now())");
    assert_eq!(state, "22023", "{message}");
    assert!(message.contains("not a version"), "{message}");
    let (state, message) = error_of("SELECT health_score.score(repeat('r', 1000000), '{}'::jsonb)");
    assert_eq!(state, "42704");
    assert!(message.chars().count() < 300, "{} characters", message.chars().count());
}

#[pg_test]
fn internals_live_in_their_own_schema() {
    // what a user lists in schema health_score (\df health_score.*) is the interface alone
    let in_public_schema = Spi::get_one::<String>(
        "SELECT string_agg(name, ', ' ORDER BY name) FROM (
             SELECT proname::text AS name FROM pg_proc WHERE pronamespace = 'health_score'::regnamespace
             UNION ALL
             SELECT typname::text FROM pg_type
              WHERE typnamespace = 'health_score'::regnamespace AND typtype = 'c'
                AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = typrelid AND c.relkind <> 'c')) o
          WHERE name LIKE '\\_%'",
    )
    .unwrap();
    assert_eq!(in_public_schema, None);
    let internal = Spi::get_one::<i64>(
        "SELECT count(*) FROM pg_proc WHERE pronamespace = 'health_score_internal'::regnamespace AND proname NOT LIKE '\\_%'",
    )
    .unwrap();
    assert_eq!(internal, Some(0));
    let moved = Spi::get_one::<i64>(
        "SELECT count(*) FROM pg_proc WHERE pronamespace = 'health_score_internal'::regnamespace",
    )
    .unwrap();
    assert!(moved.unwrap_or(0) > 60, "{moved:?}");
}

#[pg_test]
fn c_functions_are_declared_as_the_library_reads_them() {
    use super::signatures::DECLARED;
    Spi::run("SET LOCAL search_path = public").unwrap();
    let declared: Vec<String> = Spi::connect(|client| {
        client
            .select(
                "SELECT format('%s(%s) -> %s%s%s', p.prosrc,
                               coalesce((SELECT string_agg(format_type(t, NULL), ', ' ORDER BY o)
                                           FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, o)), ''),
                               format_type(p.prorettype, NULL),
                               CASE WHEN p.proisstrict THEN ' strict' ELSE '' END,
                               CASE WHEN p.proretset THEN ' set' ELSE '' END)
                   FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                  WHERE l.lanname = 'c' AND p.probin = '$libdir/health_score'
                    AND p.pronamespace IN ('health_score'::regnamespace, 'health_score_internal'::regnamespace)
                  ORDER BY 1",
                None,
                &[],
            )
            .unwrap()
            .map(|row| row.get::<String>(1).unwrap().unwrap())
            .collect()
    });
    let mut expected: Vec<String> = DECLARED
        .iter()
        .map(|d| {
            format!(
                "{}({}) -> {}{}{}",
                d.symbol,
                d.args.join(", "),
                d.returns,
                if d.strict { " strict" } else { "" },
                if d.set { " set" } else { "" }
            )
        })
        .collect();
    expected.sort();
    let missing: Vec<&String> = expected.iter().filter(|e| !declared.contains(e)).collect();
    let unlisted: Vec<&String> = declared.iter().filter(|d| !expected.contains(d)).collect();
    assert!(
        missing.is_empty() && unlisted.is_empty(),
        "src/pg/signatures.rs and the SQL disagree:\nlisted, not declared so: {missing:#?}\ndeclared, not listed so: {unlisted:#?}"
    );
    assert_eq!(declared.len(), DECLARED.len());
}
