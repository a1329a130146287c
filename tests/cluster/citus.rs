//! On a real Citus 13.2.2 cluster: a coordinator and two workers, each a PostgreSQL 15 server
//! of its own on this machine (target/citus-pg15/), with `citus` preloaded. scripts/test.sh
//! builds Citus from the vendored source (scripts/citus.sh) and runs these tests with
//! HS_CITUS=1; without it they say they are skipped and pass (PostgreSQL 16–18, or a machine
//! without ../shared/vendor). Each test compares what a distributed table gives with what the
//! same rows give in a plain table on the coordinator.

use super::*;

struct Citus {
    coordinator: u16,
    workers: [u16; 2],
}

fn citus_dir(node: &str) -> PathBuf {
    root().join("target/citus-pg15").join(node)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port()
}

/// The cluster, started fresh once per run; None (the test is skipped) without HS_CITUS=1.
fn citus() -> Option<&'static Citus> {
    static CITUS: OnceLock<Option<Citus>> = OnceLock::new();
    CITUS
        .get_or_init(|| {
            if std::env::var("HS_CITUS").as_deref() != Ok("1") || std::env::var("HS_PG_MAJOR").is_ok_and(|m| m != "15") {
                eprintln!("skipped: the Citus tests run with HS_CITUS=1 on PostgreSQL 15 (scripts/test.sh sets it where ../shared/vendor has Citus)");
                return None;
            }
            let ports = [free_port(), free_port(), free_port()];
            for (node, port) in ["coordinator", "worker1", "worker2"].into_iter().zip(ports) {
                fresh_node(node, port);
            }
            let c = Citus { coordinator: ports[0], workers: [ports[1], ports[2]] };
            let mut coordinator = c.connect();
            coordinator
                .execute("SELECT citus_set_coordinator_host('127.0.0.1', $1)", &[&i32::from(c.coordinator)])
                .unwrap();
            for port in c.workers {
                coordinator.execute("SELECT citus_add_node('127.0.0.1', $1)", &[&i32::from(port)]).unwrap();
            }
            // propagated to the workers by Citus
            coordinator.batch_execute("CREATE EXTENSION health_score").unwrap();
            Some(c)
        })
        .as_ref()
}

/// A new node in target/citus-pg15/`node` with Citus preloaded, the database `hs_citus` and
/// Citus in it; whatever was there before is removed.
fn fresh_node(node: &str, port: u16) {
    let dir = citus_dir(node);
    run(Command::new("bash").arg(root().join("scripts/cluster.sh")).arg("stop").arg(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new("bash")
        .arg(root().join("scripts/cluster.sh"))
        .arg("start")
        .arg(&dir)
        .arg(port.to_string())
        .arg("shared_preload_libraries = 'citus'")
        .arg("max_worker_processes = 16")
        .arg("citus.shard_count = 4"));
    node_connect(node, port, "postgres").batch_execute("CREATE DATABASE hs_citus").unwrap();
    node_connect(node, port, "hs_citus").batch_execute("CREATE EXTENSION citus").unwrap();
}

fn node_connect(node: &str, port: u16, db: &str) -> Client {
    Client::connect(&format!("host={} port={port} user=postgres dbname={db}", citus_dir(node).display()), NoTls)
        .expect("connects")
}

impl Citus {
    fn connect(&self) -> Client {
        node_connect("coordinator", self.coordinator, "hs_citus")
    }
}

/// Stops the servers (the last test calls it; a run cut short leaves them to the next run's
/// fresh start, and scripts/test.sh stops them when it ends).
fn stop_citus() {
    for node in ["coordinator", "worker1", "worker2", "worker3"] {
        run(Command::new("bash").arg(root().join("scripts/cluster.sh")).arg("stop").arg(citus_dir(node)));
    }
}

const MODEL: &str = r#"{"bands": [{"name": "red", "min": 0}, {"name": "green", "min": 50}],
  "components": [
    {"name": "usage", "weight": 2, "components": [
      {"name": "logins", "weight": 2, "normalize": {"type": "linear", "min": 0, "max": 40}},
      {"name": "seats", "input": "seats_used", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 1}}]},
    {"name": "plan", "weight": 1, "normalize": {"type": "map", "values": {"free": 0.2, "pro": 1}}},
    {"name": "tickets", "weight": 1, "missing": {"impute": 0.5}, "normalize": {"type": "linear", "min": 0, "max": 10, "invert": true}}]}"#;

/// A distributed `accounts` and a plain copy `accounts_local` with the same 2,000 rows.
fn accounts(c: &mut Client) {
    c.batch_execute(
        "DROP TABLE IF EXISTS accounts, accounts_local CASCADE;
         CREATE TABLE accounts (id bigint PRIMARY KEY, region text, logins int, seats_used float8, plan text,
                                tickets int, churned boolean);
         SELECT create_distributed_table('accounts', 'id');
         INSERT INTO accounts
         SELECT g, (ARRAY['north', 'south', 'east'])[1 + g % 3], (g * 7919) % 50, ((g * 104729) % 1000) / 1000.0,
                CASE WHEN g % 4 = 0 THEN 'free' ELSE 'pro' END, CASE WHEN g % 9 = 0 THEN NULL ELSE g % 12 END,
                (g * 31) % 7 < 2
           FROM generate_series(1, 2000) g;
         CREATE TABLE accounts_local AS SELECT * FROM accounts;",
    )
    .unwrap();
}

