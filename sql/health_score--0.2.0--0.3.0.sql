-- health_score 0.2.0 -> 0.3.0, the version being written (docs/upgrading.md): every change
-- to an SQL object since 0.2.0, in the order made. Frozen when 0.3.0 is released.
\echo Use "ALTER EXTENSION health_score UPDATE TO '0.3.0'" to load this file. \quit

-- rescore: a version reference as the model ('churn@5') is 22023 (its version was ignored)
CREATE OR REPLACE FUNCTION health_score.rescore(model text, version integer, from_at timestamptz, to_at timestamptz)
    RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    model_name text := regexp_replace(rescore.model, '@[^@]*$', '');
    pinned text;
    keys text[];
    without_inputs bigint;
    lacking bigint;
    written bigint;
BEGIN
    IF rescore.model IS NULL OR rescore.version IS NULL OR rescore.from_at IS NULL OR rescore.to_at IS NULL THEN
        RAISE EXCEPTION 'rescore: model, version, from_at and to_at must not be NULL' USING ERRCODE = '22023',
            HINT = 'for example health_score.rescore(''churn'', 2, ''2026-01-01'', now())';
    END IF;
    IF pg_catalog.strpos(rescore.model, '@') > 0 THEN
        RAISE EXCEPTION 'rescore: give the model''s name, not a version (%): the version to rescore with is the second argument',
            pg_catalog.left(rescore.model, 200) USING ERRCODE = '22023',
            HINT = 'for example health_score.rescore(''churn'', 2, ''2026-01-01'', now()) rescores churn''s snapshots with its version 2';
    END IF;
    IF rescore.from_at > rescore.to_at THEN
        RAISE EXCEPTION 'rescore: from_at (%) is after to_at (%)', rescore.from_at, rescore.to_at USING ERRCODE = '22023',
            HINT = 'the snapshots rescored are those from from_at to to_at, both included';
    END IF;
    pinned := model_name || '@' || rescore.version;
    PERFORM health_score._resolve_model(pinned);
    -- one rescore per model version at a time: two over overlapping ranges would update the
    -- same rows, in whatever order each one's plan reads them (a deadlock waiting to happen)
    PERFORM pg_advisory_xact_lock(hashtext('health_score.rescore'), hashtext(pinned));
    keys := health_score._input_keys(pinned);
    SELECT count(*) FILTER (WHERE s.inputs IS NULL), count(*) FILTER (WHERE s.inputs IS NOT NULL AND NOT s.inputs ?& keys)
      INTO without_inputs, lacking
      FROM health_score.scores s
     WHERE s.model = model_name AND s.scored_at BETWEEN rescore.from_at AND rescore.to_at;
    IF without_inputs > 0 THEN
        RAISE NOTICE 'rescore: skipped % snapshot row(s) stored without inputs (snapshotted with keep_inputs => false, or before inputs were kept)', without_inputs;
    END IF;
    IF lacking > 0 THEN
        RAISE NOTICE 'rescore: % row(s) lack an input that version % reads; it counts as missing there', lacking, rescore.version;
    END IF;
    INSERT INTO health_score.rescored AS t
           (model, model_version, entity_key, scored_at, original_version, score, band, band_rank, coverage, segment, components)
    SELECT model_name, rescore.version, r.entity_key, r.scored_at, r.model_version,
           (r.e).score, (r.e).band, (r.e).band_rank, (r.e).coverage, (r.e).segment, (r.e).components
      FROM (SELECT s.entity_key, s.scored_at, s.model_version,
                   health_score._snapshot_row(pinned, 'entity_key', s.entity_key, s.inputs) AS e
              FROM health_score.scores s
             WHERE s.model = model_name AND s.scored_at BETWEEN rescore.from_at AND rescore.to_at
               AND s.inputs IS NOT NULL
            OFFSET 0) r
    ON CONFLICT ON CONSTRAINT rescored_pkey DO UPDATE
       SET original_version = excluded.original_version, score = excluded.score, band = excluded.band,
           band_rank = excluded.band_rank, coverage = excluded.coverage, segment = excluded.segment,
           components = excluded.components, rescored_at = excluded.rescored_at;
    GET DIAGNOSTICS written = ROW_COUNT;
    RAISE NOTICE 'rescore: wrote % row(s) of % under version %', written, model_name, rescore.version;
    RETURN written;
END
$$;
