-------------------------------------------------------------------------------------------
-- Model registry
-------------------------------------------------------------------------------------------

CREATE TABLE health_score.model_versions (
    name        text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    version     integer     NOT NULL CHECK (version >= 1),
    config      jsonb       NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by  name        NOT NULL DEFAULT CURRENT_USER,
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE health_score.model_versions IS
    'Every version of every registered health model; versions are immutable. Written by health_score.set_model, read through health_score.models. Kept by pg_dump.';
COMMENT ON COLUMN health_score.model_versions.name IS 'Model name (^[a-z][a-z0-9_]{0,62}$)';
COMMENT ON COLUMN health_score.model_versions.version IS 'Version number, 1 for the first; scoring by name uses the highest';
COMMENT ON COLUMN health_score.model_versions.config IS 'The model (format 1, see docs/model-format.md)';
COMMENT ON COLUMN health_score.model_versions.description IS 'The model''s own "description", copied at registration';
COMMENT ON COLUMN health_score.model_versions.created_at IS 'When this version was registered';
COMMENT ON COLUMN health_score.model_versions.created_by IS 'The role that registered this version';

SELECT pg_catalog.pg_extension_config_dump('health_score.model_versions', '');

CREATE FUNCTION health_score_internal._model_versions_are_immutable() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'health model versions are immutable: % version % cannot be changed', OLD.name, OLD.version
        USING ERRCODE = '55000',
              HINT = 'register a new version with health_score.set_model(name, config)';
END
$$;
COMMENT ON FUNCTION health_score_internal._model_versions_are_immutable() IS
    'Trigger function: refuses UPDATE of health_score.model_versions (versions are immutable)';

CREATE TRIGGER model_versions_are_immutable
    BEFORE UPDATE ON health_score.model_versions
    FOR EACH ROW EXECUTE FUNCTION health_score_internal._model_versions_are_immutable();

CREATE FUNCTION health_score_internal._require_valid_model(config jsonb) RETURNS void
    AS 'MODULE_PATHNAME', 'hs_require_valid_model' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._require_valid_model(jsonb) IS
    'Raises SQLSTATE 22023 naming the JSON path of the model''s first fault; returns nothing for a valid model';

-- Locks that serialize snapshot, rescore and the generation of a view, held to the end of
-- the transaction. Row locks in a table only the extension writes, taken through _lock,
-- which admins alone may call: advisory locks have keys any role can compute and hold, which
-- would let anyone stall everyone's snapshots (docs/security.md).
CREATE TABLE health_score.locks (
    purpose text NOT NULL,
    key     text NOT NULL,
    PRIMARY KEY (purpose, key)
);
COMMENT ON TABLE health_score.locks IS
    'One row per thing health_score serializes (a model''s snapshots, a version''s rescores, a view''s generation), locked while it is done; no data (not dumped)';
COMMENT ON COLUMN health_score.locks.purpose IS 'What the lock serializes: snapshot, rescore or create_view';
COMMENT ON COLUMN health_score.locks.key IS 'The model, version or view it serializes it for';

-- SECURITY DEFINER (docs/security.md): the lock's row is the registry owner's to write
CREATE FUNCTION health_score_internal._lock(purpose text, key text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    BEGIN
        INSERT INTO health_score.locks AS l (purpose, key) VALUES (_lock.purpose, _lock.key)
        ON CONFLICT ON CONSTRAINT locks_pkey DO NOTHING;
    EXCEPTION WHEN serialization_failure THEN
        -- only under REPEATABLE READ or SERIALIZABLE: the first run of this purpose and key
        -- committed after this transaction began
        RAISE EXCEPTION '%: % conflicts with a concurrent transaction', left(_lock.purpose, 200),
            quote_literal(left(_lock.key, 200)) USING ERRCODE = '40001',
            HINT = 'retry the transaction; under READ COMMITTED (the default) concurrent runs wait for each other';
    END;
    PERFORM FROM health_score.locks l WHERE l.purpose = _lock.purpose AND l.key = _lock.key FOR UPDATE;
END
$$;
COMMENT ON FUNCTION health_score_internal._lock(text, text) IS
    'Waits for, and holds to the end of the transaction, the lock of (purpose, key); admins only';

CREATE TABLE health_score.model_names (
    name         text    PRIMARY KEY,
    last_version integer NOT NULL CHECK (last_version >= 1)
);
COMMENT ON TABLE health_score.model_names IS
    'The highest version number ever issued for each model name, so that a number is never issued twice, even after its version was deleted. Written by health_score.set_model. Kept by pg_dump.';
COMMENT ON COLUMN health_score.model_names.name IS 'Model name';
COMMENT ON COLUMN health_score.model_names.last_version IS 'The highest version number issued; the next registration gets the one above';
SELECT pg_catalog.pg_extension_config_dump('health_score.model_names', '');

-- Runs as the registry's owner, called by set_model (src/pg/registry.rs) with the caller's
-- role: nobody else can execute it.
CREATE FUNCTION health_score_internal._record_model_version(name text, config jsonb, caller oid) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_version integer;
BEGIN
    IF _record_model_version.name IS NULL OR _record_model_version.name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid model name %', coalesce(quote_literal(left(_record_model_version.name, 200)), 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'model names must match ^[a-z][a-z0-9_]{0,62}$: lower-case letters, digits and _, starting with a letter';
    END IF;
    IF _record_model_version.config IS NULL THEN
        RAISE EXCEPTION 'the model config must not be NULL' USING ERRCODE = '22023',
            HINT = 'pass the model as JSON, such as ''{"components": [...]}''::jsonb; docs/model-format.md describes it';
    END IF;
    PERFORM health_score_internal._require_valid_model(_record_model_version.config);
    -- the name's row is locked until commit: one registration per name at a time, each one
    -- above the highest ever issued (a version registered before model_names existed included)
    BEGIN
        INSERT INTO health_score.model_names AS n (name, last_version)
        VALUES (_record_model_version.name,
                coalesce((SELECT max(v.version) FROM health_score.model_versions v WHERE v.name = _record_model_version.name), 0) + 1)
        ON CONFLICT ON CONSTRAINT model_names_pkey DO UPDATE SET last_version = greatest(n.last_version, excluded.last_version - 1) + 1
        RETURNING n.last_version INTO new_version;
    EXCEPTION WHEN serialization_failure THEN
        -- only under REPEATABLE READ or SERIALIZABLE: the transaction's snapshot predates a
        -- registration of this name that committed since
        RAISE EXCEPTION 'set_model: model % got a version from another transaction after this one began',
            quote_literal(_record_model_version.name) USING ERRCODE = '40001',
            HINT = 'retry the transaction; under READ COMMITTED (the default) concurrent registrations get consecutive versions';
    END;
    INSERT INTO health_score.model_versions (name, version, config, description, created_at, created_by)
    VALUES (_record_model_version.name, new_version, _record_model_version.config,
            _record_model_version.config ->> 'description', now(), pg_get_userbyid(_record_model_version.caller));
    RETURN new_version;
END
$$;
COMMENT ON FUNCTION health_score_internal._record_model_version(text, jsonb, oid) IS
    'Validates and registers a model version for the role caller; run by health_score.set_model as the registry''s owner';

CREATE FUNCTION health_score.set_model(name text, config jsonb) RETURNS integer
    AS 'MODULE_PATHNAME', 'hs_set_model' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION health_score.set_model(text, jsonb) IS
    'Validates a model and registers it as the next immutable version of that name; returns the version number. Scoring by name uses the latest version; ''name@3'' pins version 3.';

CREATE VIEW health_score.models AS
SELECT v.name, v.version, v.config, v.description, v.created_at, v.created_by,
       v.version = max(v.version) OVER (PARTITION BY v.name) AS is_latest
  FROM health_score.model_versions v;
COMMENT ON VIEW health_score.models IS 'Registered health models, one row per version';
COMMENT ON COLUMN health_score.models.name IS 'Model name';
COMMENT ON COLUMN health_score.models.version IS 'Version number';
COMMENT ON COLUMN health_score.models.config IS 'The model (format 1)';
COMMENT ON COLUMN health_score.models.description IS 'The model''s description';
COMMENT ON COLUMN health_score.models.created_at IS 'When this version was registered';
COMMENT ON COLUMN health_score.models.created_by IS 'Who registered this version';
COMMENT ON COLUMN health_score.models.is_latest IS 'Whether this is the version scoring by name uses';

-------------------------------------------------------------------------------------------
-- Versions
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score.library_version() RETURNS text
    AS 'MODULE_PATHNAME', 'hs_library_version' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score.library_version() IS
    'The version of the health_score library the server loaded; pg_extension.extversion is the version of the SQL objects, which ALTER EXTENSION health_score UPDATE brings to it';

-------------------------------------------------------------------------------------------
-- Validation
-------------------------------------------------------------------------------------------

CREATE FUNCTION health_score.validate(model jsonb) RETURNS TABLE (path text, message text)
    AS 'MODULE_PATHNAME', 'hs_validate' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 2;
COMMENT ON FUNCTION health_score.validate(jsonb) IS
    'Every fault of a model as (JSON path, message); no rows for a valid model';

GRANT SELECT ON health_score.model_versions, health_score.models TO health_score_reader;
GRANT SELECT ON health_score.model_names TO health_score_reader;
-- the functions that write are the admin's alone (EXECUTE is PUBLIC's by default)
REVOKE EXECUTE ON FUNCTION health_score.set_model(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score.set_model(text, jsonb) TO health_score_admin;
-- the registry is written by set_model alone (src/pg/registry.rs)
REVOKE EXECUTE ON FUNCTION health_score_internal._record_model_version(text, jsonb, oid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION health_score_internal._lock(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score_internal._lock(text, text) TO health_score_admin;
-- PostgreSQL calls the trigger function itself
REVOKE EXECUTE ON FUNCTION health_score_internal._model_versions_are_immutable() FROM PUBLIC;
