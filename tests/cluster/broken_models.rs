//! Models broken at random: a valid model using every feature of the format, with one to
//! three mutations anywhere in its tree (a value replaced by one of another kind or an
//! out-of-range one, a key or element removed, a key added, a part copied elsewhere). Most
//! are invalid; some stay valid. Deterministic for a seed.

use proptest::prelude::Rng as _;
use proptest::test_runner::{RngAlgorithm, TestRng};
use serde_json::{json, Value};

/// proptest's seeded generator: the cases must be the same on every run.
struct Draws(TestRng);

impl Draws {
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

pub fn base_model() -> Value {
    json!({
        "format": 1, "scale": 100, "missing": "reweight", "on_invalid": "error", "min_coverage": 0.2,
        "description": "every feature",
        "bands": [{"name": "red", "min": 0, "color": "#f00"}, {"name": "yellow", "min": 40},
                  {"name": "green", "min": 70, "label": "ok", "action": "none"}],
        "calibration": {"intercept": 1.0, "slope": -0.05},
        "components": [
            {"name": "usage", "weight": 3, "missing": "zero", "components": [
                {"name": "logins", "weight": 2, "normalize": {"type": "log", "min": 0, "max": 500}},
                {"name": "active", "weight": 1, "input": "active_share",
                 "normalize": {"type": "curve", "points": [[0, 0], [0.5, 0.7], [1, 1]]}},
                {"name": "adoption", "weight": 1, "missing": {"impute": 0.3},
                 "normalize": {"type": "linear", "min": 0.1, "max": 0.9, "invert": false}}]},
            {"name": "engagement", "weight": 2, "components": [
                {"name": "recency", "weight": 1, "input": "days", "normalize": {"type": "decay", "half_life": 14}},
                {"name": "nps", "weight": 1, "on_invalid": "missing",
                 "normalize": {"type": "map", "values": {"promoter": 1, "passive": 0.6, "detractor": 0}, "default": 0.5}}]},
            {"name": "tickets", "weight": 1, "normalize": {"type": "steps",
                "steps": [{"at": 0, "score": 1}, {"at": 3, "score": 0.6}, {"at": 8, "score": 0.2}], "below": 0}},
            {"name": "csat", "weight": 1, "normalize": {"type": "logistic", "midpoint": 3, "steepness": 1.5}}],
        "segments": {"input": "plan", "overrides": {
            "enterprise": {"weights": {"usage": 10, "tickets": 0},
                           "normalize": {"logins": {"type": "linear", "min": 0, "max": 50}},
                           "bands": [{"name": "red", "min": 0}, {"name": "green", "min": 60}]},
            "mid-market": {"weights": {"csat": 2}}}}
    })
}

/// Inputs that reach every rule: all present, some missing, invalid values, each segment.
pub fn inputs() -> Vec<Value> {
    vec![
        json!({}),
        json!({"logins": 10, "active_share": 0.4, "adoption": "0.5", "days": 3, "nps": "promoter",
               "tickets": 4, "csat": 4, "plan": "enterprise"}),
        json!({"logins": null, "nps": 7, "plan": "mid-market", "csat": "2.5"}),
        json!({"logins": "x", "plan": ["a"]}),
        json!({"tickets": -5, "plan": "enterprise", "days": -3, "nps": {"a": 1}}),
    ]
}

#[rustfmt::skip]
fn weird_values() -> Vec<Value> {
    vec![
        Value::Null, json!(true), json!(false), json!(0), json!(-1), json!(1e300), json!(-0.0), json!(0.5),
        json!(2), json!("x"), json!(""), json!([]), json!({}), json!([1, 2]), json!({"a": 1}), json!("linear"),
        json!("reweight"), json!("zero"), json!({"impute": 2}), json!({"impute": 0.5}), json!(1e-320),
        json!("NaN"), json!([[0, 0]]), json!("a".repeat(70)), json!("Usage"), json!("usage"),
        json!(BEYOND_DOUBLE),
    ]
}

/// Stands for the number 1e400 (beyond a double, which serde_json cannot hold) until the model
/// is written out as text.
const BEYOND_DOUBLE: &str = "__1e400__";

type Path = Vec<Step>;

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn paths(v: &Value, at: &mut Path, out: &mut Vec<Path>) {
    out.push(at.clone());
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                at.push(Step::Key(k.clone()));
                paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(Step::Index(i));
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn get_mut<'a>(v: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(v, |v, step| match step {
        Step::Key(k) => &mut v[k.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

/// One mutation somewhere below the root.
fn mutate(model: &mut Value, rng: &mut Draws) {
    let mut all = Vec::new();
    paths(model, &mut Vec::new(), &mut all);
    let path = rng.pick(&all[1..]).clone();
    let donor = rng.pick(&all).clone();
    let donor = get_mut(model, &donor).clone();
    let (last, parent_path) = path.split_last().unwrap();
    let parent = get_mut(model, parent_path);
    let weird = weird_values();
    match rng.below(10) {
        0..=4 => *get_mut(parent, std::slice::from_ref(last)) = rng.pick(&weird).clone(),
        5 | 6 => match (parent, last) {
            (Value::Object(map), Step::Key(k)) => {
                map.remove(k);
            }
            (Value::Array(items), Step::Index(i)) => {
                items.remove(*i);
            }
            _ => {}
        },
        7 => {
            if let Value::Object(map) = parent {
                let key = *rng.pick(&["extra", "description", "name", "weight", "input", "missing", "color"]);
                map.insert(key.to_string(), rng.pick(&weird).clone());
            }
        }
        8 => {
            if let (Value::Array(items), Step::Index(i)) = (&mut *parent, last) {
                let copy = items[*i].clone();
                items.push(copy);
            }
        }
        _ => *get_mut(parent, std::slice::from_ref(last)) = donor,
    }
}

/// `count` models as JSON text, each the base with one to three mutations.
pub fn cases(seed: u8, count: usize) -> Vec<String> {
    let mut rng = Draws(TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]));
    (0..count)
        .map(|_| {
            let mut model = base_model();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut model, &mut rng);
            }
            model.to_string().replace(&format!("\"{BEYOND_DOUBLE}\""), "1e400")
        })
        .collect()
}
