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
        Some("id:integer,score:double precision,band:text,coverage:double precision,segment:text,usage_points:double precision,logins_points:double precision,seats_points:double precision,nps_points:double precision,overdue_points:double precision")
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
        Some("id,score,band,coverage,segment,usage_points,logins_points,seats_points,nps_points")
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
