// The `#[pg_test]`s of `src/pg/views.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL.

use pgrx::prelude::*;

use crate::pg::test_support::*;

#[pg_test]
fn generated_views_show_points_follow_new_versions_and_keep_grants() {
    setup_accounts();
    install_error_helper();
    let view = Spi::get_one::<String>(
        "SELECT health_score.create_view('public.\"we\"\"ird name\"', 'churn', 'accounts', 'id')::text",
    )
    .unwrap();
    assert_eq!(view.as_deref(), Some("\"we\"\"ird name\""));
    let columns = Spi::get_one::<String>(
        "SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum)
           FROM pg_attribute WHERE attrelid = 'public.\"we\"\"ird name\"'::regclass AND attnum > 0",
    )
    .unwrap();
    assert_eq!(
        columns.as_deref(),
        Some("id:integer,score:double precision,band:text,coverage:double precision,segment_override:text,usage_points:double precision,logins_points:double precision,seats_points:double precision,nps_points:double precision,overdue_points:double precision")
    );
    // the same scores as score(), and the top-level points add up to them
    let mismatches = Spi::get_one::<i64>(
        "SELECT count(*) FROM public.\"we\"\"ird name\" v JOIN accounts a USING (id)
          WHERE v.score IS DISTINCT FROM health_score.score('churn', a)
             OR abs(v.usage_points + v.nps_points + v.overdue_points - v.score) > 1e-9
             OR abs(v.logins_points + v.seats_points - v.usage_points) > 1e-9",
    )
    .unwrap();
    assert_eq!(mismatches, Some(0));
    let uncommented = Spi::get_one::<i64>(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.\"we\"\"ird name\"'::regclass AND attnum > 0
            AND col_description(attrelid, attnum) IS NULL",
    )
    .unwrap();
    assert_eq!(uncommented, Some(0));
    assert!(Spi::get_one::<String>("SELECT obj_description('public.\"we\"\"ird name\"'::regclass, 'pg_class')")
        .unwrap()
        .is_some());
    // identifiers are parsed, never pasted
    Spi::run("CREATE TABLE canary (x int)").unwrap();
    let (state, _) = error_of(
        "SELECT health_score.create_view('public.x AS SELECT 1; DROP TABLE canary; CREATE VIEW public.y', 'churn', 'accounts', 'id')",
    );
    assert_ne!(state, "none");
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM pg_class WHERE relname = 'canary'").unwrap(), Some(1));
    assert_eq!(error_of("SELECT health_score.create_view('v2', 'churn', 'accounts', 'no_such')").0, "42703");
    assert_eq!(error_of("SELECT health_score.create_view('v3', 'chrun', 'accounts', 'id')").0, "42704");
    // a new version without "overdue": the view follows, and keeps its grants
    Spi::run(
        "CREATE ROLE hs_test_viewer; GRANT SELECT ON public.\"we\"\"ird name\" TO hs_test_viewer;
         SELECT health_score.set_model('churn', jsonb_set(config, '{components}', (config -> 'components') - 2))
           FROM health_score.models WHERE name = 'churn' AND version = 1;",
    )
    .unwrap();
    let columns = Spi::get_one::<String>(
        "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
          WHERE attrelid = 'public.\"we\"\"ird name\"'::regclass AND attnum > 0",
    )
    .unwrap();
    assert_eq!(
        columns.as_deref(),
        Some("id,score,band,coverage,segment_override,usage_points,logins_points,seats_points,nps_points")
    );
    let still = Spi::get_one::<bool>(
        "SELECT has_table_privilege('hs_test_viewer', 'public.\"we\"\"ird name\"', 'SELECT')
            AND has_table_privilege('health_score_reader', 'public.\"we\"\"ird name\"', 'SELECT')",
    )
    .unwrap();
    assert_eq!(still, Some(true));
    assert_eq!(Spi::get_one::<i32>("SELECT model_version FROM health_score.views").unwrap(), Some(2));
    assert_eq!(Spi::get_one::<i32>("SELECT health_score.refresh_views('churn')").unwrap(), Some(1));
}

#[pg_test]
fn create_view_refuses_a_source_without_the_models_inputs_naming_every_one() {
    setup_model();
    install_error_helper();
    Spi::run(
        "CREATE TABLE thin (id int, logins text, nps text);
         CREATE TABLE wrong_types (id int, logins text, active text, nps text, overdue date);",
    )
    .unwrap();
    let (state, message) = error_of("SELECT health_score.create_view('v_thin', 'churn', 'thin', 'id')");
    assert_eq!(state, "42703");
    assert!(message.contains("has no column for the inputs \"active\", \"overdue\" of churn@1"), "{message}");
    let (state, message) = error_of("SELECT health_score.create_view('v_types', 'churn', 'wrong_types', 'id')");
    assert_eq!(state, "42804");
    assert!(message.contains("\"logins\" (text), \"active\" (text), \"overdue\" (date)"), "{message}");
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM health_score.views").unwrap(), Some(0));
    assert_eq!(
        Spi::get_one::<i64>("SELECT count(*) FROM pg_class WHERE relname IN ('v_thin', 'v_types')").unwrap(),
        Some(0)
    );
}

