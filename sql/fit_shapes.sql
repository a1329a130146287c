-------------------------------------------------------------------------------------------
-- Fitted shapes: fit and fit_report with "shapes": true (sql/fit.sql calls these)
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score_internal._fit_shape_row(model jsonb, input record) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_fit_shape_row' LANGUAGE C STABLE PARALLEL SAFE COST 50
    SUPPORT health_score_internal._row_support;
COMMENT ON FUNCTION health_score_internal._fit_shape_row(jsonb, record) IS
    'fit''s per-row work with shapes: each leaf''s raw number or category (or that it was imputed), encoded; empty when a leaf was reweighted away';
CREATE FUNCTION health_score_internal._fit_shape_row_columns(model jsonb, row_type oid, columns text[], VARIADIC "any")
    RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_fit_shape_row_columns' LANGUAGE C STABLE PARALLEL SAFE COST 50;
COMMENT ON FUNCTION health_score_internal._fit_shape_row_columns(jsonb, oid, text[], "any") IS
    'health_score_internal._fit_shape_row as the planner passes it: the row''s columns as arguments';

-- _fit_shapes's state is a bytea (an expanded object while the aggregate runs, its serialized
-- bytes where it travels): Citus aggregates it partially on its workers. Citus checks the
-- caller's right to run these functions, so they stay executable by PUBLIC; each refuses a
-- call from outside an aggregate and a state that is not one of its own (docs/security.md).
CREATE FUNCTION health_score_internal._fit_shapes_step(state bytea, design bytea, churned boolean, settings jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_fit_shapes_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._fit_shapes_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_fit_shapes_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._fit_shapes_result(state bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_fit_shapes_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._fit_shapes_step(bytea, bytea, boolean, jsonb) IS '_fit_shapes transition: keeps the row''s observations (in place)';
COMMENT ON FUNCTION health_score_internal._fit_shapes_merge(bytea, bytea) IS '_fit_shapes combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._fit_shapes_result(bytea) IS '_fit_shapes final: fits weights and shapes (rows sorted first, so the result does not depend on their order) and returns the fitted model with its report';

CREATE AGGREGATE health_score_internal._fit_shapes(design bytea, churned boolean, settings jsonb) (
    SFUNC = health_score_internal._fit_shapes_step, STYPE = bytea, SSPACE = 1024,
    FINALFUNC = health_score_internal._fit_shapes_result,
    COMBINEFUNC = health_score_internal._fit_shapes_merge, PARALLEL = SAFE);
COMMENT ON AGGREGATE health_score_internal._fit_shapes(bytea, boolean, jsonb) IS
    'Weights and shapes fitted to the outcome over the observations of _fit_shape_row; settings is {"model", "options"}; the fitted model and its report as JSON text';

CREATE FUNCTION health_score_internal._shape_design_model(config jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF jsonb_typeof(config -> 'segments' -> 'overrides') = 'object' THEN
        RETURN jsonb_set(config, '{segments,overrides}',
                         (SELECT coalesce(jsonb_object_agg(o.key, CASE WHEN jsonb_typeof(o.value) = 'object'
                                                                       THEN o.value - 'weights' - 'normalize'
                                                                       ELSE o.value END), '{}')
                            FROM jsonb_each(config -> 'segments' -> 'overrides') o));
    END IF;
    RETURN config;
END
$$;
COMMENT ON FUNCTION health_score_internal._shape_design_model(jsonb) IS
    'The model a fit of shapes reads rows with: one shape per leaf for every row, so the overrides lose their weights and normalizers';

