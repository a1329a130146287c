// The `#[pg_test]`s of `src/pg/snapshot.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

use crate::pg::test_support::*;

#[pg_test]
fn null_and_out_of_range_arguments_to_the_table_functions_are_clear_errors() {
    setup_accounts();
    Spi::run(
        "ALTER TABLE accounts ADD COLUMN churned boolean;
         CREATE TABLE churn (id int, churned_at timestamptz);
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01');",
    )
    .unwrap();
    install_error_helper();
    // each call with one of its arguments NULL in turn
    let calls: [(&str, &[&str]); 8] = [
        ("band_report", &["'churn'::text", "'accounts'::regclass", "'churned'::text"]),
        ("evaluate", &["'churn'::text", "'accounts'::regclass", "'churned'::text"]),
        ("calibrate", &["'churn'::text", "'accounts'::regclass", "'churned'::text"]),
        ("fit", &["'churn'::text", "'accounts'::regclass", "'churned'::text"]),
        ("fit_report", &["'churn'::text", "'accounts'::regclass", "'churned'::text"]),
        (
            "backtest",
            &["'churn'::text", "'churn'::regclass", "'id'::text", "'churned_at'::text", "'90 days'::interval"],
        ),
        ("alerts", &["'churn'::text", "1::float8", "'1 day'::interval"]),
        ("drivers", &["'churn'::text", "'1'::text", "'2026-01-01'::timestamptz", "'2026-01-01'::timestamptz"]),
    ];
    for (function, args) in calls {
        let nullable = if function == "drivers" { 1 } else { args.len() };
        for i in 0..nullable {
            let mut given: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            given[i] = format!("NULL::{}", args[i].rsplit("::").next().unwrap());
            let (state, message) = error_of(&format!("SELECT * FROM health_score.{function}({})", given.join(", ")));
            assert_eq!(state, "22023", "{function} with argument {i} NULL: {message}");
            assert!(message.contains("NULL") || message.contains("must be"), "{function}, argument {i}: {message}");
        }
    }
    // inline models too
    let (state, _) = error_of("SELECT * FROM health_score.evaluate(NULL::jsonb, 'accounts', 'churned')");
    assert_eq!(state, "22023");
    // intervals that reach past the times PostgreSQL represents, and a view name it cannot parse
    let (state, message) = error_of("SELECT * FROM health_score.alerts('churn', 1, '7000 years')");
    assert_eq!(state, "22023", "{message}");
    assert!(message.contains("earliest time"), "{message}");
    let (state, message) =
        error_of("SELECT * FROM health_score.backtest('churn', 'churn', 'id', 'churned_at', '300000 years')");
    assert_eq!(state, "22023", "{message}");
    assert!(message.contains("latest time"), "{message}");
    let (state, message) = error_of("SELECT health_score.create_view('bad name!', 'churn', 'accounts', 'id')");
    assert_eq!(state, "42602", "{message}");
    assert!(message.starts_with("create_view:"), "{message}");
}

