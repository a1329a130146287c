//! Fitted shapes (`fit` with `"shapes": true`): known shapes recovered from data generated
//! with them, monotone constraints, rare categories, determinism under shuffled and split
//! input, and the fitted model's score as a strictly decreasing function of the fitted
//! log-odds.

use health_score_core::shapes::{apply_shapes, fit_shapes, observe, Observation, ShapeData, ShapeOptions};
use health_score_core::{Json, Model};
use serde_json::{json, Value};

/// splitmix64: the same draws on every run and platform.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn model(v: Value) -> (Json, Model) {
    let json = Json::from(&v);
    let model = Model::parse(&json).expect("a valid model");
    (json, model)
}

fn churned(draws: &mut Draws, log_odds: f64) -> bool {
    draws.next() < 1.0 / (1.0 + (-log_odds).exp())
}

/// Rows of `(observations, churned)` into a fit's data.
fn data(model: &Model, rows: &[(Vec<Observation<'static>>, bool)]) -> ShapeData {
    let mut d = ShapeData::new(model);
    for (o, y) in rows {
        d.add(o, *y).unwrap();
    }
    d
}

fn curve_points(json: &Json, component: &str) -> Vec<(f64, f64)> {
    let text = json.to_text();
    let v: Value = serde_json::from_str(&text).unwrap();
    fn find<'a>(components: &'a Value, name: &str) -> Option<&'a Value> {
        components.as_array()?.iter().find_map(|c| {
            if c["name"] == name {
                Some(c)
            } else {
                c.get("components").and_then(|cs| find(cs, name))
            }
        })
    }
    let c = find(&v["components"], component).expect("the component");
    assert_eq!(c["normalize"]["type"], "curve", "{c}");
    c["normalize"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

fn interpolate(points: &[(f64, f64)], x: f64) -> f64 {
    if x <= points[0].0 {
        return points[0].1;
    }
    let last = points[points.len() - 1];
    if x >= last.0 {
        return last.1;
    }
    let i = points.partition_point(|p| p.0 <= x) - 1;
    let t = (x - points[i].0) / (points[i + 1].0 - points[i].0);
    (1.0 - t) * points[i].1 + t * points[i + 1].1
}

/// Two numeric leaves whose true effects are known shapes (a saturating one and a falling
/// one), with hand normalizers that get them wrong: the fitted curves follow the true shapes
/// (each scaled to [0, 1] over the data's range) within 0.05 over the inner 90% of the data.
#[test]
fn fitted_curves_recover_the_shapes_the_data_was_made_with() {
    let (json, m) = model(json!({"components": [
        {"name": "usage", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 1000}},
        {"name": "tickets", "weight": 1, "normalize": {"type": "steps", "steps": [{"at": 5, "score": 0}], "below": 1}}]}));
    let saturating = |x: f64| 1.0 - (-x / 20.0).exp();
    let falling = |t: f64| 1.0 - (t / 10.0).powi(2);
    let mut draws = Draws(7);
    let rows: Vec<_> = (0..40_000)
        .map(|_| {
            let x = 40.0 * draws.next();
            let t = 10.0 * draws.next();
            let y = churned(&mut draws, 1.5 - 3.0 * saturating(x) - 2.0 * falling(t));
            (vec![Observation::Number(x), Observation::Number(t)], y)
        })
        .collect();
    let fit = fit_shapes(&m, &data(&m, &rows), &ShapeOptions::default()).unwrap();
    let fitted = apply_shapes(&json, &m, &fit);
    let usage = curve_points(&fitted, "usage");
    let tickets = curve_points(&fitted, "tickets");
    assert_eq!(usage.len(), 6);
    let (u0, u1) = (saturating(usage[0].0), saturating(usage[5].0));
    let (t0, t1) = (falling(tickets[0].0), falling(tickets[5].0));
    for i in 0..=90 {
        let q = 0.05 + 0.9 * i as f64 / 90.0;
        let (x, t) = (40.0 * q, 10.0 * q);
        let want_usage = (saturating(x) - u0.min(u1)) / (u1 - u0).abs();
        let want_tickets = (falling(t) - t0.min(t1)) / (t1 - t0).abs();
        assert!((interpolate(&usage, x) - want_usage).abs() < 0.05, "usage at {x}: {usage:?}");
        assert!((interpolate(&tickets, t) - want_tickets).abs() < 0.05, "tickets at {t}: {tickets:?}");
    }
    // the weights are the effects' sizes: the log-odds each moves over the knots, within 10%
    let (wu, wt) = (fit.leaves[0].weight, fit.leaves[1].weight);
    assert!((wu / (3.0 * (u1 - u0).abs()) - 1.0).abs() < 0.1, "{wu}");
    assert!((wt / (2.0 * (t1 - t0).abs()) - 1.0).abs() < 0.1, "{wt}");
}

/// A hump-shaped effect under a leaf the user says is increasing: the fitted curve never
/// falls; with "none" it follows the hump.
#[test]
fn monotone_constraints_hold_and_none_lets_the_shape_turn() {
    let (json, m) =
        model(json!({"components": [{"name": "x", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 1}}]}));
    let mut draws = Draws(11);
    let rows: Vec<_> = (0..20_000)
        .map(|_| {
            let x = draws.next();
            let health = 1.0 - (2.0 * x - 1.0).powi(2); // best in the middle
            (vec![Observation::Number(x)], churned(&mut draws, 1.0 - 3.0 * health))
        })
        .collect();
    let d = data(&m, &rows);
    let increasing = apply_shapes(&json, &m, &fit_shapes(&m, &d, &ShapeOptions::default()).unwrap());
    let p = curve_points(&increasing, "x");
    assert!(p.windows(2).all(|w| w[1].1 >= w[0].1), "{p:?}");
    let options = ShapeOptions::from_json(&Json::from(&json!({"monotone": {"x": "none"}, "knots": 7})), &m).unwrap();
    let free = apply_shapes(&json, &m, &fit_shapes(&m, &d, &options).unwrap());
    let p = curve_points(&free, "x");
    assert_eq!(p.len(), 7);
    let top = p.iter().cloned().fold((0.0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
    assert!(top.0 > 0.3 && top.0 < 0.7 && p[0].1 < 0.2 && p[6].1 < 0.2, "{p:?}");
}

/// A category seen fewer times than min_category_rows has no value of its own: it shares the
/// default with every category the map does not list.
#[test]
fn rare_categories_fall_back_to_the_default() {
    let (json, m) = model(json!({"components": [
        {"name": "plan", "weight": 1, "normalize": {"type": "map", "values": {"basic": 0.2, "pro": 0.8}, "default": 0.5}},
        {"name": "logins", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}}]}));
    let mut draws = Draws(3);
    let mut rows: Vec<(Vec<Observation<'static>>, bool)> = (0..3000)
        .map(|i| {
            let plan = if i % 3 == 0 { "pro" } else { "basic" };
            let x = 10.0 * draws.next();
            let y = churned(&mut draws, if plan == "pro" { -1.0 } else { 0.5 } - 0.2 * x);
            (vec![Observation::Category(plan.into()), Observation::Number(x)], y)
        })
        .collect();
    rows.push((vec![Observation::Category("legacy".into()), Observation::Number(3.0)], true));
    let fit = fit_shapes(&m, &data(&m, &rows), &ShapeOptions::default()).unwrap();
    let fitted: Value = serde_json::from_str(&apply_shapes(&json, &m, &fit).to_text()).unwrap();
    let plan = &fitted["components"][0]["normalize"];
    assert_eq!(plan["type"], "map");
    assert!(plan["values"].get("legacy").is_none(), "{plan}");
    assert!(plan["default"].is_number(), "{plan}");
    // pro retains better than basic: the higher value
    assert_eq!(plan["values"]["pro"], 1.0);
    assert_eq!(plan["values"]["basic"], 0.0);
    let fitted_model = Model::parse(&Json::from(&fitted)).expect("the fitted model is valid");
    let legacy =
        fitted_model.evaluate(&fitted_model.values_from_json(&Json::from(&json!({"plan": "legacy", "logins": 3}))));
    assert!(legacy.unwrap().score.is_some());
}

fn mixed_rows(seed: u64, n: usize) -> Vec<(Vec<Observation<'static>>, bool)> {
    let mut draws = Draws(seed);
    (0..n)
        .map(|_| {
            let x = (draws.next() * 30.0).round();
            let plan = ["a", "b", "c", "d"][(draws.next() * 4.0) as usize];
            let imputed = draws.next() < 0.1;
            let t = if imputed { Observation::Imputed } else { Observation::Number(draws.next() * 5.0) };
            let lt = match &t {
                Observation::Number(v) => -0.3 * v,
                _ => 0.4,
            };
            let y = churned(&mut draws, 1.0 - 0.1 * x + lt + if plan == "a" { 0.8 } else { 0.0 });
            (vec![Observation::Number(x), Observation::Category(plan.into()), t], y)
        })
        .collect()
}

fn mixed_model() -> (Json, Model) {
    model(json!({"missing": {"impute": 0.5}, "components": [
        {"name": "logins", "weight": 2, "normalize": {"type": "log", "min": 0, "max": 30}},
        {"name": "engagement", "weight": 1, "components": [
            {"name": "plan", "weight": 1, "normalize": {"type": "map", "values": {"a": 0, "b": 1, "c": 1, "d": 1}}},
            {"name": "nps", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 5}}]}]}))
}

/// The same rows in another order, or split between two workers and appended, give the same
/// model to the last bit.
#[test]
fn row_order_and_workers_do_not_change_the_fit() {
    let (json, m) = mixed_model();
    let rows = mixed_rows(5, 4000);
    let whole = apply_shapes(&json, &m, &fit_shapes(&m, &data(&m, &rows), &ShapeOptions::default()).unwrap());
    let mut shuffled = rows.clone();
    let mut draws = Draws(99);
    for i in (1..shuffled.len()).rev() {
        let j = (draws.next() * (i + 1) as f64) as usize;
        shuffled.swap(i, j);
    }
    let (first, second) = shuffled.split_at(1234);
    let mut parts = data(&m, second);
    let mut bytes = Vec::new();
    data(&m, first).to_bytes(&mut bytes).unwrap();
    // the first worker's rows travel as bytes, as between parallel workers
    let mut combined = ShapeData::from_bytes(&bytes).unwrap();
    combined.append(&parts).unwrap();
    parts = combined;
    let split = apply_shapes(&json, &m, &fit_shapes(&m, &parts, &ShapeOptions::default()).unwrap());
    assert_eq!(whole.to_text(), split.to_text());
}

/// The passes over the rows split between threads give the same fits to the last bit: of
/// shapes, and of weights alone.
#[test]
fn threads_do_not_change_the_fit() {
    use health_score_core::parallel::with_threads;
    let (json, m) = mixed_model();
    let rows = mixed_rows(8, 30_000);
    let d = data(&m, &rows);
    let fits: Vec<String> = [1, 2, 3]
        .iter()
        .map(|&t| with_threads(t, || apply_shapes(&json, &m, &fit_shapes(&m, &d, &ShapeOptions::default()).unwrap())))
        .map(|fitted| fitted.to_text())
        .collect();
    assert_eq!(fits[0], fits[1]);
    assert_eq!(fits[0], fits[2]);
    let x: Vec<f64> = rows
        .iter()
        .flat_map(|(obs, _)| {
            obs.iter().map(|o| match o {
                Observation::Number(v) => *v / 30.0,
                Observation::Category(c) => (c.as_ref() == "a") as u8 as f64,
                Observation::Imputed => 0.5,
            })
        })
        .collect();
    let y: Vec<bool> = rows.iter().map(|(_, y)| *y).collect();
    let weights: Vec<Vec<f64>> = [1, 2, 3]
        .iter()
        .map(|&t| {
            with_threads(t, || {
                let s = health_score_core::fit::fit(3, &x, &y, 0.01).unwrap();
                [vec![s.intercept], s.beta].concat()
            })
        })
        .collect();
    assert_eq!(weights[0], weights[1]);
    assert_eq!(weights[0], weights[2]);
}

/// For rows whose every input counts, the fitted model's score is
/// `scale · (c − log-odds) / Σ w` for one constant c: strictly decreasing in the fitted
/// log-odds. Checked over rows of a model with a group, a map, an imputed leaf and a refitted
/// impute value.
#[test]
fn the_score_is_a_decreasing_linear_function_of_the_fitted_log_odds() {
    let (json, m) = mixed_model();
    let rows = mixed_rows(8, 5000);
    let options = ShapeOptions::from_json(&Json::from(&json!({"refit_impute": true})), &m).unwrap();
    let fit = fit_shapes(&m, &data(&m, &rows), &options).unwrap();
    let fitted_json = apply_shapes(&json, &m, &fit);
    let fitted = Model::parse(&fitted_json).expect("the fitted model is valid");
    let total_weight: f64 = fit.leaves.iter().map(|l| l.weight).sum();
    let mut constant = None;
    for (observations, _) in rows.iter().take(500) {
        let input = json!({
            "logins": match &observations[0] { Observation::Number(v) => json!(v), _ => Value::Null },
            "plan": match &observations[1] { Observation::Category(c) => json!(c.as_ref()), _ => Value::Null },
            "nps": match &observations[2] { Observation::Number(v) => json!(v), _ => Value::Null },
        });
        let score = fitted.evaluate(&fitted.values_from_json(&Json::from(&input))).unwrap().score.unwrap();
        let log_odds = fit.log_odds(observations);
        let c = score * total_weight / 100.0 + log_odds;
        let c0 = *constant.get_or_insert(c);
        assert!((c - c0).abs() < 1e-9, "{c} vs {c0} for {input}");
    }
    // and the observations the SQL row function would send are the ones used here
    let input = Json::from(&json!({"logins": 12, "plan": "b", "nps": null}));
    let values = m.values_from_json(&input);
    let eval = m.evaluate(&values).unwrap();
    let seen = observe(&m, &eval.nodes, &values).unwrap();
    assert_eq!(seen, vec![Observation::Number(12.0), Observation::Category("b".into()), Observation::Imputed]);
}

/// Options are checked and name what is wrong.
#[test]
fn bad_options_name_the_option() {
    let (_, m) = mixed_model();
    for (options, fragment) in [
        (json!({"knots": 1}), "options.knots"),
        (json!({"knots": 2.5}), "options.knots"),
        (json!({"smoothness": -1}), "options.smoothness"),
        (json!({"min_category_rows": 0}), "options.min_category_rows"),
        (json!({"monotone": {"plan": "increasing"}}), "options.monotone.plan"),
        (json!({"monotone": {"engagement": "decreasing"}}), "options.monotone.engagement"),
        (json!({"monotone": {"nope": "none"}}), "options.monotone.nope"),
        (json!({"monotone": {"logins": "up"}}), "options.monotone.logins"),
        (json!({"refit_impute": 1}), "options.refit_impute"),
    ] {
        let err = ShapeOptions::from_json(&Json::from(&options), &m).unwrap_err();
        assert_eq!(err.sqlstate(), "22023");
        assert!(err.to_string().contains(fragment), "{options}: {err}");
    }
}

/// `suggest` on rows with a planted strong column, a weak one, a category that matters, a
/// column equal to the outcome and an identifier: the strong column ranks first, the leak
/// last and flagged, the identifier is left out, and each suggestion is a component that
/// `add_components` adds to the model.
#[test]
fn suggest_ranks_a_planted_column_first_and_flags_a_leak() {
    use health_score_core::suggest::{add_components, suggest, Candidate, SuggestData, SuggestOptions};
    let (json, m) = model(json!({"components": [
        {"name": "logins", "weight": 2, "normalize": {"type": "linear", "min": 0, "max": 30}},
        {"name": "tickets", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10, "invert": true}}]}));
    let candidates = [
        Candidate { column: "Seat Use".into(), categorical: false },
        Candidate { column: "noise".into(), categorical: false },
        Candidate { column: "region".into(), categorical: true },
        Candidate { column: "cancelled".into(), categorical: true },
        Candidate { column: "email".into(), categorical: true },
    ];
    let mut d = SuggestData::new(&m, 2, 3);
    let mut draws = Draws(21);
    let mut bytes = Vec::new();
    for i in 0..6000 {
        let (logins, tickets, seats, noise) =
            (30.0 * draws.next(), (10.0 * draws.next()).floor(), draws.next(), draws.next());
        let region = ["north", "south", "east", "west"][i % 4];
        let y = churned(
            &mut draws,
            1.0 - 0.05 * logins + 0.1 * tickets - 4.0 * seats + if region == "east" { 0.7 } else { 0.0 },
        );
        health_score_core::shapes::encode_observations(
            &[Observation::Number(logins), Observation::Number(tickets)],
            &mut bytes,
        );
        let email = format!("user{i}@example.com");
        let cancelled = if y { "yes" } else { "no" };
        d.add(
            &bytes,
            &[Some(seats), if i % 7 == 3 { None } else { Some(noise) }],
            &[Some(region), Some(cancelled), Some(&email)],
            y,
            i % 5 == 0,
            20,
        )
        .unwrap();
    }
    let options = SuggestOptions::from_json(&Json::from(&json!({})), &m).unwrap();
    let found = suggest(&json, &m, &candidates, &d, &options).unwrap();
    // the candidates fitted on two threads: the same suggestions to the last bit
    let on_two = health_score_core::parallel::with_threads(2, || suggest(&json, &m, &candidates, &d, &options));
    assert_eq!(on_two.unwrap(), found);
    let order: Vec<(&str, bool, bool)> =
        found.suggestions.iter().map(|s| (s.column.as_str(), s.leak, s.exact)).collect();
    assert_eq!(order[0], ("Seat Use", false, true), "{order:?}");
    assert_eq!(order[1].0, "region", "{order:?}");
    assert_eq!(order.last().unwrap(), &("cancelled", true, false), "{order:?}");
    assert_eq!(found.too_many_categories, ["email"]);
    let top = &found.suggestions[0];
    assert!(
        top.holdout_auc > found.baseline_holdout_auc + 0.05,
        "{} vs {}",
        top.holdout_auc,
        found.baseline_holdout_auc
    );
    assert_eq!(top.component.get("name"), Some(&Json::String("seat_use".into())));
    assert_eq!(top.component.get("input"), Some(&Json::String("Seat Use".into())));
    // the noise column has missing values: its component imputes them
    let noise = found.suggestions.iter().find(|s| s.column == "noise").unwrap();
    assert!(noise.component.get("missing").is_some(), "{}", noise.component.to_text());
    let all: Vec<Json> = found.suggestions.iter().filter(|s| !s.leak).map(|s| s.component.clone()).collect();
    let extended = add_components(&json, &Json::Array(all), None).unwrap();
    assert!(Model::parse(&extended).is_ok());
}

