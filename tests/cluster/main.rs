//! Tests that need a server of their own, with committed transactions and several sessions.
//! They run against the installed extension in a cluster under target/, started by
//! scripts/cluster.sh; scripts/test.sh runs them with `--ignored` after `cargo pgrx install`.
//! This file is the harness (the cluster, connections, psql, one query helper); the tests are
//! laid out by concern: `registry` (dump and restore, other sessions, roles), `concurrency`,
//! `schedule` (pg_cron), `jdbc` (a BI client), `dbt` (the example project, examples/dbt),
//! `docs` (the documentation's examples against their output), `reference_checks` (random
//! models against the reference implementation, random broken models, `alerts` against plain
//! SQL), `fit`, `upgrade` (tests/upgrade/) and `security` (tests/security/, one test per
//! attack). The roles race test stays here, so that its name sorts first and it runs while
//! the fresh cluster has no roles.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};

/// A port free when the suite starts, so that another cluster on this machine cannot clash.
fn port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// target/test-cluster, or $HS_CLUSTER_DIR (scripts/test.sh has one per PostgreSQL major).
fn cluster_dir() -> PathBuf {
    root().join(std::env::var("HS_CLUSTER_DIR").unwrap_or_else(|_| "target/test-cluster".into()))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The PostgreSQL major these tests run on: 15, or $HS_PG_MAJOR (scripts/pg_bindir.sh).
fn bindir() -> &'static Path {
    static BINDIR: OnceLock<PathBuf> = OnceLock::new();
    BINDIR.get_or_init(|| {
        let major = std::env::var("HS_PG_MAJOR").unwrap_or_else(|_| "15".into());
        PathBuf::from(run(Command::new("bash").arg(root().join("scripts/pg_bindir.sh")).arg(major)).trim())
    })
}

/// pg_cron is preloaded where the server has it (Debian packages it for PostgreSQL 15 only).
fn has_pg_cron() -> bool {
    let pkglibdir = run(Command::new(bin("pg_config")).arg("--pkglibdir"));
    Path::new(pkglibdir.trim()).join("pg_cron.so").exists()
}

fn cluster() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let dir = cluster_dir();
        // a fresh cluster each run: nothing left over from an earlier one
        run(Command::new("bash").arg(root().join("scripts/cluster.sh")).arg("stop").arg(&dir));
        let _ = std::fs::remove_dir_all(&dir);
        let mut start = Command::new("bash");
        start.arg(root().join("scripts/cluster.sh")).arg("start").arg(&dir).arg(port().to_string());
        if has_pg_cron() {
            // pg_cron runs its jobs in the `postgres` database, in background workers (no network)
            start.args([
                "shared_preload_libraries = 'pg_cron'",
                "cron.database_name = 'postgres'",
                "cron.use_background_workers = on",
            ]);
        }
        run(start.arg("max_worker_processes = 16"));
    });
}

fn bin(name: &str) -> PathBuf {
    bindir().join(name)
}

/// A new database for one test, with the extension created.
fn database(name: &str) -> Client {
    cluster();
    let mut admin = connect("postgres");
    recreate(&mut admin, name);
    let mut c = connect(name);
    c.batch_execute("CREATE EXTENSION health_score").unwrap();
    c
}

fn recreate(admin: &mut Client, db: &str) {
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
}

fn connect(db: &str) -> Client {
    let dir = cluster_dir();
    Client::connect(&format!("host={} port={} user=postgres dbname={db}", dir.display(), port()), NoTls)
        .expect("connects")
}

/// A connection as a login role other than the superuser.
fn connect_as(db: &str, role: &str) -> Client {
    let dir = cluster_dir();
    Client::connect(&format!("host={} port={} user={role} dbname={db}", dir.display(), port()), NoTls)
        .expect("connects")
}

fn score(c: &mut Client, model: &str, input: &str) -> Option<f64> {
    c.query_one("SELECT health_score.score($1::text, $2::text::jsonb)", &[&model, &input]).unwrap().get(0)
}

const V1: &str =
    r#"{"components": [{"name": "logins", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}}]}"#;
const V2: &str =
    r#"{"components": [{"name": "logins", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 100}}]}"#;
const V3: &str =
    r#"{"components": [{"name": "logins", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 20}}]}"#;

