//! Hand-computed examples of the scoring contract, one rule at a time.

use health_score_core::{Json, Model, Status};
use serde_json::{json, Value};

fn model(v: Value) -> Model {
    Model::parse(&Json::from(&v)).expect("valid model")
}

fn score(m: &Model, input: Value) -> Option<f64> {
    let input = Json::from(&input);
    m.evaluate(&m.values_from_json(&input)).expect("scores").score
}

fn leaf(name: &str, weight: f64, normalize: Value) -> Value {
    json!({"name": name, "weight": weight, "normalize": normalize})
}

fn assert_close(a: Option<f64>, b: f64) {
    let a = a.expect("a score");
    assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} != {b}");
}

#[test]
fn every_normalizer_by_hand() {
    let one =
        |n: Value, x: Value| score(&model(json!({"scale": 1, "components": [leaf("x", 1.0, n)]})), json!({"x": x}));
    assert_close(one(json!({"type": "linear", "min": 10, "max": 20}), json!(12.5)), 0.25);
    assert_close(one(json!({"type": "linear", "min": 10, "max": 20}), json!(99)), 1.0);
    assert_close(one(json!({"type": "linear", "min": 10, "max": 20, "invert": true}), json!(12.5)), 0.75);
    // log: (ln 1+x - ln 1+min) / (ln 1+max - ln 1+min)
    assert_close(one(json!({"type": "log", "min": 0, "max": 99}), json!(9)), (10f64).ln() / (100f64).ln());
    assert_close(one(json!({"type": "log", "min": 5, "max": 99}), json!(2)), 0.0);
    assert_close(one(json!({"type": "log", "min": 5, "max": 99, "invert": true}), json!(2)), 1.0);
    let steps = json!({"type": "steps", "steps": [{"at": 1, "score": 0.2}, {"at": 5, "score": 0.9}], "below": 0.1});
    assert_close(one(steps.clone(), json!(0.5)), 0.1);
    assert_close(one(steps.clone(), json!(1)), 0.2);
    assert_close(one(steps.clone(), json!(4.99)), 0.2);
    assert_close(one(steps, json!(5)), 0.9);
    let curve = json!({"type": "curve", "points": [[0, 0.2], [10, 1], [20, 0.5]]});
    assert_close(one(curve.clone(), json!(-5)), 0.2);
    assert_close(one(curve.clone(), json!(5)), 0.6);
    assert_close(one(curve.clone(), json!(15)), 0.75);
    assert_close(one(curve, json!(25)), 0.5);
    assert_close(one(json!({"type": "logistic", "midpoint": 10, "steepness": 0.5}), json!(10)), 0.5);
    assert_close(
        one(json!({"type": "logistic", "midpoint": 10, "steepness": 0.5}), json!(12)),
        1.0 / (1.0 + (-1f64).exp()),
    );
    assert_close(one(json!({"type": "decay", "half_life": 7}), json!(14)), 0.25);
    assert_close(one(json!({"type": "decay", "half_life": 7}), json!(-3)), 1.0);
    let map = json!({"type": "map", "values": {"gold": 1, "3": 0.3, "true": 0.7}, "default": 0.4});
    assert_close(one(map.clone(), json!("gold")), 1.0);
    assert_close(one(map.clone(), json!(3)), 0.3);
    assert_close(one(map.clone(), json!(true)), 0.7);
    assert_close(one(map, json!("lead")), 0.4);
}

#[test]
fn numeric_strings_follow_the_grammar() {
    let m = model(json!({"scale": 1, "components": [leaf("x", 1.0, json!({"type": "linear", "min": 0, "max": 10}))]}));
    assert_close(score(&m, json!({"x": " 2.5 "})), 0.25);
    assert_close(score(&m, json!({"x": "25e-1"})), 0.25);
    for bad in [json!("2,5"), json!("NaN"), json!("Infinity"), json!(true), json!([1]), json!({"a": 1}), json!("1e999")]
    {
        let input = Json::from(&json!({"x": bad}));
        let err = m.evaluate(&m.values_from_json(&input)).unwrap_err();
        assert_eq!(err.sqlstate(), "22023");
        assert!(err.message().contains("component \"x\" (input \"x\")"), "{}", err.message());
    }
}

