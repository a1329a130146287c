-- What a user has in an install that is about to be updated: several models and versions
-- (one with segments), a table of accounts, snapshots with and without kept inputs, a
-- generated view granted to a BI role, a fitted version, rescored history. Written against
-- the oldest frozen version's functions (0.1.0); the upgrade test runs it in that version.
SET client_min_messages = warning;
SET timezone = 'UTC';

DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hs_upgrade_bi') THEN
        CREATE ROLE hs_upgrade_bi LOGIN;
    END IF;
END $$;
GRANT health_score_reader TO hs_upgrade_bi;

CREATE TABLE upgrade_accounts (
    id int PRIMARY KEY, plan text, logins_30d int, days_since_login int, open_tickets int, nps text
);
INSERT INTO upgrade_accounts
SELECT i, CASE WHEN i % 4 = 0 THEN 'enterprise' ELSE 'smb' END, (i * 37) % 300, (i * 13) % 60, (i * 7) % 11,
       (ARRAY['promoter', 'passive', 'detractor', NULL])[1 + i % 4]
  FROM generate_series(1, 60) i;
GRANT SELECT ON upgrade_accounts TO hs_upgrade_bi;

SELECT health_score.set_model('churn', '{
  "description": "Churn risk for B2B accounts",
  "bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 50}, {"name": "green", "min": 75}],
  "components": [
    {"name": "usage", "weight": 3, "components": [
      {"name": "logins", "weight": 1, "input": "logins_30d", "normalize": {"type": "log", "min": 0, "max": 300}},
      {"name": "recency", "weight": 1, "input": "days_since_login", "normalize": {"type": "decay", "half_life": 14}}
    ]},
    {"name": "support", "weight": 1, "input": "open_tickets", "normalize": {"type": "linear", "min": 0, "max": 10, "invert": true}},
    {"name": "nps", "weight": 1, "normalize": {"type": "map", "values": {"promoter": 1, "passive": 0.6, "detractor": 0}},
     "missing": {"impute": 0.5}}
  ]
}');
SELECT health_score.set_model('churn', config || '{"description": "support weighs more"}'::jsonb
         || jsonb_build_object('components', jsonb_set(config -> 'components', '{1,weight}', '3')))
  FROM health_score.models WHERE name = 'churn' AND version = 1;
SELECT health_score.set_model('segmented', '{
  "description": "Per plan",
  "bands": [{"name": "red", "min": 0}, {"name": "green", "min": 60}],
  "segments": {"input": "plan", "overrides": {
    "enterprise": {"weights": {"support": 3}, "bands": [{"name": "red", "min": 0}, {"name": "green", "min": 70}]}}},
  "components": [
    {"name": "logins", "weight": 2, "input": "logins_30d", "normalize": {"type": "linear", "min": 0, "max": 300}},
    {"name": "support", "weight": 1, "input": "open_tickets", "normalize": {"type": "linear", "min": 0, "max": 10, "invert": true}}
  ]
}');

SELECT health_score.snapshot('churn', 'upgrade_accounts', 'id', '2026-01-01');
SELECT health_score.snapshot('segmented', 'upgrade_accounts', 'id', '2026-01-01', keep_inputs => false);
UPDATE upgrade_accounts SET logins_30d = logins_30d / 2, open_tickets = open_tickets + 2 WHERE id % 3 = 0;
SELECT health_score.snapshot('churn', 'upgrade_accounts', 'id', '2026-01-08');
SELECT health_score.snapshot('segmented', 'upgrade_accounts', 'id', '2026-01-08', keep_inputs => false);

SELECT health_score.create_view('upgrade_account_health', 'churn', 'upgrade_accounts', 'id');
GRANT SELECT ON upgrade_account_health TO hs_upgrade_bi;
-- a privilege on one of the extension's functions granted directly, not through its roles
GRANT EXECUTE ON FUNCTION health_score.snapshot(text, regclass, text, timestamptz, boolean) TO hs_upgrade_bi;

-- the user's own views over the history (one over another), commented and granted to the BI
-- role: 0.3.0 replaces the table they read by a view, and the update moves them over
CREATE VIEW upgrade_churn_history AS
SELECT s.entity_key, s.scored_at, s.score, s.band, s.components -> 'usage' AS usage, s.inputs ->> 'nps' AS nps
  FROM health_score.scores s WHERE s.model = 'churn';
CREATE VIEW upgrade_churn_red WITH (security_barrier) AS SELECT * FROM upgrade_churn_history WHERE band = 'red';
COMMENT ON VIEW upgrade_churn_history IS 'churn history for the BI tool';
COMMENT ON COLUMN upgrade_churn_history.usage IS 'the usage group''s points and n';
GRANT SELECT ON upgrade_churn_history, upgrade_churn_red TO hs_upgrade_bi;

-- outcomes, weights fitted to them (a third version), and the history rescored with it
CREATE TABLE upgrade_outcomes AS
SELECT a.*, ((a.id * 7919) % 1000) / 1000.0 < 1 / (1 + exp(-1.5 + 0.01 * a.logins_30d + 0.05 * a.days_since_login - 0.3 * a.open_tickets)) AS churned
  FROM upgrade_accounts a;
INSERT INTO upgrade_outcomes
SELECT a.id + 1000 * k, a.plan, a.logins_30d + k, a.days_since_login, a.open_tickets, a.nps,
       ((a.id * 31 + k * 17) % 100) < 30 + 4 * a.open_tickets - a.logins_30d / 20
  FROM upgrade_accounts a, generate_series(1, 4) k;
SELECT health_score.set_model('churn', health_score.fit('churn', 'upgrade_outcomes', 'churned'));
SELECT health_score.rescore('churn', 3, '2026-01-01', '2026-01-08');