#[pg_test]
fn create_view_carries_source_columns_through_and_names_the_override_segment_override() {
    setup_accounts();
    install_error_helper();
    Spi::run(
        "ALTER TABLE accounts ADD COLUMN plan text DEFAULT 'smb', ADD COLUMN arr numeric DEFAULT 1000;
         COMMENT ON COLUMN accounts.arr IS 'Annual recurring revenue';
         SELECT health_score.create_view('sliced', 'churn', 'accounts', 'id', columns => '{plan, arr}');
         SELECT health_score.create_view('everything', 'churn', 'accounts', 'id', '{*}');",
    )
    .unwrap();
    let columns = |view: &str| {
        Spi::get_one::<String>(&format!(
            "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '{view}'::regclass AND attnum > 0"
        ))
        .unwrap()
        .unwrap_or_default()
    };
    let computed =
        "score,band,coverage,segment_override,usage_points,logins_points,seats_points,nps_points,overdue_points";
    assert_eq!(columns("sliced"), format!("id,plan,arr,{computed}"));
    assert_eq!(columns("everything"), format!("id,logins,active,nps,overdue,plan,arr,{computed}"));
    assert_eq!(
        Spi::get_one::<String>("SELECT col_description('sliced'::regclass, 3)").unwrap().as_deref(),
        Some("Annual recurring revenue. From public.accounts.arr")
    );
    assert_eq!(
        Spi::get_one::<i64>("SELECT sum(arr)::int8 FROM sliced WHERE plan = 'smb' AND score IS NOT NULL").unwrap(),
        Some(3000)
    );
    // the carried columns survive a new version, and '{*}' takes the source's new columns
    Spi::run(
        "ALTER TABLE accounts ADD COLUMN region text;
         SELECT health_score.set_model('churn', config) FROM health_score.models WHERE name = 'churn' AND version = 1;",
    )
    .unwrap();
    assert_eq!(columns("sliced"), format!("id,plan,arr,{computed}"));
    assert_eq!(columns("everything"), format!("id,logins,active,nps,overdue,plan,arr,region,{computed}"));
    for (columns, state) in
        [("'{nope, arr}'", "42703"), ("'{plan, plan}'", "42701"), ("'{id}'", "42701"), ("NULL", "22023")]
    {
        assert_eq!(
            error_of(&format!("SELECT health_score.create_view('bad', 'churn', 'accounts', 'id', {columns})")).0,
            state,
            "{columns}"
        );
    }
    Spi::run("ALTER TABLE accounts ADD COLUMN score int").unwrap();
    assert_eq!(error_of("SELECT health_score.create_view('bad', 'churn', 'accounts', 'id', '{score}')").0, "42701");
}

#[pg_test]
fn a_view_dropped_with_its_source_or_by_hand_takes_its_registration_with_it() {
    setup_accounts();
    install_error_helper();
    Spi::run(
        "CREATE TABLE rebuilt AS SELECT * FROM accounts;
         SELECT health_score.create_view('from_rebuilt', 'churn', 'rebuilt', 'id', '{nps}');
         SELECT health_score.create_view('by_hand', 'churn', 'accounts', 'id');
         SELECT health_score.create_view('kept', 'churn', 'accounts', 'id');",
    )
    .unwrap();
    // as dbt rebuilds a relation
    Spi::run("DROP TABLE rebuilt CASCADE; CREATE TABLE rebuilt AS SELECT * FROM accounts; DROP VIEW by_hand;").unwrap();
    assert_eq!(
        Spi::get_one::<String>("SELECT string_agg(view_name, ',' ORDER BY view_name) FROM health_score.views").unwrap(),
        Some("kept".into())
    );
    // nothing is left for a new version to trip over, and the view can be made again
    Spi::run(
        "SELECT health_score.set_model('churn', config) FROM health_score.models WHERE name = 'churn' AND version = 1;
         SELECT health_score.create_view('from_rebuilt', 'churn', 'rebuilt', 'id', '{nps}');",
    )
    .unwrap();
    assert_eq!(Spi::get_one::<i32>("SELECT health_score.refresh_views('churn')").unwrap(), Some(2));
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM from_rebuilt WHERE nps IS NOT NULL").unwrap(), Some(2));
    // other drops are untouched, and a failing lookup never stops a drop
    Spi::run("CREATE TABLE unrelated (x int); DROP TABLE unrelated;").unwrap();
}
