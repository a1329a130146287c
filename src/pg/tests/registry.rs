// The `#[pg_test]`s of `src/pg/registry.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

use crate::pg::test_support::*;

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
        "SELECT count(*) FROM health_score.alert_rules",
        "SELECT count(*) FROM health_score.alert_events",
    ] {
        assert_eq!(error_of(query).0, "none", "{query}");
    }
    for query in [
        "SELECT health_score.set_model('other', '{\"components\": [{\"name\": \"x\", \"weight\": 1, \"normalize\": {\"type\": \"linear\", \"min\": 0, \"max\": 1}}]}')",
        "SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-02-01')",
        "SELECT health_score.schedule('churn', 'accounts', 'id', '* * * * *')",
        "SELECT health_score.create_view('reader_view', 'churn', 'accounts', 'id')",
        "SELECT health_score.refresh_views('churn')",
        "SELECT health_score.set_alert_rule('churn', 'r', 'band_worsened')",
        "SELECT health_score.claim_alert_events('reader')",
        "UPDATE health_score.alert_events SET status = 'resolved'",
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
    // the admin sets rules, its snapshots raise events, and it works the queue
    Spi::run(
        "SELECT health_score.set_alert_rule('churn', 'thin', 'coverage_below', threshold => 0.5);
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-03-01');",
    )
    .unwrap();
    let claimed = Spi::get_one::<i64>("SELECT count(*) FROM health_score.claim_alert_events('admin-worker')").unwrap();
    assert_eq!(claimed, Some(1), "entity 3 lacks most inputs");
    Spi::run("RESET ROLE").unwrap();
    // nothing a reader could abuse, dynamic SQL with a pinned search_path, hot paths without SET
    // SECURITY DEFINER only where docs/security.md says why
    let definer = Spi::get_one::<String>(
        "SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc
          WHERE pronamespace IN ('health_score'::regnamespace, 'health_score_internal'::regnamespace) AND prosecdef",
    )
    .unwrap();
    assert_eq!(
        definer.as_deref(),
        Some("_ensure_partition,_forget_dropped_views,_forget_view,_lock,_set_retention,apply_retention,refresh_views")
    );
    let unpinned = Spi::get_one::<i64>(
        "SELECT count(*) FROM pg_proc WHERE pronamespace IN ('health_score'::regnamespace, 'health_score_internal'::regnamespace)
            AND proname IN ('snapshot', 'schedule', 'unschedule', 'drivers', 'alerts', 'refresh_views', 'drop_view')
            AND NOT coalesce(array_to_string(proconfig, ',') LIKE '%search_path%', false)",
    )
    .unwrap();
    assert_eq!(unpinned, Some(0));
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
    let moved =
        Spi::get_one::<i64>("SELECT count(*) FROM pg_proc WHERE pronamespace = 'health_score_internal'::regnamespace")
            .unwrap();
    assert!(moved.unwrap_or(0) > 60, "{moved:?}");
}
