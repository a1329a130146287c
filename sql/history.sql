-------------------------------------------------------------------------------------------
-- History: snapshots, the history view, drivers of change (the current state, latest and
-- alerts: latest.sql)
-------------------------------------------------------------------------------------------

-- The snapshots themselves are stored in health_score_internal.score_rows and read through
-- the health_score.scores view (storage.sql).

CREATE TABLE health_score.snapshots (
    model         text COLLATE "C" NOT NULL,
    scored_at     timestamptz      NOT NULL,
    source        text             NOT NULL,
    model_version integer          NOT NULL,
    rows_written  bigint           NOT NULL,
    worsened      bigint           NOT NULL,
    finished_at   timestamptz      NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (model, scored_at, source)
);
COMMENT ON TABLE health_score.snapshots IS 'One row per snapshot run (model, time and source): what health_score.scores holds, by time. Kept by pg_dump.';
COMMENT ON COLUMN health_score.snapshots.model IS 'Model name';
COMMENT ON COLUMN health_score.snapshots.scored_at IS 'The snapshot time';
COMMENT ON COLUMN health_score.snapshots.source IS 'The table or view scored';
COMMENT ON COLUMN health_score.snapshots.model_version IS 'The model version used';
COMMENT ON COLUMN health_score.snapshots.rows_written IS 'Rows written (inserted or replaced)';
COMMENT ON COLUMN health_score.snapshots.worsened IS 'Entities whose band rank fell from their previous snapshot';
COMMENT ON COLUMN health_score.snapshots.finished_at IS 'When the run finished';
SELECT pg_catalog.pg_extension_config_dump('health_score.snapshots', '');

CREATE TYPE health_score_internal._snapshot_row AS (
    score      double precision,
    band       text,
    band_rank  integer,
    coverage   double precision,
    segment    text,
    components jsonb
);
COMMENT ON TYPE health_score_internal._snapshot_row IS 'One entity as health_score.snapshot stores it';

CREATE FUNCTION health_score_internal._snapshot_row(model text, key_column text, entity_key text, input record)
    RETURNS health_score_internal._snapshot_row
    AS 'MODULE_PATHNAME', 'hs_snapshot_row' LANGUAGE C STABLE PARALLEL SAFE COST 50
    SUPPORT health_score_internal._row_support;
COMMENT ON FUNCTION health_score_internal._snapshot_row(text, text, text, record) IS
    'snapshot''s per-row work: scores one entity with its components; errors name the entity''s key';
CREATE FUNCTION health_score_internal._snapshot_row_columns(model text, key_column text, entity_key text, row_type oid, columns text[], VARIADIC "any")
    RETURNS health_score_internal._snapshot_row
    AS 'MODULE_PATHNAME', 'hs_snapshot_row_columns' LANGUAGE C STABLE PARALLEL SAFE COST 50;
COMMENT ON FUNCTION health_score_internal._snapshot_row_columns(text, text, text, oid, text[], "any") IS
    'health_score_internal._snapshot_row as the planner passes it: the row''s columns as arguments';

CREATE FUNCTION health_score_internal._snapshot_row(model text, key_column text, entity_key text, input jsonb)
    RETURNS health_score_internal._snapshot_row
    AS 'MODULE_PATHNAME', 'hs_snapshot_row_json' LANGUAGE C STABLE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION health_score_internal._snapshot_row(text, text, text, jsonb) IS
    'rescore''s per-row work: scores one entity''s stored inputs with its components; errors name the entity''s key';
CREATE FUNCTION health_score_internal._text_object(keys text[], vals text[]) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'hs_text_object' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._text_object(text[], text[]) IS
    'jsonb_object(keys, vals) for distinct keys, written directly: the inputs a snapshot keeps';
CREATE FUNCTION health_score_internal._input_keys(model text) RETURNS text[]
    AS 'MODULE_PATHNAME', 'hs_input_keys' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._input_keys(text) IS
    'The input keys a model reference reads (leaf inputs and the segment input), in model order';