#[pg_test]
fn snapshot_stores_scores_and_components() {
    setup_accounts();
    let written = Spi::get_one::<i64>("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01')").unwrap();
    assert_eq!(written, Some(3));
    // each stored score is the pure core's score of the same input
    let expected = [
        core_score(serde_json::json!({"logins": 20, "active": 100, "nps": "promoter", "overdue": 0})),
        core_score(serde_json::json!({"logins": 10, "active": 9, "nps": "passive", "overdue": 2})),
        core_score(serde_json::json!({"logins": 0})),
    ];
    for (id, want) in expected.iter().enumerate() {
        let got = sql_f64(&format!(
            "SELECT score FROM health_score.scores WHERE model = 'churn' AND entity_key = '{}'",
            id + 1
        ));
        assert!(close(got, *want), "account {}: {got:?} vs {want:?}", id + 1);
    }
    // and the very double score() gives
    let differ = Spi::get_one::<i64>(
        "SELECT count(*) FROM health_score.scores s JOIN accounts a ON s.entity_key = a.id::text
          WHERE s.score IS DISTINCT FROM health_score.score('churn', a)
             OR s.coverage IS DISTINCT FROM (health_score.assess('churn', a)).coverage",
    )
    .unwrap();
    assert_eq!(differ, Some(0));
    // components hold exactly explain's contributions and normalized values, for every component
    let mismatches = Spi::get_one::<i64>(
        "SELECT count(*) FROM health_score.scores s, accounts a, health_score.explain('churn', a) e
          WHERE s.entity_key = a.id::text
            AND ((s.components -> e.component ->> 'points')::float8 IS DISTINCT FROM e.contribution
              OR (s.components -> e.component ->> 'n')::float8 IS DISTINCT FROM e.normalized)",
    )
    .unwrap();
    assert_eq!(mismatches, Some(0));
    let keys =
        Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores s, jsonb_object_keys(s.components) k").unwrap();
    assert_eq!(keys, Some(3 * 5));
    // written as binary JSONB, it reads back as PostgreSQL would have built it from text
    let canonical = Spi::get_one::<bool>(
        "SELECT bool_and(components = components::text::jsonb AND components::text = components::text::jsonb::text) FROM health_score.scores",
    )
    .unwrap();
    assert_eq!(canonical, Some(true));
    let row = Spi::get_three::<String, i32, f64>(
        "SELECT band, band_rank, coverage FROM health_score.scores WHERE entity_key = '3'",
    )
    .unwrap();
    // only logins is present: its share is 2/4 × 1/2
    assert_eq!(row, (Some("red".into()), Some(0), Some(0.25)));
}

#[pg_test]
fn snapshot_replaces_adds_and_writes_all_or_nothing() {
    setup_accounts();
    Spi::run("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01')").unwrap();
    Spi::run("UPDATE accounts SET logins = 0 WHERE id = 1").unwrap();
    // the same time again replaces (no duplicates), with the new values
    Spi::run("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01')").unwrap();
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores").unwrap(), Some(3));
    let s1 = sql_f64("SELECT score FROM health_score.scores WHERE entity_key = '1'");
    assert!(close(s1, core_score(serde_json::json!({"logins": 0, "active": 100, "nps": "promoter", "overdue": 0}))));
    // a second source at the same time adds its own entities
    Spi::run(
        "CREATE TABLE more_accounts (key text, logins int, active numeric, nps text, overdue int);
         INSERT INTO more_accounts VALUES ('a-10', 5, 5, 'promoter', 0)",
    )
    .unwrap();
    Spi::run("SELECT health_score.snapshot('churn', 'more_accounts', 'key', '2026-01-01')").unwrap();
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores").unwrap(), Some(4));
    // bad input anywhere: a clear error and nothing written
    install_error_helper();
    Spi::run("INSERT INTO more_accounts VALUES ('a-11', 5, 'NaN', 'promoter', 0)").unwrap();
    let (state, message) = error_of("SELECT health_score.snapshot('churn', 'more_accounts', 'key', '2026-02-01')");
    assert_eq!(state, "22023");
    assert!(message.contains("\"a-11\"") && message.contains("\"seats\""), "{message}");
    Spi::run("INSERT INTO accounts VALUES (NULL, 1, 1, 'passive', 0)").unwrap();
    let (state, message) = error_of("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-02-01')");
    assert_eq!(state, "22023");
    assert!(message.contains("NULL key") && message.contains("\"id\""), "{message}");
    assert_eq!(error_of("SELECT health_score.snapshot('chrun', 'accounts', 'id')").0, "42704");
    assert_eq!(error_of("SELECT health_score.snapshot('churn', 'accounts', 'no_such_column')").0, "42703");
    // a key twice in the source, on a new time and on a time already snapshotted
    Spi::run("CREATE TABLE twice AS SELECT * FROM accounts WHERE id = 2; UPDATE twice SET id = 7; INSERT INTO twice SELECT * FROM twice").unwrap();
    for at in ["2026-03-01", "2026-01-01"] {
        let (state, message) = error_of(&format!("SELECT health_score.snapshot('churn', 'twice', 'id', '{at}')"));
        assert_eq!(state, "21000", "{message}");
        assert!(message.contains("more than one row for the same id, such as \"7\""), "{message}");
    }
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores").unwrap(), Some(4));
    // rows whose run record was deleted are still replaced, not reported as a duplicate key
    Spi::run("DELETE FROM health_score.snapshots; UPDATE accounts SET logins = 10 WHERE id = 1; DELETE FROM accounts WHERE id IS NULL")
        .unwrap();
    assert_eq!(
        Spi::get_one::<i64>("SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-01-01')").unwrap(),
        Some(3)
    );
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores").unwrap(), Some(4));
    let s1 = sql_f64("SELECT score FROM health_score.scores WHERE entity_key = '1'");
    assert!(close(s1, core_score(serde_json::json!({"logins": 10, "active": 100, "nps": "promoter", "overdue": 0}))));
    // and bands are still compared with the earlier snapshot: account 1 falls to the worst band
    Spi::run(
        "DELETE FROM health_score.snapshots;
         UPDATE accounts SET logins = 0, active = 0, nps = 'passive', overdue = 1000 WHERE id = 1;
         SELECT health_score.snapshot('churn', 'accounts', 'id', '2026-02-01');",
    )
    .unwrap();
    let (recorded, by_hand) = Spi::get_two::<i64, i64>(
        "SELECT (SELECT worsened FROM health_score.snapshots WHERE scored_at = '2026-02-01'),
                (SELECT count(*) FROM health_score.scores n JOIN health_score.scores o USING (model, entity_key)
                  WHERE n.scored_at = '2026-02-01' AND o.scored_at = '2026-01-01' AND n.band_rank < o.band_rank)",
    )
    .unwrap();
    assert_eq!(recorded, by_hand);
    assert!(by_hand.unwrap() >= 1, "account 1 must have worsened");
}

