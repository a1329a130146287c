//! Sessions at once: snapshots, view generation and rescores take turns; snapshot races
//! under REPEATABLE READ; notifications.

use super::*;

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn concurrent_snapshots_neither_deadlock_nor_duplicate() {
    let mut setup = database("hs_snap_concurrent");
    setup
        .batch_execute(&format!(
            "SELECT health_score.set_model('m', '{BANDED}');
             CREATE TABLE accounts AS SELECT g AS id, g % 11 AS logins FROM generate_series(1, 20000) g;"
        ))
        .unwrap();
    // four sessions snapshot the same model, source and time at once, in a different row order
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = connect("hs_snap_concurrent");
                let source = if i % 2 == 0 { "accounts" } else { "accounts_reversed" };
                if i == 1 {
                    c.batch_execute("CREATE VIEW accounts_reversed AS SELECT * FROM accounts ORDER BY id DESC")
                        .unwrap();
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
                let n: i64 = c
                    .query_one(&format!("SELECT health_score.snapshot('m', '{source}', 'id', '2026-01-01')"), &[])
                    .unwrap()
                    .get(0);
                n
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 20000);
    }
    let rows: i64 = setup.query_one("SELECT count(*) FROM health_score.scores", &[]).unwrap().get(0);
    assert_eq!(rows, 20000);
}

/// Snapshots of two models that each create a partition, and retention dropping one of
/// them, all while a transaction that created a partition is still open: they wait for each
/// other where they must, and none deadlocks or loses a row.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn snapshots_and_retention_at_once_neither_deadlock_nor_lose_rows() {
    let mut setup = database("hs_retention_concurrent");
    setup
        .batch_execute(&format!(
            "SET client_min_messages = warning;
             SELECT health_score.set_model('m', '{BANDED}');
             SELECT health_score.set_model('n', '{BANDED}');
             CREATE TABLE accounts AS SELECT g AS id, g % 11 AS logins FROM generate_series(1, 5000) g;
             SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-05');
             SELECT health_score.snapshot('n', 'accounts', 'id', '2026-01-05');
             SELECT health_score.set_retention('m', '30 days');"
        ))
        .unwrap();
    let mut first = connect("hs_retention_concurrent");
    first
        .batch_execute(
            "SET client_min_messages = warning; BEGIN;
             SELECT health_score.snapshot('m', 'accounts', 'id', '2026-03-01')",
        )
        .unwrap();
    let run = |sql: &'static str| {
        std::thread::spawn(move || {
            let mut c = connect("hs_retention_concurrent");
            c.batch_execute("SET client_min_messages = warning").unwrap();
            c.batch_execute(sql).map_err(|e| format!("{sql}: {:?}", e.as_db_error()))
        })
    };
    let others = [
        run("SELECT health_score.snapshot('n', 'accounts', 'id', '2026-03-01')"),
        run("SELECT health_score.snapshot('m', 'accounts', 'id', '2026-03-02')"),
        run("SELECT * FROM health_score.apply_retention(at => '2026-03-10')"),
        run(
            "SELECT count(*) FROM health_score.latest; SELECT count(*) FROM health_score.scores WHERE entity_key = '7'",
        ),
    ];
    std::thread::sleep(std::time::Duration::from_millis(500));
    first.batch_execute("COMMIT").unwrap();
    for h in others {
        h.join().unwrap().unwrap();
    }
    let per_time: Vec<String> = column(
        &mut setup,
        "SELECT format('%s %s %s', model, scored_at::date, count(*)) FROM health_score.scores
          GROUP BY model, scored_at ORDER BY 1",
    );
    // m's January went with its partition; n keeps it
    assert_eq!(per_time, ["m 2026-03-01 5000", "m 2026-03-02 5000", "n 2026-01-05 5000", "n 2026-03-01 5000"]);
    let latest: Vec<String> = column(
        &mut setup,
        "SELECT DISTINCT format('%s %s %s', model, scored_at::date, coalesce(previous_at::date::text, '-'))
           FROM health_score.latest ORDER BY 1",
    );
    assert_eq!(latest, ["m 2026-03-02 2026-03-01", "n 2026-03-01 2026-01-05"]);
}

