-- What health_score.alerts returns, written plainly: each entity's latest snapshot, then its
-- last snapshot at or before (latest - since) or else its earliest after that, found by one
-- lookup each through the primary key, with whole rows and health_score._changes per entity.
-- tests/cluster.rs compares alerts with it on random histories.
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
           (SELECT jsonb_agg(jsonb_build_object('component', c.component, 'parent', c.parent,
                                                'points_before', c.points_before, 'points_after', c.points_after,
                                                'change', c.change) ORDER BY c.change, c.component)
              FROM health_score._changes(reference_alerts.model, p.b_version, p.b_components, p.l_version, p.l_components) c
             WHERE c.change <> 0)
      FROM pairs p
     WHERE p.b_at IS NOT NULL
       AND (p.l_rank < p.b_rank OR p.b_score - p.l_score >= reference_alerts.min_drop)
     ORDER BY p.l_score - p.b_score, p.entity_key
$$;