/// `latest` as a plain query over the whole history computes it.
const LATEST_REFERENCE: &str = "SELECT s.model, s.entity_key, s.scored_at, s.model_version, s.score, s.band, s.band_rank, s.coverage,
                            s.segment, p.scored_at, p.score, p.band, p.band_rank, s.score - p.score,
                            CASE WHEN p.scored_at IS NULL THEN 'new'
                                 WHEN s.band_rank < p.band_rank THEN 'worsened'
                                 WHEN s.band_rank > p.band_rank THEN 'improved'
                                 WHEN s.band_rank = p.band_rank THEN 'same' END
                       FROM health_score.scores s
                       LEFT JOIN health_score.scores p
                         ON p.model = s.model AND p.entity_key = s.entity_key
                        AND p.scored_at = (SELECT max(x.scored_at) FROM health_score.scores x
                                            WHERE x.model = s.model AND x.entity_key = s.entity_key AND x.scored_at < s.scored_at)
                      WHERE s.scored_at = (SELECT max(x.scored_at) FROM health_score.scores x
                                            WHERE x.model = s.model AND x.entity_key = s.entity_key)";

/// The rows of `latest` and of the reference that the other has not (0 when they agree).
fn latest_differences() -> i64 {
    Spi::get_one::<i64>(&format!(
        "SELECT count(*) FROM ((SELECT * FROM health_score.latest EXCEPT ALL {LATEST_REFERENCE})
                               UNION ALL ({LATEST_REFERENCE} EXCEPT ALL SELECT * FROM health_score.latest)) d"
    ))
    .unwrap()
    .unwrap()
}

