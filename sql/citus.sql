-------------------------------------------------------------------------------------------
-- Citus: the functions that keep the cluster's own state run on the coordinator only
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score_internal._require_coordinator(what text) RETURNS void
    AS 'MODULE_PATHNAME', 'hs_require_coordinator' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._require_coordinator(text) IS
    'Raises 0A000 naming the function on a worker of a Citus cluster (a server whose pg_dist_local_group is not 0); nothing elsewhere';
