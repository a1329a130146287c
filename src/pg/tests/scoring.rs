// The `#[pg_test]`s of `src/pg/scoring.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

use crate::pg::test_support::*;

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
    let (state, message) =
        error_of(&format!("SELECT health_score.score($${MODEL}$$::jsonb, '{{\"logins\": 1e400}}'::jsonb)"));
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
        let inline =
            sql_f64(&format!("SELECT health_score.score($${MODEL}$$::jsonb, a) FROM accounts a WHERE id = {id}"));
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
    let expected_band = if expected >= 70.0 {
        "green"
    } else if expected >= 40.0 {
        "yellow"
    } else {
        "red"
    };
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
    let rows = Spi::get_one::<i64>(&format!(
        "SELECT count(*) FROM health_score.explain($${MODEL}$$::jsonb, '{input}'::jsonb)"
    ))
    .unwrap();
    assert_eq!(rows, Some(5));
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
fn untyped_literals_and_text_inputs_score_without_a_cast() {
    setup_model();
    install_error_helper();
    let input = r#"{"logins": 10, "active": 9, "nps": "passive", "overdue": 0}"#;
    let typed = sql_f64(&format!("SELECT health_score.score('churn', '{input}'::jsonb)"));
    assert!(typed.is_some());
    assert_eq!(sql_f64(&format!("SELECT health_score.score('churn', '{input}')")), typed);
    assert_eq!(sql_f64("SELECT health_score.score('churn', NULL)"), None);
    assert_eq!(sql_f64(&format!("SELECT health_score.score('churn', '{input}'::text)")), typed);
    assert_eq!(sql_f64(&format!("SELECT health_score.score('churn', '{input}'::json)")), typed);
    assert_eq!(
        Spi::get_one::<i64>(&format!("SELECT count(*) FROM health_score.explain('churn', '{input}'::json)")).unwrap(),
        Some(5)
    );
    // an inline model as a literal too
    let model = crate::pg::test_support::MODEL.replace('\n', " ");
    assert_eq!(sql_f64(&format!("SELECT health_score.score('{model}', '{input}')")), typed);
    let same = Spi::get_one::<bool>(&format!(
        "SELECT health_score.band('churn', '{input}') = health_score.band('churn', '{input}'::jsonb)
            AND health_score.band('churn', '{input}', 'green') = health_score.band('churn', '{input}'::jsonb, 'green')
            AND health_score.assess('churn', '{input}') = health_score.assess('churn', '{input}'::jsonb)
            AND health_score.churn_probability('churn', '{input}') = health_score.churn_probability('churn', '{input}'::jsonb)
            AND (SELECT count(*) FROM health_score.explain('churn', '{input}')) = 5"
    ))
    .unwrap();
    assert_eq!(same, Some(true));
    // ROW(a.*) loses the column names: the hint says what to pass instead
    Spi::run("CREATE TABLE lit (logins int, active int, nps text, overdue int); INSERT INTO lit VALUES (1, 2, 'passive', 0);")
        .unwrap();
    let (state, message) = error_of("SELECT health_score.score('churn', ROW(l.*)) FROM lit l");
    assert_eq!(state, "42703", "{message}");
    Spi::run(
        "CREATE FUNCTION pg_temp.row_hint() RETURNS text LANGUAGE plpgsql AS $$
         DECLARE h text;
         BEGIN
             PERFORM health_score.score('churn', ROW(l.*)) FROM lit l;
             RETURN NULL;
         EXCEPTION WHEN OTHERS THEN
             GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
             RETURN h;
         END $$",
    )
    .unwrap();
    let hint = Spi::get_one::<String>("SELECT pg_temp.row_hint()").unwrap().unwrap_or_default();
    assert!(hint.contains("ROW(a.*)") && hint.contains("named row type"), "{hint}");
}

/// `to_jsonb` of an anonymous row gives keys f1, f2, …, which name none of the model's inputs:
/// 42703 rather than a score of nothing; an object that merely lacks the inputs still scores
/// as one whose inputs are all missing.
#[pg_test]
fn an_input_of_unnamed_columns_is_refused() {
    setup_model();
    install_error_helper();
    let (state, message) = error_of("SELECT health_score.score('churn', to_jsonb(ROW(12, 0.5, 'passive')))");
    assert_eq!(state, "42703", "{message}");
    assert!(message.contains("f1 to f3") && message.contains("\"logins\""), "{message}");
    let (state, message) = error_of("SELECT health_score.band('churn', '{\"f1\": 3}'::jsonb)");
    assert_eq!(state, "42703", "{message}");
    let nothing = core_score(serde_json::json!({}));
    assert!(close(sql_f64("SELECT health_score.score('churn', '{\"other\": 1}'::jsonb)"), nothing));
    assert!(close(sql_f64("SELECT health_score.score('churn', '{}'::jsonb)"), nothing));
}
