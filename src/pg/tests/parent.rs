// The `#[pg_test]`s of `src/pg/parent.rs`, included into its `tests` module: each runs in its own
// transaction inside a real PostgreSQL. Expected values are computed by plain SQL over the
// same rows.

use pgrx::prelude::*;

use crate::pg::test_support::*;

/// 40 parents of 1–6 children each (some with NULL scores or weights), snapshotted.
fn setup_hierarchy() {
    setup_model();
    Spi::run(
        "SET LOCAL client_min_messages = warning;
         CREATE TABLE children AS
         SELECT c AS id, 'p' || (c % 40) AS parent,
                CASE WHEN c % 11 = 0 THEN NULL ELSE (c * 7) % 25 END AS logins,
                (c * 13) % 120 AS active,
                (ARRAY['promoter', 'passive', NULL, '3.0'])[1 + c % 4] AS nps,
                c % 3 AS overdue,
                CASE WHEN c % 13 = 0 THEN NULL WHEN c % 17 = 0 THEN 0 ELSE 1000 + (c * 37) % 9000 END::float8 AS arr
           FROM generate_series(1, 150) c;
         SELECT health_score.snapshot('churn', 'children', 'id', '2026-03-01');",
    )
    .unwrap();
}

const BY_PARENT: &str = "
    SELECT c.parent, health_score.parent_health('churn', s.entity_key, s.score, c.arr, s.band, s.components) AS h
      FROM children c JOIN health_score.scores s ON s.entity_key = c.id::text AND s.model = 'churn'
     GROUP BY c.parent";

#[pg_test]
fn a_parent_is_the_weighted_average_of_its_children_and_explains_it() {
    setup_hierarchy();
    // every field against plain SQL over the same rows
    let disagreements = Spi::get_one::<i64>(&format!(
        "WITH ours AS ({BY_PARENT}),
         kids AS (SELECT c.parent, s.entity_key, s.score, s.band, s.components, c.arr,
                         s.score IS NOT NULL AND c.arr > 0 AS counted
                    FROM children c JOIN health_score.scores s ON s.entity_key = c.id::text),
         plain AS (
             SELECT parent, sum(arr * score) FILTER (WHERE counted) / sum(arr) FILTER (WHERE counted) AS score,
                    count(*) FILTER (WHERE counted) AS children, count(*) FILTER (WHERE NOT counted OR arr IS NULL) AS left_out,
                    coalesce(sum(arr) FILTER (WHERE counted), 0) AS total_weight,
                    (array_agg(entity_key ORDER BY score, entity_key) FILTER (WHERE counted))[1] AS lowest_child,
                    min(score) FILTER (WHERE counted) AS lowest_score,
                    jsonb_build_object('red', count(*) FILTER (WHERE counted AND band = 'red'),
                                       'yellow', count(*) FILTER (WHERE counted AND band = 'yellow'),
                                       'green', count(*) FILTER (WHERE counted AND band = 'green')) AS per_band
               FROM kids GROUP BY parent),
         points AS (
             SELECT k.parent, e.key AS component, sum(k.arr * (e.value ->> 'points')::float8) / sum(k.arr) AS points
               FROM kids k, jsonb_each(k.components) e WHERE k.counted GROUP BY k.parent, e.key)
         SELECT count(*) FROM ours o JOIN plain p USING (parent)
          WHERE abs((o.h).score - p.score) > 1e-9 * greatest(1, abs(p.score))
             OR ((o.h).score IS NULL) <> (p.score IS NULL)
             OR (o.h).band IS DISTINCT FROM (SELECT b ->> 'name' FROM jsonb_array_elements((SELECT config -> 'bands' FROM health_score.model_versions WHERE name = 'churn')) b
                                                  WHERE (b ->> 'min')::float8 <= p.score ORDER BY (b ->> 'min')::float8 DESC LIMIT 1)
             OR (o.h).children <> p.children OR (o.h).left_out <> p.left_out
             OR abs((o.h).total_weight - p.total_weight) > 1e-9 * greatest(1, p.total_weight)
             OR (o.h).lowest_child IS DISTINCT FROM p.lowest_child OR (o.h).lowest_score IS DISTINCT FROM p.lowest_score
             OR (o.h).children_per_band <> p.per_band
             OR EXISTS (SELECT FROM points x WHERE x.parent = o.parent
                          AND abs(((o.h).components ->> x.component)::float8 - x.points) > 1e-9 * greatest(1, abs(x.points)))"
    ))
    .unwrap();
    assert_eq!(disagreements, Some(0));
    assert_eq!(Spi::get_one::<i64>("SELECT count(DISTINCT parent) FROM children").unwrap(), Some(40));
    // the top-level components' points add up to the parent's score
    let off = Spi::get_one::<i64>(&format!(
        "SELECT count(*) FROM ({BY_PARENT}) o
          WHERE (o.h).score IS NOT NULL
            AND abs((SELECT sum(value::text::float8) FROM jsonb_each((o.h).components)
                      WHERE key IN ('usage', 'nps', 'overdue')) - (o.h).score) > 1e-9 * greatest(1, (o.h).score)"
    ))
    .unwrap();
    assert_eq!(off, Some(0));
}

