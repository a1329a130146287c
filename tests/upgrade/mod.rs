//! The upgrade test (docs/upgrading.md): every frozen version in `sql/install/` is created with
//! the current library, filled as a user would (`fill.sql`), dumped, and updated with
//! `ALTER EXTENSION health_score UPDATE`. Then
//! - the catalog of the updated extension must equal a fresh install's, fact for fact
//!   (`catalog.sql`: every member with its definition, owner, ACL, comment, columns,
//!   constraints, indexes, triggers, initial privileges and `pg_extension_config_dump`
//!   registrations); a missing or wrong step in an upgrade script shows as the facts that differ;
//! - the user's data must read back the same through the extension (`read.sql`), and keep
//!   working (a new model version regenerates the view, a new snapshot is taken);
//! - the dump restores into a new database by the documented procedure (create the dump's
//!   version, `pg_restore`, update) and reads back the same;
//! - a pg_cron schedule made in the old version survives the update (where pg_cron runs);
//! - the new library keeps rewriting the row forms of an install not yet updated, and a role
//!   given the schema directly keeps reaching the internals after the update.

use std::collections::BTreeSet;
use std::process::Command;

use super::{bin, cluster, cluster_dir, column, connect, port, psql, recreate, root, run};

const DEFAULT_VERSION: &str = env!("CARGO_PKG_VERSION");

fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The frozen versions, oldest first: `sql/install/health_score--<version>.sql`.
fn frozen_versions() -> Vec<String> {
    let mut versions: Vec<String> = std::fs::read_dir(root().join("sql/install"))
        .expect("sql/install exists")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            Some(name.strip_prefix("health_score--")?.strip_suffix(".sql")?.to_string())
        })
        .filter(|v| !v.contains("--"))
        .collect();
    versions.sort_by_key(|v| version_key(v));
    versions
}

/// Runs a script with psql; any ERROR fails the test, showing the output.
fn psql_ok(db: &str, sql: &str) -> String {
    let out = psql(db, sql);
    assert!(!out.contains("ERROR:"), "psql in {db} failed:\n{out}");
    out
}

/// The catalog facts of the extension, without the privileges fill.sql granted the BI role
/// on its functions (a user's grants, which a fresh install does not have).
fn catalog(db: &str) -> BTreeSet<String> {
    let mut c = connect(db);
    c.batch_execute(
        "DO $$ DECLARE f regprocedure; BEGIN
             FOR f IN SELECT p.oid FROM pg_proc p WHERE p.pronamespace IN ('health_score'::regnamespace, 'health_score_internal'::regnamespace)
                         AND p.proacl::text LIKE '%hs_upgrade_bi=%' LOOP
                 EXECUTE format('REVOKE ALL ON FUNCTION %s FROM hs_upgrade_bi', f);
             END LOOP;
         END $$",
    )
    .unwrap();
    let sql = std::fs::read_to_string(root().join("tests/upgrade/catalog.sql")).unwrap();
    c.query(sql.as_str(), &[]).unwrap().iter().map(|r| r.get::<_, String>(0)).collect()
}

/// The facts on only one side, at most 40 of them, for a readable failure.
fn catalog_difference(updated: &BTreeSet<String>, fresh: &BTreeSet<String>) -> String {
    let mut out = String::new();
    for (sign, only) in [("-", updated.difference(fresh)), ("+", fresh.difference(updated))] {
        for fact in only.take(40) {
            out.push_str(&format!("{sign} {fact}\n"));
        }
    }
    out
}

/// Where two outputs first differ, with a few lines around it.
fn first_difference(before: &str, after: &str) -> String {
    let (b, a): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let i = b.iter().zip(&a).position(|(x, y)| x != y).unwrap_or(b.len().min(a.len()));
    let window = |lines: &[&str]| lines[i.saturating_sub(3)..(i + 4).min(lines.len())].join("\n");
    format!("line {}:\nbefore:\n{}\nafter:\n{}", i + 1, window(&b), window(&a))
}

fn extension_version(db: &str) -> String {
    connect(db).query_one("SELECT extversion FROM pg_extension WHERE extname = 'health_score'", &[]).unwrap().get(0)
}

fn dump(db: &str, file: &std::path::Path) {
    run(Command::new(bin("pg_dump"))
        .args(["-Fc", "-U", "postgres", "-p", &port().to_string(), "-h"])
        .arg(cluster_dir())
        .arg("-f")
        .arg(file)
        .arg(db));
}

