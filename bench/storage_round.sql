-- One round of storage.sql: empties the history (its partitions dropped by retention), writes
-- ten snapshots with keep_inputs = :keep_inputs (each its own transaction, as a nightly job
-- writes them), and records the growth.
SELECT health_score.set_retention('bench', '1 day');
SELECT count(*) FROM health_score.apply_retention(at => '3000-01-01');
SELECT health_score.set_retention('bench', NULL);
TRUNCATE health_score_internal.score_rows, health_score.snapshots;
VACUUM;
CHECKPOINT;
SELECT pg_catalog.pg_database_size(pg_catalog.current_database()) AS size_before \gset
\o /dev/null
SELECT pg_catalog.format('SELECT health_score.snapshot(%L, %L, %L, %L::timestamptz, keep_inputs => %s)',
                         'bench', 'bench.accounts', 'id', timestamptz '2026-01-01 00:00+00' + i * interval '1 day',
                         :'keep_inputs')
  FROM pg_catalog.generate_series(1, 10) i
\gexec
\o
VACUUM;
CHECKPOINT;
INSERT INTO measured
SELECT :'keep_inputs'::boolean,
       (SELECT pg_catalog.sum(r.rows_written) FROM health_score.snapshots r),
       pg_catalog.pg_database_size(pg_catalog.current_database()) - :size_before,
       (SELECT pg_catalog.string_agg(pg_catalog.format('%s %s', c.relname, pg_catalog.pg_size_pretty(
                   pg_catalog.pg_total_relation_size(c.oid))), ', ' ORDER BY c.relname)
          FROM pg_catalog.pg_class c
         WHERE c.relnamespace IN ('health_score'::regnamespace, 'health_score_internal'::regnamespace)
           AND c.relkind IN ('r', 'p', 'm'));
