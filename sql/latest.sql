-------------------------------------------------------------------------------------------
-- The current state of each entity: the table snapshot and the triggers keep, and what reads
-- it (the latest view, alerts)
-------------------------------------------------------------------------------------------

-- The current state: per model and entity its latest snapshot and the one before, so that
-- latest and alerts read one row per entity instead of the whole history. snapshot keeps it
-- in its own statement; the triggers on health_score_internal.score_rows below keep it exact
-- through every other change there: DELETE, UPDATE, INSERT, TRUNCATE. Dumped: a restore
-- copies the history into its partitions, which fires no trigger of the partitioned table.
-- Retention (health_score.apply_retention) drops partitions, and corrects it itself.
-- Every snapshot updates each entity's row: half of each page is left free, so that the new
-- version goes on the same page (a HOT update, no index entry) and the old one is pruned there.
CREATE TABLE health_score_internal.current_state (
    model              text COLLATE "C" NOT NULL,
    entity_key         text COLLATE "C" NOT NULL,
    scored_at          timestamptz      NOT NULL,
    model_version      integer          NOT NULL,
    score              double precision,
    band               text,
    band_rank          integer,
    coverage           double precision NOT NULL,
    segment            text,
    previous_at        timestamptz,
    previous_score     double precision,
    previous_band      text,
    previous_band_rank integer,
    model_band         text,
    previous_model_band text,
    PRIMARY KEY (model, entity_key)
) WITH (fillfactor = 50);
COMMENT ON TABLE health_score_internal.current_state IS
    'Per model and entity: its latest snapshot in health_score.scores and the one before (read through health_score.latest); kept by snapshot and by triggers on health_score_internal.score_rows. Kept by pg_dump.';
COMMENT ON COLUMN health_score_internal.current_state.model_band IS
    'When the latest snapshot''s band was forced by a band override: the model''s own band, from which band hysteresis continues; NULL otherwise';
COMMENT ON COLUMN health_score_internal.current_state.previous_model_band IS
    'The same of the snapshot before the latest';
SELECT pg_catalog.pg_extension_config_dump('health_score_internal.current_state', '');