#[pg_test]
fn the_current_state_stays_exact_through_random_snapshots_deletes_and_updates() {
    setup_model();
    Spi::run(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE src (id int, logins int, active numeric, nps text, overdue int);
         SELECT setseed(0.61)",
    )
    .unwrap();
    // a fixed xorshift sequence picks 160 operations: snapshots of a changing source at new,
    // earlier and repeated times, deletes, updates and bulk inserts by hand, and retention
    // dropping January's partition
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut kinds = std::collections::BTreeSet::new();
    let (mut days, mut earlier, mut replaced) = (std::collections::BTreeSet::new(), 0, 0);
    let mut worsened_total = 0;
    for step in 0..160 {
        let day = next(40);
        let op = next(13);
        if op <= 5 {
            earlier += usize::from(days.last().is_some_and(|&last| day < last));
            replaced += usize::from(!days.insert(day));
        }
        let statement = match op {
            // a snapshot at any day: later than the latest, between earlier ones, or the same
            // as one taken (replacing it), of a source whose entities and values change
            0..=5 => format!(
                "DELETE FROM src;
                 INSERT INTO src SELECT g, floor(random() * 30), floor(random() * 100), (ARRAY['promoter', 'passive', NULL])[1 + floor(random() * 3)], floor(random() * 10)
                   FROM generate_series(1, 25) g WHERE random() < 0.8;
                 SELECT health_score.snapshot('churn', 'src', 'id', timestamptz '2026-01-01' + {day} * interval '1 day')"
            ),
            6 => format!("DELETE FROM health_score.scores WHERE scored_at = timestamptz '2026-01-01' + {day} * interval '1 day'"),
            7 => format!("DELETE FROM health_score.scores WHERE entity_key IN ('{}', '{}')", next(25) + 1, next(25) + 1),
            8 => "DELETE FROM health_score.scores WHERE score < 30".into(),
            9 => format!("UPDATE health_score.scores SET score = score / 2, band = 'red', band_rank = 0 WHERE entity_key::int % 5 = {}", next(5)),
            10 => format!("UPDATE health_score.scores SET scored_at = scored_at + interval '1 hour' WHERE entity_key = '{}'", next(25) + 1),
            12 => "SELECT health_score.set_retention('churn', '1 day');
                   SELECT count(*) FROM health_score.apply_retention(at => '2026-02-02')"
                .into(),
            // several rows of one entity in one statement
            _ => format!(
                "INSERT INTO health_score.scores (model, model_version, entity_key, scored_at, score, band, band_rank, coverage, components)
                 SELECT 'churn', 1, e::text, timestamptz '2026-03-01' + {day} * interval '1 day' + h * interval '1 minute', 50, 'yellow', 1, 1, '{{}}'
                   FROM generate_series(1, 3) e, generate_series(1, 3) h
                 ON CONFLICT DO NOTHING"
            ),
        };
        Spi::run(&statement).unwrap();
        if op <= 5 {
            // the run's count of worsened bands: its entities whose band rank fell from their
            // latest snapshot before it
            let at = format!("timestamptz '2026-01-01' + {day} * interval '1 day'");
            let (counted, expected) = Spi::get_two::<i64, i64>(&format!(
                "SELECT (SELECT worsened FROM health_score.snapshots WHERE model = 'churn' AND scored_at = {at}),
                        (SELECT count(*) FROM health_score.scores s
                          WHERE s.model = 'churn' AND s.scored_at = {at} AND s.entity_key IN (SELECT id::text FROM src)
                            AND s.band_rank < (SELECT p.band_rank FROM health_score.scores p
                                                WHERE p.model = 'churn' AND p.entity_key = s.entity_key AND p.scored_at < {at}
                                                ORDER BY p.scored_at DESC LIMIT 1))"
            ))
            .unwrap();
            assert_eq!(counted, expected, "worsened bands after step {step}: {statement}");
            worsened_total += counted.unwrap_or(0);
        }
        kinds.insert(if op <= 5 { 0 } else { op });
        assert_eq!(latest_differences(), 0, "after step {step}: {statement}");
    }
    assert_eq!(kinds.len(), 8, "every kind of change ran");
    assert!(worsened_total > 20, "{worsened_total} bands worsened in all");
    assert!(earlier > 10 && replaced > 10, "snapshots before the latest ({earlier}) and replacing one ({replaced})");
    let rows = Spi::get_one::<i64>("SELECT count(*) FROM health_score.scores").unwrap().unwrap();
    assert!(rows > 100, "{rows} rows of history");
    Spi::run("TRUNCATE health_score_internal.score_rows").unwrap();
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.latest").unwrap(), Some(0));
}