#[pg_test]
fn parallel_partial_states_give_the_same_parents() {
    setup_hierarchy();
    let serial: Vec<String> = rows(&format!("SELECT parent || ' ' || h::text FROM ({BY_PARENT}) x ORDER BY parent"));
    force_parallel_aggregation();
    Spi::run("ALTER TABLE children SET (parallel_workers = 2)").unwrap();
    // the scoring-function form over the source table itself, in parallel
    let query = "SELECT parent, health_score.parent_health('churn', id::text, health_score.score('churn', c), arr) AS h
                   FROM children c GROUP BY parent";
    assert_parallel_aggregate(query);
    let parallel: Vec<String> = rows(&format!(
        "SELECT parent || ' ' || ((h).score, (h).children, (h).lowest_child)::text FROM ({query}) x ORDER BY parent"
    ));
    let expected: Vec<String> = rows(&format!(
        "SELECT parent || ' ' || ((h).score, (h).children, (h).lowest_child)::text FROM ({BY_PARENT}) x ORDER BY parent"
    ));
    assert_eq!(parallel.len(), 40);
    for (a, b) in parallel.iter().zip(&expected) {
        // the sums are added in another order: compare the scores within 1e-9
        let (pa, pb): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
        assert_eq!((pa[1], pa[2]), (pb[1], pb[2]), "{a} vs {b}");
    }
    assert_eq!(serial.len(), 40);
}

