//! `fit` against the reference solver, on missing, imputed and segmented inputs and at its size limit.

use super::*;

/// A model with every way a leaf's `n` reaches the fit: a reweighted leaf (its rows left out),
/// a group imputed as a whole, a leaf counted as zero when missing, and a segment.
const FIT_MODEL: &str = r#"{
  "components": [
    {"name": "a", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}},
    {"name": "g", "weight": 2, "missing": {"impute": 0.4}, "components": [
      {"name": "b", "weight": 1, "missing": "reweight", "normalize": {"type": "linear", "min": 0, "max": 10}},
      {"name": "c", "weight": 3, "missing": "reweight", "normalize": {"type": "linear", "min": 0, "max": 10, "invert": true}}]},
    {"name": "d", "weight": 1, "missing": "zero", "normalize": {"type": "linear", "min": 0, "max": 10}}],
  "segments": {"input": "plan", "overrides": {"ent": {"weights": {"d": 5}}}},
  "calibration": {"intercept": 1, "slope": -0.1}
}"#;

/// The leaves' design by hand: None when a leaf is reweighted away.
fn fit_design(a: Option<f64>, b: Option<f64>, c: Option<f64>, d: Option<f64>) -> Option<Vec<f64>> {
    let lin = |v: f64| (v / 10.0).clamp(0.0, 1.0);
    let a = lin(a?);
    let (b, c) = match (b, c) {
        (None, None) => (0.4, 0.4),
        (Some(b), Some(c)) => (lin(b), 1.0 - lin(c)),
        _ => return None,
    };
    Some(vec![a, b, c, d.map_or(0.0, lin)])
}

fn leaf_weights(model: &serde_json::Value) -> Vec<f64> {
    let c = &model["components"];
    vec![
        c[0]["weight"].as_f64().unwrap(),
        c[1]["components"][0]["weight"].as_f64().unwrap(),
        c[1]["components"][1]["weight"].as_f64().unwrap(),
        c[2]["weight"].as_f64().unwrap(),
    ]
}

fn assert_weights(got: &[f64], beta: &[f64]) {
    for (g, b) in got.iter().zip(beta) {
        assert!((g + b).abs() <= 1e-8 * g.abs().max(1e-3), "weights {got:?} vs reference {beta:?}");
    }
}

