-------------------------------------------------------------------------------------------
-- Proving the score: AUC, band reports, evaluation against outcomes
-------------------------------------------------------------------------------------------

-- auc's own state is a flat bytea filled in place (not internal): Citus aggregates it
-- partially on its workers. Citus checks the caller's right to run these functions, so they
-- stay executable by PUBLIC; each refuses a call from outside an aggregate and a state that is
-- not one of its own (docs/security.md).
CREATE FUNCTION health_score_internal._auc_step(state bytea, score double precision, churned boolean) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_auc_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._auc_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_auc_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._auc_result(state bytea) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_auc_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._auc_step(bytea, double precision, boolean) IS 'auc transition: keeps the score in its class, in the flat state (in place)';
COMMENT ON FUNCTION health_score_internal._auc_merge(bytea, bytea) IS 'auc combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._auc_result(bytea) IS 'auc final: counts the pairs over the sorted scores';

CREATE AGGREGATE health_score.auc(score double precision, churned boolean) (
    SFUNC = health_score_internal._auc_step, STYPE = bytea, SSPACE = 160,
    FINALFUNC = health_score_internal._auc_result, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score_internal._auc_merge, PARALLEL = SAFE);
COMMENT ON AGGREGATE health_score.auc(double precision, boolean) IS
    'ROC AUC where a LOW health score predicts churn: P(score of a churned account < score of a retained one) + 1/2 P(tie); pass a churn probability and you get 1 - AUC. Ignores NULL, NaN and infinite scores and NULL outcomes; NULL when a class is empty; exact (integer pair counts); up to 100,000,000 rows per group';