#[test]
fn missing_rules_and_inheritance() {
    let lin = json!({"type": "linear", "min": 0, "max": 10});
    let m = model(json!({
        "missing": "zero",
        "components": [
            {"name": "g", "weight": 1, "missing": {"impute": 0.5}, "components": [leaf("a", 1.0, lin.clone()), leaf("b", 1.0, lin.clone())]},
            {"name": "c", "weight": 1, "missing": "reweight", "normalize": lin.clone()},
            leaf("d", 2.0, lin.clone())
        ]
    }));
    // a present (n=1), b missing -> impute 0.5 (inherited from g); c left out; d missing -> zero
    // g = (1 + 0.5)/2 = 0.75; top = (1*0.75 + 2*0) / 3 = 0.25
    assert_close(score(&m, json!({"a": 10})), 25.0);
    // nothing present: g has a and b imputed (0.5 each) so g = 0.5; d = 0; top = 0.5/3
    assert_close(score(&m, json!({})), 100.0 * 0.5 / 3.0);
}

#[test]
fn group_missing_as_a_whole_uses_its_own_rule() {
    let lin = json!({"type": "linear", "min": 0, "max": 10});
    let m = model(json!({
        "components": [
            {"name": "g", "weight": 1, "missing": {"impute": 0.2}, "components": [
                {"name": "a", "weight": 1, "missing": "reweight", "normalize": lin.clone()}
            ]},
            leaf("b", 1.0, lin.clone())
        ]
    }));
    // a missing and left out -> g has no counted child -> g imputed 0.2
    assert_close(score(&m, json!({"b": 10})), 100.0 * (0.2 + 1.0) / 2.0);
    let input = Json::from(&json!({"b": 10}));
    let eval = m.evaluate(&m.values_from_json(&input)).unwrap();
    let rows = m.explain(&m.values_from_json(&input), &eval);
    assert_eq!(rows[0].status, Status::Imputed);
    assert_eq!(rows[1].status, Status::Missing);
    assert_close(rows[0].contribution, 10.0);
}

#[test]
fn nothing_counted_gives_null() {
    let m = model(json!({"components": [leaf("a", 1.0, json!({"type": "decay", "half_life": 3}))]}));
    assert_eq!(score(&m, json!({})), None);
    assert_eq!(score(&m, json!({"a": null})), None);
}

#[test]
fn coverage_and_min_coverage() {
    let lin = json!({"type": "linear", "min": 0, "max": 10});
    let m = model(json!({
        "min_coverage": 0.5,
        "missing": "zero",
        "components": [
            {"name": "g", "weight": 3, "components": [leaf("a", 1.0, lin.clone()), leaf("b", 3.0, lin.clone())]},
            leaf("c", 1.0, lin.clone())
        ]
    }));
    let eval = |v: Value| {
        let input = Json::from(&v);
        m.evaluate(&m.values_from_json(&input)).unwrap()
    };
    // shares: a = 3/4 * 1/4 = 0.1875, b = 3/4 * 3/4 = 0.5625, c = 0.25
    assert!((eval(json!({"a": 1})).coverage - 0.1875).abs() < 1e-12);
    assert_eq!(eval(json!({"a": 1, "c": 1})).score, None); // 0.4375 < 0.5
    assert!(eval(json!({"b": 1})).score.is_some()); // 0.5625
}

