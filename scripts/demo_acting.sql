-- The demo's second part (scripts/demo.sh runs it after scripts/demo.sql): acting on the score
-- (docs/acting.md). An account manager's note that changes a score and expires, a flapping
-- account held steady by band hysteresis, alert rules that fill the queue a small consumer
-- drains (scripts/demo.sh), and a parent company with three subsidiaries.
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;

\echo
\echo '== Acting on the score (docs/acting.md)'
\echo
-- a healthy smb account whose escalations run through its partner's help desk, which the
-- data does not see
SELECT min(id) AS csm_id FROM demo.account_signals WHERE plan = 'smb' AND open_tickets = 0 \gset
SELECT health_score.set_alert_rule('customer_health', 'fell_a_band', 'band_worsened') AS rule_set \gset
SELECT health_score.set_manual_input('customer_health', :'csm_id', 'open_tickets', '8',
                                     'eight escalations open at the partner''s help desk', '2026-11-23') AS noted \gset
SELECT health_score.snapshot('customer_health', 'demo.account_signals', 'id', '2026-11-21') AS written \gset
SELECT health_score.snapshot('customer_health', 'demo.account_signals', 'id', '2026-11-24') AS written \gset
\echo 'A CSM note that changes a score and expires: account' :csm_id 'has no open tickets in the data,'
\echo 'but its account manager records open_tickets = 8 until 23 November (set_manual_input); the'
\echo 'snapshots of 20 (before), 21 and 24 November:'
SELECT s.scored_at::date AS day, round(s.score::numeric, 1) AS score, s.band,
       m.manual->'inputs'->'open_tickets'->>'value' AS manual_tickets, m.manual->'inputs'->'open_tickets'->>'reason' AS reason
  FROM health_score.scores s LEFT JOIN health_score.manual_applied m USING (model, entity_key, scored_at)
 WHERE s.model = 'customer_health' AND s.entity_key = :'csm_id' AND s.scored_at >= '2026-11-20'
 ORDER BY s.scored_at;
\echo 'and the audit of it (health_score.manual_audit):'
SELECT changed_by, kind, input, coalesce(old_value, '-') AS old, new_value AS new, new_expires_at::date AS expires, reason
  FROM health_score.manual_audit ORDER BY id;

\echo
\echo 'A flapping account held steady: thirty days of a score wandering around 60 (the yellow/green'
\echo 'bound), snapshotted under a model without band hysteresis and with 5 points of it:'
SELECT health_score.set_model('walk_plain', '{"bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 40}, {"name": "green", "min": 60}],
  "components": [{"name": "x", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 100}}]}') AS v \gset
SELECT health_score.set_model('walk_steady', '{"bands": [{"name": "red", "min": 0}, {"name": "yellow", "min": 40}, {"name": "green", "min": 60}],
  "band_hysteresis": 5,
  "components": [{"name": "x", "weight": 1, "normalize": {"type": "linear", "min": 0, "max": 100}}]}') AS v \gset
CREATE TABLE demo.walk (id text PRIMARY KEY, x double precision);
DO $$
BEGIN
    FOR d IN 1..30 LOOP
        DELETE FROM demo.walk;
        INSERT INTO demo.walk VALUES ('walker', 60 + 3 * sin(d * 1.7) + 2 * cos(d * 0.9));
        PERFORM health_score.snapshot('walk_plain', 'demo.walk', 'id', date '2026-10-01' + d);
        PERFORM health_score.snapshot('walk_steady', 'demo.walk', 'id', date '2026-10-01' + d);
    END LOOP;
END
$$;
SELECT model, count(*) FILTER (WHERE band IS DISTINCT FROM previous_band AND previous_band IS NOT NULL) AS band_changes,
       string_agg(left(band, 1), '' ORDER BY scored_at) AS bands_day_by_day
  FROM (SELECT model, scored_at, band, lag(band) OVER (PARTITION BY model ORDER BY scored_at) AS previous_band
          FROM health_score.scores WHERE model IN ('walk_plain', 'walk_steady')) h
 GROUP BY model ORDER BY model;

\echo
\echo 'A parent company and its three subsidiaries (parent_health over the latest snapshots,'
\echo 'weighted by ARR; the points per component add up to the parent''s score):'
CREATE TABLE demo.hierarchy (child int PRIMARY KEY, parent text NOT NULL, arr numeric NOT NULL);
INSERT INTO demo.hierarchy
SELECT id, 'Initech Holdings', seats * 1200 FROM demo.account_signals WHERE plan = 'mid-market' ORDER BY id LIMIT 3;
SELECT h.child, h.arr, round(l.score::numeric, 1) AS score, l.band
  FROM demo.hierarchy h JOIN health_score.latest l ON l.model = 'customer_health' AND l.entity_key = h.child::text
 ORDER BY h.child;
SELECT parent, round((p).score::numeric, 1) AS score, (p).band, (p).lowest_child, round((p).lowest_score::numeric, 1) AS lowest_score,
       (p).children_per_band,
       (SELECT string_agg(c.key || ' ' || round(c.value::text::numeric, 1), ', ' ORDER BY c.key)
          FROM jsonb_each((p).components) c
         WHERE c.key IN (SELECT t->>'name' FROM health_score.models m, jsonb_array_elements(m.config->'components') t
                          WHERE m.name = 'customer_health' AND m.is_latest)) AS points_per_component
  FROM (SELECT h.parent, health_score.parent_health('customer_health', s.entity_key, s.score, h.arr::float8, s.band, s.components) AS p
          FROM demo.hierarchy h
          JOIN health_score.latest l ON l.model = 'customer_health' AND l.entity_key = h.child::text
          JOIN health_score.scores s USING (model, entity_key, scored_at)
         GROUP BY h.parent) q;

\echo
\echo 'The alert queue: the rule fell_a_band raised an event for each account whose band fell in the'
\echo 'snapshots above (health_score.alert_events); a consumer drains it next.'
SELECT rule, status, count(*) AS events FROM health_score.alert_events GROUP BY rule, status ORDER BY rule, status;