/// Two sessions generating the same view at once: the second waits for the first and then
/// replaces its view, instead of failing on the catalog rows the first has not committed yet.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn concurrent_create_views_of_one_name_take_turns() {
    let mut setup = database("hs_view_concurrent");
    setup
        .batch_execute(&format!(
            "SELECT health_score.set_model('m', '{BANDED}');
             CREATE TABLE accounts AS SELECT g AS id, g % 11 AS logins FROM generate_series(1, 100) g;"
        ))
        .unwrap();
    let mut first = connect("hs_view_concurrent");
    first.batch_execute("BEGIN; SELECT health_score.create_view('account_health', 'm', 'accounts', 'id')").unwrap();
    let second = std::thread::spawn(|| {
        let mut c = connect("hs_view_concurrent");
        c.batch_execute("SELECT health_score.create_view('account_health', 'm', 'accounts', 'id')")
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    first.batch_execute("COMMIT").unwrap();
    second.join().unwrap().unwrap();
    let rows: i64 = setup.query_one("SELECT count(score) FROM account_health", &[]).unwrap().get(0);
    assert_eq!(rows, 100);
    let registered: i64 = setup.query_one("SELECT count(*) FROM health_score.views", &[]).unwrap().get(0);
    assert_eq!(registered, 1);
}

/// Two rescores of one model version over overlapping ranges, one reading the history by
/// entity (the primary key's order: '10' before '2') and one by time (the heap's: 2 before
/// 10), write the same rows in different orders: without taking turns they deadlock.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn concurrent_rescores_neither_deadlock_nor_duplicate() {
    let mut setup = database("hs_rescore_concurrent");
    setup
        .batch_execute(&format!(
            "SET client_min_messages = warning;
             SELECT health_score.set_model('m', '{BANDED}');
             CREATE TABLE accounts AS SELECT g AS id, g % 11 AS logins FROM generate_series(1, 20000) g;
             SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-01');
             UPDATE accounts SET logins = (logins + 3) % 11;
             SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-02');
             SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-03');
             -- so that the two orders start at different rows of the overlap
             DELETE FROM health_score.scores WHERE entity_key = '1' AND scored_at > '2026-01-01';
             SELECT health_score.set_model('m', jsonb_set('{BANDED}', '{{components,0,weight}}', '3'));"
        ))
        .unwrap();
    let start = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = [
        ("SET enable_indexscan = off; SET enable_bitmapscan = off", "2026-01-01"),
        ("SET enable_seqscan = off", "2026-01-02"),
    ]
    .into_iter()
    .map(|(order, from)| {
        let start = start.clone();
        std::thread::spawn(move || {
            let mut c = connect("hs_rescore_concurrent");
            c.batch_execute(&format!("SET client_min_messages = warning; {order}")).unwrap();
            start.wait();
            c.query_one(&format!("SELECT health_score.rescore('m', 2, '{from}', '2026-01-03')"), &[])
                .map(|row| row.get::<_, i64>(0))
                .map_err(|e| {
                    e.as_db_error().map(|d| format!("{}: {}", d.code().code(), d.message())).unwrap_or(e.to_string())
                })
        })
    })
    .collect();
    let written: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(written, vec![Ok(59998), Ok(39998)]);
    let rows: i64 = setup.query_one("SELECT count(*) FROM health_score.rescored", &[]).unwrap().get(0);
    assert_eq!(rows, 59998);
}

/// Under REPEATABLE READ a snapshot cannot see the rows of a snapshot of the same time that
/// committed after it began: a serialization failure (retry), not "more than one row for the
/// same key"; a source that does repeat a key is still reported as such.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn snapshots_under_repeatable_read_report_races_and_repeated_keys_apart() {
    let mut a = database("hs_rr_snapshot");
    a.batch_execute(&format!(
        "SET client_min_messages = warning;
         SELECT health_score.set_model('m', '{BANDED}');
         CREATE TABLE accounts AS SELECT g AS id, g % 11 AS logins FROM generate_series(1, 500) g;
         CREATE VIEW twice AS SELECT * FROM accounts UNION ALL SELECT * FROM accounts WHERE id = 7;"
    ))
    .unwrap();
    let mut b = connect("hs_rr_snapshot");
    b.batch_execute("SET client_min_messages = warning").unwrap();
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1").unwrap();
    b.batch_execute("SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-01')").unwrap();
    let err = a.batch_execute("SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-01')").unwrap_err();
    assert_eq!(sqlstate(&err), "40001", "{err}");
    let db = err.as_db_error().unwrap();
    assert!(db.message().contains("conflicts with a concurrent transaction"), "{}", db.message());
    assert!(db.hint().is_some_and(|h| h.contains("retry")));
    a.batch_execute("ROLLBACK").unwrap();

    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    let err = a.batch_execute("SELECT health_score.snapshot('m', 'twice', 'id', '2026-01-02')").unwrap_err();
    assert_eq!(sqlstate(&err), "21000", "{err}");
    let db = err.as_db_error().unwrap();
    assert!(db.message().contains("has more than one row for the same id"), "{}", db.message());
    a.batch_execute("ROLLBACK").unwrap();

    // nothing but the committed snapshot was written
    let rows: i64 = a.query_one("SELECT count(*) FROM health_score.scores", &[]).unwrap().get(0);
    assert_eq!(rows, 500);
    let runs: i64 = a.query_one("SELECT count(*) FROM health_score.snapshots", &[]).unwrap().get(0);
    assert_eq!(runs, 1);
}

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn a_snapshot_that_worsens_a_band_notifies_listeners() {
    let mut writer = database("hs_notify");
    writer
        .batch_execute(&format!(
            "SELECT health_score.set_model('m', '{BANDED}');
             CREATE TABLE accounts AS SELECT g AS id, 10 AS logins FROM generate_series(1, 300) g;
             SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-01');"
        ))
        .unwrap();
    let mut listener = connect("hs_notify");
    listener.batch_execute("LISTEN health_score_alerts").unwrap();
    // no band worsens: no notification
    writer.batch_execute("SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-02')").unwrap();
    // 150 accounts fall from green to red
    writer
        .batch_execute(
            "UPDATE accounts SET logins = 1 WHERE id % 2 = 0;
             SELECT health_score.snapshot('m', 'accounts', 'id', '2026-01-03')",
        )
        .unwrap();
    let mut received = Vec::new();
    let mut notifications = listener.notifications();
    let mut pending = notifications.timeout_iter(std::time::Duration::from_secs(5));
    while let Some(n) = pending.next().unwrap() {
        received.push((n.channel().to_string(), n.payload().to_string()));
    }
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].0, "health_score_alerts");
    let payload: serde_json::Value = serde_json::from_str(&received[0].1).unwrap();
    assert!(received[0].1.len() < 8000);
    assert_eq!(payload["model"], "m");
    assert_eq!(payload["worsened"], 150);
    let keys = payload["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 100);
    assert_eq!(payload["all_keys"], false);
    // the first 100 keys in order, all of accounts that fell
    assert_eq!(keys[0], "10");
    assert!(keys.iter().all(|k| k.as_str().unwrap().parse::<i32>().unwrap() % 2 == 0));
}
