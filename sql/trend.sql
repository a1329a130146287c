-------------------------------------------------------------------------------------------
-- History: the trend aggregate
-------------------------------------------------------------------------------------------

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

-- The state is a flat bytea updated in place (not internal): Citus aggregates it partially on
-- its workers. Citus checks the caller's right to run these functions, so they stay
-- executable by PUBLIC; each refuses a call from outside an aggregate and a state that is not
-- one of its own (docs/security.md).
CREATE FUNCTION health_score_internal._trend_step(state bytea, at timestamptz, score double precision) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_trend_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._trend_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_trend_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._trend_result(state bytea) RETURNS health_score.trend_summary
    AS 'MODULE_PATHNAME', 'hs_trend_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._trend_step(bytea, timestamptz, double precision) IS 'trend transition: adds one (time, score) point to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._trend_merge(bytea, bytea) IS 'trend combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._trend_result(bytea) IS 'trend final: the summary (reads the state only, so it also serves window frames)';

CREATE AGGREGATE health_score.trend(at timestamptz, score double precision) (
    SFUNC = health_score_internal._trend_step, STYPE = bytea, SSPACE = 112,
    FINALFUNC = health_score_internal._trend_result, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score_internal._trend_merge, PARALLEL = SAFE);
COMMENT ON AGGREGATE health_score.trend(timestamptz, double precision) IS 'Trend of a score over time: first/last score and time, delta, percent change, least-squares slope per day, min/max; order-insensitive, parallel, usable as a window aggregate';

-- The common reading of trend, flat: per entity of a model, the trend of its snapshots in a
-- window, as scalar columns (a composite column reaches BI tools and pandas as a string).
CREATE FUNCTION health_score.trends(model text, since interval DEFAULT '90 days', until timestamptz DEFAULT now())
    RETURNS TABLE (entity_key text, n bigint, first_at timestamptz, first_score double precision, last_at timestamptz,
                   last_score double precision, delta double precision, pct_change double precision,
                   slope_per_day double precision, min_score double precision, max_score double precision)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM health_score_internal._require_model_name('trends', trends.model);
    IF trends.since IS NULL OR trends.until IS NULL OR trends.since < interval '0' OR NOT isfinite(trends.until) THEN
        RAISE EXCEPTION 'trends: since must be a positive interval and until a finite time, not % and %',
            coalesce(trends.since::text, 'NULL'), coalesce(trends.until::text, 'NULL') USING ERRCODE = '22023',
            HINT = 'for example health_score.trends(''churn'', ''30 days'') for the last thirty days';
    END IF;
    RETURN QUERY
    SELECT t.entity_key::text, (t.s).n, (t.s).first_at, (t.s).first_score, (t.s).last_at, (t.s).last_score, (t.s).delta,
           (t.s).pct_change, (t.s).slope_per_day, (t.s).min_score, (t.s).max_score
      FROM (SELECT s.entity_key, health_score.trend(s.scored_at, s.score) AS s
              FROM health_score.scores s
             WHERE s.model = trends.model AND s.scored_at > trends.until - trends.since AND s.scored_at <= trends.until
             GROUP BY s.entity_key) t;
END
$$;
COMMENT ON FUNCTION health_score.trends(text, interval, timestamptz) IS
    'Per entity of a model: the trend (health_score.trend) of its snapshots in (until - since, until], as scalar columns for BI tools and dataframes';
