// The `#[pg_test]`s of band hysteresis (docs/model-format.md, Band hysteresis): the
// three-argument `band`, and the bands `snapshot` stores from each entity's previous snapshot,
// checked against the spec's rule restated here over the same scores.

use pgrx::prelude::*;

use crate::pg::test_support::*;

/// One leaf reading `x` as it is (0–100 → 0–100 points), bands red 0, yellow 40, green 60.
fn walk_model(margin: f64) -> String {
    format!(
        r#"{{"components": [{{"name": "x", "input": "x", "weight": 1, "normalize": {{"type": "linear", "min": 0, "max": 100}}}}],
            "bands": [{{"name": "red", "min": 0}}, {{"name": "yellow", "min": 40}}, {{"name": "green", "min": 60}}],
            "band_hysteresis": {margin}}}"#
    )
}

/// The spec's rule for these bands: the previous band is kept while `lo - h <= score < hi + h`.
fn band_after(score: f64, previous: Option<&str>, h: f64) -> &'static str {
    let plain = if score >= 60.0 {
        "green"
    } else if score >= 40.0 {
        "yellow"
    } else {
        "red"
    };
    let (lo, hi, name) = match previous {
        Some("red") => (0.0, 40.0, "red"),
        Some("yellow") => (40.0, 60.0, "yellow"),
        Some("green") => (60.0, f64::INFINITY, "green"),
        _ => return plain,
    };
    if lo - h <= score && score < hi + h {
        name
    } else {
        plain
    }
}

fn strings(query: &str) -> Vec<String> {
    Spi::connect(|c| {
        c.select(query, None, &[]).unwrap().map(|row| row.get::<String>(1).unwrap().unwrap_or_default()).collect()
    })
}

#[pg_test]
fn band_with_a_previous_band_keeps_it_within_the_margin_in_every_form() {
    Spi::run(&format!(
        "SELECT health_score.set_model('walk', $${}$$::jsonb);
         CREATE TABLE t (x float8); INSERT INTO t VALUES (57);",
        walk_model(5.0)
    ))
    .unwrap();
    let model = walk_model(5.0).replace('\'', "''");
    // 57 is yellow; after green it stays green (60 - 5 <= 57); after red it is yellow (57 >= 40 + 5)
    for (previous, expected) in
        [("'green'", "green"), ("'yellow'", "yellow"), ("'red'", "yellow"), ("NULL", "yellow"), ("'Green'", "yellow")]
    {
        let forms = strings(&format!(
            "SELECT health_score.band('{model}'::jsonb, '{{\"x\": 57}}'::jsonb, {previous})
             UNION ALL SELECT health_score.band('walk', '{{\"x\": 57}}'::jsonb, {previous})
             UNION ALL SELECT health_score.band('{model}'::jsonb, t, {previous}) FROM t
             UNION ALL SELECT health_score.band('walk', t, {previous}) FROM t"
        ));
        assert_eq!(forms, [expected; 4], "after {previous}");
    }
    // the two-argument band and assess ignore the margin; a NULL score has no band
    assert_eq!(strings("SELECT health_score.band('walk', '{\"x\": 57}'::jsonb)"), ["yellow"]);
    assert_eq!(strings("SELECT (health_score.assess('walk', '{\"x\": 57}'::jsonb)).band"), ["yellow"]);
    assert_eq!(Spi::get_one::<String>("SELECT health_score.band('walk', '{}'::jsonb, 'green')").unwrap(), None);
    // without a margin, the plain band whatever came before
    assert_eq!(
        strings(&format!("SELECT health_score.band('{}'::jsonb, '{{\"x\": 57}}'::jsonb, 'green')", walk_model(0.0))),
        ["yellow"]
    );
}