CREATE FUNCTION health_score_internal._model_name(model text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_model_name' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._model_name(text) IS
    'The name of a model reference (''churn'' of ''churn@3''), parsed as every function parses one; 22023 for a malformed reference';

CREATE FUNCTION health_score_internal._resolve_model(model text) RETURNS integer
    AS 'MODULE_PATHNAME', 'hs_resolve_model' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._resolve_model(text) IS
    'The version a model reference (''name'' or ''name@3'') stands for now; 42704, with the closest names, when there is none';

-- 42703 unless the relation has the column; "caller" prefixes the message. Without a hint of
-- the caller's, the hint lists the relation's columns.
CREATE FUNCTION health_score_internal._require_column(caller text, source regclass, column_name text, hint text DEFAULT NULL)
    RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF _require_column.source IS NULL OR _require_column.column_name IS NULL THEN
        RAISE EXCEPTION '%: the table and the column name must not be NULL', left(caller, 200) USING ERRCODE = '22023',
            HINT = coalesce(left(_require_column.hint, 300), 'name a table or view, and one of its columns');
    END IF;
    IF NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = _require_column.source
                      AND a.attname = _require_column.column_name AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION '%: % has no column %', left(caller, 200), source, quote_ident(left(column_name, 200))
            USING ERRCODE = '42703', HINT = coalesce(left(_require_column.hint, 300), health_score_internal._columns_hint(source));
    END IF;
END
$$;
CREATE FUNCTION health_score_internal._columns_hint(source regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT format('%s has the columns %s%s', source,
                  string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FILTER (WHERE a.n <= 30),
                  CASE WHEN count(*) > 30 THEN format(' and %s more', count(*) - 30) ELSE '' END)
      FROM (SELECT a.attname, a.attnum, row_number() OVER (ORDER BY a.attnum) AS n
              FROM pg_attribute a WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped) a
$$;
COMMENT ON FUNCTION health_score_internal._columns_hint(regclass) IS
    'A hint for a column that is not there: the relation''s columns (the first 30)';
COMMENT ON FUNCTION health_score_internal._require_column(text, regclass, text, text) IS
    'Raises 42703, prefixed by the calling function''s name, unless the table or view has the column (22023 when either is NULL)';

-- The manual inputs applied to a snapshot row, with the model's own band beside the override
-- that replaced it. Immutable (to_jsonb of a text is; PostgreSQL marks it stable for every
-- type), which Citus requires of a function in a CASE of a distributed write.
CREATE FUNCTION health_score_internal._with_model_band(manual jsonb, model_band text) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_set(manual, '{band,model_band}', coalesce(to_jsonb(model_band), 'null'::jsonb))
$$;
COMMENT ON FUNCTION health_score_internal._with_model_band(jsonb, text) IS
    'The manual inputs applied to a snapshot row (health_score.scores'' manual JSON) with "model_band" set in its band override';

CREATE FUNCTION health_score.snapshot(model text, source regclass, key_column text, at timestamptz DEFAULT now(),
                                      keep_inputs boolean DEFAULT true)
    RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    model_name text;
    model_version integer;
    written bigint;
    worsened bigint;
    first_keys text[];
    previous_at timestamptz;
    error_state text;
    error_message text;
    error_detail text;
    error_hint text;
    repeated_key text;
    replacing boolean;
    later boolean;
    inputs_sql text := 'NULL::jsonb';
    target text;
    banded_sql text := 'SELECT * FROM rows';
    scored_sql text := 'SELECT * FROM banded';
    manual_sql text := 'NULL::jsonb';
    manual_join text := '';
    raised bigint;
    distributed boolean;
    hysteresis boolean := false;
    -- rows of the same model, entity and time are replaced
    replace_rows text := 'ON CONFLICT (model, entity_key, scored_at) DO UPDATE
        SET model_version = excluded.model_version, score = excluded.score, band = excluded.band,
            band_rank = excluded.band_rank, coverage = excluded.coverage, segment = excluded.segment,
            record = excluded.record, components = NULL, inputs = excluded.inputs, manual = excluded.manual';
    previous_sql text;
    -- in a distributed history, the rows a replacing snapshot wrote (not those of entities its
    -- source no longer has, left as they were)
    rewritten text := '';
    -- the current state after a snapshot: a later snapshot becomes the latest and the latest
    -- the previous; one at the latest's time replaces it; an earlier one becomes (or
    -- replaces) the previous when it is not before it
    state_upsert text := $u$
            ON CONFLICT (model, entity_key) DO UPDATE
               SET scored_at = greatest(c.scored_at, excluded.scored_at),
                   model_version = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.model_version ELSE c.model_version END,
                   score = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.score ELSE c.score END,
                   band = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.band ELSE c.band END,
                   band_rank = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.band_rank ELSE c.band_rank END,
                   coverage = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.coverage ELSE c.coverage END,
                   segment = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.segment ELSE c.segment END,
                   model_band = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.model_band ELSE c.model_band END,
                   previous_at = CASE WHEN excluded.scored_at > c.scored_at THEN c.scored_at
                                      WHEN excluded.scored_at < c.scored_at
                                       AND (c.previous_at IS NULL OR excluded.scored_at >= c.previous_at) THEN excluded.scored_at
                                      ELSE c.previous_at END,
                   previous_score = CASE WHEN excluded.scored_at > c.scored_at THEN c.score
                                         WHEN excluded.scored_at < c.scored_at
                                          AND (c.previous_at IS NULL OR excluded.scored_at >= c.previous_at) THEN excluded.score
                                         ELSE c.previous_score END,
                   previous_band = CASE WHEN excluded.scored_at > c.scored_at THEN c.band
                                        WHEN excluded.scored_at < c.scored_at
                                         AND (c.previous_at IS NULL OR excluded.scored_at >= c.previous_at) THEN excluded.band
                                        ELSE c.previous_band END,
                   previous_band_rank = CASE WHEN excluded.scored_at > c.scored_at THEN c.band_rank
                                             WHEN excluded.scored_at < c.scored_at
                                              AND (c.previous_at IS NULL OR excluded.scored_at >= c.previous_at) THEN excluded.band_rank
                                             ELSE c.previous_band_rank END,
                   previous_model_band = CASE WHEN excluded.scored_at > c.scored_at THEN c.model_band
                                              WHEN excluded.scored_at < c.scored_at
                                               AND (c.previous_at IS NULL OR excluded.scored_at >= c.previous_at) THEN excluded.model_band
                                              ELSE c.previous_model_band END$u$;
BEGIN
    PERFORM health_score_internal._require_coordinator('snapshot');
    IF snapshot.model IS NULL OR snapshot.source IS NULL OR snapshot.key_column IS NULL OR snapshot.at IS NULL THEN
        RAISE EXCEPTION 'snapshot: model, source, key_column and at must not be NULL' USING ERRCODE = '22023',
            HINT = 'leave at out for now(): health_score.snapshot(''model'', ''accounts'', ''account_id'')';
    END IF;
    IF NOT isfinite(snapshot.at) THEN
        RAISE EXCEPTION 'snapshot: at must be a finite time, not %', snapshot.at USING ERRCODE = '22023',
            HINT = 'the time the scores are stored under, such as now() or ''2026-01-01''';
    END IF;
    model_version := health_score_internal._resolve_model(snapshot.model);
    model_name := health_score_internal._model_name(snapshot.model);
    IF snapshot.keep_inputs THEN
        -- as text: a number's text reads back as the same number, a category's text is itself
        SELECT format('health_score_internal._text_object(%L::text[], ARRAY[%s]::text[])', array_agg(k ORDER BY o),
                      string_agg(format('src.%I::text', k), ', ' ORDER BY o))
          INTO inputs_sql
          FROM health_score_internal._input_keys(model_name || '@' || model_version) keys, unnest(keys) WITH ORDINALITY u(k, o)
         -- an input that names no column is snapshot's error to report (42703, by _snapshot_row)
         WHERE EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = snapshot.source AND a.attname = u.k
                                                     AND a.attnum > 0 AND NOT a.attisdropped)
         GROUP BY keys;
        inputs_sql := coalesce(inputs_sql, 'NULL::jsonb');
    END IF;
    -- under band hysteresis the band stored depends on each entity's band in its latest
    -- snapshot before this one: the current state as the statement began holds it (its
    -- latest, or its previous when this snapshot is not after the latest), else a probe
    IF EXISTS (SELECT FROM health_score.model_versions v
                WHERE v.name = model_name AND v.version = model_version
                  AND (coalesce((v.config->>'band_hysteresis')::float8, 0) > 0
                       OR EXISTS (SELECT FROM jsonb_each(v.config->'segments'->'overrides') o
                                   WHERE coalesce((o.value->>'band_hysteresis')::float8, 0) > 0))) THEN
        hysteresis := true;
        -- (from the model's own band where a band override forced the one stored)
        banded_sql := format($h$
            SELECT r.entity_key, r.score, (r.b).band, (r.b).band_rank, r.coverage, r.segment, r.record,
                   r.band_override, r.band_override_rank, r.manual, r.inputs
              FROM (SELECT r.*, health_score_internal._band_after(%L, r.segment, r.score,
                        CASE WHEN c.scored_at < $3 THEN coalesce(c.model_band, c.band)
                             WHEN c.previous_at < $3 THEN coalesce(c.previous_model_band, c.previous_band)
                             WHEN c.scored_at IS NULL THEN NULL
                             ELSE (SELECT coalesce(p.manual->'band'->>'model_band', p.band) FROM health_score_internal.score_rows p
                                    WHERE p.model = $1 AND p.entity_key = r.entity_key AND p.scored_at < $3
                                    ORDER BY p.scored_at DESC LIMIT 1) END) AS b
                      FROM rows r
                      LEFT JOIN health_score_internal.current_state c ON c.model = $1 AND c.entity_key = r.entity_key
                    OFFSET 0) r$h$, model_name || '@' || model_version);
    END IF;
    -- the CSM inputs active at the snapshot's time, gathered once per entity and joined to
    -- the source (docs/acting.md#csm-inputs); a band override replaces the band stored, and
    -- the model's own band is kept beside it
    IF EXISTS (SELECT FROM health_score.manual_inputs m
                WHERE m.model = model_name AND (m.expires_at IS NULL OR m.expires_at > snapshot.at))
       OR EXISTS (SELECT FROM health_score.band_overrides o
                   WHERE o.model = model_name AND (o.expires_at IS NULL OR o.expires_at > snapshot.at)) THEN
        manual_join := format(' LEFT JOIN (%s) m ON m.entity_key = src.%I::text COLLATE "C"',
                              health_score_internal._manual_sql(model_name, '$3'), snapshot.key_column);
        manual_sql := 'm.manual';
        scored_sql := $o$
            SELECT b.entity_key, b.score, coalesce(b.band_override, b.band) AS band,
                   coalesce(b.band_override_rank, b.band_rank) AS band_rank, b.coverage, b.segment, b.record, b.inputs,
                   CASE WHEN b.band_override IS NULL THEN b.manual
                        ELSE health_score_internal._with_model_band(b.manual, b.band) END AS manual
              FROM banded b$o$;
    END IF;
    PERFORM health_score_internal._require_column('snapshot', snapshot.source, snapshot.key_column,
        'key_column names the column that identifies each entity, such as ''account_id''');
    -- one snapshot per model at a time: concurrent runs neither deadlock nor duplicate
    PERFORM health_score_internal._lock('snapshot', model_name);
    -- every row goes to one partition: written there directly
    target := health_score_internal._ensure_partition(model_name, snapshot.at);
    SELECT max(r.scored_at) INTO previous_at
      FROM health_score.snapshots r WHERE r.model = model_name AND r.scored_at < snapshot.at;
    IF previous_at IS NULL AND NOT EXISTS (SELECT FROM health_score.snapshots r WHERE r.model = model_name) THEN
        -- no run record of the model at all (deleted from health_score.snapshots): the scores
        -- themselves say whether an earlier snapshot exists to compare bands with
        SELECT s.scored_at INTO previous_at
          FROM health_score_internal.score_rows s WHERE s.model = model_name AND s.scored_at < snapshot.at LIMIT 1;
    END IF;
    -- whether an entity has a snapshot after this one (a snapshot of an earlier time than the
    -- latest): then bands are compared otherwise (below)
    later := EXISTS (SELECT 1 FROM health_score_internal.current_state c
                      WHERE c.model = model_name AND c.scored_at > snapshot.at);
    -- rows of this model and time exist only if an earlier run wrote them: then replace them
    replacing := EXISTS (SELECT FROM health_score.snapshots r WHERE r.model = model_name AND r.scored_at = snapshot.at);
    RAISE NOTICE 'snapshot: scoring % with %@% at %', snapshot.source, model_name, model_version, snapshot.at;
    -- a distributed history, or a distributed source, is written in steps Citus can run (below)
    distributed := health_score_internal._is_citus_table('health_score_internal.score_rows')
                   OR health_score_internal._is_citus_table(snapshot.source);
    IF distributed AND NOT health_score_internal._is_citus_table('health_score_internal.model_replica') THEN
        RAISE EXCEPTION 'snapshot: % is distributed by Citus, and its workers have no copy of the model registry', snapshot.source
            USING ERRCODE = '0A000',
            HINT = 'run SELECT health_score.distribute() once on the coordinator (docs/scale-out.md); distribute(history => false) replicates the registry alone';
    END IF;
    IF distributed THEN
        -- each entity's latest snapshot before this one, for hysteresis and for worsened bands:
        -- the current state's latest or previous, or, for a snapshot earlier than an entity's
        -- latest, the history itself
        previous_sql := CASE WHEN NOT later THEN $p$
            SELECT c.entity_key,
                   CASE WHEN c.scored_at < $3 THEN coalesce(c.model_band, c.band)
                        WHEN c.previous_at < $3 THEN coalesce(c.previous_model_band, c.previous_band) END AS model_band,
                   CASE WHEN c.scored_at < $3 THEN c.band_rank WHEN c.previous_at < $3 THEN c.previous_band_rank END AS band_rank
              FROM health_score_internal.current_state c WHERE c.model = $1$p$
            ELSE $p$
            SELECT DISTINCT ON (p.entity_key) p.entity_key, coalesce(p.manual->'band'->>'model_band', p.band) AS model_band,
                   p.band_rank
              FROM health_score_internal.score_rows p WHERE p.model = $1 AND p.scored_at < $3
             ORDER BY p.entity_key, p.scored_at DESC$p$ END;
    END IF;
    LOOP
    BEGIN
    IF distributed THEN
        -- a distributed history (health_score.distribute, docs/scale-out.md) is written in
        -- statements Citus runs on the workers: the rows, scored where the source's rows are and
        -- sent to their entity's shard (unnest keeps the per-row call to one evaluation without
        -- a subquery Citus would run on the coordinator), then, on the colocated shards, the
        -- bands under hysteresis, the worsened bands and the current state. (Into a history on
        -- the coordinator, Citus brings the scored rows there.)
        -- (into a history on the coordinator through the partitioned table, whose triggers
        -- leave the current state to this function: Citus fails an INSERT ... SELECT from a
        -- distributed table into a local partition)
        PERFORM set_config('health_score.current_state_kept_by', 'snapshot', true);
        IF replacing THEN
            rewritten := format('.entity_key IN (SELECT src.%I::text FROM %s AS src)', snapshot.key_column, snapshot.source);
        END IF;
        EXECUTE format($q$
            INSERT INTO health_score_internal.%1$I AS t
                   (model, model_version, entity_key, scored_at, score, band, band_rank, coverage, segment, record, inputs, manual)
            SELECT $1, $2, entity_key, $3, score, coalesce(band_override, band), coalesce(band_override_rank, band_rank),
                   coverage, segment, record, inputs,
                   CASE WHEN band_override IS NULL THEN manual
                        ELSE health_score_internal._with_model_band(manual, band) END
              FROM (SELECT k AS entity_key, (e).*, inputs
                      FROM (SELECT src.%2$I::text AS k,
                                   unnest(ARRAY[health_score_internal._snapshot_record(%3$L, %2$L, src.%2$I::text, %4$s, src)]) AS e,
                                   %5$s AS inputs
                              FROM %6$s AS src%7$s) r) rows
            %8$s$q$,
            CASE WHEN health_score_internal._is_citus_table(('health_score_internal.' || quote_ident(target))::regclass)
                 THEN target ELSE 'score_rows' END,
            snapshot.key_column, model_name || '@' || model_version, manual_sql, inputs_sql,
            snapshot.source, manual_join,
            CASE WHEN replacing THEN replace_rows ELSE '' END)
        USING model_name, model_version, snapshot.at;
        GET DIAGNOSTICS written = ROW_COUNT;
        IF hysteresis THEN
            -- the band kept from the previous one while the score stays within the margin (an
            -- override stays stored, the model's own band beside it)
            EXECUTE format($q$
                UPDATE health_score_internal.%1$I w
                   SET band = CASE WHEN h.overridden THEN w.band ELSE (h.b).band END,
                       band_rank = CASE WHEN h.overridden THEN w.band_rank ELSE (h.b).band_rank END,
                       manual = CASE WHEN h.overridden
                                     THEN health_score_internal._with_model_band(w.manual, (h.b).band)
                                     ELSE w.manual END
                  FROM (SELECT n.entity_key, coalesce(n.manual->'band' ? 'model_band', false) AS overridden,
                               unnest(ARRAY[health_score_internal._band_after(%2$L, n.segment, n.score, p.model_band)]) AS b
                          FROM health_score_internal.%1$I n JOIN (%3$s) p ON p.entity_key = n.entity_key
                         WHERE n.model = $1 AND n.scored_at = $3 AND p.model_band IS NOT NULL%4$s) h
                 WHERE w.model = $1 AND w.scored_at = $3 AND w.entity_key = h.entity_key$q$,
                target, model_name || '@' || model_version, previous_sql, CASE WHEN rewritten <> '' THEN ' AND n' || rewritten ELSE '' END)
            USING model_name, model_version, snapshot.at;
        END IF;
        IF previous_at IS NULL THEN
            worsened := 0;
        ELSE
            EXECUTE format($q$
                WITH worse AS (
                    SELECT w.entity_key FROM health_score_internal.%1$I w JOIN (%2$s) p ON p.entity_key = w.entity_key
                     WHERE w.model = $1 AND w.scored_at = $3 AND w.band_rank < p.band_rank%3$s)
                SELECT (SELECT count(*) FROM worse),
                       (SELECT array_agg(entity_key ORDER BY entity_key) FROM (
                            SELECT entity_key, sum(octet_length(entity_key) * 6 + 3) OVER (ORDER BY entity_key) AS bytes
                              FROM (SELECT entity_key FROM worse ORDER BY entity_key LIMIT 100) f) g
                         WHERE bytes < 7000)$q$,
                target, previous_sql, CASE WHEN rewritten <> '' THEN ' AND w' || rewritten ELSE '' END)
            USING model_name, model_version, snapshot.at
            INTO worsened, first_keys;
        END IF;
        EXECUTE format($q$
            INSERT INTO health_score_internal.current_state AS c
                   (model, entity_key, scored_at, model_version, score, band, band_rank, coverage, segment, model_band)
            SELECT $1, w.entity_key, $3, w.model_version, w.score, w.band, w.band_rank, w.coverage, w.segment,
                   w.manual->'band'->>'model_band'
              FROM health_score_internal.%1$I w WHERE w.model = $1 AND w.scored_at = $3
            %2$s$q$, target, state_upsert)
        USING model_name, model_version, snapshot.at;
        PERFORM set_config('health_score.current_state_kept_by', '', true);
        EXIT;
    END IF;
    -- this statement keeps the current state itself (the triggers of health_score_internal.score_rows
    -- leave it alone while this says so; the setting ends with the statement's block)
    PERFORM set_config('health_score.current_state_kept_by', 'snapshot', true);
    EXECUTE format($q$
        WITH rows AS (
            SELECT k AS entity_key, (e).*, inputs
              FROM (SELECT src.%1$I::text AS k,
                           health_score_internal._snapshot_record(%2$L, %1$L, src.%1$I::text, %9$s, src) AS e, %6$s AS inputs
                      FROM %3$s AS src%10$s OFFSET 0) rows
        ), banded AS (%8$s), scored AS (%11$s), written AS (
            INSERT INTO health_score_internal.%7$I AS t
                   (model, model_version, entity_key, scored_at, score, band, band_rank, coverage, segment, record, inputs, manual)
            SELECT $1, $2, entity_key, $3, score, band, band_rank, coverage, segment, record, inputs, manual FROM scored
            %4$s
            RETURNING t.entity_key, t.model_version, t.score, t.band, t.band_rank, t.coverage, t.segment,
                      t.manual->'band'->>'model_band' AS model_band
        ), kept AS (
            INSERT INTO health_score_internal.current_state AS c
                   (model, entity_key, scored_at, model_version, score, band, band_rank, coverage, segment, model_band)
            SELECT $1, w.entity_key, $3, w.model_version, w.score, w.band, w.band_rank, w.coverage, w.segment, w.model_band
              FROM written w
            %12$s
            RETURNING c.entity_key, c.band_rank, c.previous_band_rank
        ), worse AS (%5$s)
        SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM worse),
               -- the first 100 keys, fewer if they would not fit NOTIFY's 8000-byte payload
               (SELECT array_agg(entity_key ORDER BY entity_key) FROM (
                    SELECT entity_key, sum(octet_length(entity_key) * 6 + 3) OVER (ORDER BY entity_key) AS bytes
                      FROM (SELECT entity_key FROM worse ORDER BY entity_key LIMIT 100) f) g
                 WHERE bytes < 7000)
    $q$, snapshot.key_column, model_name || '@' || model_version, snapshot.source,
         CASE WHEN replacing THEN replace_rows ELSE '' END,
         -- each entity's band against its latest earlier snapshot (none before the first run)
         CASE WHEN previous_at IS NULL THEN 'SELECT NULL::text AS entity_key WHERE false'
         -- no entity has a later snapshot: this one is each entity's latest, and the current
         -- state as it updated it holds the one before
         WHEN NOT later THEN 'SELECT k.entity_key FROM kept k WHERE k.band_rank < k.previous_band_rank'
         -- (the current state as the statement began: its latest, or its previous, is the
         -- latest earlier snapshot unless this one is earlier still)
         ELSE 'SELECT w.entity_key FROM written w
                 JOIN health_score_internal.current_state c ON c.model = $1 AND c.entity_key = w.entity_key
                WHERE w.band_rank < CASE WHEN c.scored_at < $3 THEN c.band_rank
                                         WHEN c.previous_at < $3 THEN c.previous_band_rank
                                         ELSE (SELECT p.band_rank FROM health_score_internal.score_rows p
                                                WHERE p.model = $1 AND p.entity_key = w.entity_key AND p.scored_at < $3
                                                ORDER BY p.scored_at DESC LIMIT 1) END' END,
         inputs_sql, target, banded_sql, manual_sql, manual_join, scored_sql, state_upsert)
    USING model_name, model_version, snapshot.at
    INTO written, worsened, first_keys;
    PERFORM set_config('health_score.current_state_kept_by', '', true);
    EXIT;
    EXCEPTION WHEN OTHERS THEN
        -- the error as it is, without the generated statement as its context
        GET STACKED DIAGNOSTICS error_state = RETURNED_SQLSTATE, error_message = MESSAGE_TEXT,
                                error_detail = PG_EXCEPTION_DETAIL, error_hint = PG_EXCEPTION_HINT;
        -- rows of this model and time whose run record was deleted from health_score.snapshots:
        -- replace them after all (the insert above was rolled back with the block)
        -- under REPEATABLE READ or SERIALIZABLE the rows may also come from a snapshot of the
        -- same time that committed after this transaction began, which it cannot see: replacing
        -- then fails with 40001 (a source that repeats a key fails with 21000, below)
        IF error_state = '23505' AND NOT replacing
           AND (current_setting('transaction_isolation') <> 'read committed'
                OR EXISTS (SELECT 1 FROM health_score_internal.score_rows s WHERE s.model = model_name AND s.scored_at = snapshot.at)) THEN
            replacing := true;
            CONTINUE;
        END IF;
        IF error_state IN ('23505', '21000') THEN
            -- one code for one fault, whichever way the insert met the repeated key
            error_state := '21000';
            -- name one repeated key (the insert's own detail names the primary key's columns)
            EXECUTE format('SELECT k FROM (SELECT src.%1$I::text AS k FROM %2$s AS src) s WHERE k IS NOT NULL
                             GROUP BY k HAVING count(*) > 1 ORDER BY k LIMIT 1', snapshot.key_column, snapshot.source)
               INTO repeated_key;
            error_message := format('snapshot: %s has more than one row for the same %s%s', snapshot.source,
                                    quote_ident(snapshot.key_column), ', such as "' || repeated_key || '"');
            error_detail := NULL;
            error_hint := 'the key column must identify each entity once; aggregate or filter the source in a view';
        ELSIF error_state = '40001' THEN
            error_message := format('snapshot: the snapshot of %s at %s conflicts with a concurrent transaction (%s)',
                                    model_name, snapshot.at, error_message);
            error_hint := 'retry the transaction; under READ COMMITTED (the default) concurrent snapshots wait for each other';
        END IF;
        IF coalesce(error_detail, '') = '' AND coalesce(error_hint, '') = '' THEN
            RAISE EXCEPTION USING ERRCODE = error_state, MESSAGE = error_message;
        ELSIF coalesce(error_detail, '') = '' THEN
            RAISE EXCEPTION USING ERRCODE = error_state, MESSAGE = error_message, HINT = error_hint;
        ELSIF coalesce(error_hint, '') = '' THEN
            RAISE EXCEPTION USING ERRCODE = error_state, MESSAGE = error_message, DETAIL = error_detail;
        ELSE
            RAISE EXCEPTION USING ERRCODE = error_state, MESSAGE = error_message, DETAIL = error_detail, HINT = error_hint;
        END IF;
    END;
    END LOOP;
    INSERT INTO health_score.snapshots AS r (model, scored_at, source, model_version, rows_written, worsened)
    VALUES (model_name, snapshot.at, snapshot.source::text, model_version, written, worsened)
    ON CONFLICT ON CONSTRAINT snapshots_pkey DO UPDATE
       SET model_version = excluded.model_version, rows_written = excluded.rows_written,
           worsened = excluded.worsened, finished_at = excluded.finished_at;
    RAISE NOTICE 'snapshot: wrote % rows of % (% worsened their band)', written, model_name, worsened;
    -- the alert queue: the model's rules on the entities this snapshot made current
    IF EXISTS (SELECT FROM health_score.alert_rules r WHERE r.model = model_name) THEN
        raised := health_score_internal._raise_alert_events(model_name, snapshot.at);
        RAISE NOTICE 'snapshot: raised % alert events', raised;
    END IF;
    IF worsened > 0 THEN
        PERFORM pg_notify('health_score_alerts', json_build_object(
            'model', model_name, 'model_version', model_version, 'scored_at', snapshot.at,
            'worsened', worsened, 'keys', to_json(first_keys),
            'all_keys', worsened = coalesce(cardinality(first_keys), 0))::text);
    END IF;
    RETURN written;
END
$$;
COMMENT ON FUNCTION health_score.snapshot(text, regclass, text, timestamptz, boolean) IS
    'Scores every row of a table or view and stores the results in health_score.scores at time "at" (replacing rows of the same model, entity and time), with the raw inputs the model read unless keep_inputs is false; all or nothing; returns the rows written. Sends NOTIFY health_score_alerts when an entity''s band worsened.';

CREATE VIEW health_score.history AS
SELECT s.model, s.entity_key, s.scored_at, s.model_version, s.score, s.band, s.band_rank, s.coverage, s.segment,
       s.components, lag(s.scored_at) OVER w AS previous_at, lag(s.score) OVER w AS previous_score,
       s.score - lag(s.score) OVER w AS delta
  FROM health_score.scores s
WINDOW w AS (PARTITION BY s.model, s.entity_key ORDER BY s.scored_at);
COMMENT ON VIEW health_score.history IS 'Every snapshot with its change from the entity''s previous one';
COMMENT ON COLUMN health_score.history.model IS 'Model name';
COMMENT ON COLUMN health_score.history.entity_key IS 'The entity (account) key';
COMMENT ON COLUMN health_score.history.scored_at IS 'Snapshot time';
COMMENT ON COLUMN health_score.history.model_version IS 'The model version that scored it';
COMMENT ON COLUMN health_score.history.score IS 'Score';
COMMENT ON COLUMN health_score.history.band IS 'Band';
COMMENT ON COLUMN health_score.history.band_rank IS 'Band rank (0 = the worst)';
COMMENT ON COLUMN health_score.history.coverage IS 'Coverage';
COMMENT ON COLUMN health_score.history.segment IS 'Segment override applied';
COMMENT ON COLUMN health_score.history.components IS 'Per component: points and n';
COMMENT ON COLUMN health_score.history.previous_at IS 'Time of the entity''s previous snapshot';
COMMENT ON COLUMN health_score.history.previous_score IS 'Score of the entity''s previous snapshot';
COMMENT ON COLUMN health_score.history.delta IS 'score - previous_score';

CREATE FUNCTION health_score_internal._components(config jsonb)
    RETURNS TABLE (component text, parent text, model_order integer, description text)
    AS 'MODULE_PATHNAME', 'hs_components' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 20;
COMMENT ON FUNCTION health_score_internal._components(jsonb) IS 'A model''s components in model order (parents first), with their parents and descriptions';

CREATE FUNCTION health_score_internal._drivers(model text, before_version integer, before jsonb, after_version integer,
                                      after jsonb, changed_only boolean)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'hs_drivers' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._drivers(text, integer, jsonb, integer, jsonb, boolean) IS
    'The drivers of change between two snapshots'' components scored by two versions of a model, as a JSON array of {component, parent, points_before, points_after, change}: every component of either version, matched by name and parent (0 points on a side without it), in model order; or, with changed_only, those that changed, most negative first';

-- drivers and alerts compare the snapshots of every version of a model: they take its name,
-- never a version reference, and raise 22023 (NULL, a version) or 42704 (unknown) otherwise.
CREATE FUNCTION health_score_internal._require_model_name(caller text, model text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF _require_model_name.model IS NULL THEN
        RAISE EXCEPTION '%: the model must not be NULL', left(caller, 200) USING ERRCODE = '22023',
            HINT = 'a registered model''s name, such as ''churn''';
    END IF;
    IF pg_catalog.strpos(_require_model_name.model, '@') > 0 THEN
        RAISE EXCEPTION '%: give the model''s name, not a version (%)', left(caller, 200), left(_require_model_name.model, 200)
            USING ERRCODE = '22023',
            HINT = 'snapshots taken by any version of the model are compared; health_score.scores.model_version says which took each';
    END IF;
    PERFORM health_score_internal._resolve_model(_require_model_name.model);
END
$$;
COMMENT ON FUNCTION health_score_internal._require_model_name(text, text) IS
    'Raises, prefixed by the calling function''s name, unless the model is a registered model''s name (not NULL, not a version reference)';

CREATE FUNCTION health_score.drivers(model text, entity_key text, from_at timestamptz, to_at timestamptz)
    RETURNS TABLE (component text, parent text, points_before double precision, points_after double precision, change double precision)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    before_row health_score.scores;
    after_row health_score.scores;
BEGIN
    PERFORM health_score_internal._require_model_name('drivers', drivers.model);
    SELECT * INTO before_row FROM health_score.scores s
     WHERE s.model = drivers.model AND s.entity_key = drivers.entity_key AND s.scored_at <= drivers.from_at
     ORDER BY s.scored_at DESC LIMIT 1;
    SELECT * INTO after_row FROM health_score.scores s
     WHERE s.model = drivers.model AND s.entity_key = drivers.entity_key AND s.scored_at <= drivers.to_at
     ORDER BY s.scored_at DESC LIMIT 1;
    IF before_row.scored_at IS NULL OR after_row.scored_at IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT d.component, d.parent, d.points_before, d.points_after, d.change
      FROM jsonb_to_recordset(health_score_internal._drivers(drivers.model, before_row.model_version, before_row.components,
                                                    after_row.model_version, after_row.components, false))
           AS d(component text, parent text, points_before double precision, points_after double precision,
                change double precision);
END
$$;
COMMENT ON FUNCTION health_score.drivers(text, text, timestamptz, timestamptz) IS
    'Why an entity''s score changed between its latest snapshots at or before two times: per component, the points before and after and the change; the top-level rows (parent IS NULL) add up to the score''s change';

GRANT SELECT ON health_score.snapshots, health_score.history TO health_score_reader;
GRANT INSERT, UPDATE, DELETE ON health_score.snapshots TO health_score_admin;
-- taking snapshots is the admin's alone (EXECUTE is PUBLIC's by default), as are the row
-- functions it calls
REVOKE EXECUTE ON FUNCTION health_score.snapshot(text, regclass, text, timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score.snapshot(text, regclass, text, timestamptz, boolean) TO health_score_admin;
REVOKE EXECUTE ON FUNCTION
    health_score_internal._snapshot_row(text, text, text, record),
    health_score_internal._snapshot_row(text, text, text, jsonb),
    health_score_internal._snapshot_row_columns(text, text, text, oid, text[], "any")
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    health_score_internal._snapshot_row(text, text, text, record),
    health_score_internal._snapshot_row(text, text, text, jsonb),
    health_score_internal._snapshot_row_columns(text, text, text, oid, text[], "any")
  TO health_score_admin;