#[pg_test]
fn latest_matches_a_plainly_written_reference_on_random_histories() {
    // three models, entities missing from some snapshots, NULL scores and bands among them
    Spi::run(
        "SELECT setseed(0.25);
         INSERT INTO health_score.scores (model, model_version, entity_key, scored_at, score, band, band_rank, coverage, components)
         SELECT m, 1, e, at, score, (ARRAY['red', 'yellow', 'green'])[floor(score / 40) + 1], floor(score / 40), 1, '{}'
           FROM (SELECT 'm' || i AS m, e::text AS e, timestamptz '2026-01-01' + d * interval '1 day' AS at,
                        CASE WHEN random() < 0.15 THEN NULL ELSE random() * 100 END AS score, random() AS keep
                   FROM generate_series(1, 3) i, generate_series(1, 150) e, generate_series(0, 9) d) r
          WHERE keep < 0.5",
    )
    .unwrap();
    assert_eq!(latest_differences(), 0);
    let entities =
        Spi::get_one::<i64>("SELECT count(*) FROM (SELECT DISTINCT model, entity_key FROM health_score.scores) e")
            .unwrap();
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.latest").unwrap(), entities);
    // every kind of band change occurred
    let kinds =
        Spi::get_one::<i64>("SELECT count(DISTINCT coalesce(band_change, 'null')) FROM health_score.latest").unwrap();
    assert_eq!(kinds, Some(5));
}

#[pg_test]
fn text_object_is_jsonb_object_written_directly() {
    let differ = Spi::get_one::<i64>(
        "SELECT count(*) FROM (VALUES
             ('{logins,nps,a_much_longer_key,b}'::text[], ARRAY['12.5', NULL, 'déjà \"vu\"', '']::text[]),
             ('{}'::text[], '{}'::text[]),
             ('{x}'::text[], '{1e-05}'::text[])) t(k, v)
          WHERE health_score_internal._text_object(k, v) IS DISTINCT FROM jsonb_object(k, v)
             OR health_score_internal._text_object(k, v)::text IS DISTINCT FROM jsonb_object(k, v)::text",
    )
    .unwrap();
    assert_eq!(differ, Some(0));
    // one call site, keys changing from row to row (its cached key order must follow)
    let differ = Spi::get_one::<i64>(
        "SELECT count(*) FROM generate_series(1, 9) g,
                LATERAL (SELECT ARRAY['k' || repeat('x', g % 3), 'z'] AS k, ARRAY[g::text, NULL] AS v) a
          WHERE health_score_internal._text_object(a.k, a.v)::text IS DISTINCT FROM jsonb_object(a.k, a.v)::text",
    )
    .unwrap();
    assert_eq!(differ, Some(0));
    install_error_helper();
    assert_eq!(error_of("SELECT health_score_internal._text_object('{a,b}', '{1}')").0, "22023");
    assert_eq!(error_of("SELECT health_score_internal._text_object('{a,a}', '{1,2}')").0, "22023");
}

