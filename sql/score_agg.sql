-------------------------------------------------------------------------------------------
-- Long format: score_agg(model, input_key, value) over metric rows
-------------------------------------------------------------------------------------------

-- The state is a flat bytea appended to in place (not internal): Citus aggregates it
-- partially on its workers. Citus checks the caller's right to run these functions and calls
-- them without the call's expression (so one transition function per argument types); they
-- stay executable by PUBLIC, and each refuses a call from outside an aggregate and a state
-- that is not one of its own (docs/security.md).
CREATE FUNCTION health_score_internal._score_agg_step(state bytea, model jsonb, input_key text, value jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_step_jj' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_step(state bytea, model jsonb, input_key text, value double precision) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_step_jf' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_step(state bytea, model jsonb, input_key text, value text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_step_jt' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_step(state bytea, model text, input_key text, value jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_step_nj' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_step(state bytea, model text, input_key text, value double precision) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_step_nf' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_step(state bytea, model text, input_key text, value text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_step_nt' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_result(state bytea) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_agg_result' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._score_agg_step(bytea, jsonb, text, jsonb) IS 'score_agg transition: appends (input_key, value) to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._score_agg_step(bytea, jsonb, text, double precision) IS 'score_agg transition: appends (input_key, value) to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._score_agg_step(bytea, jsonb, text, text) IS 'score_agg transition: appends (input_key, value) to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._score_agg_step(bytea, text, text, jsonb) IS 'score_agg transition: appends (input_key, value) to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._score_agg_step(bytea, text, text, double precision) IS 'score_agg transition: appends (input_key, value) to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._score_agg_step(bytea, text, text, text) IS 'score_agg transition: appends (input_key, value) to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._score_agg_merge(bytea, bytea) IS 'score_agg combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._score_agg_result(bytea) IS 'score_agg final: scores the collected object';

CREATE AGGREGATE health_score.score_agg(model jsonb, input_key text, value jsonb) (
    SFUNC = health_score_internal._score_agg_step, STYPE = bytea, FINALFUNC = health_score_internal._score_agg_result,
    COMBINEFUNC = health_score_internal._score_agg_merge, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model jsonb, input_key text, value double precision) (
    SFUNC = health_score_internal._score_agg_step, STYPE = bytea, FINALFUNC = health_score_internal._score_agg_result,
    COMBINEFUNC = health_score_internal._score_agg_merge, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model jsonb, input_key text, value text) (
    SFUNC = health_score_internal._score_agg_step, STYPE = bytea, FINALFUNC = health_score_internal._score_agg_result,
    COMBINEFUNC = health_score_internal._score_agg_merge, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model text, input_key text, value jsonb) (
    SFUNC = health_score_internal._score_agg_step, STYPE = bytea, FINALFUNC = health_score_internal._score_agg_result,
    COMBINEFUNC = health_score_internal._score_agg_merge, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model text, input_key text, value double precision) (
    SFUNC = health_score_internal._score_agg_step, STYPE = bytea, FINALFUNC = health_score_internal._score_agg_result,
    COMBINEFUNC = health_score_internal._score_agg_merge, PARALLEL = SAFE);
CREATE AGGREGATE health_score.score_agg(model text, input_key text, value text) (
    SFUNC = health_score_internal._score_agg_step, STYPE = bytea, FINALFUNC = health_score_internal._score_agg_result,
    COMBINEFUNC = health_score_internal._score_agg_merge, PARALLEL = SAFE);

COMMENT ON AGGREGATE health_score.score_agg(jsonb, text, jsonb) IS 'Score of the object built from a group''s (input_key, value) rows under an inline model; a key twice in a group is an error, NULL keys are ignored';
COMMENT ON AGGREGATE health_score.score_agg(jsonb, text, double precision) IS 'Score of the object built from a group''s (input_key, numeric value) rows under an inline model';
COMMENT ON AGGREGATE health_score.score_agg(jsonb, text, text) IS 'Score of the object built from a group''s (input_key, text value) rows under an inline model';
COMMENT ON AGGREGATE health_score.score_agg(text, text, jsonb) IS 'Score of the object built from a group''s (input_key, value) rows under a registered model';
COMMENT ON AGGREGATE health_score.score_agg(text, text, double precision) IS 'Score of the object built from a group''s (input_key, numeric value) rows under a registered model';
COMMENT ON AGGREGATE health_score.score_agg(text, text, text) IS 'Score of the object built from a group''s (input_key, text value) rows under a registered model';

