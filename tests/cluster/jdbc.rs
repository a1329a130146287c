//! A BI client: the real PostgreSQL JDBC driver, as Metabase uses it.

use super::*;

/// A BI tool's view of the extension: the real PostgreSQL JDBC driver, connected over TCP as a
/// reader, syncs the views and their columns as Metabase does and runs a dashboard's queries
/// (tests/jdbc/MetabaseCheck.java); what it printed is checked against values computed here
/// with the scoring functions directly.
#[test]
#[ignore = "needs the installed extension, Java and the JDBC driver; scripts/test.sh runs it"]
fn a_jdbc_client_syncs_the_views_and_runs_dashboard_queries() {
    let mut c = database("hs_jdbc");
    c.batch_execute(
        r#"SELECT health_score.set_model('churn', '{
             "description": "Churn risk",
             "bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 50}, {"name": "green", "min": 75}],
             "components": [
               {"name": "usage", "weight": 2, "description": "Product usage", "components": [
                 {"name": "logins", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 30}},
                 {"name": "seats", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 1}}]},
               {"name": "tickets", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10, "invert": true}}],
             "segments": {"input": "plan", "overrides": {"enterprise": {"weights": {"tickets": 3}}}}}');
           CREATE TABLE accounts AS
             SELECT g AS id, CASE WHEN g % 4 = 0 THEN 'enterprise' ELSE 'smb' END AS plan,
                    (g * 7) % 31 AS logins, ((g * 13) % 10) / 10.0 AS seats, (g * 3) % 11 AS tickets
               FROM generate_series(1, 200) g;
           SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-05');
           UPDATE accounts SET logins = logins / 2 WHERE id % 3 = 0;
           SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-12');
           UPDATE accounts SET tickets = tickets + 2 WHERE id % 5 = 0;
           SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-14');
           CREATE SCHEMA analytics;
           SELECT health_score.create_view('analytics."Account Health"', 'churn', 'accounts', 'id', columns => '{plan}');
           GRANT USAGE ON SCHEMA analytics TO health_score_reader;
           DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hs_metabase') THEN CREATE ROLE hs_metabase LOGIN; END IF; END $$;
           GRANT health_score_reader TO hs_metabase;"#,
    )
    .unwrap();
    let out = run(Command::new("java")
        .args(["-Duser.timezone=UTC", "-cp", "/usr/share/java/postgresql.jar"])
        .arg(root().join("tests/jdbc/MetabaseCheck.java"))
        .arg(format!("jdbc:postgresql://127.0.0.1:{}/hs_jdbc", port()))
        .args(["hs_metabase", "analytics", "Account Health", "churn"]));
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    let has = |fields: &[&str]| lines.iter().any(|l| l.as_slice() == fields);
    // the sync sees the views with their comments, and the columns' types and comments
    for (table, kind) in [
        ("health_score.latest", "VIEW"),
        ("health_score.history", "VIEW"),
        ("health_score.models", "VIEW"),
        ("health_score.scores", "VIEW"),
        ("analytics.Account Health", "VIEW"),
    ] {
        assert!(has(&["TABLE", table, kind, "true"]), "{table} {kind}:\n{out}");
    }
    for (column, kind) in [
        ("analytics.Account Health.id", "int4"),
        ("analytics.Account Health.score", "float8"),
        ("analytics.Account Health.band", "text"),
        ("analytics.Account Health.coverage", "float8"),
        ("analytics.Account Health.plan", "text"),
        ("analytics.Account Health.segment_override", "text"),
        ("analytics.Account Health.usage_points", "float8"),
        ("analytics.Account Health.logins_points", "float8"),
        ("analytics.Account Health.tickets_points", "float8"),
        ("health_score.history.scored_at", "timestamptz"),
        ("health_score.history.score", "float8"),
        ("health_score.latest.band_change", "text"),
    ] {
        assert!(has(&["COLUMN", column, kind, "true"]), "{column} {kind}:\n{out}");
    }
    let uncommented: Vec<_> = lines.iter().filter(|l| l[0] == "COLUMN" && l[3] != "true").collect();
    assert!(uncommented.is_empty(), "columns without a comment: {uncommented:?}");
    // accounts by band per plan (carried through the view), as assess() gives them
    let expected: Vec<String> = c
        .query(
            "SELECT a.plan || '\t' || s.band || '\t' || count(*)
               FROM accounts a, health_score.assess('churn', a) s GROUP BY a.plan, s.band ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| format!("BANDS\t{}", r.get::<_, String>(0)))
        .collect();
    let bands: Vec<String> = out.lines().filter(|l| l.starts_with("BANDS")).map(str::to_string).collect();
    assert_eq!(bands, expected);
    // the at-risk list: the ten lowest red scores
    let expected: Vec<(String, f64)> = c
        .query(
            "SELECT a.id::text, health_score.score('churn', a) FROM accounts a
              WHERE health_score.band('churn', a) = 'red' ORDER BY 2, a.id LIMIT 10",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let at_risk: Vec<(String, f64)> =
        lines.iter().filter(|l| l[0] == "ATRISK").map(|l| (l[1].to_string(), l[2].parse().unwrap())).collect();
    assert!(!at_risk.is_empty());
    assert_eq!(at_risk.len(), expected.len());
    for (got, want) in at_risk.iter().zip(&expected) {
        assert_eq!(got.0, want.0);
        assert!((got.1 - want.1).abs() <= 1e-9 * want.1.abs().max(1.0), "{got:?} vs {want:?}");
    }
    // average score per week from history, against the stored snapshots
    c.batch_execute("SET timezone = 'UTC'").unwrap();
    let expected: Vec<(i64, f64)> = c
        .query(
            "SELECT extract(epoch FROM date_trunc('week', scored_at))::bigint, avg(score)
               FROM health_score.scores WHERE model = 'churn' GROUP BY 1 ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let weeks: Vec<(i64, f64)> =
        lines.iter().filter(|l| l[0] == "WEEK").map(|l| (l[1].parse().unwrap(), l[2].parse().unwrap())).collect();
    assert_eq!(weeks.len(), 2, "{out}");
    for (got, want) in weeks.iter().zip(&expected) {
        assert_eq!(got.0, want.0);
        assert!((got.1 - want.1).abs() <= 1e-9 * want.1.abs().max(1.0), "{got:?} vs {want:?}");
    }
}
