-------------------------------------------------------------------------------------------
-- Scoring: each function has four forms, the model inline (jsonb) or by name (text,
-- ''name'' or ''name@version''), the input a jsonb object or a table row (record).
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score_internal._row_support(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_row_support' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._row_support(internal) IS
    'Planner support of the table-row forms: passes a whole row''s columns (health_score_internal._*_columns) instead of building a composite value per row';

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
    AS 'MODULE_PATHNAME', 'hs_score_nj' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100
    SUPPORT health_score_internal._row_support;
CREATE FUNCTION health_score.score(model jsonb, input record) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_jr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score_internal._row_support;
CREATE FUNCTION health_score.score(model text, input record) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_nr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score_internal._row_support;
COMMENT ON FUNCTION health_score.score(jsonb, jsonb) IS 'Health score of a jsonb input object under an inline model';
COMMENT ON FUNCTION health_score.score(text, jsonb) IS 'Health score of a jsonb input object under a registered model (''name'' or ''name@version'')';
COMMENT ON FUNCTION health_score.score(jsonb, record) IS 'Health score of a table row (inputs read from its columns) under an inline model';
COMMENT ON FUNCTION health_score.score(text, record) IS 'Health score of a table row (inputs read from its columns) under a registered model';

CREATE FUNCTION health_score.band(model jsonb, input jsonb) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_jj' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.band(model text, input jsonb) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_nj' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100
    SUPPORT health_score_internal._row_support;
CREATE FUNCTION health_score.band(model jsonb, input record) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_jr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score_internal._row_support;
CREATE FUNCTION health_score.band(model text, input record) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_nr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score_internal._row_support;
COMMENT ON FUNCTION health_score.band(jsonb, jsonb) IS 'Risk band name of the score (the segment''s bands where it overrides them); NULL without bands or score';
COMMENT ON FUNCTION health_score.band(text, jsonb) IS 'Risk band name of the score under a registered model';
COMMENT ON FUNCTION health_score.band(jsonb, record) IS 'Risk band name of a table row''s score under an inline model';
COMMENT ON FUNCTION health_score.band(text, record) IS 'Risk band name of a table row''s score under a registered model';

CREATE FUNCTION health_score.band(model jsonb, input jsonb, previous_band text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_after_jj' LANGUAGE C IMMUTABLE PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.band(model text, input jsonb, previous_band text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_after_nj' LANGUAGE C STABLE PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.band(model jsonb, input record, previous_band text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_after_jr' LANGUAGE C STABLE PARALLEL SAFE COST 25;
CREATE FUNCTION health_score.band(model text, input record, previous_band text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_after_nr' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score.band(jsonb, jsonb, text) IS 'Risk band with the model''s band_hysteresis: previous_band is kept while the score stays within the margin of its bounds; NULL previous_band gives the plain band';
COMMENT ON FUNCTION health_score.band(text, jsonb, text) IS 'Risk band with band_hysteresis from a previous band, under a registered model';
COMMENT ON FUNCTION health_score.band(jsonb, record, text) IS 'Risk band of a table row with band_hysteresis from a previous band, under an inline model';
COMMENT ON FUNCTION health_score.band(text, record, text) IS 'Risk band of a table row with band_hysteresis from a previous band, under a registered model';

CREATE FUNCTION health_score.assess(model jsonb, input jsonb) RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_jj' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.assess(model text, input jsonb) RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_nj' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100
    SUPPORT health_score_internal._row_support;
CREATE FUNCTION health_score.assess(model jsonb, input record) RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_jr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score_internal._row_support;
CREATE FUNCTION health_score.assess(model text, input record) RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_nr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score_internal._row_support;
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
    AS 'MODULE_PATHNAME', 'hs_explain_nj' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100 ROWS 10
    SUPPORT health_score_internal._row_support;
CREATE FUNCTION health_score.explain(model jsonb, input record)
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
    AS 'MODULE_PATHNAME', 'hs_explain_jr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100 ROWS 10
    SUPPORT health_score_internal._row_support;
CREATE FUNCTION health_score.explain(model text, input record)
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
    AS 'MODULE_PATHNAME', 'hs_explain_nr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100 ROWS 10
    SUPPORT health_score_internal._row_support;
COMMENT ON FUNCTION health_score.explain(jsonb, jsonb) IS 'One row per component (groups too, parents first): input, raw value, normalized n, effective weight, contribution in points, status; top-level contributions add up to the score';
COMMENT ON FUNCTION health_score.explain(text, jsonb) IS 'Per-component explanation of a score under a registered model';
COMMENT ON FUNCTION health_score.explain(jsonb, record) IS 'Per-component explanation of a table row''s score under an inline model';
COMMENT ON FUNCTION health_score.explain(text, record) IS 'Per-component explanation of a table row''s score under a registered model';

CREATE FUNCTION health_score.churn_probability(model jsonb, input jsonb) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_jj' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.churn_probability(model text, input jsonb) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_nj' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100
    SUPPORT health_score_internal._row_support;
CREATE FUNCTION health_score.churn_probability(model jsonb, input record) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_jr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score_internal._row_support;
CREATE FUNCTION health_score.churn_probability(model text, input record) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_nr' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 25
    SUPPORT health_score_internal._row_support;
COMMENT ON FUNCTION health_score.churn_probability(jsonb, jsonb) IS 'Churn probability 1 / (1 + exp(-(intercept + slope * score))) by the model''s calibration; NULL without calibration or score';
COMMENT ON FUNCTION health_score.churn_probability(text, jsonb) IS 'Calibrated churn probability under a registered model';
COMMENT ON FUNCTION health_score.churn_probability(jsonb, record) IS 'Calibrated churn probability of a table row under an inline model';
COMMENT ON FUNCTION health_score.churn_probability(text, record) IS 'Calibrated churn probability of a table row under a registered model';

-- The columns forms: what the planner support of the row forms calls instead, with the row's
-- columns as separate arguments. Not STRICT: a column may be NULL.
CREATE FUNCTION health_score_internal._score_columns(model jsonb, row_type oid, columns text[], VARIADIC "any") RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score_internal._score_columns(jsonb, oid, text[], "any") IS 'health_score.score(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score_internal._score_columns(model text, row_type oid, columns text[], VARIADIC "any") RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score_internal._score_columns(text, oid, text[], "any") IS 'health_score.score(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score_internal._band_columns(model jsonb, row_type oid, columns text[], VARIADIC "any") RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score_internal._band_columns(jsonb, oid, text[], "any") IS 'health_score.band(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score_internal._band_columns(model text, row_type oid, columns text[], VARIADIC "any") RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score_internal._band_columns(text, oid, text[], "any") IS 'health_score.band(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score_internal._assess_columns(model jsonb, row_type oid, columns text[], VARIADIC "any") RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score_internal._assess_columns(jsonb, oid, text[], "any") IS 'health_score.assess(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score_internal._assess_columns(model text, row_type oid, columns text[], VARIADIC "any") RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score_internal._assess_columns(text, oid, text[], "any") IS 'health_score.assess(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score_internal._churn_probability_columns(model jsonb, row_type oid, columns text[], VARIADIC "any") RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score_internal._churn_probability_columns(jsonb, oid, text[], "any") IS 'health_score.churn_probability(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score_internal._churn_probability_columns(model text, row_type oid, columns text[], VARIADIC "any") RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_columns' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score_internal._churn_probability_columns(text, oid, text[], "any") IS 'health_score.churn_probability(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score_internal._explain_columns(model jsonb, row_type oid, columns text[], VARIADIC "any")
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
    AS 'MODULE_PATHNAME', 'hs_explain_columns' LANGUAGE C STABLE PARALLEL SAFE COST 100 ROWS 10;
COMMENT ON FUNCTION health_score_internal._explain_columns(jsonb, oid, text[], "any") IS 'health_score.explain(model, row) as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score_internal._explain_columns(model text, row_type oid, columns text[], VARIADIC "any")
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
    AS 'MODULE_PATHNAME', 'hs_explain_columns' LANGUAGE C STABLE PARALLEL SAFE COST 100 ROWS 10;
COMMENT ON FUNCTION health_score_internal._explain_columns(text, oid, text[], "any") IS 'health_score.explain(model, row) as the planner passes it: the row''s columns as arguments';

-- the planner calls its support function itself
REVOKE EXECUTE ON FUNCTION health_score_internal._row_support(internal) FROM PUBLIC;

CREATE FUNCTION health_score_internal._jsonb_of(input text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'hs_jsonb_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._jsonb_of(text) IS
    'text as jsonb, for the text forms of the scoring functions (a model or an input): 22023 with the text cut short when it is not JSON';
-- The forms for untyped literals: score('m', '{"x": 1}') or score('m', NULL) matches no form
-- above better than another (a jsonb and a record input are of different kinds), and
-- PostgreSQL would call the call ambiguous. A literal's type is text first: these forms read
-- the input as jsonb, and the model as inline JSON when it is an object, else as a name.
-- (Inlined SQL, so every name is qualified; CASE drops the arm a constant model rules out.)
CREATE FUNCTION health_score.score(model text, input text) RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.left(pg_catalog.ltrim(score.model), 1) OPERATOR(pg_catalog.=) '{'
                THEN health_score.score(health_score_internal._jsonb_of(score.model), health_score_internal._jsonb_of(score.input))
                ELSE health_score.score(score.model, health_score_internal._jsonb_of(score.input)) END
$$;
CREATE FUNCTION health_score.band(model text, input text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.left(pg_catalog.ltrim(band.model), 1) OPERATOR(pg_catalog.=) '{'
                THEN health_score.band(health_score_internal._jsonb_of(band.model), health_score_internal._jsonb_of(band.input))
                ELSE health_score.band(band.model, health_score_internal._jsonb_of(band.input)) END
$$;
CREATE FUNCTION health_score.band(model text, input text, previous_band text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.left(pg_catalog.ltrim(band.model), 1) OPERATOR(pg_catalog.=) '{'
                THEN health_score.band(health_score_internal._jsonb_of(band.model), health_score_internal._jsonb_of(band.input), band.previous_band)
                ELSE health_score.band(band.model, health_score_internal._jsonb_of(band.input), band.previous_band) END
$$;
CREATE FUNCTION health_score.assess(model text, input text) RETURNS health_score.assessment
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.left(pg_catalog.ltrim(assess.model), 1) OPERATOR(pg_catalog.=) '{'
                THEN health_score.assess(health_score_internal._jsonb_of(assess.model), health_score_internal._jsonb_of(assess.input))
                ELSE health_score.assess(assess.model, health_score_internal._jsonb_of(assess.input)) END
$$;
CREATE FUNCTION health_score.churn_probability(model text, input text) RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.left(pg_catalog.ltrim(churn_probability.model), 1) OPERATOR(pg_catalog.=) '{'
                THEN health_score.churn_probability(health_score_internal._jsonb_of(churn_probability.model), health_score_internal._jsonb_of(churn_probability.input))
                ELSE health_score.churn_probability(churn_probability.model, health_score_internal._jsonb_of(churn_probability.input)) END
$$;
CREATE FUNCTION health_score.explain(model text, input text)
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- (both forms are STRICT: the one whose model is NULL returns no row)
    SELECT e.* FROM health_score.explain(CASE WHEN pg_catalog.left(pg_catalog.ltrim(explain.model), 1) OPERATOR(pg_catalog.=) '{'
                                              THEN health_score_internal._jsonb_of(explain.model) END, health_score_internal._jsonb_of(explain.input)) e
    UNION ALL
    SELECT e.* FROM health_score.explain(CASE WHEN pg_catalog.left(pg_catalog.ltrim(explain.model), 1) OPERATOR(pg_catalog.<>) '{'
                                              THEN explain.model END, health_score_internal._jsonb_of(explain.input)) e
$$;
COMMENT ON FUNCTION health_score.score(text, text) IS
    'score for untyped literals and text: the input read as jsonb, the model inline when it is a JSON object, else by name';
COMMENT ON FUNCTION health_score.band(text, text) IS
    'band for untyped literals and text: the input read as jsonb, the model inline when it is a JSON object, else by name';
COMMENT ON FUNCTION health_score.band(text, text, text) IS
    'band with a previous band for untyped literals and text: the input read as jsonb, the model inline when it is a JSON object, else by name';
COMMENT ON FUNCTION health_score.assess(text, text) IS
    'assess for untyped literals and text: the input read as jsonb, the model inline when it is a JSON object, else by name';
COMMENT ON FUNCTION health_score.churn_probability(text, text) IS
    'churn_probability for untyped literals and text: the input read as jsonb, the model inline when it is a JSON object, else by name';
COMMENT ON FUNCTION health_score.explain(text, text) IS
    'explain for untyped literals and text: the input read as jsonb, the model inline when it is a JSON object, else by name';
-- ... and for a json (not jsonb) input with the model by name, as the jsonb form
CREATE FUNCTION health_score.score(model text, input json) RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT health_score.score(score.model, score.input::pg_catalog.jsonb)
$$;
CREATE FUNCTION health_score.band(model text, input json) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT health_score.band(band.model, band.input::pg_catalog.jsonb)
$$;
CREATE FUNCTION health_score.band(model text, input json, previous_band text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT health_score.band(band.model, band.input::pg_catalog.jsonb, band.previous_band)
$$;
CREATE FUNCTION health_score.assess(model text, input json) RETURNS health_score.assessment
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT health_score.assess(assess.model, assess.input::pg_catalog.jsonb)
$$;
CREATE FUNCTION health_score.churn_probability(model text, input json) RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT health_score.churn_probability(churn_probability.model, churn_probability.input::pg_catalog.jsonb)
$$;
CREATE FUNCTION health_score.explain(model text, input json)
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT e.* FROM health_score.explain(explain.model, explain.input::pg_catalog.jsonb) e
$$;
COMMENT ON FUNCTION health_score.score(text, json) IS 'score of a json input, as of the same input as jsonb';
COMMENT ON FUNCTION health_score.band(text, json) IS 'band of a json input, as of the same input as jsonb';
COMMENT ON FUNCTION health_score.band(text, json, text) IS 'band with a previous band of a json input, as of the same input as jsonb';
COMMENT ON FUNCTION health_score.assess(text, json) IS 'assess of a json input, as of the same input as jsonb';
COMMENT ON FUNCTION health_score.churn_probability(text, json) IS 'churn_probability of a json input, as of the same input as jsonb';
COMMENT ON FUNCTION health_score.explain(text, json) IS 'explain of a json input, as of the same input as jsonb';