#[test]
fn segments_override_weights_normalizers_and_bands() {
    let lin = json!({"type": "linear", "min": 0, "max": 10});
    let m = model(json!({
        "bands": [{"name": "red", "min": 0}, {"name": "green", "min": 50}],
        "components": [leaf("usage", 1.0, lin.clone()), leaf("support", 1.0, lin.clone())],
        "segments": {"input": "plan", "overrides": {
            "enterprise": {
                "weights": {"usage": 3, "support": 0},
                "normalize": {"usage": {"type": "linear", "min": 0, "max": 100}},
                "bands": [{"name": "bad", "min": 0}, {"name": "good", "min": 20}]
            }
        }}
    }));
    let input = Json::from(&json!({"usage": 30, "support": 0, "plan": "enterprise"}));
    let values = m.values_from_json(&input);
    let eval = m.evaluate(&values).unwrap();
    assert_close(eval.score, 30.0);
    assert!((eval.coverage - 1.0).abs() < 1e-12); // support is removed from the coverage too
    assert_eq!(m.segment_name(eval.segment), Some("enterprise"));
    assert_eq!(m.band_of(eval.segment, eval.score).map(|(r, b)| (r, b.name.as_str())), Some((1, "good")));
    let rows = m.explain(&values, &eval);
    assert_eq!(rows[1].status, Status::Excluded);
    assert_eq!(rows[1].weight, 0.0);
    // an unknown segment falls back to the base model without error
    let input = Json::from(&json!({"usage": 3, "support": 7, "plan": "startup"}));
    let eval = m.evaluate(&m.values_from_json(&input)).unwrap();
    assert_eq!(eval.segment, None);
    assert_close(eval.score, 50.0);
}

#[test]
fn on_invalid_missing_marks_invalid_then_applies_the_missing_rule() {
    let m = model(json!({
        "on_invalid": "missing",
        "components": [
            {"name": "a", "weight": 1, "missing": "zero", "normalize": {"type": "linear", "min": 0, "max": 10}},
            leaf("b", 1.0, json!({"type": "map", "values": {"x": 1}}))
        ]
    }));
    let input = Json::from(&json!({"a": "lots", "b": "y"}));
    let values = m.values_from_json(&input);
    let eval = m.evaluate(&values).unwrap();
    assert_close(eval.score, 0.0); // a counts as 0, b (unknown category, no default) left out
    let rows = m.explain(&values, &eval);
    assert_eq!((rows[0].status, rows[0].normalized), (Status::Invalid, Some(0.0)));
    assert_eq!((rows[1].status, rows[1].normalized), (Status::Invalid, None));
    assert_eq!(rows[0].raw.as_deref(), Some("lots"));
}

#[test]
fn explain_contributions_add_up_and_are_null_without_a_score() {
    let lin = json!({"type": "linear", "min": 0, "max": 10});
    let m = model(json!({
        "min_coverage": 0.9,
        "components": [
            {"name": "g", "weight": 2, "components": [leaf("a", 1.0, lin.clone()), leaf("b", 1.0, lin.clone())]},
            leaf("c", 1.0, lin.clone())
        ]
    }));
    let input = Json::from(&json!({"a": 5, "b": 10, "c": 2}));
    let values = m.values_from_json(&input);
    let eval = m.evaluate(&values).unwrap();
    let rows = m.explain(&values, &eval);
    // g = 0.75 with weight 2/3 -> 50 points; a: 2/3*1/2*0.5*100; c: 1/3*0.2*100
    assert_close(rows[0].contribution, 50.0);
    assert_close(rows[1].contribution, 100.0 / 6.0);
    assert_close(rows[3].contribution, 20.0 / 3.0);
    assert_close(eval.score, 50.0 + 20.0 / 3.0);
    let input = Json::from(&json!({"a": 5}));
    let values = m.values_from_json(&input);
    let eval = m.evaluate(&values).unwrap();
    assert_eq!(eval.score, None);
    assert!(m.explain(&values, &eval).iter().all(|r| r.contribution.is_none()));
}

fn faults(v: Value) -> Vec<(String, String)> {
    Model::faults(&Json::from(&v)).into_iter().map(|f| (f.path, f.message)).collect()
}

