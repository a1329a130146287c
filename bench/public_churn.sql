-- A hand model of five components on public SaaS churn data, then fitted weights, fitted
-- shapes, and the four best columns suggest finds added (bench/public_churn.sh loads it).
-- The same 30% of accounts are held out throughout (a hash of id). The CSV comes on stdin.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION health_score;
CREATE TABLE saas (product_data_storage float8, product_travel_expense text, product_payroll text,
  product_accounting text, csat_score float8, articles_viewed float8, smartphone_notifications_viewed float8,
  marketing_emails_clicked float8, social_media_ads_viewed float8, minutes_customer_support float8,
  company_size text, us_region text, months_active float8, churned float8);
\copy saas FROM pstdin CSV HEADER
ALTER TABLE saas ADD COLUMN id serial PRIMARY KEY, ADD COLUMN churn boolean;
UPDATE saas SET churn = churned = 1;
-- months_active is how long the account was watched, not a signal before churn: left out
ALTER TABLE saas DROP COLUMN churned, DROP COLUMN months_active;
\set hand '{"components": [{"name": "csat", "weight": 2, "input": "csat_score", "normalize": {"type": "linear", "min": 0, "max": 10}}, {"name": "articles", "weight": 1, "input": "articles_viewed", "normalize": {"type": "linear", "min": 0, "max": 20}}, {"name": "support", "weight": 1, "input": "minutes_customer_support", "normalize": {"type": "linear", "min": 0, "max": 60, "invert": true}}, {"name": "emails", "weight": 1, "input": "marketing_emails_clicked", "normalize": {"type": "linear", "min": 0, "max": 20}}, {"name": "payroll", "weight": 1, "input": "product_payroll", "normalize": {"type": "map", "values": {"Active": 1, "Free-Trial": 0.5, "No": 0}}}]}'
SELECT count(*) AS accounts, round(avg(churn::int), 3) AS churn_rate FROM saas;
\echo 'suggest (30% held out):'
SELECT rank, column_name, round(holdout_auc::numeric, 3) AS holdout_auc, round(holdout_auc_gain::numeric, 3) AS gain, leak, exact
  FROM health_score.suggest(:'hand'::jsonb, 'saas', 'churn', '{"holdout": 0.3}');
SELECT health_score.add_components(:'hand'::jsonb, jsonb_agg(component ORDER BY rank)) AS extended
  FROM health_score.suggest(:'hand'::jsonb, 'saas', 'churn', '{"holdout": 0.3}') WHERE NOT leak AND rank <= 4 \gset
\echo 'holdout AUC at each step:'
SELECT 'the hand model' AS step, round(holdout_auc_before::numeric, 3) AS holdout_auc
  FROM health_score.fit_report(:'hand'::jsonb, 'saas', 'churn', '{"holdout": 0.3}') LIMIT 1;
SELECT 'weights fitted' AS step, round(holdout_auc_after::numeric, 3) AS holdout_auc
  FROM health_score.fit_report(:'hand'::jsonb, 'saas', 'churn', '{"holdout": 0.3}') LIMIT 1;
SELECT 'weights and shapes fitted' AS step, round(holdout_auc_after::numeric, 3) AS holdout_auc
  FROM health_score.fit_report(:'hand'::jsonb, 'saas', 'churn', '{"holdout": 0.3, "shapes": true}') LIMIT 1;
SELECT 'plus the top four suggestions, weights and shapes fitted' AS step, round(holdout_auc_after::numeric, 3) AS holdout_auc
  FROM health_score.fit_report(:'extended'::jsonb, 'saas', 'churn', '{"holdout": 0.3, "shapes": true}') LIMIT 1;