fn text_rows(c: &mut Client, sql: &str) -> Vec<String> {
    c.simple_query(sql)
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect::<Vec<_>>().join("|"))
            }
            _ => None,
        })
        .collect()
}

/// A query over the distributed table gives the rows the same query gives over the plain copy.
fn same_as_single_node(c: &mut Client, sql: &str) {
    let distributed = text_rows(c, sql);
    let local = text_rows(c, &sql.replace("FROM accounts ", "FROM accounts_local "));
    assert!(!distributed.is_empty(), "{sql}");
    assert_eq!(distributed, local, "{sql}");
}

/// The scoring functions with the model inline, on a distributed table: run on the workers
/// (the task queries call them) and equal to a single node.
#[test]
#[ignore = "needs the installed extension and Citus; scripts/test.sh runs it"]
fn citus_a_inline_models_score_on_the_workers() {
    let Some(citus) = citus() else { return };
    let mut c = citus.connect();
    accounts(&mut c);
    c.batch_execute(&format!("CREATE TEMP TABLE m AS SELECT $m${MODEL}$m$::jsonb AS config")).unwrap();
    for f in ["score", "band", "churn_probability"] {
        same_as_single_node(
            &mut c,
            &format!(
                "SELECT a.id, health_score.{f}((SELECT config FROM m), to_jsonb(a)) FROM accounts a ORDER BY a.id"
            ),
        );
    }
    same_as_single_node(
        &mut c,
        &format!("SELECT a.id, health_score.score('{MODEL}'::jsonb, a) FROM accounts a ORDER BY a.id"),
    );
    let plan = text_rows(
        &mut c,
        &format!("EXPLAIN (VERBOSE) SELECT a.id, health_score.score('{MODEL}'::jsonb, a) FROM accounts a"),
    )
    .join("\n");
    assert!(plan.contains("Task Count: 4") && plan.contains("health_score"), "{plan}");
}

/// A model registered by name scores on the workers (whose registries are empty): the
/// planner puts the version's config in the task queries. A version registered later is used
/// from then on, by a prepared statement too, and a worker added after `set_model` needs
/// nothing.
#[test]
#[ignore = "needs the installed extension and Citus; scripts/test.sh runs it"]
fn citus_b_registered_models_score_on_the_workers_and_new_versions_replace_them() {
    let Some(citus) = citus() else { return };
    let mut c = citus.connect();
    accounts(&mut c);
    c.execute("SELECT health_score.set_model('dist', $1::text::jsonb)", &[&MODEL]).unwrap();
    let queries = [
        "SELECT a.id, health_score.score('dist', a) FROM accounts a ORDER BY a.id",
        "SELECT a.id, health_score.score('dist', to_jsonb(a)) FROM accounts a ORDER BY a.id",
        "SELECT a.id, health_score.band('dist', a), (health_score.assess('dist', a)).coverage FROM accounts a ORDER BY a.id",
        "SELECT a.id, health_score.churn_probability('dist', to_jsonb(a)) FROM accounts a ORDER BY a.id",
        "SELECT a.id, (health_score.explain('dist', to_jsonb(a))).contribution FROM accounts a ORDER BY 1, 2",
        "SELECT a.region, round(avg(health_score.score('dist@1', a))::numeric, 9) FROM accounts a GROUP BY 1 ORDER BY 1",
    ];
    for q in queries {
        same_as_single_node(&mut c, q);
    }
    let prepared = c.prepare("SELECT sum(health_score.score('dist', a)) FROM accounts a").unwrap();
    let before: f64 = c.query_one(&prepared, &[]).unwrap().get(0);
    let expected: f64 =
        c.query_one("SELECT sum(health_score.score('dist', a)) FROM accounts_local a", &[]).unwrap().get(0);
    assert!((before - expected).abs() < 1e-9 * expected.abs(), "{before} {expected}");
    // version 2: logins saturate at 10 instead of 40
    c.execute(
        "SELECT health_score.set_model('dist', replace($1::text, '\"max\": 40', '\"max\": 10')::jsonb)",
        &[&MODEL],
    )
    .unwrap();
    let after: f64 = c.query_one(&prepared, &[]).unwrap().get(0);
    let expected: f64 =
        c.query_one("SELECT sum(health_score.score('dist', a)) FROM accounts_local a", &[]).unwrap().get(0);
    assert!((after - expected).abs() < 1e-9 * expected.abs() && after > before, "{before} {after} {expected}");
    for q in queries {
        same_as_single_node(&mut c, q);
    }
    let plan = text_rows(&mut c, "EXPLAIN (VERBOSE) SELECT health_score.score('dist', a) FROM accounts a").join("\n");
    assert!(plan.contains("\"max\": 10") && !plan.contains("'dist'"), "{plan}");
}

