-- The demo: a few thousand B2B accounts with usage, support, NPS and billing signals, some of
-- them missing, and a health model over them. Deterministic: every "random" number is a hash
-- of the account id, so every run loads the same data.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS health_score;
DROP SCHEMA IF EXISTS demo CASCADE;
CREATE SCHEMA demo;

-- a uniform number in [0, 1) for (account, stream)
CREATE FUNCTION demo.rnd(id int, stream int) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (abs(hashint4(id * 7919 + stream * 104729)) % 1000003) / 1000003.0;

CREATE TABLE demo.accounts AS
WITH base AS (
    SELECT id,
           CASE WHEN demo.rnd(id, 1) < 0.6 THEN 'smb' WHEN demo.rnd(id, 1) < 0.9 THEN 'mid-market' ELSE 'enterprise' END AS plan,
           demo.rnd(id, 2) AS engagement   -- a latent health, which the signals follow noisily
      FROM generate_series(1, 3000) id
)
SELECT id,
       (ARRAY['Acme','Globex','Initech','Umbrella','Hooli','Vandelay','Stark','Wayne','Tyrell','Soylent','Cyberdyne','Wonka','Gringotts','Monarch','Oscorp','Pied Piper'])[1 + id % 16]
         || ' ' || (ARRAY['Labs','Systems','Holdings','Analytics','Logistics','Foods','Media','Health','Energy','Retail'])[1 + (id / 16) % 10]
         || ' #' || id AS name,
       plan,
       seats,
       CASE WHEN demo.rnd(id, 3) < 0.03 THEN NULL
            ELSE round(seats * (0.5 + 25 * engagement * demo.rnd(id, 4)))::int END AS logins_30d,
       least(seats, round(seats * (0.1 + 0.9 * engagement * (0.6 + 0.4 * demo.rnd(id, 5)))))::int AS active_users,
       round((0.1 + 0.8 * engagement * demo.rnd(id, 6))::numeric, 2) AS feature_adoption,
       round(60 * (1 - engagement) * demo.rnd(id, 7) ^ 2)::int AS days_since_login,
       floor(6 * (1 - engagement) * demo.rnd(id, 8) + (seats / 100.0) * demo.rnd(id, 9))::int AS open_tickets,
       CASE WHEN demo.rnd(id, 10) < 0.12 THEN NULL                       -- no survey answer
            WHEN engagement * 0.7 + demo.rnd(id, 11) * 0.5 > 0.75 THEN 'promoter'
            WHEN engagement * 0.7 + demo.rnd(id, 11) * 0.5 > 0.45 THEN 'passive'
            ELSE 'detractor' END AS nps,
       CASE WHEN demo.rnd(id, 12) < 0.75 THEN 0
            ELSE floor(1 + 3 * demo.rnd(id, 13) * (1.2 - engagement))::int END AS overdue_invoices
  FROM base,
       LATERAL (SELECT CASE plan WHEN 'smb' THEN 3 + floor(20 * demo.rnd(id, 14))
                                 WHEN 'mid-market' THEN 25 + floor(150 * demo.rnd(id, 14))
                                 ELSE 200 + floor(1800 * demo.rnd(id, 14)) END::int AS seats) s;
ALTER TABLE demo.accounts ADD PRIMARY KEY (id);
COMMENT ON TABLE demo.accounts IS 'Demo B2B accounts with usage, support, NPS and billing signals';

-- the model reads these columns; logins per seat makes accounts of every size comparable
CREATE VIEW demo.account_signals AS
SELECT id, name, plan, seats,
       logins_30d::double precision / seats AS logins_per_seat,
       active_users::double precision / seats AS active_share,
       feature_adoption, days_since_login, open_tickets, nps, overdue_invoices
  FROM demo.accounts;
COMMENT ON VIEW demo.account_signals IS 'Per-seat signals of demo.accounts, the inputs of the customer_health model';