#[test]
fn validation_names_the_path_of_every_fault() {
    let f = faults(json!({
        "format": 2,
        "scale": 0,
        "colour": 1,
        "components": [
            {"name": "usage", "weight": 1, "normalize": {"type": "linear", "min": 10, "max": 10}},
            {"name": "usage", "weight": 1, "normalize": {"type": "decay", "half_life": 0}},
            {"name": "grp", "weight": 1, "components": []},
            {"name": "Bad-Name", "weight": "1", "normalize": {"type": "steps", "steps": [{"at": 2, "score": 1.5}, {"at": 1, "score": 0}]}}
        ],
        "bands": [{"name": "a", "min": 5}, {"name": "a", "min": 1}],
        "segments": {"input": "plan", "overrides": {"mid-market": {"weights": {"ghost": 1}, "normalize": {"grp": {"type": "decay", "half_life": 1}}}}}
    }));
    let paths: Vec<&str> = f.iter().map(|(p, _)| p.as_str()).collect();
    for expected in [
        "format",
        "scale",
        "colour",
        "components[0].normalize.max",
        "components[1].name",
        "components[1].normalize.half_life",
        "components[2].components",
        "components[3].name",
        "components[3].weight",
        "components[3].normalize.steps[0].score",
        "components[3].normalize.steps[1].at",
        "bands[0].min",
        "bands[1].name",
        "bands[1].min",
        "segments.overrides.\"mid-market\".weights.ghost",
        "segments.overrides.\"mid-market\".normalize.grp",
    ] {
        assert!(paths.contains(&expected), "no fault at {expected}: {f:?}");
    }
    let max = f.iter().find(|(p, _)| p == "components[0].normalize.max").unwrap();
    assert_eq!(max.1, "must be greater than min (10)");
    assert_eq!(faults(json!([1])), vec![("$".to_string(), "must be an object, not an array".to_string())]);
    assert!(faults(json!({"components": [leaf("a", 1.0, json!({"type": "linear", "min": 0, "max": 1}))]})).is_empty());
}

#[test]
fn validation_rejects_non_finite_and_out_of_range_values() {
    let f = faults(json!({
        "min_coverage": 1.5,
        "missing": {"impute": 2},
        "on_invalid": "skip",
        "calibration": {"intercept": 1},
        "components": [
            {"name": "a", "weight": 1, "normalize": {"type": "log", "min": -1, "max": 5}},
            {"name": "b", "weight": 1, "normalize": {"type": "curve", "points": [[0, 0]]}},
            {"name": "c", "weight": 1, "normalize": {"type": "logistic", "midpoint": 0, "steepness": 0}},
            {"name": "d", "weight": 1, "normalize": {"type": "map", "values": {}}},
            {"name": "e", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 1, "color": "red"}},
            {"name": "f", "weight": 1, "normalize": {"type": "cubic"}}
        ]
    }));
    let paths: Vec<&str> = f.iter().map(|(p, _)| p.as_str()).collect();
    for expected in [
        "min_coverage",
        "missing.impute",
        "on_invalid",
        "calibration.intercept", /* slope missing is reported at calibration.slope */
        "components[0].normalize.min",
        "components[1].normalize.points",
        "components[2].normalize.steepness",
        "components[3].normalize.values",
        "components[4].normalize.color",
        "components[5].normalize.type",
    ] {
        if expected == "calibration.intercept" {
            assert!(paths.contains(&"calibration.slope"), "{f:?}");
            continue;
        }
        assert!(paths.contains(&expected), "no fault at {expected}: {f:?}");
    }
    let mut huge = Json::from(&json!({"components": [leaf("a", 1.0, json!({"type": "linear", "min": 0, "max": 1}))]}));
    if let Json::Object(m) = &mut huge {
        m.push(("scale".into(), Json::Number(f64::INFINITY)));
    }
    assert_eq!(Model::faults(&huge)[0].path, "scale");
}

#[test]
fn description_is_allowed_only_where_the_format_says() {
    let lin = json!({"type": "linear", "min": 0, "max": 1, "description": "ok on a normalizer"});
    assert!(faults(json!({
        "description": "ok",
        "components": [{"name": "a", "weight": 1, "description": "ok", "normalize": lin}],
        "bands": [{"name": "red", "min": 0, "description": "ok", "color": "#f00", "label": "Red", "action": "call"}],
        "segments": {"input": "plan", "description": "ok", "overrides": {"x": {"description": "ok"}}}
    }))
    .is_empty());
    let f = faults(json!({
        "calibration": {"intercept": 0, "slope": 1, "description": "no"},
        "components": [{"name": "a", "weight": 1, "normalize": {"type": "steps", "steps": [{"at": 0, "score": 1, "description": "no"}]}}]
    }));
    let paths: Vec<&str> = f.iter().map(|(p, _)| p.as_str()).collect();
    assert!(paths.contains(&"calibration.description"), "{f:?}");
    assert!(paths.contains(&"components[0].normalize.steps[0].description"), "{f:?}");
}

