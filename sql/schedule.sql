-------------------------------------------------------------------------------------------
-- Scheduled snapshots (pg_cron), and their removal with the extension
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score.schedule(model text, source regclass, key_column text, cron_expr text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    job_name text;
    command text;
    job_id bigint;
BEGIN
    PERFORM health_score_internal._require_coordinator('schedule');
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'schedule: pg_cron is not installed in this database' USING ERRCODE = '55000',
            HINT = 'add pg_cron to shared_preload_libraries, set cron.database_name to this database, restart PostgreSQL and CREATE EXTENSION pg_cron';
    END IF;
    IF schedule.model IS NULL OR schedule.source IS NULL OR schedule.key_column IS NULL OR schedule.cron_expr IS NULL THEN
        RAISE EXCEPTION 'schedule: no argument may be NULL' USING ERRCODE = '22023',
            HINT = 'for example health_score.schedule(''churn'', ''accounts'', ''account_id'', ''0 6 * * *'')';
    END IF;
    PERFORM health_score_internal._resolve_model(schedule.model);
    PERFORM health_score_internal._require_column('schedule', schedule.source, schedule.key_column);
    job_name := 'health_score ' || schedule.model || ' ' || schedule.source::text;
    command := format('SELECT health_score.snapshot(%L, %L::regclass, %L)', schedule.model, schedule.source::text, schedule.key_column);
    -- pg_cron's schema is its owner's: without USAGE the call below would say only "permission
    -- denied for schema cron"
    IF NOT has_schema_privilege('cron', 'USAGE') THEN
        RAISE EXCEPTION 'schedule: role % may not use pg_cron (no USAGE on schema cron)', quote_ident(current_user)
            USING ERRCODE = '42501',
            HINT = format('a superuser grants it: GRANT USAGE ON SCHEMA cron TO %I; the job then runs as this role, which needs health_score_admin', current_user);
    END IF;
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job_id USING job_name, schedule.cron_expr, command;
    RETURN job_id;
END
$$;
COMMENT ON FUNCTION health_score.schedule(text, regclass, text, text) IS
    'Registers a pg_cron job that runs health_score.snapshot(model, source, key_column) on a cron schedule; returns the job id (the same model and source again replaces the job)';

CREATE FUNCTION health_score.unschedule(job_id bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    removed boolean;
BEGIN
    PERFORM health_score_internal._require_coordinator('unschedule');
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'unschedule: pg_cron is not installed in this database' USING ERRCODE = '55000',
            HINT = 'jobs exist only where pg_cron runs: connect to the database named by cron.database_name';
    END IF;
    EXECUTE 'SELECT EXISTS (SELECT FROM cron.job WHERE jobid = $1 AND jobname LIKE ''health_score %'')' INTO removed USING unschedule.job_id;
    IF NOT removed THEN
        RAISE EXCEPTION 'unschedule: no health_score job has id %', unschedule.job_id USING ERRCODE = '42704',
            HINT = 'SELECT jobid, jobname FROM cron.job WHERE jobname LIKE ''health_score %'' lists them';
    END IF;
    EXECUTE 'SELECT cron.unschedule($1)' INTO removed USING unschedule.job_id;
    RETURN removed;
END
$$;
COMMENT ON FUNCTION health_score.unschedule(bigint) IS 'Removes a snapshot job registered by health_score.schedule';

-- DROP EXTENSION health_score removes the jobs schedule registered in this database (pg_cron's
-- table is not the extension's, so the drop itself would leave them failing every run). A
-- job that cannot be removed gets a WARNING; it never stops the drop.
CREATE FUNCTION health_score_internal._unschedule_all() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    job record;
BEGIN
    IF to_regclass('cron.job') IS NULL THEN
        RETURN;
    END IF;
    FOR job IN EXECUTE 'SELECT j.jobid, j.jobname FROM cron.job j
                         WHERE j.jobname LIKE ''health_score %'' AND j.command LIKE ''SELECT health_score.snapshot(%''
                           AND j.database = current_database()' LOOP
        BEGIN
            EXECUTE 'SELECT cron.unschedule($1)' USING job.jobid;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'could not remove the pg_cron job % (%): %', job.jobid, job.jobname, SQLERRM
                USING HINT = 'remove it with SELECT cron.unschedule(' || job.jobid || ')';
        END;
    END LOOP;
END
$$;
COMMENT ON FUNCTION health_score_internal._unschedule_all() IS
    'Removes every pg_cron job health_score.schedule registered in this database (run when the extension is dropped)';
CREATE FUNCTION health_score_internal._drop_extension_names(query text) RETURNS text[]
    AS 'MODULE_PATHNAME', 'hs_drop_extension_names' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._drop_extension_names(text) IS
    'The extensions the DROP EXTENSION statements of a query name (its parse tree; empty for other statements)';
-- The event trigger's function is PL/pgSQL, not C, so that nothing stops a drop: not even the
-- library missing after its package was removed (the error is then a WARNING).
CREATE FUNCTION health_score_internal._on_drop_extension() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- most drops name other extensions, in statements that do not even mention this one
    IF strpos(lower(current_query()), 'health_score') = 0 THEN
        RETURN;
    END IF;
    IF 'health_score' = ANY (health_score_internal._drop_extension_names(current_query())) THEN
        PERFORM health_score_internal._unschedule_all();
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'the pg_cron jobs of health_score.schedule were not removed: %', SQLERRM
        USING HINT = 'SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE ''health_score %'' removes them';
END
$$;
COMMENT ON FUNCTION health_score_internal._on_drop_extension() IS
    'Event trigger function: before DROP EXTENSION health_score, removes the pg_cron jobs it scheduled';
CREATE EVENT TRIGGER health_score_unschedule_on_drop ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION')
    EXECUTE FUNCTION health_score_internal._on_drop_extension();
COMMENT ON EVENT TRIGGER health_score_unschedule_on_drop IS
    'Before DROP EXTENSION health_score: removes the pg_cron jobs health_score.schedule registered';
REVOKE EXECUTE ON FUNCTION health_score_internal._unschedule_all(), health_score_internal._on_drop_extension(),
                           health_score_internal._drop_extension_names(text) FROM PUBLIC;

REVOKE EXECUTE ON FUNCTION health_score.schedule(text, regclass, text, text),
                           health_score.unschedule(bigint)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score.schedule(text, regclass, text, text),
                          health_score.unschedule(bigint)
   TO health_score_admin;