-- The statement that recomputes the current state of the entities a query of (model,
-- entity_key) names, such as a transition table, from the history: two probes of its primary
-- key each. (The trigger runs it: a transition table is visible to its function alone.)
CREATE FUNCTION health_score_internal._current_state_sql(keys text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT format($q$
        WITH k AS (SELECT DISTINCT model, entity_key FROM (%s) k),
        gone AS (
            DELETE FROM health_score_internal.current_state c USING k
             WHERE c.model = k.model AND c.entity_key = k.entity_key
               AND NOT EXISTS (SELECT FROM health_score_internal.score_rows s WHERE s.model = k.model AND s.entity_key = k.entity_key)
        )
        INSERT INTO health_score_internal.current_state AS c
        SELECT k.model, k.entity_key, l.scored_at, l.model_version, l.score, l.band, l.band_rank, l.coverage, l.segment,
               p.scored_at, p.score, p.band, p.band_rank, l.manual->'band'->>'model_band', p.manual->'band'->>'model_band'
          FROM k
          JOIN LATERAL (SELECT s.* FROM health_score_internal.score_rows s WHERE s.model = k.model AND s.entity_key = k.entity_key
                         ORDER BY s.scored_at DESC LIMIT 1) l ON true
          LEFT JOIN LATERAL (SELECT s.* FROM health_score_internal.score_rows s WHERE s.model = k.model AND s.entity_key = k.entity_key
                                AND s.scored_at < l.scored_at ORDER BY s.scored_at DESC LIMIT 1) p ON true
        ON CONFLICT (model, entity_key) DO UPDATE
           SET scored_at = excluded.scored_at, model_version = excluded.model_version, score = excluded.score,
               band = excluded.band, band_rank = excluded.band_rank, coverage = excluded.coverage,
               segment = excluded.segment, previous_at = excluded.previous_at, previous_score = excluded.previous_score,
               previous_band = excluded.previous_band, previous_band_rank = excluded.previous_band_rank,
               model_band = excluded.model_band, previous_model_band = excluded.previous_model_band
    $q$, keys)
$f$;
COMMENT ON FUNCTION health_score_internal._current_state_sql(text) IS
    'The statement that recomputes health_score_internal.current_state for the entities a query of (model, entity_key) names, from health_score_internal.score_rows';

-- The current state of a model (or of every model) recomputed from the history in one
-- statement: what a distributed history needs after rows were changed by hand
-- (docs/scale-out.md), and a check anywhere (it gives the state the triggers keep).
CREATE FUNCTION health_score.refresh_current_state(model text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kept bigint;
BEGIN
    PERFORM health_score_internal._require_coordinator('refresh_current_state');
    DELETE FROM health_score_internal.current_state c
     WHERE refresh_current_state.model IS NULL OR c.model = refresh_current_state.model;
    INSERT INTO health_score_internal.current_state
    SELECT l.model, l.entity_key, l.scored_at, l.model_version, l.score, l.band, l.band_rank, l.coverage, l.segment,
           l.previous_at, l.previous_score, l.previous_band, l.previous_band_rank, l.model_band, l.previous_model_band
      FROM (SELECT s.model, s.entity_key, s.scored_at, s.model_version, s.score, s.band, s.band_rank, s.coverage, s.segment,
                   lead(s.scored_at) OVER w AS previous_at, lead(s.score) OVER w AS previous_score,
                   lead(s.band) OVER w AS previous_band, lead(s.band_rank) OVER w AS previous_band_rank,
                   s.manual->'band'->>'model_band' AS model_band,
                   lead(s.manual->'band'->>'model_band') OVER w AS previous_model_band,
                   row_number() OVER w AS n
              FROM health_score_internal.score_rows s
             WHERE refresh_current_state.model IS NULL OR s.model = refresh_current_state.model
            WINDOW w AS (PARTITION BY s.entity_key, s.model ORDER BY s.scored_at DESC)) l
     WHERE l.n = 1;
    GET DIAGNOSTICS kept = ROW_COUNT;
    RETURN kept;
END
$$;
COMMENT ON FUNCTION health_score.refresh_current_state(text) IS
    'Recomputes the current state (health_score.latest) of a model, or of every model, from its stored snapshots; returns the entities kept. Needed after changing a distributed history by hand';
REVOKE EXECUTE ON FUNCTION health_score.refresh_current_state(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score.refresh_current_state(text) TO health_score_admin;

-- After each statement that changes health_score_internal.score_rows by hand (snapshot keeps the current
-- state in its own statement, from the rows it writes, and says so for the statement's
-- duration in health_score.current_state_kept_by): the entities whose rows were deleted or
-- updated are recomputed from the history. An INSERT has no transition table (capturing the
-- inserted rows, components and all, was most of what the current state cost a snapshot), so
-- rows inserted by hand make the whole current state be recomputed.
CREATE FUNCTION health_score_internal._maintain_current_state() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE health_score_internal.current_state;
    ELSIF current_setting('health_score.current_state_kept_by', true) = 'snapshot' THEN
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        EXECUTE health_score_internal._current_state_sql(
            'SELECT model, entity_key FROM health_score_internal.score_rows UNION ALL SELECT model, entity_key FROM health_score_internal.current_state');
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE health_score_internal._current_state_sql(
            'SELECT model, entity_key FROM old_rows UNION ALL SELECT model, entity_key FROM new_rows');
    ELSE
        EXECUTE health_score_internal._current_state_sql('SELECT model, entity_key FROM old_rows');
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION health_score_internal._maintain_current_state() IS
    'Trigger of health_score_internal.score_rows: keeps health_score_internal.current_state exact after every INSERT, UPDATE, DELETE and TRUNCATE that snapshot did not make';
CREATE TRIGGER current_state_after_insert AFTER INSERT ON health_score_internal.score_rows
    FOR EACH STATEMENT EXECUTE FUNCTION health_score_internal._maintain_current_state();
CREATE TRIGGER current_state_after_update AFTER UPDATE ON health_score_internal.score_rows
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION health_score_internal._maintain_current_state();
CREATE TRIGGER current_state_after_delete AFTER DELETE ON health_score_internal.score_rows
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION health_score_internal._maintain_current_state();
CREATE TRIGGER current_state_after_truncate AFTER TRUNCATE ON health_score_internal.score_rows
    FOR EACH STATEMENT EXECUTE FUNCTION health_score_internal._maintain_current_state();
-- PostgreSQL calls it itself
REVOKE EXECUTE ON FUNCTION health_score_internal._maintain_current_state() FROM PUBLIC;

-- The current state, kept by snapshot and the triggers of the history: one row per entity, however
-- long the history (one entity is a probe of its primary key).
CREATE VIEW health_score.latest AS
SELECT c.model, c.entity_key, c.scored_at, c.model_version, c.score, c.band, c.band_rank, c.coverage, c.segment,
       c.previous_at, c.previous_score, c.previous_band, c.previous_band_rank, c.score - c.previous_score AS delta,
       CASE WHEN c.previous_at IS NULL THEN 'new'
            WHEN c.band_rank < c.previous_band_rank THEN 'worsened'
            WHEN c.band_rank > c.previous_band_rank THEN 'improved'
            WHEN c.band_rank = c.previous_band_rank THEN 'same'
       END AS band_change
  FROM health_score_internal.current_state c;
COMMENT ON VIEW health_score.latest IS 'Per model and entity: the latest snapshot, the one before it, the change in score and the band change';
COMMENT ON COLUMN health_score.latest.model IS 'Model name';
COMMENT ON COLUMN health_score.latest.entity_key IS 'The entity (account) key';
COMMENT ON COLUMN health_score.latest.scored_at IS 'Time of the latest snapshot';
COMMENT ON COLUMN health_score.latest.model_version IS 'The model version that scored the latest snapshot';
COMMENT ON COLUMN health_score.latest.score IS 'Latest score';
COMMENT ON COLUMN health_score.latest.band IS 'Latest band';
COMMENT ON COLUMN health_score.latest.band_rank IS 'Latest band''s rank (0 = the worst)';
COMMENT ON COLUMN health_score.latest.coverage IS 'Latest coverage';
COMMENT ON COLUMN health_score.latest.segment IS 'Latest segment override applied';
COMMENT ON COLUMN health_score.latest.previous_at IS 'Time of the snapshot before the latest, NULL for a new entity';
COMMENT ON COLUMN health_score.latest.previous_score IS 'Score of the snapshot before the latest';
COMMENT ON COLUMN health_score.latest.previous_band IS 'Band of the snapshot before the latest';
COMMENT ON COLUMN health_score.latest.previous_band_rank IS 'Band rank of the snapshot before the latest';
COMMENT ON COLUMN health_score.latest.delta IS 'score - previous_score';
COMMENT ON COLUMN health_score.latest.band_change IS 'worsened, improved or same by band rank; new without a previous snapshot; NULL when either has no band';

CREATE FUNCTION health_score.alerts(model text, min_drop double precision, since interval)
    RETURNS TABLE (entity_key text, baseline_at timestamptz, baseline_score double precision, baseline_band text,
                   latest_at timestamptz, latest_score double precision, latest_band text,
                   score_change double precision, band_change text, drivers jsonb)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM health_score_internal._require_model_name('alerts', alerts.model);
    IF alerts.since IS NULL OR alerts.since < interval '0' THEN
        RAISE EXCEPTION 'alerts: since must be a non-negative interval' USING ERRCODE = '22023',
            HINT = 'how far back from each entity''s latest snapshot to compare, such as interval ''30 days''';
    END IF;
    IF alerts.min_drop IS NULL OR alerts.min_drop = 'NaN' OR alerts.min_drop < 0 THEN
        RAISE EXCEPTION 'alerts: min_drop must be a number of points, 0 or more, not %', coalesce(alerts.min_drop::text, 'NULL')
            USING ERRCODE = '22023',
            HINT = 'the score drop that raises an alert on its own, such as 10; ''Infinity'' alerts on band drops only';
    END IF;
    BEGIN
        IF health_score_internal._is_citus_table('health_score_internal.score_rows') THEN
            -- A distributed history (docs/scale-out.md): the same pairs from joins Citus runs
            -- on the workers, each entity's rows and state on one of them (the probes below are
            -- correlated subqueries, which Citus does not send there). Each entity's baseline
            -- is its snapshot before the latest that is at or before (latest - since), the
            -- latest such, else the earliest one after it.
            RETURN QUERY
            SELECT l.entity_key, b.scored_at, b.score, b.band, l.scored_at, l.score, l.band, l.score - b.score,
                   CASE WHEN l.band_rank < b.band_rank THEN 'worsened' WHEN l.band_rank > b.band_rank THEN 'improved'
                        WHEN l.band_rank = b.band_rank THEN 'same' END,
                   health_score_internal._drivers(alerts.model,
                       b.model_version, coalesce(b.components, health_score_internal._record_components(b.model || '@' || b.model_version, b.record)),
                       r.model_version, coalesce(r.components, health_score_internal._record_components(r.model || '@' || r.model_version, r.record)),
                       true)
              FROM health_score_internal.current_state l
              JOIN (SELECT DISTINCT ON (s.entity_key) s.*
                      FROM health_score_internal.score_rows s
                      JOIN health_score_internal.current_state c ON c.model = s.model AND c.entity_key = s.entity_key
                     WHERE s.model = alerts.model
                       AND (s.scored_at < c.scored_at OR s.scored_at <= c.scored_at - alerts.since)
                     ORDER BY s.entity_key, s.scored_at <= c.scored_at - alerts.since DESC,
                              CASE WHEN s.scored_at <= c.scored_at - alerts.since THEN s.scored_at END DESC NULLS LAST,
                              s.scored_at) b ON b.entity_key = l.entity_key
              JOIN health_score_internal.score_rows r
                ON r.model = l.model AND r.entity_key = l.entity_key AND r.scored_at = l.scored_at
             WHERE l.model = alerts.model
               AND (l.band_rank < b.band_rank OR b.score - l.score >= alerts.min_drop)
             ORDER BY l.score - b.score, l.entity_key;
            RETURN;
        END IF;
        RETURN QUERY
        -- Each entity's latest snapshot is its current state; its baseline, two probes of the
        -- history's primary key; the components are read back only for the entities that
        -- raise an alert.
        WITH pairs AS (
            SELECT l.entity_key, b.scored_at AS b_at, l.scored_at AS l_at, b.score AS b_score, l.score AS l_score,
                   b.band AS b_band, l.band AS l_band, b.band_rank AS b_rank, l.band_rank AS l_rank,
                   b.model_version AS b_version, l.model_version AS l_version
              FROM health_score_internal.current_state l
              -- the last snapshot at or before (latest - since)
              LEFT JOIN LATERAL (
                  SELECT s.scored_at, s.score, s.band, s.band_rank, s.model_version FROM health_score_internal.score_rows s
                   WHERE s.model = l.model AND s.entity_key = l.entity_key AND s.scored_at <= l.scored_at - alerts.since
                   ORDER BY s.scored_at DESC LIMIT 1) before_window ON true
              -- else the earliest one after it and before the latest (looked up only then)
              LEFT JOIN LATERAL (
                  SELECT s.scored_at, s.score, s.band, s.band_rank, s.model_version FROM health_score_internal.score_rows s
                   WHERE before_window.scored_at IS NULL
                     AND s.model = l.model AND s.entity_key = l.entity_key AND s.scored_at < l.scored_at
                   ORDER BY s.scored_at LIMIT 1) in_window ON true
              CROSS JOIN LATERAL (
                  SELECT before_window.* WHERE before_window.scored_at IS NOT NULL
                  UNION ALL
                  SELECT in_window.* WHERE in_window.scored_at IS NOT NULL) b
             WHERE l.model = alerts.model
               AND (l.band_rank < b.band_rank OR b.score - l.score >= alerts.min_drop)
        )
        SELECT p.entity_key, p.b_at, p.b_score, p.b_band, p.l_at, p.l_score, p.l_band, p.l_score - p.b_score,
               CASE WHEN p.l_rank < p.b_rank THEN 'worsened' WHEN p.l_rank > p.b_rank THEN 'improved'
                    WHEN p.l_rank = p.b_rank THEN 'same' END,
               (SELECT health_score_internal._drivers(alerts.model, p.b_version, sb.components, p.l_version, sl.components, true)
                  FROM health_score.scores sb, health_score.scores sl
                 WHERE sb.model = alerts.model AND sb.entity_key = p.entity_key AND sb.scored_at = p.b_at
                   AND sl.model = alerts.model AND sl.entity_key = p.entity_key AND sl.scored_at = p.l_at)
          FROM pairs p
         ORDER BY p.l_score - p.b_score, p.entity_key;
    EXCEPTION WHEN datetime_field_overflow THEN
        RAISE EXCEPTION 'alerts: a latest snapshot time minus since (%) is before the earliest time PostgreSQL represents', alerts.since
            USING ERRCODE = '22023', HINT = 'compare over days, months or years, such as interval ''30 days''';
    END;
END
$$;
COMMENT ON FUNCTION health_score.alerts(text, double precision, interval) IS
    'Entities whose band fell, or whose score fell by at least min_drop, from their last snapshot at or before (latest - since) (or their earliest inside that window) to their latest; with the drivers of the change, biggest drops first';

GRANT SELECT ON health_score.latest, health_score_internal.current_state TO health_score_reader;
-- whoever changes the history keeps the current state with their own rights
GRANT INSERT, UPDATE, DELETE ON health_score_internal.current_state TO health_score_admin;