#[pg_test]
fn a_stored_record_gives_back_the_components_a_snapshot_writes() {
    install_error_helper();
    // groups, a missing rule, an imputation, invalid inputs read as missing, segment overrides
    // (one of which excludes a component), min_coverage, and a second version with other leaves
    Spi::run(
        r#"SELECT health_score.set_model('seg', '{
             "bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 40}, {"name": "green", "min": 70}],
             "min_coverage": 0.3,
             "components": [
               {"name": "usage", "weight": 2, "components": [
                 {"name": "logins", "weight": 2, "normalize": {"type": "linear", "min": 0, "max": 50}},
                 {"name": "seats", "weight": 1, "missing": {"impute": 0.3}, "normalize": {"type": "log", "min": 0, "max": 100}}
               ]},
               {"name": "nps", "weight": 1, "on_invalid": "missing",
                "normalize": {"type": "map", "values": {"promoter": 1, "passive": 0.5, "detractor": 0}}},
               {"name": "overdue", "weight": 1, "missing": "zero", "normalize": {"type": "linear", "min": 0, "max": 90, "invert": true}}
             ],
             "segments": {"input": "plan", "overrides": {"ent": {"weights": {"nps": 3}}, "smb": {"weights": {"overdue": 0}}}}
           }');
           SELECT health_score.set_model('seg', '{"components": [{"name": "logins", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 50}}]}');
           SELECT setseed(0.37);
           CREATE TABLE seg_rows AS
           SELECT g AS id,
                  CASE WHEN random() < 0.2 THEN NULL ELSE floor(random() * 60) END AS logins,
                  CASE WHEN random() < 0.3 THEN NULL ELSE floor(random() * 120) END AS seats,
                  (ARRAY['promoter', 'passive', 'detractor', 'unknown', NULL])[1 + floor(random() * 5)] AS nps,
                  CASE WHEN random() < 0.3 THEN NULL ELSE floor(random() * 100) END AS overdue,
                  (ARRAY['ent', 'smb', 'other', NULL])[1 + floor(random() * 4)] AS plan
             FROM generate_series(1, 400) g"#,
    )
    .unwrap();
    let compared = "FROM seg_rows r, health_score_internal._snapshot_row('seg@1', 'id', r.id::text, r) a,
                         health_score_internal._snapshot_record('seg@1', 'id', r.id::text, NULL, r) b";
    let differ = Spi::get_one::<i64>(&format!(
        "SELECT count(*) {compared}
          WHERE a.score IS DISTINCT FROM b.score OR a.band IS DISTINCT FROM b.band
             OR a.band_rank IS DISTINCT FROM b.band_rank OR a.coverage IS DISTINCT FROM b.coverage
             OR a.segment IS DISTINCT FROM b.segment
             OR a.components::text IS DISTINCT FROM health_score_internal._record_components('seg@1', b.record)::text"
    ))
    .unwrap();
    assert_eq!(differ, Some(0));
    // the rows cover what the record has to carry: segments, no score, imputed and invalid leaves
    let covered = Spi::get_one::<bool>(&format!(
        "SELECT count(DISTINCT a.segment) = 2 AND bool_or(a.score IS NULL) AND bool_or(a.score IS NOT NULL)
                AND bool_or(r.seats IS NULL) AND bool_or(r.nps = 'unknown') {compared}"
    ))
    .unwrap();
    assert_eq!(covered, Some(true));
    // a few bytes a leaf, against the components' JSONB
    let (record, components) = Spi::get_two::<i64, i64>(&format!(
        "SELECT sum(octet_length(b.record)), sum(octet_length(a.components::text)) {compared}"
    ))
    .unwrap();
    assert!(record.unwrap() * 4 < components.unwrap(), "{record:?} vs {components:?}");
    // bytes that are not a record of that version: 22023
    for bad in ["'\\x01'", "'\\x0200'", "(SELECT b.record || '\\x00'::bytea FROM seg_rows r, health_score_internal._snapshot_record('seg@1', 'id', r.id::text, NULL, r) b LIMIT 1)"] {
        let (state, message) = error_of(&format!("SELECT health_score_internal._record_components('seg@1', {bad})"));
        assert_eq!(state, "22023", "{bad}: {message}");
        assert!(message.contains("not a stored record of seg@1"), "{message}");
    }
    let (state, _) = error_of(
        "SELECT health_score_internal._record_components('seg@2', b.record)
           FROM seg_rows r, health_score_internal._snapshot_record('seg@1', 'id', r.id::text, NULL, r) b LIMIT 1",
    );
    assert_eq!(state, "22023");
}
