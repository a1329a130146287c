-------------------------------------------------------------------------------------------
-- Long format: score_agg(model, input_key, value) over metric rows
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score_internal._score_agg_trans(internal, jsonb, text, jsonb) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_trans(internal, jsonb, text, double precision) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_trans(internal, jsonb, text, text) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_trans(internal, text, text, jsonb) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_trans(internal, text, text, double precision) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_trans(internal, text, text, text) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_score_agg_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_final(internal) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_agg_final' LANGUAGE C STABLE PARALLEL SAFE;

COMMENT ON FUNCTION health_score_internal._score_agg_trans(internal, jsonb, text, jsonb) IS 'score_agg transition: collects (input_key, value)';
COMMENT ON FUNCTION health_score_internal._score_agg_trans(internal, jsonb, text, double precision) IS 'score_agg transition: collects (input_key, value)';
COMMENT ON FUNCTION health_score_internal._score_agg_trans(internal, jsonb, text, text) IS 'score_agg transition: collects (input_key, value)';
COMMENT ON FUNCTION health_score_internal._score_agg_trans(internal, text, text, jsonb) IS 'score_agg transition: collects (input_key, value)';
COMMENT ON FUNCTION health_score_internal._score_agg_trans(internal, text, text, double precision) IS 'score_agg transition: collects (input_key, value)';
COMMENT ON FUNCTION health_score_internal._score_agg_trans(internal, text, text, text) IS 'score_agg transition: collects (input_key, value)';
COMMENT ON FUNCTION health_score_internal._score_agg_combine(internal, internal) IS 'score_agg combine: merges two partial states (parallel aggregation)';
COMMENT ON FUNCTION health_score_internal._score_agg_serialize(internal) IS 'score_agg serialize: state to bytea for parallel workers';
COMMENT ON FUNCTION health_score_internal._score_agg_deserialize(bytea, internal) IS 'score_agg deserialize: bytea back to a state';
COMMENT ON FUNCTION health_score_internal._score_agg_final(internal) IS 'score_agg final: scores the collected object';

CREATE AGGREGATE health_score.score_agg(model jsonb, input_key text, value jsonb) (
    SFUNC = health_score_internal._score_agg_trans, STYPE = internal, FINALFUNC = health_score_internal._score_agg_final,
    COMBINEFUNC = health_score_internal._score_agg_combine, SERIALFUNC = health_score_internal._score_agg_serialize,
    DESERIALFUNC = health_score_internal._score_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model jsonb, input_key text, value double precision) (
    SFUNC = health_score_internal._score_agg_trans, STYPE = internal, FINALFUNC = health_score_internal._score_agg_final,
    COMBINEFUNC = health_score_internal._score_agg_combine, SERIALFUNC = health_score_internal._score_agg_serialize,
    DESERIALFUNC = health_score_internal._score_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model jsonb, input_key text, value text) (
    SFUNC = health_score_internal._score_agg_trans, STYPE = internal, FINALFUNC = health_score_internal._score_agg_final,
    COMBINEFUNC = health_score_internal._score_agg_combine, SERIALFUNC = health_score_internal._score_agg_serialize,
    DESERIALFUNC = health_score_internal._score_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model text, input_key text, value jsonb) (
    SFUNC = health_score_internal._score_agg_trans, STYPE = internal, FINALFUNC = health_score_internal._score_agg_final,
    COMBINEFUNC = health_score_internal._score_agg_combine, SERIALFUNC = health_score_internal._score_agg_serialize,
    DESERIALFUNC = health_score_internal._score_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model text, input_key text, value double precision) (
    SFUNC = health_score_internal._score_agg_trans, STYPE = internal, FINALFUNC = health_score_internal._score_agg_final,
    COMBINEFUNC = health_score_internal._score_agg_combine, SERIALFUNC = health_score_internal._score_agg_serialize,
    DESERIALFUNC = health_score_internal._score_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model text, input_key text, value text) (
    SFUNC = health_score_internal._score_agg_trans, STYPE = internal, FINALFUNC = health_score_internal._score_agg_final,
    COMBINEFUNC = health_score_internal._score_agg_combine, SERIALFUNC = health_score_internal._score_agg_serialize,
    DESERIALFUNC = health_score_internal._score_agg_deserialize, PARALLEL = SAFE);

COMMENT ON AGGREGATE health_score.score_agg(jsonb, text, jsonb) IS 'Score of the object built from a group''s (input_key, value) rows under an inline model; a key twice in a group is an error, NULL keys are ignored';
COMMENT ON AGGREGATE health_score.score_agg(jsonb, text, double precision) IS 'Score of the object built from a group''s (input_key, numeric value) rows under an inline model';
COMMENT ON AGGREGATE health_score.score_agg(jsonb, text, text) IS 'Score of the object built from a group''s (input_key, text value) rows under an inline model';
COMMENT ON AGGREGATE health_score.score_agg(text, text, jsonb) IS 'Score of the object built from a group''s (input_key, value) rows under a registered model';
COMMENT ON AGGREGATE health_score.score_agg(text, text, double precision) IS 'Score of the object built from a group''s (input_key, numeric value) rows under a registered model';
COMMENT ON AGGREGATE health_score.score_agg(text, text, text) IS 'Score of the object built from a group''s (input_key, text value) rows under a registered model';

-- No role calls these support functions (PostgreSQL checks the aggregate owner's right to
-- them), so nobody may (docs/security.md).
REVOKE EXECUTE ON FUNCTION
    health_score_internal._score_agg_combine(internal, internal),
    health_score_internal._score_agg_deserialize(bytea, internal),
    health_score_internal._score_agg_final(internal),
    health_score_internal._score_agg_serialize(internal),
    health_score_internal._score_agg_trans(internal, jsonb, text, double precision),
    health_score_internal._score_agg_trans(internal, jsonb, text, jsonb),
    health_score_internal._score_agg_trans(internal, jsonb, text, text),
    health_score_internal._score_agg_trans(internal, text, text, double precision),
    health_score_internal._score_agg_trans(internal, text, text, jsonb),
    health_score_internal._score_agg_trans(internal, text, text, text)
  FROM PUBLIC;
