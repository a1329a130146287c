-------------------------------------------------------------------------------------------
-- Fitted weights
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score_internal._fit_row(model jsonb, by_segment boolean, input record) RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'hs_fit_row' LANGUAGE C STABLE PARALLEL SAFE COST 50
    SUPPORT health_score_internal._row_support;
COMMENT ON FUNCTION health_score_internal._fit_row(jsonb, boolean, record) IS
    'fit''s per-row work: {segment, n of each leaf as scored} ({segment} alone when a leaf was reweighted away); segment -1 is the base model (or all rows unless by_segment)';
CREATE FUNCTION health_score_internal._fit_row_columns(model jsonb, by_segment boolean, row_type oid, columns text[], VARIADIC "any")
    RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'hs_fit_row_columns' LANGUAGE C STABLE PARALLEL SAFE COST 50;
COMMENT ON FUNCTION health_score_internal._fit_row_columns(jsonb, boolean, oid, text[], "any") IS
    'health_score_internal._fit_row as the planner passes it: the row''s columns as arguments';

-- _fit's state is a bytea (an expanded object while the aggregate runs, its serialized
-- bytes where it travels): Citus aggregates it partially on its workers. Citus checks the
-- caller's right to run these functions, so they stay executable by PUBLIC; each refuses a
-- call from outside an aggregate and a state that is not one of its own (docs/security.md).
CREATE FUNCTION health_score_internal._fit_step(state bytea, design double precision[], churned boolean, l2 double precision) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_fit_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._fit_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_fit_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._fit_result(state bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_fit_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._fit_step(bytea, double precision[], boolean, double precision) IS '_fit transition: keeps the design in its segment''s data (in place)';
COMMENT ON FUNCTION health_score_internal._fit_merge(bytea, bytea) IS '_fit combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._fit_result(bytea) IS '_fit final: solves each segment''s constrained logistic regression (rows sorted first, so the result does not depend on their order)';

CREATE AGGREGATE health_score_internal._fit(design double precision[], churned boolean, l2 double precision) (
    SFUNC = health_score_internal._fit_step, STYPE = bytea, SSPACE = 1024,
    FINALFUNC = health_score_internal._fit_result,
    COMBINEFUNC = health_score_internal._fit_merge, PARALLEL = SAFE);
COMMENT ON AGGREGATE health_score_internal._fit(double precision[], boolean, double precision) IS
    'The constrained logistic regression of the outcome on the designs of _fit_row (beta <= -1e-6, L2 penalty l2), per segment, as JSON text for _fit_apply; up to 100,000,000 row x leaf values';

CREATE FUNCTION health_score_internal._fit_design_model(model jsonb, by_segment boolean) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_fit_design_model' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._fit_design_model(jsonb, boolean) IS
    'The model fit reads the designs with: the overrides'' weights dropped unless by_segment';
CREATE FUNCTION health_score_internal._fit_apply(model jsonb, by_segment boolean, solutions text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_fit_apply' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._fit_apply(jsonb, boolean, text) IS
    'The fitted model and its report from _fit''s solutions: leaf weights onto the tree (a group weighs the sum of its leaves), calibration dropped';

-- Whether a key is held out of a fit: the first 32 bits of its md5 as a fraction of 2^32
-- (portable and reproducible outside the database).
-- In C: the SQL form, ('x' || left(md5(entity_key), 8))::bit(32)::int8 / 4294967296.0 < fraction,
-- took longer than the rest of a row's work in fit and suggest.
CREATE FUNCTION health_score_internal._held_out(entity_key text, fraction double precision) RETURNS boolean
    AS 'MODULE_PATHNAME', 'hs_held_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._held_out(text, double precision) IS
    'Whether fit holds this key out: the first 32 bits of md5(key) / 2^32 < fraction';

CREATE FUNCTION health_score_internal._fit(model_sql text, config jsonb, source regclass, outcome_column text, options jsonb)
    RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    outcome text := health_score_internal._outcome_sql(_fit.source, _fit.outcome_column);
    opts jsonb := coalesce(_fit.options, '{}');
    unknown_key text;
    l2 double precision;  -- NULL until options.l2 names one: _fit_step then uses the library's default
    by_segment boolean := false;
    holdout double precision := 0;
    key_column text;
    held text := 'false';
    shapes boolean := false;
    shape_key text;
    solutions text;
    result jsonb;
BEGIN
    PERFORM health_score_internal._require_model_sql(_fit.model_sql, _fit.config);
    IF jsonb_typeof(opts) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'fit: options must be a JSON object' USING ERRCODE = '22023',
            HINT = 'for example ''{"l2": 0.001, "by_segment": true, "holdout": 0.2, "key_column": "account_id"}''';
    END IF;
    SELECT k INTO unknown_key FROM jsonb_object_keys(opts) k
     WHERE k NOT IN ('l2', 'by_segment', 'holdout', 'key_column', 'shapes',
                     'knots', 'min_category_rows', 'smoothness', 'monotone', 'refit_impute') LIMIT 1;
    IF unknown_key IS NOT NULL THEN
        RAISE EXCEPTION 'fit: options.%: unknown option', left(unknown_key, 200) USING ERRCODE = '22023',
            HINT = 'the options are l2, by_segment, holdout, key_column and shapes; with "shapes": true also knots, min_category_rows, smoothness, monotone and refit_impute';
    END IF;
    IF opts ? 'shapes' THEN
        IF jsonb_typeof(opts -> 'shapes') IS DISTINCT FROM 'boolean' THEN
            RAISE EXCEPTION 'fit: options.shapes: must be true or false, not %', left((opts -> 'shapes')::text, 200) USING ERRCODE = '22023',
                HINT = 'true fits each leaf''s normalizer (a curve, or a map''s values) with the weights';
        END IF;
        shapes := (opts ->> 'shapes')::boolean;
    END IF;
    IF NOT shapes THEN
        SELECT k INTO shape_key FROM jsonb_object_keys(opts) k
         WHERE k IN ('knots', 'min_category_rows', 'smoothness', 'monotone', 'refit_impute') LIMIT 1;
        IF shape_key IS NOT NULL THEN
            RAISE EXCEPTION 'fit: options.%: applies only with "shapes": true', shape_key USING ERRCODE = '22023',
                HINT = 'add "shapes": true to fit each leaf''s normalizer too';
        END IF;
    END IF;
    IF opts ? 'l2' THEN
        IF jsonb_typeof(opts -> 'l2') IS DISTINCT FROM 'number' OR (opts ->> 'l2')::numeric < 0 OR (opts ->> 'l2')::numeric > 1e6 THEN
            RAISE EXCEPTION 'fit: options.l2: must be a number from 0 to 1e6, not %', left((opts -> 'l2')::text, 200) USING ERRCODE = '22023',
                HINT = 'the L2 penalty on the weights, default 1e-4';
        END IF;
        l2 := (opts ->> 'l2')::float8;
    END IF;
    IF opts ? 'by_segment' THEN
        IF jsonb_typeof(opts -> 'by_segment') IS DISTINCT FROM 'boolean' THEN
            RAISE EXCEPTION 'fit: options.by_segment: must be true or false, not %', left((opts -> 'by_segment')::text, 200) USING ERRCODE = '22023',
                HINT = 'true fits each segment''s weights separately; false (the default) fits one set and drops the overrides'' weights';
        END IF;
        by_segment := (opts ->> 'by_segment')::boolean;
        IF by_segment AND shapes THEN
            RAISE EXCEPTION 'fit: options.by_segment: not with "shapes": true' USING ERRCODE = '22023',
                HINT = 'shapes are fitted over every row (the overrides'' weights and normalizers dropped); fit by_segment weights on the fitted model afterwards';
        END IF;
    END IF;
    IF opts ? 'holdout' THEN
        IF jsonb_typeof(opts -> 'holdout') IS DISTINCT FROM 'number' OR (opts ->> 'holdout')::numeric < 0 OR (opts ->> 'holdout')::numeric >= 1 THEN
            RAISE EXCEPTION 'fit: options.holdout: must be a fraction in [0, 1), not %', left((opts -> 'holdout')::text, 200) USING ERRCODE = '22023',
                HINT = 'the share of accounts held out of the fit, chosen by a hash of their key';
        END IF;
        holdout := (opts ->> 'holdout')::float8;
    END IF;
    IF opts ? 'key_column' THEN
        IF jsonb_typeof(opts -> 'key_column') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'fit: options.key_column: must be a column name, not %', left((opts -> 'key_column')::text, 200) USING ERRCODE = '22023',
                HINT = 'the column that identifies each account, such as {"key_column": "account_id"}; the holdout hashes it';
        END IF;
        key_column := opts ->> 'key_column';
    ELSIF holdout > 0 THEN
        -- the source's single-column primary key, if it has one
        SELECT a.attname INTO key_column
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = _fit.source AND i.indisprimary AND i.indnkeyatts = 1;
        IF key_column IS NULL THEN
            RAISE EXCEPTION 'fit: options.holdout needs options.key_column' USING ERRCODE = '22023',
                HINT = format('%s has no single-column primary key to hold accounts out by; name the key column', _fit.source);
        END IF;
    END IF;
    IF key_column IS NOT NULL THEN
        PERFORM health_score_internal._require_column('fit', _fit.source, key_column);
        held := format('health_score_internal._held_out(src.%I::text, %s)', key_column, holdout);
    END IF;
    IF shapes THEN
        EXECUTE format('SELECT health_score_internal._fit_shapes(health_score_internal._fit_shape_row($1, src), %s, $2) FROM %s AS src WHERE NOT %s',
                       outcome, _fit.source, held)
           INTO solutions USING health_score_internal._shape_design_model(_fit.config), jsonb_build_object('model', _fit.config, 'options', opts);
        result := solutions::jsonb;
    ELSE
        EXECUTE format('SELECT health_score_internal._fit(health_score_internal._fit_row($1, $2, src), %s, $3) FROM %s AS src WHERE NOT %s',
                       outcome, _fit.source, held)
           INTO solutions USING health_score_internal._fit_design_model(_fit.config, by_segment)::jsonb, by_segment, l2;
        result := health_score_internal._fit_apply(_fit.config, by_segment, solutions)::jsonb;
    END IF;
    PERFORM health_score_internal._require_valid_model(result -> 'model');
    RETURN result || jsonb_build_object('held_out', held, 'model_sql', _fit.model_sql, 'outcome_sql', outcome);
END
$$;
COMMENT ON FUNCTION health_score_internal._fit(text, jsonb, regclass, text, jsonb) IS
    'fit''s work, for a model given as SQL: the fitted model with its report (JSON)';

CREATE FUNCTION health_score.fit(model text, source regclass, outcome_column text, options jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT health_score_internal._fit(m.model_sql, m.config, fit.source, fit.outcome_column, fit.options) OPERATOR(pg_catalog.->) 'model'
      FROM health_score_internal._model_sql(fit.model) m
$$;
CREATE FUNCTION health_score.fit(model jsonb, source regclass, outcome_column text, options jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT health_score_internal._fit(m.model_sql, m.config, fit.source, fit.outcome_column, fit.options) OPERATOR(pg_catalog.->) 'model'
      FROM health_score_internal._model_sql(fit.model) m
$$;
COMMENT ON FUNCTION health_score.fit(text, regclass, text, jsonb) IS
    'The model with weights fitted to outcomes: L2-regularised logistic regression of the outcome on each leaf''s n, health weights >= 1e-6, a group weighing the sum of its leaves; calibration dropped. With "shapes": true each leaf''s normalizer is fitted too (a curve through knots at quantiles, a map''s values). Options: l2 (1e-4), by_segment (false), holdout (0), key_column, shapes (false), knots (6), min_category_rows (10), smoothness (1e-3), monotone, refit_impute (false). Register the result with set_model';
COMMENT ON FUNCTION health_score.fit(jsonb, regclass, text, jsonb) IS 'fit with an inline model';

CREATE FUNCTION health_score_internal._fit_report(model_sql text, config jsonb, source regclass, outcome_column text, options jsonb)
    RETURNS TABLE (segment text, component text, parent text, old_weight double precision, new_weight double precision,
                   at_bound boolean, rows_used bigint, rows_excluded bigint,
                   auc_before double precision, auc_after double precision,
                   holdout_auc_before double precision, holdout_auc_after double precision,
                   old_normalizer jsonb, new_normalizer jsonb)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fitted jsonb := health_score_internal._fit(_fit_report.model_sql, _fit_report.config, _fit_report.source,
                                      _fit_report.outcome_column, _fit_report.options);
    aucs double precision[];
BEGIN
    PERFORM health_score_internal._require_model_sql(_fit_report.model_sql, _fit_report.config);
    EXECUTE format($q$
        SELECT ARRAY[health_score.auc(health_score.score(%1$s, src), o.churned) FILTER (WHERE NOT o.held),
                     health_score.auc(health_score.score($1, src), o.churned) FILTER (WHERE NOT o.held),
                     health_score.auc(health_score.score(%1$s, src), o.churned) FILTER (WHERE o.held),
                     health_score.auc(health_score.score($1, src), o.churned) FILTER (WHERE o.held)]
          FROM %2$s AS src, LATERAL (SELECT %3$s AS churned, %4$s AS held) o
    $q$, fitted ->> 'model_sql', _fit_report.source, fitted ->> 'outcome_sql', fitted ->> 'held_out')
    INTO aucs USING fitted -> 'model';
    RETURN QUERY
        SELECT s ->> 'segment', c ->> 'component', c ->> 'parent', (c ->> 'old_weight')::float8, (c ->> 'new_weight')::float8,
               (c ->> 'at_bound')::boolean, (s ->> 'rows')::bigint, (s ->> 'excluded')::bigint,
               aucs[1], aucs[2], aucs[3], aucs[4], c -> 'old_normalizer', c -> 'new_normalizer'
          FROM jsonb_array_elements(fitted -> 'segments') WITH ORDINALITY sg(s, sord),
               jsonb_array_elements(s -> 'components') WITH ORDINALITY cm(c, cord)
         ORDER BY sord, cord;
END
$$;
COMMENT ON FUNCTION health_score_internal._fit_report(text, jsonb, regclass, text, jsonb) IS 'fit_report''s work, for a model given as SQL';

CREATE FUNCTION health_score.fit_report(model text, source regclass, outcome_column text, options jsonb DEFAULT '{}')
    RETURNS TABLE (segment text, component text, parent text, old_weight double precision, new_weight double precision,
                   at_bound boolean, rows_used bigint, rows_excluded bigint,
                   auc_before double precision, auc_after double precision,
                   holdout_auc_before double precision, holdout_auc_after double precision,
                   old_normalizer jsonb, new_normalizer jsonb)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM health_score_internal._model_sql(fit_report.model) m,
                    health_score_internal._fit_report(m.model_sql, m.config, fit_report.source, fit_report.outcome_column, fit_report.options) r
$$;
CREATE FUNCTION health_score.fit_report(model jsonb, source regclass, outcome_column text, options jsonb DEFAULT '{}')
    RETURNS TABLE (segment text, component text, parent text, old_weight double precision, new_weight double precision,
                   at_bound boolean, rows_used bigint, rows_excluded bigint,
                   auc_before double precision, auc_after double precision,
                   holdout_auc_before double precision, holdout_auc_after double precision,
                   old_normalizer jsonb, new_normalizer jsonb)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM health_score_internal._model_sql(fit_report.model) m,
                    health_score_internal._fit_report(m.model_sql, m.config, fit_report.source, fit_report.outcome_column, fit_report.options) r
$$;
COMMENT ON FUNCTION health_score.fit_report(text, regclass, text, jsonb) IS
    'What fit changes, per fitted segment (NULL = the base model) and component in model order: old and new weight, whether the leaf sits at the 1e-6 bound, rows used and left out (a leaf reweighted away), the AUC before and after, in-sample and on the holdout, and each leaf''s normalizer before and after';
COMMENT ON FUNCTION health_score.fit_report(jsonb, regclass, text, jsonb) IS 'fit_report with an inline model';

