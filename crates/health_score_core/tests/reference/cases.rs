//! Random valid models with random inputs, for the property tests of the core and the SQL
//! tests of the extension: nested groups of every normalizer type, missing and invalid rules at
//! every level, shared inputs, min_coverage, bands and segment overrides; inputs of every kind
//! (numbers, numeric strings, NULLs, other strings, booleans, arrays, categories).

use proptest::prelude::*;
use serde_json::{json, Value};

fn normalizer() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-50.0..50.0f64, 1.0..100.0f64, any::<bool>())
            .prop_map(|(min, span, invert)| json!({"type": "linear", "min": min, "max": min + span, "invert": invert})),
        (0.0..20.0f64, 1.0..500.0f64, any::<bool>())
            .prop_map(|(min, span, invert)| json!({"type": "log", "min": min, "max": min + span, "invert": invert})),
        (prop::collection::vec((1.0..10.0f64, 0.0..=1.0f64), 1..5), 0.0..=1.0f64).prop_map(|(steps, below)| {
            let mut at = -10.0;
            let steps: Vec<Value> = steps
                .into_iter()
                .map(|(gap, s)| {
                    at += gap;
                    json!({"at": at, "score": s})
                })
                .collect();
            json!({"type": "steps", "steps": steps, "below": below})
        }),
        prop::collection::vec((1.0..20.0f64, 0.0..=1.0f64), 2..6).prop_map(|pts| {
            let mut x = -20.0;
            let points: Vec<Value> = pts
                .into_iter()
                .map(|(gap, y)| {
                    x += gap;
                    json!([x, y])
                })
                .collect();
            json!({"type": "curve", "points": points})
        }),
        (-20.0..20.0f64, prop_oneof![-2.0..-0.05f64, 0.05..2.0f64])
            .prop_map(|(m, s)| json!({"type": "logistic", "midpoint": m, "steepness": s})),
        (0.5..60.0f64).prop_map(|h| json!({"type": "decay", "half_life": h})),
        (0.0..=1.0f64, 0.0..=1.0f64, 0.0..=1.0f64, prop::option::of(0.0..=1.0f64)).prop_map(|(a, b, c, d)| {
            let mut m = json!({"type": "map", "values": {"gold": a, "silver": b, "bronze": c}});
            if let Some(d) = d {
                m["default"] = json!(d);
            }
            m
        }),
    ]
}

fn missing_rule() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(json!("reweight"))),
        1 => Just(Some(json!("zero"))),
        1 => (0.0..=1.0f64).prop_map(|v| Some(json!({"impute": v}))),
    ]
}

fn on_invalid() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![3 => Just(None), 1 => Just(Some(json!("missing"))), 1 => Just(Some(json!("error")))]
}

#[derive(Debug, Clone)]
enum Shape {
    Leaf(Value),
    Group(Vec<Shape>),
}

fn shape() -> impl Strategy<Value = Shape> {
    let leaf = normalizer().prop_map(Shape::Leaf);
    leaf.prop_recursive(3, 12, 4, |inner| prop::collection::vec(inner, 1..4).prop_map(Shape::Group))
}

/// Turns shapes into components named c0, c1, ... with weights, rules and shared inputs.
fn build(
    shapes: &[Shape],
    extras: &mut impl Iterator<Item = (f64, Option<Value>, Option<Value>, u8)>,
    counter: &mut usize,
    names: &mut Vec<(String, bool)>,
) -> Value {
    let mut out = Vec::new();
    for s in shapes {
        let name = format!("c{}", *counter);
        *counter += 1;
        let (weight, missing, invalid, input_pick) = extras.next().unwrap_or((1.0, None, None, 0));
        let mut c = json!({"name": name, "weight": weight});
        if let Some(m) = missing {
            c["missing"] = m;
        }
        if let Some(o) = invalid {
            c["on_invalid"] = o;
        }
        match s {
            Shape::Leaf(n) => {
                c["normalize"] = n.clone();
                // sometimes read a shared input key, sometimes the default (the name)
                if input_pick % 4 == 0 {
                    c["input"] = json!(format!("k{}", input_pick % 3));
                }
                names.push((name, true));
            }
            Shape::Group(kids) => {
                names.push((name, false));
                c["components"] = build(kids, extras, counter, names);
            }
        }
        out.push(c);
    }
    Value::Array(out)
}