#[pg_test]
fn a_parent_without_counted_children_and_bad_input() {
    setup_model();
    install_error_helper();
    let row = Spi::get_one::<String>(
        "SELECT health_score.parent_health('churn', k, s, w)::text
           FROM (VALUES ('a', NULL::float8, 10::float8), ('b', 50, 0), ('c', 50, NULL), ('d', 50, -1)) v(k, s, w)",
    )
    .unwrap();
    assert_eq!(row.as_deref(), Some(r#"(,,0,4,0,,,"{""red"": 0, ""green"": 0, ""yellow"": 0}",)"#));
    let (state, message) =
        error_of("SELECT health_score.parent_health('churn', k, s, 1) FROM (VALUES ('acme', 'NaN'::float8)) v(k, s)");
    assert_eq!((state.as_str(), message.as_str()), ("22023", "parent_health: child \"acme\" has the score NaN"));
    let (state, message) =
        error_of("SELECT health_score.parent_health('churn', 'acme', 10, 1, NULL, '{\"usage\": \"lots\"}')");
    assert_eq!(state, "22023");
    assert!(message.contains("component \"usage\""), "{message}");
    let (state, _) = error_of("SELECT health_score.parent_health('nope', 'acme', 10, 1)");
    assert_eq!(state, "42704");
    let (state, _) = error_of("SELECT health_score.parent_health('churn', NULL, 10, 1)");
    assert_eq!(state, "22023");
}

fn rows(query: &str) -> Vec<String> {
    Spi::connect(|c| {
        c.select(query, None, &[]).unwrap().map(|r| r.get::<String>(1).unwrap().unwrap_or_default()).collect()
    })
}

/// Many parents in a hash aggregate that spills (`work_mem` at its least) give the parents a
/// sorted aggregate gives: the expanded states of one aggregate share a memory context, which
/// each spilled batch resets with its states.
#[pg_test]
fn a_hash_aggregate_that_spills_gives_the_parents_of_a_sorted_one() {
    setup_model();
    Spi::run(
        "CREATE TABLE many AS SELECT g AS id, g % 3000 AS parent, (g * 7919) % 100 AS score FROM generate_series(1, 30000) g;
         ANALYZE many;
         SET LOCAL max_parallel_workers_per_gather = 0",
    )
    .unwrap();
    let grouped = "SELECT parent, health_score.parent_health('churn', id::text, score::float8, 1 + id % 3) AS h
                     FROM many GROUP BY parent";
    let query = format!(
        "SELECT parent || ' ' || ((h).children, (h).band, (h).lowest_child, (h).children_per_band,
                                  round((h).score::numeric, 6))::text
           FROM ({grouped}) x ORDER BY parent"
    );
    Spi::run("SET LOCAL enable_sort = off; SET LOCAL work_mem = '64kB'").unwrap();
    let plan = rows(&format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {grouped}")).join("\n");
    assert!(plan.contains("HashAggregate") && plan.contains("Disk Usage"), "{plan}");
    let hashed = rows(&query);
    Spi::run("SET LOCAL enable_sort = on; SET LOCAL enable_hashagg = off; SET LOCAL work_mem = '4MB'").unwrap();
    let sorted = rows(&query);
    assert_eq!(hashed.len(), 3000);
    assert_eq!(hashed, sorted);
}

/// As a window aggregate, over a frame that grows and one that moves (which PostgreSQL
/// computes by restarting the aggregate or by keeping its state across rows), a parent equals
/// the same aggregate over that frame's rows alone: the final function leaves the state it
/// is shown as it found it.
#[pg_test]
fn window_frames_give_the_parents_of_their_rows() {
    setup_hierarchy();
    Spi::run(
        "CREATE TEMP TABLE kids AS
         SELECT c.id, c.parent, s.entity_key, s.score, s.band, s.components, c.arr
           FROM children c JOIN health_score.scores s ON s.entity_key = c.id::text AND s.model = 'churn'",
    )
    .unwrap();
    for frame in ["ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW", "ROWS BETWEEN 3 PRECEDING AND 1 FOLLOWING"] {
        let (low, high) = if frame.contains("UNBOUNDED") { ("-1000000", "0") } else { ("-3", "1") };
        let differing = Spi::get_one::<i64>(&format!(
            "WITH framed AS (
                 SELECT id, parent, row_number() OVER w AS at,
                        health_score.parent_health('churn', entity_key, score, arr, band, components) OVER w AS h
                   FROM kids WINDOW w AS (PARTITION BY parent ORDER BY id {frame})),
             numbered AS (SELECT k.*, row_number() OVER (PARTITION BY parent ORDER BY id) AS at FROM kids k)
             SELECT count(*) FROM framed f
              WHERE f.h::text IS DISTINCT FROM (
                    SELECT health_score.parent_health('churn', n.entity_key, n.score, n.arr, n.band, n.components ORDER BY n.id)::text
                      FROM numbered n WHERE n.parent = f.parent AND n.at BETWEEN f.at + {low} AND f.at + {high})"
        ))
        .unwrap();
        assert_eq!(differing, Some(0), "{frame}");
    }
    assert_eq!(Spi::get_one::<i64>("SELECT count(*) FROM kids").unwrap(), Some(150));
}