/// `auc`, `trend` and `score_agg`, grouped by a column other than the distribution column, are split:
/// each worker aggregates its shards (`worker_partial_agg` in the task queries) and the
/// coordinator combines the partial states (`coord_combine_agg`), with the results of a
/// single node.
#[test]
#[ignore = "needs the installed extension and Citus; scripts/test.sh runs it"]
fn citus_b2_auc_trend_and_score_agg_aggregate_partially_on_the_workers() {
    let Some(citus) = citus() else { return };
    let mut c = citus.connect();
    accounts(&mut c);
    let auc = format!(
        "SELECT a.region, health_score.auc(health_score.score('{MODEL}'::jsonb, a), a.churned), health_score.auc(a.logins, a.churned)
           FROM accounts a GROUP BY 1 ORDER BY 1"
    );
    same_as_single_node(&mut c, &auc);
    same_as_single_node(&mut c, "SELECT health_score.auc(a.seats_used, a.churned) FROM accounts a ");
    // the sums of a trend depend on the order its partial states are combined in: compared to 1e-9
    let trend = "SELECT region, (t).n, (t).first_at, (t).first_score, (t).last_at, (t).last_score, (t).min_score,
                        (t).max_score, round((t).delta::numeric, 9), round((t).slope_per_day::numeric, 9)
                   FROM (SELECT a.region, health_score.trend(timestamptz '2026-01-01' + (a.id % 30) * interval '1 day', a.logins) AS t
                           FROM accounts a GROUP BY 1) s
                  ORDER BY 1";
    same_as_single_node(&mut c, trend);
    // score_agg over metric rows distributed by their own id, grouped by account
    c.batch_execute(
        "DROP TABLE IF EXISTS metrics, metrics_local;
         CREATE TABLE metrics (id bigint PRIMARY KEY, account bigint, key text, value float8, label text);
         SELECT create_distributed_table('metrics', 'id');
         INSERT INTO metrics
         SELECT row_number() OVER (), a.id, k.key,
                CASE k.key WHEN 'logins' THEN a.logins WHEN 'seats_used' THEN a.seats_used ELSE a.tickets END, a.plan
           FROM accounts_local a, (VALUES ('logins'), ('seats_used'), ('tickets')) k(key);
         CREATE TABLE metrics_local AS SELECT * FROM metrics;",
    )
    .unwrap();
    c.execute("SELECT health_score.set_model('long', $1::text::jsonb)", &[&MODEL]).unwrap();
    let score_agg = format!(
        "SELECT m.account, health_score.score_agg('{MODEL}'::jsonb, m.key, m.value),
                health_score.score_agg('long', CASE WHEN m.key = 'tickets' THEN 'plan' ELSE m.key END,
                                       CASE WHEN m.key = 'tickets' THEN m.label ELSE m.value::text END)
           FROM metrics m GROUP BY 1 ORDER BY 1"
    );
    let distributed = text_rows(&mut c, &score_agg);
    assert_eq!(distributed.len(), 2000);
    assert_eq!(distributed, text_rows(&mut c, &score_agg.replace("FROM metrics m", "FROM metrics_local m")));
    for query in [
        score_agg.as_str(),
        auc.as_str(),
        "SELECT a.region, health_score.trend(timestamptz '2026-01-01' + (a.id % 30) * interval '1 day', a.logins) FROM accounts a GROUP BY 1",
    ] {
        let plan = text_rows(&mut c, &format!("EXPLAIN (VERBOSE) {query}")).join("\n");
        assert!(plan.contains("worker_partial_agg") && plan.contains("coord_combine_agg"), "{plan}");
    }
}