/// `add_components` keeps weights, renames a clashing name, adds under a group, and refuses
/// what would make the model invalid.
#[test]
fn add_components_renames_clashes_and_checks_the_result() {
    use health_score_core::suggest::add_components;
    let (json, _) = model(json!({"components": [
        {"name": "usage", "weight": 2, "components": [
            {"name": "logins", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 30}}]},
        {"name": "logins_2", "weight": 1, "input": "x", "normalize": {"type": "linear", "min": 0, "max": 1}}]}));
    let new = Json::from(&json!([
        {"name": "logins", "weight": 0.5, "input": "logins_7d", "normalize": {"type": "linear", "min": 0, "max": 7}},
        {"name": "seats", "weight": 3, "normalize": {"type": "linear", "min": 0, "max": 1}}]));
    let out: Value = serde_json::from_str(&add_components(&json, &new, None).unwrap().to_text()).unwrap();
    let names: Vec<&str> = out["components"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["usage", "logins_2", "logins_3", "seats"]);
    assert_eq!(out["components"][2]["weight"], 0.5);
    let under: Value = serde_json::from_str(&add_components(&json, &new, Some("usage")).unwrap().to_text()).unwrap();
    assert_eq!(under["components"][0]["components"].as_array().unwrap().len(), 3);
    for (components, parent, fragment) in [
        (json!({"name": "x"}), None, "must be a JSON array"),
        (json!([1]), None, "components[0] must be an object"),
        (json!([{"name": "y", "weight": -1, "normalize": {"type": "linear", "min": 0, "max": 1}}]), None, "weight"),
        (json!([]), Some("logins"), "no group named"),
    ] {
        let err = add_components(&json, &Json::from(&components), parent).unwrap_err();
        assert_eq!(err.sqlstate(), "22023");
        assert!(err.to_string().contains(fragment), "{components}: {err}");
    }
}
