-------------------------------------------------------------------------------------------
-- Citus: the functions that keep the cluster's own state run on the coordinator only
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score_internal._require_coordinator(what text) RETURNS void
    AS 'MODULE_PATHNAME', 'hs_require_coordinator' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._require_coordinator(text) IS
    'Raises 0A000 naming the function on a worker of a Citus cluster (a server whose pg_dist_local_group is not 0); nothing elsewhere';

CREATE FUNCTION health_score_internal._is_citus_table(relation regclass) RETURNS boolean
    AS 'MODULE_PATHNAME', 'hs_is_citus_table' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._is_citus_table(regclass) IS
    'Whether a table is distributed (or a reference table) by Citus; false where Citus is not installed';

-- The registry as the workers read it: empty until health_score.distribute makes a reference
-- table of it, which Citus places on every node and writes in the registering transaction
-- (two-phase commit); a worker looks names up in its own copy (src/pg/models.rs). A node
-- added later gets its copy before it gets shards (Citus replicates reference tables first).
CREATE TABLE health_score_internal.model_replica (
    name    text    NOT NULL,
    version integer NOT NULL,
    config  jsonb   NOT NULL,
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE health_score_internal.model_replica IS
    'On a Citus cluster whose history is distributed (health_score.distribute): a reference table holding every registered model version, read by the workers; empty elsewhere (not dumped: distribute fills it)';
GRANT SELECT ON health_score_internal.model_replica TO health_score_reader;

CREATE FUNCTION health_score_internal._replicate_model_versions() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF health_score_internal._is_citus_table('health_score_internal.model_replica') THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO health_score_internal.model_replica (name, version, config) VALUES (NEW.name, NEW.version, NEW.config);
        ELSE
            DELETE FROM health_score_internal.model_replica r WHERE r.name = OLD.name AND r.version = OLD.version;
        END IF;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION health_score_internal._replicate_model_versions() IS
    'Trigger of health_score.model_versions: keeps health_score_internal.model_replica equal to it while that is a Citus reference table';
CREATE TRIGGER model_versions_replicate AFTER INSERT OR DELETE ON health_score.model_versions
    FOR EACH ROW EXECUTE FUNCTION health_score_internal._replicate_model_versions();
-- PostgreSQL calls it itself
REVOKE EXECUTE ON FUNCTION health_score_internal._replicate_model_versions() FROM PUBLIC;

-- The registry replicated to every node, so that a model named in any part of a query scores
-- on the workers, and (unless history is false) the tables that hold the history distributed
-- by entity: the snapshots' partitions and the current state, colocated so that an entity's
-- rows and state are on one worker. Citus refuses triggers on a distributed table: the
-- history's statement triggers, which keep the current state through changes by hand, are
-- dropped, and so is the trigger that writes through health_score.scores (below);
-- undistribute creates them again. Run by the tables' owner (the role that created the extension).
CREATE FUNCTION health_score.distribute(shard_count integer DEFAULT NULL, history boolean DEFAULT true) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM health_score_internal._require_coordinator('distribute');
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
        RAISE EXCEPTION 'distribute: Citus is not installed in this database' USING ERRCODE = '0A000',
            HINT = 'CREATE EXTENSION citus on every node and add the workers first (docs/scale-out.md)';
    END IF;
    IF distribute.history IS NULL OR distribute.shard_count NOT BETWEEN 1 AND 64000 THEN
        RAISE EXCEPTION 'distribute: shard_count must be between 1 and 64000 (not %) and history true or false',
            distribute.shard_count USING ERRCODE = '22023',
            HINT = 'leave shard_count out for citus.shard_count, or give a few shards per worker core';
    END IF;
    LOCK TABLE health_score.model_versions, health_score_internal.score_rows, health_score_internal.current_state
        IN EXCLUSIVE MODE;
    IF NOT health_score_internal._is_citus_table('health_score_internal.model_replica') THEN
        TRUNCATE health_score_internal.model_replica;
        PERFORM pg_catalog.create_reference_table('health_score_internal.model_replica');
        INSERT INTO health_score_internal.model_replica (name, version, config)
        SELECT v.name, v.version, v.config FROM health_score.model_versions v;
    END IF;
    IF NOT distribute.history THEN
        RETURN;
    ELSIF health_score_internal._is_citus_table('health_score_internal.score_rows') THEN
        RAISE NOTICE 'distribute: the history is distributed already';
        RETURN;
    END IF;
    DROP TRIGGER current_state_after_insert ON health_score_internal.score_rows;
    DROP TRIGGER current_state_after_update ON health_score_internal.score_rows;
    DROP TRIGGER current_state_after_delete ON health_score_internal.score_rows;
    DROP TRIGGER current_state_after_truncate ON health_score_internal.score_rows;
    -- Citus sends a change of a view with an INSTEAD OF trigger to a worker as it is, where it
    -- would run the trigger again; without it, changes through health_score.scores are
    -- changes of the history's rows, which Citus distributes (the current state then waits
    -- for health_score.refresh_current_state)
    DROP TRIGGER write_scores ON health_score.scores;
    PERFORM pg_catalog.create_distributed_table('health_score_internal.score_rows', 'entity_key',
                                                shard_count => distribute.shard_count);
    PERFORM pg_catalog.create_distributed_table('health_score_internal.current_state', 'entity_key',
                                                colocate_with => 'health_score_internal.score_rows');
    -- the rows are in the shards now; what the coordinator kept of them is space only
    PERFORM pg_catalog.truncate_local_data_after_distributing_table('health_score_internal.score_rows');
    PERFORM pg_catalog.truncate_local_data_after_distributing_table('health_score_internal.current_state');
