// The `#[pg_test]`s of `src/pg/models.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

use crate::pg::test_support::*;

#[test]
fn model_refs() {
    assert_eq!(super::parse_model_ref("churn"), Ok(("churn", None)));
    assert_eq!(super::parse_model_ref("churn@3"), Ok(("churn", Some(3))));
    assert!(super::parse_model_ref("churn@x").is_err());
    assert!(super::parse_model_ref("churn@0").is_err());
    for bad in ["churn@1@1", "@1", "churn@01", "churn@+1", "churn@-1", "churn@", "", "churn@ 1", "churn@99999999999"] {
        let e = super::parse_model_ref(bad).unwrap_err();
        assert_eq!(e.sqlstate(), "22023", "{bad}");
    }
    assert_eq!(super::parse_model_ref("churn@2147483647"), Ok(("churn", Some(i32::MAX))));
    let long = format!("m@{}", "1".repeat(5000));
    assert!(super::parse_model_ref(&long).unwrap_err().message().chars().count() < 300);
    assert_eq!(super::edit_distance("churn", "chrun"), 2);
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
    let described =
        Spi::get_one::<String>("SELECT description FROM health_score.models WHERE name = 'churn' AND is_latest")
            .unwrap();
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
