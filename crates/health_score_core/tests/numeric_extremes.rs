//! Valid models at the edges of double precision (issue 15, item 10): the spec's formulas,
//! evaluated exactly, give finite answers in [0, scale]; so must the scoring. Expected values
//! are worked out by hand from the spec (docs/model-format.md).

use health_score_core::{Json, Model, TrendState};
use proptest::prelude::*;
use serde_json::{json, Value};

fn model(v: Value) -> Model {
    Model::parse(&Json::from(&v)).expect("valid model")
}

fn score(m: &Model, input: Value) -> Option<f64> {
    let input = Json::from(&input);
    m.evaluate(&m.values_from_json(&input)).expect("scores").score
}

fn one(normalize: Value, x: f64) -> f64 {
    let m = model(json!({"scale": 1, "components": [{"name": "x", "weight": 1, "normalize": normalize}]}));
    score(&m, json!({ "x": x })).expect("a score")
}

fn assert_close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} != {b}");
}

#[test]
fn a_subnormal_half_life_decays_at_once() {
    let decay = json!({"type": "decay", "half_life": 1e-320});
    assert_eq!(one(decay.clone(), 0.0), 1.0, "0.5 ^ (0 / h) = 1");
    assert_eq!(one(decay.clone(), -3.0), 1.0, "ages below 0 count as 0");
    assert_eq!(one(decay, 1e-300), 0.0);
}

#[test]
fn subnormal_and_tiny_ranges_normalize_as_written() {
    let linear = json!({"type": "linear", "min": 0, "max": 1e-310});
    assert_eq!(one(linear.clone(), 0.0), 0.0);
    assert_close(one(linear.clone(), 0.5e-310), 0.5);
    assert_eq!(one(linear, 1.0), 1.0);
    let log = json!({"type": "log", "min": 0, "max": 1e-300});
    assert_eq!(one(log.clone(), 0.0), 0.0);
    // ln(1 + x) = x to double precision here
    assert_close(one(log.clone(), 0.25e-300), 0.25);
    assert_eq!(one(log, 2e-300), 1.0);
}

#[test]
fn ranges_wider_than_the_largest_double_normalize_as_written() {
    let linear = json!({"type": "linear", "min": -1e308, "max": 1e308});
    assert_close(one(linear.clone(), 0.0), 0.5);
    assert_close(one(linear.clone(), 5e307), 0.75);
    assert_eq!(one(linear, 1.5e308), 1.0);
    let curve = json!({"type": "curve", "points": [[-1e308, 0], [1e308, 1]]});
    assert_close(one(curve.clone(), 0.0), 0.5);
    assert_close(one(curve, -5e307), 0.25);
    // the two logarithms of a range this narrow round to one double: linear in between
    let log = json!({"type": "log", "min": 1e300, "max": 1.0000000000000002e300});
    assert_eq!(one(log.clone(), 1e300), 0.0);
    assert_eq!(one(log, 2e300), 1.0);
}

#[test]
fn huge_and_subnormal_weights_keep_their_shares() {
    let leaf = |name: &str, weight: f64| json!({"name": name, "weight": weight, "normalize": {"type": "linear", "min": 0, "max": 10}});
    for w in [1e308, 1.7e308, 1e-320, 5e-324] {
        let m = model(json!({"components": [leaf("a", w), leaf("b", w)]}));
        assert_eq!(score(&m, json!({"a": 10, "b": 10})), Some(100.0), "weights {w}");
        assert_close(score(&m, json!({"a": 10, "b": 0})).unwrap(), 50.0);
        // reweighting over the present one
        assert_eq!(score(&m, json!({"a": 10})), Some(100.0));
        let input = Json::from(&json!({"a": 10, "b": 5}));
        let values = m.values_from_json(&input);
        let eval = m.evaluate(&values).unwrap();
        let explained = m.explain(&values, &eval);
        let weights: Vec<f64> = explained.iter().map(|e| e.weight).collect();
        assert_eq!(weights, [0.5, 0.5], "weights {w}");
        let points: f64 = explained.iter().filter_map(|e| e.contribution).sum();
        assert_close(points, 75.0);
    }
    // in a group too, and weights 1e308 apart in one set keep both counted
    let m = model(json!({"components": [
        {"name": "g", "weight": 1e-300, "components": [leaf("a", 1e308), leaf("b", 1e308)]},
        leaf("c", 1e-300)
    ]}));
    assert_close(score(&m, json!({"a": 10, "b": 0, "c": 10})).unwrap(), 75.0);
    let m = model(json!({"components": [leaf("big", 1e300), leaf("small", 1e-300)]}));
    assert_eq!(score(&m, json!({"small": 10})), Some(100.0), "the small one alone, reweighted");
}

#[test]
fn trend_of_scores_near_the_largest_double_is_finite() {
    const DAY: i64 = 86_400_000_000;
    let mut s = TrendState::default();
    for (day, score) in [(0, 0.0), (1, 1e308), (2, 1e308)] {
        s.add(day * DAY, score).unwrap();
    }
    let t = s.finish().unwrap();
    // least squares over x = 0, 1, 2: Σ(x - 1)(y - ȳ) / Σ(x - 1)² = (2e308/3 + 1e308/3) / 2
    assert_close(t.slope_per_day.unwrap(), 5e307);
    assert_eq!((t.first_score, t.last_score, t.delta, t.max_score), (0.0, 1e308, 1e308, 1e308));
    // two scores at the last time average, without overflowing their sum
    s.add(2 * DAY, 1.6e308).unwrap();
    assert_close(s.finish().unwrap().last_score, 1.3e308);
}

fn extreme() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(5e-324),
        Just(1e-310),
        Just(1e-300),
        Just(1.0),
        Just(1e300),
        Just(1e308),
        Just(f64::MAX),
        -1e308..1e308f64,
        -1.0..1.0f64,
    ]
}

proptest! {
    /// Whatever the valid parameters and finite input, n is a number in [0, 1].
    #[test]
    fn normalizers_never_give_nan(a in extreme(), b in extreme(), x in extreme(), flip in any::<bool>()) {
        let (lo, hi) = if a < b { (a, b) } else if b < a { (b, a) } else { (a, a + 1.0) };
        prop_assume!(lo < hi && hi.is_finite());
        let mut cases = vec![
            json!({"type": "linear", "min": lo, "max": hi, "invert": flip}),
            json!({"type": "curve", "points": [[lo, 0], [hi, 1]]}),
            json!({"type": "logistic", "midpoint": lo, "steepness": if flip { -hi } else { hi }}),
        ];
        if lo >= 0.0 {
            cases.push(json!({"type": "log", "min": lo, "max": hi, "invert": flip}));
        }
        if hi > 0.0 {
            cases.push(json!({"type": "decay", "half_life": hi}));
        }
        for normalize in cases {
            if hi == 0.0 && normalize["type"] == "logistic" {
                continue;
            }
            let n = one(normalize.clone(), x);
            prop_assert!((0.0..=1.0).contains(&n), "{normalize} at {x}: {n}");
        }
    }
}
