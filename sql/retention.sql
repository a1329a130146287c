-------------------------------------------------------------------------------------------
-- Retention: how long each model's snapshots are kept, the period of its partitions, and
-- the function that drops the partitions past it
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score.set_retention(model text, keep interval) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM health_score_internal._require_coordinator('set_retention');
    PERFORM health_score_internal._require_model_name('set_retention', set_retention.model);
    IF set_retention.keep < interval '1 day' THEN
        RAISE EXCEPTION 'set_retention: keep must be at least a day, not %', set_retention.keep USING ERRCODE = '22023',
            HINT = 'how long snapshots are kept, such as interval ''400 days''; NULL keeps them for ever';
    END IF;
    PERFORM health_score_internal._set_retention(set_retention.model, true, set_retention.keep, NULL);
END
$$;
COMMENT ON FUNCTION health_score.set_retention(text, interval) IS
    'How long a model''s snapshots are kept (at least a day; NULL: for ever): health_score.apply_retention drops the partitions whose every snapshot is older';

CREATE FUNCTION health_score.set_partitioning(model text, partition_by text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM health_score_internal._require_coordinator('set_partitioning');
    PERFORM health_score_internal._require_model_name('set_partitioning', set_partitioning.model);
    IF set_partitioning.partition_by IS NULL OR set_partitioning.partition_by NOT IN ('day', 'week', 'month', 'quarter', 'year') THEN
        RAISE EXCEPTION 'set_partitioning: partition_by must be day, week, month, quarter or year, not %',
            coalesce(quote_literal(left(set_partitioning.partition_by, 200)), 'NULL') USING ERRCODE = '22023',
            HINT = 'a month (the default) suits nightly snapshots; retention drops whole partitions, so a shorter period drops closer to the limit';
    END IF;
    PERFORM health_score_internal._set_retention(set_partitioning.model, false, NULL, set_partitioning.partition_by);
END
$$;
COMMENT ON FUNCTION health_score.set_partitioning(text, text) IS
    'The period (UTC) of a model''s new history partitions: day, week, month (the default), quarter or year; existing partitions keep theirs';

-- SECURITY DEFINER (docs/security.md): health_score.retention is the owner's to write; the
-- public functions above validate, and only admins may call either.
CREATE FUNCTION health_score_internal._set_retention(model text, set_keep boolean, keep interval, partition_by text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO health_score.retention AS r (model, keep, partition_by, set_by)
    VALUES (_set_retention.model, _set_retention.keep, coalesce(_set_retention.partition_by, 'month'), session_user)
    ON CONFLICT ON CONSTRAINT retention_pkey DO UPDATE
       SET keep = CASE WHEN _set_retention.set_keep THEN excluded.keep ELSE r.keep END,
           partition_by = coalesce(_set_retention.partition_by, r.partition_by),
           set_at = excluded.set_at, set_by = excluded.set_by;
END
$$;
COMMENT ON FUNCTION health_score_internal._set_retention(text, boolean, interval, text) IS
    'Writes a model''s row of health_score.retention for set_retention and set_partitioning';

-- SECURITY DEFINER (docs/security.md): partitions are the owner's to drop. Runs under the
-- models' snapshot locks, so that a snapshot of a model waits for it (or it for the
-- snapshot); it reads and writes only the extension's tables.
CREATE FUNCTION health_score.apply_retention(model text DEFAULT NULL, at timestamptz DEFAULT now())
    RETURNS TABLE (dropped_model text, from_at timestamptz, to_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    policy record;
    p record;
    kept_from timestamptz;
BEGIN
    PERFORM health_score_internal._require_coordinator('apply_retention');
    IF apply_retention.at IS NULL OR NOT isfinite(apply_retention.at) THEN
        RAISE EXCEPTION 'apply_retention: at must be a finite time' USING ERRCODE = '22023',
            HINT = 'leave it out for now()';
    END IF;
    IF apply_retention.model IS NOT NULL THEN
        PERFORM health_score_internal._require_model_name('apply_retention', apply_retention.model);
    END IF;
    -- Locks in the order snapshot takes them, so that neither waits for the other in a cycle:
    -- each model's snapshot lock (all of them first, in one order), then the catalog of
    -- partitions (as _ensure_partition), then the partitioned table (by DROP TABLE).
    PERFORM health_score_internal._lock('snapshot', r.model) FROM health_score.retention r
      WHERE r.keep IS NOT NULL AND (apply_retention.model IS NULL OR r.model = apply_retention.model)
      ORDER BY r.model;
    LOCK TABLE health_score_internal.partitions IN SHARE ROW EXCLUSIVE MODE;
    FOR policy IN SELECT r.model, r.keep FROM health_score.retention r
                   WHERE r.keep IS NOT NULL AND (apply_retention.model IS NULL OR r.model = apply_retention.model)
                   ORDER BY r.model LOOP
        kept_from := NULL;
        FOR p IN SELECT q.partition_name, q.from_at, q.to_at FROM health_score_internal.partitions q
                  WHERE q.model = policy.model AND q.to_at <= apply_retention.at - policy.keep ORDER BY q.from_at LOOP
            EXECUTE format('DROP TABLE health_score_internal.%I', p.partition_name);
            DELETE FROM health_score_internal.partitions q WHERE q.partition_name = p.partition_name;
            kept_from := greatest(kept_from, p.to_at);
            dropped_model := policy.model; from_at := p.from_at; to_at := p.to_at;
            RETURN NEXT;
        END LOOP;
        CONTINUE WHEN kept_from IS NULL;
        -- every snapshot of the model before kept_from is gone: so are the run records, the
        -- current state of entities with none after, and the previous snapshot of the others
        -- when it was one of them
        DELETE FROM health_score.snapshots s WHERE s.model = policy.model AND s.scored_at < kept_from;
        DELETE FROM health_score_internal.current_state c WHERE c.model = policy.model AND c.scored_at < kept_from;
        UPDATE health_score_internal.current_state c
           SET previous_at = NULL, previous_score = NULL, previous_band = NULL, previous_band_rank = NULL,
               previous_model_band = NULL
         WHERE c.model = policy.model AND c.previous_at < kept_from;
    END LOOP;
END
$$;
COMMENT ON FUNCTION health_score.apply_retention(text, timestamptz) IS
    'Drops, for one model or every model with a retention (health_score.set_retention), the history partitions whose every snapshot is older than at - keep, with their run records; returns the partitions dropped. Schedule it with pg_cron';

-- A history partition's rows (as last counted) and bytes: on a Citus cluster its shards', summed
-- (the coordinator's table is an empty shell; health_score.distribute)
CREATE FUNCTION health_score_internal._partition_size(partition regclass, OUT estimated_rows bigint, OUT bytes bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT health_score_internal._is_citus_table(_partition_size.partition) THEN
        SELECT c.reltuples::bigint, pg_total_relation_size(c.oid) INTO estimated_rows, bytes
          FROM pg_class c WHERE c.oid = _partition_size.partition;
        RETURN;
    END IF;
    EXECUTE 'SELECT pg_catalog.citus_total_relation_size($1)' INTO bytes USING _partition_size.partition;
    -- each shard's count, as its worker last took it (-1 when none ever did)
    EXECUTE $q$SELECT CASE WHEN bool_and(r.result::float8 < 0) THEN -1 ELSE sum(greatest(r.result::float8, 0)) END::bigint
                 FROM pg_catalog.run_command_on_shards($1, 'SELECT reltuples FROM pg_catalog.pg_class WHERE oid = ''%s''::pg_catalog.regclass') r
                WHERE r.success$q$
       INTO estimated_rows USING _partition_size.partition;
END
$$;
COMMENT ON FUNCTION health_score_internal._partition_size(regclass) IS
    'A history partition''s estimated rows and bytes (indexes included), its shards'' summed on a Citus cluster';

CREATE VIEW health_score.history_partitions AS
SELECT p.model, p.from_at, p.to_at, p.partition_name, s.estimated_rows, s.bytes, p.to_at + r.keep AS drop_after
  FROM health_score_internal.partitions p
  LEFT JOIN pg_catalog.pg_class c
         ON c.relname = p.partition_name AND c.relnamespace = 'health_score_internal'::pg_catalog.regnamespace
  LEFT JOIN LATERAL health_score_internal._partition_size(c.oid::pg_catalog.regclass) s ON true
  LEFT JOIN health_score.retention r ON r.model = p.model;
COMMENT ON VIEW health_score.history_partitions IS 'The partitions of the snapshot history: per model and period, its size and when retention drops it';
COMMENT ON COLUMN health_score.history_partitions.model IS 'Model name';
COMMENT ON COLUMN health_score.history_partitions.from_at IS 'The partition holds the snapshots at or after this time';
COMMENT ON COLUMN health_score.history_partitions.to_at IS '... and before this time';
COMMENT ON COLUMN health_score.history_partitions.partition_name IS 'The table in schema health_score_internal';
COMMENT ON COLUMN health_score.history_partitions.estimated_rows IS 'Rows, as last counted by VACUUM or ANALYZE (-1: never); on a Citus cluster, summed over its shards';
COMMENT ON COLUMN health_score.history_partitions.bytes IS 'Its size on disk, indexes included (on a Citus cluster, its shards'' on every worker)';
COMMENT ON COLUMN health_score.history_partitions.drop_after IS 'health_score.apply_retention drops it from this time on; NULL without a retention';

GRANT SELECT ON health_score.history_partitions, health_score_internal.partitions TO health_score_reader;
REVOKE EXECUTE ON FUNCTION health_score.set_retention(text, interval), health_score.set_partitioning(text, text),
    health_score_internal._set_retention(text, boolean, interval, text), health_score.apply_retention(text, timestamptz)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score.set_retention(text, interval), health_score.set_partitioning(text, text),
    health_score_internal._set_retention(text, boolean, interval, text), health_score.apply_retention(text, timestamptz)
  TO health_score_admin;