/// `parent_health`, `backtest`'s aggregate and the fits' and `suggest`'s aggregates keep `bytea`
/// states too: grouped by a column other than the distribution column (or not grouped), each
/// worker aggregates its shards and the coordinator combines the states; `fit` (weights, and
/// weights with shapes), `fit_report`, `calibrate` and `suggest` over a distributed source
/// return what they return over the plain copy.
#[test]
#[ignore = "needs the installed extension and Citus; scripts/test.sh runs it"]
fn citus_b4_parent_health_backtest_and_the_fits_aggregate_partially_on_the_workers() {
    let Some(citus) = citus() else { return };
    let mut c = citus.connect();
    accounts(&mut c);
    // weighted sums depend on the order partial states are combined in: compared to 1e-9
    let parent = format!(
        "SELECT region, round((p).score::numeric, 9), (p).band, (p).children, (p).left_out, (p).total_weight,
                (p).lowest_child, (p).lowest_score, (p).children_per_band
           FROM (SELECT a.region,
                        health_score.parent_health('{MODEL}'::jsonb, a.id::text, health_score.score('{MODEL}'::jsonb, a),
                                                   CASE WHEN a.id % 10 = 0 THEN NULL ELSE 1 + a.id % 3 END) AS p
                   FROM accounts a GROUP BY 1) s
          ORDER BY 1"
    );
    same_as_single_node(&mut c, &parent);
    let backtest = format!(
        "SELECT a.plan, health_score_internal._backtest(health_score.score('{MODEL}'::jsonb, a),
                                                        health_score.band('{MODEL}'::jsonb, a),
                                                        CASE health_score.band('{MODEL}'::jsonb, a) WHEN 'red' THEN 1 ELSE 2 END,
                                                        a.churned)
           FROM accounts a GROUP BY 1 ORDER BY 1"
    );
    same_as_single_node(&mut c, &backtest);
    let fit_rows = format!(
        "SELECT a.region, health_score_internal._fit(health_score_internal._fit_row('{MODEL}'::jsonb, false, a), a.churned, NULL)
           FROM accounts a GROUP BY 1 ORDER BY 1"
    );
    same_as_single_node(&mut c, &fit_rows);
    for query in [parent.as_str(), backtest.as_str(), fit_rows.as_str()] {
        let plan = text_rows(&mut c, &format!("EXPLAIN (VERBOSE) {query}")).join("\n");
        assert!(plan.contains("worker_partial_agg") && plan.contains("coord_combine_agg"), "{plan}");
    }
    // the functions that run these aggregates, over the distributed table and over its copy
    let calls = [
        "SELECT health_score.fit($1::text::jsonb, '{source}', 'churned')::text",
        "SELECT health_score.fit($1::text::jsonb, '{source}', 'churned', '{\"shapes\": true}')::text",
        "SELECT string_agg(r::text, ';' ORDER BY r::text)
           FROM health_score.fit_report($1::text::jsonb, '{source}', 'churned', '{\"holdout\": 0.3, \"key_column\": \"id\"}') r",
        "SELECT health_score.calibrate($1::text::jsonb, '{source}', 'churned')::text",
        "SELECT string_agg(s::text, ';' ORDER BY s.rank)
           FROM health_score.suggest($1::text::jsonb, '{source}', 'churned', '{\"key_column\": \"id\"}') s",
    ];
    for call in calls {
        let run = |c: &mut Client, source: &str| -> String {
            c.query_one(&call.replace("{source}", source), &[&MODEL]).unwrap().get(0)
        };
        let (distributed, local) = (run(&mut c, "accounts"), run(&mut c, "accounts_local"));
        assert!(distributed.len() > 20, "{call}: {distributed}");
        assert_eq!(distributed, local, "{call}");
    }
}

/// On a worker, the functions that keep the cluster's own state (the registry, schedules,
/// generated views, the history's settings, the alert queue, CSM inputs, snapshots) refuse with
/// 0A000, naming themselves and the coordinator; on the coordinator they run.
#[test]
#[ignore = "needs the installed extension and Citus; scripts/test.sh runs it"]
fn citus_b3_coordinator_only_functions_say_so_on_a_worker() {
    let Some(citus) = citus() else { return };
    let mut c = citus.connect();
    accounts(&mut c);
    c.execute("SELECT health_score.set_model('here', $1::text::jsonb)", &[&MODEL]).unwrap();
    let mut worker = node_connect("worker1", citus.workers[0], "hs_citus");
    let calls = [
        ("set_model", "SELECT health_score.set_model('w', '{\"components\": [{\"name\": \"a\", \"weight\": 1, \"normalize\": {\"type\": \"linear\", \"min\": 0, \"max\": 1}}]}')"),
        ("schedule", "SELECT health_score.schedule('here', 'pg_class', 'oid', '0 3 * * *')"),
        ("unschedule", "SELECT health_score.unschedule(1)"),
        ("create_view", "SELECT health_score.create_view('v', 'here', 'pg_class', 'oid')"),
        ("drop_view", "SELECT health_score.drop_view('pg_class')"),
        ("refresh_views", "SELECT health_score.refresh_views('here')"),
        ("set_retention", "SELECT health_score.set_retention('here', '400 days')"),
        ("apply_retention", "SELECT * FROM health_score.apply_retention()"),
        ("set_partitioning", "SELECT health_score.set_partitioning('here', 'month')"),
        ("set_alert_rule", "SELECT health_score.set_alert_rule('here', 'r', 'band_worsened')"),
        ("drop_alert_rule", "SELECT health_score.drop_alert_rule('here', 'r')"),
        ("claim_alert_events", "SELECT * FROM health_score.claim_alert_events('mailer')"),
        ("complete_alert_event", "SELECT health_score.complete_alert_event(1, 'mailer')"),
        ("acknowledge_alert_event", "SELECT health_score.acknowledge_alert_event(1)"),
        ("resolve_alert_event", "SELECT health_score.resolve_alert_event(1)"),
        ("set_manual_input", "SELECT health_score.set_manual_input('here', 'a1', 'logins', '3', 'call')"),
        ("clear_manual_input", "SELECT health_score.clear_manual_input('here', 'a1', 'logins')"),
        ("set_band_override", "SELECT health_score.set_band_override('here', 'a1', 'red', 'call')"),
        ("clear_band_override", "SELECT health_score.clear_band_override('here', 'a1')"),
        ("snapshot", "SELECT health_score.snapshot('here', 'pg_class', 'oid')"),
        ("rescore", "SELECT health_score.rescore('here', 1, now() - interval '1 day', now())"),
        ("distribute", "SELECT health_score.distribute()"),
        ("undistribute", "SELECT health_score.undistribute()"),
        ("refresh_current_state", "SELECT health_score.refresh_current_state()"),
    ];
    for (name, call) in calls {
        let err = worker.batch_execute(call).expect_err(call);
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), "0A000", "{call}: {db:?}");
        assert!(db.message().starts_with(&format!("{name} runs on the Citus coordinator only")), "{call}: {db:?}");
        assert!(db.hint().is_some_and(|h| h.contains("connect to the coordinator")), "{call}: {db:?}");
    }
    // scoring on a worker is not refused: the workers score in the coordinator's task queries
    let score: f64 = worker
        .query_one("SELECT health_score.score($1::text::jsonb, '{\"logins\": 20}'::jsonb)", &[&MODEL])
        .unwrap()
        .get(0);
    assert!(score > 0.0);
    // the coordinator is its group 0
    c.batch_execute("SELECT health_score_internal._require_coordinator('anything')").unwrap();
    c.batch_execute("SELECT health_score.set_retention('here', '400 days')").unwrap();
}

