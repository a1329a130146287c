//! The SQL functions against independent references: random models against the reference
//! implementation of the format, random broken models, `alerts` against plainly written SQL.

use super::*;

/// The bands in force for a segment, from the model's JSON.
fn bands_in_force(model: &serde_json::Value, segment: Option<&str>) -> Vec<f64> {
    let overridden = segment.and_then(|s| model["segments"]["overrides"][s]["bands"].as_array());
    overridden
        .or(model["bands"].as_array())
        .map(|bands| bands.iter().map(|b| b["min"].as_f64().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn random_models_score_through_sql_as_the_reference_says() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use reference::{close, opt_close};

    let mut c = database("hs_random_models");
    // the property tests' generator with a fixed seed: the same cases on every run
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    let strategy = reference::cases::case();
    let (mut scored, mut failed) = (0, 0);
    // about a third of the cases score; the rest carry an invalid input the model rejects
    for i in 0..900 {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let (model, input) = (case.model.to_string(), case.input.to_string());
        let what = format!("case {i}: model {model}, input {input}");
        let theirs = reference::evaluate(&case.model, &case.input);
        let assessed = c.query_one(
            "SELECT a.score, a.band, a.coverage, a.segment, health_score.score(m, i), health_score.band(m, i)
               FROM (SELECT $1::text::jsonb, $2::text::jsonb) x(m, i), health_score.assess(m, i) a",
            &[&model, &input],
        );
        // the long format: the same input as (key, value) rows
        let aggregated = c.query_one(
            "SELECT health_score.score_agg($1::text::jsonb, key, value) FROM jsonb_each($2::text::jsonb)",
            &[&model, &input],
        );
        let expected = match (assessed, theirs) {
            (Err(e), Err(_)) => {
                assert_eq!(sqlstate(&e), "22023", "{what}: {e}");
                let e = aggregated.expect_err(&what);
                assert_eq!(sqlstate(&e), "22023", "{what}: score_agg: {e}");
                failed += 1;
                continue;
            }
            (Ok(row), Ok(expected)) => {
                let (score, band): (Option<f64>, Option<String>) = (row.get(0), row.get(1));
                let (coverage, segment): (f64, Option<String>) = (row.get(2), row.get(3));
                assert!(opt_close(score, expected.score), "{what}: score {score:?} vs {:?}", expected.score);
                assert_eq!(row.get::<_, Option<f64>>(4), score, "{what}: score() and assess() differ");
                let aggregated: Option<f64> =
                    aggregated.unwrap_or_else(|e| panic!("{what}: score_agg failed: {e}")).get(0);
                assert_eq!(aggregated, score, "{what}: score_agg() and score() differ");
                assert_eq!(row.get::<_, Option<String>>(5), band, "{what}: band() and assess() differ");
                assert!(close(coverage, expected.coverage), "{what}: coverage {coverage} vs {}", expected.coverage);
                assert_eq!(segment, expected.segment, "{what}");
                // with hysteresis from the case's previous band (the spec's signature)
                let after: Option<String> = c
                    .query_one(
                        "SELECT health_score.band($1::text::jsonb, $2::text::jsonb, $3::text)",
                        &[&model, &input, &case.previous_band],
                    )
                    .unwrap_or_else(|e| panic!("{what}: band with a previous band failed: {e}"))
                    .get(0);
                let (expected_after, bounds) = reference::band_after(
                    &case.model,
                    segment.as_deref(),
                    expected.score,
                    case.previous_band.as_deref(),
                );
                if after != expected_after {
                    let s = score.unwrap();
                    let near = bounds.iter().any(|b| (s - b).abs() <= 1e-9 * b.abs().max(1.0));
                    assert!(near, "{what}: band after {:?}: {after:?} vs {expected_after:?}", case.previous_band);
                }
                if band != expected.band {
                    // either band is right for a score within 1e-9 relative of a band's min
                    let near =
                        bands_in_force(&case.model, segment.as_deref()).iter().any(|&min| close(min, score.unwrap()));
                    assert!(near, "{what}: band {band:?} vs {:?}", expected.band);
                }
                expected
            }
            (ours, theirs) => panic!("{what}: one side failed: SQL {ours:?}, reference {:?}", theirs.map(|o| o.score)),
        };
        let rows = c
            .query(
                "SELECT component, parent, input, normalized, weight, contribution, status
                   FROM health_score.explain($1::text::jsonb, $2::text::jsonb)",
                &[&model, &input],
            )
            .unwrap_or_else(|e| panic!("{what}: explain failed: {e}"));
        assert_eq!(rows.len(), expected.rows.len(), "{what}");
        for (row, want) in rows.iter().zip(&expected.rows) {
            let component: String = row.get(0);
            assert_eq!(component, want.component, "{what}");
            assert_eq!(row.get::<_, Option<String>>(1), want.parent, "{what}: parent of {component}");
            assert_eq!(row.get::<_, Option<String>>(2), want.input, "{what}: input of {component}");
            let normalized: Option<f64> = row.get(3);
            assert!(
                opt_close(normalized, want.normalized),
                "{what}: n of {component}: {normalized:?} vs {:?}",
                want.normalized
            );
            let weight: f64 = row.get(4);
            assert!(close(weight, want.weight), "{what}: weight of {component}: {weight} vs {}", want.weight);
            let points: Option<f64> = row.get(5);
            assert!(
                opt_close(points, want.contribution),
                "{what}: points of {component}: {points:?} vs {:?}",
                want.contribution
            );
            assert_eq!(row.get::<_, String>(6), want.status, "{what}: status of {component}");
        }
        scored += 1;
    }
    eprintln!("{scored} cases scored and {failed} rejected (an invalid input) alike");
    assert!(scored >= 250, "{scored} scored");
}

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn broken_models_get_22023_and_never_crash_a_backend() {
    let mut c = database("hs_broken_models");
    let inputs: Vec<String> = broken_models::inputs().iter().map(|v| v.to_string()).collect();
    let (mut valid, mut invalid) = (0, 0);
    for (i, model) in broken_models::cases(23, 400).iter().enumerate() {
        let input = &inputs[i % inputs.len()];
        let case = format!("case {i}: model {model}, input {input}");
        let faults: i64 = c
            .query_one("SELECT count(*) FROM health_score.validate($1::text::jsonb)", &[model])
            .unwrap_or_else(|e| panic!("{case}: validate failed: {e}"))
            .get(0);
        let score = c.query_one("SELECT health_score.score($1::text::jsonb, $2::text::jsonb)", &[model, input]);
        let explained = c.query_one(
            "SELECT sum(contribution) FILTER (WHERE parent IS NULL), count(*)
               FROM health_score.explain($1::text::jsonb, $2::text::jsonb)",
            &[model, input],
        );
        let banded = c.query_one(
            "SELECT health_score.band(m, i), (health_score.assess(m, i)).band FROM (SELECT $1::text::jsonb, $2::text::jsonb) x(m, i)",
            &[model, input],
        );
        match &score {
            Err(e) => {
                assert_eq!(sqlstate(e), "22023", "{case}: {e}");
                let message = e.as_db_error().unwrap().message();
                // validate finds a fault exactly when scoring rejects the model
                assert_eq!(faults > 0, message.starts_with("invalid health model"), "{case}: {message}");
                // explain and band fail the same way
                assert_eq!(explained.as_ref().map_err(sqlstate).err().as_deref(), Some("22023"), "{case}");
                assert_eq!(banded.as_ref().map_err(sqlstate).err().as_deref(), Some("22023"), "{case}");
            }
            Ok(row) => {
                assert_eq!(faults, 0, "{case}: scored a model validate rejects");
                let score: Option<f64> = row.get(0);
                let explained = explained.unwrap_or_else(|e| panic!("{case}: explain failed: {e}"));
                let (sum, rows): (Option<f64>, i64) = (explained.get(0), explained.get(1));
                assert!(rows > 0, "{case}");
                match (score, sum) {
                    (Some(s), Some(t)) => assert!((s - t).abs() <= 1e-9 * s.abs().max(1.0), "{case}: {s} vs {t}"),
                    (None, None) => {}
                    other => panic!("{case}: score and explain's sum differ: {other:?}"),
                }
                let scale =
                    serde_json::from_str::<serde_json::Value>(model).unwrap()["scale"].as_f64().unwrap_or(100.0);
                assert!(score.is_none_or(|s| (0.0..=scale * (1.0 + 1e-12)).contains(&s)), "{case}: {score:?}");
                let banded = banded.unwrap_or_else(|e| panic!("{case}: band failed: {e}"));
                assert_eq!(banded.get::<_, Option<String>>(0), banded.get::<_, Option<String>>(1), "{case}");
            }
        }
        if faults > 0 {
            invalid += 1;
        } else {
            valid += 1;
        }
    }
    // the mutations reach both sides
    eprintln!("{valid} valid and {invalid} invalid models");
    assert!(valid >= 10 && invalid >= 100, "{valid} valid, {invalid} invalid");
    assert_eq!(c.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0), 1);
}

/// `alerts` against the same question written plainly (tests/cluster/alerts_reference.sql: whole rows,
/// one lookup per entity and baseline), on a random history: entities come and go, times are
/// irregular, inputs go missing, and the model changes version (and components) halfway.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn alerts_match_a_plainly_written_reference_on_random_histories() {
    let mut c = database("hs_alerts_reference");
    c.batch_execute(include_str!("alerts_reference.sql")).unwrap();
    c.batch_execute(
        r#"SET client_min_messages = warning;
        SELECT health_score.set_model('m', '{"bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 40}, {"name": "green", "min": 70}],
          "components": [{"name": "a", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}},
                         {"name": "g", "weight": 2, "components": [
                             {"name": "b", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}},
                             {"name": "c", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}}]}]}');
        SELECT health_score.set_model('m', '{"bands": [{"name": "low", "min": 0}, {"name": "high", "min": 50}],
          "components": [{"name": "a", "weight": 3, "normalize": {"type": "linear", "min": 0, "max": 10}},
                         {"name": "d", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}}]}');
        -- version 3 moves a into the group g and b out of it
        SELECT health_score.set_model('m', '{"bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 40}, {"name": "green", "min": 70}],
          "components": [{"name": "b", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}},
                         {"name": "g", "weight": 2, "components": [
                             {"name": "a", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}},
                             {"name": "c", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}}]}]}');
        SELECT setseed(0.42);
        CREATE TABLE src (id int, a float8, b float8, c float8, d float8);
        DO $$
        DECLARE i int;
        BEGIN
          FOR i IN 1..16 LOOP
            TRUNCATE src;
            INSERT INTO src SELECT g, CASE WHEN random() < 0.1 THEN NULL ELSE floor(random() * 11) END,
                                   floor(random() * 11), floor(random() * 11), floor(random() * 11)
              FROM generate_series(1, 400) g WHERE random() < 0.7;
            PERFORM health_score.snapshot(CASE WHEN i > 13 THEN 'm@3' WHEN i > 10 THEN 'm@2' ELSE 'm@1' END, 'src', 'id',
                timestamptz '2026-01-01' + (i * i % 17 + i * 2) * interval '1 day' + (i % 3) * interval '7 hours',
                keep_inputs => false);
          END LOOP;
        END $$;"#,
    )
    .unwrap();
    let mut alerted = 0;
    for min_drop in ["0", "3", "10", "'Infinity'"] {
        for since in ["0", "1 hour", "1 day", "3 days", "10 days", "1000 days"] {
            let args = format!("'m', {min_drop}, '{since}'");
            let row = c
                .query_one(
                    &format!(
                        "SELECT (SELECT count(*) FROM health_score.alerts({args})),
                                (SELECT count(*) FROM (SELECT * FROM health_score.alerts({args})
                                                       EXCEPT ALL SELECT * FROM pg_temp.reference_alerts({args})) x)
                              + (SELECT count(*) FROM (SELECT * FROM pg_temp.reference_alerts({args})
                                                       EXCEPT ALL SELECT * FROM health_score.alerts({args})) y),
                                (SELECT array_agg(entity_key) FROM health_score.alerts({args}))
                                    IS NOT DISTINCT FROM (SELECT array_agg(entity_key) FROM pg_temp.reference_alerts({args}))"
                    ),
                    &[],
                )
                .unwrap();
            let (n, differ, same_order): (i64, i64, bool) = (row.get(0), row.get(1), row.get(2));
            assert_eq!(differ, 0, "alerts({args}) differs from the reference in {differ} rows");
            assert!(same_order, "alerts({args}) lists the entities in another order");
            alerted += n;
        }
    }
    // the cases exercised something: alerts with drivers across both versions
    assert!(alerted > 1_000, "{alerted}");
    let across: i64 = c
        .query_one(
            "SELECT count(*) FROM health_score.alerts('m', 3, '10 days') a
              WHERE a.drivers::text LIKE '%\"d\"%' AND a.drivers::text LIKE '%\"g\"%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(across > 0, "no alert compares the two versions' components");
    // a component that moved between groups is two drivers, one under each parent, and on each
    // side the top-level points add up to the score
    let moved: i64 = c
        .query_one(
            "SELECT count(*) FROM health_score.alerts('m', 0, '1000 days') a
              WHERE (SELECT count(*) FROM jsonb_array_elements(a.drivers) d WHERE d ->> 'component' = 'a') = 2",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(moved > 0, "no alert shows a component that moved between groups");
    let unbalanced: i64 = c
        .query_one(
            "SELECT count(*) FROM health_score.alerts('m', 0, '1000 days') a
              WHERE abs(coalesce((SELECT sum((d ->> 'change')::float8) FROM jsonb_array_elements(a.drivers) d
                                  WHERE d -> 'parent' = 'null'), 0) - a.score_change) > 1e-9",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(unbalanced, 0);
}
