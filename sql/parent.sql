-------------------------------------------------------------------------------------------
-- Parent accounts: the parent_health aggregate
-------------------------------------------------------------------------------------------

CREATE TYPE health_score.parent_summary AS (
    score             double precision,
    band              text,
    children          bigint,
    left_out          bigint,
    total_weight      double precision,
    lowest_child      text,
    lowest_score      double precision,
    children_per_band jsonb,
    components        jsonb
);
COMMENT ON TYPE health_score.parent_summary IS 'A parent account''s health from its children''s, as health_score.parent_health returns it';
COMMENT ON COLUMN health_score.parent_summary.score IS 'The weight-averaged score of the children counted; NULL when none is';
COMMENT ON COLUMN health_score.parent_summary.band IS 'The band of that score under the model''s bands';
COMMENT ON COLUMN health_score.parent_summary.children IS 'Children counted: a score and a positive, finite weight';
COMMENT ON COLUMN health_score.parent_summary.left_out IS 'Children left out: a NULL score, or a NULL, non-positive or non-finite weight';
COMMENT ON COLUMN health_score.parent_summary.total_weight IS 'The sum of the counted children''s weights';
COMMENT ON COLUMN health_score.parent_summary.lowest_child IS 'The key of the counted child with the lowest score (the smallest key among ties)';
COMMENT ON COLUMN health_score.parent_summary.lowest_score IS 'Its score';
COMMENT ON COLUMN health_score.parent_summary.children_per_band IS 'Counted children per band, {"red": 1, "yellow": 0, "green": 2}: every band of the model, and any other band a child came with';
COMMENT ON COLUMN health_score.parent_summary.components IS 'Per component, the weight-averaged points of the children (the top-level ones add up to score); NULL unless every counted child gave its components';

-- The state is a bytea (an expanded object while the aggregate runs, its serialized bytes
-- where it travels): Citus aggregates it partially on its workers. Citus checks the caller's
-- right to run these functions and calls them without the call's expression (so one
-- transition function per model type); they stay executable by PUBLIC, and each refuses a
-- call from outside an aggregate and a state that is not one of its own (docs/security.md).
CREATE FUNCTION health_score_internal._parent_step(state bytea, model text, child_key text, score double precision, weight double precision) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_parent_step_named' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._parent_step(state bytea, model jsonb, child_key text, score double precision, weight double precision) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_parent_step_inline' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._parent_step(state bytea, model text, child_key text, score double precision, weight double precision,
                                                   band text, components jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_parent_step_named' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._parent_step(state bytea, model jsonb, child_key text, score double precision, weight double precision,
                                                   band text, components jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_parent_step_inline' LANGUAGE C STABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._parent_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_parent_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._parent_result(state bytea) RETURNS health_score.parent_summary
    AS 'MODULE_PATHNAME', 'hs_parent_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._parent_step(bytea, text, text, double precision, double precision) IS 'parent_health transition: adds one child (in place)';
COMMENT ON FUNCTION health_score_internal._parent_step(bytea, jsonb, text, double precision, double precision) IS 'parent_health transition: adds one child (in place)';
COMMENT ON FUNCTION health_score_internal._parent_step(bytea, text, text, double precision, double precision, text, jsonb) IS 'parent_health transition: adds one child, with its band and components (in place)';
COMMENT ON FUNCTION health_score_internal._parent_step(bytea, jsonb, text, double precision, double precision, text, jsonb) IS 'parent_health transition: adds one child, with its band and components (in place)';
COMMENT ON FUNCTION health_score_internal._parent_merge(bytea, bytea) IS 'parent_health combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._parent_result(bytea) IS 'parent_health final: the summary (reads the state only, so it also serves window frames)';

CREATE AGGREGATE health_score.parent_health(model text, child_key text, score double precision, weight double precision) (
    SFUNC = health_score_internal._parent_step, STYPE = bytea,
    FINALFUNC = health_score_internal._parent_result, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score_internal._parent_merge, PARALLEL = SAFE);
CREATE AGGREGATE health_score.parent_health(model jsonb, child_key text, score double precision, weight double precision) (
    SFUNC = health_score_internal._parent_step, STYPE = bytea,
    FINALFUNC = health_score_internal._parent_result, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score_internal._parent_merge, PARALLEL = SAFE);
CREATE AGGREGATE health_score.parent_health(model text, child_key text, score double precision, weight double precision,
                                            band text, components jsonb) (
    SFUNC = health_score_internal._parent_step, STYPE = bytea,
    FINALFUNC = health_score_internal._parent_result, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score_internal._parent_merge, PARALLEL = SAFE);
CREATE AGGREGATE health_score.parent_health(model jsonb, child_key text, score double precision, weight double precision,
                                            band text, components jsonb) (
    SFUNC = health_score_internal._parent_step, STYPE = bytea,
    FINALFUNC = health_score_internal._parent_result, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score_internal._parent_merge, PARALLEL = SAFE);
COMMENT ON AGGREGATE health_score.parent_health(text, text, double precision, double precision) IS
    'A parent account''s health from its children: the weight-averaged score (NULL scores and NULL or non-positive weights left out, and counted), its band under the model''s bands, the lowest child, children per band (each child''s band of its score); parallel';
COMMENT ON AGGREGATE health_score.parent_health(jsonb, text, double precision, double precision) IS
    'A parent account''s health from its children, under an inline model';
COMMENT ON AGGREGATE health_score.parent_health(text, text, double precision, double precision, text, jsonb) IS
    'A parent account''s health from its children''s snapshots: with each child''s band (as stored; NULL: the band of its score) and components (as health_score.scores holds them), the weight-averaged points per component, which add up to the parent''s score';
COMMENT ON AGGREGATE health_score.parent_health(jsonb, text, double precision, double precision, text, jsonb) IS
    'A parent account''s health from its children''s bands and components, under an inline model';

