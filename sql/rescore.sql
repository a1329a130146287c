-------------------------------------------------------------------------------------------
-- Rescoring history under another model version
-------------------------------------------------------------------------------------------

CREATE TABLE health_score.rescored (
    model            text COLLATE "C" NOT NULL,
    model_version    integer          NOT NULL,
    entity_key       text COLLATE "C" NOT NULL,
    scored_at        timestamptz      NOT NULL,
    original_version integer          NOT NULL,
    score            double precision,
    band             text,
    band_rank        integer,
    coverage         double precision NOT NULL,
    segment          text,
    components       jsonb            NOT NULL,
    rescored_at      timestamptz      NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (model, model_version, entity_key, scored_at)
);
COMMENT ON TABLE health_score.rescored IS
    'Past snapshots of health_score.scores recomputed under another model version by health_score.rescore, side by side with the originals (which are never touched). Kept by pg_dump.';
COMMENT ON COLUMN health_score.rescored.model IS 'Model name';
COMMENT ON COLUMN health_score.rescored.model_version IS 'The version the stored inputs were rescored with';
COMMENT ON COLUMN health_score.rescored.entity_key IS 'The entity (account) key, as text';
COMMENT ON COLUMN health_score.rescored.scored_at IS 'The original snapshot''s time';
COMMENT ON COLUMN health_score.rescored.original_version IS 'The version that scored the original snapshot';
COMMENT ON COLUMN health_score.rescored.score IS 'The score under model_version';
COMMENT ON COLUMN health_score.rescored.band IS 'The band under model_version';
COMMENT ON COLUMN health_score.rescored.band_rank IS 'The band''s position in the bands list applied (0 = the worst)';
COMMENT ON COLUMN health_score.rescored.coverage IS 'Share of the model covered by present, valid inputs';
COMMENT ON COLUMN health_score.rescored.segment IS 'The segment override applied, NULL for the base model';
COMMENT ON COLUMN health_score.rescored.components IS 'Per component: {"points", "n"}, as in health_score.scores';
COMMENT ON COLUMN health_score.rescored.rescored_at IS 'When the row was (last) rescored';
SELECT pg_catalog.pg_extension_config_dump('health_score.rescored', '');

CREATE FUNCTION health_score.rescore(model text, version integer, from_at timestamptz, to_at timestamptz)
    RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    model_name text;
    pinned text;
    keys text[];
    without_inputs bigint;
    lacking bigint;
    written bigint;
BEGIN
    PERFORM health_score_internal._require_coordinator('rescore');
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
    model_name := health_score_internal._model_name(rescore.model);
    pinned := model_name || '@' || rescore.version;
    PERFORM health_score_internal._resolve_model(pinned);
    -- one rescore per model version at a time: two over overlapping ranges would update the
    -- same rows, in whatever order each one's plan reads them (a deadlock waiting to happen)
    PERFORM health_score_internal._lock('rescore', pinned);
    keys := health_score_internal._input_keys(pinned);
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
                   health_score_internal._snapshot_row(pinned, 'entity_key', s.entity_key, s.inputs) AS e
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
COMMENT ON FUNCTION health_score.rescore(text, integer, timestamptz, timestamptz) IS
    'Recomputes the snapshots of a model taken between from_at and to_at (inclusive) under another version from their stored inputs, into health_score.rescored (originals untouched); rows without stored inputs are skipped and counted in a NOTICE, as are rows lacking an input the version reads (counted as missing); returns the rows written. backtest(..., history => ''rescored'') reads them';

GRANT SELECT ON health_score.rescored TO health_score_reader;
GRANT INSERT, UPDATE, DELETE ON health_score.rescored TO health_score_admin;
REVOKE EXECUTE ON FUNCTION health_score.rescore(text, integer, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score.rescore(text, integer, timestamptz, timestamptz) TO health_score_admin;
