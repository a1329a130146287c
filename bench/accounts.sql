-- bench.accounts: :accounts accounts with eight signals as typed columns, from the random
-- generator as seeded by the caller (setseed). Included by setup.sql and storage.sql.
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
  FROM generate_series(1, :accounts) g;