/// Rows that reach the workers without their column names (a subquery's row, `to_jsonb` of a
/// view's row) are refused with 42703 and a hint, where they would have scored as missing.
#[test]
#[ignore = "needs the installed extension and Citus; scripts/test.sh runs it"]
fn citus_c_rows_without_column_names_are_refused() {
    let Some(citus) = citus() else { return };
    let mut c = citus.connect();
    accounts(&mut c);
    c.batch_execute("CREATE OR REPLACE VIEW accounts_view AS SELECT id, logins, plan FROM accounts").unwrap();
    for q in [
        "SELECT avg(health_score.score($m${MODEL}$m$::jsonb, s)) FROM (SELECT id, logins, plan FROM accounts) s",
        "SELECT avg(health_score.score($m${MODEL}$m$::jsonb, to_jsonb(v))) FROM accounts_view v",
        "SELECT avg(health_score.score($m${MODEL}$m$::jsonb, to_jsonb(s))) FROM (SELECT id, logins FROM accounts) s",
    ] {
        let err = c.batch_execute(&q.replace("{MODEL}", MODEL)).expect_err(q);
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), "42703", "{q}: {db:?}");
        assert!(db.hint().is_some_and(|h| h.contains("score('m', a)")), "{q}: {db:?}");
    }
}

/// The same rows in a database of the coordinator's server without Citus: a single node to
/// compare a distributed history with.
fn single_node(citus: &Citus) -> Client {
    let mut postgres = node_connect("coordinator", citus.coordinator, "postgres");
    postgres.batch_execute("DROP DATABASE IF EXISTS hs_single").unwrap();
    postgres.batch_execute("CREATE DATABASE hs_single").unwrap();
    let mut single = node_connect("coordinator", citus.coordinator, "hs_single");
    single
        .batch_execute(
            "CREATE EXTENSION health_score;
             CREATE TABLE accounts AS SELECT * FROM (SELECT 1) s WHERE false",
        )
        .unwrap();
    single
}

/// Both databases give the same rows.
fn same_in_both(distributed: &mut Client, single: &mut Client, sql: &str) -> usize {
    let d = text_rows(distributed, sql);
    let s = text_rows(single, sql);
    assert_eq!(d, s, "{sql}");
    d.len()
}