END
$$;
COMMENT ON FUNCTION health_score.distribute(integer, boolean) IS
    'On a Citus coordinator: replicates the model registry to every node and, unless history is false, distributes the history (health_score_internal.score_rows and its partitions, the current state) by entity key in shard_count shards (NULL: citus.shard_count); health_score.undistribute undoes it';

-- The way back: Citus's undistribute_table rebuilds a table under a new identity, which a
-- table of the extension cannot take, so the rows are copied out, Citus's records of the
-- tables and their shards are removed as DROP TABLE would remove them (the tables themselves
-- stay), and the rows go back into the local tables.
CREATE FUNCTION health_score.undistribute() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t record;
    trigger_name name;
    history boolean;
    copied bigint;
BEGIN
    PERFORM health_score_internal._require_coordinator('undistribute');
    IF NOT health_score_internal._is_citus_table('health_score_internal.model_replica')
       AND NOT health_score_internal._is_citus_table('health_score_internal.score_rows') THEN
        RAISE NOTICE 'undistribute: nothing of health_score is distributed';
        RETURN;
    END IF;
    LOCK TABLE health_score.model_versions, health_score_internal.score_rows, health_score_internal.current_state
        IN EXCLUSIVE MODE;
    history := health_score_internal._is_citus_table('health_score_internal.score_rows');
    IF history THEN
        CREATE TEMP TABLE health_score_undistributed_rows ON COMMIT DROP AS
        SELECT * FROM health_score_internal.score_rows;
        CREATE TEMP TABLE health_score_undistributed_state ON COMMIT DROP AS
        SELECT * FROM health_score_internal.current_state;
    END IF;
    -- partitions first (their shards go with their parent's), then the tables
    FOR t IN
        SELECT c.oid::regclass AS rel, n.nspname AS schema_name, c.relname AS table_name, c.relispartition AS partition
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE health_score_internal._is_citus_table(c.oid)
           AND (c.oid IN ('health_score_internal.score_rows'::regclass, 'health_score_internal.current_state'::regclass,
                          'health_score_internal.model_replica'::regclass)
                OR c.oid IN (SELECT i.inhrelid FROM pg_catalog.pg_inherits i
                              WHERE i.inhparent = 'health_score_internal.score_rows'::regclass))
         ORDER BY c.relispartition DESC, c.relname
    LOOP
        PERFORM pg_catalog.master_remove_distributed_table_metadata_from_workers(t.rel, t.schema_name, t.table_name);
        PERFORM pg_catalog.citus_drop_all_shards(t.rel, t.schema_name, t.table_name, t.partition);
        PERFORM pg_catalog.master_remove_partition_metadata(t.rel, t.schema_name, t.table_name);
        PERFORM pg_catalog.citus_unmark_object_distributed('pg_catalog.pg_class'::regclass, t.rel, 0, false);
        -- and the trigger by which Citus truncates the shards with the table
        FOR trigger_name IN
            SELECT g.tgname FROM pg_catalog.pg_trigger g
             WHERE g.tgrelid = t.rel AND g.tgfoid = 'pg_catalog.citus_truncate_trigger'::regproc
        LOOP
            EXECUTE format('DROP TRIGGER %I ON %s', trigger_name, t.rel);
        END LOOP;
    END LOOP;
    -- (the tables are the coordinator's own again, as empty as when they were distributed:
    -- their rows were in the shards)
    IF NOT history THEN
        RETURN;
    END IF;
    INSERT INTO health_score_internal.score_rows SELECT * FROM health_score_undistributed_rows;
    GET DIAGNOSTICS copied = ROW_COUNT;
    INSERT INTO health_score_internal.current_state SELECT * FROM health_score_undistributed_state;
    CREATE TRIGGER current_state_after_insert AFTER INSERT ON health_score_internal.score_rows
        FOR EACH STATEMENT EXECUTE FUNCTION health_score_internal._maintain_current_state();
    CREATE TRIGGER current_state_after_update AFTER UPDATE ON health_score_internal.score_rows
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION health_score_internal._maintain_current_state();
    CREATE TRIGGER current_state_after_delete AFTER DELETE ON health_score_internal.score_rows
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION health_score_internal._maintain_current_state();
    CREATE TRIGGER current_state_after_truncate AFTER TRUNCATE ON health_score_internal.score_rows
        FOR EACH STATEMENT EXECUTE FUNCTION health_score_internal._maintain_current_state();
    CREATE TRIGGER write_scores INSTEAD OF INSERT OR UPDATE OR DELETE ON health_score.scores
        FOR EACH ROW EXECUTE FUNCTION health_score_internal._write_scores();
    RAISE NOTICE 'undistribute: % snapshot rows are on the coordinator again', copied;
END
$$;
COMMENT ON FUNCTION health_score.undistribute() IS
    'On a Citus coordinator: brings the history health_score.distribute distributed back into the coordinator''s own tables (every row copied), removes its shards from the workers and restores the triggers that keep the current state';
REVOKE EXECUTE ON FUNCTION health_score.distribute(integer, boolean), health_score.undistribute() FROM PUBLIC;
