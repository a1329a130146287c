-- Benchmark data: 1M accounts with eight signals, as typed columns (bench.accounts) and as a
-- jsonb document (bench.docs), and a model with eight components in nested groups using
-- seven normalizer types. Deterministic (setseed).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS health_score;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
SELECT setseed(0.42);
\set accounts 1000000
\ir accounts.sql
CREATE TABLE bench.docs AS
SELECT id, jsonb_build_object('logins', logins, 'active_share', active_share, 'adoption', adoption,
           'days_since_login', days_since_login, 'nps', nps, 'open_tickets', open_tickets,
           'csat', csat, 'overdue_days', overdue_days) AS doc
  FROM bench.accounts;
VACUUM ANALYZE bench.accounts;
VACUUM ANALYZE bench.docs;

\ir model.sql