/// docs/upgrading.md, "Restoring a dump of an earlier version": create the extension at the
/// dump's version, restore everything but the extension and its schema (which that created),
/// then update.
fn restore_by_the_documented_procedure(file: &std::path::Path, db: &str, version: &str) {
    let mut admin = connect("postgres");
    recreate(&mut admin, db);
    connect(db).batch_execute(&format!("CREATE EXTENSION health_score VERSION '{version}'")).unwrap();
    // pg_restore -l old.dump | grep -Ev '<the pattern below>' > old.list
    let listing = run(Command::new(bin("pg_restore")).arg("-l").arg(file));
    let created = |line: &str| {
        [
            "SCHEMA - health_score ",
            "EXTENSION - health_score ",
            "COMMENT - SCHEMA health_score ",
            "COMMENT - EXTENSION health_score ",
        ]
        .iter()
        .any(|item| line.contains(item))
    };
    let kept: String = listing.lines().filter(|l| !created(l)).map(|l| format!("{l}\n")).collect();
    assert_eq!(listing.lines().count() - kept.lines().count(), 4, "the dump's listing:\n{listing}");
    let list = file.with_extension("list");
    std::fs::write(&list, kept).unwrap();
    run(Command::new(bin("pg_restore"))
        .args(["--exit-on-error", "-U", "postgres", "-p", &port().to_string(), "-h"])
        .arg(cluster_dir())
        .args(["-d", db, "-L"])
        .arg(&list)
        .arg(file));
    connect(db).batch_execute("ALTER EXTENSION health_score UPDATE").unwrap();
}

