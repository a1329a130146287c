-- Benchmark data for history: plain tables for the hand-written sides of the snapshot
-- benchmarks, and 10M (time, score) points (100k accounts × 100 days) for trend().
-- Deterministic (setseed). Runs after bench/setup.sql.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE TABLE bench.plain_scores (entity_key text, scored_at timestamptz, score double precision);
-- the same rows as health_score.scores, with its key, written by hand-written SQL (a check
-- of what snapshot stores, not timed)
CREATE TABLE bench.plain_snapshots (LIKE health_score.scores, PRIMARY KEY (model, entity_key, scored_at));
-- The floor under a snapshot with ten stored: copying the rows it writes, already computed,
-- into tables like the ones it writes (a month's partition holding the ten, and the current
-- state), with the same keys. bench/run.py fills them.
CREATE TABLE bench.history_copy (LIKE health_score_internal.score_rows, PRIMARY KEY (model, entity_key, scored_at));
CREATE TABLE bench.state_copy (LIKE health_score_internal.current_state INCLUDING ALL) WITH (fillfactor = 50);
CREATE TABLE bench.finished_rows (LIKE health_score_internal.score_rows);
CREATE TABLE bench.finished_state (LIKE health_score_internal.current_state);
CREATE TABLE bench.saved_state (LIKE health_score_internal.current_state);
SELECT setseed(0.17);
CREATE TABLE bench.series AS
SELECT a AS account,
       timestamptz '2026-01-01 00:00+00' + d * interval '1 day' AS at,
       (50 + 30 * sin(a) + d * ((a % 7) - 3) * 0.1 + random() * 5)::float8 AS score
  FROM generate_series(1, 100000) a, generate_series(0, 99) d;
VACUUM ANALYZE bench.series;

-- 1M (score, outcome) pairs for auc(): scores with ties (one decimal), churn likelier when low
CREATE TABLE bench.outcomes AS
SELECT round((random() * 100)::numeric, 1)::float8 AS score, false AS churned
  FROM generate_series(1, 1000000);
UPDATE bench.outcomes SET churned = random() < (1 - score / 100) * 0.3;
VACUUM ANALYZE bench.outcomes;

-- churn events for backtest(): a tenth of the accounts churn in the 90 days after 2026-01-01
CREATE TABLE bench.churns AS
SELECT id::text AS account, date '2026-01-01' + (1 + (id * 7) % 90) AS churned_on
  FROM bench.accounts WHERE id % 10 = 3;
VACUUM ANALYZE bench.churns;

-- a second week for alerts() and latest: the same accounts with fewer logins and staler
-- logins for some, so that scores move and bands fall (deterministic)
CREATE VIEW bench.accounts_later AS
SELECT id, logins * (0.6 + (id % 9) / 10.0) AS logins, active_share, adoption,
       days_since_login + (id % 5) AS days_since_login, nps, open_tickets, csat, overdue_days
  FROM bench.accounts;
