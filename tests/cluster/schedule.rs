//! Scheduled snapshots through the real pg_cron (PostgreSQL 15, where Debian packages it).

use super::*;

#[test]
#[ignore = "needs the installed extension and pg_cron; scripts/test.sh runs it"]
fn pg_cron_runs_a_scheduled_snapshot() {
    cluster();
    // pg_cron lives in the `postgres` database (cron.database_name), so this test does too
    let mut c = connect("postgres");
    c.batch_execute(&format!(
        "DROP EXTENSION IF EXISTS health_score CASCADE; CREATE EXTENSION health_score;
         CREATE EXTENSION IF NOT EXISTS pg_cron;
         SELECT health_score.set_model('cron_model', '{BANDED}');
         DROP TABLE IF EXISTS cron_accounts;
         CREATE TABLE cron_accounts AS SELECT g AS id, g AS logins FROM generate_series(1, 10) g;"
    ))
    .unwrap();
    let job: i64 = c
        .query_one("SELECT health_score.schedule('cron_model', 'cron_accounts', 'id', '* * * * *')", &[])
        .unwrap()
        .get(0);
    // pg_cron 1.4 schedules by the minute: wait for the next one (and some)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    let mut rows = 0i64;
    while rows == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_secs(2));
        rows = c.query_one("SELECT count(*) FROM health_score.scores WHERE model = 'cron_model'", &[]).unwrap().get(0);
    }
    let runs: Vec<(String, String)> = c
        .query("SELECT status, coalesce(return_message, '') FROM cron.job_run_details WHERE jobid = $1", &[&job])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, 10, "no snapshot within 150 s; job runs: {runs:?}");
    assert!(c.query_one("SELECT health_score.unschedule($1)", &[&job]).unwrap().get::<_, bool>(0));
    let left: i64 = c.query_one("SELECT count(*) FROM cron.job WHERE jobid = $1", &[&job]).unwrap().get(0);
    assert_eq!(left, 0);
    // an admin without USAGE on pg_cron's schema is told which grant it needs
    c.batch_execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hs_cron_admin') THEN
             CREATE ROLE hs_cron_admin LOGIN; END IF; END $$;
         GRANT health_score_admin TO hs_cron_admin; GRANT SELECT ON cron_accounts TO hs_cron_admin;",
    )
    .unwrap();
    let mut admin = connect_as("postgres", "hs_cron_admin");
    let err = admin
        .query_one("SELECT health_score.schedule('cron_model', 'cron_accounts', 'id', '* * * * *')", &[])
        .unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "42501");
    assert_eq!(db.hint(), Some("a superuser grants it: GRANT USAGE ON SCHEMA cron TO hs_cron_admin; the job then runs as this role, which needs health_score_admin"));
    // without pg_cron in the database, a clear error
    let mut other = database("hs_no_cron");
    other
        .batch_execute(&format!("SELECT health_score.set_model('m', '{BANDED}'); CREATE TABLE a (id int, logins int)"))
        .unwrap();
    let err = other.query_one("SELECT health_score.schedule('m', 'a', 'id', '* * * * *')", &[]).unwrap_err();
    let db = err.as_db_error().unwrap();
    assert_eq!(db.code().code(), "55000");
    assert!(db.message().contains("pg_cron is not installed"), "{}", db.message());
}