/// The history distributed by `distribute` (snapshots written on the workers, the current state
/// beside them, the registry replicated) reads back as a single node's: snapshots of a
/// distributed source with band hysteresis, a band override, a replaced and a back-filled
/// snapshot, a new version in a new month's partition, a rescore, a change by hand and
/// retention; then `undistribute` brings it all back to the coordinator, triggers included,
/// and leaves no shard on the workers.
#[test]
#[ignore = "needs the installed extension and Citus; scripts/test.sh runs it"]
fn citus_c2_a_distributed_history_reads_as_a_single_node() {
    let Some(citus) = citus() else { return };
    let mut c = citus.connect();
    accounts(&mut c);
    let mut single = single_node(citus);
    single.batch_execute("DROP TABLE accounts").unwrap();
    let rows = text_rows(&mut c, "SELECT count(*) FROM accounts");
    single
        .batch_execute(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, region text, logins int, seats_used float8, plan text,
                                    tickets int, churned boolean);
             INSERT INTO accounts
             SELECT g, (ARRAY['north', 'south', 'east'])[1 + g % 3], (g * 7919) % 50, ((g * 104729) % 1000) / 1000.0,
                    CASE WHEN g % 4 = 0 THEN 'free' ELSE 'pro' END, CASE WHEN g % 9 = 0 THEN NULL ELSE g % 12 END,
                    (g * 31) % 7 < 2
               FROM generate_series(1, 2000) g;",
        )
        .unwrap();
    assert_eq!(rows, text_rows(&mut single, "SELECT count(*) FROM accounts"));
    let hysteresis = MODEL.replacen("{\"bands\"", "{\"band_hysteresis\": 4, \"bands\"", 1);
    // a source distributed by Citus needs the registry on the workers
    c.execute("SELECT health_score.set_model('hist', $1::text::jsonb)", &[&hysteresis]).unwrap();
    let err = c.batch_execute("SELECT health_score.snapshot('hist', 'accounts', 'id', '2026-01-01')").unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert!(
        db.code().code() == "0A000" && db.hint().is_some_and(|h| h.contains("health_score.distribute()")),
        "{db:?}"
    );
    // so does a model named in a LATERAL call (band_report's), and the worker says what to do
    let err = c.batch_execute("SELECT * FROM health_score.band_report('hist', 'accounts', 'churned')").unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert!(
        db.code().code() == "42704" && db.hint().is_some_and(|h| h.contains("health_score.distribute()")),
        "{db:?}"
    );
    c.batch_execute("SELECT health_score.distribute(shard_count => 6)").unwrap();
    c.batch_execute("SELECT health_score.distribute()").unwrap(); // a second call changes nothing
    single.execute("SELECT health_score.set_model('hist', $1::text::jsonb)", &[&hysteresis]).unwrap();
    let v2 = hysteresis.replace("\"max\": 40", "\"max\": 30");
    for db in [&mut c, &mut single] {
        db.batch_execute(
            "DROP TABLE IF EXISTS churns;
             CREATE TABLE churns AS
             SELECT id::text AS account, date '2026-01-02' + (id % 40)::int AS churned_on FROM accounts WHERE id % 10 = 3;
             CREATE OR REPLACE VIEW accounts_some AS SELECT * FROM accounts WHERE id % 4 <> 1",
        )
        .unwrap();
    }
    let steps = [
        "SELECT health_score.set_alert_rule('hist', 'fell', 'band_worsened')",
        "SELECT health_score.set_alert_rule('hist', 'drop', 'score_drop', 4, '30 days')",
        "SELECT health_score.snapshot('hist', 'accounts', 'id', '2026-01-01', keep_inputs => false)",
        "UPDATE accounts SET logins = (logins * 3 + id) % 50 WHERE id % 5 = 0",
        "SELECT health_score.set_band_override('hist', '10', 'green', 'test', '2030-01-01')",
        "SELECT health_score.snapshot('hist', 'accounts', 'id', '2026-01-08')",
        "UPDATE accounts SET tickets = (coalesce(tickets, 0) + id) % 12 WHERE id % 7 = 0",
        // the same time again: replaced
        "SELECT health_score.snapshot('hist', 'accounts', 'id', '2026-01-08')",
        // and again from a source without a quarter of the entities: theirs stay as they were
        // and are not counted among the worsened
        "UPDATE accounts SET logins = (logins + 23) % 50 WHERE id % 4 <> 3",
        "SELECT health_score.snapshot('hist', 'accounts_some', 'id', '2026-01-08')",
        // before the latest: between the two
        "SELECT health_score.snapshot('hist', 'accounts', 'id', '2026-01-04', keep_inputs => false)",
        "SELECT health_score.set_model('hist', $V2$)",
        "UPDATE accounts SET logins = (logins + 17) % 50 WHERE id % 3 = 0",
        "SELECT health_score.snapshot('hist', 'accounts', 'id', '2026-02-01')",
        "SELECT health_score.rescore('hist', 2, '2026-01-01', '2026-01-05')",
    ];
    for step in steps {
        let step = step.replace("$V2$", &format!("$v${v2}$v$::jsonb"));
        same_in_both(&mut c, &mut single, &step);
    }
    let partitions: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_dist_partition d JOIN pg_inherits i ON i.inhrelid = d.logicalrelid
              WHERE i.inhparent = 'health_score_internal.score_rows'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(partitions, 2, "each month's partition is distributed");
    let readers = [
        "SELECT model, model_version, entity_key, scored_at, score, band, band_rank, coverage, segment, components, inputs
           FROM health_score.scores ORDER BY model, entity_key, scored_at",
        "SELECT * FROM health_score.latest ORDER BY model, entity_key",
        "SELECT * FROM health_score.history ORDER BY model, entity_key, scored_at",
        "SELECT model, scored_at, model_version, rows_written, worsened FROM health_score.snapshots ORDER BY 1, 2",
        "SELECT * FROM health_score.alerts('hist', 3, '1 day')",
        "SELECT * FROM health_score.alerts('hist', 0, '0 days')",
        "SELECT * FROM health_score.drivers('hist', '10', '2026-01-01', '2026-02-01')",
        "SELECT model, entity_key, scored_at, score, band, model_band FROM health_score.manual_applied ORDER BY 1, 2, 3",
        "SELECT entity_key, n, first_at, last_at, round(delta::numeric, 9) FROM health_score.trends('hist', '90 days', '2026-02-02') ORDER BY 1",
        "SELECT model, rule, entity_key, status, scored_at, baseline_at, score, baseline_score, band, baseline_band,
                baseline_rank, coverage, fired
           FROM health_score.alert_events ORDER BY model, rule, entity_key, scored_at",
        "SELECT scored_at, accounts, churned, round(churn_rate::numeric, 12), round(auc::numeric, 12), bands
           FROM health_score.backtest('hist', 'churns', 'account', 'churned_on', '30 days')",
    ];
    for q in readers {
        assert!(same_in_both(&mut c, &mut single, q) > 0, "{q}");
    }
    // the partitions with their rows as counted (every shard's, summed) and their sizes on the workers
    for client in [&mut c, &mut single] {
        client.batch_execute("ANALYZE health_score_internal.score_rows").unwrap();
    }
    let partitions = "SELECT model, from_at, to_at, partition_name, estimated_rows, drop_after
                        FROM health_score.history_partitions ORDER BY 1, 2";
    assert_eq!(same_in_both(&mut c, &mut single, partitions), 2);
    for row in
        c.query("SELECT partition_name, estimated_rows, bytes FROM health_score.history_partitions", &[]).unwrap()
    {
        let (name, estimated, bytes): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
        let counted: i64 =
            c.query_one(&format!("SELECT count(*) FROM health_score_internal.{name}"), &[]).unwrap().get(0);
        assert_eq!(estimated, counted, "{name}: every shard's rows, summed");
        assert!(bytes > 65536, "{name}: its shards' bytes, {bytes}");
    }
    // a reader (a BI tool's login, which Citus also uses on the workers) reads the list and the history
    c.batch_execute(
        "DROP ROLE IF EXISTS hs_bi; CREATE ROLE hs_bi LOGIN; GRANT health_score_reader TO hs_bi; SET ROLE hs_bi",
    )
    .unwrap();
    let listed = text_rows(
        &mut c,
        "SELECT count(*), count(*) FILTER (WHERE estimated_rows > 0 AND bytes > 65536) FROM health_score.history_partitions",
    );
    let latest = text_rows(&mut c, "SELECT count(*) FROM health_score.latest");
    c.batch_execute("RESET ROLE").unwrap();
    assert_eq!(listed, ["2|2"]);
    assert_eq!(latest, text_rows(&mut c, "SELECT count(*) FROM health_score.latest"));
    // the proving functions over the distributed source (their LATERAL calls name the model)
    for q in [
        "SELECT * FROM health_score.band_report('hist', 'accounts', 'churned')",
        "SELECT accounts, churned, round(auc::numeric, 12), round(log_loss::numeric, 9)
           FROM health_score.evaluate('hist', 'accounts', 'churned')",
        // a registered model in an aggregate's transition function, on the workers
        "SELECT region, (p).children, round((p).score::numeric, 9), (p).band, (p).lowest_child, (p).children_per_band
           FROM (SELECT a.region, health_score.parent_health('hist', a.id::text, health_score.score('hist', a), 1) AS p
                   FROM accounts a GROUP BY 1) s
          ORDER BY 1",
        "SELECT health_score.fit('hist', 'accounts', 'churned')::text",
        "SELECT health_score.calibrate('hist', 'accounts', 'churned')::text",
    ] {
        assert!(same_in_both(&mut c, &mut single, q) > 0, "{q}");
    }
    // a generated view over the distributed source (its LATERAL call names the model)
    same_in_both(&mut c, &mut single, "SELECT health_score.create_view('hist_now', 'hist', 'accounts', 'id')");
    assert_eq!(same_in_both(&mut c, &mut single, "SELECT * FROM hist_now ORDER BY id"), 2000);
    // a model named anywhere in a query reaches the workers through the replicated registry
    same_in_both(
        &mut c,
        &mut single,
        "SELECT a.id, e.* FROM accounts a, LATERAL health_score.explain('hist', to_jsonb(a)) e ORDER BY 1, 2",
    );
    // changes by hand: on the history's table, then the current state recomputed
    let err = c.batch_execute("DELETE FROM health_score.scores WHERE entity_key = '3'").unwrap_err();
    assert!(err.as_db_error().is_some_and(|e| e.message().contains("cannot modify views")), "{err:?}");
    c.batch_execute(
        "DELETE FROM health_score_internal.score_rows WHERE entity_key IN ('3', '4') AND scored_at = '2026-02-01';
         SELECT health_score.refresh_current_state('hist')",
    )
    .unwrap();
    single
        .batch_execute("DELETE FROM health_score.scores WHERE entity_key IN ('3', '4') AND scored_at = '2026-02-01'")
        .unwrap();
    for q in readers {
        same_in_both(&mut c, &mut single, q);
    }
    // retention drops January's partition on both
    same_in_both(
        &mut c,
        &mut single,
        "SELECT health_score.set_retention('hist', '20 days'); SELECT * FROM health_score.apply_retention('hist', '2026-02-25')",
    );
    same_in_both(&mut c, &mut single, readers[1]);
    same_in_both(&mut c, &mut single, readers[0]);

    c.batch_execute("SELECT health_score.undistribute()").unwrap();
    for q in readers {
        same_in_both(&mut c, &mut single, q);
    }
    let citus_tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::regclass::text LIKE 'health_score%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(citus_tables, 0);
    let triggers: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid IN ('health_score_internal.score_rows'::regclass, 'health_score.scores'::regclass)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(triggers, 5, "the history's triggers and the view's are back");
    for (node, port) in ["worker1", "worker2"].into_iter().zip(citus.workers) {
        let mut worker = node_connect(node, port, "hs_citus");
        worker.batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'").unwrap();
        let left: Vec<String> = text_rows(
            &mut worker,
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'health_score_internal' AND c.relkind IN ('r', 'p')
                AND c.relname ~ '^(score_rows|current_state|model_replica)_'",
        );
        assert!(left.is_empty(), "left on the worker: {left:?}");
    }
    // the coordinator's own history again: a change through the view keeps the current state
    same_in_both(&mut c, &mut single, "DELETE FROM health_score.scores WHERE entity_key = '5'");
    same_in_both(&mut c, &mut single, readers[1]);
    same_in_both(
        &mut c,
        &mut single,
        "CREATE TABLE accounts_now AS SELECT * FROM accounts;
         SELECT health_score.snapshot('hist', 'accounts_now', 'id', '2026-02-08', keep_inputs => false)",
    );
    same_in_both(&mut c, &mut single, readers[0]);
    same_in_both(&mut c, &mut single, readers[1]);
}

