-- health_score: the roles, and the schemas with their privileges. Every other file of sql/ declares
-- one concept's objects with its GRANTs and COMMENTs; the scoring functions are C functions
-- of the extension's library (src/pg), declared by hand so that names, volatility,
-- strictness, parallel safety and costs are exactly as documented in docs/reference.md
-- (src/pg/signatures.rs lists what the library reads).

-------------------------------------------------------------------------------------------
-- Roles: who may read and who may write. Roles are cluster-wide, so a second database (or a
-- restored dump) finds them already there. Writers of scores and snapshots need the table
-- privileges themselves, which health_score_admin grants; the registries (model_versions,
-- model_names, views) are written through set_model, create_view and their kin only
-- (docs/security.md).
-------------------------------------------------------------------------------------------

DO $roles$
BEGIN
    -- CREATE EXTENSION in two databases at once races to create the same roles: the loser of
    -- the race waits for the winner's commit and then finds them there
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'health_score_reader') THEN
        BEGIN
            CREATE ROLE health_score_reader NOLOGIN;
            COMMENT ON ROLE health_score_reader IS
                'health_score: reads models, scores, latest and history, and calls the scoring functions; writes nothing';
        EXCEPTION WHEN unique_violation OR duplicate_object THEN
            NULL;
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'health_score_admin') THEN
        BEGIN
            CREATE ROLE health_score_admin NOLOGIN;
            COMMENT ON ROLE health_score_admin IS
                'health_score: registers models, takes snapshots and schedules them; also a reader';
        EXCEPTION WHEN unique_violation OR duplicate_object THEN
            NULL;
        END;
    END IF;
    IF NOT pg_catalog.pg_has_role('health_score_admin', 'health_score_reader', 'MEMBER') THEN
        BEGIN
            GRANT health_score_reader TO health_score_admin;
        EXCEPTION WHEN unique_violation OR duplicate_object THEN
            NULL;
        END;
    END IF;
END
$roles$;

-- the schema is reached through the roles (PUBLIC has no USAGE on it)
GRANT USAGE ON SCHEMA health_score TO health_score_reader;

-- The internals (every function, aggregate and type whose name begins with _) live out of the
-- user's way: the planner's rewrite, the generated views and the public functions call them,
-- with the caller's rights, so readers reach this schema too.
CREATE SCHEMA health_score_internal;
COMMENT ON SCHEMA health_score_internal IS
    'health_score: internals the public functions, the planner''s rewrite and the generated views call; not an interface';
GRANT USAGE ON SCHEMA health_score_internal TO health_score_reader;

COMMENT ON SCHEMA health_score IS 'health_score: explainable customer health scores (models, scoring, explanation)';
