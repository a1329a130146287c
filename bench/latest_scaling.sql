-- Whether reading the current state depends on the history's length (issue 17: with 30
-- snapshots of 1M accounts stored, the whole latest view in at most 1.5x its time with one):
-- the median of five reads of the whole view with one snapshot of the first :accounts of
-- bench.accounts stored, and again after 29 more (keep_inputs => false, each its own
-- transaction), each after a checkpoint and one untimed read. Run by `bash bench/run.sh --latest-scaling [accounts]`, after bench/setup.sql.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
TRUNCATE health_score_internal.score_rows, health_score.snapshots;
CREATE OR REPLACE VIEW bench.scaling_accounts AS SELECT * FROM bench.accounts WHERE id <= :accounts;
CREATE TEMP TABLE timings (snapshots integer, ms double precision);
CREATE FUNCTION pg_temp.time_latest(snapshots integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    started timestamptz;
    entities bigint;
    total double precision;
BEGIN
    -- one read first, untimed: the pages come into the caches as a dashboard's repeated reads find them
    SELECT count(*), sum(l.delta) INTO entities, total FROM health_score.latest l;
    FOR round IN 1..5 LOOP
        started := clock_timestamp();
        SELECT count(*), sum(l.delta) INTO entities, total FROM health_score.latest l;
        INSERT INTO timings VALUES (snapshots, extract(epoch FROM clock_timestamp() - started) * 1000);
    END LOOP;
END
$$;
\o /dev/null
SELECT health_score.snapshot('bench', 'bench.scaling_accounts', 'id', timestamptz '2026-01-01 00:00+00', keep_inputs => false);
\o
VACUUM ANALYZE health_score_internal.current_state;
-- the snapshots' writes flushed first: the reads are timed, not the checkpointer's work
CHECKPOINT;
SELECT pg_temp.time_latest(1);
\o /dev/null
SELECT pg_catalog.format('SELECT health_score.snapshot(%L, %L, %L, %L::timestamptz, keep_inputs => false)',
                         'bench', 'bench.scaling_accounts', 'id', timestamptz '2026-01-01 00:00+00' + i * interval '1 day')
  FROM pg_catalog.generate_series(1, 29) i
\gexec
\o
VACUUM ANALYZE health_score_internal.current_state;
-- the snapshots' writes flushed first: the reads are timed, not the checkpointer's work
CHECKPOINT;
SELECT pg_temp.time_latest(30);
\echo
\echo == the whole latest view over :accounts accounts, by snapshots stored
SELECT snapshots, (SELECT count(*) FROM health_score.scores) AS history_rows_now,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) AS median_ms,
       string_agg(round(ms::numeric)::text, ' ') AS runs_ms
  FROM timings GROUP BY snapshots ORDER BY snapshots;
SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE snapshots = 30)
            / percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE snapshots = 1))::numeric, 2)
       AS "ratio 30 snapshots / 1 (target <= 1.5)"
  FROM timings;
