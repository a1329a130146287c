//! Band hysteresis (docs/model-format.md): random band lists, margins, previous bands and scores
//! crowded around the bounds, checked against the reference's reading of the rule; and a
//! random walk around a boundary, which changes band far less often with a margin than without.

#[allow(dead_code)] // the reference serves other tests too
mod reference;

use health_score_core::{Json, Model};
use proptest::prelude::*;
use serde_json::{json, Value};

/// A model of one leaf reading `x` as it is (0–100 → 0–1), with the given bands and margin.
fn model_with(mins: &[f64], margin: Option<f64>) -> Value {
    let bands: Vec<Value> = mins.iter().enumerate().map(|(i, m)| json!({"name": format!("b{i}"), "min": m})).collect();
    let mut model = json!({
        "components": [{"name": "x", "input": "x", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 100}}],
        "bands": bands,
    });
    if let Some(h) = margin {
        model["band_hysteresis"] = json!(h);
    }
    model
}

fn score_of(model: &Model, x: f64) -> Option<f64> {
    let input = Json::from(&json!({ "x": x }));
    let values = model.values_from_json(&input);
    model.evaluate(&values).ok()?.score
}

fn bands_and_scores() -> impl Strategy<Value = (Vec<f64>, Option<f64>, Option<String>, Vec<f64>)> {
    (prop::collection::vec(1.0..40.0f64, 0..4), prop::option::of(prop_oneof![Just(0.0), 0.0..30.0f64]), 0..7usize)
        .prop_flat_map(|(gaps, margin, previous)| {
            let mut mins = vec![0.0];
            for g in gaps {
                let next = mins.last().unwrap() + g;
                mins.push(next);
            }
            let bounds: Vec<f64> = mins
                .iter()
                .flat_map(|m| [*m, m - margin.unwrap_or(0.0), m + margin.unwrap_or(0.0)])
                .filter(|b| (0.0..=100.0).contains(b))
                .collect();
            // scores on a bound, a hair either side, or anywhere
            let near = prop::sample::select(bounds).prop_flat_map(|b| {
                prop_oneof![Just(b), Just(b - 1e-7), Just(b + 1e-7), Just(b.next_up()), Just(b.next_down())]
            });
            let score = prop_oneof![near, 0.0..=100.0f64].prop_map(|s: f64| s.clamp(0.0, 100.0));
            let names = mins.len();
            let previous = match previous {
                p if p < names => Some(format!("b{p}")),
                p if p == names => Some("B0".to_string()),
                _ => None,
            };
            (Just(mins), Just(margin), Just(previous), prop::collection::vec(score, 1..8))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn band_after_follows_the_spec((mins, margin, previous, xs) in bands_and_scores()) {
        let json = model_with(&mins, margin);
        let model = Model::parse(&Json::from(&json)).expect("a valid model");
        for x in xs {
            let score = score_of(&model, x);
            let ours = model.band_after(None, score, previous.as_deref()).map(|(rank, b)| (rank, b.name.clone()));
            let (theirs, bounds) = reference::band_after(&json, None, score, previous.as_deref());
            prop_assert_eq!(ours.as_ref().map(|(rank, name)| format!("b{rank}") == *name), Some(true));
            if ours.as_ref().map(|(_, n)| n) != theirs.as_ref() {
                let s = score.unwrap();
                prop_assert!(bounds.iter().any(|b| (s - b).abs() <= 1e-9 * b.abs().max(1.0)),
                    "{:?} vs {:?} for score {} after {:?} in {}", ours, theirs, s, previous, json);
            }
            // without a previous band, or with no margin, it is the plain band
            let plain = model.band_of(None, score).map(|(r, _)| r);
            prop_assert_eq!(model.band_after(None, score, None).map(|(r, _)| r), plain);
            if margin.unwrap_or(0.0) == 0.0 {
                prop_assert_eq!(ours.map(|(r, _)| r), plain);
            }
        }
    }
}

#[test]
fn a_null_score_has_no_band_whatever_came_before() {
    let model = Model::parse(&Json::from(&model_with(&[0.0, 50.0], Some(5.0)))).unwrap();
    assert_eq!(model.band_after(None, None, Some("b1")), None);
}

#[test]
fn band_hysteresis_must_be_a_finite_number_of_zero_or_more() {
    for (bad, message) in [
        (json!(-1), "band_hysteresis: must be 0 or more (-1)"),
        (json!("2"), "band_hysteresis: must be a number, not a string"),
    ] {
        let mut model = model_with(&[0.0, 50.0], None);
        model["band_hysteresis"] = bad;
        let faults = Model::faults(&Json::from(&model));
        assert_eq!(faults.iter().map(|f| format!("{}: {}", f.path, f.message)).collect::<Vec<_>>(), vec![message]);
    }
    let mut with_override = model_with(&[0.0, 50.0], Some(2.0));
    with_override["segments"] = json!({"input": "plan", "overrides": {"ent": {"band_hysteresis": -0.5}}});
    let faults = Model::faults(&Json::from(&with_override));
    assert_eq!(faults[0].path, "segments.overrides.ent.band_hysteresis");
    // without bands it is valid, and changes nothing
    let no_bands = json!({"components": [{"name": "x", "input": "x", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 1}}],
                          "band_hysteresis": 3});
    assert!(Model::faults(&Json::from(&no_bands)).is_empty());
}

#[test]
fn an_override_keeps_the_models_margin_unless_it_sets_its_own() {
    let mut json = model_with(&[0.0, 50.0], Some(10.0));
    json["components"][0]["name"] = json!("x");
    json["segments"] = json!({"input": "plan", "overrides": {
        "own": {"band_hysteresis": 1},
        "bands_only": {"bands": [{"name": "low", "min": 0}, {"name": "high", "min": 60}]},
    }});
    let model = Model::parse(&Json::from(&json)).unwrap();
    let own = model.segment_index("own");
    let bands_only = model.segment_index("bands_only");
    assert_eq!(model.variant(own).band_hysteresis, 1.0);
    assert_eq!(model.variant(bands_only).band_hysteresis, 10.0);
    // 55 after "high" (60 - 10 <= 55): kept; after "b1" with a margin of 1 at 48: left
    assert_eq!(model.band_after(bands_only, Some(55.0), Some("high")).map(|(_, b)| b.name.as_str()), Some("high"));
    assert_eq!(model.band_after(own, Some(48.0), Some("b1")).map(|(_, b)| b.name.as_str()), Some("b0"));
    assert_eq!(model.band_after(own, Some(49.5), Some("b1")).map(|(_, b)| b.name.as_str()), Some("b1"));
}

/// A score that wanders around the yellow/green boundary (60): without a margin it changes band
/// whenever it crosses 60; with a margin of 5 only when it moves 5 points past the bound of the
/// band it is in, which a walk of ±3 steps does a handful of times.
#[test]
fn a_random_walk_around_a_boundary_flaps_less_with_a_margin() {
    let plain = Model::parse(&Json::from(&model_with(&[0.0, 40.0, 60.0], None))).unwrap();
    let held = Model::parse(&Json::from(&model_with(&[0.0, 40.0, 60.0], Some(5.0)))).unwrap();
    // a deterministic walk (xorshift), clamped to 50..70
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut x = 60.0f64;
    let (mut changes_plain, mut changes_held) = (0, 0);
    let (mut previous_plain, mut previous_held): (Option<String>, Option<String>) = (None, None);
    for _ in 0..1000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        x = (x + (state % 601) as f64 / 100.0 - 3.0).clamp(50.0, 70.0);
        let score = score_of(&plain, x);
        let band_plain = plain.band_of(None, score).map(|(_, b)| b.name.clone());
        let band_held = held.band_after(None, score, previous_held.as_deref()).map(|(_, b)| b.name.clone());
        // the rule, restated: the band held is kept while 60 - 5 <= score (green) or score < 65 (yellow)
        let s = score.unwrap();
        let expected = match previous_held.as_deref() {
            Some("b2") if s >= 55.0 => "b2",
            Some("b1") if (35.0..65.0).contains(&s) => "b1",
            _ if s >= 60.0 => "b2",
            _ => "b1",
        };
        assert_eq!(band_held.as_deref(), Some(expected), "score {s} after {previous_held:?}");
        changes_plain += usize::from(previous_plain.is_some() && previous_plain != band_plain);
        changes_held += usize::from(previous_held.is_some() && previous_held != band_held);
        previous_plain = band_plain;
        previous_held = band_held;
    }
    println!("band changes over 1000 steps: {changes_plain} without a margin, {changes_held} with 5 points");
    assert!(changes_held * 4 < changes_plain, "{changes_held} with a margin against {changes_plain} without");
    assert!(changes_held > 0);
}