/// `accounts` as `shuffled`, in another row order, and the session set to plan parallel
/// aggregation, which `aggregate` over `shuffled s` must then use.
fn shuffled_with_parallel_partial_aggregates(c: &mut Client, aggregate: &str) {
    c.batch_execute(
        "CREATE TABLE shuffled AS SELECT * FROM accounts ORDER BY md5(id::text);
         SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
         SET max_parallel_workers_per_gather = 2;",
    )
    .unwrap();
    let plan: Vec<String> = c
        .query(&format!("EXPLAIN SELECT {aggregate} FROM shuffled s"), &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(plan.iter().any(|l| l.contains("Partial Aggregate")), "{plan:?}");
}

#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn fit_matches_the_reference_with_missing_imputed_and_segmented_inputs() {
    let mut c = database("hs_fit");
    c.batch_execute(
        "CREATE TABLE accounts AS
           SELECT i AS id,
                  CASE WHEN i % 17 = 0 THEN NULL ELSE (i * 37) % 11 END::float8 AS a,
                  CASE WHEN i % 5 = 0 THEN NULL ELSE (i * 13) % 10 END::float8 AS b,
                  CASE WHEN i % 5 = 0 OR i % 23 = 0 THEN NULL ELSE (i * 7) % 9 END::float8 AS c,
                  CASE WHEN i % 4 = 0 THEN NULL ELSE (i * 29) % 10 END::float8 AS d,
                  CASE WHEN i % 3 = 0 THEN 'ent' ELSE 'smb' END AS plan,
                  ((i * 7919) % 1000) / 1000.0 < 1 / (1 + exp(0.5 + 0.3 * ((i * 37) % 11) - 0.2 * ((i * 13) % 10)))
                    AS churned
             FROM generate_series(1, 3000) i;
         ALTER TABLE accounts ADD PRIMARY KEY (id);",
    )
    .unwrap();
    let rows: Vec<(Option<Vec<f64>>, bool, bool)> = c
        .query("SELECT a, b, c, d, plan = 'ent', churned FROM accounts ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (fit_design(r.get(0), r.get(1), r.get(2), r.get(3)), r.get(4), r.get(5)))
        .collect();
    let data = |keep: &dyn Fn(bool) -> bool| {
        let kept: Vec<_> = rows.iter().filter(|(x, ent, _)| x.is_some() && keep(*ent)).collect();
        let x: Vec<Vec<f64>> = kept.iter().map(|(x, _, _)| x.clone().unwrap()).collect();
        let y: Vec<bool> = kept.iter().map(|(_, _, y)| *y).collect();
        (x, y)
    };
    let fit = |c: &mut Client, options: &str| -> serde_json::Value {
        let text: String = c
            .query_one(
                &format!("SELECT health_score.fit($1::text::jsonb, 'accounts', 'churned', '{options}')::text"),
                &[&FIT_MODEL],
            )
            .unwrap()
            .get(0);
        serde_json::from_str(&text).unwrap()
    };

    // pooled: the override's weights are dropped, the calibration too
    let (x, y) = data(&|_| true);
    let (intercept, beta) = fit_reference::reference(&x, &y, 1e-4);
    let pooled = fit(&mut c, "{}");
    let w = leaf_weights(&pooled);
    assert_weights(&w, &beta);
    assert!(beta[1] == fit_reference::UPPER, "b raises churn in this data: {beta:?}");
    assert_eq!(pooled["components"][1]["weight"].as_f64().unwrap(), w[1] + w[2]);
    assert!(pooled.get("calibration").is_none());
    assert!(pooled["segments"]["overrides"]["ent"].get("weights").is_none());
    // the fitted score is scale × (intercept − fitted log-odds) / Σw: decreasing in the log-odds
    let total: f64 = w.iter().sum();
    for (a, b, cc, d) in [(3.0f64, 4.0f64, 5.0f64, 6.0f64), (9.0, 1.0, 2.0, 0.0)] {
        let score: f64 = c
            .query_one(
                "SELECT health_score.score($1::text::jsonb, jsonb_build_object('a', $2::float8, 'b', $3::float8, 'c', $4::float8, 'd', $5::float8))",
                &[&pooled.to_string(), &a, &b, &cc, &d],
            )
            .unwrap()
            .get(0);
        let design = fit_design(Some(a), Some(b), Some(cc), Some(d)).unwrap();
        let logit = intercept + design.iter().zip(&beta).map(|(x, b)| x * b).sum::<f64>();
        let expected = 100.0 * (intercept - logit) / total;
        assert!((score - expected).abs() < 1e-9 * expected.abs().max(1.0), "{score} vs {expected}");
    }

    // by segment: the base model from the rows outside any override, "ent" from its own
    let by_segment = fit(&mut c, r#"{"by_segment": true}"#);
    let (x, y) = data(&|ent| !ent);
    assert_weights(&leaf_weights(&by_segment), &fit_reference::reference(&x, &y, 1e-4).1);
    let (x, y) = data(&|ent| ent);
    let ent = &by_segment["segments"]["overrides"]["ent"]["weights"];
    let got: Vec<f64> = ["a", "b", "c", "d"].iter().map(|k| ent[*k].as_f64().unwrap()).collect();
    assert_weights(&got, &fit_reference::reference(&x, &y, 1e-4).1);
    assert_eq!(ent["g"].as_f64().unwrap(), got[1] + got[2]);

    // the same weights in any row order and with parallel workers
    shuffled_with_parallel_partial_aggregates(
        &mut c,
        "health_score_internal._fit(health_score_internal._fit_row('{}', false, s), s.churned, 1e-4)",
    );
    let text: String = c
        .query_one("SELECT health_score.fit($1::text::jsonb, 'shuffled', 'churned')::text", &[&FIT_MODEL])
        .unwrap()
        .get(0);
    let parallel: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(leaf_weights(&parallel), leaf_weights(&pooled));

    // too few accounts in a class
    c.batch_execute("CREATE VIEW few AS SELECT * FROM accounts WHERE id < 30").unwrap();
    let err = c.query_one("SELECT health_score.fit($1::text::jsonb, 'few', 'churned')", &[&FIT_MODEL]).unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "22023");
    assert!(db.message().contains("each class needs at least 10"), "{}", db.message());
}

/// The most leaves the issue asks `fit` to take: 16 groups of 16 linear leaves over a table of
/// 256 columns, fitted through SQL, against the core solver on the design computed here.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn fit_takes_256_leaves_in_16_groups() {
    const GROUPS: usize = 16;
    const LEAVES: usize = GROUPS * GROUPS;
    let mut c = database("hs_fit_wide");
    c.batch_execute(&format!(
        "DO $$ BEGIN
           EXECUTE 'CREATE TABLE wide AS SELECT i AS id, ' ||
             (SELECT string_agg(format('(abs(hashtext(i || '':'' || %s)) %% 11)::float8 AS x%s', j, j), ', ')
                FROM generate_series(1, {LEAVES}) j) ||
             ' FROM generate_series(1, 1500) i';
         END $$;
         ALTER TABLE wide ADD COLUMN churned boolean;
         UPDATE wide SET churned = ((id * 7919) % 1000) / 1000.0 < 1 / (1 + exp(-(1 - 0.4 * x1 + 0.3 * x2 - 0.1 * x3)));"
    ))
    .unwrap();
    let leaf = |j: usize| {
        serde_json::json!({"name": format!("x{j}"), "weight": 1 + j % 3,
                           "normalize": {"type": "linear", "min": 0, "max": 10}})
    };
    let model = serde_json::json!({"components": (0..GROUPS).map(|g| serde_json::json!({
        "name": format!("g{g}"), "weight": 1,
        "components": (1 + g * GROUPS..=(g + 1) * GROUPS).map(leaf).collect::<Vec<_>>()})).collect::<Vec<_>>()});
    let text: String = c
        .query_one("SELECT health_score.fit($1::text::jsonb, 'wide', 'churned')::text", &[&model.to_string()])
        .unwrap()
        .get(0);
    let fitted: serde_json::Value = serde_json::from_str(&text).unwrap();

    let columns: Vec<String> = (1..=LEAVES).map(|j| format!("x{j}")).collect();
    let rows = c.query(&format!("SELECT {}, churned FROM wide ORDER BY id", columns.join(", ")), &[]).unwrap();
    let x: Vec<f64> = rows.iter().flat_map(|r| (0..LEAVES).map(move |j| r.get::<_, f64>(j) / 10.0)).collect();
    let y: Vec<bool> = rows.iter().map(|r| r.get(LEAVES)).collect();
    let expected = health_score::core::fit::fit(LEAVES, &x, &y, 1e-4).unwrap();
    assert!(expected.at_bound.iter().any(|&b| b) && expected.at_bound.iter().any(|&b| !b), "{expected:?}");

    for g in 0..GROUPS {
        let group = &fitted["components"][g];
        let mut sum = 0.0;
        for (i, child) in group["components"].as_array().unwrap().iter().enumerate() {
            let w = child["weight"].as_f64().unwrap();
            let beta = expected.beta[g * GROUPS + i];
            assert!((w + beta).abs() <= 1e-8 * w.abs().max(1e-3), "leaf {}: {w} vs {}", g * GROUPS + i + 1, -beta);
            sum += w;
        }
        let w = group["weight"].as_f64().unwrap();
        assert!((w - sum).abs() <= 1e-12 * sum, "group {g}: {w} vs the sum of its leaves {sum}");
    }
    let report: i64 = c
        .query_one(
            "SELECT count(*) FROM health_score.fit_report($1::text::jsonb, 'wide', 'churned') WHERE parent IS NOT NULL",
            &[&model.to_string()],
        )
        .unwrap()
        .get(0);
    assert_eq!(report, LEAVES as i64);
}

