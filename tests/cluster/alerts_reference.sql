-- What health_score.alerts returns, written plainly: each entity's latest snapshot, then its
-- last snapshot at or before (latest - since) or else its earliest after that, found by one
-- lookup each through the primary key, with whole rows and pg_temp.reference_changes per entity.
-- tests/cluster.rs compares alerts with it on random histories.

-- Per component of either version, matched by name and parent: points before and after (0 on
-- a side without it) and the change; the later version's components first, in model order.
CREATE FUNCTION pg_temp.reference_changes(model text, before_version integer, before jsonb,
                                          after_version integer, after jsonb)
    RETURNS TABLE (component text, parent text, points_before double precision, points_after double precision,
                   change double precision)
LANGUAGE sql STABLE AS $$
    WITH ta AS (
        SELECT t.component, t.parent, t.model_order
          FROM health_score.model_versions v, health_score_internal._components(v.config) t
         WHERE v.name = reference_changes.model AND v.version = reference_changes.after_version
    ), tb AS (
        SELECT t.component, t.parent, t.model_order
          FROM health_score.model_versions v, health_score_internal._components(v.config) t
         WHERE v.name = reference_changes.model AND v.version = reference_changes.before_version
    ), rows AS (
        SELECT ta.component, ta.parent, 0 AS side, ta.model_order,
               CASE WHEN EXISTS (SELECT FROM tb WHERE tb.component = ta.component AND tb.parent IS NOT DISTINCT FROM ta.parent)
                    THEN coalesce((reference_changes.before -> ta.component ->> 'points')::double precision, 0)
                    ELSE 0 END AS points_before,
               coalesce((reference_changes.after -> ta.component ->> 'points')::double precision, 0) AS points_after
          FROM ta
        UNION ALL
        SELECT tb.component, tb.parent, 1, tb.model_order,
               coalesce((reference_changes.before -> tb.component ->> 'points')::double precision, 0), 0
          FROM tb
         WHERE NOT EXISTS (SELECT FROM ta WHERE ta.component = tb.component AND ta.parent IS NOT DISTINCT FROM tb.parent)
    )
    SELECT r.component, r.parent, r.points_before, r.points_after, r.points_after - r.points_before
      FROM rows r ORDER BY r.side, r.model_order
$$;

CREATE FUNCTION pg_temp.reference_alerts(model text, min_drop double precision, since interval)
    RETURNS TABLE (entity_key text, baseline_at timestamptz, baseline_score double precision, baseline_band text,
                   latest_at timestamptz, latest_score double precision, latest_band text,
                   score_change double precision, band_change text, drivers jsonb)
LANGUAGE sql STABLE AS $$
    WITH l AS (
        SELECT DISTINCT ON (s.entity_key) s.*
          FROM health_score.scores s WHERE s.model = reference_alerts.model
         ORDER BY s.entity_key, s.scored_at DESC
    ), pairs AS (
        SELECT l.entity_key, coalesce(b1.scored_at, b2.scored_at) AS b_at, l.scored_at AS l_at,
               CASE WHEN b1.scored_at IS NOT NULL THEN b1.score ELSE b2.score END AS b_score, l.score AS l_score,
               CASE WHEN b1.scored_at IS NOT NULL THEN b1.band ELSE b2.band END AS b_band, l.band AS l_band,
               CASE WHEN b1.scored_at IS NOT NULL THEN b1.band_rank ELSE b2.band_rank END AS b_rank, l.band_rank AS l_rank,
               CASE WHEN b1.scored_at IS NOT NULL THEN b1.model_version ELSE b2.model_version END AS b_version,
               l.model_version AS l_version,
               CASE WHEN b1.scored_at IS NOT NULL THEN b1.components ELSE b2.components END AS b_components,
               l.components AS l_components
          FROM l
          LEFT JOIN LATERAL (SELECT * FROM health_score.scores s
                              WHERE s.model = reference_alerts.model AND s.entity_key = l.entity_key
                                AND s.scored_at <= l.scored_at - reference_alerts.since
                              ORDER BY s.scored_at DESC LIMIT 1) b1 ON true
          LEFT JOIN LATERAL (SELECT * FROM health_score.scores s
                              WHERE s.model = reference_alerts.model AND s.entity_key = l.entity_key
                                AND s.scored_at > l.scored_at - reference_alerts.since AND s.scored_at < l.scored_at
                              ORDER BY s.scored_at LIMIT 1) b2 ON true
    )
    SELECT p.entity_key, p.b_at, p.b_score, p.b_band, p.l_at, p.l_score, p.l_band, p.l_score - p.b_score,
           CASE WHEN p.l_rank < p.b_rank THEN 'worsened' WHEN p.l_rank > p.b_rank THEN 'improved'
                WHEN p.l_rank = p.b_rank THEN 'same' END,
           (SELECT coalesce(jsonb_agg(jsonb_build_object('component', c.component, 'parent', c.parent,
                                                         'points_before', c.points_before, 'points_after', c.points_after,
                                                         'change', c.change) ORDER BY c.change, c.component COLLATE "C"),
                            '[]')
              FROM pg_temp.reference_changes(reference_alerts.model, p.b_version, p.b_components, p.l_version, p.l_components) c
             WHERE c.change <> 0)
      FROM pairs p
     WHERE p.b_at IS NOT NULL
       AND (p.l_rank < p.b_rank OR p.b_score - p.l_score >= reference_alerts.min_drop)
     ORDER BY p.l_score - p.b_score, p.entity_key
$$;