SELECT health_score.set_model('customer_health', $model$
{
  "description": "Demo customer health: usage, support, sentiment and billing, with segment overrides",
  "bands": [
    {"name": "red", "min": 0, "action": "CSM call this week"},
    {"name": "yellow", "min": 55, "action": "review at the next QBR"},
    {"name": "green", "min": 75}
  ],
  "min_coverage": 0.5,
  "components": [
    {"name": "usage", "weight": 4, "description": "How much of the product the account uses", "components": [
      {"name": "logins", "weight": 2, "input": "logins_per_seat", "normalize": {"type": "log", "min": 0, "max": 20}},
      {"name": "active_users", "weight": 2, "input": "active_share", "normalize": {"type": "curve", "points": [[0, 0], [0.3, 0.4], [0.7, 0.9], [1, 1]]}},
      {"name": "adoption", "weight": 1, "input": "feature_adoption", "normalize": {"type": "linear", "min": 0.1, "max": 0.8}},
      {"name": "recency", "weight": 1, "input": "days_since_login", "normalize": {"type": "decay", "half_life": 10}}
    ]},
    {"name": "support", "weight": 2, "input": "open_tickets", "missing": "zero",
     "normalize": {"type": "steps", "steps": [{"at": 0, "score": 1}, {"at": 2, "score": 0.7}, {"at": 4, "score": 0.35}, {"at": 7, "score": 0}]}},
    {"name": "sentiment", "weight": 2, "input": "nps", "missing": {"impute": 0.5},
     "normalize": {"type": "map", "values": {"promoter": 1, "passive": 0.6, "detractor": 0}}},
    {"name": "billing", "weight": 2, "input": "overdue_invoices",
     "normalize": {"type": "logistic", "midpoint": 1.5, "steepness": -2.5}}
  ],
  "segments": {"input": "plan", "overrides": {
    "enterprise": {"weights": {"support": 3, "sentiment": 3},
                   "bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 60}, {"name": "green", "min": 80}]},
    "smb": {"weights": {"adoption": 0}}
  }}
}
$model$::jsonb) AS version \gset
\echo registered model customer_health version :version

-- Ninety days of daily history, ending with today's data (demo.accounts). Most accounts drift a
-- little; about one in six declined over the period (fewer logins, more tickets, an overdue
-- invoice appearing), and some improved. Each day's signals go through a table that a daily
-- snapshot reads, as a pg_cron job would (health_score.schedule).
CREATE TABLE demo.day_signals (LIKE demo.account_signals);
CREATE FUNCTION demo.drift(id int) RETURNS double precision
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN demo.rnd(id, 20) < 0.16 THEN 0.4 + 0.6 * demo.rnd(id, 21)   -- declined
                WHEN demo.rnd(id, 20) > 0.9 THEN -0.5 * demo.rnd(id, 21)         -- improved
                ELSE 0.1 * (demo.rnd(id, 21) - 0.5) END;
DO $$
DECLARE
    last_day constant date := date '2026-11-20';
    d int;
    t double precision;
BEGIN
    FOR d IN 0..89 LOOP
        t := (89 - d) / 89.0;   -- 1 ninety days ago, 0 today
        TRUNCATE demo.day_signals;
        INSERT INTO demo.day_signals
        SELECT id, name, plan, seats,
               logins_per_seat * greatest(0, 1 + 0.9 * demo.drift(id) * t + 0.1 * (demo.rnd((id * 90 + d) % 250000, 22) - 0.5)),
               least(1, active_share * greatest(0, 1 + 0.5 * demo.drift(id) * t)),
               feature_adoption,
               greatest(0, round(days_since_login * (1 - 0.8 * demo.drift(id) * t)))::int,
               greatest(0, round(open_tickets * (1 - 0.7 * demo.drift(id) * t)))::int,
               nps,
               CASE WHEN demo.drift(id) > 0.4 AND t > 0.5 THEN 0 ELSE overdue_invoices END
          FROM demo.account_signals;
        PERFORM health_score.snapshot('customer_health', 'demo.day_signals', 'id', last_day - (89 - d));
    END LOOP;
END
$$;
COMMENT ON TABLE demo.day_signals IS 'The signals of the last day snapshotted (the demo''s daily history runs through it)';
COMMENT ON FUNCTION demo.drift(int) IS 'How much an account declined (positive) or improved (negative) over the demo''s ninety days';
\echo loaded 90 days of daily snapshots into health_score.scores

-- the nightly job a real deployment would run (pg_cron is preloaded by scripts/demo.sh)
CREATE EXTENSION IF NOT EXISTS pg_cron;
SELECT health_score.schedule('customer_health', 'demo.account_signals', 'id', '0 3 * * *') AS job \gset
\echo scheduled the nightly snapshot as pg_cron job :job

-- the view a BI tool reads: score, band and each component's points per account (docs/dashboards.md)
SELECT health_score.create_view('demo.account_health', 'customer_health', 'demo.account_signals', 'id') AS view \gset
\echo generated the view :view for BI tools

-- Outcomes to prove the score against: churn over the next quarter, drawn from a hidden
-- process (deterministic). It is non-linear in the signals (a cliff at 30 days without a
-- login, the active share squared), gives feature adoption the opposite effect from the one
-- the model assumes (accounts that adopted heavily but found no fit leave), and includes a
-- budget cut the model cannot see.
ALTER TABLE demo.accounts ADD COLUMN churned boolean;
UPDATE demo.accounts a SET churned = demo.rnd(a.id, 31) < 1 / (1 + exp(-(
    -2.0 + 2.2 * (a.days_since_login > 30)::int + 0.3 * a.open_tickets + 1.5 * a.feature_adoption
    - 2.5 * (a.active_users::float8 / a.seats) ^ 2 + 0.5 * a.overdue_invoices
    + 2.0 * (demo.rnd(a.id, 32) < 0.15)::int)));
COMMENT ON COLUMN demo.accounts.churned IS 'Whether the account churned in the following quarter (a hidden process; see scripts/demo.sql)';
CREATE VIEW demo.account_outcomes AS
SELECT s.*, a.churned FROM demo.account_signals s JOIN demo.accounts a USING (id);
COMMENT ON VIEW demo.account_outcomes IS 'The model''s inputs with each account''s churn outcome, for evaluate, band_report and fit';
\echo added churn outcomes: demo.account_outcomes