/// A model whose hand normalizers miss the data's shapes: logins saturate early, the plan's
/// categories are valued wrongly, and open tickets (missing for some accounts, imputed) hurt.
const SHAPE_MODEL: &str = r#"{
  "components": [
    {"name": "logins", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 100}},
    {"name": "plan", "weight": 1, "normalize": {"type": "map", "values": {"free": 0, "basic": 0.5, "pro": 1, "team": 1, "legacy": 0.5}}},
    {"name": "tickets", "weight": 1, "missing": {"impute": 0.5},
     "normalize": {"type": "linear", "min": 0, "max": 10, "invert": true}}]
}"#;

/// `fit` with `"shapes": true` through SQL: the same model as the core's fit of the rows read
/// back here (so the row function, the aggregate and its parallel combine lose nothing), in
/// any row order and with parallel workers; valid for set_model; better on the holdout than
/// the hand model; and its options checked.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn fit_with_shapes_fits_curves_and_maps_through_sql() {
    use health_score_core::shapes::{apply_shapes, fit_shapes, Observation, ShapeData, ShapeOptions};
    let mut c = database("hs_fit_shapes");
    c.batch_execute(
        "CREATE TABLE accounts AS
           WITH draws AS (
             SELECT i, ('x' || left(md5('l' || i), 8))::bit(32)::int8 / 4294967296.0 AS u1,
                       ('x' || left(md5('p' || i), 8))::bit(32)::int8 / 4294967296.0 AS u2,
                       ('x' || left(md5('y' || i), 8))::bit(32)::int8 / 4294967296.0 AS u3
               FROM generate_series(1, 8000) i)
           SELECT i AS id, round(60 * u1) AS logins,
                  CASE WHEN i = 77 THEN 'legacy' ELSE (ARRAY['free', 'basic', 'pro', 'team'])[1 + floor(4 * u2)::int] END AS plan,
                  CASE WHEN i % 7 = 0 THEN NULL ELSE floor(10 * u3) END AS tickets,
                  u3 AS u
             FROM draws;
         ALTER TABLE accounts ADD COLUMN churned boolean;
         UPDATE accounts SET churned = ('x' || left(md5('c' || id), 8))::bit(32)::int8 / 4294967296.0
             < 1 / (1 + exp(-(1.0 - 3 * (1 - exp(-logins / 8.0))
                            + CASE plan WHEN 'free' THEN 1.0 WHEN 'basic' THEN -0.5 WHEN 'pro' THEN 0.3 ELSE -1.0 END
                            + 0.15 * coalesce(tickets, 3))));
         ALTER TABLE accounts ADD PRIMARY KEY (id);",
    )
    .unwrap();
    let fit_text = |c: &mut Client, table: &str, options: &str| -> String {
        c.query_one(
            &format!("SELECT health_score.fit($1::text::jsonb, '{table}', 'churned', '{options}')::text"),
            &[&SHAPE_MODEL],
        )
        .unwrap()
        .get(0)
    };
    let through_sql = fit_text(&mut c, "accounts", r#"{"shapes": true}"#);

    // the core's fit of the same rows
    let json = health_score_core::Json::from(&serde_json::from_str::<serde_json::Value>(SHAPE_MODEL).unwrap());
    let model = health_score_core::Model::parse(&json).unwrap();
    let mut data = ShapeData::new(&model);
    for r in c.query("SELECT logins::float8, plan, tickets::float8, churned FROM accounts", &[]).unwrap() {
        let plan: String = r.get(1);
        let tickets: Option<f64> = r.get(2);
        let observations = [
            Observation::Number(r.get(0)),
            Observation::Category(plan.into()),
            tickets.map_or(Observation::Imputed, Observation::Number),
        ];
        data.add(&observations, r.get(3)).unwrap();
    }
    let fitted = fit_shapes(&model, &data, &ShapeOptions::default()).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&apply_shapes(&json, &model, &fitted).to_text()).unwrap();
    let got: serde_json::Value = serde_json::from_str(&through_sql).unwrap();
    assert_eq!(got, expected);
    assert_eq!(got["components"][0]["normalize"]["type"], "curve");
    assert_eq!(got["components"][0]["normalize"]["points"].as_array().unwrap().len(), 6);
    let plan = &got["components"][1]["normalize"];
    assert!(plan["values"].get("legacy").is_none() && plan["default"].is_number(), "{plan}");
    assert_eq!(plan["values"]["team"], 1.0, "team retains best: {plan}");
    assert_eq!(plan["values"]["free"], 0.0, "free churns most: {plan}");
    // tickets keep the hand normalizer's direction: never better with more tickets
    let points = got["components"][2]["normalize"]["points"].as_array().unwrap();
    assert!(points.windows(2).all(|w| w[1][1].as_f64() <= w[0][1].as_f64()), "{points:?}");
    c.query_one("SELECT health_score.set_model('shaped', $1::text::jsonb)", &[&through_sql]).unwrap();

    // any row order, with parallel workers
    shuffled_with_parallel_partial_aggregates(
        &mut c,
        "health_score_internal._fit_shapes(health_score_internal._fit_shape_row('{}', s), s.churned, '{}')",
    );
    assert_eq!(fit_text(&mut c, "shuffled", r#"{"shapes": true}"#), through_sql);
    // on one thread (parallel query off): the same to the bit
    c.batch_execute("RESET ALL; SET max_parallel_workers_per_gather = 0").unwrap();
    assert_eq!(fit_text(&mut c, "accounts", r#"{"shapes": true}"#), through_sql);
    c.batch_execute("RESET ALL").unwrap();

    // the report: each leaf's normalizer before and after, and a better holdout AUC
    let rows = c
        .query(
            "SELECT component, old_normalizer ->> 'type', new_normalizer ->> 'type', holdout_auc_before, holdout_auc_after
               FROM health_score.fit_report($1::text::jsonb, 'accounts', 'churned', '{\"shapes\": true, \"holdout\": 0.3}')",
            &[&SHAPE_MODEL],
        )
        .unwrap();
    let kinds: Vec<(String, String, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        kinds,
        [("logins", "linear", "curve"), ("plan", "map", "map"), ("tickets", "linear", "curve")].map(|(a, b, c)| (
            a.to_string(),
            b.to_string(),
            c.to_string()
        ))
    );
    let (before, after): (f64, f64) = (rows[0].get(3), rows[0].get(4));
    assert!(after > before + 0.02, "holdout AUC {before} → {after}");

    // options
    for (options, fragment) in [
        (r#"{"shapes": true, "by_segment": true}"#, "options.by_segment"),
        (r#"{"knots": 8}"#, "options.knots"),
        (r#"{"shapes": "yes"}"#, "options.shapes"),
        (r#"{"shapes": true, "knots": 1}"#, "options.knots"),
        (r#"{"shapes": true, "monotone": {"plan": "increasing"}}"#, "options.monotone.plan"),
    ] {
        let err = c
            .query_one(
                &format!("SELECT health_score.fit($1::text::jsonb, 'accounts', 'churned', '{options}')"),
                &[&SHAPE_MODEL],
            )
            .unwrap_err();
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), "22023", "{options}");
        assert!(db.message().contains(fragment), "{options}: {}", db.message());
    }
}

/// The holdout in C is the rule the documentation gives in SQL, for every key: the first 32
/// bits of md5(key) over 2^32 below the fraction (multi-byte text, the empty key and NULLs
/// included).
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn the_holdout_is_the_documented_md5_rule() {
    let mut c = database("hs_held_out");
    let differing: i64 = c
        .query_one(
            "SELECT count(*)
               FROM (SELECT g::text FROM generate_series(1, 20000) g
                     UNION ALL VALUES (''), ('Ünïcode ✓'), (NULL)) k(key),
                    (VALUES (0.2::float8), (0.5), (0.999), (0.0), (NULL)) f(fraction)
              WHERE health_score_internal._held_out(k.key, f.fraction) IS DISTINCT FROM
                    (('x' || left(md5(k.key), 8))::bit(32)::int8 / 4294967296.0 < f.fraction)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(differing, 0);
    let held: i64 = c
        .query_one(
            "SELECT count(*) FROM generate_series(1, 20000) g WHERE health_score_internal._held_out(g::text, 0.2)",
            &[],
        )
        .unwrap()
        .get(0);
    // about a fifth, as a hash should
    assert!((3600..4400).contains(&held), "{held}");
}
