-- What a stored snapshot row takes on disk: ten snapshots of :accounts accounts under the
-- benchmark model (eight leaves in groups), first without inputs kept, then with; for each,
-- the database's growth after VACUUM divided by the rows written (history, indexes, run
-- records and whatever else the snapshots wrote, all told), and where the bytes are.
-- Run in a fresh database by `bash bench/run.sh --storage [accounts]`.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION health_score;
CREATE SCHEMA bench;
SELECT setseed(0.42);
\ir accounts.sql
\ir model.sql
VACUUM ANALYZE bench.accounts;

CREATE TEMP TABLE measured (keep_inputs boolean, rows_written bigint, growth bigint, by_relation text);

\set keep_inputs false
\ir storage_round.sql
\set keep_inputs true
\ir storage_round.sql

\echo
\echo == bytes per stored snapshot row (:accounts accounts x 10 snapshots)
SELECT keep_inputs, rows_written, pg_size_pretty(growth) AS growth,
       round(growth::numeric / rows_written) AS bytes_per_row, by_relation
  FROM measured ORDER BY keep_inputs;
