//! The registry across sessions and databases: dump and restore, what other sessions see,
//! rolled-back and concurrent registrations, the roles.

use super::*;

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn dump_and_restore_keep_the_registry() {
    let mut c = database("hs_dump_src");
    c.batch_execute(&format!(
        "SELECT health_score.set_model('churn', '{V1}'); SELECT health_score.set_model('churn', '{V2}');
         CREATE TABLE accounts (id int, logins int); INSERT INTO accounts VALUES (1, 5), (2, 50);
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01');
         CREATE TABLE accounts_feb AS SELECT id, logins + 1 AS logins FROM accounts;
         SELECT health_score.snapshot('churn', 'accounts_feb', 'id', '2026-02-03', keep_inputs => false);
         SELECT health_score.set_retention('churn', '40 days');
         SELECT health_score.create_view('account_health', 'churn', 'accounts', 'id');"
    ))
    .unwrap();
    dump_and_restore("hs_dump_src", "hs_dump_dst");
    let mut r = connect("hs_dump_dst");
    let versions: Vec<i32> =
        column(&mut r, "SELECT version FROM health_score.models WHERE name = 'churn' ORDER BY version");
    assert_eq!(versions, vec![1, 2]);
    // scoring by name in the restored database uses the restored latest version (max 100)
    let s: Vec<f64> = column(&mut r, "SELECT health_score.score('churn', a) FROM accounts a ORDER BY id");
    assert_eq!(s, vec![5.0, 50.0]);
    assert_eq!(score(&mut r, "churn@1", r#"{"logins": 5}"#), Some(50.0));
    // the snapshots came along, in their partitions (one a month), components and all
    let history = "SELECT format('%s %s %s %s %s', entity_key, scored_at, score, components, inputs)
                     FROM health_score.scores WHERE model = 'churn' ORDER BY entity_key, scored_at";
    let before: Vec<String> = column(&mut c, history);
    assert_eq!(before.len(), 4);
    assert_eq!(column::<String>(&mut r, history), before);
    let kept: Vec<f64> = column(
        &mut r,
        "SELECT score FROM health_score.scores WHERE model = 'churn' AND scored_at = '2026-01-01' ORDER BY entity_key",
    );
    assert_eq!(kept, vec![5.0, 50.0]);
    let partitions: Vec<String> = column(
        &mut r,
        "SELECT format('%s %s', from_at::date, drop_after::date) FROM health_score.history_partitions ORDER BY from_at",
    );
    assert_eq!(partitions, vec!["2026-01-01 2026-03-13", "2026-02-01 2026-04-10"]);
    // and the current state, with the snapshot before the latest
    let latest: Vec<String> = column(
        &mut r,
        "SELECT format('%s %s', score, previous_score) FROM health_score.latest WHERE model = 'churn' ORDER BY entity_key",
    );
    assert_eq!(latest, vec!["6 5", "51 50"]);
    // the restored history takes new snapshots (a new partition) and applies its retention:
    // the January partition goes, and with it the previous snapshots of the current state
    r.batch_execute("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-03-20')").unwrap();
    let dropped: Vec<String> = column(
        &mut r,
        "SELECT format('%s %s %s', dropped_model, from_at::date, to_at::date)
           FROM health_score.apply_retention(at => '2026-03-20')",
    );
    assert_eq!(dropped, vec!["churn 2026-01-01 2026-02-01"]);
    let left: Vec<String> =
        column(&mut r, "SELECT format('%s %s', entity_key, scored_at::date) FROM health_score.scores ORDER BY 1");
    assert_eq!(left, vec!["1 2026-02-03", "1 2026-03-20", "2 2026-02-03", "2 2026-03-20"]);
    // so did the generated view, which still shows the latest version
    let shown: Vec<f64> = column(&mut r, "SELECT logins_points FROM account_health ORDER BY id");
    assert_eq!(shown, vec![5.0, 50.0]);
    // and numbering continues after the restored versions
    let next: i32 = r.query_one(&format!("SELECT health_score.set_model('churn', '{V3}')"), &[]).unwrap().get(0);
    assert_eq!(next, 3);
    // and the restored view follows the new version
    let followed: f64 = r.query_one("SELECT logins_points FROM account_health WHERE id = 1", &[]).unwrap().get(0);
    assert_eq!(followed, 25.0);
}

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn another_session_sees_a_new_version_from_its_next_statement() {
    let mut a = database("hs_sessions");
    a.batch_execute(&format!("SELECT health_score.set_model('churn', '{V1}')")).unwrap();
    let mut b = connect("hs_sessions");
    b.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED").unwrap();
    assert_eq!(score(&mut b, "churn", r#"{"logins": 5}"#), Some(50.0));
    a.batch_execute(&format!("SELECT health_score.set_model('churn', '{V2}')")).unwrap();
    // same transaction in b, next statement: the new version
    assert_eq!(score(&mut b, "churn", r#"{"logins": 5}"#), Some(5.0));
    b.batch_execute("COMMIT").unwrap();
    // a repeatable-read transaction keeps the version of its snapshot
    b.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    assert_eq!(score(&mut b, "churn", r#"{"logins": 5}"#), Some(5.0));
    a.batch_execute(&format!("SELECT health_score.set_model('churn', '{V3}')")).unwrap();
    assert_eq!(score(&mut b, "churn", r#"{"logins": 5}"#), Some(5.0));
    b.batch_execute("COMMIT").unwrap();
    assert_eq!(score(&mut b, "churn", r#"{"logins": 5}"#), Some(25.0));
}

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn a_rolled_back_version_is_never_used() {
    let mut a = database("hs_rollback");
    a.batch_execute(&format!("SELECT health_score.set_model('churn', '{V1}')")).unwrap();
    a.batch_execute(&format!("BEGIN; SELECT health_score.set_model('churn', '{V2}')")).unwrap();
    // inside its own transaction the new version is visible (and now cached by this backend)
    assert_eq!(score(&mut a, "churn", r#"{"logins": 5}"#), Some(5.0));
    a.batch_execute("ROLLBACK").unwrap();
    assert_eq!(score(&mut a, "churn", r#"{"logins": 5}"#), Some(50.0));
    // the number 2 is taken again by other content; the backend must not reuse what it cached
    let v: i32 = a.query_one(&format!("SELECT health_score.set_model('churn', '{V3}')"), &[]).unwrap().get(0);
    assert_eq!(v, 2);
    assert_eq!(score(&mut a, "churn", r#"{"logins": 5}"#), Some(25.0));
    assert_eq!(score(&mut a, "churn@2", r#"{"logins": 5}"#), Some(25.0));
}

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn concurrent_registrations_get_distinct_versions() {
    let mut a = database("hs_concurrent");
    let mut b = connect("hs_concurrent");
    a.batch_execute(&format!("BEGIN; SELECT health_score.set_model('churn', '{V1}')")).unwrap();
    let handle = std::thread::spawn(move || {
        let v: i32 = b.query_one(&format!("SELECT health_score.set_model('churn', '{V2}')"), &[]).unwrap().get(0);
        v
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    a.batch_execute("COMMIT").unwrap();
    assert_eq!(handle.join().unwrap(), 2);
}

/// Under REPEATABLE READ a transaction cannot see a version registered after it began: the
/// registration fails as a serialization failure (retry), not as a duplicate key.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn a_registration_under_repeatable_read_that_lost_the_race_asks_for_a_retry() {
    let mut a = database("hs_rr_register");
    let mut b = connect("hs_rr_register");
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1").unwrap();
    b.batch_execute(&format!("SELECT health_score.set_model('churn', '{V1}')")).unwrap();
    let err = a.batch_execute(&format!("SELECT health_score.set_model('churn', '{V2}')")).unwrap_err();
    assert_eq!(sqlstate(&err), "40001", "{err}");
    let db = err.as_db_error().unwrap();
    assert!(
        db.message().contains("model 'churn' got a version from another transaction after this one began"),
        "{}",
        db.message()
    );
    assert!(db.hint().is_some_and(|h| h.contains("retry")));
    a.batch_execute("ROLLBACK").unwrap();
    // the retry gets the next version
    let v: i32 = a.query_one(&format!("SELECT health_score.set_model('churn', '{V2}')"), &[]).unwrap().get(0);
    assert_eq!(v, 2);
}

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn roles_are_created_once_and_serve_every_database() {
    // the roles are cluster-wide: the second database's CREATE EXTENSION finds them
    let mut a = database("hs_roles_a");
    let mut b = database("hs_roles_b");
    for c in [&mut a, &mut b] {
        let roles: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_roles WHERE rolname IN ('health_score_reader', 'health_score_admin')",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(roles, 2);
        let member: bool = c
            .query_one("SELECT pg_has_role('health_score_admin', 'health_score_reader', 'MEMBER')", &[])
            .unwrap()
            .get(0);
        assert!(member);
    }
    // a login of the reader role connects and scores, over TCP as a BI tool would
    b.batch_execute(&format!(
        "SELECT health_score.set_model('churn', '{V1}');
         DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hs_bi') THEN CREATE ROLE hs_bi LOGIN; END IF; END $$;
         GRANT health_score_reader TO hs_bi;"
    ))
    .unwrap();
    let mut bi =
        Client::connect(&format!("host=127.0.0.1 port={} user=hs_bi dbname=hs_roles_b", port()), NoTls).unwrap();
    assert_eq!(score(&mut bi, "churn", r#"{"logins": 5}"#), Some(50.0));
    let err = bi.batch_execute(&format!("SELECT health_score.set_model('churn', '{V2}')")).unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "42501");
}
