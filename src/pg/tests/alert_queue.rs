// The `#[pg_test]`s of the alert queue (`sql/alert_queue.sql`): rules, events raised and
// repeated by snapshots, recovery, claims and leases. Expected scores are the core's over the
// same inputs.

use pgrx::prelude::*;

use crate::pg::test_support::*;

fn strings(query: &str) -> Vec<String> {
    Spi::connect(|c| {
        c.select(query, None, &[]).unwrap().map(|row| row.get::<String>(1).unwrap().unwrap_or_default()).collect()
    })
}

fn events() -> Vec<String> {
    strings(
        "SELECT format('%s %s %s %s %s', rule, entity_key, status, scored_at::date, fired)
           FROM health_score.alert_events ORDER BY rule, entity_key, id",
    )
}

fn snapshot(at: &str) {
    Spi::run(&format!(
        "SET LOCAL client_min_messages = warning; SELECT health_score.snapshot('churn', 'accounts', 'id', '{at}')"
    ))
    .unwrap();
}

/// Rules of each kind over the test accounts: 1 (green, full coverage), 2 (red), 3 (mostly
/// missing: coverage 0.25 of the static shares, counted by the core).
fn setup_rules() {
    setup_accounts();
    Spi::run(
        "SELECT health_score.set_alert_rule('churn', 'fell', 'band_worsened');
         SELECT health_score.set_alert_rule('churn', 'drop', 'score_drop', points => 10, within => '7 days');
         SELECT health_score.set_alert_rule('churn', 'thin', 'coverage_below', threshold => 0.5);",
    )
    .unwrap();
}

#[pg_test]
fn snapshots_raise_repeat_and_resolve_events_by_the_rules() {
    setup_rules();
    snapshot("2026-01-01");
    // the first snapshot has nothing to compare with: only the coverage rule fires (entity 3)
    assert_eq!(events(), ["thin 3 open 2026-01-01 1"]);
    // entity 1 falls: from 20 logins to 2, a promoter turned passive
    Spi::run("UPDATE accounts SET logins = 2, nps = 'passive' WHERE id = 1").unwrap();
    snapshot("2026-01-05");
    let before = core_score(serde_json::json!({"logins": 20, "active": 100, "nps": "promoter", "overdue": 0}));
    let after = core_score(serde_json::json!({"logins": 2, "active": 100, "nps": "passive", "overdue": 0}));
    assert!(before.unwrap() - after.unwrap() >= 10.0);
    assert_eq!(
        events(),
        ["drop 1 open 2026-01-05 1", "fell 1 open 2026-01-05 1", "thin 3 open 2026-01-05 2"],
        "a repeat updates the event"
    );
    let drop =
        Spi::get_two::<f64, f64>("SELECT score, baseline_score FROM health_score.alert_events WHERE rule = 'drop'")
            .unwrap();
    assert!(close(drop.0, after) && close(drop.1, before), "{drop:?}");
    let bands = strings("SELECT baseline_band || ' ' || band FROM health_score.alert_events WHERE rule = 'fell'");
    assert_eq!(bands, ["green yellow"]);
    // a drop from a snapshot taken more than 7 days before does not count; the band rule has no window
    Spi::run("UPDATE accounts SET logins = 0, active = 1 WHERE id = 1").unwrap();
    snapshot("2026-01-20");
    assert_eq!(strings("SELECT fired::text FROM health_score.alert_events WHERE rule = 'drop'"), ["1"]);
    // entity 1 recovers: both its events resolve; entity 3 gets its inputs back: resolved too
    Spi::run(
        "UPDATE accounts SET logins = 20, active = 100, nps = 'promoter' WHERE id = 1;
              UPDATE accounts SET active = 50, nps = 'passive', overdue = 0 WHERE id = 3",
    )
    .unwrap();
    snapshot("2026-01-21");
    assert_eq!(
        strings("SELECT rule || ' ' || entity_key || ' ' || status || ' ' || resolved_by FROM health_score.alert_events ORDER BY rule"),
        ["drop 1 resolved snapshot", "fell 1 resolved snapshot", "thin 3 resolved snapshot"]
    );
    // falling again raises a new event beside the resolved one
    Spi::run("UPDATE accounts SET logins = 0, active = 1, nps = 'passive' WHERE id = 1").unwrap();
    snapshot("2026-01-22");
    assert_eq!(
        Spi::get_one::<i64>("SELECT count(*) FROM health_score.alert_events WHERE rule = 'fell'").unwrap(),
        Some(2)
    );
}

