//! `suggest` and `add_components` through SQL, against the core on the same rows.

use super::*;

const HAND_MODEL: &str = r#"{"components": [
  {"name": "logins", "weight": 2, "normalize": {"type": "linear", "min": 0, "max": 30}},
  {"name": "tickets", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10, "invert": true}}]}"#;

/// A table with no primary key and no key column: the model's two inputs, a strong column
/// (seat use), a weak one with NULLs, a region that matters, a column equal to the outcome, an
/// e-mail address per account; `suggest` ranks them as the core does on the rows read back
/// (the held-out side drawn from each row's text), in parallel too, and its components extend
/// the model.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn suggest_ranks_columns_as_the_core_does_and_its_components_extend_the_model() {
    use health_score_core::shapes::{encode_observations, Observation};
    use health_score_core::suggest::{self, Candidate, SuggestData, SuggestOptions};
    let mut c = database("hs_suggest");
    c.batch_execute(
        "CREATE TABLE accounts AS
           WITH d AS (
             SELECT i, ('x' || left(md5('a' || i), 8))::bit(32)::int8 / 4294967296.0 AS u1,
                       ('x' || left(md5('b' || i), 8))::bit(32)::int8 / 4294967296.0 AS u2,
                       ('x' || left(md5('s' || i), 8))::bit(32)::int8 / 4294967296.0 AS u3,
                       ('x' || left(md5('n' || i), 8))::bit(32)::int8 / 4294967296.0 AS u4,
                       ('x' || left(md5('y' || i), 8))::bit(32)::int8 / 4294967296.0 AS u5
               FROM generate_series(1, 5000) i)
           SELECT round(30 * u1) AS logins, floor(10 * u2)::int AS tickets, round(u3::numeric, 3) AS \"Seat Use\",
                  CASE WHEN i % 7 = 3 THEN NULL ELSE u4 END AS noise,
                  (ARRAY['north', 'south', 'east', 'west'])[1 + i % 4] AS region,
                  'user' || i || '@example.com' AS email,
                  u5 < 1 / (1 + exp(-(1.0 - 0.05 * round(30 * u1) + 0.1 * floor(10 * u2) - 4 * u3
                                      + CASE WHEN i % 4 = 2 THEN 0.7 ELSE 0 END))) AS churned
             FROM d;
         ALTER TABLE accounts ADD COLUMN cancelled boolean;
         UPDATE accounts SET cancelled = churned;",
    )
    .unwrap();
    let suggested = |c: &mut Client| -> Vec<(i32, String, String, f64, bool, bool)> {
        c.query(
            "SELECT rank, column_name, component::text, holdout_auc, leak, exact
               FROM health_score.suggest($1::text::jsonb, 'accounts', 'churned')",
            &[&HAND_MODEL],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
    };
    let rows = suggested(&mut c);
    let order: Vec<(&str, bool)> = rows.iter().map(|r| (r.1.as_str(), r.4)).collect();
    assert_eq!(order, [("Seat Use", false), ("region", false), ("noise", false), ("cancelled", true)]);
    assert!(rows[0].5 && rows[1].5 && !rows[3].5);

    // the core, on the same rows and sides
    let json = health_score_core::Json::from(&serde_json::from_str::<serde_json::Value>(HAND_MODEL).unwrap());
    let model = health_score_core::Model::parse(&json).unwrap();
    let candidates = [
        Candidate { column: "Seat Use".into(), categorical: false },
        Candidate { column: "noise".into(), categorical: false },
        Candidate { column: "region".into(), categorical: true },
        Candidate { column: "email".into(), categorical: true },
        Candidate { column: "cancelled".into(), categorical: true },
    ];
    let mut data = SuggestData::new(&model, 2, 3);
    let mut bytes = Vec::new();
    for r in c
        .query(
            "SELECT logins::float8, tickets::float8, \"Seat Use\"::float8, noise::float8, region, email, cancelled::text, churned,
                    health_score_internal._held_out(a::text, 0.2)
               FROM accounts a",
            &[],
        )
        .unwrap()
    {
        encode_observations(&[Observation::Number(r.get(0)), Observation::Number(r.get(1))], &mut bytes);
        let (region, email, cancelled): (String, String, String) = (r.get(4), r.get(5), r.get(6));
        data.add(
            &bytes,
            &[Some(r.get(2)), r.get(3)],
            &[Some(&region), Some(&email), Some(&cancelled)],
            r.get(7),
            r.get(8),
            20,
        )
        .unwrap();
    }
    let options = SuggestOptions::from_json(&health_score_core::Json::from(&serde_json::json!({})), &model).unwrap();
    let expected = suggest::suggest(&json, &model, &candidates, &data, &options).unwrap();
    assert_eq!(expected.too_many_categories, ["email"]);
    for (got, want) in rows.iter().zip(&expected.suggestions) {
        assert_eq!(got.1, want.column);
        assert_eq!(got.3, want.holdout_auc, "{}", got.1);
        let component: serde_json::Value = serde_json::from_str(&got.2).unwrap();
        let want_component: serde_json::Value = serde_json::from_str(&want.component.to_text()).unwrap();
        assert_eq!(component, want_component);
    }

    // with parallel workers
    c.batch_execute(
        "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
         SET max_parallel_workers_per_gather = 2;",
    )
    .unwrap();
    assert_eq!(suggested(&mut c), rows);
    // and on one thread (parallel query off): the same to the bit
    c.batch_execute("RESET ALL; SET max_parallel_workers_per_gather = 0").unwrap();
    assert_eq!(suggested(&mut c), rows);
    c.batch_execute("RESET ALL").unwrap();

    // the two best components, added and fitted with the model, as a new version
    let extended: String = c
        .query_one(
            "SELECT health_score.add_components($1::text::jsonb, jsonb_agg(s.component ORDER BY s.rank))::text
               FROM health_score.suggest($1::text::jsonb, 'accounts', 'churned') s WHERE NOT s.leak AND s.rank <= 2",
            &[&HAND_MODEL],
        )
        .unwrap()
        .get(0);
    let v: serde_json::Value = serde_json::from_str(&extended).unwrap();
    let names: Vec<&str> = v["components"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["logins", "tickets", "seat_use", "region"]);
    c.query_one(
        "SELECT health_score.set_model('extended', health_score.fit($1::text::jsonb, 'accounts', 'churned', '{\"shapes\": true}'))",
        &[&extended],
    )
    .unwrap();

    // options
    for (options, code, fragment) in [
        (r#"{"include": ["nope"]}"#, "42703", "options.include"),
        (r#"{"holdout": 1}"#, "22023", "options.holdout"),
        (r#"{"folds": 3}"#, "22023", "options.folds"),
        (r#"{"exclude": "region"}"#, "22023", "options.exclude"),
        (r#"{"include": ["logins"]}"#, "22023", "no column to suggest"),
    ] {
        let err = c
            .query_one(
                &format!(
                    "SELECT count(*) FROM health_score.suggest($1::text::jsonb, 'accounts', 'churned', '{options}')"
                ),
                &[&HAND_MODEL],
            )
            .unwrap_err();
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), code, "{options}: {}", db.message());
        assert!(db.message().contains(fragment), "{options}: {}", db.message());
    }
    let err = c
        .query_one(
            "SELECT health_score.add_components($1::text::jsonb, '[{\"name\": \"x\", \"weight\": 0}]')",
            &[&HAND_MODEL],
        )
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "22023");
}

/// A fit or a suggestion cancelled while its threads run (statement_timeout at several points
/// of its work) ends with 57014 and leaves the session and the server as they were; none runs
/// to its end within the shortest timeout.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn cancelled_fits_and_suggestions_stop_cleanly() {
    let mut c = database("hs_suggest_cancel");
    c.batch_execute(
        "CREATE TABLE accounts AS
           SELECT i AS id, (i * 7919 % 31)::float8 AS logins, (i * 104729 % 11)::int AS tickets,
                  (i * 15485863 % 1000) / 1000.0 AS seats, (ARRAY['a', 'b', 'c'])[1 + i % 3] AS plan,
                  (i * 32452843 % 997) / 997.0 AS noise,
                  (i * 49979687 % 1000) / 1000.0 < 1 / (1 + exp(-(1.0 - 0.05 * (i * 7919 % 31) - 2 * (i * 15485863 % 1000) / 1000.0))) AS churned
             FROM generate_series(1::int8, 300000) i;
         SET max_parallel_workers_per_gather = 2;",
    )
    .unwrap();
    let statements = [
        "SELECT count(*) FROM health_score.suggest($1::text::jsonb, 'accounts', 'churned')",
        "SELECT health_score.fit($1::text::jsonb, 'accounts', 'churned', '{\"shapes\": true}')::text",
        "SELECT health_score.fit($1::text::jsonb, 'accounts', 'churned')::text",
    ];
    for statement in statements {
        let mut cancelled = 0;
        for timeout in [50, 300, 700, 1500] {
            c.batch_execute(&format!("SET statement_timeout = {timeout}")).unwrap();
            match c.query_one(statement, &[&HAND_MODEL]) {
                Ok(_) => {}
                Err(e) => {
                    let code = e.as_db_error().map(|db| db.code().code().to_string());
                    assert_eq!(code.as_deref(), Some("57014"), "{statement} at {timeout} ms: {e}");
                    cancelled += 1;
                }
            }
            c.batch_execute("RESET statement_timeout").unwrap();
            let one: i32 = c.query_one("SELECT 1", &[]).unwrap().get(0);
            assert_eq!(one, 1);
        }
        assert!(cancelled >= 1, "{statement}: a 50 ms timeout stops a fit over 300,000 rows");
    }
    // the server took no harm: another session works
    let one: i32 = connect("postgres").query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
}

/// Numbers beyond double precision's range (a `numeric` column) read as missing instead of
/// failing the cast, and columns with no value in any training row are left out.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn suggest_reads_huge_numbers_as_missing_and_leaves_out_empty_columns() {
    let mut c = database("hs_suggest_edges");
    c.batch_execute(
        "CREATE TABLE accounts AS
           SELECT i AS id, (i * 7 % 31)::float8 AS logins, (i * 13 % 11) AS tickets,
                  CASE WHEN i % 3 = 0 THEN 1e400 WHEN i % 3 = 1 THEN 'NaN'::numeric ELSE (i % 50)::numeric END AS huge,
                  NULL::text AS empty_text, NULL::numeric AS empty_number, (i * 17 % 100) / 100.0 AS usage,
                  (i * 29 % 100) / 100.0 < 0.3 + 0.01 * (i * 7 % 31) AS churned
             FROM generate_series(1, 3000) i;
         ALTER TABLE accounts ADD PRIMARY KEY (id);",
    )
    .unwrap();
    let columns: Vec<String> = c
        .query(
            "SELECT column_name FROM health_score.suggest($1::text::jsonb, 'accounts', 'churned') ORDER BY column_name",
            &[&HAND_MODEL],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(columns, ["huge", "usage"]);
}