#[test]
fn drivers_cover_both_versions_of_a_model() {
    use health_score_core::drivers::{changed, drivers};
    let lin = json!({"type": "linear", "min": 0, "max": 10});
    // version 1: usage(logins, seats), nps; version 2 moves nps into a new group and drops seats
    let v1 = model(json!({"components": [
        {"name": "usage", "weight": 2, "components": [leaf("logins", 1.0, lin.clone()), leaf("seats", 1.0, lin.clone())]},
        leaf("nps", 1.0, lin.clone())]}));
    let v2 = model(json!({"components": [
        {"name": "usage", "weight": 2, "components": [leaf("logins", 1.0, lin.clone())]},
        {"name": "voice", "weight": 1, "components": [leaf("nps", 1.0, lin)]}]}));
    let before = |c: &str| match c {
        "usage" => Some(50.0),
        "logins" => Some(30.0),
        "seats" => Some(20.0),
        "nps" => Some(10.0),
        _ => None,
    };
    let after = |c: &str| match c {
        "usage" => Some(40.0),
        "logins" => Some(40.0),
        "voice" | "nps" => Some(10.0),
        _ => None,
    };
    let all = drivers(&v1, &v2, before, after);
    let rows: Vec<(&str, Option<&str>, f64, f64)> =
        all.iter().map(|d| (d.component, d.parent, d.points_before, d.points_after)).collect();
    assert_eq!(
        rows,
        vec![
            ("usage", None, 50.0, 40.0),
            ("logins", Some("usage"), 30.0, 40.0),
            ("voice", None, 0.0, 10.0),
            ("nps", Some("voice"), 0.0, 10.0),
            ("seats", Some("usage"), 20.0, 0.0),
            ("nps", None, 10.0, 0.0),
        ]
    );
    // the top-level rows add up to the score's change (60 -> 50), and each group's children
    // to the group's change
    let change = |parent: Option<&str>| all.iter().filter(|d| d.parent == parent).map(|d| d.change()).sum::<f64>();
    assert_eq!(change(None), -10.0);
    assert_eq!(change(Some("usage")), -10.0);
    assert_eq!(change(Some("voice")), 10.0);
    let moved: Vec<(&str, f64)> = changed(all).iter().map(|d| (d.component, d.change())).collect();
    assert_eq!(
        moved,
        vec![("seats", -20.0), ("nps", -10.0), ("usage", -10.0), ("logins", 10.0), ("nps", 10.0), ("voice", 10.0)]
    );
}

#[test]
fn coverage_is_exact_for_full_and_decimal_shares() {
    // ten leaves of weight 1 in groups of three and seven: each share is a tenth, whose sum in
    // doubles is 0.9999999999999999 before rounding
    let lin = json!({"type": "linear", "min": 0, "max": 1});
    let names: Vec<String> = (0..10).map(|i| format!("x{i}")).collect();
    let group = |from: usize, to: usize| -> Value {
        json!({"name": format!("g{from}"), "weight": (to - from) as f64,
               "components": names[from..to].iter().map(|n| leaf(n, 1.0, lin.clone())).collect::<Vec<_>>()})
    };
    let m = model(json!({"components": [group(0, 3), group(3, 10)]}));
    let coverage = |input: Value| {
        let json = Json::from(&input);
        m.evaluate(&m.values_from_json(&json)).unwrap().coverage
    };
    let all: serde_json::Map<String, Value> = names.iter().map(|n| (n.clone(), json!(0.5))).collect();
    assert_eq!(coverage(Value::Object(all.clone())), 1.0);
    let three: serde_json::Map<String, Value> = names[..3].iter().map(|n| (n.clone(), json!(0.5))).collect();
    assert_eq!(coverage(Value::Object(three)), 0.3);
    let nine: serde_json::Map<String, Value> = names[1..].iter().map(|n| (n.clone(), json!(0.5))).collect();
    assert_eq!(coverage(Value::Object(nine)), 0.9);
}