/// A worker added after `set_model`, with shards moved to it, scores with the registered
/// model as the others do: in the select list nothing of the registry has to reach it, and a
/// model named in a `LATERAL` call is found in the registry `distribute` replicated, which
/// Citus copies to the new worker before its shards.
#[test]
#[ignore = "needs the installed extension and Citus; scripts/test.sh runs it"]
fn citus_d_a_worker_added_after_set_model_scores_too() {
    let Some(citus) = citus() else { return };
    let mut c = citus.connect();
    accounts(&mut c);
    c.execute("SELECT health_score.set_model('added', $1::text::jsonb)", &[&MODEL]).unwrap();
    c.batch_execute("SELECT health_score.distribute(history => false)").unwrap();
    let port = free_port();
    fresh_node("worker3", port);
    c.execute("SELECT citus_add_node('127.0.0.1', $1)", &[&i32::from(port)]).unwrap();
    c.batch_execute("SELECT rebalance_table_shards('accounts', shard_transfer_mode => 'block_writes')").unwrap();
    let on_new: i64 = c
        .query_one(
            "SELECT count(*) FROM citus_shards WHERE table_name = 'accounts'::regclass AND nodeport = $1",
            &[&i32::from(port)],
        )
        .unwrap()
        .get(0);
    assert!(on_new > 0, "no shard moved to the new worker");
    same_as_single_node(&mut c, "SELECT a.id, health_score.score('added', a) FROM accounts a ORDER BY a.id");
    same_as_single_node(&mut c, "SELECT a.id, health_score.band('added', to_jsonb(a)) FROM accounts a ORDER BY a.id");
    same_as_single_node(
        &mut c,
        "SELECT a.id, e.* FROM accounts a, LATERAL health_score.explain('added', to_jsonb(a)) e ORDER BY 1, 2",
    );
    c.batch_execute("SELECT health_score.undistribute()").unwrap();
    // DROP EXTENSION ... CASCADE takes a distributed history with it, shards included, on
    // every node
    for step in [
        "SELECT health_score.distribute()",
        "SELECT health_score.snapshot('added', 'accounts_local', 'id', '2026-03-01', keep_inputs => false)",
        "DROP EXTENSION health_score CASCADE",
    ] {
        c.batch_execute(step).unwrap();
    }
    let citus_tables: i64 = c
        .query_one("SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'health_score%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(citus_tables, 0);
    for (node, port) in [("worker1", citus.workers[0]), ("worker2", citus.workers[1]), ("worker3", port)] {
        let mut worker = node_connect(node, port, "hs_citus");
        worker.batch_execute("SET citus.show_shards_for_app_name_prefixes = '*'").unwrap();
        let left = text_rows(
            &mut worker,
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE 'health_score%'",
        );
        assert!(left.is_empty(), "left on {node}: {left:?}");
    }
    stop_citus();
}
