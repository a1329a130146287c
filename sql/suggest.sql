-------------------------------------------------------------------------------------------
-- Suggested components: suggest and add_components (src/pg/suggest.rs)
-------------------------------------------------------------------------------------------

-- _suggest's state is a bytea (an expanded object while the aggregate runs, its serialized
-- bytes where it travels): Citus aggregates it partially on its workers. Citus checks the
-- caller's right to run these functions, so they stay executable by PUBLIC; each refuses a
-- call from outside an aggregate and a state that is not one of its own (docs/security.md).
CREATE FUNCTION health_score_internal._suggest_step(state bytea, design bytea, churned boolean, held boolean, numbers double precision[], categories text[], settings jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_suggest_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._suggest_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_suggest_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._suggest_result(state bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_suggest_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._suggest_step(bytea, bytea, boolean, boolean, double precision[], text[], jsonb) IS
    '_suggest transition: keeps the row''s observations and candidate values, on the training or the held-out side (in place)';
COMMENT ON FUNCTION health_score_internal._suggest_merge(bytea, bytea) IS '_suggest combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._suggest_result(bytea) IS '_suggest final: fits the model''s shapes, ranks the candidates and returns them as JSON text';

CREATE AGGREGATE health_score_internal._suggest(design bytea, churned boolean, held boolean, numbers double precision[],
                                                categories text[], settings jsonb) (
    SFUNC = health_score_internal._suggest_step, STYPE = bytea, SSPACE = 1024,
    FINALFUNC = health_score_internal._suggest_result,
    COMBINEFUNC = health_score_internal._suggest_merge, PARALLEL = SAFE);
COMMENT ON AGGREGATE health_score_internal._suggest(bytea, boolean, boolean, double precision[], text[], jsonb) IS
    'The candidates ranked by the holdout AUC each adds to the model; settings is {"model", "options", "numeric", "categorical"} (the candidates'' column names, in the order of numbers and categories)';

CREATE FUNCTION health_score_internal._suggest(model_sql text, config jsonb, source regclass, outcome_column text, options jsonb)
    RETURNS TABLE (rank integer, column_name text, component jsonb, holdout_auc double precision, leak boolean,
                   holdout_auc_gain double precision, exact boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    outcome text := health_score_internal._outcome_sql(_suggest.source, _suggest.outcome_column);
    opts jsonb := coalesce(_suggest.options, '{}');
    unknown_key text;
    holdout double precision := 0.2;
    key_column text;
    held text;
    included text[];
    excluded text[] := '{}';
    missing_column text;
    read_by_model text[];
    numeric_columns text[];
    numeric_reads text[];
    categorical_columns text[];
    list_option text;
    ranked text;
BEGIN
    PERFORM health_score_internal._require_model_sql(_suggest.model_sql, _suggest.config);
    IF jsonb_typeof(opts) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'suggest: options must be a JSON object' USING ERRCODE = '22023',
            HINT = 'for example ''{"holdout": 0.3, "exclude": ["signup_date"]}''';
    END IF;
    SELECT k INTO unknown_key FROM jsonb_object_keys(opts) k
     WHERE k NOT IN ('holdout', 'key_column', 'include', 'exclude', 'exact', 'max_categories',
                     'knots', 'min_category_rows', 'smoothness', 'l2', 'monotone', 'refit_impute') LIMIT 1;
    IF unknown_key IS NOT NULL THEN
        RAISE EXCEPTION 'suggest: options.%: unknown option', left(unknown_key, 200) USING ERRCODE = '22023',
            HINT = 'the options are holdout, key_column, include, exclude, exact, max_categories, and the shape options of fit: knots, min_category_rows, smoothness, l2, monotone, refit_impute';
    END IF;
    IF opts ? 'holdout' THEN
        IF jsonb_typeof(opts -> 'holdout') IS DISTINCT FROM 'number' OR (opts ->> 'holdout')::numeric <= 0 OR (opts ->> 'holdout')::numeric >= 1 THEN
            RAISE EXCEPTION 'suggest: options.holdout: must be a fraction in (0, 1), not %', left((opts -> 'holdout')::text, 200) USING ERRCODE = '22023',
                HINT = 'the share of accounts held out to measure each candidate on, default 0.2';
        END IF;
        holdout := (opts ->> 'holdout')::float8;
    END IF;
    FOREACH list_option IN ARRAY ARRAY['include', 'exclude'] LOOP
        IF opts ? list_option AND (jsonb_typeof(opts -> list_option) IS DISTINCT FROM 'array'
                                   OR EXISTS (SELECT FROM jsonb_array_elements(opts -> list_option) e WHERE jsonb_typeof(e) <> 'string')) THEN
            RAISE EXCEPTION 'suggest: options.%: must be an array of column names', list_option USING ERRCODE = '22023',
                HINT = 'for example ["plan", "seats"]';
        END IF;
    END LOOP;
    IF opts ? 'include' THEN
        included := ARRAY(SELECT jsonb_array_elements_text(opts -> 'include'));
        SELECT c INTO missing_column FROM unnest(included) c
         WHERE NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = _suggest.source AND a.attname = c
                              AND a.attnum > 0 AND NOT a.attisdropped) LIMIT 1;
        IF missing_column IS NOT NULL THEN
            RAISE EXCEPTION 'suggest: options.include: % has no column %', _suggest.source, quote_ident(left(missing_column, 200))
                USING ERRCODE = '42703', HINT = health_score_internal._columns_hint(_suggest.source);
        END IF;
    END IF;
    IF opts ? 'exclude' THEN
        excluded := ARRAY(SELECT jsonb_array_elements_text(opts -> 'exclude'));
    END IF;
    IF opts ? 'key_column' THEN
        IF jsonb_typeof(opts -> 'key_column') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'suggest: options.key_column: must be a column name, not %', left((opts -> 'key_column')::text, 200) USING ERRCODE = '22023',
                HINT = 'the column that identifies each account; the holdout hashes it';
        END IF;
        key_column := opts ->> 'key_column';
        PERFORM health_score_internal._require_column('suggest', _suggest.source, key_column);
    ELSE
        SELECT a.attname INTO key_column
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = _suggest.source AND i.indisprimary AND i.indnkeyatts = 1;
    END IF;
    -- without a key, a row's own text decides its side: identical rows fall on the same side
    held := CASE WHEN key_column IS NULL THEN format('health_score_internal._held_out(src::text, %s)', holdout)
                 ELSE format('health_score_internal._held_out(src.%I::text, %s)', key_column, holdout) END;
    -- the columns the model reads already (its leaves' inputs and its segment input)
    read_by_model := ARRAY(
        SELECT coalesce(c ->> 'input', c ->> 'name')
          FROM jsonb_path_query(_suggest.config, 'lax $.**') c
         WHERE jsonb_typeof(c) = 'object' AND c ? 'normalize' AND jsonb_typeof(c -> 'name') = 'string'
        UNION ALL SELECT _suggest.config -> 'segments' ->> 'input' WHERE _suggest.config -> 'segments' ? 'input');
    -- a numeric column beyond double precision's range (or NaN) reads as missing, as a
    -- non-finite number does, instead of failing the cast
    SELECT array_agg(a.attname ORDER BY a.attnum) FILTER (WHERE t.kind = 'numeric'),
           array_agg(CASE WHEN coalesce(nullif(ty.typbasetype, 0), ty.oid) = 'numeric'::regtype
                          THEN format('CASE WHEN pg_catalog.abs(src.%1$I) OPERATOR(pg_catalog.<=) 1.7976931348623157e308 THEN src.%1$I::pg_catalog.float8 END', a.attname)
                          ELSE format('src.%I::pg_catalog.float8', a.attname) END ORDER BY a.attnum) FILTER (WHERE t.kind = 'numeric'),
           array_agg(a.attname ORDER BY a.attnum) FILTER (WHERE t.kind = 'categorical')
      INTO numeric_columns, numeric_reads, categorical_columns
      FROM pg_attribute a
      JOIN pg_type ty ON ty.oid = a.atttypid,
           LATERAL (SELECT CASE WHEN coalesce(nullif(ty.typbasetype, 0), ty.oid) IN
                                     ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'numeric'::regtype,
                                      'real'::regtype, 'double precision'::regtype) THEN 'numeric'
                                WHEN coalesce(nullif(ty.typbasetype, 0), ty.oid) = 'boolean'::regtype
                                  OR ty.typcategory IN ('S', 'E') THEN 'categorical' END AS kind) t
     WHERE a.attrelid = _suggest.source AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname <> _suggest.outcome_column AND a.attname IS DISTINCT FROM key_column
       AND a.attname <> ALL (read_by_model) AND a.attname <> ALL (excluded)
       AND (included IS NULL OR a.attname = ANY (included));
    IF numeric_columns IS NULL AND categorical_columns IS NULL THEN
        RAISE EXCEPTION 'suggest: % has no column to suggest', _suggest.source USING ERRCODE = '22023',
            HINT = 'candidates are the columns the model does not read, other than the key and the outcome: numbers, booleans and text with few distinct values';
    END IF;
    EXECUTE format('SELECT health_score_internal._suggest(health_score_internal._fit_shape_row($1, src), %s, %s, %s, %s, $2) FROM %s AS src',
                   outcome, held,
                   CASE WHEN numeric_columns IS NULL THEN '''{}''::pg_catalog.float8[]'
                        ELSE 'ARRAY[' || array_to_string(numeric_reads, ', ') || ']' END,
                   CASE WHEN categorical_columns IS NULL THEN '''{}''::pg_catalog.text[]'
                        ELSE 'ARRAY[' || (SELECT string_agg(format('src.%I::pg_catalog.text', c), ', ') FROM unnest(categorical_columns) c) || ']' END,
                   _suggest.source)
       INTO ranked
      USING health_score_internal._shape_design_model(_suggest.config),
            jsonb_build_object('model', _suggest.config, 'options', opts,
                               'numeric', coalesce(numeric_columns, '{}'), 'categorical', coalesce(categorical_columns, '{}'));
    RETURN QUERY
    SELECT (s ->> 'rank')::integer, s ->> 'column', s -> 'component', (s ->> 'holdout_auc')::float8, (s ->> 'leak')::boolean,
           (s ->> 'gain')::float8, (s ->> 'exact')::boolean
      FROM jsonb_array_elements(ranked::jsonb -> 'suggestions') s
     ORDER BY 1;
END
$$;
COMMENT ON FUNCTION health_score_internal._suggest(text, jsonb, regclass, text, jsonb) IS 'suggest''s work, for a model given as SQL';

CREATE FUNCTION health_score.suggest(model text, source regclass, outcome_column text, options jsonb DEFAULT '{}')
    RETURNS TABLE (rank integer, column_name text, component jsonb, holdout_auc double precision, leak boolean,
                   holdout_auc_gain double precision, exact boolean)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM health_score_internal._model_sql(suggest.model) m,
                    health_score_internal._suggest(m.model_sql, m.config, suggest.source, suggest.outcome_column, suggest.options) r
$$;
CREATE FUNCTION health_score.suggest(model jsonb, source regclass, outcome_column text, options jsonb DEFAULT '{}')
    RETURNS TABLE (rank integer, column_name text, component jsonb, holdout_auc double precision, leak boolean,
                   holdout_auc_gain double precision, exact boolean)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM health_score_internal._model_sql(suggest.model) m,
                    health_score_internal._suggest(m.model_sql, m.config, suggest.source, suggest.outcome_column, suggest.options) r
$$;
COMMENT ON FUNCTION health_score.suggest(text, regclass, text, jsonb) IS
    'The source''s other columns (numbers, booleans, text with few values) that would most improve the model, each as a component with a fitted normalizer and a weight on the scale of the model''s top level, ranked by the holdout AUC of the model refitted with it (weights and shapes; exact for the best 10, estimated for the rest); leak marks a column that separates the outcome on its own, ranked last. Options: holdout (0.2), key_column, include, exclude, exact (10), max_categories (20), and fit''s shape options';
COMMENT ON FUNCTION health_score.suggest(jsonb, regclass, text, jsonb) IS 'suggest with an inline model';

CREATE FUNCTION health_score.add_components(model jsonb, components jsonb, parent text DEFAULT NULL) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'hs_add_components' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score.add_components(jsonb, jsonb, text) IS
    'The model with the components of a JSON array added at its top level (or under the group named parent), weights as given; a name already in the model becomes name_2, name_3, ...; the result is checked as a model (22023 with the path)';

