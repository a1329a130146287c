-- health_score: SQL objects. The scoring functions are C functions of the extension's
-- library (src/pg); everything here is declared by hand so that names, volatility,
-- strictness, parallel safety and costs are exactly as documented in docs/reference.md.

-------------------------------------------------------------------------------------------
-- Model registry
-------------------------------------------------------------------------------------------

CREATE TABLE health_score.model_versions (
    name        text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    version     integer     NOT NULL CHECK (version >= 1),
    config      jsonb       NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by  name        NOT NULL DEFAULT CURRENT_USER,
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE health_score.model_versions IS
    'Every version of every registered health model; versions are immutable. Written by health_score.set_model, read through health_score.models. Kept by pg_dump.';
COMMENT ON COLUMN health_score.model_versions.name IS 'Model name (^[a-z][a-z0-9_]{0,62}$)';
COMMENT ON COLUMN health_score.model_versions.version IS 'Version number, 1 for the first; scoring by name uses the highest';
COMMENT ON COLUMN health_score.model_versions.config IS 'The model (format 1, see docs/model-format.md)';
COMMENT ON COLUMN health_score.model_versions.description IS 'The model''s own "description", copied at registration';
COMMENT ON COLUMN health_score.model_versions.created_at IS 'When this version was registered';
COMMENT ON COLUMN health_score.model_versions.created_by IS 'The role that registered this version';

SELECT pg_catalog.pg_extension_config_dump('health_score.model_versions', '');

CREATE FUNCTION health_score._model_versions_are_immutable() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'health model versions are immutable: % version % cannot be changed', OLD.name, OLD.version
        USING ERRCODE = '55000',
              HINT = 'register a new version with health_score.set_model(name, config)';
END
$$;
COMMENT ON FUNCTION health_score._model_versions_are_immutable() IS
    'Trigger function: refuses UPDATE of health_score.model_versions (versions are immutable)';

CREATE TRIGGER model_versions_are_immutable
    BEFORE UPDATE ON health_score.model_versions
    FOR EACH ROW EXECUTE FUNCTION health_score._model_versions_are_immutable();

CREATE FUNCTION health_score._require_valid_model(config jsonb) RETURNS void
    AS 'MODULE_PATHNAME', 'hs_require_valid_model' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score._require_valid_model(jsonb) IS
    'Raises SQLSTATE 22023 naming the JSON path of the model''s first fault; returns nothing for a valid model';

CREATE FUNCTION health_score.set_model(name text, config jsonb) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_version integer;
BEGIN
    IF set_model.name IS NULL OR set_model.name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid model name %', coalesce(quote_literal(set_model.name), 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'model names must match ^[a-z][a-z0-9_]{0,62}$: lower-case letters, digits and _, starting with a letter';
    END IF;
    IF set_model.config IS NULL THEN
        RAISE EXCEPTION 'the model config must not be NULL' USING ERRCODE = '22023';
    END IF;
    PERFORM health_score._require_valid_model(set_model.config);
    -- one registration per name at a time, so versions are gapless and never collide
    PERFORM pg_advisory_xact_lock(hashtext('health_score.set_model'), hashtext(set_model.name));
    SELECT coalesce(max(v.version), 0) + 1 INTO new_version
      FROM health_score.model_versions v WHERE v.name = set_model.name;
    INSERT INTO health_score.model_versions (name, version, config, description)
    VALUES (set_model.name, new_version, set_model.config, set_model.config ->> 'description');
    RETURN new_version;
END
$$;
COMMENT ON FUNCTION health_score.set_model(text, jsonb) IS
    'Validates a model and registers it as the next immutable version of that name; returns the version number. Scoring by name uses the latest version; ''name@3'' pins version 3.';

CREATE VIEW health_score.models AS
SELECT v.name, v.version, v.config, v.description, v.created_at, v.created_by,
       v.version = max(v.version) OVER (PARTITION BY v.name) AS is_latest
  FROM health_score.model_versions v;
COMMENT ON VIEW health_score.models IS 'Registered health models, one row per version';
COMMENT ON COLUMN health_score.models.name IS 'Model name';
COMMENT ON COLUMN health_score.models.version IS 'Version number';
COMMENT ON COLUMN health_score.models.config IS 'The model (format 1)';
COMMENT ON COLUMN health_score.models.description IS 'The model''s description';
COMMENT ON COLUMN health_score.models.created_at IS 'When this version was registered';
COMMENT ON COLUMN health_score.models.created_by IS 'Who registered this version';
COMMENT ON COLUMN health_score.models.is_latest IS 'Whether this is the version scoring by name uses';

-------------------------------------------------------------------------------------------
-- Validation
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score.validate(model jsonb) RETURNS TABLE (path text, message text)
    AS 'MODULE_PATHNAME', 'hs_validate' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 2;
COMMENT ON FUNCTION health_score.validate(jsonb) IS
    'Every fault of a model as (JSON path, message); no rows for a valid model';

-------------------------------------------------------------------------------------------
-- Scoring: each function has four forms, the model inline (jsonb) or by name (text,
-- ''name'' or ''name@version''), the input a jsonb object or a table row (record).
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score._row_support(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_row_support' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score._row_support(internal) IS
    'Planner support of the table-row forms: passes a whole row''s columns (health_score._*_columns) instead of building a composite value per row';

CREATE TYPE health_score.assessment AS (
    score    double precision,
    band     text,
    coverage double precision,
    segment  text
);
COMMENT ON TYPE health_score.assessment IS 'Result of health_score.assess: score, band, coverage and the segment override applied';
COMMENT ON COLUMN health_score.assessment.score IS 'The score in [0, scale], NULL when nothing is counted or coverage is below min_coverage';
COMMENT ON COLUMN health_score.assessment.band IS 'The band of the score (the segment''s bands where it overrides them)';
COMMENT ON COLUMN health_score.assessment.coverage IS 'Share of the model (0 to 1) covered by present, valid inputs';
COMMENT ON COLUMN health_score.assessment.segment IS 'The segment override applied, NULL for the base model';

-- COST is what a call measures against a float8 operator (cpu_operator_cost): scoring a row's
-- columns takes about 25 operators' time, a jsonb document (detoasted and searched) about 100
-- (bench/, docs/performance.md). Overstating it tips plain scans over jit_above_cost, and JIT
-- compiles the query for tens of milliseconds per process without reaching into these calls.
CREATE FUNCTION health_score.score(model jsonb, input jsonb) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_jj' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.score(model text, input jsonb) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_nj' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.score(model jsonb, input record) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_jr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score._row_support;
CREATE FUNCTION health_score.score(model text, input record) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_nr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score._row_support;
COMMENT ON FUNCTION health_score.score(jsonb, jsonb) IS 'Health score of a jsonb input object under an inline model';
COMMENT ON FUNCTION health_score.score(text, jsonb) IS 'Health score of a jsonb input object under a registered model (''name'' or ''name@version'')';
COMMENT ON FUNCTION health_score.score(jsonb, record) IS 'Health score of a table row (inputs read from its columns) under an inline model';
COMMENT ON FUNCTION health_score.score(text, record) IS 'Health score of a table row (inputs read from its columns) under a registered model';

CREATE FUNCTION health_score.band(model jsonb, input jsonb) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_jj' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.band(model text, input jsonb) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_nj' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.band(model jsonb, input record) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_jr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score._row_support;
CREATE FUNCTION health_score.band(model text, input record) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_nr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score._row_support;
COMMENT ON FUNCTION health_score.band(jsonb, jsonb) IS 'Risk band name of the score (the segment''s bands where it overrides them); NULL without bands or score';
COMMENT ON FUNCTION health_score.band(text, jsonb) IS 'Risk band name of the score under a registered model';
COMMENT ON FUNCTION health_score.band(jsonb, record) IS 'Risk band name of a table row''s score under an inline model';
COMMENT ON FUNCTION health_score.band(text, record) IS 'Risk band name of a table row''s score under a registered model';

CREATE FUNCTION health_score.assess(model jsonb, input jsonb) RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_jj' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.assess(model text, input jsonb) RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_nj' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.assess(model jsonb, input record) RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_jr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score._row_support;
CREATE FUNCTION health_score.assess(model text, input record) RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_nr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score._row_support;
COMMENT ON FUNCTION health_score.assess(jsonb, jsonb) IS 'Score, band, coverage and segment in one row (use in FROM ... LATERAL)';
COMMENT ON FUNCTION health_score.assess(text, jsonb) IS 'Score, band, coverage and segment under a registered model';
COMMENT ON FUNCTION health_score.assess(jsonb, record) IS 'Score, band, coverage and segment of a table row under an inline model';
COMMENT ON FUNCTION health_score.assess(text, record) IS 'Score, band, coverage and segment of a table row under a registered model';

CREATE FUNCTION health_score.explain(model jsonb, input jsonb)
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
    AS 'MODULE_PATHNAME', 'hs_explain_jj' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100 ROWS 10;
CREATE FUNCTION health_score.explain(model text, input jsonb)
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
    AS 'MODULE_PATHNAME', 'hs_explain_nj' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100 ROWS 10;
CREATE FUNCTION health_score.explain(model jsonb, input record)
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
    AS 'MODULE_PATHNAME', 'hs_explain_jr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100 ROWS 10
    SUPPORT health_score._row_support;
CREATE FUNCTION health_score.explain(model text, input record)
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
    AS 'MODULE_PATHNAME', 'hs_explain_nr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100 ROWS 10
    SUPPORT health_score._row_support;
COMMENT ON FUNCTION health_score.explain(jsonb, jsonb) IS 'One row per component (groups too, parents first): input, raw value, normalized n, effective weight, contribution in points, status; top-level contributions add up to the score';
COMMENT ON FUNCTION health_score.explain(text, jsonb) IS 'Per-component explanation of a score under a registered model';
COMMENT ON FUNCTION health_score.explain(jsonb, record) IS 'Per-component explanation of a table row''s score under an inline model';
COMMENT ON FUNCTION health_score.explain(text, record) IS 'Per-component explanation of a table row''s score under a registered model';

CREATE FUNCTION health_score.churn_probability(model jsonb, input jsonb) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_jj' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.churn_probability(model text, input jsonb) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_nj' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.churn_probability(model jsonb, input record) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_jr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score._row_support;
CREATE FUNCTION health_score.churn_probability(model text, input record) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_nr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score._row_support;
COMMENT ON FUNCTION health_score.churn_probability(jsonb, jsonb) IS 'Churn probability 1 / (1 + exp(-(intercept + slope * score))) by the model''s calibration; NULL without calibration or score';
COMMENT ON FUNCTION health_score.churn_probability(text, jsonb) IS 'Calibrated churn probability under a registered model';
COMMENT ON FUNCTION health_score.churn_probability(jsonb, record) IS 'Calibrated churn probability of a table row under an inline model';
COMMENT ON FUNCTION health_score.churn_probability(text, record) IS 'Calibrated churn probability of a table row under a registered model';

-- The columns forms: what the planner support of the row forms calls instead, with the row's
-- columns as separate arguments. Not STRICT: a column may be NULL.
CREATE FUNCTION health_score._score_columns(model jsonb, row_type oid, columns text[], VARIADIC "any") RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score._score_columns(jsonb, oid, text[], "any") IS 'health_score.score(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score._score_columns(model text, row_type oid, columns text[], VARIADIC "any") RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score._score_columns(text, oid, text[], "any") IS 'health_score.score(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score._band_columns(model jsonb, row_type oid, columns text[], VARIADIC "any") RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score._band_columns(jsonb, oid, text[], "any") IS 'health_score.band(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score._band_columns(model text, row_type oid, columns text[], VARIADIC "any") RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score._band_columns(text, oid, text[], "any") IS 'health_score.band(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score._assess_columns(model jsonb, row_type oid, columns text[], VARIADIC "any") RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score._assess_columns(jsonb, oid, text[], "any") IS 'health_score.assess(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score._assess_columns(model text, row_type oid, columns text[], VARIADIC "any") RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score._assess_columns(text, oid, text[], "any") IS 'health_score.assess(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score._churn_probability_columns(model jsonb, row_type oid, columns text[], VARIADIC "any") RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score._churn_probability_columns(jsonb, oid, text[], "any") IS 'health_score.churn_probability(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score._churn_probability_columns(model text, row_type oid, columns text[], VARIADIC "any") RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score._churn_probability_columns(text, oid, text[], "any") IS 'health_score.churn_probability(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score._explain_columns(model jsonb, row_type oid, columns text[], VARIADIC "any")
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
    AS 'MODULE_PATHNAME', 'hs_explain_columns' LANGUAGE C STABLE PARALLEL SAFE COST 100 ROWS 10;
COMMENT ON FUNCTION health_score._explain_columns(jsonb, oid, text[], "any") IS 'health_score.explain(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score._explain_columns(model text, row_type oid, columns text[], VARIADIC "any")
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
    AS 'MODULE_PATHNAME', 'hs_explain_columns' LANGUAGE C STABLE PARALLEL SAFE COST 100 ROWS 10;
COMMENT ON FUNCTION health_score._explain_columns(text, oid, text[], "any") IS 'health_score.explain(model, row) as the planner passes it: the row''s columns as arguments';

-------------------------------------------------------------------------------------------
-- Long format: score_agg(model, input_key, value) over metric rows
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score._score_agg_trans(internal, jsonb, text, jsonb) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score._score_agg_trans(internal, jsonb, text, double precision) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score._score_agg_trans(internal, jsonb, text, text) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score._score_agg_trans(internal, text, text, jsonb) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score._score_agg_trans(internal, text, text, double precision) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score._score_agg_trans(internal, text, text, text) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score._score_agg_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score._score_agg_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION health_score._score_agg_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION health_score._score_agg_final(internal) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_agg_final' LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION health_score._score_agg_trans(internal, jsonb, text, jsonb) IS 'score_agg transition: collects (input_key, value)';
COMMENT ON FUNCTION health_score._score_agg_trans(internal, jsonb, text, double precision) IS 'score_agg transition: collects (input_key, value)';
COMMENT ON FUNCTION health_score._score_agg_trans(internal, jsonb, text, text) IS 'score_agg transition: collects (input_key, value)';
COMMENT ON FUNCTION health_score._score_agg_trans(internal, text, text, jsonb) IS 'score_agg transition: collects (input_key, value)';
COMMENT ON FUNCTION health_score._score_agg_trans(internal, text, text, double precision) IS 'score_agg transition: collects (input_key, value)';
COMMENT ON FUNCTION health_score._score_agg_trans(internal, text, text, text) IS 'score_agg transition: collects (input_key, value)';
COMMENT ON FUNCTION health_score._score_agg_combine(internal, internal) IS 'score_agg combine: merges two partial states (parallel aggregation)';
COMMENT ON FUNCTION health_score._score_agg_serialize(internal) IS 'score_agg serialize: state to bytea for parallel workers';
COMMENT ON FUNCTION health_score._score_agg_deserialize(bytea, internal) IS 'score_agg deserialize: bytea back to a state';
COMMENT ON FUNCTION health_score._score_agg_final(internal) IS 'score_agg final: scores the collected object';

CREATE AGGREGATE health_score.score_agg(model jsonb, input_key text, value jsonb) (
    SFUNC = health_score._score_agg_trans, STYPE = internal, FINALFUNC = health_score._score_agg_final,
    COMBINEFUNC = health_score._score_agg_combine, SERIALFUNC = health_score._score_agg_serialize,
    DESERIALFUNC = health_score._score_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model jsonb, input_key text, value double precision) (
    SFUNC = health_score._score_agg_trans, STYPE = internal, FINALFUNC = health_score._score_agg_final,
    COMBINEFUNC = health_score._score_agg_combine, SERIALFUNC = health_score._score_agg_serialize,
    DESERIALFUNC = health_score._score_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model jsonb, input_key text, value text) (
    SFUNC = health_score._score_agg_trans, STYPE = internal, FINALFUNC = health_score._score_agg_final,
    COMBINEFUNC = health_score._score_agg_combine, SERIALFUNC = health_score._score_agg_serialize,
    DESERIALFUNC = health_score._score_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model text, input_key text, value jsonb) (
    SFUNC = health_score._score_agg_trans, STYPE = internal, FINALFUNC = health_score._score_agg_final,
    COMBINEFUNC = health_score._score_agg_combine, SERIALFUNC = health_score._score_agg_serialize,
    DESERIALFUNC = health_score._score_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model text, input_key text, value double precision) (
    SFUNC = health_score._score_agg_trans, STYPE = internal, FINALFUNC = health_score._score_agg_final,
    COMBINEFUNC = health_score._score_agg_combine, SERIALFUNC = health_score._score_agg_serialize,
    DESERIALFUNC = health_score._score_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model text, input_key text, value text) (
    SFUNC = health_score._score_agg_trans, STYPE = internal, FINALFUNC = health_score._score_agg_final,
    COMBINEFUNC = health_score._score_agg_combine, SERIALFUNC = health_score._score_agg_serialize,
    DESERIALFUNC = health_score._score_agg_deserialize, PARALLEL = SAFE);

COMMENT ON AGGREGATE health_score.score_agg(jsonb, text, jsonb) IS 'Score of the object built from a group''s (input_key, value) rows under an inline model; a key twice in a group is an error, NULL keys are ignored';
COMMENT ON AGGREGATE health_score.score_agg(jsonb, text, double precision) IS 'Score of the object built from a group''s (input_key, numeric value) rows under an inline model';
COMMENT ON AGGREGATE health_score.score_agg(jsonb, text, text) IS 'Score of the object built from a group''s (input_key, text value) rows under an inline model';
COMMENT ON AGGREGATE health_score.score_agg(text, text, jsonb) IS 'Score of the object built from a group''s (input_key, value) rows under a registered model';
COMMENT ON AGGREGATE health_score.score_agg(text, text, double precision) IS 'Score of the object built from a group''s (input_key, numeric value) rows under a registered model';
COMMENT ON AGGREGATE health_score.score_agg(text, text, text) IS 'Score of the object built from a group''s (input_key, text value) rows under a registered model';
COMMENT ON SCHEMA health_score IS 'health_score: explainable customer health scores (models, scoring, explanation)';

-- History: the trend aggregate
CREATE TYPE health_score.trend_summary AS (
    n bigint,
    first_at timestamptz,
    first_score double precision,
    last_at timestamptz,
    last_score double precision,
    delta double precision,
    pct_change double precision,
    slope_per_day double precision,
    min_score double precision,
    max_score double precision
);
COMMENT ON TYPE health_score.trend_summary IS 'The trend of a series of (time, score) points, as health_score.trend returns it';
COMMENT ON COLUMN health_score.trend_summary.n IS 'Points counted (rows with a NULL time or score are ignored)';
COMMENT ON COLUMN health_score.trend_summary.first_at IS 'Earliest time';
COMMENT ON COLUMN health_score.trend_summary.first_score IS 'Score at the earliest time (the mean of the scores sharing that time)';
COMMENT ON COLUMN health_score.trend_summary.last_at IS 'Latest time';
COMMENT ON COLUMN health_score.trend_summary.last_score IS 'Score at the latest time (the mean of the scores sharing that time)';
COMMENT ON COLUMN health_score.trend_summary.delta IS 'last_score - first_score';
COMMENT ON COLUMN health_score.trend_summary.pct_change IS '100 * delta / first_score; NULL when first_score is 0';
COMMENT ON COLUMN health_score.trend_summary.slope_per_day IS 'Least-squares slope of score per day (as regr_slope(score, epoch / 86400)); NULL with fewer than two distinct times';
COMMENT ON COLUMN health_score.trend_summary.min_score IS 'Lowest score';
COMMENT ON COLUMN health_score.trend_summary.max_score IS 'Highest score';

CREATE FUNCTION health_score._trend_trans(internal, timestamptz, double precision) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_trend_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score._trend_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_trend_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score._trend_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_trend_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION health_score._trend_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_trend_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION health_score._trend_final(internal) RETURNS health_score.trend_summary
    AS 'MODULE_PATHNAME', 'hs_trend_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score._trend_trans(internal, timestamptz, double precision) IS 'trend transition: adds one (time, score) point';
COMMENT ON FUNCTION health_score._trend_combine(internal, internal) IS 'trend combine: merges two partial states (parallel aggregation)';
COMMENT ON FUNCTION health_score._trend_serialize(internal) IS 'trend serialize: state to bytea for parallel workers';
COMMENT ON FUNCTION health_score._trend_deserialize(bytea, internal) IS 'trend deserialize: bytea back to a state';
COMMENT ON FUNCTION health_score._trend_final(internal) IS 'trend final: the summary (reads the state only, so it also serves window frames)';

CREATE AGGREGATE health_score.trend(at timestamptz, score double precision) (
    SFUNC = health_score._trend_trans, STYPE = internal, SSPACE = 104,
    FINALFUNC = health_score._trend_final, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score._trend_combine, SERIALFUNC = health_score._trend_serialize,
    DESERIALFUNC = health_score._trend_deserialize, PARALLEL = SAFE);
COMMENT ON AGGREGATE health_score.trend(timestamptz, double precision) IS 'Trend of a score over time: first/last score and time, delta, percent change, least-squares slope per day, min/max; order-insensitive, parallel, usable as a window aggregate';