#[derive(Debug, Clone)]
pub struct Case {
    pub model: Value,
    pub input: Value,
    /// A previous band to score with hysteresis from (a name of either list, an unknown one, none).
    pub previous_band: Option<String>,
}

fn input_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (-30.0..600.0f64).prop_map(|x| json!(x)),
        1 => (-30i64..600).prop_map(|x| json!(x)),
        1 => (-30.0..600.0f64).prop_map(|x| json!(format!(" {x} "))),
        1 => Just(json!(null)),
        1 => Just(json!("abc")),
        1 => Just(json!(true)),
        1 => Just(json!([1, 2])),
        2 => prop_oneof![Just("gold"), Just("silver"), Just("bronze"), Just("tin")].prop_map(|s| json!(s)),
    ]
}

pub fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(shape(), 1..4),
        prop::collection::vec((prop_oneof![Just(1.0), Just(2.0), Just(0.5), Just(3.7)], missing_rule(), on_invalid(), any::<u8>()), 40),
        missing_rule(),
        on_invalid(),
        prop::option::of(0.0..=1.0f64),
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec((prop_oneof![Just(0.0), Just(1.0), Just(5.0)], normalizer(), any::<bool>()), 4),
        prop::collection::vec(input_value(), 40),
        prop_oneof![Just("smb"), Just("ent"), Just("other")],
        prop_oneof![Just(100.0), Just(10.0), Just(1.0)],
        (
            prop::option::of(prop_oneof![Just(0.0), Just(0.03), Just(0.15), Just(0.5)]),
            prop::option::of(prop_oneof![Just(0.0), Just(0.1), Just(0.3)]),
            prop::option::of(prop_oneof![Just("red"), Just("yellow"), Just("green"), Just("bad"), Just("good"), Just("Red")]),
        ),
    )
        .prop_map(|(shapes, extras, missing, invalid, min_cov, with_bands, with_segments, overrides, values, plan, scale, margins)| {
            let (model_margin, override_margin, previous_band) = margins;
            let mut counter = 0;
            let mut names = Vec::new();
            let mut extras_iter = extras.into_iter();
            let comps = build(&shapes, &mut extras_iter, &mut counter, &mut names);
            let mut model = json!({"format": 1, "scale": scale, "components": comps});
            if let Some(m) = missing { model["missing"] = m; }
            if let Some(o) = invalid { model["on_invalid"] = o; }
            if let Some(c) = min_cov { if c < 0.6 { model["min_coverage"] = json!(c); } }
            if with_bands {
                model["bands"] = json!([{"name": "red", "min": 0}, {"name": "yellow", "min": 0.4 * scale}, {"name": "green", "min": 0.7 * scale}]);
            }
            // valid with or without bands (without, it has no effect)
            if let Some(h) = model_margin {
                model["band_hysteresis"] = json!(h * scale);
            }
            if with_segments {
                let mut weights = serde_json::Map::new();
                let mut norms = serde_json::Map::new();
                for (i, (w, n, use_norm)) in overrides.into_iter().enumerate() {
                    let (name, is_leaf) = &names[(i * 7) % names.len()];
                    weights.insert(name.clone(), json!(w));
                    if *is_leaf && use_norm {
                        norms.insert(name.clone(), n);
                    }
                }
                model["segments"] = json!({"input": "plan", "overrides": {
                    "ent": {"weights": weights, "normalize": norms, "bands": [{"name": "bad", "min": 0}, {"name": "good", "min": 0.5 * scale}]},
                    "smb": {}
                }});
                if let Some(h) = override_margin {
                    model["segments"]["overrides"]["ent"]["band_hysteresis"] = json!(h * scale);
                }
            }
            let mut input = serde_json::Map::new();
            for (i, (name, _)) in names.iter().enumerate() {
                input.insert(name.clone(), values[i % values.len()].clone());
            }
            for k in 0..3 {
                input.insert(format!("k{k}"), values[(k * 11 + 5) % values.len()].clone());
            }
            input.insert("plan".into(), json!(plan));
            Case { model, input: Value::Object(input), previous_band: previous_band.map(str::to_string) }
        })
}
