-- The demo's last proving step (scripts/demo.sh): beyond fitted weights, fitted shapes and
-- suggested components, measured on accounts held out by a hash of their id. The model is
-- not registered: the snapshots and views of the demo keep the weights fitted before.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-- what a CRM knows beside the model's inputs: whether the account's budget is under review
-- (part of the hidden churn process), the contract length (noise), and whether the account
-- asked to cancel (recorded with the churn itself: it leaks the outcome)
CREATE VIEW demo.account_candidates AS
SELECT o.*, demo.rnd(o.id, 32) < 0.15 AS budget_review, 12 * (1 + floor(3 * demo.rnd(o.id, 40)))::int AS contract_months,
       o.churned AS cancellation_requested
  FROM demo.account_outcomes o;
COMMENT ON VIEW demo.account_candidates IS 'The accounts'' outcomes with CRM columns the model does not read, for suggest';

\echo
\echo 'Columns that would improve the model (health_score.suggest; leaks flagged and ranked last):'
SELECT rank, column_name, round(holdout_auc::numeric, 3) AS holdout_auc, round(holdout_auc_gain::numeric, 3) AS gain,
       leak, component ->> 'name' AS component, component -> 'normalize' ->> 'type' AS normalizer
  FROM health_score.suggest('customer_health', 'demo.account_candidates', 'churned', '{"key_column": "id"}');

-- the fitted model with the best suggestion that does not leak, weights and shapes fitted
SELECT health_score.add_components(m.config, jsonb_agg(s.component)) AS extended
  FROM health_score.models m,
       health_score.suggest('customer_health', 'demo.account_candidates', 'churned', '{"key_column": "id"}') s
 WHERE m.name = 'customer_health' AND m.is_latest AND NOT s.leak AND s.rank = 1
 GROUP BY m.config \gset
SELECT health_score.fit(:'extended'::jsonb, 'demo.account_candidates', 'churned', '{"shapes": true, "holdout": 0.2, "key_column": "id"}') AS shaped \gset

\echo
\echo 'Holdout AUC at each step (the same 20% of accounts held out throughout):'
SELECT step, round(auc::numeric, 3) AS holdout_auc
  FROM (SELECT 1 AS n, 'the hand-made model' AS step, holdout_auc_before AS auc
          FROM health_score.fit_report('customer_health@1', 'demo.account_candidates', 'churned', '{"holdout": 0.2, "key_column": "id"}') LIMIT 1) a
UNION ALL
SELECT step, round(auc::numeric, 3)
  FROM (SELECT 2 AS n, 'weights fitted' AS step, holdout_auc_after AS auc
          FROM health_score.fit_report('customer_health@1', 'demo.account_candidates', 'churned', '{"holdout": 0.2, "key_column": "id"}') LIMIT 1) b
UNION ALL
SELECT step, round(auc::numeric, 3)
  FROM (SELECT 3 AS n, 'weights and shapes fitted' AS step, holdout_auc_after AS auc
          FROM health_score.fit_report('customer_health@1', 'demo.account_candidates', 'churned', '{"shapes": true, "holdout": 0.2, "key_column": "id"}') LIMIT 1) c
UNION ALL
SELECT step, round(auc::numeric, 3)
  FROM (SELECT 4 AS n, 'plus the best suggestion, weights and shapes fitted' AS step, holdout_auc_after AS auc
          FROM health_score.fit_report(:'extended'::jsonb, 'demo.account_candidates', 'churned', '{"shapes": true, "holdout": 0.2, "key_column": "id"}') LIMIT 1) d;

\echo
\echo 'The same account explained by the hand-made model and by the fitted one (points per leaf):'
SELECT coalesce(b.component, a.component) AS component, coalesce(b.raw, a.raw) AS raw, round((100 * b.normalized)::numeric, 1) AS hand_n,
       round(b.contribution::numeric, 1) AS hand_points, round((100 * a.normalized)::numeric, 1) AS fitted_n,
       round(a.contribution::numeric, 1) AS fitted_points
  FROM (SELECT e.* FROM demo.account_candidates c, health_score.explain('customer_health@1', c) e WHERE c.id = 42) b
  FULL JOIN (SELECT e.* FROM demo.account_candidates c, health_score.explain(:'shaped'::jsonb, c) e WHERE c.id = 42) a
    USING (component)
 WHERE coalesce(b.input, a.input) IS NOT NULL
 ORDER BY coalesce(b.component, a.component);
SELECT round(health_score.score('customer_health@1', c)::numeric, 1) AS hand_score,
       round(health_score.score(:'shaped'::jsonb, c)::numeric, 1) AS fitted_score
  FROM demo.account_candidates c WHERE c.id = 42;