#[pg_test]
fn snapshots_store_the_band_with_hysteresis_and_flap_less() {
    Spi::run(&format!(
        "SET LOCAL client_min_messages = warning;
         SELECT health_score.set_model('held', $${}$$::jsonb);
         SELECT health_score.set_model('plain', $${}$$::jsonb);
         CREATE TABLE today (id int, x float8);",
        walk_model(5.0),
        walk_model(0.0)
    ))
    .unwrap();
    // 20 accounts wandering around 60 (yellow/green) for 40 days, a deterministic walk
    let (accounts, days) = (20usize, 40usize);
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut x = vec![60.0f64; accounts];
    let mut walk = vec![vec![0.0; accounts]; days];
    for row in walk.iter_mut() {
        for (a, value) in row.iter_mut().enumerate() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            x[a] = (x[a] + (state % 801) as f64 / 100.0 - 4.0).clamp(45.0, 75.0);
            *value = (x[a] * 100.0).round() / 100.0;
        }
    }
    for (d, row) in walk.iter().enumerate() {
        let values: Vec<String> = row.iter().enumerate().map(|(a, v)| format!("({a}, {v})")).collect();
        Spi::run(&format!(
            "TRUNCATE today; INSERT INTO today VALUES {};
             SELECT health_score.snapshot('held', 'today', 'id', timestamptz '2026-01-01 00:00+00' + {d} * interval '1 day');
             SELECT health_score.snapshot('plain', 'today', 'id', timestamptz '2026-01-01 00:00+00' + {d} * interval '1 day');",
            values.join(", ")
        ))
        .unwrap();
    }
    // the bands stored, day by day, as the rule gives them from the band stored the day before
    let mut expected = Vec::new();
    for a in 0..accounts {
        let mut previous: Option<&str> = None;
        for row in &walk {
            let band = band_after(row[a], previous, 5.0);
            expected.push(format!("{a} {band}"));
            previous = Some(band);
        }
    }
    let stored = strings(
        "SELECT entity_key || ' ' || band FROM health_score.scores WHERE model = 'held' ORDER BY entity_key::int, scored_at",
    );
    assert_eq!(stored, expected);
    // band changes, counted from the history as a reader would
    let changes = |model: &str| {
        Spi::get_one::<i64>(&format!(
            "SELECT count(*) FILTER (WHERE band IS DISTINCT FROM before)
               FROM (SELECT band, lag(band) OVER (PARTITION BY entity_key ORDER BY scored_at) AS before
                       FROM health_score.scores WHERE model = '{model}') s WHERE before IS NOT NULL"
        ))
        .unwrap()
        .unwrap()
    };
    let (held, plain) = (changes("held"), changes("plain"));
    pgrx::log!("band changes over {days} days of {accounts} accounts: {plain} plain, {held} with a margin of 5");
    assert!(held * 3 < plain, "{held} band changes with a margin against {plain} without");
    // latest, worsened counts and alerts read the bands stored
    let latest = strings(
        "SELECT entity_key || ' ' || band FROM health_score.latest WHERE model = 'held' ORDER BY entity_key::int",
    );
    let last: Vec<String> = expected.iter().skip(days - 1).step_by(days).cloned().collect();
    assert_eq!(latest, last);
    let worsened =
        Spi::get_one::<i64>("SELECT sum(worsened)::bigint FROM health_score.snapshots WHERE model = 'held'").unwrap();
    let expected_worsened = (0..accounts)
        .flat_map(|a| (1..days).map(move |d| (a, d)))
        .filter(|&(a, d)| expected[a * days + d].ends_with("yellow") && expected[a * days + d - 1].ends_with("green"))
        .count() as i64;
    assert_eq!(worsened, Some(expected_worsened));
}

#[pg_test]
fn a_replaced_or_earlier_snapshot_continues_from_the_band_before_its_own_time() {
    Spi::run(&format!(
        "SET LOCAL client_min_messages = warning;
         SELECT health_score.set_model('held', $${}$$::jsonb);
         CREATE TABLE today (id int, x float8);
         INSERT INTO today VALUES (1, 65);
         SELECT health_score.snapshot('held', 'today', 'id', '2026-01-01');
         UPDATE today SET x = 50;
         SELECT health_score.snapshot('held', 'today', 'id', '2026-01-03');
         UPDATE today SET x = 58;
         SELECT health_score.snapshot('held', 'today', 'id', '2026-01-05');",
        walk_model(5.0)
    ))
    .unwrap();
    // 65 green; 50 yellow (below 55); 58 yellow (below 65 from yellow)
    let bands = || strings("SELECT band FROM health_score.scores ORDER BY scored_at");
    assert_eq!(bands(), ["green", "yellow", "yellow"]);
    // replacing the second with 58: from green (the first), 58 stays green; the third is not recomputed
    Spi::run("UPDATE today SET x = 58; SELECT health_score.snapshot('held', 'today', 'id', '2026-01-03')").unwrap();
    assert_eq!(bands(), ["green", "green", "yellow"]);
    // an earlier time than the latest: from the first, 56 is green (a probe of the history)
    Spi::run("UPDATE today SET x = 56; SELECT health_score.snapshot('held', 'today', 'id', '2026-01-02')").unwrap();
    assert_eq!(bands(), ["green", "green", "green", "yellow"]);
    // before every snapshot: nothing to continue from, the plain band
    Spi::run("SELECT health_score.snapshot('held', 'today', 'id', '2025-12-31')").unwrap();
    assert_eq!(bands(), ["yellow", "green", "green", "green", "yellow"]);
    // latest keeps the latest's band, and its previous is the band stored before it
    assert_eq!(strings("SELECT band || ' ' || previous_band FROM health_score.latest"), ["yellow green"]);
}

#[pg_test]
fn band_hysteresis_is_validated_with_its_path() {
    install_error_helper();
    let (state, message) = error_of(&format!(
        "SELECT health_score.set_model('bad', $${}$$::jsonb)",
        walk_model(5.0).replace("\"band_hysteresis\": 5", "\"band_hysteresis\": -2")
    ));
    assert_eq!(
        (state.as_str(), message.contains("band_hysteresis: must be 0 or more (-2)")),
        ("22023", true),
        "{message}"
    );
}
