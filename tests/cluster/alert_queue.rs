//! The alert queue with real sessions: concurrent consumers, a consumer that dies holding a
//! lease, and the queue through pg_dump and pg_restore.

use super::*;

/// 10,000 accounts fall from green to red between two snapshots: one event each.
fn ten_thousand_events(db: &str) -> Client {
    let mut c = database(db);
    c.batch_execute(&format!(
        "SET client_min_messages = warning;
         SELECT health_score.set_model('m', '{BANDED}');
         SELECT health_score.set_alert_rule('m', 'fell', 'band_worsened');
         CREATE TABLE accounts AS SELECT g AS id, 8 AS logins FROM generate_series(1, 10000) g;
         SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-01');
         UPDATE accounts SET logins = 1;
         SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-02');"
    ))
    .unwrap();
    let open: i64 =
        c.query_one("SELECT count(*) FROM health_score.alert_events WHERE status = 'open'", &[]).unwrap().get(0);
    assert_eq!(open, 10000);
    c
}

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn four_consumers_claim_each_event_exactly_once() {
    let mut setup = ten_thousand_events("hs_queue_consumers");
    // each consumer claims batches and completes them until the queue is empty
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = connect("hs_queue_consumers");
                let worker = format!("worker-{i}");
                let mut mine = Vec::new();
                loop {
                    let ids: Vec<i64> = c
                        .query("SELECT id FROM health_score.claim_alert_events($1, 50)", &[&worker])
                        .unwrap()
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    if ids.is_empty() {
                        break;
                    }
                    for id in &ids {
                        let done: bool = c
                            .query_one("SELECT health_score.complete_alert_event($1, $2)", &[id, &worker])
                            .unwrap()
                            .get(0);
                        assert!(done, "{worker} could not complete event {id} it claimed");
                    }
                    mine.extend(ids);
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<i64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let claimed = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!((claimed, all.len()), (10000, 10000), "every event claimed exactly once");
    let rows: Vec<String> = column(
        &mut setup,
        "SELECT status || ' ' || count(*) || ' ' || count(DISTINCT acknowledged_by) FROM health_score.alert_events GROUP BY status",
    );
    assert_eq!(rows.len(), 1);
    assert!(rows[0].starts_with("acknowledged 10000 "), "{rows:?}");
}

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn a_consumer_that_dies_holding_a_lease_loses_nothing() {
    let mut setup = ten_thousand_events("hs_queue_crash");
    // a worker claims 100 events with a 1-second lease, then its session ends without completing
    {
        let mut doomed = connect("hs_queue_crash");
        let n = doomed
            .query("SELECT id FROM health_score.claim_alert_events('doomed', 100, '1 second')", &[])
            .unwrap()
            .len();
        assert_eq!(n, 100);
    }
    // a worker whose transaction dies before it commits: its claims were never made
    {
        let mut rolled_back = connect("hs_queue_crash");
        rolled_back
            .batch_execute("BEGIN; SELECT * FROM health_score.claim_alert_events('rolled_back', 100); ROLLBACK;")
            .unwrap();
    }
    // while the lease holds, the doomed worker's events are not handed out again
    let mut other = connect("hs_queue_crash");
    let first: Vec<i64> = other
        .query("SELECT id FROM health_score.claim_alert_events('other', 20000, '1 hour')", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(first.len(), 9900);
    // once it lapses, they come back
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let back: Vec<String> = column(
        &mut other,
        "SELECT claimed_by FROM health_score.claim_alert_events('other', 20000, '1 hour') GROUP BY claimed_by",
    );
    assert_eq!(back, ["other"]);
    let state: Vec<String> = column(
        &mut setup,
        "SELECT format('%s %s %s', status, claimed_by, count(*)) FROM health_score.alert_events GROUP BY status, claimed_by",
    );
    assert_eq!(state, ["claimed other 10000"]);
    // the doomed worker completing late is refused
    let late: bool = setup
        .query_one("SELECT health_score.complete_alert_event(min(id), 'doomed') FROM health_score.alert_events", &[])
        .unwrap()
        .get(0);
    assert!(!late);
}

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn the_queue_survives_dump_and_restore() {
    let mut c = database("hs_queue_dump_src");
    c.batch_execute(&format!(
        "SET client_min_messages = warning;
         SELECT health_score.set_model('m', '{BANDED}');
         SELECT health_score.set_alert_rule('m', 'fell', 'band_worsened');
         SELECT health_score.set_alert_rule('m', 'drop', 'score_drop', points => 20, within => '7 days');
         CREATE TABLE accounts AS SELECT g AS id, 8 AS logins FROM generate_series(1, 5) g;
         SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-01');
         UPDATE accounts SET logins = 1 WHERE id <= 3;
         SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-02');
         SELECT count(*) FROM health_score.claim_alert_events('mailer', 2);"
    ))
    .unwrap();
    dump_and_restore("hs_queue_dump_src", "hs_queue_dump_dst");
    let mut r = connect("hs_queue_dump_dst");
    let events =
        "SELECT format('%s %s %s %s %s %s %s', id, rule, entity_key, status, claimed_by, score, baseline_score)
                    FROM health_score.alert_events ORDER BY id";
    let rules = "SELECT format('%s %s %s %s %s', model, rule, kind, points, within) FROM health_score.alert_rules ORDER BY rule";
    let before: Vec<String> = column(&mut c, events);
    assert_eq!(before.len(), 6, "{before:?}");
    assert_eq!(column::<String>(&mut r, events), before);
    assert_eq!(column::<String>(&mut r, rules), column::<String>(&mut c, rules));
    // the restored queue goes on: the claimed events stay claimed, new ones are numbered after
    r.batch_execute(
        "SET client_min_messages = warning;
         UPDATE accounts SET logins = 1;
         SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-03');",
    )
    .unwrap();
    let after: Vec<String> = column(
        &mut r,
        "SELECT format('%s %s %s', id, entity_key, status) FROM health_score.alert_events WHERE id > 6 ORDER BY id",
    );
    assert_eq!(after.len(), 4, "{after:?}");
    let claimed: i64 =
        r.query_one("SELECT count(*) FROM health_score.claim_alert_events('mailer-2', 100)", &[]).unwrap().get(0);
    assert_eq!(claimed, 8);
}
