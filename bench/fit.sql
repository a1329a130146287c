-- The fit benchmarks' data: outcomes for fit() and candidate columns for suggest().
-- Deterministic (setseed). Runs after bench/setup.sql.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- outcomes for fit(): the 1M accounts with a churn flag drawn from a logistic process of
-- their raw signals (deterministic)
SELECT setseed(0.7);
CREATE TABLE bench.fit_accounts AS
SELECT a.*, random() < 1 / (1 + exp(-(1.5 - 0.004 * a.logins - 1.2 * a.adoption + 0.02 * a.days_since_login
                                    + 0.15 * a.open_tickets - 0.4 * a.csat))) AS churned
  FROM bench.accounts a;
VACUUM ANALYZE bench.fit_accounts;

-- suggest(): the same accounts with 20 more columns for it to rank: 12 numbers (some tied to
-- the outcome, some noise, some with NULLs), 4 more numbers, a boolean and 3 text columns
SELECT setseed(0.3);
CREATE TABLE bench.suggest_accounts AS
SELECT f.*,
       f.logins * 0.1 + random() * 20 AS n1, random() AS n2, CASE WHEN random() < 0.1 THEN NULL ELSE random() * 100 END AS n3,
       f.csat + random() AS n4, random() * 1000 AS n5, floor(random() * 10) AS n6, random() - 0.5 AS n7,
       CASE WHEN f.churned THEN random() * 0.9 + 0.1 ELSE random() END AS n8, exp(random() * 5) AS n9,
       f.open_tickets + floor(random() * 3) AS n10, random() * 2 AS n11, floor(random() * 100) AS n12,
       floor(1 + random() * 400) AS seats, round((1000 + random() * 99000)::numeric, 2) AS arr,
       floor(random() * 2000) AS age_days, floor(random() * 12) AS integrations,
       random() < 0.3 AS has_sso,
       (ARRAY['north', 'south', 'east', 'west', 'central'])[1 + floor(random() * 5)::int] AS region,
       (ARRAY['smb', 'mid', 'enterprise'])[1 + floor(random() * 3)::int] AS tier,
       (ARRAY['web', 'partner', 'sales', 'event'])[1 + floor(random() * 4)::int] AS channel
  FROM bench.fit_accounts f;
ALTER TABLE bench.suggest_accounts ADD PRIMARY KEY (id);
VACUUM ANALYZE bench.suggest_accounts;
