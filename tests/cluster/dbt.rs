//! An analyst's tool: the dbt project in examples/dbt, run by a real dbt (scripts/setup.sh
//! installs dbt-core 1.11 and dbt-postgres 1.11.0 into a virtual environment).

use super::*;

/// The dbt of the virtual environment scripts/setup.sh makes ($HS_DBT_VENV, as there).
fn dbt_executable() -> PathBuf {
    let venv = std::env::var_os("HS_DBT_VENV").map(PathBuf::from);
    venv.unwrap_or_else(|| PathBuf::from("/opt/health_score/dbt-1.11")).join("bin/dbt")
}

/// Runs `dbt <args>` on examples/dbt against database `db`; dbt's target and logs go under
/// the cluster's directory so that the project's tree stays as committed.
fn dbt(db: &str, args: &[&str]) -> String {
    let work = cluster_dir().join("dbt");
    let project = root().join("examples/dbt");
    run(Command::new(dbt_executable())
        .args(args)
        .arg("--project-dir")
        .arg(&project)
        .arg("--profiles-dir")
        .arg(&project)
        .arg("--target-path")
        .arg(work.join("target"))
        .arg("--log-path")
        .arg(work.join("logs"))
        .env("PGHOST", cluster_dir())
        .env("PGPORT", port().to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", db)
        .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        .env("DBT_VERSION_CHECK", "false"))
}

fn count(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// The example project as its users run it: `dbt build` twice on one run date (the second
/// replaces that date's snapshot and history rows instead of adding to them), once on the
/// next date after the source changed, then `dbt docs generate`. What dbt built is checked
/// against the scoring functions called directly on the same rows.
#[test]
#[ignore = "needs the installed extension and dbt (scripts/setup.sh); scripts/test.sh runs it"]
fn the_example_dbt_project_builds_twice_snapshots_and_documents() {
    let mut c = database("hs_dbt");
    c.batch_execute(
        "CREATE SCHEMA app;
         CREATE TABLE app.accounts (
             account_id integer PRIMARY KEY, plan text NOT NULL, arr numeric NOT NULL,
             logins_30d integer, seats_used integer, seats_paid integer, open_tickets integer, nps integer);
         INSERT INTO app.accounts
         SELECT g, CASE WHEN g % 5 = 0 THEN 'enterprise' ELSE 'smb' END, 1000 * (g % 17 + 1),
                (g * 7) % 37, (g * 3) % 11, CASE WHEN g % 13 = 0 THEN 0 ELSE 10 END,
                (g * 11) % 12, CASE WHEN g % 4 = 0 THEN NULL ELSE (g * 29) % 201 - 100 END
           FROM generate_series(1, 300) g;",
    )
    .unwrap();

    let first_day = r#"{"run_date": "2026-03-02"}"#;
    dbt("hs_dbt", &["build", "--vars", first_day]);
    dbt("hs_dbt", &["build", "--vars", first_day]);
    // the model is registered once: the second run found it unchanged
    assert_eq!(count(&mut c, "SELECT count(*) FROM health_score.models WHERE name = 'churn'"), 1);
    // one snapshot of every account, replaced by the second run, and as many history rows
    assert_eq!(count(&mut c, "SELECT count(*) FROM health_score.scores WHERE model = 'churn'"), 300);
    assert_eq!(count(&mut c, "SELECT count(*) FROM analytics.account_history"), 300);

    c.batch_execute(
        "UPDATE app.accounts SET logins_30d = logins_30d / 3, open_tickets = open_tickets + 4 WHERE account_id % 3 = 0;
         INSERT INTO app.accounts VALUES (301, 'smb', 500, 2, 1, 10, 9, -80);",
    )
    .unwrap();
    dbt("hs_dbt", &["build", "--vars", r#"{"run_date": "2026-03-03"}"#]);

    // the history has both dates once each, as health_score.scores stores them
    assert_eq!(count(&mut c, "SELECT count(*) FROM analytics.account_history"), 601);
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM (SELECT entity_key, scored_at, score, band, coverage FROM analytics.account_history
                                   EXCEPT ALL
                                   SELECT entity_key, scored_at, score, band, coverage FROM health_score.scores
                                    WHERE model = 'churn') d"
        ),
        0
    );
    // the second date's stored bands keep each account's band of the first within the
    // model's 2 points of hysteresis, as band(model, input, previous_band) gives them
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM analytics.account_inputs i
               JOIN analytics.account_history h ON h.entity_key = i.account_id::text AND h.scored_at = '2026-03-03'
               LEFT JOIN analytics.account_history p ON p.entity_key = h.entity_key AND p.scored_at = '2026-03-02'
              WHERE h.band IS DISTINCT FROM health_score.band('churn', i, p.band)"
        ),
        0
    );
    // account_scores is assess() over the inputs now, with the leaf costing the most points
    let mismatched = count(
        &mut c,
        "SELECT count(*) FROM analytics.account_inputs i
           CROSS JOIN LATERAL health_score.assess('churn', i) a
           FULL JOIN analytics.account_scores s ON s.account_id = i.account_id
          WHERE s.score IS DISTINCT FROM a.score OR s.band IS DISTINCT FROM a.band
             OR s.coverage IS DISTINCT FROM a.coverage OR s.segment IS DISTINCT FROM a.segment
             OR s.top_driver IS DISTINCT FROM (
                  SELECT e.component FROM health_score.explain('churn', i) e
                   WHERE e.input IS NOT NULL AND e.normalized IS NOT NULL
                   ORDER BY 100 * e.weight * (1 - e.normalized) DESC, e.component LIMIT 1)",
    );
    assert_eq!(mismatched, 0);
    assert_eq!(count(&mut c, "SELECT count(*) FROM analytics.account_scores"), 301);
    // one by hand. Account 301 (smb): logins 2 of 30, seats 1 of 10, 9 of 10 tickets (inverted),
    // nps -80 of -100..100 → normalized 0.0667, 0.1, 0.1, 0.1; each a quarter of the score
    // (usage 2 of 4, split evenly) → points lost 23.3, 22.5, 22.5, 22.5: logins
    let row = c
        .query_one(
            "SELECT top_driver, top_driver_points_lost FROM analytics.account_scores WHERE account_id = 301",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "logins");
    let lost: f64 = row.get(1);
    assert!((lost - 25.0 * (1.0 - 2.0 / 30.0)).abs() < 1e-9, "{lost}");

    // the view the on-run-end hook re-created after dbt dropped its source with CASCADE
    let registered = c
        .query_one(
            "SELECT source::text, key_column, carried::text FROM health_score.views
              WHERE view_schema = 'analytics' AND view_name = 'account_health'",
            &[],
        )
        .unwrap();
    assert_eq!(registered.get::<_, String>(0), "analytics.account_inputs");
    assert_eq!(registered.get::<_, String>(1), "account_id");
    assert_eq!(registered.get::<_, String>(2), "{plan,arr}");
    assert_eq!(count(&mut c, "SELECT count(*) FROM health_score.views"), 1);
    assert_eq!(
        count(
            &mut c,
            "SELECT count(*) FROM analytics.account_health v
               JOIN analytics.account_scores s USING (account_id)
              WHERE v.score IS DISTINCT FROM s.score OR v.band IS DISTINCT FROM s.band
                 OR v.plan IS DISTINCT FROM s.plan OR v.segment_override IS DISTINCT FROM s.segment"
        ),
        0
    );
    assert_eq!(count(&mut c, "SELECT count(*) FROM analytics.account_health"), 301);

    // dbt docs: the catalog has the models, the extension's relations and the generated view,
    // each column with its comment from the database
    dbt("hs_dbt", &["docs", "generate", "--vars", r#"{"run_date": "2026-03-03"}"#]);
    let catalog: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cluster_dir().join("dbt/target/catalog.json")).expect("dbt wrote its catalog"),
    )
    .unwrap();
    let columns = |kind: &str, id: &str| -> serde_json::Map<String, serde_json::Value> {
        catalog[kind][id]["columns"].as_object().unwrap_or_else(|| panic!("{id} in the catalog")).clone()
    };
    let scores = columns("sources", "source.health_score_example.health_score.scores");
    assert_eq!(scores["scored_at"]["type"], "timestamp with time zone");
    assert_eq!(scores["scored_at"]["comment"], "The snapshot time");
    let view = columns("sources", "source.health_score_example.health_views.account_health");
    for column in ["account_id", "score", "band", "coverage", "plan", "arr", "segment_override", "usage_points"] {
        assert!(view[column]["comment"].is_string(), "{column} has no comment: {view:?}");
    }
    assert_eq!(view["score"]["type"], "double precision");
    let scored = columns("nodes", "model.health_score_example.account_scores");
    assert!(scored.contains_key("top_driver"), "{scored:?}");
}
