-- health_score 0.1.0 -> 0.2.0. Released and frozen with 0.2.0: never edited. What each
-- version changed is in docs/upgrading.md; the upgrade test (tests/upgrade) checks that an
-- install updated by this script has exactly the catalog of a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION health_score UPDATE TO '0.2.0'" to load this file. \quit

CREATE FUNCTION health_score.library_version() RETURNS text
    AS 'MODULE_PATHNAME', 'hs_library_version' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score.library_version() IS
    'The version of the health_score library the server loaded; pg_extension.extversion is the version of the SQL objects, which ALTER EXTENSION health_score UPDATE brings to it';