/// CREATE EXTENSION in two databases at once: the second waits for the first to commit the
/// roles and then finds them. (Named to run first, while the fresh cluster has no roles yet;
/// run alone on a cluster that has them, it checks only that both databases get the extension.)
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn a_concurrent_create_extension_in_two_databases_creates_the_roles_once() {
    cluster();
    let mut admin = connect("postgres");
    recreate(&mut admin, "hs_race_a");
    recreate(&mut admin, "hs_race_b");
    let mut a = connect("hs_race_a");
    a.batch_execute("BEGIN; CREATE EXTENSION health_score").unwrap();
    let b = std::thread::spawn(|| connect("hs_race_b").batch_execute("CREATE EXTENSION health_score"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    a.batch_execute("COMMIT").unwrap();
    b.join().unwrap().expect("the second CREATE EXTENSION succeeds");
    let roles: i64 = a
        .query_one(
            "SELECT count(*) FROM pg_roles r WHERE r.rolname IN ('health_score_reader', 'health_score_admin')
                AND shobj_description(r.oid, 'pg_authid') IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(roles, 2);
    let member: bool =
        a.query_one("SELECT pg_has_role('health_score_admin', 'health_score_reader', 'MEMBER')", &[]).unwrap().get(0);
    assert!(member);
}

/// The first column of every row a query returns.
/// `pg_dump -Fc` of database `src`, restored by `pg_restore` into `dst` (made anew).
fn dump_and_restore(src: &str, dst: &str) {
    let dump = cluster_dir().join(format!("{src}.dump"));
    let host = cluster_dir();
    run(Command::new(bin("pg_dump"))
        .args(["-Fc", "-U", "postgres", "-p", &port().to_string(), "-h"])
        .arg(&host)
        .arg("-f")
        .arg(&dump)
        .arg(src));
    let mut admin = connect("postgres");
    recreate(&mut admin, dst);
    run(Command::new(bin("pg_restore"))
        .args(["-U", "postgres", "-p", &port().to_string(), "-h"])
        .arg(&host)
        .args(["-d", dst])
        .arg(&dump));
}

fn column<T: for<'a> postgres::types::FromSql<'a>>(c: &mut Client, sql: &str) -> Vec<T> {
    c.query(sql, &[]).unwrap().iter().map(|row| row.get(0)).collect()
}

/// The SQLSTATE of a statement's error; panics when there is none, as when the backend died.
fn sqlstate(e: &postgres::Error) -> String {
    match e.code() {
        Some(code) => code.code().to_string(),
        None => panic!("not an SQL error (did the backend crash?): {e}"),
    }
}

const BANDED: &str = r#"{"bands": [{"name": "red", "min": 0}, {"name": "green", "min": 50}],
    "components": [{"name": "logins", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 10}}]}"#;

fn psql(db: &str, sql: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(bin("psql"))
        .args(["-X", "-U", "postgres", "-p", &port().to_string(), "-h"])
        .arg(cluster_dir())
        // without CONTEXT lines: they name line numbers inside the extension's functions,
        // which the docs should not have to follow
        .args(["-d", db, "-v", "ON_ERROR_STOP=0", "-v", "SHOW_CONTEXT=never", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    // stdout and stderr interleave as a terminal shows them only roughly; examples that
    // fail are written one statement per block so the order is fixed
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    for line in err.lines() {
        let line = match line.strip_prefix("psql:<stdin>:") {
            Some(rest) => rest.split_once(": ").map(|(_, r)| r).unwrap_or(rest),
            None => line,
        };
        text.push_str(line);
        text.push('\n');
    }
    text
}

mod alert_queue;
mod broken_models;
mod citus;
mod concurrency;
mod csm;
mod dbt;
mod docs;
mod fit;
#[path = "../../crates/health_score_core/tests/fit_reference/mod.rs"]
mod fit_reference;
mod jdbc;
// the reference implementation of the format, shared with the core crate's property tests
#[path = "../../crates/health_score_core/tests/reference/mod.rs"]
mod reference;
mod reference_checks;
mod registry;
mod schedule;
#[path = "../security/mod.rs"]
mod security;
mod suggest;
#[path = "../upgrade/mod.rs"]
mod upgrade;
