-- The user's data as it reads through the extension; the upgrade test runs this before and
-- after ALTER EXTENSION ... UPDATE (and after a dump restored by docs/upgrading.md's
-- procedure), and the outputs must be identical. (0.3.0 regenerates the generated views, which
-- name the override applied segment_override: the view is read without it, and its
-- registration without the time it was regenerated.)
SET timezone = 'UTC';
SET extra_float_digits = 3;
\pset footer on
SELECT name, version, config, description, created_at, created_by, is_latest
  FROM health_score.models ORDER BY name, version;
SELECT * FROM health_score.scores ORDER BY model, entity_key, scored_at;
SELECT * FROM health_score.snapshots ORDER BY model, scored_at, source;
SELECT * FROM health_score.rescored ORDER BY model, model_version, entity_key, scored_at;
SELECT view_schema, view_name, model, model_version, source, key_column FROM health_score.views ORDER BY 1, 2;
SELECT * FROM health_score.latest ORDER BY model, entity_key;
SELECT * FROM health_score.history ORDER BY 1, 2, 3 LIMIT 40;
SELECT to_jsonb(v) - 'segment' - 'segment_override' FROM upgrade_account_health v ORDER BY v.id;
SELECT relname, relacl, reloptions, obj_description(oid, 'pg_class'), col_description(oid, 2), pg_get_userbyid(relowner)
  FROM pg_class WHERE relname IN ('upgrade_account_health', 'upgrade_churn_history', 'upgrade_churn_red') ORDER BY relname;
SELECT * FROM upgrade_churn_history ORDER BY entity_key, scored_at;
SELECT * FROM upgrade_churn_red ORDER BY entity_key, scored_at;
SELECT has_table_privilege('hs_upgrade_bi', 'upgrade_account_health', 'SELECT') AS bi_reads_view,
       pg_has_role('hs_upgrade_bi', 'health_score_reader', 'MEMBER') AS bi_is_reader,
       (SELECT bool_and(has_function_privilege('hs_upgrade_bi', p.oid, 'EXECUTE')) FROM pg_proc p
         WHERE p.proname = 'snapshot' AND p.pronamespace = 'health_score'::regnamespace) AS bi_may_snapshot;
SELECT a.id, health_score.score('churn', a), health_score.band('churn@1', a), (health_score.assess('segmented', a)).*
  FROM upgrade_accounts a ORDER BY a.id;
SELECT a.id, e.* FROM upgrade_accounts a, health_score.explain('churn@2', a) WITH ORDINALITY e
 WHERE a.id IN (3, 4) ORDER BY a.id, e.ordinality;
SELECT * FROM health_score.alerts('churn', 5, '30 days') ORDER BY entity_key;
SELECT * FROM health_score.drivers('churn', '3', '2026-01-01', '2026-01-08');