#[pg_test]
fn a_failed_snapshot_raises_nothing_and_a_rule_change_applies_from_the_next() {
    setup_rules();
    install_error_helper();
    snapshot("2026-01-01");
    // a source row with a NULL key fails the whole snapshot: no event either
    Spi::run("UPDATE accounts SET logins = 0 WHERE id = 1; INSERT INTO accounts VALUES (NULL, 1, 1, NULL, NULL)")
        .unwrap();
    let (state, _) = error_of("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-02')");
    assert_eq!(state, "22023");
    assert_eq!(events(), ["thin 3 open 2026-01-01 1"]);
    Spi::run("DELETE FROM accounts WHERE id IS NULL").unwrap();
    // dropping the band rule and loosening the drop: the next snapshot applies the rules as they are
    Spi::run(
        "SELECT health_score.drop_alert_rule('churn', 'fell');
         SELECT health_score.set_alert_rule('churn', 'drop', 'score_drop', points => 1000);",
    )
    .unwrap();
    snapshot("2026-01-02");
    assert_eq!(events(), ["thin 3 open 2026-01-02 2"]);
    assert_eq!(Spi::get_one::<bool>("SELECT health_score.drop_alert_rule('churn', 'fell')").unwrap(), Some(false));
}

#[pg_test]
fn claims_hold_until_the_lease_lapses_and_only_the_holder_completes() {
    setup_rules();
    snapshot("2026-01-01");
    Spi::run("UPDATE accounts SET logins = 0, active = 1, nps = 'passive'").unwrap();
    snapshot("2026-01-02");
    let open = Spi::get_one::<i64>("SELECT count(*) FROM health_score.alert_events WHERE status = 'open'").unwrap();
    assert!(open >= Some(3), "{:?}", events());
    let first = strings("SELECT id::text FROM health_score.claim_alert_events('a', 2) ORDER BY id");
    assert_eq!(first.len(), 2);
    // the rest go to the next worker; the claimed ones do not while their lease holds
    let rest = strings("SELECT claimed_by FROM health_score.claim_alert_events('b', 10)");
    assert_eq!(rest.len() as i64, open.unwrap() - 2);
    assert!(strings("SELECT id::text FROM health_score.claim_alert_events('c', 10)").is_empty());
    // a's lease lapses: c takes its events; a can no longer complete them, c can
    Spi::run("UPDATE health_score.alert_events SET lease_until = clock_timestamp() - interval '1 second' WHERE claimed_by = 'a'")
        .unwrap();
    let taken = strings("SELECT id::text FROM health_score.claim_alert_events('c', 10) ORDER BY id");
    assert_eq!(taken, first);
    let id = &first[0];
    assert_eq!(
        Spi::get_one::<bool>(&format!("SELECT health_score.complete_alert_event({id}, 'a')")).unwrap(),
        Some(false)
    );
    assert_eq!(
        Spi::get_one::<bool>(&format!("SELECT health_score.complete_alert_event({id}, 'c')")).unwrap(),
        Some(true)
    );
    assert_eq!(
        strings(&format!("SELECT status || ' ' || acknowledged_by FROM health_score.alert_events WHERE id = {id}")),
        ["acknowledged c"]
    );
    // people acknowledge and resolve by hand, with a note
    let other = &first[1];
    assert_eq!(
        Spi::get_one::<bool>(&format!("SELECT health_score.acknowledge_alert_event({other}, 'called them')")).unwrap(),
        Some(true)
    );
    assert_eq!(Spi::get_one::<bool>(&format!("SELECT health_score.resolve_alert_event({other})")).unwrap(), Some(true));
    assert_eq!(
        Spi::get_one::<bool>(&format!("SELECT health_score.resolve_alert_event({other})")).unwrap(),
        Some(false)
    );
    assert_eq!(
        strings(&format!("SELECT status || ' ' || note || ' ' || (resolved_by = session_user) FROM health_score.alert_events WHERE id = {other}")),
        ["resolved called them true"]
    );
}

#[pg_test]
fn bad_rules_and_claims_are_refused_with_a_hint() {
    setup_accounts();
    install_error_helper();
    for (call, state) in [
        ("health_score.set_alert_rule('nope', 'r', 'band_worsened')", "42704"),
        ("health_score.set_alert_rule('churn', 'Bad Name', 'band_worsened')", "22023"),
        ("health_score.set_alert_rule('churn', 'r', 'fell')", "22023"),
        ("health_score.set_alert_rule('churn', 'r', 'score_drop')", "22023"),
        ("health_score.set_alert_rule('churn', 'r', 'score_drop', points => 'NaN')", "22023"),
        ("health_score.set_alert_rule('churn', 'r', 'band_worsened', points => 3)", "22023"),
        ("health_score.set_alert_rule('churn', 'r', 'band_worsened', within => '1 day')", "22023"),
        ("health_score.set_alert_rule('churn', 'r', 'score_drop', points => 3, within => '-1 day')", "22023"),
        ("health_score.set_alert_rule('churn', 'r', 'coverage_below', threshold => 1.5)", "22023"),
        ("health_score.claim_alert_events(NULL)", "22023"),
        ("health_score.claim_alert_events('w', 0)", "22023"),
        ("health_score.claim_alert_events('w', 1, '0 seconds')", "22023"),
    ] {
        let (got, message) = error_of(&format!("SELECT {call}"));
        assert_eq!(got, state, "{call}: {message}");
    }
}