-- The outcome column as a boolean expression over "src": boolean, or an integer 0/1.
CREATE FUNCTION health_score_internal._outcome_of(value bigint, outcome_column text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value = 1 THEN RETURN true; ELSIF value = 0 THEN RETURN false; ELSIF value IS NULL THEN RETURN NULL; END IF;
    RAISE EXCEPTION 'outcome column %: % is neither 0 nor 1', quote_ident(left(outcome_column, 200)), value
        USING ERRCODE = '22023', HINT = 'the outcome is boolean, or an integer 1 (churned) or 0 (retained)';
END
$$;
COMMENT ON FUNCTION health_score_internal._outcome_of(bigint, text) IS 'An integer outcome (1 churned, 0 retained) as a boolean; 22023 for other values';

CREATE FUNCTION health_score_internal._outcome_sql(source regclass, outcome_column text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    column_type regtype;
BEGIN
    IF _outcome_sql.source IS NULL OR _outcome_sql.outcome_column IS NULL THEN
        RAISE EXCEPTION 'the source and the outcome column must not be NULL' USING ERRCODE = '22023',
            HINT = 'name a table or view with one row per account, and its outcome column (boolean, or integer 0/1)';
    END IF;
    SELECT a.atttypid::regtype INTO column_type FROM pg_attribute a
     WHERE a.attrelid = _outcome_sql.source AND a.attname = _outcome_sql.outcome_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF column_type IS NULL THEN
        RAISE EXCEPTION 'outcome column %: % has no such column', quote_ident(left(_outcome_sql.outcome_column, 200)), _outcome_sql.source
            USING ERRCODE = '42703', HINT = health_score_internal._columns_hint(_outcome_sql.source);
    ELSIF column_type = 'boolean'::regtype THEN
        RETURN format('src.%I', _outcome_sql.outcome_column);
    ELSIF column_type IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype) THEN
        RETURN format('health_score_internal._outcome_of(src.%I::bigint, %L)', _outcome_sql.outcome_column, _outcome_sql.outcome_column);
    END IF;
    RAISE EXCEPTION 'outcome column % is of type %; boolean or an integer 0/1 is needed', quote_ident(left(_outcome_sql.outcome_column, 200)), column_type
        USING ERRCODE = '42804',
        HINT = 'derive it in a view, such as (status = ''churned'') AS churned, and pass the view';
END
$$;
COMMENT ON FUNCTION health_score_internal._outcome_sql(regclass, text) IS 'The SQL of an outcome column (boolean, or integer 0/1) as a boolean';

-- A model argument as SQL (the name, or the inline jsonb) and its config.
CREATE FUNCTION health_score_internal._model_sql(model text, OUT model_sql text, OUT config jsonb)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pinned integer := health_score_internal._resolve_model(_model_sql.model);
    model_name text := health_score_internal._model_name(_model_sql.model);
BEGIN
    IF _model_sql.model IS NULL THEN
        RAISE EXCEPTION 'the model must not be NULL' USING ERRCODE = '22023',
            HINT = 'a registered model''s name (''churn'' or ''churn@2''), or a model as jsonb';
    END IF;
    model_sql := quote_literal(model_name || '@' || pinned);
    SELECT v.config INTO config FROM health_score.model_versions v
     WHERE v.name OPERATOR(pg_catalog.=) model_name AND v.version OPERATOR(pg_catalog.=) pinned;
END
$$;
CREATE FUNCTION health_score_internal._model_sql(model jsonb, OUT model_sql text, OUT config jsonb)
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF _model_sql.model IS NULL THEN
        RAISE EXCEPTION 'the model must not be NULL' USING ERRCODE = '22023',
            HINT = 'a registered model''s name (''churn'' or ''churn@2''), or a model as jsonb';
    END IF;
    PERFORM health_score_internal._require_valid_model(_model_sql.model);
    model_sql := quote_literal(_model_sql.model::text) || '::jsonb';
    config := _model_sql.model;
END
$$;
COMMENT ON FUNCTION health_score_internal._model_sql(text) IS 'A registered model reference, pinned to the version it stands for now, as SQL, with its config';
COMMENT ON FUNCTION health_score_internal._model_sql(jsonb) IS 'An inline model as SQL, with its config (validated)';

-- The internal functions below paste model_sql into queries and are executable by every
-- reader (band_report and the others are inlined SQL that call them with the caller's
-- rights): model_sql must be exactly what _model_sql gives, a pinned reference or the
-- config itself as a jsonb literal, never other SQL.
CREATE FUNCTION health_score_internal._require_model_sql(model_sql text, config jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF _require_model_sql.model_sql IS NULL
       OR NOT (_require_model_sql.model_sql ~ '^''[a-z][a-z0-9_]{0,62}@[1-9][0-9]{0,9}''$'
               OR _require_model_sql.model_sql = quote_literal(_require_model_sql.config::text) || '::jsonb') THEN
        RAISE EXCEPTION 'health_score: % is not a model reference as health_score_internal._model_sql gives it',
            coalesce(quote_literal(left(_require_model_sql.model_sql, 200)), 'NULL') USING ERRCODE = '22023',
            HINT = 'this is an internal function: call band_report, evaluate, calibrate, fit or fit_report';
    END IF;
END
$$;
COMMENT ON FUNCTION health_score_internal._require_model_sql(text, jsonb) IS
    'Raises 22023 unless model_sql is a pinned model reference or the config as a jsonb literal (the internal proving functions paste it into queries)';

CREATE FUNCTION health_score_internal._band_report(model_sql text, config jsonb, source regclass, outcome_column text)
    RETURNS TABLE (segment text, band text, band_rank integer, accounts bigint, churned bigint,
                   churn_rate double precision, lift double precision)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    outcome text := health_score_internal._outcome_sql(_band_report.source, _band_report.outcome_column);
    unknown bigint;
BEGIN
    PERFORM health_score_internal._require_model_sql(_band_report.model_sql, _band_report.config);
    IF jsonb_typeof(_band_report.config -> 'bands') IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'band_report: the model has no bands' USING ERRCODE = '22023',
            HINT = 'add "bands" to the model (a new version), or use health_score.evaluate for the totals';
    END IF;
    EXECUTE format('SELECT count(*) FROM %s AS src WHERE (%s) IS NULL', _band_report.source, outcome) INTO unknown;
    IF unknown > 0 THEN
        RAISE NOTICE 'band_report: left out % account(s) with a NULL outcome', unknown;
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH known AS (
            SELECT s.score, s.band, s.segment, o.churned
              FROM %1$s AS src, LATERAL health_score.assess(%2$s, src) s, LATERAL (SELECT %3$s AS churned) o
             WHERE o.churned IS NOT NULL
        ), overall AS (
            SELECT avg(known.churned::int)::float8 AS rate FROM known WHERE known.score IS NOT NULL
        ), bands AS (
            SELECT NULL::text AS segment, b.ord, b.e ->> 'name' AS band
              FROM jsonb_array_elements($1 -> 'bands') WITH ORDINALITY b(e, ord)
            UNION ALL
            SELECT o.key, b.ord, b.e ->> 'name'
              FROM jsonb_each(coalesce($1 -> 'segments' -> 'overrides', '{}')) o,
                   jsonb_array_elements(coalesce(o.value -> 'bands', $1 -> 'bands')) WITH ORDINALITY b(e, ord)
        ), report AS (
            SELECT b.segment, b.band, (b.ord - 1)::int AS band_rank, count(k.score)::bigint AS accounts,
                   count(k.score) FILTER (WHERE k.churned)::bigint AS churned,
                   avg(k.churned::int)::float8 AS churn_rate
              FROM bands b
              LEFT JOIN known k ON k.score IS NOT NULL AND k.band = b.band AND k.segment IS NOT DISTINCT FROM b.segment
             GROUP BY b.segment, b.band, b.ord
            UNION ALL
            SELECT NULL, NULL, NULL, count(*), count(*) FILTER (WHERE known.churned), avg(known.churned::int)::float8
              FROM known WHERE known.score IS NULL
        )
        SELECT r.segment, r.band, r.band_rank, r.accounts, r.churned, r.churn_rate, r.churn_rate / nullif(overall.rate, 0)
          FROM report r, overall
         ORDER BY r.band_rank IS NULL, r.segment NULLS FIRST, r.band_rank
    $q$, _band_report.source, _band_report.model_sql, outcome) USING _band_report.config;
END
$$;
COMMENT ON FUNCTION health_score_internal._band_report(text, jsonb, regclass, text) IS 'band_report''s work, for a model given as SQL';

CREATE FUNCTION health_score.band_report(model text, source regclass, outcome_column text)
    RETURNS TABLE (segment text, band text, band_rank integer, accounts bigint, churned bigint,
                   churn_rate double precision, lift double precision)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM health_score_internal._model_sql(band_report.model) m,
                    health_score_internal._band_report(m.model_sql, m.config, band_report.source, band_report.outcome_column) r
$$;
CREATE FUNCTION health_score.band_report(model jsonb, source regclass, outcome_column text)
    RETURNS TABLE (segment text, band text, band_rank integer, accounts bigint, churned bigint,
                   churn_rate double precision, lift double precision)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM health_score_internal._model_sql(band_report.model) m,
                    health_score_internal._band_report(m.model_sql, m.config, band_report.source, band_report.outcome_column) r
$$;
COMMENT ON FUNCTION health_score.band_report(text, regclass, text) IS
    'Per segment and band in rank order (empty bands too): accounts, churned, churn rate and lift against all scored accounts; a last row for accounts with a NULL score. Outcome: boolean or integer 0/1; NULL outcomes are left out and counted in a NOTICE';
COMMENT ON FUNCTION health_score.band_report(jsonb, regclass, text) IS
    'band_report with an inline model';

CREATE FUNCTION health_score_internal._evaluate(model_sql text, config jsonb, source regclass, outcome_column text)
    RETURNS TABLE (accounts bigint, churned bigint, churn_rate double precision, auc double precision,
                   mean_coverage double precision, under_min_coverage double precision,
                   log_loss double precision, brier double precision, outcome_unknown bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    outcome text := health_score_internal._outcome_sql(_evaluate.source, _evaluate.outcome_column);
BEGIN
    PERFORM health_score_internal._require_model_sql(_evaluate.model_sql, _evaluate.config);
    RETURN QUERY EXECUTE format($q$
        WITH scored AS (
            SELECT s.score, s.coverage, o.churned,
                   least(greatest(health_score.churn_probability(%2$s, src), 1e-15), 1 - 1e-15) AS p
              FROM %1$s AS src, LATERAL health_score.assess(%2$s, src) s, LATERAL (SELECT %3$s AS churned) o
        )
        SELECT count(*) FILTER (WHERE churned IS NOT NULL), count(*) FILTER (WHERE churned),
               avg(churned::int)::float8, health_score.auc(score, churned),
               avg(coverage) FILTER (WHERE churned IS NOT NULL),
               avg((coverage < $1 - 1e-9)::int) FILTER (WHERE churned IS NOT NULL)::float8,
               avg(CASE WHEN churned THEN -ln(p) ELSE -ln(1 - p) END) FILTER (WHERE churned IS NOT NULL)::float8,
               avg((p - churned::int) ^ 2) FILTER (WHERE churned IS NOT NULL)::float8,
               count(*) FILTER (WHERE churned IS NULL)
          FROM scored
    $q$, _evaluate.source, _evaluate.model_sql, outcome)
    USING coalesce((_evaluate.config ->> 'min_coverage')::float8, 0);
END
$$;
COMMENT ON FUNCTION health_score_internal._evaluate(text, jsonb, regclass, text) IS 'evaluate''s work, for a model given as SQL';

CREATE FUNCTION health_score.evaluate(model text, source regclass, outcome_column text)
    RETURNS TABLE (accounts bigint, churned bigint, churn_rate double precision, auc double precision,
                   mean_coverage double precision, under_min_coverage double precision,
                   log_loss double precision, brier double precision, outcome_unknown bigint)
LANGUAGE sql STABLE AS $$
    SELECT e.* FROM health_score_internal._model_sql(evaluate.model) m,
                    health_score_internal._evaluate(m.model_sql, m.config, evaluate.source, evaluate.outcome_column) e
$$;
CREATE FUNCTION health_score.evaluate(model jsonb, source regclass, outcome_column text)
    RETURNS TABLE (accounts bigint, churned bigint, churn_rate double precision, auc double precision,
                   mean_coverage double precision, under_min_coverage double precision,
                   log_loss double precision, brier double precision, outcome_unknown bigint)
LANGUAGE sql STABLE AS $$
    SELECT e.* FROM health_score_internal._model_sql(evaluate.model) m,
                    health_score_internal._evaluate(m.model_sql, m.config, evaluate.source, evaluate.outcome_column) e
$$;
COMMENT ON FUNCTION health_score.evaluate(text, regclass, text) IS
    'The model against known outcomes: accounts, churned, churn rate, AUC, mean coverage, share under min_coverage, log-loss and Brier score of the calibrated churn probability (NULL without calibration; clipped to [1e-15, 1 - 1e-15]), and how many outcomes were NULL';
COMMENT ON FUNCTION health_score.evaluate(jsonb, regclass, text) IS 'evaluate with an inline model';

-- _backtest's state is a bytea (an expanded object while the aggregate runs, its serialized
-- bytes where it travels): Citus aggregates it partially on its workers. Citus checks the
-- caller's right to run these functions, so they stay executable by PUBLIC; each refuses a
-- call from outside an aggregate and a state that is not one of its own (docs/security.md).
CREATE FUNCTION health_score_internal._backtest_step(state bytea, score double precision, band text, band_rank integer, churned boolean) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_backtest_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._backtest_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_backtest_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._backtest_result(state bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_backtest_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._backtest_step(bytea, double precision, text, integer, boolean) IS
    '_backtest transition: counts the account, in its band, and keeps its score for the AUC (in place)';
COMMENT ON FUNCTION health_score_internal._backtest_merge(bytea, bytea) IS '_backtest combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._backtest_result(bytea) IS '_backtest final: the totals, AUC and bands as JSON text';
CREATE AGGREGATE health_score_internal._backtest(score double precision, band text, band_rank integer, churned boolean) (
    SFUNC = health_score_internal._backtest_step, STYPE = bytea, SSPACE = 128,
    FINALFUNC = health_score_internal._backtest_result, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score_internal._backtest_merge, PARALLEL = SAFE);
COMMENT ON AGGREGATE health_score_internal._backtest(double precision, text, integer, boolean) IS
    'backtest''s work for one snapshot time: {"accounts", "churned", "auc", "bands": {band: {"band_rank", "accounts", "churned", "churn_rate"}}} as JSON text ("bands" absent when no account had one); the AUC as health_score.auc computes it';

CREATE FUNCTION health_score.backtest(model text, churn_source regclass, key_column text, churned_at_column text,
                                      horizon interval, history text DEFAULT 'scores')
    RETURNS TABLE (scored_at timestamptz, accounts bigint, churned bigint, churn_rate double precision,
                   auc double precision, bands jsonb, complete boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    model_name text;
    history_sql text := 'health_score.scores';
    churned_at_type regtype;
BEGIN
    IF backtest.model IS NULL THEN
        RAISE EXCEPTION 'backtest: the model must not be NULL' USING ERRCODE = '22023',
            HINT = 'a registered model''s name, such as ''churn''';
    END IF;
    model_name := health_score_internal._model_name(backtest.model);
    PERFORM health_score_internal._resolve_model(model_name);
    IF backtest.history IS DISTINCT FROM 'scores' AND backtest.history IS DISTINCT FROM 'rescored' THEN
        RAISE EXCEPTION 'backtest: unknown history %', quote_literal(left(backtest.history, 200)) USING ERRCODE = '22023',
            HINT = 'the history is ''scores'' (health_score.scores) or ''rescored'' (health_score.rescored, the version the model reference stands for)';
    END IF;
    IF backtest.history = 'rescored' THEN
        history_sql := format('(SELECT * FROM health_score.rescored r WHERE r.model_version = %s)',
                              health_score_internal._resolve_model(backtest.model));
    END IF;
    IF backtest.horizon IS NULL OR backtest.horizon <= interval '0' THEN
        RAISE EXCEPTION 'backtest: the horizon must be a positive interval' USING ERRCODE = '22023',
            HINT = 'how long after each snapshot a churn counts, such as interval ''90 days''';
    END IF;
    PERFORM health_score_internal._require_column('backtest', backtest.churn_source, backtest.key_column);
    PERFORM health_score_internal._require_column('backtest', backtest.churn_source, backtest.churned_at_column);
    SELECT a.atttypid::regtype INTO churned_at_type FROM pg_attribute a
     WHERE a.attrelid = backtest.churn_source AND a.attname = backtest.churned_at_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF churned_at_type NOT IN ('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype) THEN
        RAISE EXCEPTION 'backtest: churned_at column % is of type %; a date or timestamp is needed', quote_ident(left(backtest.churned_at_column, 200)), churned_at_type
            USING ERRCODE = '42804', HINT = 'cast it in a view of the churn source, such as churned_on::date AS churned_on';
    END IF;
    BEGIN
        RETURN QUERY EXECUTE format($q$
            WITH churn AS (
                -- each account's first churn: a row of an account that had not churned by its
                -- snapshot has every churn after it, so the first one is the one that counts
                SELECT src.%1$I::text AS entity_key, min(src.%2$I::timestamptz) AS first_churn
                  FROM %3$s AS src WHERE src.%2$I IS NOT NULL AND src.%1$I IS NOT NULL
                 GROUP BY 1
            ), outcome AS (
                SELECT s.scored_at, s.score, s.band, s.band_rank,
                       coalesce(c.first_churn <= s.scored_at + $2, false) AS churned
                  FROM %4$s s
                  LEFT JOIN churn c ON c.entity_key = s.entity_key
                 WHERE s.model = $1 AND (c.first_churn IS NULL OR c.first_churn > s.scored_at)
            ), per_time AS (
                -- one aggregate per snapshot time: totals, the AUC and churn per band in one state
                SELECT o.scored_at, health_score_internal._backtest(o.score, o.band, o.band_rank, o.churned)::jsonb AS r
                  FROM outcome o
                 GROUP BY o.scored_at
            )
            SELECT t.scored_at, (t.r->>'accounts')::bigint, (t.r->>'churned')::bigint,
                   (t.r->>'churned')::float8 / (t.r->>'accounts')::float8, (t.r->>'auc')::float8, t.r->'bands',
                   t.scored_at + $2 <= now()
              FROM per_time t
             ORDER BY t.scored_at
        $q$, backtest.key_column, backtest.churned_at_column, backtest.churn_source, history_sql)
        USING model_name, backtest.horizon;
    EXCEPTION WHEN datetime_field_overflow THEN
        RAISE EXCEPTION 'backtest: a snapshot time plus the horizon (%) is past the latest time PostgreSQL represents', backtest.horizon
            USING ERRCODE = '22023', HINT = 'a horizon of months or years, such as interval ''90 days''';
    END;
END
$$;
COMMENT ON FUNCTION health_score.backtest(text, regclass, text, text, interval, text) IS
    'For every snapshot time of a model (in health_score.scores, or with history => ''rescored'' the version''s rescored history): the accounts scored then that had not churned yet, how many churned within (scored_at, scored_at + horizon] (the earliest churn after counts; keys compared as text), the AUC, churn per band, and whether the horizon has passed (complete)';

-- _calibration keeps auc's flat state (the scores of each class)
CREATE FUNCTION health_score_internal._calibration_result(state bytea) RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'hs_calibration_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._calibration_result(bytea) IS
    '_calibration final: {intercept, slope} of the L2-regularised logistic regression of the outcome on the score';
CREATE AGGREGATE health_score_internal._calibration(score double precision, churned boolean) (
    SFUNC = health_score_internal._auc_step, STYPE = bytea, SSPACE = 160,
    FINALFUNC = health_score_internal._calibration_result, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score_internal._auc_merge, PARALLEL = SAFE);
COMMENT ON AGGREGATE health_score_internal._calibration(double precision, boolean) IS
    'The calibration (intercept, slope) of scores against outcomes: L2-regularised logistic regression (slope penalty 1e-4 on the mean log-loss); NaN, infinite and NULL rows ignored';

CREATE FUNCTION health_score_internal._calibrate(model_sql text, config jsonb, source regclass, outcome_column text) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fitted double precision[];
BEGIN
    PERFORM health_score_internal._require_model_sql(_calibrate.model_sql, _calibrate.config);
    EXECUTE format('SELECT health_score_internal._calibration(health_score.score(%s, src), %s) FROM %s AS src',
                   _calibrate.model_sql, health_score_internal._outcome_sql(_calibrate.source, _calibrate.outcome_column),
                   _calibrate.source)
    INTO fitted;
    IF fitted IS NULL THEN
        RAISE EXCEPTION 'calibrate: both churned and retained accounts with a score are needed' USING ERRCODE = '22023',
            HINT = 'the source needs rows with a non-NULL score and a true outcome, and rows with a non-NULL score and a false one';
    END IF;
    RETURN _calibrate.config || jsonb_build_object('calibration', jsonb_build_object('intercept', fitted[1], 'slope', fitted[2]));
END
$$;
COMMENT ON FUNCTION health_score_internal._calibrate(text, jsonb, regclass, text) IS 'calibrate''s work, for a model given as SQL';
CREATE FUNCTION health_score.calibrate(model text, source regclass, outcome_column text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT health_score_internal._calibrate(m.model_sql, m.config, calibrate.source, calibrate.outcome_column)
      FROM health_score_internal._model_sql(calibrate.model) m
$$;
CREATE FUNCTION health_score.calibrate(model jsonb, source regclass, outcome_column text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT health_score_internal._calibrate(m.model_sql, m.config, calibrate.source, calibrate.outcome_column)
      FROM health_score_internal._model_sql(calibrate.model) m
$$;
COMMENT ON FUNCTION health_score.calibrate(text, regclass, text) IS
    'The model with its "calibration" fitted to outcomes (L2-regularised logistic regression of the outcome on the score, so it stays finite when the score separates the classes); register it with set_model';
COMMENT ON FUNCTION health_score.calibrate(jsonb, regclass, text) IS 'calibrate with an inline model';
