-- Benchmark data: 1M accounts with eight signals, as typed columns (bench.accounts) and as a
-- jsonb document (bench.docs), and a model with eight components in nested groups using
-- seven normalizer types. Deterministic (setseed).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS health_score;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
SELECT setseed(0.42);
CREATE TABLE bench.accounts AS
SELECT g AS id,
       floor(random() * 600)::float8 AS logins,
       random()::float8 AS active_share,
       random()::float8 AS adoption,
       floor(random() * 90)::float8 AS days_since_login,
       (ARRAY['promoter', 'passive', 'detractor'])[1 + floor(random() * 3)::int] AS nps,
       floor(random() * 12)::float8 AS open_tickets,
       (1 + random() * 4)::float8 AS csat,
       floor(random() * 120)::float8 AS overdue_days
  FROM generate_series(1, 1000000) g;
CREATE TABLE bench.docs AS
SELECT id, jsonb_build_object('logins', logins, 'active_share', active_share, 'adoption', adoption,
           'days_since_login', days_since_login, 'nps', nps, 'open_tickets', open_tickets,
           'csat', csat, 'overdue_days', overdue_days) AS doc
  FROM bench.accounts;
VACUUM ANALYZE bench.accounts;
VACUUM ANALYZE bench.docs;

SELECT health_score.set_model('bench', '{
  "bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 50}, {"name": "green", "min": 75}],
  "components": [
    {"name": "usage", "weight": 3, "components": [
      {"name": "logins", "weight": 2, "normalize": {"type": "log", "min": 0, "max": 500}},
      {"name": "active", "weight": 1, "input": "active_share", "normalize": {"type": "curve", "points": [[0, 0], [0.5, 0.7], [1, 1]]}},
      {"name": "adoption", "weight": 1, "normalize": {"type": "linear", "min": 0.1, "max": 0.9}}
    ]},
    {"name": "engagement", "weight": 2, "components": [
      {"name": "recency", "weight": 1, "input": "days_since_login", "normalize": {"type": "decay", "half_life": 14}},
      {"name": "nps", "weight": 1, "normalize": {"type": "map", "values": {"promoter": 1, "passive": 0.6, "detractor": 0}}}
    ]},
    {"name": "support", "weight": 2, "components": [
      {"name": "tickets", "weight": 1, "input": "open_tickets", "normalize": {"type": "steps", "steps": [{"at": 0, "score": 1}, {"at": 3, "score": 0.6}, {"at": 8, "score": 0.2}]}},
      {"name": "csat", "weight": 1, "normalize": {"type": "logistic", "midpoint": 3, "steepness": 1.5}}
    ]},
    {"name": "billing", "weight": 1, "input": "overdue_days", "normalize": {"type": "linear", "min": 0, "max": 90, "invert": true}}
  ]
}');
