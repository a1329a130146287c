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

CREATE FUNCTION health_score_internal._fit_shapes_trans(internal, bytea, boolean, jsonb) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_fit_shapes_trans' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._fit_shapes_combine(internal, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_fit_shapes_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._fit_shapes_serialize(internal) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_fit_shapes_serialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION health_score_internal._fit_shapes_deserialize(bytea, internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'hs_fit_shapes_deserialize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION health_score_internal._fit_shapes_final(internal) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_fit_shapes_final' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._fit_shapes_trans(internal, bytea, boolean, jsonb) IS '_fit_shapes transition: keeps the row''s observations';
COMMENT ON FUNCTION health_score_internal._fit_shapes_combine(internal, internal) IS '_fit_shapes combine: merges two partial states (parallel aggregation)';
COMMENT ON FUNCTION health_score_internal._fit_shapes_serialize(internal) IS '_fit_shapes serialize: state to bytea for parallel workers';
COMMENT ON FUNCTION health_score_internal._fit_shapes_deserialize(bytea, internal) IS '_fit_shapes deserialize: bytea back to a state';
COMMENT ON FUNCTION health_score_internal._fit_shapes_final(internal) IS '_fit_shapes final: fits weights and shapes (rows sorted first, so the result does not depend on their order) and returns the fitted model with its report';

CREATE AGGREGATE health_score_internal._fit_shapes(design bytea, churned boolean, settings jsonb) (
    SFUNC = health_score_internal._fit_shapes_trans, STYPE = internal, SSPACE = 1024,
    FINALFUNC = health_score_internal._fit_shapes_final,
    COMBINEFUNC = health_score_internal._fit_shapes_combine, SERIALFUNC = health_score_internal._fit_shapes_serialize,
    DESERIALFUNC = health_score_internal._fit_shapes_deserialize, PARALLEL = SAFE);
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

-- No role calls these support functions (PostgreSQL checks the aggregate owner's right to
-- them), so nobody may (docs/security.md).
REVOKE EXECUTE ON FUNCTION
    health_score_internal._fit_shapes_combine(internal, internal),
    health_score_internal._fit_shapes_deserialize(bytea, internal),
    health_score_internal._fit_shapes_final(internal),
    health_score_internal._fit_shapes_serialize(internal),
    health_score_internal._fit_shapes_trans(internal, bytea, boolean, jsonb)
  FROM PUBLIC;