#[test]
#[ignore = "needs the installed extension and its frozen scripts; scripts/test.sh runs it"]
fn every_frozen_version_updates_to_the_default_like_a_fresh_install() {
    cluster();
    let versions = frozen_versions();
    assert!(versions.iter().any(|v| v == "0.1.0"), "sql/install lacks 0.1.0: {versions:?}");
    let fill = std::fs::read_to_string(root().join("tests/upgrade/fill.sql")).unwrap();
    let read = std::fs::read_to_string(root().join("tests/upgrade/read.sql")).unwrap();

    let mut admin = connect("postgres");
    recreate(&mut admin, "hs_upgrade_fresh");
    connect("hs_upgrade_fresh").batch_execute("CREATE EXTENSION health_score").unwrap();
    assert_eq!(extension_version("hs_upgrade_fresh"), DEFAULT_VERSION);
    let fresh = catalog("hs_upgrade_fresh");
    assert!(fresh.iter().any(|f| f.starts_with("member function health_score.score(")), "catalog.sql found no members");

    let mut failures = Vec::new();
    for version in versions.iter().filter(|v| v.as_str() != DEFAULT_VERSION) {
        let db = format!("hs_upgrade_from_{}", version.replace('.', "_"));
        recreate(&mut admin, &db);
        connect(&db).batch_execute(&format!("CREATE EXTENSION health_score VERSION '{version}'")).unwrap();
        assert_eq!(&extension_version(&db), version);
        psql_ok(&db, &fill);
        let before = psql_ok(&db, &read);
        let file = cluster_dir().join(format!("upgrade-{version}.dump"));
        dump(&db, &file);

        connect(&db).batch_execute("ALTER EXTENSION health_score UPDATE").unwrap();
        assert_eq!(extension_version(&db), DEFAULT_VERSION, "ALTER EXTENSION UPDATE from {version}");
        let after = psql_ok(&db, &read);
        if before != after {
            failures.push(format!(
                "{version}: the data reads differently after the update, {}",
                first_difference(&before, &after)
            ));
        }
        // the generated view was regenerated (it names the override segment_override) and is the
        // user's view still: no member of the extension, its grant kept
        let regenerated: Vec<String> = column(
            &mut connect(&db),
            "SELECT format('%s %s %s', a.attname, has_table_privilege('hs_upgrade_bi', c.oid, 'SELECT'),
                           EXISTS (SELECT FROM pg_depend d WHERE d.deptype = 'e'
                                      AND d.objid IN (c.oid, c.reltype, (SELECT t.typarray FROM pg_type t WHERE t.oid = c.reltype))))
               FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
              WHERE c.relname = 'upgrade_account_health' AND a.attname LIKE 'segment%'",
        );
        if regenerated != ["segment_override t f"] {
            failures.push(format!("{version}: the generated view was not regenerated as the user's: {regenerated:?}"));
        }
        // a dump of the updated install restores as it is (its history partitions and privileges
        // included; before catalog(), which revokes the direct grant) into a database without the extension
        let updated_file = cluster_dir().join(format!("updated-from-{version}.dump"));
        dump(&db, &updated_file);
        let copy = format!("hs_upgrade_copy_{}", version.replace('.', "_"));
        recreate(&mut admin, &copy);
        run(Command::new(bin("pg_restore"))
            .args(["--exit-on-error", "-U", "postgres", "-p", &port().to_string(), "-h"])
            .arg(cluster_dir())
            .args(["-d", &copy])
            .arg(&updated_file));
        let copied = psql_ok(&copy, &read);
        if before != copied {
            failures.push(format!(
                "{version}: a dump of the updated install restores differently, {}",
                first_difference(&before, &copied)
            ));
        }
        admin.batch_execute(&format!("DROP DATABASE {copy}")).unwrap();
        let updated = catalog(&db);
        if updated != fresh {
            failures.push(format!(
                "{version}: the updated catalog differs from a fresh install's (- updated only, + fresh only):\n{}",
                catalog_difference(&updated, &fresh)
            ));
        }
        // the updated install keeps working: a new version regenerates the view, snapshots go on
        psql_ok(
            &db,
            "SET client_min_messages = warning;
             SELECT health_score.set_model('churn', config || '{\"description\": \"after the update\"}')
               FROM health_score.models WHERE name = 'churn' AND is_latest;
             SELECT health_score.snapshot('churn', 'upgrade_accounts', 'id', '2026-01-15');
             SELECT count(*) FROM upgrade_account_health;
             SELECT count(*) FROM health_score.alerts('churn', 1, '30 days');",
        );
        let shown: i32 = connect(&db)
            .query_one("SELECT model_version FROM health_score.views WHERE view_name = 'upgrade_account_health'", &[])
            .unwrap()
            .get(0);
        assert_eq!(shown, 4, "{version}: the generated view follows the version registered after the update");

        let restored = format!("hs_upgrade_restored_{}", version.replace('.', "_"));
        restore_by_the_documented_procedure(&file, &restored, version);
        assert_eq!(extension_version(&restored), DEFAULT_VERSION);
        let after_restore = psql_ok(&restored, &read);
        if before != after_restore {
            failures.push(format!(
                "{version}: a restored dump reads differently, {}",
                first_difference(&before, &after_restore)
            ));
        }
        let restored_catalog = catalog(&restored);
        if restored_catalog != fresh {
            failures.push(format!(
                "{version}: the restored and updated catalog differs from a fresh install's:\n{}",
                catalog_difference(&restored_catalog, &fresh)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A frozen script is never edited: the default version's, once frozen, is what the build
/// generates, so a change to an SQL object without a new version fails here.
#[test]
#[ignore = "needs the installed extension and its frozen scripts; scripts/test.sh runs it"]
fn the_default_version_once_frozen_is_what_the_build_installs() {
    let frozen = root().join(format!("sql/install/health_score--{DEFAULT_VERSION}.sql"));
    let Ok(frozen) = std::fs::read_to_string(&frozen) else {
        return; // not frozen yet: the version is still being written
    };
    let sharedir = run(Command::new(bin("pg_config")).arg("--sharedir"));
    let installed =
        std::path::Path::new(sharedir.trim()).join(format!("extension/health_score--{DEFAULT_VERSION}.sql"));
    let installed = std::fs::read_to_string(installed).unwrap();
    // pgrx marks each part with the source line that declares it (`-- src/lib.rs:11`), which
    // moves when the Rust around it is edited
    let without_markers = |s: &str| {
        s.lines().filter(|l| !(l.starts_with("-- src/") && l.contains(".rs:"))).collect::<Vec<_>>().join("\n")
    };
    assert!(
        without_markers(&frozen) == without_markers(&installed),
        "sql/install/health_score--{DEFAULT_VERSION}.sql differs from the script the build generates: \
         an SQL object changed without a new version"
    );
}

#[test]
#[ignore = "needs the installed extension and pg_cron; scripts/test.sh runs it"]
fn a_pg_cron_schedule_made_before_the_update_survives_it() {
    cluster();
    let mut c = connect("postgres");
    let preload: String = c.query_one("SHOW shared_preload_libraries", &[]).unwrap().get(0);
    if !preload.contains("pg_cron") {
        eprintln!("skipped: this server has no pg_cron (it exists for PostgreSQL 15 only)");
        return;
    }
    let oldest = frozen_versions().into_iter().next().unwrap();
    // pg_cron lives in the `postgres` database (cron.database_name), so this test does too
    c.batch_execute(&format!(
        "DROP EXTENSION IF EXISTS health_score CASCADE;
         CREATE EXTENSION IF NOT EXISTS pg_cron;
         SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE 'health_score %';
         CREATE EXTENSION health_score VERSION '{oldest}';
         DROP TABLE IF EXISTS upgrade_cron_accounts;
         CREATE TABLE upgrade_cron_accounts AS SELECT g AS id, g AS logins FROM generate_series(1, 10) g;
         SELECT health_score.set_model('upgrade_cron',
           '{{\"components\": [{{\"name\": \"logins\", \"weight\": 1, \"normalize\": {{\"type\": \"linear\", \"min\": 0, \"max\": 10}}}}]}}');"
    ))
    .unwrap();
    let job: i64 = c
        .query_one("SELECT health_score.schedule('upgrade_cron', 'upgrade_cron_accounts', 'id', '0 3 * * *')", &[])
        .unwrap()
        .get(0);
    let jobs = "SELECT jobid, jobname, schedule, command, database, username, active FROM cron.job ORDER BY jobid";
    let before = psql_ok("postgres", jobs);
    c.batch_execute("ALTER EXTENSION health_score UPDATE").unwrap();
    assert_eq!(extension_version("postgres"), DEFAULT_VERSION);
    assert_eq!(before, psql_ok("postgres", jobs));
    // the job's command runs in the updated version
    let command: String = c.query_one("SELECT command FROM cron.job WHERE jobid = $1", &[&job]).unwrap().get(0);
    c.batch_execute(&command).unwrap();
    let written: i64 =
        c.query_one("SELECT count(*) FROM health_score.scores WHERE model = 'upgrade_cron'", &[]).unwrap().get(0);
    assert_eq!(written, 10);
    assert!(c.query_one("SELECT health_score.unschedule($1)", &[&job]).unwrap().get::<_, bool>(0));
    c.batch_execute("DROP EXTENSION health_score CASCADE; DROP TABLE upgrade_cron_accounts;").unwrap();
}

/// Between the package's update and `ALTER EXTENSION UPDATE`, the new library serves the old
/// SQL: the planner support still rewrites the row forms (into the old schema's column
/// forms). Afterwards, a role given `USAGE` on `health_score` directly, not through
/// `health_score_reader`, still reaches the internals the functions call, now in
/// `health_score_internal`.
#[test]
#[ignore = "needs the installed extension; scripts/test.sh runs it"]
fn an_old_install_keeps_its_plans_and_its_direct_grants_across_the_update() {
    cluster();
    let mut admin = connect("postgres");
    let db = "hs_upgrade_direct_grants";
    recreate(&mut admin, db);
    let oldest = frozen_versions().into_iter().next().unwrap();
    let mut c = connect(db);
    c.batch_execute(&format!(
        "CREATE EXTENSION health_score VERSION '{oldest}';
         DO $$ BEGIN
             IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hs_upgrade_direct') THEN
                 CREATE ROLE hs_upgrade_direct;
             END IF;
         END $$;
         GRANT USAGE ON SCHEMA health_score TO hs_upgrade_direct;
         GRANT SELECT ON health_score.model_versions, health_score.scores TO hs_upgrade_direct;
         SELECT health_score.set_model('direct',
           '{{\"components\": [{{\"name\": \"logins\", \"weight\": 1, \"normalize\": {{\"type\": \"linear\", \"min\": 0, \"max\": 10}}}}]}}');
         CREATE TABLE direct_accounts AS SELECT g AS id, g::float8 AS logins FROM generate_series(1, 4) g;
         GRANT SELECT ON direct_accounts TO hs_upgrade_direct;"
    ))
    .unwrap();
    let explain = "EXPLAIN (VERBOSE, COSTS OFF) SELECT health_score.score('direct', a) FROM direct_accounts a";
    let plan = |c: &mut postgres::Client| column::<String>(c, explain).join("\n");
    assert!(plan(&mut c).contains("health_score._score_columns("), "{}", plan(&mut c));
    c.batch_execute("ALTER EXTENSION health_score UPDATE").unwrap();
    assert!(plan(&mut c).contains("health_score_internal._score_columns("), "{}", plan(&mut c));
    c.batch_execute("SET ROLE hs_upgrade_direct").unwrap();
    let scores: Vec<f64> = column(&mut c, "SELECT health_score.score('direct', a) FROM direct_accounts a ORDER BY id");
    // logins 1 to 4 on a linear 0–10 scale, out of 100
    let expected = [10.0, 20.0, 30.0, 40.0];
    assert!(scores.len() == 4 && scores.iter().zip(expected).all(|(s, e)| (s - e).abs() < 1e-9), "{scores:?}");
    // a PL/pgSQL function that calls an internal by name
    let drivers: i64 =
        c.query_one("SELECT count(*) FROM health_score.drivers('direct', '1', now(), now())", &[]).unwrap().get(0);
    assert_eq!(drivers, 0);
    c.batch_execute("RESET ROLE").unwrap();
    drop(c);
    admin.batch_execute(&format!("DROP DATABASE {db}")).unwrap();
}
