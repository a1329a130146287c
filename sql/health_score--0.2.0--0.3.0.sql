-- health_score 0.2.0 -> 0.3.0, the version being written (docs/upgrading.md): every change
-- to an SQL object since 0.2.0, in the order made. Frozen when 0.3.0 is released.
\echo Use "ALTER EXTENSION health_score UPDATE TO '0.3.0'" to load this file. \quit

-- The internals move out of the user's way (first, so that everything below names them where
-- they now are): every function, aggregate and composite type of the extension whose name
-- begins with _ goes from schema health_score to health_score_internal, keeping its OID, so
-- that triggers, aggregates, planner support, the generated views and users' own views that
-- call them keep working. The public names stay.
CREATE SCHEMA health_score_internal;
COMMENT ON SCHEMA health_score_internal IS
    'health_score: internals the public functions, the planner''s rewrite and the generated views call; not an interface';
GRANT USAGE ON SCHEMA health_score_internal TO health_score_reader;
DO $move$
DECLARE
    member record;
BEGIN
    -- a role given USAGE on health_score directly (not through health_score_reader) reached
    -- the internals there; it keeps reaching them
    FOR member IN
        SELECT a.grantee
          FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
         WHERE n.nspname OPERATOR(pg_catalog.=) 'health_score' AND a.privilege_type OPERATOR(pg_catalog.=) 'USAGE'
           AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner
           AND a.grantee OPERATOR(pg_catalog.<>) 'health_score_reader'::pg_catalog.regrole
    LOOP
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA health_score_internal TO %s',
                                  CASE member.grantee WHEN 0::pg_catalog.oid THEN 'PUBLIC'
                                       ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(member.grantee)) END);
    END LOOP;
    FOR member IN
        SELECT p.proname, p.prokind, pg_catalog.pg_get_function_identity_arguments(p.oid) AS args
          FROM pg_catalog.pg_proc p
          JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
           AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
          JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'health_score'
         WHERE p.pronamespace = 'health_score'::pg_catalog.regnamespace AND pg_catalog.left(p.proname, 1) OPERATOR(pg_catalog.=) '_'
         ORDER BY p.proname, 3
    LOOP
        EXECUTE pg_catalog.format('ALTER %s health_score.%I(%s) SET SCHEMA health_score_internal',
                                  CASE member.prokind WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
                                  member.proname, member.args);
    END LOOP;
    FOR member IN
        SELECT t.typname
          FROM pg_catalog.pg_type t
          JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.objid = t.oid
           AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
          JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'health_score'
         -- composite types only: their array types (named _<type>, members too from PostgreSQL
         -- 17 on) move with them
         WHERE t.typnamespace = 'health_score'::pg_catalog.regnamespace AND t.typtype OPERATOR(pg_catalog.=) 'c'
           AND pg_catalog.left(t.typname, 1) OPERATOR(pg_catalog.=) '_'
         ORDER BY t.typname
    LOOP
        EXECUTE pg_catalog.format('ALTER TYPE health_score.%I SET SCHEMA health_score_internal', member.typname);
    END LOOP;
END
$move$;

-- One parser of model references for the SQL too: the name of 'name' or 'name@N'
CREATE FUNCTION health_score_internal._model_name(model text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_model_name' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._model_name(text) IS
    'The name of a model reference (''churn'' of ''churn@3''), parsed as every function parses one; 22023 for a malformed reference';

-- rescore: a version reference as the model ('churn@5') is 22023 (its version was ignored)
CREATE OR REPLACE FUNCTION health_score.rescore(model text, version integer, from_at timestamptz, to_at timestamptz)
    RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    model_name text;
    pinned text;
    keys text[];
    without_inputs bigint;
    lacking bigint;
    written bigint;
BEGIN
    PERFORM health_score_internal._require_coordinator('rescore');
    IF rescore.model IS NULL OR rescore.version IS NULL OR rescore.from_at IS NULL OR rescore.to_at IS NULL THEN
        RAISE EXCEPTION 'rescore: model, version, from_at and to_at must not be NULL' USING ERRCODE = '22023',
            HINT = 'for example health_score.rescore(''churn'', 2, ''2026-01-01'', now())';
    END IF;
    IF pg_catalog.strpos(rescore.model, '@') > 0 THEN
        RAISE EXCEPTION 'rescore: give the model''s name, not a version (%): the version to rescore with is the second argument',
            pg_catalog.left(rescore.model, 200) USING ERRCODE = '22023',
            HINT = 'for example health_score.rescore(''churn'', 2, ''2026-01-01'', now()) rescores churn''s snapshots with its version 2';
    END IF;
    IF rescore.from_at > rescore.to_at THEN
        RAISE EXCEPTION 'rescore: from_at (%) is after to_at (%)', rescore.from_at, rescore.to_at USING ERRCODE = '22023',
            HINT = 'the snapshots rescored are those from from_at to to_at, both included';
    END IF;
    model_name := health_score_internal._model_name(rescore.model);
    pinned := model_name || '@' || rescore.version;
    PERFORM health_score_internal._resolve_model(pinned);
    -- one rescore per model version at a time: two over overlapping ranges would update the
    -- same rows, in whatever order each one's plan reads them (a deadlock waiting to happen)
    PERFORM health_score_internal._lock('rescore', pinned);
    keys := health_score_internal._input_keys(pinned);
    SELECT count(*) FILTER (WHERE s.inputs IS NULL), count(*) FILTER (WHERE s.inputs IS NOT NULL AND NOT s.inputs ?& keys)
      INTO without_inputs, lacking
      FROM health_score.scores s
     WHERE s.model = model_name AND s.scored_at BETWEEN rescore.from_at AND rescore.to_at;
    IF without_inputs > 0 THEN
        RAISE NOTICE 'rescore: skipped % snapshot row(s) stored without inputs (snapshotted with keep_inputs => false, or before inputs were kept)', without_inputs;
    END IF;
    IF lacking > 0 THEN
        RAISE NOTICE 'rescore: % row(s) lack an input that version % reads; it counts as missing there', lacking, rescore.version;
    END IF;
    INSERT INTO health_score.rescored AS t
           (model, model_version, entity_key, scored_at, original_version, score, band, band_rank, coverage, segment, components)
    SELECT model_name, rescore.version, r.entity_key, r.scored_at, r.model_version,
           (r.e).score, (r.e).band, (r.e).band_rank, (r.e).coverage, (r.e).segment, (r.e).components
      FROM (SELECT s.entity_key, s.scored_at, s.model_version,
                   health_score_internal._snapshot_row(pinned, 'entity_key', s.entity_key, s.inputs) AS e
              FROM health_score.scores s
             WHERE s.model = model_name AND s.scored_at BETWEEN rescore.from_at AND rescore.to_at
               AND s.inputs IS NOT NULL
            OFFSET 0) r
    ON CONFLICT ON CONSTRAINT rescored_pkey DO UPDATE
       SET original_version = excluded.original_version, score = excluded.score, band = excluded.band,
           band_rank = excluded.band_rank, coverage = excluded.coverage, segment = excluded.segment,
           components = excluded.components, rescored_at = excluded.rescored_at;
    GET DIAGNOSTICS written = ROW_COUNT;
    RAISE NOTICE 'rescore: wrote % row(s) of % under version %', written, model_name, rescore.version;
    RETURN written;
END
$$;

-- Issue 15, items 1-3 and 13: the registries are written through the extension's functions
-- only. set_model and create_view run their writes as the registry's owner
-- (src/pg/registry.rs), versions are numbered by model_names and never reused, and a
-- generated view belongs to the role that created it.
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

INSERT INTO health_score.model_names (name, last_version)
SELECT v.name, max(v.version) FROM health_score.model_versions v GROUP BY v.name;

CREATE OR REPLACE FUNCTION health_score.set_model(name text, config jsonb) RETURNS integer
    AS 'MODULE_PATHNAME', 'hs_set_model' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION health_score.set_model(text, jsonb) IS
    'Validates a model and registers it as the next immutable version of that name; returns the version number. Scoring by name uses the latest version; ''name@3'' pins version 3.';

REVOKE EXECUTE ON FUNCTION health_score_internal._record_model_version(text, jsonb, oid) FROM PUBLIC;
REVOKE INSERT ON health_score.model_versions FROM health_score_admin;
GRANT SELECT ON health_score.model_names TO health_score_reader;

-- a view registered before 0.3.0 belongs to whoever owns it now (else to the extension's owner)
ALTER TABLE health_score.views ADD COLUMN view_owner name;
UPDATE health_score.views w
   SET view_owner = coalesce((SELECT pg_catalog.pg_get_userbyid(cl.relowner) FROM pg_catalog.pg_class cl
                               WHERE cl.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', w.view_schema, w.view_name))),
                             (SELECT pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c
                               WHERE c.oid = 'health_score.model_versions'::pg_catalog.regclass));
ALTER TABLE health_score.views ALTER COLUMN view_owner SET NOT NULL;
COMMENT ON COLUMN health_score.views.view_owner IS 'The role that created the view: it owns the view, which reads its source with this role''s rights';
ALTER TABLE health_score.views ADD COLUMN carried text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN health_score.views.carried IS 'The source columns the view carries through after the key (''{*}'': all of them)';
REVOKE INSERT, UPDATE, DELETE ON health_score.views FROM health_score_admin;

DROP FUNCTION health_score_internal._generate_view(name, name, text, regclass, text);
-- (Re)generates one view for the latest version of its model. Every identifier is parsed or
-- taken from the catalogs and quoted with %I; values go in with %L. Runs as the registry's
-- owner (called by create_view through src/pg/registry.rs, by refresh_views and by the
-- trigger on new versions; nobody else can execute it), so it checks what PostgreSQL would
-- check of view_owner, and hands the view to view_owner: the view reads its source with
-- view_owner's rights, never the owner's or those of whoever registered a new version.
CREATE FUNCTION health_score_internal._generate_view(view_schema name, view_name name, model text, source regclass,
                                            key_column text, view_owner name, creating boolean, carried text[])
    RETURNS regclass
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    shown_version integer;
    config jsonb;
    target text := format('%I.%I', _generate_view.view_schema, _generate_view.view_name);
    select_list text;
    from_sql text;
    c record;
    saved_acl aclitem[];
    g record;
    result regclass;
    owner_id oid := to_regrole(quote_ident(_generate_view.view_owner));
    existing record;
    carried_columns text[];
    clash text;
BEGIN
    IF owner_id IS NULL THEN
        RAISE EXCEPTION 'create_view: the role % that created view % no longer exists', quote_ident(_generate_view.view_owner), target
            USING ERRCODE = '42704', HINT = 'drop the view with health_score.drop_view and create it again';
    END IF;
    IF strpos(_generate_view.model, '@') > 0 THEN
        RAISE EXCEPTION 'create_view: give the model''s name, not a version (%)', left(_generate_view.model, 200) USING ERRCODE = '22023',
            HINT = 'generated views follow the latest version';
    END IF;
    -- one generation of a view at a time: a concurrent one would fail on the catalog rows of a
    -- view this one has not committed yet; waiting, it then replaces the committed view
    PERFORM health_score_internal._lock('create_view', target);
    IF NOT has_schema_privilege(owner_id, _generate_view.view_schema, 'CREATE') THEN
        RAISE EXCEPTION 'create_view: permission denied for schema % (role % may not create in it)',
            quote_ident(_generate_view.view_schema), quote_ident(_generate_view.view_owner)
            USING ERRCODE = '42501', HINT = 'create the view in a schema where you have CREATE';
    END IF;
    SELECT cl.relkind, cl.relowner INTO existing FROM pg_class cl
     WHERE cl.relname = _generate_view.view_name AND cl.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = _generate_view.view_schema);
    IF FOUND AND existing.relkind <> 'v' THEN
        RAISE EXCEPTION 'create_view: % exists and is not a view', target USING ERRCODE = '42809',
            HINT = 'choose another name for the view';
    ELSIF FOUND AND NOT pg_has_role(owner_id, existing.relowner, 'USAGE') THEN
        -- replacing it would hand another role's view to view_owner
        RAISE EXCEPTION 'create_view: view % belongs to %, not to %', target, existing.relowner::regrole,
            quote_ident(_generate_view.view_owner)
            USING ERRCODE = '42501', HINT = 'only the owner of a view can replace it; choose another name';
    END IF;
    shown_version := health_score_internal._resolve_model(_generate_view.model);
    SELECT v.config INTO config FROM health_score.model_versions v
     WHERE v.name = _generate_view.model AND v.version = shown_version;
    PERFORM health_score_internal._require_column('create_view', _generate_view.source, _generate_view.key_column);
    -- every input the version reads must be a column of a type it can read: the BI tool would
    -- otherwise sync the view and fail on its first question
    PERFORM health_score_internal._check_source('create_view', _generate_view.model || '@' || shown_version,
                                                _generate_view.source);
    -- the source columns carried through beside the key ('*': all of them), in the source's order
    IF _generate_view.carried = ARRAY['*'] THEN
        SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}') INTO carried_columns
          FROM pg_attribute a
         WHERE a.attrelid = _generate_view.source AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attname <> _generate_view.key_column;
    ELSE
        carried_columns := coalesce(_generate_view.carried, '{}');
        SELECT string_agg(quote_ident(left(u.col, 200)), ', ' ORDER BY u.o) INTO clash
          FROM unnest(carried_columns) WITH ORDINALITY u(col, o)
         WHERE u.col IS NOT NULL AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = _generate_view.source
                                                 AND a.attname = u.col AND a.attnum > 0 AND NOT a.attisdropped);
        IF clash IS NOT NULL OR array_position(carried_columns, NULL) IS NOT NULL THEN
            clash := coalesce(clash, 'NULL');
            RAISE EXCEPTION 'create_view: % has no column %', _generate_view.source, coalesce(clash, 'NULL') USING ERRCODE = '42703',
                HINT = health_score_internal._columns_hint(_generate_view.source) || '; or ''{*}'' for all of them';
        END IF;
        SELECT string_agg(quote_ident(left(u.col, 200)), ', ') INTO clash
          FROM (SELECT d.col FROM unnest(carried_columns) d(col) GROUP BY d.col
                 HAVING count(*) > 1 OR d.col = _generate_view.key_column) u;
        IF clash IS NOT NULL THEN
            RAISE EXCEPTION 'create_view: column % is carried twice (or is the key, which the view has already)', clash
                USING ERRCODE = '42701', HINT = 'name each source column once, the key column not at all';
        END IF;
    END IF;
    SELECT string_agg(quote_ident(left(k.col, 200)), ', ') INTO clash
      FROM unnest(array_append(carried_columns, _generate_view.key_column)) k(col)
     WHERE k.col IN ('score', 'band', 'coverage', 'segment_override')
        OR EXISTS (SELECT FROM health_score_internal._components(config) t WHERE t.component || '_points' = k.col);
    IF clash IS NOT NULL THEN
        RAISE EXCEPTION 'create_view: the source column % would clash with a column of the view', clash
            USING ERRCODE = '42701', HINT = 'rename the column in a view of the source';
    END IF;
    IF EXISTS (SELECT FROM health_score_internal._components(config) t WHERE octet_length(t.component || '_points') > 63) THEN
        RAISE EXCEPTION 'create_view: a component name is too long for a column name ending in _points (63 bytes at most)'
            USING ERRCODE = '42622', HINT = 'component names of up to 56 bytes fit; rename the component in a new version of the model';
    END IF;
    select_list := format('src.%I', _generate_view.key_column)
                   || coalesce((SELECT string_agg(format(', src.%I', u.col), '' ORDER BY u.o)
                                  FROM unnest(carried_columns) WITH ORDINALITY u(col, o)), '')
                   || ', r.score, r.band, r.coverage, r.segment AS segment_override';
    FOR c IN SELECT t.component, t.model_order FROM health_score_internal._components(config) t ORDER BY t.model_order LOOP
        select_list := select_list || format(', r.points[%s] AS %I', c.model_order, c.component || '_points');
    END LOOP;
    -- the version is pinned in the view, so its columns always match the points it reads; the
    -- CSM inputs active when the view is read are gathered once per query and joined by key
    -- (read with the view owner's rights, as the source is)
    from_sql := format('%s AS src LEFT JOIN (%s) m ON m.entity_key = src.%I::text COLLATE "C", LATERAL health_score_internal._view_row(%L, m.manual, src) AS r',
                       _generate_view.source, health_score_internal._manual_sql(_generate_view.model, 'pg_catalog.now()'),
                       _generate_view.key_column, _generate_view.model || '@' || shown_version);
    BEGIN
        EXECUTE format('CREATE OR REPLACE VIEW %s AS SELECT %s FROM %s', target, select_list, from_sql);
    EXCEPTION WHEN invalid_table_definition THEN
        -- the columns changed: recreate the view, with the grants it had
        SELECT cl.relacl INTO saved_acl FROM pg_class cl WHERE cl.oid = target::regclass;
        EXECUTE format('DROP VIEW %s', target);
        EXECUTE format('CREATE VIEW %s AS SELECT %s FROM %s', target, select_list, from_sql);
        EXECUTE format('ALTER VIEW %s OWNER TO %I', target, _generate_view.view_owner);
        FOR g IN SELECT (aclexplode(saved_acl)).* LOOP
            IF g.grantee <> 0 AND g.grantee <> owner_id THEN
                EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, target, g.grantee::regrole,
                               CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
            ELSIF g.grantee = 0 THEN
                EXECUTE format('GRANT %s ON %s TO PUBLIC', g.privilege_type, target);
            END IF;
        END LOOP;
    END;
    result := target::regclass;
    IF (SELECT cl.relowner FROM pg_class cl WHERE cl.oid = result) <> owner_id THEN
        EXECUTE format('ALTER VIEW %s OWNER TO %I', target, _generate_view.view_owner);
    END IF;
    EXECUTE format('GRANT SELECT ON %s TO health_score_reader', target);
    EXECUTE format('COMMENT ON VIEW %s IS %L', target,
                   format('Health scores of %s by model %s (version %s)%s. Generated by health_score.create_view; regenerated when the model gets a new version.',
                          _generate_view.source, _generate_view.model, shown_version,
                          coalesce(': ' || (config ->> 'description'), '')));
    EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', target, _generate_view.key_column,
                   format('Entity key (%s of %s)', _generate_view.key_column, _generate_view.source));
    EXECUTE format('COMMENT ON COLUMN %s.score IS %L', target, 'Health score (0 to the model''s scale); NULL when coverage is below min_coverage');
    EXECUTE format('COMMENT ON COLUMN %s.band IS %L', target, 'Risk band of the score');
    EXECUTE format('COMMENT ON COLUMN %s.coverage IS %L', target, 'Share of the model covered by present, valid inputs (0 to 1)');
    EXECUTE format('COMMENT ON COLUMN %s.segment_override IS %L', target,
                   'The segment override of the model applied to the row, NULL for the base model');
    FOR c IN SELECT u.col AS name, col_description(_generate_view.source, a.attnum) AS description
               FROM unnest(carried_columns) u(col)
               JOIN pg_attribute a ON a.attrelid = _generate_view.source AND a.attname = u.col LOOP
        EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', target, c.name,
                       coalesce(c.description || '. ', '') || format('From %s.%I', _generate_view.source, c.name));
    END LOOP;
    FOR c IN SELECT t.component, t.parent, t.description FROM health_score_internal._components(config) t LOOP
        EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', target, c.component || '_points',
                       coalesce(c.description || '. ', '') || format('Points the component %s contributes to the score%s',
                                c.component, coalesce(' (part of ' || c.parent || ')', '')));
    END LOOP;
    INSERT INTO health_score.views AS v (view_schema, view_name, model, model_version, source, key_column, view_owner, carried)
    VALUES (_generate_view.view_schema, _generate_view.view_name, _generate_view.model, shown_version,
            _generate_view.source, _generate_view.key_column, _generate_view.view_owner, coalesce(_generate_view.carried, '{}'))
    ON CONFLICT ON CONSTRAINT views_pkey DO UPDATE
       SET model = excluded.model, model_version = excluded.model_version, source = excluded.source,
           key_column = excluded.key_column, refreshed_at = excluded.refreshed_at, view_owner = excluded.view_owner,
           carried = excluded.carried;
    RETURN result;
END
$$;
COMMENT ON FUNCTION health_score_internal._generate_view(name, name, text, regclass, text, name, boolean, text[]) IS
    'Generates or regenerates one view of health_score.views for the latest version of its model, owned by view_owner; run as the registry''s owner';

CREATE FUNCTION health_score_internal._create_view(view_schema name, view_name name, model text, source regclass, key_column text,
                                                  carried text[])
    RETURNS regclass
    AS 'MODULE_PATHNAME', 'hs_create_view' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION health_score_internal._create_view(name, name, text, regclass, text, text[]) IS
    'Generates a view owned by the caller and registers it: health_score.create_view once the name is parsed';

-- No SET search_path here: an unqualified view name goes, as CREATE VIEW would put it, in the
-- caller's current schema. So every name below is qualified, operators and types included
-- (a caller's search_path may put a planted public.= ahead of pg_catalog's), and the SQL is
-- built (and run with a pinned search_path) by _generate_view. columns: the source columns
-- carried through after the key, in the order given ('{*}': all of them), so that a BI tool
-- whose role may not read the source can still slice by them.
CREATE FUNCTION health_score.create_view(view_name text, model text, source regclass, key_column text, columns text[])
    RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    parts pg_catalog.text[];
    schema_name pg_catalog.name;
BEGIN
    PERFORM health_score_internal._require_coordinator('create_view');
    IF create_view.view_name IS NULL OR create_view.model IS NULL OR create_view.source IS NULL OR create_view.key_column IS NULL
       OR create_view.columns IS NULL THEN
        RAISE EXCEPTION 'create_view: no argument may be NULL' USING ERRCODE = '22023',
            HINT = 'for example health_score.create_view(''account_health'', ''churn'', ''accounts'', ''account_id'')';
    END IF;
    -- SQL identifier syntax, as regclass input: name or schema.name, quoted where needed
    BEGIN
        parts := pg_catalog.parse_ident(create_view.view_name);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'create_view: % is not a view name (name or schema.name)', pg_catalog.quote_literal(pg_catalog.left(create_view.view_name, 200))
            USING ERRCODE = '42602', HINT = 'quote a name with spaces, dots or capitals as SQL does: ''"My View"'' or ''reports."My View"''';
    END;
    IF pg_catalog.cardinality(parts) OPERATOR(pg_catalog.=) 1 THEN
        schema_name := pg_catalog.current_schema();
    ELSIF pg_catalog.cardinality(parts) OPERATOR(pg_catalog.=) 2 THEN
        schema_name := parts[1];
    ELSE
        RAISE EXCEPTION 'create_view: % is not a view name (name or schema.name)', pg_catalog.quote_literal(pg_catalog.left(create_view.view_name, 200))
            USING ERRCODE = '42602', HINT = 'quote a name with dots or capitals as SQL does: ''"My View"'' or ''reports."My View"''';
    END IF;
    IF schema_name IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) schema_name) THEN
        RAISE EXCEPTION 'create_view: schema % does not exist', coalesce(pg_catalog.quote_ident(schema_name), '(none)') USING ERRCODE = '3F000',
            HINT = 'create the schema first, or name the view without a schema to create it in the current one';
    END IF;
    RETURN health_score_internal._create_view(schema_name, parts[pg_catalog.cardinality(parts)], create_view.model,
                                     create_view.source, create_view.key_column, create_view.columns);
END
$$;
COMMENT ON FUNCTION health_score.create_view(text, text, regclass, text, text[]) IS
    'Creates or replaces a plain view over a source: its key, the source columns named (''{*}'': all), score, band, coverage, segment_override and one <component>_points column per component, with comments; follows new model versions automatically';
CREATE OR REPLACE FUNCTION health_score.create_view(view_name text, model text, source regclass, key_column text)
    RETURNS regclass
LANGUAGE sql AS $$
    SELECT health_score.create_view(create_view.view_name, create_view.model, create_view.source, create_view.key_column,
                                    '{}'::pg_catalog.text[])
$$;
COMMENT ON FUNCTION health_score.create_view(text, text, regclass, text) IS
    'create_view carrying no source column: the key, score, band, coverage, segment_override and one <component>_points column per component';

-- SECURITY DEFINER (docs/security.md): regenerates views of any owner, each for its owner
CREATE OR REPLACE FUNCTION health_score.refresh_views(model text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
    refreshed integer := 0;
BEGIN
    PERFORM health_score_internal._require_coordinator('refresh_views');
    FOR v IN SELECT * FROM health_score.views w WHERE w.model = refresh_views.model ORDER BY w.view_schema, w.view_name LOOP
        PERFORM health_score_internal._generate_view(v.view_schema, v.view_name, v.model, v.source, v.key_column, v.view_owner, false,
                                                     v.carried);
        refreshed := refreshed + 1;
    END LOOP;
    RETURN refreshed;
END
$$;
COMMENT ON FUNCTION health_score.refresh_views(text) IS
    'Regenerates the views of a model for its latest version (set_model does it already; returns how many)';

-- a new version regenerates the model's views; one that cannot be (another owner, a
-- dependent view) keeps showing its version, with a WARNING, and never blocks set_model
CREATE OR REPLACE FUNCTION health_score_internal._refresh_views_on_new_version() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    -- (views already at this version or a later one, as while a dump is restored, stay)
    FOR v IN SELECT * FROM health_score.views w WHERE w.model = NEW.name AND w.model_version < NEW.version
              ORDER BY w.view_schema, w.view_name LOOP
        BEGIN
            PERFORM health_score_internal._generate_view(v.view_schema, v.view_name, v.model, v.source, v.key_column, v.view_owner, false,
                                                         v.carried);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'view %.% still shows % version %: %', quote_ident(v.view_schema), quote_ident(v.view_name),
                v.model, v.model_version, SQLERRM
                USING HINT = 'fix the cause and run SELECT health_score.refresh_views(' || quote_literal(v.model) || ')';
        END;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION health_score_internal._refresh_views_on_new_version() IS
    'Trigger function: regenerates the generated views of a model that got a new version';
-- Removes a view and its registration. The view is dropped with the caller's rights; the
-- registration then goes by _forget_view, which removes only registrations of views that no
-- longer exist (so, SECURITY DEFINER, it lets nobody remove another's view).
CREATE FUNCTION health_score.drop_view(view_name regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    registered record;
BEGIN
    PERFORM health_score_internal._require_coordinator('drop_view');
    SELECT w.view_schema, w.view_name INTO registered
      FROM health_score.views w JOIN pg_class cl ON cl.relname = w.view_name
      JOIN pg_namespace n ON n.oid = cl.relnamespace AND n.nspname = w.view_schema
     WHERE cl.oid = drop_view.view_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'drop_view: % is not a view made by health_score.create_view', drop_view.view_name
            USING ERRCODE = '42809', HINT = 'health_score.views lists the generated views';
    END IF;
    EXECUTE format('DROP VIEW %s', drop_view.view_name);
    PERFORM health_score_internal._forget_view(registered.view_schema, registered.view_name);
END
$$;
COMMENT ON FUNCTION health_score.drop_view(regclass) IS
    'Drops a view made by health_score.create_view (as DROP VIEW would: its owner only) and its registration';

-- SECURITY DEFINER (docs/security.md): health_score.views is the registry owner's to write
CREATE FUNCTION health_score_internal._forget_view(view_schema name, view_name name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF to_regclass(format('%I.%I', _forget_view.view_schema, _forget_view.view_name)) IS NOT NULL THEN
        RAISE EXCEPTION 'drop_view: view %.% still exists', quote_ident(_forget_view.view_schema), quote_ident(_forget_view.view_name)
            USING ERRCODE = '55006', HINT = 'drop it first: health_score.drop_view does both';
    END IF;
    DELETE FROM health_score.views w WHERE w.view_schema = _forget_view.view_schema AND w.view_name = _forget_view.view_name;
END
$$;
COMMENT ON FUNCTION health_score_internal._forget_view(name, name) IS
    'Removes the registration of a generated view that no longer exists (health_score.drop_view)';

REVOKE EXECUTE ON FUNCTION health_score.create_view(text, text, regclass, text), health_score.refresh_views(text),
                           health_score.drop_view(regclass), health_score_internal._forget_view(name, name),
                           health_score_internal._create_view(name, name, text, regclass, text, text[]),
                           health_score_internal._generate_view(name, name, text, regclass, text, name, boolean, text[]),
                           health_score.create_view(text, text, regclass, text, text[])
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score.create_view(text, text, regclass, text), health_score.refresh_views(text),
                          health_score.drop_view(regclass), health_score_internal._forget_view(name, name),
                          health_score_internal._create_view(name, name, text, regclass, text, text[]),
                          health_score.create_view(text, text, regclass, text, text[])
   TO health_score_admin;

-- Issue 15, item 4: inlined SQL functions and create_view (no pinned search_path) qualify
-- their operators and types
CREATE OR REPLACE FUNCTION health_score_internal._held_out(entity_key text, fraction double precision) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('x' OPERATOR(pg_catalog.||) pg_catalog.left(pg_catalog.md5(entity_key), 8))::pg_catalog.bit(32)::pg_catalog.int8
           OPERATOR(pg_catalog./) 4294967296.0 OPERATOR(pg_catalog.<) fraction
$$;
CREATE OR REPLACE FUNCTION health_score.fit(model text, source regclass, outcome_column text, options jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT health_score_internal._fit(m.model_sql, m.config, fit.source, fit.outcome_column, fit.options) OPERATOR(pg_catalog.->) 'model'
      FROM health_score_internal._model_sql(fit.model) m
$$;
CREATE OR REPLACE FUNCTION health_score.fit(model jsonb, source regclass, outcome_column text, options jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT health_score_internal._fit(m.model_sql, m.config, fit.source, fit.outcome_column, fit.options) OPERATOR(pg_catalog.->) 'model'
      FROM health_score_internal._model_sql(fit.model) m
$$;

-------------------------------------------------------------------------------------------
-- Issue 15, item 5. Internal functions: no role calls the aggregates' support functions, the planner support
-- function or the trigger functions (PostgreSQL checks the aggregate owner's right to its
-- support functions, and calls the others itself), so nobody may; snapshot's row functions
-- are the admin's. The rest stay executable, because the planner's rewrite, the generated
-- views and the functions readers call run them with the caller's rights; each validates
-- its arguments (docs/security.md).
-------------------------------------------------------------------------------------------

REVOKE EXECUTE ON FUNCTION
    health_score_internal._auc_combine(internal, internal),
    health_score_internal._auc_deserialize(bytea, internal),
    health_score_internal._auc_final(internal),
    health_score_internal._auc_serialize(internal),
    health_score_internal._auc_trans(internal, double precision, boolean),
    health_score_internal._backtest_combine(internal, internal),
    health_score_internal._backtest_deserialize(bytea, internal),
    health_score_internal._backtest_final(internal),
    health_score_internal._backtest_serialize(internal),
    health_score_internal._backtest_trans(internal, double precision, text, integer, boolean),
    health_score_internal._calibration_final(internal),
    health_score_internal._fit_combine(internal, internal),
    health_score_internal._fit_deserialize(bytea, internal),
    health_score_internal._fit_final(internal),
    health_score_internal._fit_serialize(internal),
    health_score_internal._fit_trans(internal, double precision[], boolean, double precision),
    health_score_internal._model_versions_are_immutable(),
    health_score_internal._refresh_views_on_new_version(),
    health_score_internal._row_support(internal),
    health_score_internal._score_agg_combine(internal, internal),
    health_score_internal._score_agg_deserialize(bytea, internal),
    health_score_internal._score_agg_final(internal),
    health_score_internal._score_agg_serialize(internal),
    health_score_internal._score_agg_trans(internal, jsonb, text, double precision),
    health_score_internal._score_agg_trans(internal, jsonb, text, jsonb),
    health_score_internal._score_agg_trans(internal, jsonb, text, text),
    health_score_internal._score_agg_trans(internal, text, text, double precision),
    health_score_internal._score_agg_trans(internal, text, text, jsonb),
    health_score_internal._score_agg_trans(internal, text, text, text),
    health_score_internal._trend_combine(internal, internal),
    health_score_internal._trend_deserialize(bytea, internal),
    health_score_internal._trend_final(internal),
    health_score_internal._trend_serialize(internal),
    health_score_internal._trend_trans(internal, timestamptz, double precision),
    health_score_internal._snapshot_row(text, text, text, record),
    health_score_internal._snapshot_row(text, text, text, jsonb),
    health_score_internal._snapshot_row_columns(text, text, text, oid, text[], "any")
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    health_score_internal._snapshot_row(text, text, text, record),
    health_score_internal._snapshot_row(text, text, text, jsonb),
    health_score_internal._snapshot_row_columns(text, text, text, oid, text[], "any")
  TO health_score_admin;

-- Issue 15, item 5: the internal proving functions refuse any model_sql but _model_sql's
-- The internal functions paste model_sql into queries and are executable by every
-- reader (band_report and the others are inlined SQL that call them with the caller's
-- rights): model_sql must be exactly what _model_sql gives, a pinned reference or the
-- config itself as a jsonb literal, never other SQL.
CREATE FUNCTION health_score_internal._require_model_sql(model_sql text, config jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF _require_model_sql.model_sql IS NULL
       OR NOT (_require_model_sql.model_sql ~ '^''[a-z][a-z0-9_]{0,62}@[1-9][0-9]{0,9}''$'
               OR _require_model_sql.model_sql = quote_literal(_require_model_sql.config::text) || '::jsonb') THEN
        RAISE EXCEPTION 'health_score: % is not a model reference as health_score_internal._model_sql gives it',
            coalesce(quote_literal(left(_require_model_sql.model_sql, 200)), 'NULL') USING ERRCODE = '22023',
            HINT = 'this is an internal function: call band_report, evaluate, calibrate, fit or fit_report';
    END IF;
END
$$;
COMMENT ON FUNCTION health_score_internal._require_model_sql(text, jsonb) IS
    'Raises 22023 unless model_sql is a pinned model reference or the config as a jsonb literal (the internal proving functions paste it into queries)';

CREATE OR REPLACE FUNCTION health_score_internal._band_report(model_sql text, config jsonb, source regclass, outcome_column text)
    RETURNS TABLE (segment text, band text, band_rank integer, accounts bigint, churned bigint,
                   churn_rate double precision, lift double precision)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    outcome text := health_score_internal._outcome_sql(_band_report.source, _band_report.outcome_column);
    unknown bigint;
BEGIN
    PERFORM health_score_internal._require_model_sql(_band_report.model_sql, _band_report.config);
    IF jsonb_typeof(_band_report.config -> 'bands') IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'band_report: the model has no bands' USING ERRCODE = '22023',
            HINT = 'add "bands" to the model (a new version), or use health_score.evaluate for the totals';
    END IF;
    EXECUTE format('SELECT count(*) FROM %s AS src WHERE (%s) IS NULL', _band_report.source, outcome) INTO unknown;
    IF unknown > 0 THEN
        RAISE NOTICE 'band_report: left out % account(s) with a NULL outcome', unknown;
    END IF;
    RETURN QUERY EXECUTE format($q$
        WITH known AS (
            SELECT s.score, s.band, s.segment, o.churned
              FROM %1$s AS src, LATERAL health_score.assess(%2$s, src) s, LATERAL (SELECT %3$s AS churned) o
             WHERE o.churned IS NOT NULL
        ), overall AS (
            SELECT avg(known.churned::int)::float8 AS rate FROM known WHERE known.score IS NOT NULL
        ), bands AS (
            SELECT NULL::text AS segment, b.ord, b.e ->> 'name' AS band
              FROM jsonb_array_elements($1 -> 'bands') WITH ORDINALITY b(e, ord)
            UNION ALL
            SELECT o.key, b.ord, b.e ->> 'name'
              FROM jsonb_each(coalesce($1 -> 'segments' -> 'overrides', '{}')) o,
                   jsonb_array_elements(coalesce(o.value -> 'bands', $1 -> 'bands')) WITH ORDINALITY b(e, ord)
        ), report AS (
            SELECT b.segment, b.band, (b.ord - 1)::int AS band_rank, count(k.score)::bigint AS accounts,
                   count(k.score) FILTER (WHERE k.churned)::bigint AS churned,
                   avg(k.churned::int)::float8 AS churn_rate
              FROM bands b
              LEFT JOIN known k ON k.score IS NOT NULL AND k.band = b.band AND k.segment IS NOT DISTINCT FROM b.segment
             GROUP BY b.segment, b.band, b.ord
            UNION ALL
            SELECT NULL, NULL, NULL, count(*), count(*) FILTER (WHERE known.churned), avg(known.churned::int)::float8
              FROM known WHERE known.score IS NULL
        )
        SELECT r.segment, r.band, r.band_rank, r.accounts, r.churned, r.churn_rate, r.churn_rate / nullif(overall.rate, 0)
          FROM report r, overall
         ORDER BY r.band_rank IS NULL, r.segment NULLS FIRST, r.band_rank
    $q$, _band_report.source, _band_report.model_sql, outcome) USING _band_report.config;
END
$$;
CREATE OR REPLACE FUNCTION health_score_internal._evaluate(model_sql text, config jsonb, source regclass, outcome_column text)
    RETURNS TABLE (accounts bigint, churned bigint, churn_rate double precision, auc double precision,
                   mean_coverage double precision, under_min_coverage double precision,
                   log_loss double precision, brier double precision, outcome_unknown bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    outcome text := health_score_internal._outcome_sql(_evaluate.source, _evaluate.outcome_column);
BEGIN
    PERFORM health_score_internal._require_model_sql(_evaluate.model_sql, _evaluate.config);
    RETURN QUERY EXECUTE format($q$
        WITH scored AS (
            SELECT s.score, s.coverage, o.churned,
                   least(greatest(health_score.churn_probability(%2$s, src), 1e-15), 1 - 1e-15) AS p
              FROM %1$s AS src, LATERAL health_score.assess(%2$s, src) s, LATERAL (SELECT %3$s AS churned) o
        )
        SELECT count(*) FILTER (WHERE churned IS NOT NULL), count(*) FILTER (WHERE churned),
               avg(churned::int)::float8, health_score.auc(score, churned),
               avg(coverage) FILTER (WHERE churned IS NOT NULL),
               avg((coverage < $1 - 1e-9)::int) FILTER (WHERE churned IS NOT NULL)::float8,
               avg(CASE WHEN churned THEN -ln(p) ELSE -ln(1 - p) END) FILTER (WHERE churned IS NOT NULL)::float8,
               avg((p - churned::int) ^ 2) FILTER (WHERE churned IS NOT NULL)::float8,
               count(*) FILTER (WHERE churned IS NULL)
          FROM scored
    $q$, _evaluate.source, _evaluate.model_sql, outcome)
    USING coalesce((_evaluate.config ->> 'min_coverage')::float8, 0);
END
$$;
CREATE OR REPLACE FUNCTION health_score_internal._calibrate(model_sql text, config jsonb, source regclass, outcome_column text) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fitted double precision[];
BEGIN
    PERFORM health_score_internal._require_model_sql(_calibrate.model_sql, _calibrate.config);
    EXECUTE format('SELECT health_score_internal._calibration(health_score.score(%s, src), %s) FROM %s AS src',
                   _calibrate.model_sql, health_score_internal._outcome_sql(_calibrate.source, _calibrate.outcome_column),
                   _calibrate.source)
    INTO fitted;
    IF fitted IS NULL THEN
        RAISE EXCEPTION 'calibrate: both churned and retained accounts with a score are needed' USING ERRCODE = '22023',
            HINT = 'the source needs rows with a non-NULL score and a true outcome, and rows with a non-NULL score and a false one';
    END IF;
    RETURN _calibrate.config || jsonb_build_object('calibration', jsonb_build_object('intercept', fitted[1], 'slope', fitted[2]));
END
$$;
-- Issue 15, item 12: messages cut the user's text at 200 characters
CREATE OR REPLACE FUNCTION health_score_internal._require_column(caller text, source regclass, column_name text, hint text DEFAULT NULL)
    RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF _require_column.source IS NULL OR _require_column.column_name IS NULL THEN
        RAISE EXCEPTION '%: the table and the column name must not be NULL', left(caller, 200) USING ERRCODE = '22023',
            HINT = coalesce(left(_require_column.hint, 300), 'name a table or view, and one of its columns');
    END IF;
    IF NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = _require_column.source
                      AND a.attname = _require_column.column_name AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION '%: % has no column %', left(caller, 200), source, quote_ident(left(column_name, 200))
            USING ERRCODE = '42703', HINT = coalesce(left(_require_column.hint, 300), health_score_internal._columns_hint(source));
    END IF;
END
$$;
CREATE OR REPLACE FUNCTION health_score_internal._require_model_name(caller text, model text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF _require_model_name.model IS NULL THEN
        RAISE EXCEPTION '%: the model must not be NULL', left(caller, 200) USING ERRCODE = '22023',
            HINT = 'a registered model''s name, such as ''churn''';
    END IF;
    IF pg_catalog.strpos(_require_model_name.model, '@') > 0 THEN
        RAISE EXCEPTION '%: give the model''s name, not a version (%)', left(caller, 200), left(_require_model_name.model, 200)
            USING ERRCODE = '22023',
            HINT = 'snapshots taken by any version of the model are compared; health_score.scores.model_version says which took each';
    END IF;
    PERFORM health_score_internal._resolve_model(_require_model_name.model);
END
$$;
CREATE OR REPLACE FUNCTION health_score_internal._outcome_of(value bigint, outcome_column text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF value = 1 THEN RETURN true; ELSIF value = 0 THEN RETURN false; ELSIF value IS NULL THEN RETURN NULL; END IF;
    RAISE EXCEPTION 'outcome column %: % is neither 0 nor 1', quote_ident(left(outcome_column, 200)), value
        USING ERRCODE = '22023', HINT = 'the outcome is boolean, or an integer 1 (churned) or 0 (retained)';
END
$$;
CREATE OR REPLACE FUNCTION health_score_internal._outcome_sql(source regclass, outcome_column text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    column_type regtype;
BEGIN
    IF _outcome_sql.source IS NULL OR _outcome_sql.outcome_column IS NULL THEN
        RAISE EXCEPTION 'the source and the outcome column must not be NULL' USING ERRCODE = '22023',
            HINT = 'name a table or view with one row per account, and its outcome column (boolean, or integer 0/1)';
    END IF;
    SELECT a.atttypid::regtype INTO column_type FROM pg_attribute a
     WHERE a.attrelid = _outcome_sql.source AND a.attname = _outcome_sql.outcome_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF column_type IS NULL THEN
        RAISE EXCEPTION 'outcome column %: % has no such column', quote_ident(left(_outcome_sql.outcome_column, 200)), _outcome_sql.source
            USING ERRCODE = '42703', HINT = health_score_internal._columns_hint(_outcome_sql.source);
    ELSIF column_type = 'boolean'::regtype THEN
        RETURN format('src.%I', _outcome_sql.outcome_column);
    ELSIF column_type IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype) THEN
        RETURN format('health_score_internal._outcome_of(src.%I::bigint, %L)', _outcome_sql.outcome_column, _outcome_sql.outcome_column);
    END IF;
    RAISE EXCEPTION 'outcome column % is of type %; boolean or an integer 0/1 is needed', quote_ident(left(_outcome_sql.outcome_column, 200)), column_type
        USING ERRCODE = '42804',
        HINT = 'derive it in a view, such as (status = ''churned'') AS churned, and pass the view';
END
$$;
CREATE OR REPLACE FUNCTION health_score.backtest(model text, churn_source regclass, key_column text, churned_at_column text,
                                      horizon interval, history text DEFAULT 'scores')
    RETURNS TABLE (scored_at timestamptz, accounts bigint, churned bigint, churn_rate double precision,
                   auc double precision, bands jsonb, complete boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    model_name text;
    history_sql text := 'health_score.scores';
    churned_at_type regtype;
BEGIN
    IF backtest.model IS NULL THEN
        RAISE EXCEPTION 'backtest: the model must not be NULL' USING ERRCODE = '22023',
            HINT = 'a registered model''s name, such as ''churn''';
    END IF;
    model_name := health_score_internal._model_name(backtest.model);
    PERFORM health_score_internal._resolve_model(model_name);
    IF backtest.history IS DISTINCT FROM 'scores' AND backtest.history IS DISTINCT FROM 'rescored' THEN
        RAISE EXCEPTION 'backtest: unknown history %', quote_literal(left(backtest.history, 200)) USING ERRCODE = '22023',
            HINT = 'the history is ''scores'' (health_score.scores) or ''rescored'' (health_score.rescored, the version the model reference stands for)';
    END IF;
    IF backtest.history = 'rescored' THEN
        history_sql := format('(SELECT * FROM health_score.rescored r WHERE r.model_version = %s)',
                              health_score_internal._resolve_model(backtest.model));
    END IF;
    IF backtest.horizon IS NULL OR backtest.horizon <= interval '0' THEN
        RAISE EXCEPTION 'backtest: the horizon must be a positive interval' USING ERRCODE = '22023',
            HINT = 'how long after each snapshot a churn counts, such as interval ''90 days''';
    END IF;
    PERFORM health_score_internal._require_column('backtest', backtest.churn_source, backtest.key_column);
    PERFORM health_score_internal._require_column('backtest', backtest.churn_source, backtest.churned_at_column);
    SELECT a.atttypid::regtype INTO churned_at_type FROM pg_attribute a
     WHERE a.attrelid = backtest.churn_source AND a.attname = backtest.churned_at_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF churned_at_type NOT IN ('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype) THEN
        RAISE EXCEPTION 'backtest: churned_at column % is of type %; a date or timestamp is needed', quote_ident(left(backtest.churned_at_column, 200)), churned_at_type
            USING ERRCODE = '42804', HINT = 'cast it in a view of the churn source, such as churned_on::date AS churned_on';
    END IF;
    BEGIN
        RETURN QUERY EXECUTE format($q$
            WITH churn AS (
                -- each account's first churn: a row of an account that had not churned by its
                -- snapshot has every churn after it, so the first one is the one that counts
                SELECT src.%1$I::text AS entity_key, min(src.%2$I::timestamptz) AS first_churn
                  FROM %3$s AS src WHERE src.%2$I IS NOT NULL AND src.%1$I IS NOT NULL
                 GROUP BY 1
            ), outcome AS (
                SELECT s.scored_at, s.score, s.band, s.band_rank,
                       coalesce(c.first_churn <= s.scored_at + $2, false) AS churned
                  FROM %4$s s
                  LEFT JOIN churn c ON c.entity_key = s.entity_key
                 WHERE s.model = $1 AND (c.first_churn IS NULL OR c.first_churn > s.scored_at)
            ), per_time AS (
                -- one aggregate per snapshot time: totals, the AUC and churn per band in one state
                SELECT o.scored_at, health_score_internal._backtest(o.score, o.band, o.band_rank, o.churned)::jsonb AS r
                  FROM outcome o
                 GROUP BY o.scored_at
            )
            SELECT t.scored_at, (t.r->>'accounts')::bigint, (t.r->>'churned')::bigint,
                   (t.r->>'churned')::float8 / (t.r->>'accounts')::float8, (t.r->>'auc')::float8, t.r->'bands',
                   t.scored_at + $2 <= now()
              FROM per_time t
             ORDER BY t.scored_at
        $q$, backtest.key_column, backtest.churned_at_column, backtest.churn_source, history_sql)
        USING model_name, backtest.horizon;
    EXCEPTION WHEN datetime_field_overflow THEN
        RAISE EXCEPTION 'backtest: a snapshot time plus the horizon (%) is past the latest time PostgreSQL represents', backtest.horizon
            USING ERRCODE = '22023', HINT = 'a horizon of months or years, such as interval ''90 days''';
    END;
END
$$;

-- Issue 15, item 6: row locks instead of advisory locks
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
REVOKE EXECUTE ON FUNCTION health_score_internal._lock(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score_internal._lock(text, text) TO health_score_admin;
CREATE OR REPLACE FUNCTION health_score.snapshot(model text, source regclass, key_column text, at timestamptz DEFAULT now(),
                                      keep_inputs boolean DEFAULT true)
    RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    model_name text;
    model_version integer;
    written bigint;
    worsened bigint;
    first_keys text[];
    previous_at timestamptz;
    error_state text;
    error_message text;
    error_detail text;
    error_hint text;
    repeated_key text;
    replacing boolean;
    later boolean;
    inputs_sql text := 'NULL::jsonb';
    target text;
    banded_sql text := 'SELECT * FROM rows';
    scored_sql text := 'SELECT * FROM banded';
    manual_sql text := 'NULL::jsonb';
    manual_join text := '';
    raised bigint;
    distributed boolean;
    hysteresis boolean := false;
    -- rows of the same model, entity and time are replaced
    replace_rows text := 'ON CONFLICT (model, entity_key, scored_at) DO UPDATE
        SET model_version = excluded.model_version, score = excluded.score, band = excluded.band,
            band_rank = excluded.band_rank, coverage = excluded.coverage, segment = excluded.segment,
            record = excluded.record, components = NULL, inputs = excluded.inputs, manual = excluded.manual';
    previous_sql text;
    -- in a distributed history, the rows a replacing snapshot wrote (not those of entities its
    -- source no longer has, left as they were)
    rewritten text := '';
    -- the current state after a snapshot: a later snapshot becomes the latest and the latest
    -- the previous; one at the latest's time replaces it; an earlier one becomes (or
    -- replaces) the previous when it is not before it
    state_upsert text := $u$
            ON CONFLICT (model, entity_key) DO UPDATE
               SET scored_at = greatest(c.scored_at, excluded.scored_at),
                   model_version = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.model_version ELSE c.model_version END,
                   score = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.score ELSE c.score END,
                   band = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.band ELSE c.band END,
                   band_rank = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.band_rank ELSE c.band_rank END,
                   coverage = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.coverage ELSE c.coverage END,
                   segment = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.segment ELSE c.segment END,
                   model_band = CASE WHEN excluded.scored_at >= c.scored_at THEN excluded.model_band ELSE c.model_band END,
                   previous_at = CASE WHEN excluded.scored_at > c.scored_at THEN c.scored_at
                                      WHEN excluded.scored_at < c.scored_at
                                       AND (c.previous_at IS NULL OR excluded.scored_at >= c.previous_at) THEN excluded.scored_at
                                      ELSE c.previous_at END,
                   previous_score = CASE WHEN excluded.scored_at > c.scored_at THEN c.score
                                         WHEN excluded.scored_at < c.scored_at
                                          AND (c.previous_at IS NULL OR excluded.scored_at >= c.previous_at) THEN excluded.score
                                         ELSE c.previous_score END,
                   previous_band = CASE WHEN excluded.scored_at > c.scored_at THEN c.band
                                        WHEN excluded.scored_at < c.scored_at
                                         AND (c.previous_at IS NULL OR excluded.scored_at >= c.previous_at) THEN excluded.band
                                        ELSE c.previous_band END,
                   previous_band_rank = CASE WHEN excluded.scored_at > c.scored_at THEN c.band_rank
                                             WHEN excluded.scored_at < c.scored_at
                                              AND (c.previous_at IS NULL OR excluded.scored_at >= c.previous_at) THEN excluded.band_rank
                                             ELSE c.previous_band_rank END,
                   previous_model_band = CASE WHEN excluded.scored_at > c.scored_at THEN c.model_band
                                              WHEN excluded.scored_at < c.scored_at
                                               AND (c.previous_at IS NULL OR excluded.scored_at >= c.previous_at) THEN excluded.model_band
                                              ELSE c.previous_model_band END$u$;
BEGIN
    PERFORM health_score_internal._require_coordinator('snapshot');
    IF snapshot.model IS NULL OR snapshot.source IS NULL OR snapshot.key_column IS NULL OR snapshot.at IS NULL THEN
        RAISE EXCEPTION 'snapshot: model, source, key_column and at must not be NULL' USING ERRCODE = '22023',
            HINT = 'leave at out for now(): health_score.snapshot(''model'', ''accounts'', ''account_id'')';
    END IF;
    IF NOT isfinite(snapshot.at) THEN
        RAISE EXCEPTION 'snapshot: at must be a finite time, not %', snapshot.at USING ERRCODE = '22023',
            HINT = 'the time the scores are stored under, such as now() or ''2026-01-01''';
    END IF;
    model_version := health_score_internal._resolve_model(snapshot.model);
    model_name := health_score_internal._model_name(snapshot.model);
    IF snapshot.keep_inputs THEN
        -- as text: a number's text reads back as the same number, a category's text is itself
        SELECT format('health_score_internal._text_object(%L::text[], ARRAY[%s]::text[])', array_agg(k ORDER BY o),
                      string_agg(format('src.%I::text', k), ', ' ORDER BY o))
          INTO inputs_sql
          FROM health_score_internal._input_keys(model_name || '@' || model_version) keys, unnest(keys) WITH ORDINALITY u(k, o)
         -- an input that names no column is snapshot's error to report (42703, by _snapshot_row)
         WHERE EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = snapshot.source AND a.attname = u.k
                                                     AND a.attnum > 0 AND NOT a.attisdropped)
         GROUP BY keys;
        inputs_sql := coalesce(inputs_sql, 'NULL::jsonb');
    END IF;
    -- under band hysteresis the band stored depends on each entity's band in its latest
    -- snapshot before this one: the current state as the statement began holds it (its
    -- latest, or its previous when this snapshot is not after the latest), else a probe
    IF EXISTS (SELECT FROM health_score.model_versions v
                WHERE v.name = model_name AND v.version = model_version
                  AND (coalesce((v.config->>'band_hysteresis')::float8, 0) > 0
                       OR EXISTS (SELECT FROM jsonb_each(v.config->'segments'->'overrides') o
                                   WHERE coalesce((o.value->>'band_hysteresis')::float8, 0) > 0))) THEN
        hysteresis := true;
        -- (from the model's own band where a band override forced the one stored)
        banded_sql := format($h$
            SELECT r.entity_key, r.score, (r.b).band, (r.b).band_rank, r.coverage, r.segment, r.record,
                   r.band_override, r.band_override_rank, r.manual, r.inputs
              FROM (SELECT r.*, health_score_internal._band_after(%L, r.segment, r.score,
                        CASE WHEN c.scored_at < $3 THEN coalesce(c.model_band, c.band)
                             WHEN c.previous_at < $3 THEN coalesce(c.previous_model_band, c.previous_band)
                             WHEN c.scored_at IS NULL THEN NULL
                             ELSE (SELECT coalesce(p.manual->'band'->>'model_band', p.band) FROM health_score_internal.score_rows p
                                    WHERE p.model = $1 AND p.entity_key = r.entity_key AND p.scored_at < $3
                                    ORDER BY p.scored_at DESC LIMIT 1) END) AS b
                      FROM rows r
                      LEFT JOIN health_score_internal.current_state c ON c.model = $1 AND c.entity_key = r.entity_key
                    OFFSET 0) r$h$, model_name || '@' || model_version);
    END IF;
    -- the CSM inputs active at the snapshot's time, gathered once per entity and joined to
    -- the source (docs/acting.md#csm-inputs); a band override replaces the band stored, and
    -- the model's own band is kept beside it
    IF EXISTS (SELECT FROM health_score.manual_inputs m
                WHERE m.model = model_name AND (m.expires_at IS NULL OR m.expires_at > snapshot.at))
       OR EXISTS (SELECT FROM health_score.band_overrides o
                   WHERE o.model = model_name AND (o.expires_at IS NULL OR o.expires_at > snapshot.at)) THEN
        manual_join := format(' LEFT JOIN (%s) m ON m.entity_key = src.%I::text COLLATE "C"',
                              health_score_internal._manual_sql(model_name, '$3'), snapshot.key_column);
        manual_sql := 'm.manual';
        scored_sql := $o$
            SELECT b.entity_key, b.score, coalesce(b.band_override, b.band) AS band,
                   coalesce(b.band_override_rank, b.band_rank) AS band_rank, b.coverage, b.segment, b.record, b.inputs,
                   CASE WHEN b.band_override IS NULL THEN b.manual
                        ELSE health_score_internal._with_model_band(b.manual, b.band) END AS manual
              FROM banded b$o$;
    END IF;
    PERFORM health_score_internal._require_column('snapshot', snapshot.source, snapshot.key_column,
        'key_column names the column that identifies each entity, such as ''account_id''');
    -- one snapshot per model at a time: concurrent runs neither deadlock nor duplicate
    PERFORM health_score_internal._lock('snapshot', model_name);
    -- every row goes to one partition: written there directly
    target := health_score_internal._ensure_partition(model_name, snapshot.at);
    SELECT max(r.scored_at) INTO previous_at
      FROM health_score.snapshots r WHERE r.model = model_name AND r.scored_at < snapshot.at;
    IF previous_at IS NULL AND NOT EXISTS (SELECT FROM health_score.snapshots r WHERE r.model = model_name) THEN
        -- no run record of the model at all (deleted from health_score.snapshots): the scores
        -- themselves say whether an earlier snapshot exists to compare bands with
        SELECT s.scored_at INTO previous_at
          FROM health_score_internal.score_rows s WHERE s.model = model_name AND s.scored_at < snapshot.at LIMIT 1;
    END IF;
    -- whether an entity has a snapshot after this one (a snapshot of an earlier time than the
    -- latest): then bands are compared otherwise (below)
    later := EXISTS (SELECT 1 FROM health_score_internal.current_state c
                      WHERE c.model = model_name AND c.scored_at > snapshot.at);
    -- rows of this model and time exist only if an earlier run wrote them: then replace them
    replacing := EXISTS (SELECT FROM health_score.snapshots r WHERE r.model = model_name AND r.scored_at = snapshot.at);
    RAISE NOTICE 'snapshot: scoring % with %@% at %', snapshot.source, model_name, model_version, snapshot.at;
    -- a distributed history, or a distributed source, is written in steps Citus can run (below)
    distributed := health_score_internal._is_citus_table('health_score_internal.score_rows')
                   OR health_score_internal._is_citus_table(snapshot.source);
    IF distributed AND NOT health_score_internal._is_citus_table('health_score_internal.model_replica') THEN
        RAISE EXCEPTION 'snapshot: % is distributed by Citus, and its workers have no copy of the model registry', snapshot.source
            USING ERRCODE = '0A000',
            HINT = 'run SELECT health_score.distribute() once on the coordinator (docs/scale-out.md); distribute(history => false) replicates the registry alone';
    END IF;
    IF distributed THEN
        -- each entity's latest snapshot before this one, for hysteresis and for worsened bands:
        -- the current state's latest or previous, or, for a snapshot earlier than an entity's
        -- latest, the history itself
        previous_sql := CASE WHEN NOT later THEN $p$
            SELECT c.entity_key,
                   CASE WHEN c.scored_at < $3 THEN coalesce(c.model_band, c.band)
                        WHEN c.previous_at < $3 THEN coalesce(c.previous_model_band, c.previous_band) END AS model_band,
                   CASE WHEN c.scored_at < $3 THEN c.band_rank WHEN c.previous_at < $3 THEN c.previous_band_rank END AS band_rank
              FROM health_score_internal.current_state c WHERE c.model = $1$p$
            ELSE $p$
            SELECT DISTINCT ON (p.entity_key) p.entity_key, coalesce(p.manual->'band'->>'model_band', p.band) AS model_band,
                   p.band_rank
              FROM health_score_internal.score_rows p WHERE p.model = $1 AND p.scored_at < $3
             ORDER BY p.entity_key, p.scored_at DESC$p$ END;
    END IF;
    LOOP
    BEGIN
    IF distributed THEN
        -- a distributed history (health_score.distribute, docs/scale-out.md) is written in
        -- statements Citus runs on the workers: the rows, scored where the source's rows are and
        -- sent to their entity's shard (unnest keeps the per-row call to one evaluation without
        -- a subquery Citus would run on the coordinator), then, on the colocated shards, the
        -- bands under hysteresis, the worsened bands and the current state. (Into a history on
        -- the coordinator, Citus brings the scored rows there.)
        -- (into a history on the coordinator through the partitioned table, whose triggers
        -- leave the current state to this function: Citus fails an INSERT ... SELECT from a
        -- distributed table into a local partition)
        PERFORM set_config('health_score.current_state_kept_by', 'snapshot', true);
        IF replacing THEN
            rewritten := format('.entity_key IN (SELECT src.%I::text FROM %s AS src)', snapshot.key_column, snapshot.source);
        END IF;
        EXECUTE format($q$
            INSERT INTO health_score_internal.%1$I AS t
                   (model, model_version, entity_key, scored_at, score, band, band_rank, coverage, segment, record, inputs, manual)
            SELECT $1, $2, entity_key, $3, score, coalesce(band_override, band), coalesce(band_override_rank, band_rank),
                   coverage, segment, record, inputs,
                   CASE WHEN band_override IS NULL THEN manual
                        ELSE health_score_internal._with_model_band(manual, band) END
              FROM (SELECT k AS entity_key, (e).*, inputs
                      FROM (SELECT src.%2$I::text AS k,
                                   unnest(ARRAY[health_score_internal._snapshot_record(%3$L, %2$L, src.%2$I::text, %4$s, src)]) AS e,
                                   %5$s AS inputs
                              FROM %6$s AS src%7$s) r) rows
            %8$s$q$,
            CASE WHEN health_score_internal._is_citus_table(('health_score_internal.' || quote_ident(target))::regclass)
                 THEN target ELSE 'score_rows' END,
            snapshot.key_column, model_name || '@' || model_version, manual_sql, inputs_sql,
            snapshot.source, manual_join,
            CASE WHEN replacing THEN replace_rows ELSE '' END)
        USING model_name, model_version, snapshot.at;
        GET DIAGNOSTICS written = ROW_COUNT;
        IF hysteresis THEN
            -- the band kept from the previous one while the score stays within the margin (an
            -- override stays stored, the model's own band beside it)
            EXECUTE format($q$
                UPDATE health_score_internal.%1$I w
                   SET band = CASE WHEN h.overridden THEN w.band ELSE (h.b).band END,
                       band_rank = CASE WHEN h.overridden THEN w.band_rank ELSE (h.b).band_rank END,
                       manual = CASE WHEN h.overridden
                                     THEN health_score_internal._with_model_band(w.manual, (h.b).band)
                                     ELSE w.manual END
                  FROM (SELECT n.entity_key, coalesce(n.manual->'band' ? 'model_band', false) AS overridden,
                               unnest(ARRAY[health_score_internal._band_after(%2$L, n.segment, n.score, p.model_band)]) AS b
                          FROM health_score_internal.%1$I n JOIN (%3$s) p ON p.entity_key = n.entity_key
                         WHERE n.model = $1 AND n.scored_at = $3 AND p.model_band IS NOT NULL%4$s) h
                 WHERE w.model = $1 AND w.scored_at = $3 AND w.entity_key = h.entity_key$q$,
                target, model_name || '@' || model_version, previous_sql, CASE WHEN rewritten <> '' THEN ' AND n' || rewritten ELSE '' END)
            USING model_name, model_version, snapshot.at;
        END IF;
        IF previous_at IS NULL THEN
            worsened := 0;
        ELSE
            EXECUTE format($q$
                WITH worse AS (
                    SELECT w.entity_key FROM health_score_internal.%1$I w JOIN (%2$s) p ON p.entity_key = w.entity_key
                     WHERE w.model = $1 AND w.scored_at = $3 AND w.band_rank < p.band_rank%3$s)
                SELECT (SELECT count(*) FROM worse),
                       (SELECT array_agg(entity_key ORDER BY entity_key) FROM (
                            SELECT entity_key, sum(octet_length(entity_key) * 6 + 3) OVER (ORDER BY entity_key) AS bytes
                              FROM (SELECT entity_key FROM worse ORDER BY entity_key LIMIT 100) f) g
                         WHERE bytes < 7000)$q$,
                target, previous_sql, CASE WHEN rewritten <> '' THEN ' AND w' || rewritten ELSE '' END)
            USING model_name, model_version, snapshot.at
            INTO worsened, first_keys;
        END IF;
        EXECUTE format($q$
            INSERT INTO health_score_internal.current_state AS c
                   (model, entity_key, scored_at, model_version, score, band, band_rank, coverage, segment, model_band)
            SELECT $1, w.entity_key, $3, w.model_version, w.score, w.band, w.band_rank, w.coverage, w.segment,
                   w.manual->'band'->>'model_band'
              FROM health_score_internal.%1$I w WHERE w.model = $1 AND w.scored_at = $3
            %2$s$q$, target, state_upsert)
        USING model_name, model_version, snapshot.at;
        PERFORM set_config('health_score.current_state_kept_by', '', true);
        EXIT;
    END IF;
    -- this statement keeps the current state itself (the triggers of health_score_internal.score_rows
    -- leave it alone while this says so; the setting ends with the statement's block)
    PERFORM set_config('health_score.current_state_kept_by', 'snapshot', true);
    EXECUTE format($q$
        WITH rows AS (
            SELECT k AS entity_key, (e).*, inputs
              FROM (SELECT src.%1$I::text AS k,
                           health_score_internal._snapshot_record(%2$L, %1$L, src.%1$I::text, %9$s, src) AS e, %6$s AS inputs
                      FROM %3$s AS src%10$s OFFSET 0) rows
        ), banded AS (%8$s), scored AS (%11$s), written AS (
            INSERT INTO health_score_internal.%7$I AS t
                   (model, model_version, entity_key, scored_at, score, band, band_rank, coverage, segment, record, inputs, manual)
            SELECT $1, $2, entity_key, $3, score, band, band_rank, coverage, segment, record, inputs, manual FROM scored
            %4$s
            RETURNING t.entity_key, t.model_version, t.score, t.band, t.band_rank, t.coverage, t.segment,
                      t.manual->'band'->>'model_band' AS model_band
        ), kept AS (
            INSERT INTO health_score_internal.current_state AS c
                   (model, entity_key, scored_at, model_version, score, band, band_rank, coverage, segment, model_band)
            SELECT $1, w.entity_key, $3, w.model_version, w.score, w.band, w.band_rank, w.coverage, w.segment, w.model_band
              FROM written w
            %12$s
            RETURNING c.entity_key, c.band_rank, c.previous_band_rank
        ), worse AS (%5$s)
        SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM worse),
               -- the first 100 keys, fewer if they would not fit NOTIFY's 8000-byte payload
               (SELECT array_agg(entity_key ORDER BY entity_key) FROM (
                    SELECT entity_key, sum(octet_length(entity_key) * 6 + 3) OVER (ORDER BY entity_key) AS bytes
                      FROM (SELECT entity_key FROM worse ORDER BY entity_key LIMIT 100) f) g
                 WHERE bytes < 7000)
    $q$, snapshot.key_column, model_name || '@' || model_version, snapshot.source,
         CASE WHEN replacing THEN replace_rows ELSE '' END,
         -- each entity's band against its latest earlier snapshot (none before the first run)
         CASE WHEN previous_at IS NULL THEN 'SELECT NULL::text AS entity_key WHERE false'
         -- no entity has a later snapshot: this one is each entity's latest, and the current
         -- state as it updated it holds the one before
         WHEN NOT later THEN 'SELECT k.entity_key FROM kept k WHERE k.band_rank < k.previous_band_rank'
         -- (the current state as the statement began: its latest, or its previous, is the
         -- latest earlier snapshot unless this one is earlier still)
         ELSE 'SELECT w.entity_key FROM written w
                 JOIN health_score_internal.current_state c ON c.model = $1 AND c.entity_key = w.entity_key
                WHERE w.band_rank < CASE WHEN c.scored_at < $3 THEN c.band_rank
                                         WHEN c.previous_at < $3 THEN c.previous_band_rank
                                         ELSE (SELECT p.band_rank FROM health_score_internal.score_rows p
                                                WHERE p.model = $1 AND p.entity_key = w.entity_key AND p.scored_at < $3
                                                ORDER BY p.scored_at DESC LIMIT 1) END' END,
         inputs_sql, target, banded_sql, manual_sql, manual_join, scored_sql, state_upsert)
    USING model_name, model_version, snapshot.at
    INTO written, worsened, first_keys;
    PERFORM set_config('health_score.current_state_kept_by', '', true);
    EXIT;
    EXCEPTION WHEN OTHERS THEN
        -- the error as it is, without the generated statement as its context
        GET STACKED DIAGNOSTICS error_state = RETURNED_SQLSTATE, error_message = MESSAGE_TEXT,
                                error_detail = PG_EXCEPTION_DETAIL, error_hint = PG_EXCEPTION_HINT;
        -- rows of this model and time whose run record was deleted from health_score.snapshots:
        -- replace them after all (the insert above was rolled back with the block)
        -- under REPEATABLE READ or SERIALIZABLE the rows may also come from a snapshot of the
        -- same time that committed after this transaction began, which it cannot see: replacing
        -- then fails with 40001 (a source that repeats a key fails with 21000, below)
        IF error_state = '23505' AND NOT replacing
           AND (current_setting('transaction_isolation') <> 'read committed'
                OR EXISTS (SELECT 1 FROM health_score_internal.score_rows s WHERE s.model = model_name AND s.scored_at = snapshot.at)) THEN
            replacing := true;
            CONTINUE;
        END IF;
        IF error_state IN ('23505', '21000') THEN
            -- one code for one fault, whichever way the insert met the repeated key
            error_state := '21000';
            -- name one repeated key (the insert's own detail names the primary key's columns)
            EXECUTE format('SELECT k FROM (SELECT src.%1$I::text AS k FROM %2$s AS src) s WHERE k IS NOT NULL
                             GROUP BY k HAVING count(*) > 1 ORDER BY k LIMIT 1', snapshot.key_column, snapshot.source)
               INTO repeated_key;
            error_message := format('snapshot: %s has more than one row for the same %s%s', snapshot.source,
                                    quote_ident(snapshot.key_column), ', such as "' || repeated_key || '"');
            error_detail := NULL;
            error_hint := 'the key column must identify each entity once; aggregate or filter the source in a view';
        ELSIF error_state = '40001' THEN
            error_message := format('snapshot: the snapshot of %s at %s conflicts with a concurrent transaction (%s)',
                                    model_name, snapshot.at, error_message);
            error_hint := 'retry the transaction; under READ COMMITTED (the default) concurrent snapshots wait for each other';
        END IF;
        IF coalesce(error_detail, '') = '' AND coalesce(error_hint, '') = '' THEN
            RAISE EXCEPTION USING ERRCODE = error_state, MESSAGE = error_message;
        ELSIF coalesce(error_detail, '') = '' THEN
            RAISE EXCEPTION USING ERRCODE = error_state, MESSAGE = error_message, HINT = error_hint;
        ELSIF coalesce(error_hint, '') = '' THEN
            RAISE EXCEPTION USING ERRCODE = error_state, MESSAGE = error_message, DETAIL = error_detail;
        ELSE
            RAISE EXCEPTION USING ERRCODE = error_state, MESSAGE = error_message, DETAIL = error_detail, HINT = error_hint;
        END IF;
    END;
    END LOOP;
    INSERT INTO health_score.snapshots AS r (model, scored_at, source, model_version, rows_written, worsened)
    VALUES (model_name, snapshot.at, snapshot.source::text, model_version, written, worsened)
    ON CONFLICT ON CONSTRAINT snapshots_pkey DO UPDATE
       SET model_version = excluded.model_version, rows_written = excluded.rows_written,
           worsened = excluded.worsened, finished_at = excluded.finished_at;
    RAISE NOTICE 'snapshot: wrote % rows of % (% worsened their band)', written, model_name, worsened;
    -- the alert queue: the model's rules on the entities this snapshot made current
    IF EXISTS (SELECT FROM health_score.alert_rules r WHERE r.model = model_name) THEN
        raised := health_score_internal._raise_alert_events(model_name, snapshot.at);
        RAISE NOTICE 'snapshot: raised % alert events', raised;
    END IF;
    IF worsened > 0 THEN
        PERFORM pg_notify('health_score_alerts', json_build_object(
            'model', model_name, 'model_version', model_version, 'scored_at', snapshot.at,
            'worsened', worsened, 'keys', to_json(first_keys),
            'all_keys', worsened = coalesce(cardinality(first_keys), 0))::text);
    END IF;
    RETURN written;
END
$$;

-- Issue 15, item 13: DROP EXTENSION removes the pg_cron jobs schedule registered
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

-- The functions not replaced above whose bodies call the internals, naming them where they now are
CREATE OR REPLACE FUNCTION health_score_internal._model_sql(model text, OUT model_sql text, OUT config jsonb)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pinned integer := health_score_internal._resolve_model(_model_sql.model);
    model_name text := health_score_internal._model_name(_model_sql.model);
BEGIN
    IF _model_sql.model IS NULL THEN
        RAISE EXCEPTION 'the model must not be NULL' USING ERRCODE = '22023',
            HINT = 'a registered model''s name (''churn'' or ''churn@2''), or a model as jsonb';
    END IF;
    model_sql := quote_literal(model_name || '@' || pinned);
    SELECT v.config INTO config FROM health_score.model_versions v
     WHERE v.name OPERATOR(pg_catalog.=) model_name AND v.version OPERATOR(pg_catalog.=) pinned;
END
$$;

CREATE OR REPLACE FUNCTION health_score_internal._model_sql(model jsonb, OUT model_sql text, OUT config jsonb)
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF _model_sql.model IS NULL THEN
        RAISE EXCEPTION 'the model must not be NULL' USING ERRCODE = '22023',
            HINT = 'a registered model''s name (''churn'' or ''churn@2''), or a model as jsonb';
    END IF;
    PERFORM health_score_internal._require_valid_model(_model_sql.model);
    model_sql := quote_literal(_model_sql.model::text) || '::jsonb';
    config := _model_sql.model;
END
$$;

CREATE OR REPLACE FUNCTION health_score.band_report(model text, source regclass, outcome_column text)
    RETURNS TABLE (segment text, band text, band_rank integer, accounts bigint, churned bigint,
                   churn_rate double precision, lift double precision)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM health_score_internal._model_sql(band_report.model) m,
                    health_score_internal._band_report(m.model_sql, m.config, band_report.source, band_report.outcome_column) r
$$;

CREATE OR REPLACE FUNCTION health_score.band_report(model jsonb, source regclass, outcome_column text)
    RETURNS TABLE (segment text, band text, band_rank integer, accounts bigint, churned bigint,
                   churn_rate double precision, lift double precision)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM health_score_internal._model_sql(band_report.model) m,
                    health_score_internal._band_report(m.model_sql, m.config, band_report.source, band_report.outcome_column) r
$$;

CREATE OR REPLACE FUNCTION health_score.evaluate(model text, source regclass, outcome_column text)
    RETURNS TABLE (accounts bigint, churned bigint, churn_rate double precision, auc double precision,
                   mean_coverage double precision, under_min_coverage double precision,
                   log_loss double precision, brier double precision, outcome_unknown bigint)
LANGUAGE sql STABLE AS $$
    SELECT e.* FROM health_score_internal._model_sql(evaluate.model) m,
                    health_score_internal._evaluate(m.model_sql, m.config, evaluate.source, evaluate.outcome_column) e
$$;

CREATE OR REPLACE FUNCTION health_score.evaluate(model jsonb, source regclass, outcome_column text)
    RETURNS TABLE (accounts bigint, churned bigint, churn_rate double precision, auc double precision,
                   mean_coverage double precision, under_min_coverage double precision,
                   log_loss double precision, brier double precision, outcome_unknown bigint)
LANGUAGE sql STABLE AS $$
    SELECT e.* FROM health_score_internal._model_sql(evaluate.model) m,
                    health_score_internal._evaluate(m.model_sql, m.config, evaluate.source, evaluate.outcome_column) e
$$;

CREATE OR REPLACE FUNCTION health_score.calibrate(model text, source regclass, outcome_column text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT health_score_internal._calibrate(m.model_sql, m.config, calibrate.source, calibrate.outcome_column)
      FROM health_score_internal._model_sql(calibrate.model) m
$$;

CREATE OR REPLACE FUNCTION health_score.calibrate(model jsonb, source regclass, outcome_column text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT health_score_internal._calibrate(m.model_sql, m.config, calibrate.source, calibrate.outcome_column)
      FROM health_score_internal._model_sql(calibrate.model) m
$$;

CREATE OR REPLACE FUNCTION health_score.drivers(model text, entity_key text, from_at timestamptz, to_at timestamptz)
    RETURNS TABLE (component text, parent text, points_before double precision, points_after double precision, change double precision)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    before_row health_score.scores;
    after_row health_score.scores;
BEGIN
    PERFORM health_score_internal._require_model_name('drivers', drivers.model);
    SELECT * INTO before_row FROM health_score.scores s
     WHERE s.model = drivers.model AND s.entity_key = drivers.entity_key AND s.scored_at <= drivers.from_at
     ORDER BY s.scored_at DESC LIMIT 1;
    SELECT * INTO after_row FROM health_score.scores s
     WHERE s.model = drivers.model AND s.entity_key = drivers.entity_key AND s.scored_at <= drivers.to_at
     ORDER BY s.scored_at DESC LIMIT 1;
    IF before_row.scored_at IS NULL OR after_row.scored_at IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT d.component, d.parent, d.points_before, d.points_after, d.change
      FROM jsonb_to_recordset(health_score_internal._drivers(drivers.model, before_row.model_version, before_row.components,
                                                    after_row.model_version, after_row.components, false))
           AS d(component text, parent text, points_before double precision, points_after double precision,
                change double precision);
END
$$;

CREATE OR REPLACE FUNCTION health_score.schedule(model text, source regclass, key_column text, cron_expr text) RETURNS bigint
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

-- Comments that name the internals where they now are
COMMENT ON FUNCTION health_score_internal._fit_row_columns(jsonb, boolean, oid, text[], "any") IS
    'health_score_internal._fit_row as the planner passes it: the row''s columns as arguments';
COMMENT ON FUNCTION health_score_internal._snapshot_row_columns(text, text, text, oid, text[], "any") IS
    'health_score_internal._snapshot_row as the planner passes it: the row''s columns as arguments';
COMMENT ON FUNCTION health_score_internal._row_support(internal) IS
    'Planner support of the table-row forms: passes a whole row''s columns (health_score_internal._*_columns) instead of building a composite value per row';
COMMENT ON FUNCTION health_score_internal._view_row_columns(text, oid, text[], "any") IS
    'health_score_internal._view_row as the planner passes it: the row''s columns as arguments';

-------------------------------------------------------------------------------------------
-- Issue 17: compact snapshot rows in partitions by model and month, read through the view
-- health_score.scores; the current state; retention
-------------------------------------------------------------------------------------------

-- One row per model, entity and snapshot time. Instead of the components' JSONB a row keeps
-- the record of its leaves (core::stored: a status byte and a float8 per leaf of the model
-- version, in model order), from which health_score.scores gives the same JSONB back. Rows
-- written before 0.3.0, and rows written by hand through health_score.scores, keep their
-- components as JSONB (record NULL). Fixed-width columns come first, so that no row pays
-- alignment padding. Partitioned by (model, scored_at) ranges: a partition holds one model's
-- snapshots of one period (a month unless set_partitioning says otherwise), so that retention
-- drops whole partitions, model by model. Keys use the "C" collation: they are identifiers,
-- compared byte-wise, which makes the primary key's comparisons several times cheaper.
-- Not dumped itself (it holds no rows): its partitions are ordinary tables, dumped with their
-- data, and attached again on restore.
CREATE TABLE health_score_internal.score_rows (
    scored_at     timestamptz      NOT NULL,
    score         double precision,
    coverage      double precision NOT NULL,
    model_version integer          NOT NULL,
    band_rank     integer,
    model         text COLLATE "C" NOT NULL,
    entity_key    text COLLATE "C" NOT NULL,
    band          text,
    segment       text,
    record        bytea,
    components    jsonb,
    inputs        jsonb,
    manual        jsonb
) PARTITION BY RANGE (model, scored_at);
-- Each partition has its primary key (model, entity_key, scored_at), which serves "history of
-- one entity" and the current state's recomputation of an entity (its two latest snapshots);
-- a partition holds one model's rows of one period, so keys are unique across partitions
-- too. Not a key of the partitioned table: pg_restore attaches the partitions to the table
-- CREATE EXTENSION made, and the partitioned table's key would give each a key before the
-- dump's own. "Which times were snapshotted" is health_score.snapshots, one row per run: an
-- index on (model, scored_at) would cost every snapshot row another index insertion.
COMMENT ON TABLE health_score_internal.score_rows IS
    'The stored snapshots, partitioned by model and period (health_score_internal.partitions); read them through health_score.scores';
COMMENT ON COLUMN health_score_internal.score_rows.record IS
    'The record of the leaves (core::stored), for the model version; NULL when components holds them';
COMMENT ON COLUMN health_score_internal.score_rows.components IS
    'The components as JSONB: rows written before 0.3.0 or by hand; NULL when record holds them';
COMMENT ON COLUMN health_score_internal.score_rows.manual IS
    'The manual inputs and band override applied (health_score.manual_applied shows them); NULL when none was';

-- The partitions: one row each, so that snapshot finds its partition without parsing
-- partition bounds, and retention knows what each holds.
CREATE TABLE health_score_internal.partitions (
    model          text COLLATE "C" NOT NULL,
    from_at        timestamptz      NOT NULL,
    to_at          timestamptz      NOT NULL,
    partition_name text COLLATE "C" NOT NULL UNIQUE,
    PRIMARY KEY (model, from_at)
);
COMMENT ON TABLE health_score_internal.partitions IS
    'The partitions of health_score_internal.score_rows: each holds one model''s snapshots in [from_at, to_at). Kept by pg_dump.';
COMMENT ON COLUMN health_score_internal.partitions.model IS 'Model name';
COMMENT ON COLUMN health_score_internal.partitions.from_at IS 'The partition holds the snapshots at or after this time';
COMMENT ON COLUMN health_score_internal.partitions.to_at IS '... and before this time';
COMMENT ON COLUMN health_score_internal.partitions.partition_name IS 'The table, in schema health_score_internal';
SELECT pg_catalog.pg_extension_config_dump('health_score_internal.partitions', '');

CREATE TABLE health_score.retention (
    model        text COLLATE "C" PRIMARY KEY,
    keep         interval,
    partition_by text NOT NULL DEFAULT 'month' CHECK (partition_by IN ('day', 'week', 'month', 'quarter', 'year')),
    set_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    set_by       name NOT NULL DEFAULT SESSION_USER
);
COMMENT ON TABLE health_score.retention IS
    'Per model: how long its snapshots are kept (health_score.set_retention; no row or NULL: for ever) and the period of its partitions (health_score.set_partitioning; a month by default). Kept by pg_dump.';
COMMENT ON COLUMN health_score.retention.model IS 'Model name';
COMMENT ON COLUMN health_score.retention.keep IS 'Snapshots older than this are dropped by health_score.apply_retention, a whole partition at a time; NULL keeps them';
COMMENT ON COLUMN health_score.retention.partition_by IS 'The period of each new partition: day, week, month, quarter or year (UTC)';
COMMENT ON COLUMN health_score.retention.set_at IS 'When the setting was last changed';
COMMENT ON COLUMN health_score.retention.set_by IS 'The session''s login role (session_user) that last changed it';
SELECT pg_catalog.pg_extension_config_dump('health_score.retention', '');

-- SECURITY DEFINER (docs/security.md): a partition is created by the owner of
-- health_score_internal.score_rows, which whoever takes a snapshot is not. Creates the
-- partition of the model that holds "at", unless one does: one period (UTC) around it, cut
-- where it would overlap a neighbour (after a change of partition_by). Created and attached
-- in two steps: ATTACH takes a lock that lets reads and other snapshots' writes go on, which
-- CREATE TABLE ... PARTITION OF would block until the transaction ends.
CREATE FUNCTION health_score_internal._ensure_partition(model text, at timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    period text;
    from_at timestamptz;
    to_at timestamptz;
    partition_name text;
    attempt integer := 0;
BEGIN
    IF _ensure_partition.model IS NULL OR _ensure_partition.at IS NULL OR NOT isfinite(_ensure_partition.at) THEN
        RAISE EXCEPTION 'a snapshot needs a model and a finite time, not % and %', coalesce(_ensure_partition.model, 'NULL'),
            coalesce(_ensure_partition.at::text, 'NULL') USING ERRCODE = '22023',
            HINT = 'snapshots are stored under a model''s name and a time such as now()';
    END IF;
    SELECT p.partition_name INTO partition_name FROM health_score_internal.partitions p
     WHERE p.model = _ensure_partition.model AND p.from_at <= _ensure_partition.at AND _ensure_partition.at < p.to_at;
    IF FOUND THEN
        RETURN partition_name;
    END IF;
    -- one creator at a time; the check again, under the lock
    LOCK TABLE health_score_internal.partitions IN SHARE ROW EXCLUSIVE MODE;
    SELECT p.partition_name INTO partition_name FROM health_score_internal.partitions p
     WHERE p.model = _ensure_partition.model AND p.from_at <= _ensure_partition.at AND _ensure_partition.at < p.to_at;
    IF FOUND THEN
        RETURN partition_name;
    END IF;
    period := coalesce((SELECT r.partition_by FROM health_score.retention r WHERE r.model = _ensure_partition.model), 'month');
    from_at := date_trunc(period, _ensure_partition.at, 'UTC');
    BEGIN
        to_at := (from_at AT TIME ZONE 'UTC'
                  + CASE period WHEN 'day' THEN interval '1 day' WHEN 'week' THEN interval '7 days'
                                WHEN 'month' THEN interval '1 month' WHEN 'quarter' THEN interval '3 months'
                                ELSE interval '1 year' END) AT TIME ZONE 'UTC';
    EXCEPTION WHEN datetime_field_overflow THEN
        to_at := 'infinity';
    END;
    from_at := greatest(from_at, (SELECT max(p.to_at) FROM health_score_internal.partitions p
                                   WHERE p.model = _ensure_partition.model AND p.to_at <= _ensure_partition.at));
    to_at := least(to_at, (SELECT min(p.from_at) FROM health_score_internal.partitions p
                            WHERE p.model = _ensure_partition.model AND p.from_at > _ensure_partition.at));
    -- a name from the model's hash and the period's start; another model's of the same hash
    -- prefix and start (or a table of that name) gets a suffix
    LOOP
        partition_name := format('score_rows_%s_%s%s', left(md5(_ensure_partition.model), 12),
                                 to_char(from_at AT TIME ZONE 'UTC', 'YYYYMMDD'),
                                 CASE WHEN attempt > 0 THEN '_' || attempt END);
        EXIT WHEN to_regclass('health_score_internal.' || quote_ident(partition_name)) IS NULL;
        attempt := attempt + 1;
    END LOOP;
    EXECUTE format('CREATE TABLE health_score_internal.%I (LIKE health_score_internal.score_rows,
                    PRIMARY KEY (model, entity_key, scored_at))', partition_name);
    -- snapshot writes into the partition itself (it is one model's at one time): no routing
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON health_score_internal.%I TO health_score_admin', partition_name);
    EXECUTE format('ALTER TABLE health_score_internal.score_rows ATTACH PARTITION health_score_internal.%I
                    FOR VALUES FROM (%L, %s) TO (%L, %s)', partition_name,
                   _ensure_partition.model, CASE WHEN from_at = '-infinity' THEN '''-infinity''::timestamptz'
                                                 ELSE format('to_timestamp(%s)', extract(epoch FROM from_at)) END,
                   _ensure_partition.model, CASE WHEN to_at = 'infinity' THEN '''infinity''::timestamptz'
                                                 ELSE format('to_timestamp(%s)', extract(epoch FROM to_at)) END);
    INSERT INTO health_score_internal.partitions (model, from_at, to_at, partition_name)
    VALUES (_ensure_partition.model, from_at, to_at, partition_name);
    RETURN partition_name;
END
$$;
COMMENT ON FUNCTION health_score_internal._ensure_partition(text, timestamptz) IS
    'The partition of health_score_internal.score_rows that holds a model''s snapshots at a time, created unless there is one';

-- The compact forms (core::stored): a snapshot row with the stored record, a few bytes a leaf,
-- in place of the components' JSONB, and the components a record gives back (the same JSONB).
CREATE TYPE health_score_internal._snapshot_record AS (
    score      double precision,
    band       text,
    band_rank  integer,
    coverage   double precision,
    segment    text,
    record     bytea,
    band_override      text,
    band_override_rank integer,
    manual     jsonb
);
COMMENT ON TYPE health_score_internal._snapshot_record IS
    'One entity as a compact snapshot stores it: the scalars, the record of its leaves (health_score_internal._record_components reads it), and the manual inputs and band override applied';
CREATE FUNCTION health_score_internal._snapshot_record(model text, key_column text, entity_key text, manual jsonb, input record)
    RETURNS health_score_internal._snapshot_record
    AS 'MODULE_PATHNAME', 'hs_snapshot_record' LANGUAGE C STABLE PARALLEL SAFE COST 50
    SUPPORT health_score_internal._row_support;
COMMENT ON FUNCTION health_score_internal._snapshot_record(text, text, text, jsonb, record) IS
    'A compact snapshot''s per-row work: scores one entity, its manual inputs (the JSON of health_score_internal._manual_sql, NULL for none) applied, and keeps the record of its leaves; errors name the entity''s key';
CREATE FUNCTION health_score_internal._snapshot_record_columns(model text, key_column text, entity_key text, manual jsonb, row_type oid, columns text[], VARIADIC "any")
    RETURNS health_score_internal._snapshot_record
    AS 'MODULE_PATHNAME', 'hs_snapshot_record_columns' LANGUAGE C STABLE PARALLEL SAFE COST 50;
COMMENT ON FUNCTION health_score_internal._snapshot_record_columns(text, text, text, jsonb, oid, text[], "any") IS
    'health_score_internal._snapshot_record as the planner passes it: the row''s columns as arguments';
CREATE FUNCTION health_score_internal._record_components(model text, record bytea) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'hs_record_components' LANGUAGE C STABLE STRICT PARALLEL SAFE COST 10;
COMMENT ON FUNCTION health_score_internal._record_components(text, bytea) IS
    'The components (per component its points and n, as health_score.scores.components holds them) that a stored record of a model version (''name@3'') gives back; 22023 for bytes that are not one';
REVOKE EXECUTE ON FUNCTION
    health_score_internal._snapshot_record(text, text, text, jsonb, record),
    health_score_internal._snapshot_record_columns(text, text, text, jsonb, oid, text[], "any")
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    health_score_internal._snapshot_record(text, text, text, jsonb, record),
    health_score_internal._snapshot_record_columns(text, text, text, jsonb, oid, text[], "any")
  TO health_score_admin;

-- The history moves into the partitions, each row as it was (its components as JSONB); the
-- rows of new snapshots keep the record instead.
DO $partitions$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT DISTINCT s.model, date_trunc('month', s.scored_at, 'UTC') AS month FROM health_score.scores s LOOP
        PERFORM health_score_internal._ensure_partition(p.model, p.month);
    END LOOP;
    -- created by this script they would be members of the extension, and pg_dump would leave
    -- their rows out: like those snapshot creates, they are data
    FOR p IN SELECT q.partition_name FROM health_score_internal.partitions q LOOP
        EXECUTE format('ALTER EXTENSION health_score DROP TABLE health_score_internal.%I', p.partition_name);
    END LOOP;
END
$partitions$;
INSERT INTO health_score_internal.score_rows
       (model, model_version, entity_key, scored_at, score, band, band_rank, coverage, segment, components, inputs)
SELECT s.model, s.model_version, s.entity_key, s.scored_at, s.score, s.band, s.band_rank, s.coverage, s.segment,
       s.components, s.inputs
  FROM health_score.scores s;

-- The current state: per model and entity its latest snapshot and the one before, so that
-- latest and alerts read one row per entity instead of the whole history. snapshot keeps it
-- in its own statement; the triggers on health_score_internal.score_rows below keep it exact
-- through every other change there: DELETE, UPDATE, INSERT, TRUNCATE. Dumped: a restore
-- copies the history into its partitions, which fires no trigger of the partitioned table.
-- Retention (health_score.apply_retention) drops partitions, and corrects it itself.
-- Every snapshot updates each entity's row: half of each page is left free, so that the new
-- version goes on the same page (a HOT update, no index entry) and the old one is pruned there.
CREATE TABLE health_score_internal.current_state (
    model              text COLLATE "C" NOT NULL,
    entity_key         text COLLATE "C" NOT NULL,
    scored_at          timestamptz      NOT NULL,
    model_version      integer          NOT NULL,
    score              double precision,
    band               text,
    band_rank          integer,
    coverage           double precision NOT NULL,
    segment            text,
    previous_at        timestamptz,
    previous_score     double precision,
    previous_band      text,
    previous_band_rank integer,
    model_band         text,
    previous_model_band text,
    PRIMARY KEY (model, entity_key)
) WITH (fillfactor = 50);
COMMENT ON TABLE health_score_internal.current_state IS
    'Per model and entity: its latest snapshot in health_score.scores and the one before (read through health_score.latest); kept by snapshot and by triggers on health_score_internal.score_rows. Kept by pg_dump.';
COMMENT ON COLUMN health_score_internal.current_state.model_band IS
    'When the latest snapshot''s band was forced by a band override: the model''s own band, from which band hysteresis continues; NULL otherwise';
COMMENT ON COLUMN health_score_internal.current_state.previous_model_band IS
    'The same of the snapshot before the latest';
SELECT pg_catalog.pg_extension_config_dump('health_score_internal.current_state', '');

-- The statement that recomputes the current state of the entities a query of (model,
-- entity_key) names, such as a transition table, from the history: two probes of its primary
-- key each. (The trigger runs it: a transition table is visible to its function alone.)
CREATE FUNCTION health_score_internal._current_state_sql(keys text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $f$
    SELECT format($q$
        WITH k AS (SELECT DISTINCT model, entity_key FROM (%s) k),
        gone AS (
            DELETE FROM health_score_internal.current_state c USING k
             WHERE c.model = k.model AND c.entity_key = k.entity_key
               AND NOT EXISTS (SELECT FROM health_score_internal.score_rows s WHERE s.model = k.model AND s.entity_key = k.entity_key)
        )
        INSERT INTO health_score_internal.current_state AS c
        SELECT k.model, k.entity_key, l.scored_at, l.model_version, l.score, l.band, l.band_rank, l.coverage, l.segment,
               p.scored_at, p.score, p.band, p.band_rank, l.manual->'band'->>'model_band', p.manual->'band'->>'model_band'
          FROM k
          JOIN LATERAL (SELECT s.* FROM health_score_internal.score_rows s WHERE s.model = k.model AND s.entity_key = k.entity_key
                         ORDER BY s.scored_at DESC LIMIT 1) l ON true
          LEFT JOIN LATERAL (SELECT s.* FROM health_score_internal.score_rows s WHERE s.model = k.model AND s.entity_key = k.entity_key
                                AND s.scored_at < l.scored_at ORDER BY s.scored_at DESC LIMIT 1) p ON true
        ON CONFLICT (model, entity_key) DO UPDATE
           SET scored_at = excluded.scored_at, model_version = excluded.model_version, score = excluded.score,
               band = excluded.band, band_rank = excluded.band_rank, coverage = excluded.coverage,
               segment = excluded.segment, previous_at = excluded.previous_at, previous_score = excluded.previous_score,
               previous_band = excluded.previous_band, previous_band_rank = excluded.previous_band_rank,
               model_band = excluded.model_band, previous_model_band = excluded.previous_model_band
    $q$, keys)
$f$;
COMMENT ON FUNCTION health_score_internal._current_state_sql(text) IS
    'The statement that recomputes health_score_internal.current_state for the entities a query of (model, entity_key) names, from health_score_internal.score_rows';

-- filled from the history once, then kept by snapshot and the triggers
INSERT INTO health_score_internal.current_state
SELECT l.model, l.entity_key, l.scored_at, l.model_version, l.score, l.band, l.band_rank, l.coverage, l.segment,
       l.previous_at, l.previous_score, l.previous_band, l.previous_band_rank
  FROM (SELECT s.*, lag(s.scored_at) OVER w AS previous_at, lag(s.score) OVER w AS previous_score,
               lag(s.band) OVER w AS previous_band, lag(s.band_rank) OVER w AS previous_band_rank,
               lead(s.scored_at) OVER w IS NULL AS is_latest
          FROM health_score_internal.score_rows s
        WINDOW w AS (PARTITION BY s.model, s.entity_key ORDER BY s.scored_at)) l
 WHERE l.is_latest;

-- After each statement that changes health_score_internal.score_rows by hand (snapshot keeps the current
-- state in its own statement, from the rows it writes, and says so for the statement's
-- duration in health_score.current_state_kept_by): the entities whose rows were deleted or
-- updated are recomputed from the history. An INSERT has no transition table (capturing the
-- inserted rows, components and all, was most of what the current state cost a snapshot), so
-- rows inserted by hand make the whole current state be recomputed.
CREATE FUNCTION health_score_internal._maintain_current_state() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE health_score_internal.current_state;
    ELSIF current_setting('health_score.current_state_kept_by', true) = 'snapshot' THEN
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        EXECUTE health_score_internal._current_state_sql(
            'SELECT model, entity_key FROM health_score_internal.score_rows UNION ALL SELECT model, entity_key FROM health_score_internal.current_state');
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE health_score_internal._current_state_sql(
            'SELECT model, entity_key FROM old_rows UNION ALL SELECT model, entity_key FROM new_rows');
    ELSE
        EXECUTE health_score_internal._current_state_sql('SELECT model, entity_key FROM old_rows');
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION health_score_internal._maintain_current_state() IS
    'Trigger of health_score_internal.score_rows: keeps health_score_internal.current_state exact after every INSERT, UPDATE, DELETE and TRUNCATE that snapshot did not make';
CREATE TRIGGER current_state_after_insert AFTER INSERT ON health_score_internal.score_rows
    FOR EACH STATEMENT EXECUTE FUNCTION health_score_internal._maintain_current_state();
CREATE TRIGGER current_state_after_update AFTER UPDATE ON health_score_internal.score_rows
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION health_score_internal._maintain_current_state();
CREATE TRIGGER current_state_after_delete AFTER DELETE ON health_score_internal.score_rows
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION health_score_internal._maintain_current_state();
CREATE TRIGGER current_state_after_truncate AFTER TRUNCATE ON health_score_internal.score_rows
    FOR EACH STATEMENT EXECUTE FUNCTION health_score_internal._maintain_current_state();
-- PostgreSQL calls it itself
REVOKE EXECUTE ON FUNCTION health_score_internal._maintain_current_state() FROM PUBLIC;

-- The current state, kept by snapshot and the triggers of the history: one row per entity, however
-- long the history (one entity is a probe of its primary key).
CREATE OR REPLACE VIEW health_score.latest AS
SELECT c.model, c.entity_key, c.scored_at, c.model_version, c.score, c.band, c.band_rank, c.coverage, c.segment,
       c.previous_at, c.previous_score, c.previous_band, c.previous_band_rank, c.score - c.previous_score AS delta,
       CASE WHEN c.previous_at IS NULL THEN 'new'
            WHEN c.band_rank < c.previous_band_rank THEN 'worsened'
            WHEN c.band_rank > c.previous_band_rank THEN 'improved'
            WHEN c.band_rank = c.previous_band_rank THEN 'same'
       END AS band_change
  FROM health_score_internal.current_state c;
COMMENT ON VIEW health_score.latest IS 'Per model and entity: the latest snapshot, the one before it, the change in score and the band change';
COMMENT ON COLUMN health_score.latest.model IS 'Model name';
COMMENT ON COLUMN health_score.latest.entity_key IS 'The entity (account) key';
COMMENT ON COLUMN health_score.latest.scored_at IS 'Time of the latest snapshot';
COMMENT ON COLUMN health_score.latest.model_version IS 'The model version that scored the latest snapshot';
COMMENT ON COLUMN health_score.latest.score IS 'Latest score';
COMMENT ON COLUMN health_score.latest.band IS 'Latest band';
COMMENT ON COLUMN health_score.latest.band_rank IS 'Latest band''s rank (0 = the worst)';
COMMENT ON COLUMN health_score.latest.coverage IS 'Latest coverage';
COMMENT ON COLUMN health_score.latest.segment IS 'Latest segment override applied';
COMMENT ON COLUMN health_score.latest.previous_at IS 'Time of the snapshot before the latest, NULL for a new entity';
COMMENT ON COLUMN health_score.latest.previous_score IS 'Score of the snapshot before the latest';
COMMENT ON COLUMN health_score.latest.previous_band IS 'Band of the snapshot before the latest';
COMMENT ON COLUMN health_score.latest.previous_band_rank IS 'Band rank of the snapshot before the latest';
COMMENT ON COLUMN health_score.latest.delta IS 'score - previous_score';
COMMENT ON COLUMN health_score.latest.band_change IS 'worsened, improved or same by band rank; new without a previous snapshot; NULL when either has no band';

CREATE OR REPLACE FUNCTION health_score.alerts(model text, min_drop double precision, since interval)
    RETURNS TABLE (entity_key text, baseline_at timestamptz, baseline_score double precision, baseline_band text,
                   latest_at timestamptz, latest_score double precision, latest_band text,
                   score_change double precision, band_change text, drivers jsonb)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM health_score_internal._require_model_name('alerts', alerts.model);
    IF alerts.since IS NULL OR alerts.since < interval '0' THEN
        RAISE EXCEPTION 'alerts: since must be a non-negative interval' USING ERRCODE = '22023',
            HINT = 'how far back from each entity''s latest snapshot to compare, such as interval ''30 days''';
    END IF;
    IF alerts.min_drop IS NULL OR alerts.min_drop = 'NaN' OR alerts.min_drop < 0 THEN
        RAISE EXCEPTION 'alerts: min_drop must be a number of points, 0 or more, not %', coalesce(alerts.min_drop::text, 'NULL')
            USING ERRCODE = '22023',
            HINT = 'the score drop that raises an alert on its own, such as 10; ''Infinity'' alerts on band drops only';
    END IF;
    BEGIN
        IF health_score_internal._is_citus_table('health_score_internal.score_rows') THEN
            -- A distributed history (docs/scale-out.md): the same pairs from joins Citus runs
            -- on the workers, each entity's rows and state on one of them (the probes below are
            -- correlated subqueries, which Citus does not send there). Each entity's baseline
            -- is its snapshot before the latest that is at or before (latest - since), the
            -- latest such, else the earliest one after it.
            RETURN QUERY
            SELECT l.entity_key, b.scored_at, b.score, b.band, l.scored_at, l.score, l.band, l.score - b.score,
                   CASE WHEN l.band_rank < b.band_rank THEN 'worsened' WHEN l.band_rank > b.band_rank THEN 'improved'
                        WHEN l.band_rank = b.band_rank THEN 'same' END,
                   health_score_internal._drivers(alerts.model,
                       b.model_version, coalesce(b.components, health_score_internal._record_components(b.model || '@' || b.model_version, b.record)),
                       r.model_version, coalesce(r.components, health_score_internal._record_components(r.model || '@' || r.model_version, r.record)),
                       true)
              FROM health_score_internal.current_state l
              JOIN (SELECT DISTINCT ON (s.entity_key) s.*
                      FROM health_score_internal.score_rows s
                      JOIN health_score_internal.current_state c ON c.model = s.model AND c.entity_key = s.entity_key
                     WHERE s.model = alerts.model
                       AND (s.scored_at < c.scored_at OR s.scored_at <= c.scored_at - alerts.since)
                     ORDER BY s.entity_key, s.scored_at <= c.scored_at - alerts.since DESC,
                              CASE WHEN s.scored_at <= c.scored_at - alerts.since THEN s.scored_at END DESC NULLS LAST,
                              s.scored_at) b ON b.entity_key = l.entity_key
              JOIN health_score_internal.score_rows r
                ON r.model = l.model AND r.entity_key = l.entity_key AND r.scored_at = l.scored_at
             WHERE l.model = alerts.model
               AND (l.band_rank < b.band_rank OR b.score - l.score >= alerts.min_drop)
             ORDER BY l.score - b.score, l.entity_key;
            RETURN;
        END IF;
        RETURN QUERY
        -- Each entity's latest snapshot is its current state; its baseline, two probes of the
        -- history's primary key; the components are read back only for the entities that
        -- raise an alert.
        WITH pairs AS (
            SELECT l.entity_key, b.scored_at AS b_at, l.scored_at AS l_at, b.score AS b_score, l.score AS l_score,
                   b.band AS b_band, l.band AS l_band, b.band_rank AS b_rank, l.band_rank AS l_rank,
                   b.model_version AS b_version, l.model_version AS l_version
              FROM health_score_internal.current_state l
              -- the last snapshot at or before (latest - since)
              LEFT JOIN LATERAL (
                  SELECT s.scored_at, s.score, s.band, s.band_rank, s.model_version FROM health_score_internal.score_rows s
                   WHERE s.model = l.model AND s.entity_key = l.entity_key AND s.scored_at <= l.scored_at - alerts.since
                   ORDER BY s.scored_at DESC LIMIT 1) before_window ON true
              -- else the earliest one after it and before the latest (looked up only then)
              LEFT JOIN LATERAL (
                  SELECT s.scored_at, s.score, s.band, s.band_rank, s.model_version FROM health_score_internal.score_rows s
                   WHERE before_window.scored_at IS NULL
                     AND s.model = l.model AND s.entity_key = l.entity_key AND s.scored_at < l.scored_at
                   ORDER BY s.scored_at LIMIT 1) in_window ON true
              CROSS JOIN LATERAL (
                  SELECT before_window.* WHERE before_window.scored_at IS NOT NULL
                  UNION ALL
                  SELECT in_window.* WHERE in_window.scored_at IS NOT NULL) b
             WHERE l.model = alerts.model
               AND (l.band_rank < b.band_rank OR b.score - l.score >= alerts.min_drop)
        )
        SELECT p.entity_key, p.b_at, p.b_score, p.b_band, p.l_at, p.l_score, p.l_band, p.l_score - p.b_score,
               CASE WHEN p.l_rank < p.b_rank THEN 'worsened' WHEN p.l_rank > p.b_rank THEN 'improved'
                    WHEN p.l_rank = p.b_rank THEN 'same' END,
               (SELECT health_score_internal._drivers(alerts.model, p.b_version, sb.components, p.l_version, sl.components, true)
                  FROM health_score.scores sb, health_score.scores sl
                 WHERE sb.model = alerts.model AND sb.entity_key = p.entity_key AND sb.scored_at = p.b_at
                   AND sl.model = alerts.model AND sl.entity_key = p.entity_key AND sl.scored_at = p.l_at)
          FROM pairs p
         ORDER BY p.l_score - p.b_score, p.entity_key;
    EXCEPTION WHEN datetime_field_overflow THEN
        RAISE EXCEPTION 'alerts: a latest snapshot time minus since (%) is before the earliest time PostgreSQL represents', alerts.since
            USING ERRCODE = '22023', HINT = 'compare over days, months or years, such as interval ''30 days''';
    END;
END
$$;
COMMENT ON FUNCTION health_score.alerts(text, double precision, interval) IS
    'Entities whose band fell, or whose score fell by at least min_drop, from their last snapshot at or before (latest - since) (or their earliest inside that window) to their latest; with the drivers of the change, biggest drops first';

GRANT SELECT ON health_score.latest, health_score_internal.current_state TO health_score_reader;
-- whoever changes the history keeps the current state with their own rights
GRANT INSERT, UPDATE, DELETE ON health_score_internal.current_state TO health_score_admin;


-- Users' own views over the table health_score.scores (and views over those) would stop the
-- table's drop below: each is saved here (definition, options, owner, privileges, comments),
-- dropped, and created again over the view that replaces the table, as the user's. Whatever
-- else depends on the table (a materialized view, a function's SQL body, a trigger or rule
-- on such a view) is not rebuilt: the update stops, naming it, and changes nothing.
DO $save_users_views$
DECLARE
    table_oid oid := 'health_score.scores'::regclass;
    saved jsonb;
    names text;
    path text := current_setting('search_path');
BEGIN
    -- names in the saved definitions fully qualified, as they are created again below
    PERFORM set_config('search_path', 'pg_catalog', true);
    WITH RECURSIVE dependent(oid, depth) AS (
        SELECT w.ev_class, 1 FROM pg_depend d JOIN pg_rewrite w ON w.oid = d.objid
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = table_oid
           AND w.ev_class <> table_oid
        UNION
        SELECT w.ev_class, v.depth + 1 FROM dependent v
          JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = v.oid AND d.classid = 'pg_rewrite'::regclass
          JOIN pg_rewrite w ON w.oid = d.objid AND w.ev_class <> v.oid
    ), users AS (
        SELECT v.oid, max(v.depth) AS depth FROM dependent v
         WHERE NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = v.oid
                              AND e.refclassid = 'pg_extension'::regclass AND e.deptype = 'e')
         GROUP BY v.oid
    )
    SELECT string_agg(c.oid::regclass::text, ', ' ORDER BY c.oid::regclass::text)
               FILTER (WHERE c.relkind <> 'v' OR EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid)
                          OR EXISTS (SELECT FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename <> '_RETURN')),
           jsonb_agg(jsonb_build_object(
               'name', c.oid::regclass::text, 'depth', u.depth, 'definition', pg_get_viewdef(c.oid),
               'options', c.reloptions, 'owner', c.relowner::regrole::text,
               'grants', (SELECT jsonb_agg(jsonb_build_array(a.privilege_type, a.grantee, a.is_grantable))
                            FROM aclexplode(c.relacl) a WHERE a.grantee <> c.relowner),
               'comment', obj_description(c.oid, 'pg_class'),
               'column_comments', (SELECT jsonb_object_agg(a.attname, col_description(c.oid, a.attnum))
                                     FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                                      AND col_description(c.oid, a.attnum) IS NOT NULL)))
      INTO names, saved
      FROM users u JOIN pg_class c ON c.oid = u.oid;
    IF names IS NOT NULL THEN
        RAISE EXCEPTION 'health_score 0.3.0 replaces the table health_score.scores by a view, and % cannot be moved over to it', names
            USING ERRCODE = '2BP01',
                  HINT = 'drop them, run ALTER EXTENSION health_score UPDATE, and create them again (plain views over health_score.scores are moved over by the update itself)';
    END IF;
    IF saved IS NOT NULL THEN
        EXECUTE 'DROP VIEW ' || (SELECT string_agg(v ->> 'name', ', ') FROM jsonb_array_elements(saved) v);
        RAISE NOTICE 'health_score: views over health_score.scores are re-created over the new view: %',
            (SELECT string_agg(v ->> 'name', ', ') FROM jsonb_array_elements(saved) v);
    END IF;
    PERFORM set_config('health_score.upgrade_users_views', coalesce(saved, '[]')::text, true);
    -- and the table's privileges granted to other roles than the extension's own
    PERFORM set_config('health_score.upgrade_scores_grants', coalesce(
        (SELECT jsonb_agg(jsonb_build_array(a.privilege_type, a.grantee, a.is_grantable))
           FROM pg_class c, aclexplode(c.relacl) a
          WHERE c.oid = table_oid AND a.grantee <> c.relowner
            AND a.grantee NOT IN (SELECT r.oid FROM pg_roles r WHERE r.rolname IN ('health_score_reader', 'health_score_admin'))),
        '[]')::text, true);
    PERFORM set_config('search_path', path, true);
END
$save_users_views$;

DROP VIEW health_score.history;
ALTER EXTENSION health_score DROP TABLE health_score.scores;
DROP TABLE health_score.scores;

-- The view every reader and writer of snapshots uses: the columns and meaning of the table it
-- replaced in 0.3.0, the components read back from the stored record.
CREATE VIEW health_score.scores AS
SELECT r.model, r.model_version, r.entity_key, r.scored_at, r.score, r.band, r.band_rank, r.coverage, r.segment,
       coalesce(r.components, health_score_internal._record_components(r.model || '@' || r.model_version, r.record))
           AS components,
       r.inputs
  FROM health_score_internal.score_rows r;
COMMENT ON VIEW health_score.scores IS
    'Score snapshots written by health_score.snapshot (scheduled with health_score.schedule): one row per model, entity and time; INSERT, UPDATE and DELETE work as on a table. Stored compactly in health_score_internal.score_rows (kept by pg_dump).';
COMMENT ON COLUMN health_score.scores.model IS 'Model name';
COMMENT ON COLUMN health_score.scores.model_version IS 'The model version that scored this row';
COMMENT ON COLUMN health_score.scores.entity_key IS 'The entity (account) key, as text';
COMMENT ON COLUMN health_score.scores.scored_at IS 'The snapshot time';
COMMENT ON COLUMN health_score.scores.score IS 'The score, NULL when nothing was counted or coverage was below min_coverage';
COMMENT ON COLUMN health_score.scores.band IS 'The band of the score';
COMMENT ON COLUMN health_score.scores.band_rank IS 'The band''s position in the bands list applied (0 = the worst)';
COMMENT ON COLUMN health_score.scores.coverage IS 'Share of the model covered by present, valid inputs';
COMMENT ON COLUMN health_score.scores.segment IS 'The segment override applied, NULL for the base model';
COMMENT ON COLUMN health_score.scores.components IS
    'Per component (groups too): {"points": contribution to the score, "n": normalized value}, as health_score.explain gives them';
COMMENT ON COLUMN health_score.scores.inputs IS
    'The raw inputs the model version read, as text ({"input key": "value", ...}; null when missing), for health_score.rescore; NULL when snapshotted with keep_inputs => false';

-- Changes by hand through the view, row by row, as the table took them (a row written by hand
-- keeps its components as given). The current state follows through the triggers of
-- health_score_internal.score_rows (latest.sql).
CREATE FUNCTION health_score_internal._write_scores() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    missing text;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        missing := CASE WHEN NEW.model IS NULL THEN 'model' WHEN NEW.model_version IS NULL THEN 'model_version'
                        WHEN NEW.entity_key IS NULL THEN 'entity_key' WHEN NEW.scored_at IS NULL THEN 'scored_at'
                        WHEN NEW.coverage IS NULL THEN 'coverage' WHEN NEW.components IS NULL THEN 'components' END;
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'null value in column "%" of health_score.scores', missing USING ERRCODE = '23502',
                HINT = 'health_score.scores takes the columns health_score.snapshot writes; only score, band, band_rank, segment and inputs may be NULL';
        END IF;
        PERFORM health_score_internal._ensure_partition(NEW.model, NEW.scored_at);
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- the current state of this entity alone, not the whole of it as after an INSERT into
        -- the table (its trigger stands aside while this says so)
        PERFORM set_config('health_score.current_state_kept_by', 'snapshot', true);
        INSERT INTO health_score_internal.score_rows
               (model, model_version, entity_key, scored_at, score, band, band_rank, coverage, segment, components, inputs)
        VALUES (NEW.model, NEW.model_version, NEW.entity_key, NEW.scored_at, NEW.score, NEW.band, NEW.band_rank,
                NEW.coverage, NEW.segment, NEW.components, NEW.inputs);
        PERFORM set_config('health_score.current_state_kept_by', '', true);
        EXECUTE health_score_internal._current_state_sql(
            format('SELECT %L::text COLLATE "C" AS model, %L::text COLLATE "C" AS entity_key', NEW.model, NEW.entity_key));
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        -- the stored record stays while it still describes the components
        UPDATE health_score_internal.score_rows r
           SET model = NEW.model, model_version = NEW.model_version, entity_key = NEW.entity_key,
               scored_at = NEW.scored_at, score = NEW.score, band = NEW.band, band_rank = NEW.band_rank,
               coverage = NEW.coverage, segment = NEW.segment, inputs = NEW.inputs,
               record = CASE WHEN r.record IS NOT NULL AND NEW.components = OLD.components AND NEW.model = OLD.model
                                  AND NEW.model_version = OLD.model_version THEN r.record END,
               components = CASE WHEN r.record IS NOT NULL AND NEW.components = OLD.components AND NEW.model = OLD.model
                                      AND NEW.model_version = OLD.model_version THEN NULL ELSE NEW.components END
         WHERE r.model = OLD.model AND r.entity_key = OLD.entity_key AND r.scored_at = OLD.scored_at;
        RETURN NEW;
    END IF;
    DELETE FROM health_score_internal.score_rows r
     WHERE r.model = OLD.model AND r.entity_key = OLD.entity_key AND r.scored_at = OLD.scored_at;
    RETURN OLD;
END
$$;
COMMENT ON FUNCTION health_score_internal._write_scores() IS
    'Trigger of health_score.scores: INSERT, UPDATE and DELETE on the view change health_score_internal.score_rows';
CREATE TRIGGER write_scores INSTEAD OF INSERT OR UPDATE OR DELETE ON health_score.scores
    FOR EACH ROW EXECUTE FUNCTION health_score_internal._write_scores();
-- PostgreSQL calls it itself
REVOKE EXECUTE ON FUNCTION health_score_internal._write_scores() FROM PUBLIC;

GRANT SELECT ON health_score.scores, health_score_internal.score_rows, health_score.retention TO health_score_reader;
GRANT INSERT, UPDATE, DELETE ON health_score.scores, health_score_internal.score_rows TO health_score_admin;
-- partitions are the owner's to create (the function above) and drop (apply_retention)
REVOKE EXECUTE ON FUNCTION health_score_internal._ensure_partition(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score_internal._ensure_partition(text, timestamptz) TO health_score_admin;

CREATE VIEW health_score.history AS
SELECT s.model, s.entity_key, s.scored_at, s.model_version, s.score, s.band, s.band_rank, s.coverage, s.segment,
       s.components, lag(s.scored_at) OVER w AS previous_at, lag(s.score) OVER w AS previous_score,
       s.score - lag(s.score) OVER w AS delta
  FROM health_score.scores s
WINDOW w AS (PARTITION BY s.model, s.entity_key ORDER BY s.scored_at);
COMMENT ON VIEW health_score.history IS 'Every snapshot with its change from the entity''s previous one';
COMMENT ON COLUMN health_score.history.model IS 'Model name';
COMMENT ON COLUMN health_score.history.entity_key IS 'The entity (account) key';
COMMENT ON COLUMN health_score.history.scored_at IS 'Snapshot time';
COMMENT ON COLUMN health_score.history.model_version IS 'The model version that scored it';
COMMENT ON COLUMN health_score.history.score IS 'Score';
COMMENT ON COLUMN health_score.history.band IS 'Band';
COMMENT ON COLUMN health_score.history.band_rank IS 'Band rank (0 = the worst)';
COMMENT ON COLUMN health_score.history.coverage IS 'Coverage';
COMMENT ON COLUMN health_score.history.segment IS 'Segment override applied';
COMMENT ON COLUMN health_score.history.components IS 'Per component: points and n';
COMMENT ON COLUMN health_score.history.previous_at IS 'Time of the entity''s previous snapshot';
COMMENT ON COLUMN health_score.history.previous_score IS 'Score of the entity''s previous snapshot';
COMMENT ON COLUMN health_score.history.delta IS 'score - previous_score';
GRANT SELECT ON health_score.history TO health_score_reader;

-- The users' views saved above, created again over the view, each as it was and its owner's
DO $restore_users_views$
DECLARE
    v jsonb;
    g jsonb;
    c record;
    path text := current_setting('search_path');
BEGIN
    PERFORM set_config('search_path', 'pg_catalog', true);
    -- privileges on the table granted to other roles: on the view, and on what it and the
    -- functions that read the history read with the caller's rights (they stay the user's:
    -- the end of this script takes them out of pg_init_privs)
    FOR g IN SELECT e FROM jsonb_array_elements(current_setting('health_score.upgrade_scores_grants')::jsonb) e
              WHERE e ->> 0 IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE') LOOP
        FOR c IN SELECT r.relation FROM (VALUES ('health_score.scores'), ('health_score_internal.score_rows'),
                                                ('health_score_internal.current_state')) r(relation) LOOP
            EXECUTE format('GRANT %s ON %s TO %s%s', g ->> 0, c.relation,
                           CASE WHEN (g ->> 1)::oid = 0 THEN 'PUBLIC' ELSE ((g ->> 1)::oid::regrole)::text END,
                           CASE WHEN (g ->> 2)::boolean THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
    END LOOP;
    FOR v IN SELECT e FROM jsonb_array_elements(current_setting('health_score.upgrade_users_views')::jsonb) e
              ORDER BY (e ->> 'depth')::int LOOP
        EXECUTE format('CREATE VIEW %s%s AS %s', v ->> 'name',
                       (SELECT ' WITH (' || string_agg(o, ', ') || ')'
                          FROM jsonb_array_elements_text(nullif(v -> 'options', 'null')) o),
                       rtrim(v ->> 'definition', ';'));
        EXECUTE format('ALTER VIEW %s OWNER TO %s', v ->> 'name', v ->> 'owner');
        FOR g IN SELECT e FROM jsonb_array_elements(coalesce(nullif(v -> 'grants', 'null'), '[]')) e LOOP
            EXECUTE format('GRANT %s ON %s TO %s%s', g ->> 0, v ->> 'name',
                           CASE WHEN (g ->> 1)::oid = 0 THEN 'PUBLIC' ELSE ((g ->> 1)::oid::regrole)::text END,
                           CASE WHEN (g ->> 2)::boolean THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        IF v ->> 'comment' IS NOT NULL THEN
            EXECUTE format('COMMENT ON VIEW %s IS %L', v ->> 'name', v ->> 'comment');
        END IF;
        FOR c IN SELECT * FROM jsonb_each_text(coalesce(nullif(v -> 'column_comments', 'null'), '{}')) LOOP
            EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', v ->> 'name', c.key, c.value);
        END LOOP;
        -- created by this script it would be a member of the extension: it is the user's (and
        -- so are its privileges, which leaving the extension takes out of pg_init_privs)
        EXECUTE format('ALTER EXTENSION health_score DROP VIEW %s', v ->> 'name');
    END LOOP;
    PERFORM set_config('health_score.upgrade_users_views', '', true);
    PERFORM set_config('health_score.upgrade_scores_grants', '', true);
    PERFORM set_config('search_path', path, true);
END
$restore_users_views$;

CREATE FUNCTION health_score.set_retention(model text, keep interval) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM health_score_internal._require_coordinator('set_retention');
    PERFORM health_score_internal._require_model_name('set_retention', set_retention.model);
    IF set_retention.keep < interval '1 day' THEN
        RAISE EXCEPTION 'set_retention: keep must be at least a day, not %', set_retention.keep USING ERRCODE = '22023',
            HINT = 'how long snapshots are kept, such as interval ''400 days''; NULL keeps them for ever';
    END IF;
    PERFORM health_score_internal._set_retention(set_retention.model, true, set_retention.keep, NULL);
END
$$;
COMMENT ON FUNCTION health_score.set_retention(text, interval) IS
    'How long a model''s snapshots are kept (at least a day; NULL: for ever): health_score.apply_retention drops the partitions whose every snapshot is older';

CREATE FUNCTION health_score.set_partitioning(model text, partition_by text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM health_score_internal._require_coordinator('set_partitioning');
    PERFORM health_score_internal._require_model_name('set_partitioning', set_partitioning.model);
    IF set_partitioning.partition_by IS NULL OR set_partitioning.partition_by NOT IN ('day', 'week', 'month', 'quarter', 'year') THEN
        RAISE EXCEPTION 'set_partitioning: partition_by must be day, week, month, quarter or year, not %',
            coalesce(quote_literal(left(set_partitioning.partition_by, 200)), 'NULL') USING ERRCODE = '22023',
            HINT = 'a month (the default) suits nightly snapshots; retention drops whole partitions, so a shorter period drops closer to the limit';
    END IF;
    PERFORM health_score_internal._set_retention(set_partitioning.model, false, NULL, set_partitioning.partition_by);
END
$$;
COMMENT ON FUNCTION health_score.set_partitioning(text, text) IS
    'The period (UTC) of a model''s new history partitions: day, week, month (the default), quarter or year; existing partitions keep theirs';

-- SECURITY DEFINER (docs/security.md): health_score.retention is the owner's to write; the
-- public functions above validate, and only admins may call either.
CREATE FUNCTION health_score_internal._set_retention(model text, set_keep boolean, keep interval, partition_by text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO health_score.retention AS r (model, keep, partition_by, set_by)
    VALUES (_set_retention.model, _set_retention.keep, coalesce(_set_retention.partition_by, 'month'), session_user)
    ON CONFLICT ON CONSTRAINT retention_pkey DO UPDATE
       SET keep = CASE WHEN _set_retention.set_keep THEN excluded.keep ELSE r.keep END,
           partition_by = coalesce(_set_retention.partition_by, r.partition_by),
           set_at = excluded.set_at, set_by = excluded.set_by;
END
$$;
COMMENT ON FUNCTION health_score_internal._set_retention(text, boolean, interval, text) IS
    'Writes a model''s row of health_score.retention for set_retention and set_partitioning';

-- SECURITY DEFINER (docs/security.md): partitions are the owner's to drop. Runs under the
-- models' snapshot locks, so that a snapshot of a model waits for it (or it for the
-- snapshot); it reads and writes only the extension's tables.
CREATE FUNCTION health_score.apply_retention(model text DEFAULT NULL, at timestamptz DEFAULT now())
    RETURNS TABLE (dropped_model text, from_at timestamptz, to_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    policy record;
    p record;
    kept_from timestamptz;
BEGIN
    PERFORM health_score_internal._require_coordinator('apply_retention');
    IF apply_retention.at IS NULL OR NOT isfinite(apply_retention.at) THEN
        RAISE EXCEPTION 'apply_retention: at must be a finite time' USING ERRCODE = '22023',
            HINT = 'leave it out for now()';
    END IF;
    IF apply_retention.model IS NOT NULL THEN
        PERFORM health_score_internal._require_model_name('apply_retention', apply_retention.model);
    END IF;
    -- Locks in the order snapshot takes them, so that neither waits for the other in a cycle:
    -- each model's snapshot lock (all of them first, in one order), then the catalog of
    -- partitions (as _ensure_partition), then the partitioned table (by DROP TABLE).
    PERFORM health_score_internal._lock('snapshot', r.model) FROM health_score.retention r
      WHERE r.keep IS NOT NULL AND (apply_retention.model IS NULL OR r.model = apply_retention.model)
      ORDER BY r.model;
    LOCK TABLE health_score_internal.partitions IN SHARE ROW EXCLUSIVE MODE;
    FOR policy IN SELECT r.model, r.keep FROM health_score.retention r
                   WHERE r.keep IS NOT NULL AND (apply_retention.model IS NULL OR r.model = apply_retention.model)
                   ORDER BY r.model LOOP
        kept_from := NULL;
        FOR p IN SELECT q.partition_name, q.from_at, q.to_at FROM health_score_internal.partitions q
                  WHERE q.model = policy.model AND q.to_at <= apply_retention.at - policy.keep ORDER BY q.from_at LOOP
            EXECUTE format('DROP TABLE health_score_internal.%I', p.partition_name);
            DELETE FROM health_score_internal.partitions q WHERE q.partition_name = p.partition_name;
            kept_from := greatest(kept_from, p.to_at);
            dropped_model := policy.model; from_at := p.from_at; to_at := p.to_at;
            RETURN NEXT;
        END LOOP;
        CONTINUE WHEN kept_from IS NULL;
        -- every snapshot of the model before kept_from is gone: so are the run records, the
        -- current state of entities with none after, and the previous snapshot of the others
        -- when it was one of them
        DELETE FROM health_score.snapshots s WHERE s.model = policy.model AND s.scored_at < kept_from;
        DELETE FROM health_score_internal.current_state c WHERE c.model = policy.model AND c.scored_at < kept_from;
        UPDATE health_score_internal.current_state c
           SET previous_at = NULL, previous_score = NULL, previous_band = NULL, previous_band_rank = NULL,
               previous_model_band = NULL
         WHERE c.model = policy.model AND c.previous_at < kept_from;
    END LOOP;
END
$$;
COMMENT ON FUNCTION health_score.apply_retention(text, timestamptz) IS
    'Drops, for one model or every model with a retention (health_score.set_retention), the history partitions whose every snapshot is older than at - keep, with their run records; returns the partitions dropped. Schedule it with pg_cron';

-- A history partition's rows (as last counted) and bytes: on a Citus cluster its shards', summed
-- (the coordinator's table is an empty shell; health_score.distribute)
CREATE FUNCTION health_score_internal._partition_size(partition regclass, OUT estimated_rows bigint, OUT bytes bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT health_score_internal._is_citus_table(_partition_size.partition) THEN
        SELECT c.reltuples::bigint, pg_total_relation_size(c.oid) INTO estimated_rows, bytes
          FROM pg_class c WHERE c.oid = _partition_size.partition;
        RETURN;
    END IF;
    EXECUTE 'SELECT pg_catalog.citus_total_relation_size($1)' INTO bytes USING _partition_size.partition;
    -- each shard's count, as its worker last took it (-1 when none ever did)
    EXECUTE $q$SELECT CASE WHEN bool_and(r.result::float8 < 0) THEN -1 ELSE sum(greatest(r.result::float8, 0)) END::bigint
                 FROM pg_catalog.run_command_on_shards($1, 'SELECT reltuples FROM pg_catalog.pg_class WHERE oid = ''%s''::pg_catalog.regclass') r
                WHERE r.success$q$
       INTO estimated_rows USING _partition_size.partition;
END
$$;
COMMENT ON FUNCTION health_score_internal._partition_size(regclass) IS
    'A history partition''s estimated rows and bytes (indexes included), its shards'' summed on a Citus cluster';

CREATE VIEW health_score.history_partitions AS
SELECT p.model, p.from_at, p.to_at, p.partition_name, s.estimated_rows, s.bytes, p.to_at + r.keep AS drop_after
  FROM health_score_internal.partitions p
  LEFT JOIN pg_catalog.pg_class c
         ON c.relname = p.partition_name AND c.relnamespace = 'health_score_internal'::pg_catalog.regnamespace
  LEFT JOIN LATERAL health_score_internal._partition_size(c.oid::pg_catalog.regclass) s ON true
  LEFT JOIN health_score.retention r ON r.model = p.model;
COMMENT ON VIEW health_score.history_partitions IS 'The partitions of the snapshot history: per model and period, its size and when retention drops it';
COMMENT ON COLUMN health_score.history_partitions.model IS 'Model name';
COMMENT ON COLUMN health_score.history_partitions.from_at IS 'The partition holds the snapshots at or after this time';
COMMENT ON COLUMN health_score.history_partitions.to_at IS '... and before this time';
COMMENT ON COLUMN health_score.history_partitions.partition_name IS 'The table in schema health_score_internal';
COMMENT ON COLUMN health_score.history_partitions.estimated_rows IS 'Rows, as last counted by VACUUM or ANALYZE (-1: never); on a Citus cluster, summed over its shards';
COMMENT ON COLUMN health_score.history_partitions.bytes IS 'Its size on disk, indexes included (on a Citus cluster, its shards'' on every worker)';
COMMENT ON COLUMN health_score.history_partitions.drop_after IS 'health_score.apply_retention drops it from this time on; NULL without a retention';

GRANT SELECT ON health_score.history_partitions, health_score_internal.partitions TO health_score_reader;
REVOKE EXECUTE ON FUNCTION health_score.set_retention(text, interval), health_score.set_partitioning(text, text),
    health_score_internal._set_retention(text, boolean, interval, text), health_score.apply_retention(text, timestamptz)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score.set_retention(text, interval), health_score.set_partitioning(text, text),
    health_score_internal._set_retention(text, boolean, interval, text), health_score.apply_retention(text, timestamptz)
  TO health_score_admin;

-------------------------------------------------------------------------------------------
-- Issue 18, part 2: band hysteresis
-------------------------------------------------------------------------------------------
-- band(model, input, previous_band) for a caller who knows the previous band; snapshot stores
-- the band with hysteresis from each entity's previous snapshot (health_score.snapshot below).
CREATE FUNCTION health_score.band(model jsonb, input jsonb, previous_band text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_after_jj' LANGUAGE C IMMUTABLE PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.band(model text, input jsonb, previous_band text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_after_nj' LANGUAGE C STABLE PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.band(model jsonb, input record, previous_band text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_after_jr' LANGUAGE C STABLE PARALLEL SAFE COST 25;
CREATE FUNCTION health_score.band(model text, input record, previous_band text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_after_nr' LANGUAGE C STABLE PARALLEL SAFE COST 25;
COMMENT ON FUNCTION health_score.band(jsonb, jsonb, text) IS 'Risk band with the model''s band_hysteresis: previous_band is kept while the score stays within the margin of its bounds; NULL previous_band gives the plain band';
COMMENT ON FUNCTION health_score.band(text, jsonb, text) IS 'Risk band with band_hysteresis from a previous band, under a registered model';
COMMENT ON FUNCTION health_score.band(jsonb, record, text) IS 'Risk band of a table row with band_hysteresis from a previous band, under an inline model';
COMMENT ON FUNCTION health_score.band(text, record, text) IS 'Risk band of a table row with band_hysteresis from a previous band, under a registered model';

-- The band a snapshot stores under a model with band hysteresis: kept from the entity's
-- previous snapshot's band while the score stays within the margin (the spec's rule).
CREATE TYPE health_score_internal._band AS (
    band       text,
    band_rank  integer
);
COMMENT ON TYPE health_score_internal._band IS
    'A band and its rank (0 = the worst), as health_score_internal._band_after gives them';
CREATE FUNCTION health_score_internal._band_after(model text, segment text, score double precision, previous_band text)
    RETURNS health_score_internal._band
    AS 'MODULE_PATHNAME', 'hs_band_after_stored' LANGUAGE C STABLE PARALLEL SAFE COST 5;
COMMENT ON FUNCTION health_score_internal._band_after(text, text, double precision, text) IS
    'The band of a score of a model version (''name@3'') under the segment override named (NULL: none), with the model''s band hysteresis from the previous band (NULL: the plain band); NULL for a NULL score';
REVOKE EXECUTE ON FUNCTION health_score_internal._band_after(text, text, double precision, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score_internal._band_after(text, text, double precision, text) TO health_score_admin;

-------------------------------------------------------------------------------------------
-- Issue 18, part 4: parent accounts (the parent_health aggregate, sql/parent.sql)
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


-------------------------------------------------------------------------------------------
-- Issue 18, part 3: the alert queue (sql/alert_queue.sql; snapshot, above, raises the events)
-------------------------------------------------------------------------------------------

CREATE TABLE health_score.alert_rules (
    model      text        NOT NULL,
    rule       text        NOT NULL CHECK (rule ~ '^[a-z][a-z0-9_]{0,62}$'),
    kind       text        NOT NULL CHECK (kind IN ('band_worsened', 'score_drop', 'coverage_below')),
    points     double precision CHECK (points > 0 AND points < 'Infinity'),
    within     interval    CHECK (within > interval '0'),
    threshold  double precision CHECK (threshold > 0 AND threshold <= 1),
    set_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    set_by     name        NOT NULL DEFAULT SESSION_USER,
    PRIMARY KEY (model, rule),
    CHECK ((kind = 'score_drop') = (points IS NOT NULL)),
    CHECK (kind = 'score_drop' OR within IS NULL),
    CHECK ((kind = 'coverage_below') = (threshold IS NOT NULL))
);
COMMENT ON TABLE health_score.alert_rules IS
    'Alert rules per model, evaluated by every snapshot of the model as it writes (health_score.set_alert_rule); kept by pg_dump';
COMMENT ON COLUMN health_score.alert_rules.model IS 'Model name';
COMMENT ON COLUMN health_score.alert_rules.rule IS 'The rule''s name, unique per model';
COMMENT ON COLUMN health_score.alert_rules.kind IS 'band_worsened: the band fell from the previous snapshot; score_drop: the score fell by at least points from the previous snapshot (taken at most within before); coverage_below: coverage under threshold';
COMMENT ON COLUMN health_score.alert_rules.points IS 'score_drop: the drop in points that fires the rule';
COMMENT ON COLUMN health_score.alert_rules.within IS 'score_drop: the previous snapshot counts only when taken at most this long before (NULL: whenever)';
COMMENT ON COLUMN health_score.alert_rules.threshold IS 'coverage_below: the coverage under which the rule fires';
COMMENT ON COLUMN health_score.alert_rules.set_at IS 'When the rule was last set';
COMMENT ON COLUMN health_score.alert_rules.set_by IS 'Who set it';
SELECT pg_catalog.pg_extension_config_dump('health_score.alert_rules', '');

CREATE SEQUENCE health_score.alert_events_id_seq;
COMMENT ON SEQUENCE health_score.alert_events_id_seq IS 'Numbers the alert events (kept by pg_dump)';
SELECT pg_catalog.pg_extension_config_dump('health_score.alert_events_id_seq', '');
CREATE TABLE health_score.alert_events (
    id              bigint      PRIMARY KEY DEFAULT pg_catalog.nextval('health_score.alert_events_id_seq'::pg_catalog.regclass),
    model           text        NOT NULL,
    rule            text        NOT NULL,
    entity_key      text        NOT NULL,
    status          text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'claimed', 'acknowledged', 'resolved')),
    raised_at       timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    scored_at       timestamptz NOT NULL,
    baseline_at     timestamptz,
    score           double precision,
    baseline_score  double precision,
    band            text,
    baseline_band   text,
    baseline_rank   integer,
    coverage        double precision,
    fired           integer     NOT NULL DEFAULT 1,
    claimed_by      text,
    claimed_at      timestamptz,
    lease_until     timestamptz,
    acknowledged_by text,
    acknowledged_at timestamptz,
    resolved_by     text,
    resolved_at     timestamptz,
    note            text
);
ALTER SEQUENCE health_score.alert_events_id_seq OWNED BY health_score.alert_events.id;
-- one unresolved event per model, rule and entity: a repeat updates it
CREATE UNIQUE INDEX alert_events_unresolved ON health_score.alert_events (model, rule, entity_key) WHERE status <> 'resolved';
-- what claim_alert_events looks for
CREATE INDEX alert_events_claimable ON health_score.alert_events (id) WHERE status IN ('open', 'claimed');
COMMENT ON TABLE health_score.alert_events IS
    'The alert queue: events raised by snapshots under the rules of health_score.alert_rules, one unresolved per model, rule and entity; workers take them with health_score.claim_alert_events; kept by pg_dump';
COMMENT ON COLUMN health_score.alert_events.id IS 'The event''s number, in the order raised';
COMMENT ON COLUMN health_score.alert_events.model IS 'Model name';
COMMENT ON COLUMN health_score.alert_events.rule IS 'The rule that raised it';
COMMENT ON COLUMN health_score.alert_events.entity_key IS 'The entity';
COMMENT ON COLUMN health_score.alert_events.status IS 'open (raised), claimed (a worker holds it until lease_until), acknowledged (delivered, or seen by a person), resolved (the entity recovered, or someone resolved it)';
COMMENT ON COLUMN health_score.alert_events.raised_at IS 'When the event was first raised';
COMMENT ON COLUMN health_score.alert_events.scored_at IS 'The snapshot that last fired the rule';
COMMENT ON COLUMN health_score.alert_events.baseline_at IS 'The snapshot it was compared with (the entity''s previous one when the event was raised)';
COMMENT ON COLUMN health_score.alert_events.score IS 'The score in the snapshot that last fired the rule';
COMMENT ON COLUMN health_score.alert_events.baseline_score IS 'The score in the baseline snapshot';
COMMENT ON COLUMN health_score.alert_events.band IS 'The band in the snapshot that last fired the rule';
COMMENT ON COLUMN health_score.alert_events.baseline_band IS 'The band in the baseline snapshot';
COMMENT ON COLUMN health_score.alert_events.baseline_rank IS 'That band''s rank (0 = the worst)';
COMMENT ON COLUMN health_score.alert_events.coverage IS 'The coverage in the snapshot that last fired the rule';
COMMENT ON COLUMN health_score.alert_events.fired IS 'How many snapshots fired the rule while the event was unresolved';
COMMENT ON COLUMN health_score.alert_events.claimed_by IS 'The worker that claimed it last';
COMMENT ON COLUMN health_score.alert_events.claimed_at IS 'When';
COMMENT ON COLUMN health_score.alert_events.lease_until IS 'The claim lapses then: another worker may take the event';
COMMENT ON COLUMN health_score.alert_events.acknowledged_by IS 'The worker that delivered it, or the person who acknowledged it';
COMMENT ON COLUMN health_score.alert_events.acknowledged_at IS 'When';
COMMENT ON COLUMN health_score.alert_events.resolved_by IS '''snapshot'' when the entity recovered, else who resolved it';
COMMENT ON COLUMN health_score.alert_events.resolved_at IS 'When';
COMMENT ON COLUMN health_score.alert_events.note IS 'A note given when acknowledging or resolving by hand';
SELECT pg_catalog.pg_extension_config_dump('health_score.alert_events', '');

CREATE FUNCTION health_score.set_alert_rule(model text, rule text, kind text, points double precision DEFAULT NULL,
                                            within interval DEFAULT NULL, threshold double precision DEFAULT NULL)
    RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM health_score_internal._require_coordinator('set_alert_rule');
    PERFORM health_score_internal._require_model_name('set_alert_rule', set_alert_rule.model);
    IF set_alert_rule.rule IS NULL OR set_alert_rule.rule !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'set_alert_rule: rule must be a name of lowercase letters, digits and _ (not %)',
            coalesce(quote_literal(left(set_alert_rule.rule, 200)), 'NULL') USING ERRCODE = '22023',
            HINT = 'name the rule for what it catches, such as ''fell_a_band'' or ''big_drop''';
    END IF;
    IF set_alert_rule.kind IS NULL OR set_alert_rule.kind NOT IN ('band_worsened', 'score_drop', 'coverage_below') THEN
        RAISE EXCEPTION 'set_alert_rule: kind must be band_worsened, score_drop or coverage_below (not %)',
            coalesce(quote_literal(left(set_alert_rule.kind, 200)), 'NULL') USING ERRCODE = '22023',
            HINT = 'band_worsened: the band fell; score_drop: points => N, optionally within => interval; coverage_below: threshold => 0..1';
    END IF;
    IF (set_alert_rule.kind = 'score_drop') <> (set_alert_rule.points IS NOT NULL)
       OR NOT (set_alert_rule.points > 0 AND set_alert_rule.points < 'Infinity') THEN
        RAISE EXCEPTION 'set_alert_rule: points must be given for score_drop only, a finite number above 0 (not %)',
            coalesce(set_alert_rule.points::text, 'NULL') USING ERRCODE = '22023',
            HINT = 'such as health_score.set_alert_rule(''churn'', ''big_drop'', ''score_drop'', points => 10, within => ''7 days'')';
    END IF;
    IF set_alert_rule.within IS NOT NULL AND (set_alert_rule.kind <> 'score_drop' OR set_alert_rule.within <= interval '0') THEN
        RAISE EXCEPTION 'set_alert_rule: within must be given for score_drop only, a positive interval (not %)', set_alert_rule.within
            USING ERRCODE = '22023', HINT = 'how recent the previous snapshot must be for a drop from it to count, such as ''7 days''';
    END IF;
    IF (set_alert_rule.kind = 'coverage_below') <> (set_alert_rule.threshold IS NOT NULL)
       OR NOT (set_alert_rule.threshold > 0 AND set_alert_rule.threshold <= 1) THEN
        RAISE EXCEPTION 'set_alert_rule: threshold must be given for coverage_below only, above 0 and at most 1 (not %)',
            coalesce(set_alert_rule.threshold::text, 'NULL') USING ERRCODE = '22023',
            HINT = 'such as health_score.set_alert_rule(''churn'', ''thin_data'', ''coverage_below'', threshold => 0.6)';
    END IF;
    INSERT INTO health_score.alert_rules AS r (model, rule, kind, points, within, threshold)
    VALUES (set_alert_rule.model, set_alert_rule.rule, set_alert_rule.kind, set_alert_rule.points,
            set_alert_rule.within, set_alert_rule.threshold)
    ON CONFLICT (model, rule) DO UPDATE
       SET kind = excluded.kind, points = excluded.points, within = excluded.within, threshold = excluded.threshold,
           set_at = excluded.set_at, set_by = excluded.set_by;
END
$$;
COMMENT ON FUNCTION health_score.set_alert_rule(text, text, text, double precision, interval, double precision) IS
    'Sets (or replaces) an alert rule of a model: band_worsened, score_drop (points, optionally within) or coverage_below (threshold); the next snapshot applies it';

CREATE FUNCTION health_score.drop_alert_rule(model text, rule text) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT health_score_internal._require_coordinator('drop_alert_rule');
    WITH gone AS (DELETE FROM health_score.alert_rules r WHERE r.model = drop_alert_rule.model AND r.rule = drop_alert_rule.rule
                  RETURNING 1)
    SELECT EXISTS (SELECT FROM gone)
$$;
COMMENT ON FUNCTION health_score.drop_alert_rule(text, text) IS
    'Removes an alert rule (its events stay, and are no longer resolved automatically); false when there was none';

-- Called by snapshot after it wrote the snapshot of (model, at) and the current state: raises
-- or repeats an event for each entity whose latest snapshot is this one and fires a rule, and
-- resolves the unresolved events of entities that recovered. Runs with the caller's rights.
CREATE FUNCTION health_score_internal._raise_alert_events(model text, at timestamptz) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    raised bigint;
    -- (a value, not a call in the statement: Citus refuses a volatile call in an UPDATE that
    -- reads a distributed table)
    resolved_now timestamptz := clock_timestamp();
BEGIN
    -- recovered: the band is back to the rank before the fall, the score back to the score
    -- before the drop, the coverage back to the threshold. The current state of the entities
    -- with open events is read first, on its own: on a distributed history (docs/scale-out.md)
    -- Citus runs that part on the workers and cannot join the state to the queue's tables
    WITH recovered AS MATERIALIZED (
        SELECT c.entity_key, c.score, c.band_rank, c.coverage
          FROM health_score_internal.current_state c
         WHERE c.model = _raise_alert_events.model AND c.scored_at = _raise_alert_events.at AND c.score IS NOT NULL
           AND c.entity_key IN (SELECT o.entity_key FROM health_score.alert_events o
                                 WHERE o.model = _raise_alert_events.model AND o.status <> 'resolved'))
    UPDATE health_score.alert_events e
       SET status = 'resolved', resolved_by = 'snapshot', resolved_at = resolved_now, lease_until = NULL
      FROM recovered c, health_score.alert_rules r
     WHERE e.model = _raise_alert_events.model AND e.status <> 'resolved'
       AND r.model = e.model AND r.rule = e.rule
       AND c.entity_key = e.entity_key AND _raise_alert_events.at > e.scored_at
       AND CASE r.kind WHEN 'band_worsened' THEN c.band_rank >= e.baseline_rank
                       WHEN 'score_drop' THEN c.score >= e.baseline_score
                       ELSE c.coverage >= r.threshold END;
    WITH fired AS (
        SELECT r.rule, c.entity_key, c.scored_at, c.previous_at, c.score, c.previous_score, c.band, c.previous_band,
               c.previous_band_rank, c.coverage
          FROM health_score.alert_rules r
          JOIN health_score_internal.current_state c ON c.model = r.model AND c.scored_at = _raise_alert_events.at
         WHERE r.model = _raise_alert_events.model
           AND CASE r.kind WHEN 'band_worsened' THEN c.band_rank < c.previous_band_rank
                           WHEN 'score_drop' THEN c.previous_score - c.score >= r.points
                                                  AND (r.within IS NULL OR c.scored_at - c.previous_at <= r.within)
                           ELSE c.coverage < r.threshold END
    ), upserted AS (
        INSERT INTO health_score.alert_events AS e
               (model, rule, entity_key, scored_at, baseline_at, score, baseline_score, band, baseline_band, baseline_rank, coverage)
        SELECT _raise_alert_events.model, f.rule, f.entity_key, f.scored_at, f.previous_at, f.score, f.previous_score,
               f.band, f.previous_band, f.previous_band_rank, f.coverage
          FROM fired f
        ON CONFLICT (model, rule, entity_key) WHERE status <> 'resolved' DO UPDATE
           SET scored_at = excluded.scored_at, score = excluded.score, band = excluded.band, coverage = excluded.coverage,
               fired = e.fired + CASE WHEN excluded.scored_at > e.scored_at THEN 1 ELSE 0 END
        RETURNING (xmax = 0) AS new
    )
    SELECT count(*) FILTER (WHERE new) INTO raised FROM upserted;
    IF raised > 0 THEN
        PERFORM pg_notify('health_score_alert_events',
                          json_build_object('model', _raise_alert_events.model, 'scored_at', _raise_alert_events.at,
                                            'raised', raised)::text);
    END IF;
    RETURN raised;
END
$$;
COMMENT ON FUNCTION health_score_internal._raise_alert_events(text, timestamptz) IS
    'snapshot''s part of the alert queue: evaluates the model''s rules on the entities the snapshot at that time made current, raising or repeating events, and resolves those that recovered; returns the events raised';

CREATE FUNCTION health_score.claim_alert_events(worker text, max_events integer DEFAULT 10, lease interval DEFAULT '5 minutes')
    RETURNS SETOF health_score.alert_events
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM health_score_internal._require_coordinator('claim_alert_events');
    IF claim_alert_events.worker IS NULL OR claim_alert_events.worker = '' THEN
        RAISE EXCEPTION 'claim_alert_events: worker must name the worker' USING ERRCODE = '22023',
            HINT = 'such as health_score.claim_alert_events(''mailer-1'')';
    END IF;
    IF claim_alert_events.max_events IS NULL OR claim_alert_events.max_events < 1 THEN
        RAISE EXCEPTION 'claim_alert_events: max_events must be 1 or more (not %)', coalesce(claim_alert_events.max_events::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'how many events to take at once, such as 10';
    END IF;
    IF claim_alert_events.lease IS NULL OR claim_alert_events.lease <= interval '0' THEN
        RAISE EXCEPTION 'claim_alert_events: lease must be a positive interval (not %)', coalesce(claim_alert_events.lease::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'how long the worker holds the events before they come back, such as ''5 minutes''';
    END IF;
    RETURN QUERY
    UPDATE health_score.alert_events e
       SET status = 'claimed', claimed_by = left(claim_alert_events.worker, 200), claimed_at = clock_timestamp(),
           lease_until = clock_timestamp() + claim_alert_events.lease
      FROM (SELECT c.id FROM health_score.alert_events c
             WHERE c.status = 'open' OR (c.status = 'claimed' AND c.lease_until < clock_timestamp())
             ORDER BY c.id LIMIT claim_alert_events.max_events
             FOR UPDATE SKIP LOCKED) taken
     WHERE e.id = taken.id
    RETURNING e.*;
END
$$;
COMMENT ON FUNCTION health_score.claim_alert_events(text, integer, interval) IS
    'A worker takes up to max_events open events (and events whose lease lapsed), oldest first, skipping those another transaction holds; they are its until lease_until';

CREATE FUNCTION health_score.complete_alert_event(id bigint, worker text) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT health_score_internal._require_coordinator('complete_alert_event');
    WITH done AS (
        UPDATE health_score.alert_events e
           SET status = 'acknowledged', acknowledged_by = e.claimed_by, acknowledged_at = pg_catalog.clock_timestamp(),
               lease_until = NULL
         WHERE e.id = complete_alert_event.id AND e.status = 'claimed' AND e.claimed_by = complete_alert_event.worker
        RETURNING 1)
    SELECT EXISTS (SELECT FROM done)
$$;
COMMENT ON FUNCTION health_score.complete_alert_event(bigint, text) IS
    'A worker marks an event it claimed as delivered (acknowledged); false when the event is not claimed by that worker any more (its lease lapsed and another took it, or it was resolved)';

CREATE FUNCTION health_score.acknowledge_alert_event(id bigint, note text DEFAULT NULL) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT health_score_internal._require_coordinator('acknowledge_alert_event');
    WITH done AS (
        UPDATE health_score.alert_events e
           SET status = 'acknowledged', acknowledged_by = SESSION_USER, acknowledged_at = pg_catalog.clock_timestamp(),
               lease_until = NULL, note = coalesce(acknowledge_alert_event.note, e.note)
         WHERE e.id = acknowledge_alert_event.id AND e.status IN ('open', 'claimed')
        RETURNING 1)
    SELECT EXISTS (SELECT FROM done)
$$;
COMMENT ON FUNCTION health_score.acknowledge_alert_event(bigint, text) IS
    'A person acknowledges an open or claimed event (by the session''s user, with an optional note); false when it was neither';

CREATE FUNCTION health_score.resolve_alert_event(id bigint, note text DEFAULT NULL) RETURNS boolean
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    SELECT health_score_internal._require_coordinator('resolve_alert_event');
    WITH done AS (
        UPDATE health_score.alert_events e
           SET status = 'resolved', resolved_by = SESSION_USER, resolved_at = pg_catalog.clock_timestamp(),
               lease_until = NULL, note = coalesce(resolve_alert_event.note, e.note)
         WHERE e.id = resolve_alert_event.id AND e.status <> 'resolved'
        RETURNING 1)
    SELECT EXISTS (SELECT FROM done)
$$;
COMMENT ON FUNCTION health_score.resolve_alert_event(bigint, text) IS
    'Resolves an event by hand (by the session''s user, with an optional note); a later snapshot that fires the rule raises a new one; false when it was resolved already';

GRANT SELECT ON health_score.alert_rules, health_score.alert_events TO health_score_reader;
GRANT INSERT, UPDATE, DELETE ON health_score.alert_rules TO health_score_admin;
GRANT INSERT, UPDATE ON health_score.alert_events TO health_score_admin;
GRANT USAGE ON SEQUENCE health_score.alert_events_id_seq TO health_score_admin;
REVOKE EXECUTE ON FUNCTION
    health_score.set_alert_rule(text, text, text, double precision, interval, double precision),
    health_score.drop_alert_rule(text, text),
    health_score_internal._raise_alert_events(text, timestamptz),
    health_score.claim_alert_events(text, integer, interval),
    health_score.complete_alert_event(bigint, text),
    health_score.acknowledge_alert_event(bigint, text),
    health_score.resolve_alert_event(bigint, text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    health_score.set_alert_rule(text, text, text, double precision, interval, double precision),
    health_score.drop_alert_rule(text, text),
    health_score_internal._raise_alert_events(text, timestamptz),
    health_score.claim_alert_events(text, integer, interval),
    health_score.complete_alert_event(bigint, text),
    health_score.acknowledge_alert_event(bigint, text),
    health_score.resolve_alert_event(bigint, text)
  TO health_score_admin;

-------------------------------------------------------------------------------------------
-- Issue 18, part 1: CSM inputs (sql/csm.sql; snapshot, the generated views and the current
-- state, above, apply and keep them)
-------------------------------------------------------------------------------------------

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'health_score_csm') THEN
        BEGIN
            CREATE ROLE health_score_csm NOLOGIN;
            COMMENT ON ROLE health_score_csm IS
                'health_score: records manual inputs and band overrides of entities (account managers); also a reader';
        EXCEPTION WHEN unique_violation OR duplicate_object THEN
            NULL;
        END;
    END IF;
    IF NOT pg_catalog.pg_has_role('health_score_csm', 'health_score_reader', 'MEMBER') THEN
        BEGIN
            GRANT health_score_reader TO health_score_csm;
        EXCEPTION WHEN unique_violation OR duplicate_object THEN
            NULL;
        END;
    END IF;
END
$roles$;

CREATE TABLE health_score.manual_inputs (
    model      text COLLATE "C" NOT NULL,
    entity_key text COLLATE "C" NOT NULL,
    input      text             NOT NULL,
    value      text             NOT NULL,
    reason     text             NOT NULL,
    set_by     text             NOT NULL,
    set_at     timestamptz      NOT NULL,
    expires_at timestamptz,
    PRIMARY KEY (model, entity_key, input)
);
COMMENT ON TABLE health_score.manual_inputs IS
    'Manual values of a model''s inputs per entity (health_score.set_manual_input): while active they replace the source''s value in snapshot, the generated views and the scoring functions'' entity forms; kept by pg_dump';
COMMENT ON COLUMN health_score.manual_inputs.model IS 'Model name';
COMMENT ON COLUMN health_score.manual_inputs.entity_key IS 'The entity (account) key, as text';
COMMENT ON COLUMN health_score.manual_inputs.input IS 'The input key the value stands for';
COMMENT ON COLUMN health_score.manual_inputs.value IS 'The value, as text (a number''s text reads as the number)';
COMMENT ON COLUMN health_score.manual_inputs.reason IS 'Why it was recorded';
COMMENT ON COLUMN health_score.manual_inputs.set_by IS 'Who recorded it (the role that called set_manual_input)';
COMMENT ON COLUMN health_score.manual_inputs.set_at IS 'When it was recorded';
COMMENT ON COLUMN health_score.manual_inputs.expires_at IS 'From this time on it no longer applies (NULL: until cleared)';
SELECT pg_catalog.pg_extension_config_dump('health_score.manual_inputs', '');

CREATE TABLE health_score.band_overrides (
    model      text COLLATE "C" NOT NULL,
    entity_key text COLLATE "C" NOT NULL,
    band       text             NOT NULL,
    reason     text             NOT NULL,
    set_by     text             NOT NULL,
    set_at     timestamptz      NOT NULL,
    expires_at timestamptz,
    PRIMARY KEY (model, entity_key)
);
COMMENT ON TABLE health_score.band_overrides IS
    'Bands forced per entity (health_score.set_band_override): while active the entity''s band is this one whatever its score; kept by pg_dump';
COMMENT ON COLUMN health_score.band_overrides.model IS 'Model name';
COMMENT ON COLUMN health_score.band_overrides.entity_key IS 'The entity (account) key, as text';
COMMENT ON COLUMN health_score.band_overrides.band IS 'The band forced (a band of the list applied to the entity; ignored while it is not)';
COMMENT ON COLUMN health_score.band_overrides.reason IS 'Why it was recorded';
COMMENT ON COLUMN health_score.band_overrides.set_by IS 'Who recorded it';
COMMENT ON COLUMN health_score.band_overrides.set_at IS 'When it was recorded';
COMMENT ON COLUMN health_score.band_overrides.expires_at IS 'From this time on it no longer applies (NULL: until cleared)';
SELECT pg_catalog.pg_extension_config_dump('health_score.band_overrides', '');

CREATE SEQUENCE health_score.manual_audit_id_seq;
COMMENT ON SEQUENCE health_score.manual_audit_id_seq IS 'Numbers the changes of manual inputs and band overrides (kept by pg_dump)';
SELECT pg_catalog.pg_extension_config_dump('health_score.manual_audit_id_seq', '');
CREATE TABLE health_score.manual_audit (
    id             bigint           PRIMARY KEY DEFAULT pg_catalog.nextval('health_score.manual_audit_id_seq'::pg_catalog.regclass),
    changed_at     timestamptz      NOT NULL,
    changed_by     text             NOT NULL,
    model          text COLLATE "C" NOT NULL,
    entity_key     text COLLATE "C" NOT NULL,
    kind           text             NOT NULL CHECK (kind IN ('input', 'band')),
    input          text,
    old_value      text,
    new_value      text,
    old_expires_at timestamptz,
    new_expires_at timestamptz,
    reason         text,
    CHECK ((kind = 'input') = (input IS NOT NULL))
);
ALTER SEQUENCE health_score.manual_audit_id_seq OWNED BY health_score.manual_audit.id;
CREATE INDEX manual_audit_entity ON health_score.manual_audit (model, entity_key, id);
COMMENT ON TABLE health_score.manual_audit IS
    'Every change of a manual input or band override: who, when, the old and new value and expiry, and why; written by the recording functions alone, kept by pg_dump';
COMMENT ON COLUMN health_score.manual_audit.id IS 'The change''s number, in the order made';
COMMENT ON COLUMN health_score.manual_audit.changed_at IS 'When (the transaction''s time)';
COMMENT ON COLUMN health_score.manual_audit.changed_by IS 'Who (the role that called the recording function)';
COMMENT ON COLUMN health_score.manual_audit.model IS 'Model name';
COMMENT ON COLUMN health_score.manual_audit.entity_key IS 'The entity';
COMMENT ON COLUMN health_score.manual_audit.kind IS 'input (a manual input) or band (a band override)';
COMMENT ON COLUMN health_score.manual_audit.input IS 'The input key (kind input)';
COMMENT ON COLUMN health_score.manual_audit.old_value IS 'The value (or band) before, NULL when there was none';
COMMENT ON COLUMN health_score.manual_audit.new_value IS 'The value (or band) after, NULL when cleared';
COMMENT ON COLUMN health_score.manual_audit.old_expires_at IS 'The expiry before';
COMMENT ON COLUMN health_score.manual_audit.new_expires_at IS 'The expiry after';
COMMENT ON COLUMN health_score.manual_audit.reason IS 'Why';
SELECT pg_catalog.pg_extension_config_dump('health_score.manual_audit', '');

-- The checks the model makes of a recorded value: 22023 naming the component and its path
-- when a leaf reading the input (in the latest version, base and every segment override)
-- cannot use the value, or naming the bands when the band is in none of its lists.
CREATE FUNCTION health_score_internal._check_manual_value(model text, input text, value text) RETURNS void
    AS 'MODULE_PATHNAME', 'hs_check_manual_value' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._check_manual_value(text, text, text) IS
    'Raises 22023 (with the component''s path) unless every leaf of the model''s latest version that reads the input can use the value';
CREATE FUNCTION health_score_internal._check_band_override(model text, band text) RETURNS void
    AS 'MODULE_PATHNAME', 'hs_check_band_override' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._check_band_override(text, text) IS
    'Raises 22023 (listing the bands) unless the band is in one of the band lists of the model''s latest version';

-- Every change goes through here, run as the tables' owner by the recording functions (C
-- doors: they note the caller, become the owner for this one call and pass the caller on),
-- so that nobody writes the tables or the audit otherwise, and the audit names the caller.
CREATE FUNCTION health_score_internal._record_manual(kind text, model text, entity_key text, input text, value text,
                                                     reason text, expires_at timestamptz, caller oid)
    RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fn text := CASE WHEN _record_manual.kind = 'input' THEN
                   CASE WHEN _record_manual.value IS NULL THEN 'clear_manual_input' ELSE 'set_manual_input' END
               ELSE CASE WHEN _record_manual.value IS NULL THEN 'clear_band_override' ELSE 'set_band_override' END END;
    who text := pg_catalog.pg_get_userbyid(_record_manual.caller);
    old_value text;
    old_expires timestamptz;
    found_old boolean;
BEGIN
    IF _record_manual.model IS NULL OR _record_manual.entity_key IS NULL
       OR (_record_manual.kind = 'input' AND _record_manual.input IS NULL) THEN
        RAISE EXCEPTION '%: model, entity_key% must not be NULL', fn,
            CASE WHEN _record_manual.kind = 'input' THEN ', input' ELSE '' END USING ERRCODE = '22023',
            HINT = CASE WHEN _record_manual.value IS NULL THEN 'name what to clear'
                        ELSE 'name the model, the entity''s key and what to record' END;
    END IF;
    IF strpos(_record_manual.model, '@') > 0 THEN
        RAISE EXCEPTION '%: give the model''s name, not a version (%)', fn, left(_record_manual.model, 200)
            USING ERRCODE = '22023', HINT = 'manual inputs belong to the model and apply to whichever version scores';
    END IF;
    -- 42704 with the closest names when there is no such model
    PERFORM health_score_internal._resolve_model(_record_manual.model);
    IF _record_manual.value IS NOT NULL THEN
        IF coalesce(btrim(_record_manual.reason), '') = '' THEN
            RAISE EXCEPTION '%: a reason is required', fn USING ERRCODE = '22023',
                HINT = 'say why, such as ''champion left'': the audit keeps it';
        END IF;
        IF _record_manual.expires_at IS NOT NULL AND NOT isfinite(_record_manual.expires_at) THEN
            RAISE EXCEPTION '%: expires_at must be a finite time or NULL (no expiry), not %', fn, _record_manual.expires_at
                USING ERRCODE = '22023', HINT = 'such as now() + interval ''30 days''';
        END IF;
        IF _record_manual.kind = 'input' THEN
            PERFORM health_score_internal._check_manual_value(_record_manual.model, _record_manual.input, _record_manual.value);
        ELSE
            PERFORM health_score_internal._check_band_override(_record_manual.model, _record_manual.value);
        END IF;
    END IF;
    IF _record_manual.kind = 'input' THEN
        SELECT m.value, m.expires_at, true INTO old_value, old_expires, found_old
          FROM health_score.manual_inputs m
         WHERE m.model = _record_manual.model AND m.entity_key = _record_manual.entity_key AND m.input = _record_manual.input
           FOR UPDATE;
        IF _record_manual.value IS NULL THEN
            DELETE FROM health_score.manual_inputs m
             WHERE m.model = _record_manual.model AND m.entity_key = _record_manual.entity_key AND m.input = _record_manual.input;
        ELSE
            INSERT INTO health_score.manual_inputs AS m (model, entity_key, input, value, reason, set_by, set_at, expires_at)
            VALUES (_record_manual.model, _record_manual.entity_key, _record_manual.input, _record_manual.value,
                    _record_manual.reason, who, now(), _record_manual.expires_at)
            ON CONFLICT ON CONSTRAINT manual_inputs_pkey DO UPDATE
               SET value = excluded.value, reason = excluded.reason, set_by = excluded.set_by,
                   set_at = excluded.set_at, expires_at = excluded.expires_at;
        END IF;
    ELSE
        SELECT o.band, o.expires_at, true INTO old_value, old_expires, found_old
          FROM health_score.band_overrides o
         WHERE o.model = _record_manual.model AND o.entity_key = _record_manual.entity_key
           FOR UPDATE;
        IF _record_manual.value IS NULL THEN
            DELETE FROM health_score.band_overrides o
             WHERE o.model = _record_manual.model AND o.entity_key = _record_manual.entity_key;
        ELSE
            INSERT INTO health_score.band_overrides AS o (model, entity_key, band, reason, set_by, set_at, expires_at)
            VALUES (_record_manual.model, _record_manual.entity_key, _record_manual.value, _record_manual.reason, who,
                    now(), _record_manual.expires_at)
            ON CONFLICT ON CONSTRAINT band_overrides_pkey DO UPDATE
               SET band = excluded.band, reason = excluded.reason, set_by = excluded.set_by,
                   set_at = excluded.set_at, expires_at = excluded.expires_at;
        END IF;
    END IF;
    -- clearing what is not there changes nothing and is not audited
    IF _record_manual.value IS NULL AND found_old IS NULL THEN
        RETURN false;
    END IF;
    INSERT INTO health_score.manual_audit
           (changed_at, changed_by, model, entity_key, kind, input, old_value, new_value, old_expires_at, new_expires_at, reason)
    VALUES (now(), who, _record_manual.model, _record_manual.entity_key, _record_manual.kind,
            CASE WHEN _record_manual.kind = 'input' THEN _record_manual.input END, old_value, _record_manual.value,
            old_expires, CASE WHEN _record_manual.value IS NOT NULL THEN _record_manual.expires_at END, _record_manual.reason);
    IF _record_manual.value IS NOT NULL AND _record_manual.expires_at <= now() THEN
        RAISE NOTICE '%: recorded, but it expired at % already: it applies only to snapshots of earlier times', fn,
            _record_manual.expires_at;
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION health_score_internal._record_manual(text, text, text, text, text, text, timestamptz, oid) IS
    'Validates, records (or clears, for a NULL value) a manual input or band override and audits the change; run as the owner by the recording functions';
REVOKE EXECUTE ON FUNCTION health_score_internal._record_manual(text, text, text, text, text, text, timestamptz, oid) FROM PUBLIC;

CREATE FUNCTION health_score.set_manual_input(model text, entity_key text, input text, value text, reason text,
                                              expires_at timestamptz DEFAULT NULL)
    RETURNS void AS 'MODULE_PATHNAME', 'hs_set_manual_input' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION health_score.set_manual_input(text, text, text, text, text, timestamptz) IS
    'Records (or replaces) the manual value of one input of a model for one entity, with a reason and an optional expiry; refused (22023, with the component''s path) when a leaf of the latest version reading the input could not use it; audited';
CREATE FUNCTION health_score.clear_manual_input(model text, entity_key text, input text, reason text DEFAULT NULL)
    RETURNS boolean AS 'MODULE_PATHNAME', 'hs_clear_manual_input' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION health_score.clear_manual_input(text, text, text, text) IS
    'Removes an entity''s manual value of an input (audited); false when there was none';
CREATE FUNCTION health_score.set_band_override(model text, entity_key text, band text, reason text,
                                               expires_at timestamptz DEFAULT NULL)
    RETURNS void AS 'MODULE_PATHNAME', 'hs_set_band_override' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION health_score.set_band_override(text, text, text, text, timestamptz) IS
    'Forces an entity''s band (never its score) while active, with a reason and an optional expiry; the band must be one of the model''s; audited';
CREATE FUNCTION health_score.clear_band_override(model text, entity_key text, reason text DEFAULT NULL)
    RETURNS boolean AS 'MODULE_PATHNAME', 'hs_clear_band_override' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION health_score.clear_band_override(text, text, text) IS
    'Removes an entity''s band override (audited); false when there was none';

-- The query that gathers a model's manual inputs and band overrides active at a time (an SQL
-- expression: '$3' in snapshot, 'pg_catalog.now()' in the generated views and the entity
-- forms) into one JSON object per entity. Every name qualified: the text runs under the
-- caller's search_path in the entity forms.
CREATE FUNCTION health_score_internal._manual_sql(model text, at_sql text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $f$
    SELECT format($q$SELECT coalesce(i.entity_key, b.entity_key) AS entity_key,
       pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object('inputs', i.inputs, 'band', b.band)) AS manual
  FROM (SELECT m.entity_key, pg_catalog.jsonb_object_agg(m.input, pg_catalog.jsonb_build_object(
               'value', m.value, 'set_by', m.set_by, 'set_at', m.set_at, 'expires_at', m.expires_at, 'reason', m.reason)) AS inputs
          FROM health_score.manual_inputs m
         WHERE m.model OPERATOR(pg_catalog.=) %1$L
           AND (m.expires_at IS NULL OR m.expires_at OPERATOR(pg_catalog.>) %2$s)
         GROUP BY m.entity_key) i
  FULL JOIN (SELECT o.entity_key, pg_catalog.jsonb_build_object('band', o.band, 'set_by', o.set_by, 'set_at', o.set_at,
                    'expires_at', o.expires_at, 'reason', o.reason) AS band
               FROM health_score.band_overrides o
              WHERE o.model OPERATOR(pg_catalog.=) %1$L
                AND (o.expires_at IS NULL OR o.expires_at OPERATOR(pg_catalog.>) %2$s)) b
    ON b.entity_key OPERATOR(pg_catalog.=) i.entity_key$q$, model, at_sql)
$f$;
COMMENT ON FUNCTION health_score_internal._manual_sql(text, text) IS
    'The query of a model''s manual inputs and band overrides active at a time (an SQL expression), one JSON object per entity';

-- The entity forms: the model by name, the entity named, its active manual inputs applied
-- (loaded once per call site and statement) and its band override shown. Not STRICT: a NULL
-- entity_key scores the input as it is.
CREATE FUNCTION health_score.score(model text, input jsonb, entity_key text) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_entity_j' LANGUAGE C STABLE PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.score(model text, input record, entity_key text) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_entity_r' LANGUAGE C STABLE PARALLEL SAFE COST 40;
CREATE FUNCTION health_score.band(model text, input jsonb, previous_band text, entity_key text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_entity_j' LANGUAGE C STABLE PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.band(model text, input record, previous_band text, entity_key text) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_band_entity_r' LANGUAGE C STABLE PARALLEL SAFE COST 40;
CREATE FUNCTION health_score.assess(model text, input jsonb, entity_key text) RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_entity_j' LANGUAGE C STABLE PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.assess(model text, input record, entity_key text) RETURNS health_score.assessment
    AS 'MODULE_PATHNAME', 'hs_assess_entity_r' LANGUAGE C STABLE PARALLEL SAFE COST 40;
CREATE FUNCTION health_score.explain(model text, input jsonb, entity_key text)
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text, manual jsonb)
    AS 'MODULE_PATHNAME', 'hs_explain_entity_j' LANGUAGE C STABLE PARALLEL SAFE COST 100 ROWS 10;
CREATE FUNCTION health_score.explain(model text, input record, entity_key text)
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text, manual jsonb)
    AS 'MODULE_PATHNAME', 'hs_explain_entity_r' LANGUAGE C STABLE PARALLEL SAFE COST 100 ROWS 10;
CREATE FUNCTION health_score.churn_probability(model text, input jsonb, entity_key text) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_entity_j' LANGUAGE C STABLE PARALLEL SAFE COST 100;
CREATE FUNCTION health_score.churn_probability(model text, input record, entity_key text) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_probability_entity_r' LANGUAGE C STABLE PARALLEL SAFE COST 40;
COMMENT ON FUNCTION health_score.score(text, jsonb, text) IS
    'The score of an input for the entity named: its active manual inputs (health_score.manual_inputs) replace the input''s values';
COMMENT ON FUNCTION health_score.score(text, record, text) IS
    'The score of a table row for the entity named: its active manual inputs replace the row''s values';
COMMENT ON FUNCTION health_score.band(text, jsonb, text, text) IS
    'The band for the entity named: its manual inputs applied, band hysteresis from previous_band (NULL: none), its active band override in force';
COMMENT ON FUNCTION health_score.band(text, record, text, text) IS
    'The band of a table row for the entity named: its manual inputs applied, band hysteresis from previous_band (NULL: none), its active band override in force';
COMMENT ON FUNCTION health_score.assess(text, jsonb, text) IS
    'Score, band, coverage and segment for the entity named: its manual inputs applied, its band override in force';
COMMENT ON FUNCTION health_score.assess(text, record, text) IS
    'Score, band, coverage and segment of a table row for the entity named: its manual inputs applied, its band override in force';
COMMENT ON FUNCTION health_score.explain(text, jsonb, text) IS
    'explain for the entity named: its manual inputs applied, each shown in manual (value, set_by, set_at, expires_at, reason); a last row with no component and status band_override when its band is forced';
COMMENT ON FUNCTION health_score.explain(text, record, text) IS
    'explain of a table row for the entity named: its manual inputs applied, each shown in manual; a last row with status band_override when its band is forced';
COMMENT ON FUNCTION health_score.churn_probability(text, jsonb, text) IS
    'Churn probability for the entity named, its manual inputs applied';
COMMENT ON FUNCTION health_score.churn_probability(text, record, text) IS
    'Churn probability of a table row for the entity named, its manual inputs applied';

-- What the stored snapshots show of the CSM inputs applied (the rows of health_score.scores
-- written with some: their manual inputs, and the model's own band under a band override)
CREATE VIEW health_score.manual_applied AS
SELECT r.model, r.entity_key, r.scored_at, r.score, r.band, r.manual->'band'->>'model_band' AS model_band, r.manual
  FROM health_score_internal.score_rows r
 WHERE r.manual IS NOT NULL;
COMMENT ON VIEW health_score.manual_applied IS
    'The snapshot rows (health_score.scores) that CSM inputs changed: which manual inputs replaced a value and which band override forced the band';
COMMENT ON COLUMN health_score.manual_applied.model IS 'Model name';
COMMENT ON COLUMN health_score.manual_applied.entity_key IS 'The entity';
COMMENT ON COLUMN health_score.manual_applied.scored_at IS 'The snapshot time';
COMMENT ON COLUMN health_score.manual_applied.score IS 'The score stored (manual inputs applied)';
COMMENT ON COLUMN health_score.manual_applied.band IS 'The band stored (the override''s when one was in force)';
COMMENT ON COLUMN health_score.manual_applied.model_band IS 'Under a band override: the model''s own band, from which band hysteresis continues; NULL otherwise';
COMMENT ON COLUMN health_score.manual_applied.manual IS
    '{"inputs": {"<input>": {"value", "set_by", "set_at", "expires_at", "reason"}}, "band": {"band", "model_band", "set_by", "set_at", "expires_at", "reason"}}: what was recorded of each one applied';

GRANT SELECT ON health_score.manual_inputs, health_score.band_overrides, health_score.manual_audit,
    health_score.manual_applied TO health_score_reader;
REVOKE EXECUTE ON FUNCTION
    health_score.set_manual_input(text, text, text, text, text, timestamptz),
    health_score.clear_manual_input(text, text, text, text),
    health_score.set_band_override(text, text, text, text, timestamptz),
    health_score.clear_band_override(text, text, text)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    health_score.set_manual_input(text, text, text, text, text, timestamptz),
    health_score.clear_manual_input(text, text, text, text),
    health_score.set_band_override(text, text, text, text, timestamptz),
    health_score.clear_band_override(text, text, text)
  TO health_score_admin, health_score_csm;

CREATE FUNCTION health_score_internal._check_source(caller text, model text, source regclass) RETURNS void
    AS 'MODULE_PATHNAME', 'hs_check_source' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._check_source(text, text, regclass) IS
    'Raises 42703 naming every input of a model version (''name@3'') the relation has no column for, then 42804 naming every numeric input whose column is not numeric';
-- what views generated since 0.3.0 call: the entity's CSM inputs applied (manual: the JSON of
-- health_score_internal._manual_sql, NULL for none). Not STRICT: manual is NULL for most rows.
CREATE FUNCTION health_score_internal._view_row(model text, manual jsonb, input record) RETURNS health_score_internal._view_row
    AS 'MODULE_PATHNAME', 'hs_view_row_manual' LANGUAGE C STABLE PARALLEL SAFE COST 40
    SUPPORT health_score_internal._row_support;
COMMENT ON FUNCTION health_score_internal._view_row(text, jsonb, record) IS
    'What a generated view computes per row, the entity''s manual inputs applied and its band override in force';
CREATE FUNCTION health_score_internal._view_row_columns(model text, manual jsonb, row_type oid, columns text[], VARIADIC "any")
    RETURNS health_score_internal._view_row
    AS 'MODULE_PATHNAME', 'hs_view_row_manual_columns' LANGUAGE C STABLE PARALLEL SAFE COST 40;
COMMENT ON FUNCTION health_score_internal._view_row_columns(text, jsonb, oid, text[], "any") IS
    'health_score_internal._view_row with manual inputs as the planner passes it: the row''s columns as arguments';

-------------------------------------------------------------------------------------------
-- Issue 19: generated views whose source is dropped lose their registration with them
-------------------------------------------------------------------------------------------

-- registrations of views already gone (dropped with their source before this version) are
-- removed, naming the view, so that none is regenerated below
DO $gone$
DECLARE
    v record;
BEGIN
    FOR v IN DELETE FROM health_score.views w
              WHERE to_regclass(quote_ident(w.view_schema) || '.' || quote_ident(w.view_name)) IS NULL
             RETURNING w.view_schema, w.view_name, w.model LOOP
        RAISE WARNING 'the generated view %.% of model % no longer exists; its registration is removed',
            quote_ident(v.view_schema), quote_ident(v.view_name), v.model
            USING HINT = 'create it again with health_score.create_view';
    END LOOP;
END
$gone$;

-- A generated view dropped with its source (DROP ... CASCADE, as dbt rebuilds a relation) or
-- by hand takes its registration with it: no registration is left naming a view that is gone
-- and a source by a bare OID, for refresh_views and every set_model to trip over. Losing a
-- view with its source is reported (a WARNING with the create_view call that makes it again);
-- dropping the view itself is what the user asked for. PL/pgSQL that never fails: an event
-- trigger's error would stop every DROP in the database.
-- SECURITY DEFINER (docs/security.md): health_score.views is the registry owner's to write; it
-- deletes only the registrations of views the statement has just dropped.
CREATE FUNCTION health_score_internal._forget_dropped_views() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    IF to_regclass('health_score.views') IS NULL THEN
        RETURN;
    END IF;
    FOR v IN WITH dropped AS (SELECT * FROM pg_event_trigger_dropped_objects())
             DELETE FROM health_score.views w
              WHERE EXISTS (SELECT FROM dropped d WHERE d.object_type = 'view'
                                                    AND d.schema_name = w.view_schema AND d.object_name = w.view_name)
             RETURNING w.view_schema, w.view_name, w.model, w.key_column, w.carried,
                       (SELECT d.object_identity FROM dropped d
                         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = w.source::oid AND d.objsubid = 0) AS source_name
    LOOP
        CONTINUE WHEN v.source_name IS NULL;
        RAISE WARNING 'health_score: the generated view %.% was dropped with its source %; its registration is removed',
            quote_ident(v.view_schema), quote_ident(v.view_name), v.source_name
            USING HINT = format('once the source is back, create the view again: SELECT health_score.create_view(%L, %L, %L, %L%s)',
                                quote_ident(v.view_schema) || '.' || quote_ident(v.view_name), v.model, v.source_name,
                                v.key_column, CASE WHEN v.carried = '{}' THEN '' ELSE format(', %L', v.carried) END);
    END LOOP;
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'health_score: the registrations of dropped generated views were not removed: %', SQLERRM
        USING HINT = 'SELECT health_score_internal._forget_view(view_schema, view_name) for each gone view of health_score.views';
END
$$;
COMMENT ON FUNCTION health_score_internal._forget_dropped_views() IS
    'Event trigger function: removes the registrations (health_score.views) of generated views a statement dropped, with a WARNING when their source went with them';
CREATE EVENT TRIGGER health_score_forget_dropped_views ON sql_drop
    EXECUTE FUNCTION health_score_internal._forget_dropped_views();
COMMENT ON EVENT TRIGGER health_score_forget_dropped_views IS
    'Removes the registrations of generated views that a DROP (of the view, or of its source with CASCADE) took with it';
-- PostgreSQL calls it itself
REVOKE EXECUTE ON FUNCTION health_score_internal._forget_dropped_views() FROM PUBLIC;

-- Issue 19, item 5: trend's common reading as scalar columns (sql/trend.sql)
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

-- Issue 19, item 7: the scoring functions for untyped literals (sql/scoring.sql)
CREATE FUNCTION health_score_internal._jsonb_of(input text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'hs_jsonb_of' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._jsonb_of(text) IS
    'text as jsonb, for the text forms of the scoring functions (a model or an input): 22023 with the text cut short when it is not JSON';
-- The forms for untyped literals: score('m', '{"x": 1}') or score('m', NULL) matches no form
-- above better than another (a jsonb and a record input are of different kinds), and
-- PostgreSQL would call the call ambiguous. A literal's type is text first: these forms read
-- the input as jsonb, and the model as inline JSON when it is an object, else as a name.
-- (Inlined SQL, so every name is qualified; CASE drops the arm a constant model rules out.)
CREATE FUNCTION health_score.score(model text, input text) RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.left(pg_catalog.ltrim(score.model), 1) OPERATOR(pg_catalog.=) '{'
                THEN health_score.score(health_score_internal._jsonb_of(score.model), health_score_internal._jsonb_of(score.input))
                ELSE health_score.score(score.model, health_score_internal._jsonb_of(score.input)) END
$$;
CREATE FUNCTION health_score.band(model text, input text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.left(pg_catalog.ltrim(band.model), 1) OPERATOR(pg_catalog.=) '{'
                THEN health_score.band(health_score_internal._jsonb_of(band.model), health_score_internal._jsonb_of(band.input))
                ELSE health_score.band(band.model, health_score_internal._jsonb_of(band.input)) END
$$;
CREATE FUNCTION health_score.band(model text, input text, previous_band text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.left(pg_catalog.ltrim(band.model), 1) OPERATOR(pg_catalog.=) '{'
                THEN health_score.band(health_score_internal._jsonb_of(band.model), health_score_internal._jsonb_of(band.input), band.previous_band)
                ELSE health_score.band(band.model, health_score_internal._jsonb_of(band.input), band.previous_band) END
$$;
CREATE FUNCTION health_score.assess(model text, input text) RETURNS health_score.assessment
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.left(pg_catalog.ltrim(assess.model), 1) OPERATOR(pg_catalog.=) '{'
                THEN health_score.assess(health_score_internal._jsonb_of(assess.model), health_score_internal._jsonb_of(assess.input))
                ELSE health_score.assess(assess.model, health_score_internal._jsonb_of(assess.input)) END
$$;
CREATE FUNCTION health_score.churn_probability(model text, input text) RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.left(pg_catalog.ltrim(churn_probability.model), 1) OPERATOR(pg_catalog.=) '{'
                THEN health_score.churn_probability(health_score_internal._jsonb_of(churn_probability.model), health_score_internal._jsonb_of(churn_probability.input))
                ELSE health_score.churn_probability(churn_probability.model, health_score_internal._jsonb_of(churn_probability.input)) END
$$;
CREATE FUNCTION health_score.explain(model text, input text)
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    -- (both forms are STRICT: the one whose model is NULL returns no row)
    SELECT e.* FROM health_score.explain(CASE WHEN pg_catalog.left(pg_catalog.ltrim(explain.model), 1) OPERATOR(pg_catalog.=) '{'
                                              THEN health_score_internal._jsonb_of(explain.model) END, health_score_internal._jsonb_of(explain.input)) e
    UNION ALL
    SELECT e.* FROM health_score.explain(CASE WHEN pg_catalog.left(pg_catalog.ltrim(explain.model), 1) OPERATOR(pg_catalog.<>) '{'
                                              THEN explain.model END, health_score_internal._jsonb_of(explain.input)) e
$$;
COMMENT ON FUNCTION health_score.score(text, text) IS
    'score for untyped literals and text: the input read as jsonb, the model inline when it is a JSON object, else by name';
COMMENT ON FUNCTION health_score.band(text, text) IS
    'band for untyped literals and text: the input read as jsonb, the model inline when it is a JSON object, else by name';
COMMENT ON FUNCTION health_score.band(text, text, text) IS
    'band with a previous band for untyped literals and text: the input read as jsonb, the model inline when it is a JSON object, else by name';
COMMENT ON FUNCTION health_score.assess(text, text) IS
    'assess for untyped literals and text: the input read as jsonb, the model inline when it is a JSON object, else by name';
COMMENT ON FUNCTION health_score.churn_probability(text, text) IS
    'churn_probability for untyped literals and text: the input read as jsonb, the model inline when it is a JSON object, else by name';
COMMENT ON FUNCTION health_score.explain(text, text) IS
    'explain for untyped literals and text: the input read as jsonb, the model inline when it is a JSON object, else by name';
-- ... and for a json (not jsonb) input with the model by name, as the jsonb form
CREATE FUNCTION health_score.score(model text, input json) RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT health_score.score(score.model, score.input::pg_catalog.jsonb)
$$;
CREATE FUNCTION health_score.band(model text, input json) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT health_score.band(band.model, band.input::pg_catalog.jsonb)
$$;
CREATE FUNCTION health_score.band(model text, input json, previous_band text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT health_score.band(band.model, band.input::pg_catalog.jsonb, band.previous_band)
$$;
CREATE FUNCTION health_score.assess(model text, input json) RETURNS health_score.assessment
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT health_score.assess(assess.model, assess.input::pg_catalog.jsonb)
$$;
CREATE FUNCTION health_score.churn_probability(model text, input json) RETURNS double precision
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT health_score.churn_probability(churn_probability.model, churn_probability.input::pg_catalog.jsonb)
$$;
CREATE FUNCTION health_score.explain(model text, input json)
    RETURNS TABLE (component text, parent text, input text, raw text, normalized double precision,
                   weight double precision, contribution double precision, status text)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT e.* FROM health_score.explain(explain.model, explain.input::pg_catalog.jsonb) e
$$;
COMMENT ON FUNCTION health_score.score(text, json) IS 'score of a json input, as of the same input as jsonb';
COMMENT ON FUNCTION health_score.band(text, json) IS 'band of a json input, as of the same input as jsonb';
COMMENT ON FUNCTION health_score.band(text, json, text) IS 'band with a previous band of a json input, as of the same input as jsonb';
COMMENT ON FUNCTION health_score.assess(text, json) IS 'assess of a json input, as of the same input as jsonb';
COMMENT ON FUNCTION health_score.churn_probability(text, json) IS 'churn_probability of a json input, as of the same input as jsonb';
COMMENT ON FUNCTION health_score.explain(text, json) IS 'explain of a json input, as of the same input as jsonb';

-- Issue 19, item 6: the extension's comment (\dx) says where to start, as the control file's
-- does for a fresh install
COMMENT ON EXTENSION health_score IS 'Explainable customer health scores in SQL. Start with health_score.set_model (a model as JSONB), then score, assess and explain a row; snapshot, latest and create_view for history and BI tools. Reference: docs/reference.md';

-- every registered view is generated anew: views apply the CSM inputs from now on, and name
-- the override applied segment_override. A view created inside this script would become a
-- member of the extension (which pg_dump leaves out, and DROP EXTENSION drops), and so would
-- the privileges granted on it (initial privileges, which pg_dump leaves out too): each view
-- is dropped, generated and given its grants back, then freed of both records, so that it is
-- the user's view it was. One that cannot be dropped (a view of the user's depends on it)
-- keeps working as it was, with a WARNING.
DO $regenerate$
DECLARE
    v record;
    target text;
    saved_acl aclitem[];
    owner_id oid;
    g record;
    regenerated regclass;
BEGIN
    FOR v IN SELECT * FROM health_score.views ORDER BY view_schema, view_name LOOP
        target := quote_ident(v.view_schema) || '.' || quote_ident(v.view_name);
        BEGIN
            SELECT cl.relacl, cl.relowner INTO saved_acl, owner_id FROM pg_class cl WHERE cl.oid = target::regclass;
            EXECUTE format('DROP VIEW %s', target);
            regenerated := health_score_internal._generate_view(v.view_schema, v.view_name, v.model, v.source, v.key_column,
                                                                v.view_owner, false, v.carried);
            FOR g IN SELECT (aclexplode(saved_acl)).* LOOP
                IF g.grantee <> 0 AND g.grantee <> owner_id THEN
                    EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, target, g.grantee::regrole,
                                   CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
                ELSIF g.grantee = 0 THEN
                    EXECUTE format('GRANT %s ON %s TO PUBLIC', g.privilege_type, target);
                END IF;
            END LOOP;
            -- the view, its row type and that type's array type
            DELETE FROM pg_depend d
             WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
               AND ((d.classid = 'pg_class'::regclass AND d.objid = regenerated)
                    OR (d.classid = 'pg_type'::regclass
                        AND d.objid IN (SELECT t.oid FROM pg_type t JOIN pg_class c ON t.oid IN (c.reltype, (SELECT a.typarray FROM pg_type a WHERE a.oid = c.reltype))
                                         WHERE c.oid = regenerated)));
            DELETE FROM pg_init_privs i WHERE i.classoid = 'pg_class'::regclass AND i.objoid = regenerated;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'view % was not regenerated: %', target, SQLERRM
                USING HINT = 'fix the cause and run SELECT health_score.refresh_views(' || quote_literal(v.model) || ')';
        END;
    END LOOP;
END
$regenerate$;

-------------------------------------------------------------------------------------------
-- Issue 20: fitted shapes (sql/fit_shapes.sql); fit takes "shapes": true and fit_report
-- shows each leaf's normalizer before and after (sql/fit.sql); suggest and add_components
-- (sql/suggest.sql). fit_report's columns change, which only DROP FUNCTION can do: a user's
-- view over it stops the update (PostgreSQL names it), to be dropped first and made again.
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


CREATE OR REPLACE FUNCTION health_score_internal._fit(model_sql text, config jsonb, source regclass, outcome_column text, options jsonb)
    RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    outcome text := health_score_internal._outcome_sql(_fit.source, _fit.outcome_column);
    opts jsonb := coalesce(_fit.options, '{}');
    unknown_key text;
    l2 double precision;  -- NULL until options.l2 names one: _fit_step then uses the library's default
    by_segment boolean := false;
    holdout double precision := 0;
    key_column text;
    held text := 'false';
    shapes boolean := false;
    shape_key text;
    solutions text;
    result jsonb;
BEGIN
    PERFORM health_score_internal._require_model_sql(_fit.model_sql, _fit.config);
    IF jsonb_typeof(opts) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'fit: options must be a JSON object' USING ERRCODE = '22023',
            HINT = 'for example ''{"l2": 0.001, "by_segment": true, "holdout": 0.2, "key_column": "account_id"}''';
    END IF;
    SELECT k INTO unknown_key FROM jsonb_object_keys(opts) k
     WHERE k NOT IN ('l2', 'by_segment', 'holdout', 'key_column', 'shapes',
                     'knots', 'min_category_rows', 'smoothness', 'monotone', 'refit_impute') LIMIT 1;
    IF unknown_key IS NOT NULL THEN
        RAISE EXCEPTION 'fit: options.%: unknown option', left(unknown_key, 200) USING ERRCODE = '22023',
            HINT = 'the options are l2, by_segment, holdout, key_column and shapes; with "shapes": true also knots, min_category_rows, smoothness, monotone and refit_impute';
    END IF;
    IF opts ? 'shapes' THEN
        IF jsonb_typeof(opts -> 'shapes') IS DISTINCT FROM 'boolean' THEN
            RAISE EXCEPTION 'fit: options.shapes: must be true or false, not %', left((opts -> 'shapes')::text, 200) USING ERRCODE = '22023',
                HINT = 'true fits each leaf''s normalizer (a curve, or a map''s values) with the weights';
        END IF;
        shapes := (opts ->> 'shapes')::boolean;
    END IF;
    IF NOT shapes THEN
        SELECT k INTO shape_key FROM jsonb_object_keys(opts) k
         WHERE k IN ('knots', 'min_category_rows', 'smoothness', 'monotone', 'refit_impute') LIMIT 1;
        IF shape_key IS NOT NULL THEN
            RAISE EXCEPTION 'fit: options.%: applies only with "shapes": true', shape_key USING ERRCODE = '22023',
                HINT = 'add "shapes": true to fit each leaf''s normalizer too';
        END IF;
    END IF;
    IF opts ? 'l2' THEN
        IF jsonb_typeof(opts -> 'l2') IS DISTINCT FROM 'number' OR (opts ->> 'l2')::numeric < 0 OR (opts ->> 'l2')::numeric > 1e6 THEN
            RAISE EXCEPTION 'fit: options.l2: must be a number from 0 to 1e6, not %', left((opts -> 'l2')::text, 200) USING ERRCODE = '22023',
                HINT = 'the L2 penalty on the weights, default 1e-4';
        END IF;
        l2 := (opts ->> 'l2')::float8;
    END IF;
    IF opts ? 'by_segment' THEN
        IF jsonb_typeof(opts -> 'by_segment') IS DISTINCT FROM 'boolean' THEN
            RAISE EXCEPTION 'fit: options.by_segment: must be true or false, not %', left((opts -> 'by_segment')::text, 200) USING ERRCODE = '22023',
                HINT = 'true fits each segment''s weights separately; false (the default) fits one set and drops the overrides'' weights';
        END IF;
        by_segment := (opts ->> 'by_segment')::boolean;
        IF by_segment AND shapes THEN
            RAISE EXCEPTION 'fit: options.by_segment: not with "shapes": true' USING ERRCODE = '22023',
                HINT = 'shapes are fitted over every row (the overrides'' weights and normalizers dropped); fit by_segment weights on the fitted model afterwards';
        END IF;
    END IF;
    IF opts ? 'holdout' THEN
        IF jsonb_typeof(opts -> 'holdout') IS DISTINCT FROM 'number' OR (opts ->> 'holdout')::numeric < 0 OR (opts ->> 'holdout')::numeric >= 1 THEN
            RAISE EXCEPTION 'fit: options.holdout: must be a fraction in [0, 1), not %', left((opts -> 'holdout')::text, 200) USING ERRCODE = '22023',
                HINT = 'the share of accounts held out of the fit, chosen by a hash of their key';
        END IF;
        holdout := (opts ->> 'holdout')::float8;
    END IF;
    IF opts ? 'key_column' THEN
        IF jsonb_typeof(opts -> 'key_column') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'fit: options.key_column: must be a column name, not %', left((opts -> 'key_column')::text, 200) USING ERRCODE = '22023',
                HINT = 'the column that identifies each account, such as {"key_column": "account_id"}; the holdout hashes it';
        END IF;
        key_column := opts ->> 'key_column';
    ELSIF holdout > 0 THEN
        -- the source's single-column primary key, if it has one
        SELECT a.attname INTO key_column
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = _fit.source AND i.indisprimary AND i.indnkeyatts = 1;
        IF key_column IS NULL THEN
            RAISE EXCEPTION 'fit: options.holdout needs options.key_column' USING ERRCODE = '22023',
                HINT = format('%s has no single-column primary key to hold accounts out by; name the key column', _fit.source);
        END IF;
    END IF;
    IF key_column IS NOT NULL THEN
        PERFORM health_score_internal._require_column('fit', _fit.source, key_column);
        held := format('health_score_internal._held_out(src.%I::text, %s)', key_column, holdout);
    END IF;
    IF shapes THEN
        EXECUTE format('SELECT health_score_internal._fit_shapes(health_score_internal._fit_shape_row($1, src), %s, $2) FROM %s AS src WHERE NOT %s',
                       outcome, _fit.source, held)
           INTO solutions USING health_score_internal._shape_design_model(_fit.config), jsonb_build_object('model', _fit.config, 'options', opts);
        result := solutions::jsonb;
    ELSE
        EXECUTE format('SELECT health_score_internal._fit(health_score_internal._fit_row($1, $2, src), %s, $3) FROM %s AS src WHERE NOT %s',
                       outcome, _fit.source, held)
           INTO solutions USING health_score_internal._fit_design_model(_fit.config, by_segment)::jsonb, by_segment, l2;
        result := health_score_internal._fit_apply(_fit.config, by_segment, solutions)::jsonb;
    END IF;
    PERFORM health_score_internal._require_valid_model(result -> 'model');
    RETURN result || jsonb_build_object('held_out', held, 'model_sql', _fit.model_sql, 'outcome_sql', outcome);
END
$$;
COMMENT ON FUNCTION health_score.fit(text, regclass, text, jsonb) IS
    'The model with weights fitted to outcomes: L2-regularised logistic regression of the outcome on each leaf''s n, health weights >= 1e-6, a group weighing the sum of its leaves; calibration dropped. With "shapes": true each leaf''s normalizer is fitted too (a curve through knots at quantiles, a map''s values). Options: l2 (1e-4), by_segment (false), holdout (0), key_column, shapes (false), knots (6), min_category_rows (10), smoothness (1e-3), monotone, refit_impute (false). Register the result with set_model';

DROP FUNCTION health_score.fit_report(text, regclass, text, jsonb);
DROP FUNCTION health_score.fit_report(jsonb, regclass, text, jsonb);
DROP FUNCTION health_score_internal._fit_report(text, jsonb, regclass, text, jsonb);
CREATE FUNCTION health_score_internal._fit_report(model_sql text, config jsonb, source regclass, outcome_column text, options jsonb)
    RETURNS TABLE (segment text, component text, parent text, old_weight double precision, new_weight double precision,
                   at_bound boolean, rows_used bigint, rows_excluded bigint,
                   auc_before double precision, auc_after double precision,
                   holdout_auc_before double precision, holdout_auc_after double precision,
                   old_normalizer jsonb, new_normalizer jsonb)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fitted jsonb := health_score_internal._fit(_fit_report.model_sql, _fit_report.config, _fit_report.source,
                                      _fit_report.outcome_column, _fit_report.options);
    aucs double precision[];
BEGIN
    PERFORM health_score_internal._require_model_sql(_fit_report.model_sql, _fit_report.config);
    EXECUTE format($q$
        SELECT ARRAY[health_score.auc(health_score.score(%1$s, src), o.churned) FILTER (WHERE NOT o.held),
                     health_score.auc(health_score.score($1, src), o.churned) FILTER (WHERE NOT o.held),
                     health_score.auc(health_score.score(%1$s, src), o.churned) FILTER (WHERE o.held),
                     health_score.auc(health_score.score($1, src), o.churned) FILTER (WHERE o.held)]
          FROM %2$s AS src, LATERAL (SELECT %3$s AS churned, %4$s AS held) o
    $q$, fitted ->> 'model_sql', _fit_report.source, fitted ->> 'outcome_sql', fitted ->> 'held_out')
    INTO aucs USING fitted -> 'model';
    RETURN QUERY
        SELECT s ->> 'segment', c ->> 'component', c ->> 'parent', (c ->> 'old_weight')::float8, (c ->> 'new_weight')::float8,
               (c ->> 'at_bound')::boolean, (s ->> 'rows')::bigint, (s ->> 'excluded')::bigint,
               aucs[1], aucs[2], aucs[3], aucs[4], c -> 'old_normalizer', c -> 'new_normalizer'
          FROM jsonb_array_elements(fitted -> 'segments') WITH ORDINALITY sg(s, sord),
               jsonb_array_elements(s -> 'components') WITH ORDINALITY cm(c, cord)
         ORDER BY sord, cord;
END
$$;
COMMENT ON FUNCTION health_score_internal._fit_report(text, jsonb, regclass, text, jsonb) IS 'fit_report''s work, for a model given as SQL';

CREATE FUNCTION health_score.fit_report(model text, source regclass, outcome_column text, options jsonb DEFAULT '{}')
    RETURNS TABLE (segment text, component text, parent text, old_weight double precision, new_weight double precision,
                   at_bound boolean, rows_used bigint, rows_excluded bigint,
                   auc_before double precision, auc_after double precision,
                   holdout_auc_before double precision, holdout_auc_after double precision,
                   old_normalizer jsonb, new_normalizer jsonb)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM health_score_internal._model_sql(fit_report.model) m,
                    health_score_internal._fit_report(m.model_sql, m.config, fit_report.source, fit_report.outcome_column, fit_report.options) r
$$;
CREATE FUNCTION health_score.fit_report(model jsonb, source regclass, outcome_column text, options jsonb DEFAULT '{}')
    RETURNS TABLE (segment text, component text, parent text, old_weight double precision, new_weight double precision,
                   at_bound boolean, rows_used bigint, rows_excluded bigint,
                   auc_before double precision, auc_after double precision,
                   holdout_auc_before double precision, holdout_auc_after double precision,
                   old_normalizer jsonb, new_normalizer jsonb)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM health_score_internal._model_sql(fit_report.model) m,
                    health_score_internal._fit_report(m.model_sql, m.config, fit_report.source, fit_report.outcome_column, fit_report.options) r
$$;
COMMENT ON FUNCTION health_score.fit_report(text, regclass, text, jsonb) IS
    'What fit changes, per fitted segment (NULL = the base model) and component in model order: old and new weight, whether the leaf sits at the 1e-6 bound, rows used and left out (a leaf reweighted away), the AUC before and after, in-sample and on the holdout, and each leaf''s normalizer before and after';
COMMENT ON FUNCTION health_score.fit_report(jsonb, regclass, text, jsonb) IS 'fit_report with an inline model';


-- _suggest's state is a bytea (an expanded object while the aggregate runs, its serialized
-- bytes where it travels): Citus aggregates it partially on its workers. Citus checks the
-- caller's right to run these functions, so they stay executable by PUBLIC; each refuses a
-- call from outside an aggregate and a state that is not one of its own (docs/security.md).
CREATE FUNCTION health_score_internal._suggest_step(state bytea, design bytea, churned boolean, held boolean, numbers double precision[], categories text[], settings jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_suggest_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._suggest_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_suggest_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._suggest_result(state bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_suggest_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._suggest_step(bytea, bytea, boolean, boolean, double precision[], text[], jsonb) IS
    '_suggest transition: keeps the row''s observations and candidate values, on the training or the held-out side (in place)';
COMMENT ON FUNCTION health_score_internal._suggest_merge(bytea, bytea) IS '_suggest combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._suggest_result(bytea) IS '_suggest final: fits the model''s shapes, ranks the candidates and returns them as JSON text';

CREATE AGGREGATE health_score_internal._suggest(design bytea, churned boolean, held boolean, numbers double precision[],
                                                categories text[], settings jsonb) (
    SFUNC = health_score_internal._suggest_step, STYPE = bytea, SSPACE = 1024,
    FINALFUNC = health_score_internal._suggest_result,
    COMBINEFUNC = health_score_internal._suggest_merge, PARALLEL = SAFE);
COMMENT ON AGGREGATE health_score_internal._suggest(bytea, boolean, boolean, double precision[], text[], jsonb) IS
    'The candidates ranked by the holdout AUC each adds to the model; settings is {"model", "options", "numeric", "categorical"} (the candidates'' column names, in the order of numbers and categories)';

CREATE FUNCTION health_score_internal._suggest(model_sql text, config jsonb, source regclass, outcome_column text, options jsonb)
    RETURNS TABLE (rank integer, column_name text, component jsonb, holdout_auc double precision, leak boolean,
                   holdout_auc_gain double precision, exact boolean)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    outcome text := health_score_internal._outcome_sql(_suggest.source, _suggest.outcome_column);
    opts jsonb := coalesce(_suggest.options, '{}');
    unknown_key text;
    holdout double precision := 0.2;
    key_column text;
    held text;
    included text[];
    excluded text[] := '{}';
    missing_column text;
    read_by_model text[];
    numeric_columns text[];
    numeric_reads text[];
    categorical_columns text[];
    list_option text;
    ranked text;
BEGIN
    PERFORM health_score_internal._require_model_sql(_suggest.model_sql, _suggest.config);
    IF jsonb_typeof(opts) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'suggest: options must be a JSON object' USING ERRCODE = '22023',
            HINT = 'for example ''{"holdout": 0.3, "exclude": ["signup_date"]}''';
    END IF;
    SELECT k INTO unknown_key FROM jsonb_object_keys(opts) k
     WHERE k NOT IN ('holdout', 'key_column', 'include', 'exclude', 'exact', 'max_categories',
                     'knots', 'min_category_rows', 'smoothness', 'l2', 'monotone', 'refit_impute') LIMIT 1;
    IF unknown_key IS NOT NULL THEN
        RAISE EXCEPTION 'suggest: options.%: unknown option', left(unknown_key, 200) USING ERRCODE = '22023',
            HINT = 'the options are holdout, key_column, include, exclude, exact, max_categories, and the shape options of fit: knots, min_category_rows, smoothness, l2, monotone, refit_impute';
    END IF;
    IF opts ? 'holdout' THEN
        IF jsonb_typeof(opts -> 'holdout') IS DISTINCT FROM 'number' OR (opts ->> 'holdout')::numeric <= 0 OR (opts ->> 'holdout')::numeric >= 1 THEN
            RAISE EXCEPTION 'suggest: options.holdout: must be a fraction in (0, 1), not %', left((opts -> 'holdout')::text, 200) USING ERRCODE = '22023',
                HINT = 'the share of accounts held out to measure each candidate on, default 0.2';
        END IF;
        holdout := (opts ->> 'holdout')::float8;
    END IF;
    FOREACH list_option IN ARRAY ARRAY['include', 'exclude'] LOOP
        IF opts ? list_option AND (jsonb_typeof(opts -> list_option) IS DISTINCT FROM 'array'
                                   OR EXISTS (SELECT FROM jsonb_array_elements(opts -> list_option) e WHERE jsonb_typeof(e) <> 'string')) THEN
            RAISE EXCEPTION 'suggest: options.%: must be an array of column names', list_option USING ERRCODE = '22023',
                HINT = 'for example ["plan", "seats"]';
        END IF;
    END LOOP;
    IF opts ? 'include' THEN
        included := ARRAY(SELECT jsonb_array_elements_text(opts -> 'include'));
        SELECT c INTO missing_column FROM unnest(included) c
         WHERE NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = _suggest.source AND a.attname = c
                              AND a.attnum > 0 AND NOT a.attisdropped) LIMIT 1;
        IF missing_column IS NOT NULL THEN
            RAISE EXCEPTION 'suggest: options.include: % has no column %', _suggest.source, quote_ident(left(missing_column, 200))
                USING ERRCODE = '42703', HINT = health_score_internal._columns_hint(_suggest.source);
        END IF;
    END IF;
    IF opts ? 'exclude' THEN
        excluded := ARRAY(SELECT jsonb_array_elements_text(opts -> 'exclude'));
    END IF;
    IF opts ? 'key_column' THEN
        IF jsonb_typeof(opts -> 'key_column') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'suggest: options.key_column: must be a column name, not %', left((opts -> 'key_column')::text, 200) USING ERRCODE = '22023',
                HINT = 'the column that identifies each account; the holdout hashes it';
        END IF;
        key_column := opts ->> 'key_column';
        PERFORM health_score_internal._require_column('suggest', _suggest.source, key_column);
    ELSE
        SELECT a.attname INTO key_column
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = _suggest.source AND i.indisprimary AND i.indnkeyatts = 1;
    END IF;
    -- without a key, a row's own text decides its side: identical rows fall on the same side
    held := CASE WHEN key_column IS NULL THEN format('health_score_internal._held_out(src::text, %s)', holdout)
                 ELSE format('health_score_internal._held_out(src.%I::text, %s)', key_column, holdout) END;
    -- the columns the model reads already (its leaves' inputs and its segment input)
    read_by_model := ARRAY(
        SELECT coalesce(c ->> 'input', c ->> 'name')
          FROM jsonb_path_query(_suggest.config, 'lax $.**') c
         WHERE jsonb_typeof(c) = 'object' AND c ? 'normalize' AND jsonb_typeof(c -> 'name') = 'string'
        UNION ALL SELECT _suggest.config -> 'segments' ->> 'input' WHERE _suggest.config -> 'segments' ? 'input');
    -- a numeric column beyond double precision's range (or NaN) reads as missing, as a
    -- non-finite number does, instead of failing the cast
    SELECT array_agg(a.attname ORDER BY a.attnum) FILTER (WHERE t.kind = 'numeric'),
           array_agg(CASE WHEN coalesce(nullif(ty.typbasetype, 0), ty.oid) = 'numeric'::regtype
                          THEN format('CASE WHEN pg_catalog.abs(src.%1$I) OPERATOR(pg_catalog.<=) 1.7976931348623157e308 THEN src.%1$I::pg_catalog.float8 END', a.attname)
                          ELSE format('src.%I::pg_catalog.float8', a.attname) END ORDER BY a.attnum) FILTER (WHERE t.kind = 'numeric'),
           array_agg(a.attname ORDER BY a.attnum) FILTER (WHERE t.kind = 'categorical')
      INTO numeric_columns, numeric_reads, categorical_columns
      FROM pg_attribute a
      JOIN pg_type ty ON ty.oid = a.atttypid,
           LATERAL (SELECT CASE WHEN coalesce(nullif(ty.typbasetype, 0), ty.oid) IN
                                     ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'numeric'::regtype,
                                      'real'::regtype, 'double precision'::regtype) THEN 'numeric'
                                WHEN coalesce(nullif(ty.typbasetype, 0), ty.oid) = 'boolean'::regtype
                                  OR ty.typcategory IN ('S', 'E') THEN 'categorical' END AS kind) t
     WHERE a.attrelid = _suggest.source AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname <> _suggest.outcome_column AND a.attname IS DISTINCT FROM key_column
       AND a.attname <> ALL (read_by_model) AND a.attname <> ALL (excluded)
       AND (included IS NULL OR a.attname = ANY (included));
    IF numeric_columns IS NULL AND categorical_columns IS NULL THEN
        RAISE EXCEPTION 'suggest: % has no column to suggest', _suggest.source USING ERRCODE = '22023',
            HINT = 'candidates are the columns the model does not read, other than the key and the outcome: numbers, booleans and text with few distinct values';
    END IF;
    EXECUTE format('SELECT health_score_internal._suggest(health_score_internal._fit_shape_row($1, src), %s, %s, %s, %s, $2) FROM %s AS src',
                   outcome, held,
                   CASE WHEN numeric_columns IS NULL THEN '''{}''::pg_catalog.float8[]'
                        ELSE 'ARRAY[' || array_to_string(numeric_reads, ', ') || ']' END,
                   CASE WHEN categorical_columns IS NULL THEN '''{}''::pg_catalog.text[]'
                        ELSE 'ARRAY[' || (SELECT string_agg(format('src.%I::pg_catalog.text', c), ', ') FROM unnest(categorical_columns) c) || ']' END,
                   _suggest.source)
       INTO ranked
      USING health_score_internal._shape_design_model(_suggest.config),
            jsonb_build_object('model', _suggest.config, 'options', opts,
                               'numeric', coalesce(numeric_columns, '{}'), 'categorical', coalesce(categorical_columns, '{}'));
    RETURN QUERY
    SELECT (s ->> 'rank')::integer, s ->> 'column', s -> 'component', (s ->> 'holdout_auc')::float8, (s ->> 'leak')::boolean,
           (s ->> 'gain')::float8, (s ->> 'exact')::boolean
      FROM jsonb_array_elements(ranked::jsonb -> 'suggestions') s
     ORDER BY 1;
END
$$;
COMMENT ON FUNCTION health_score_internal._suggest(text, jsonb, regclass, text, jsonb) IS 'suggest''s work, for a model given as SQL';

CREATE FUNCTION health_score.suggest(model text, source regclass, outcome_column text, options jsonb DEFAULT '{}')
    RETURNS TABLE (rank integer, column_name text, component jsonb, holdout_auc double precision, leak boolean,
                   holdout_auc_gain double precision, exact boolean)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM health_score_internal._model_sql(suggest.model) m,
                    health_score_internal._suggest(m.model_sql, m.config, suggest.source, suggest.outcome_column, suggest.options) r
$$;
CREATE FUNCTION health_score.suggest(model jsonb, source regclass, outcome_column text, options jsonb DEFAULT '{}')
    RETURNS TABLE (rank integer, column_name text, component jsonb, holdout_auc double precision, leak boolean,
                   holdout_auc_gain double precision, exact boolean)
LANGUAGE sql STABLE AS $$
    SELECT r.* FROM health_score_internal._model_sql(suggest.model) m,
                    health_score_internal._suggest(m.model_sql, m.config, suggest.source, suggest.outcome_column, suggest.options) r
$$;
COMMENT ON FUNCTION health_score.suggest(text, regclass, text, jsonb) IS
    'The source''s other columns (numbers, booleans, text with few values) that would most improve the model, each as a component with a fitted normalizer and a weight on the scale of the model''s top level, ranked by the holdout AUC of the model refitted with it (weights and shapes; exact for the best 10, estimated for the rest); leak marks a column that separates the outcome on its own, ranked last. Options: holdout (0.2), key_column, include, exclude, exact (10), max_categories (20), and fit''s shape options';
COMMENT ON FUNCTION health_score.suggest(jsonb, regclass, text, jsonb) IS 'suggest with an inline model';

CREATE FUNCTION health_score.add_components(model jsonb, components jsonb, parent text DEFAULT NULL) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'hs_add_components' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score.add_components(jsonb, jsonb, text) IS
    'The model with the components of a JSON array added at its top level (or under the group named parent), weights as given; a name already in the model becomes name_2, name_3, ...; the result is checked as a model (22023 with the path)';


-- Issue 21, item 1: under Citus the model named by a constant reaches the workers as its
-- version's config, put in by the planner support function (src/pg/row_support.rs), which the
-- jsonb forms of the scoring functions now have too
ALTER FUNCTION health_score.score(text, jsonb) SUPPORT health_score_internal._row_support;
ALTER FUNCTION health_score.band(text, jsonb) SUPPORT health_score_internal._row_support;
ALTER FUNCTION health_score.assess(text, jsonb) SUPPORT health_score_internal._row_support;
ALTER FUNCTION health_score.explain(text, jsonb) SUPPORT health_score_internal._row_support;
ALTER FUNCTION health_score.churn_probability(text, jsonb) SUPPORT health_score_internal._row_support;

-- Issue 20: fit's and suggest's holdout in C (sql/fit.sql): the same md5 rule, without the
-- SQL form's text and numeric casts, which took longer than the rest of a row's work
CREATE OR REPLACE FUNCTION health_score_internal._held_out(entity_key text, fraction double precision) RETURNS boolean
    AS 'MODULE_PATHNAME', 'hs_held_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-------------------------------------------------------------------------------------------
-- Issue 21, item 3: auc and trend keep flat bytea states (sql/outcomes.sql, sql/trend.sql),
-- which Citus aggregates partially on its workers; trend's internal functions go
-------------------------------------------------------------------------------------------
-- Citus checks the caller's right to run these functions, so they stay executable by PUBLIC;
-- each refuses a call from outside an aggregate and a state that is not one of its own
-- (docs/security.md).
CREATE FUNCTION health_score_internal._auc_step(state bytea, score double precision, churned boolean) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_auc_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._auc_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_auc_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._auc_result(state bytea) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_auc_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._auc_step(bytea, double precision, boolean) IS 'auc transition: keeps the score in its class, in the flat state (in place)';
COMMENT ON FUNCTION health_score_internal._auc_merge(bytea, bytea) IS 'auc combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._auc_result(bytea) IS 'auc final: counts the pairs over the sorted scores';
CREATE OR REPLACE AGGREGATE health_score.auc(score double precision, churned boolean) (
    SFUNC = health_score_internal._auc_step, STYPE = bytea, SSPACE = 160,
    FINALFUNC = health_score_internal._auc_result, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score_internal._auc_merge, PARALLEL = SAFE);

CREATE FUNCTION health_score_internal._trend_step(state bytea, at timestamptz, score double precision) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_trend_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._trend_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_trend_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._trend_result(state bytea) RETURNS health_score.trend_summary
    AS 'MODULE_PATHNAME', 'hs_trend_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._trend_step(bytea, timestamptz, double precision) IS 'trend transition: adds one (time, score) point to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._trend_merge(bytea, bytea) IS 'trend combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._trend_result(bytea) IS 'trend final: the summary (reads the state only, so it also serves window frames)';
CREATE OR REPLACE AGGREGATE health_score.trend(at timestamptz, score double precision) (
    SFUNC = health_score_internal._trend_step, STYPE = bytea, SSPACE = 112,
    FINALFUNC = health_score_internal._trend_result, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score_internal._trend_merge, PARALLEL = SAFE);
DROP FUNCTION health_score_internal._trend_trans(internal, timestamptz, double precision),
              health_score_internal._trend_combine(internal, internal),
              health_score_internal._trend_serialize(internal),
              health_score_internal._trend_deserialize(bytea, internal),
              health_score_internal._trend_final(internal);

-------------------------------------------------------------------------------------------
-- Issue 21, item 3: score_agg keeps a flat bytea state (sql/score_agg.sql), which Citus
-- aggregates partially on its workers; its internal functions go
-------------------------------------------------------------------------------------------
-- The state is a flat bytea appended to in place (not internal): Citus aggregates it
-- partially on its workers. Citus checks the caller's right to run these functions and calls
-- them without the call's expression (so one transition function per argument types); they
-- stay executable by PUBLIC, and each refuses a call from outside an aggregate and a state
-- that is not one of its own (docs/security.md).
CREATE FUNCTION health_score_internal._score_agg_step(state bytea, model jsonb, input_key text, value jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_step_jj' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_step(state bytea, model jsonb, input_key text, value double precision) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_step_jf' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_step(state bytea, model jsonb, input_key text, value text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_step_jt' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_step(state bytea, model text, input_key text, value jsonb) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_step_nj' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_step(state bytea, model text, input_key text, value double precision) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_step_nf' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_step(state bytea, model text, input_key text, value text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_step_nt' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_score_agg_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._score_agg_result(state bytea) RETURNS double precision
    AS 'MODULE_PATHNAME', 'hs_score_agg_result' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._score_agg_step(bytea, jsonb, text, jsonb) IS 'score_agg transition: appends (input_key, value) to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._score_agg_step(bytea, jsonb, text, double precision) IS 'score_agg transition: appends (input_key, value) to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._score_agg_step(bytea, jsonb, text, text) IS 'score_agg transition: appends (input_key, value) to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._score_agg_step(bytea, text, text, jsonb) IS 'score_agg transition: appends (input_key, value) to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._score_agg_step(bytea, text, text, double precision) IS 'score_agg transition: appends (input_key, value) to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._score_agg_step(bytea, text, text, text) IS 'score_agg transition: appends (input_key, value) to the flat state, in place';
COMMENT ON FUNCTION health_score_internal._score_agg_merge(bytea, bytea) IS 'score_agg combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._score_agg_result(bytea) IS 'score_agg final: scores the collected object';

CREATE OR REPLACE AGGREGATE health_score.score_agg(model jsonb, input_key text, value jsonb) (
    SFUNC = health_score_internal._score_agg_step, STYPE = bytea, FINALFUNC = health_score_internal._score_agg_result,
    COMBINEFUNC = health_score_internal._score_agg_merge, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE health_score.score_agg(model jsonb, input_key text, value double precision) (
    SFUNC = health_score_internal._score_agg_step, STYPE = bytea, FINALFUNC = health_score_internal._score_agg_result,
    COMBINEFUNC = health_score_internal._score_agg_merge, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE health_score.score_agg(model jsonb, input_key text, value text) (
    SFUNC = health_score_internal._score_agg_step, STYPE = bytea, FINALFUNC = health_score_internal._score_agg_result,
    COMBINEFUNC = health_score_internal._score_agg_merge, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE health_score.score_agg(model text, input_key text, value jsonb) (
    SFUNC = health_score_internal._score_agg_step, STYPE = bytea, FINALFUNC = health_score_internal._score_agg_result,
    COMBINEFUNC = health_score_internal._score_agg_merge, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE health_score.score_agg(model text, input_key text, value double precision) (
    SFUNC = health_score_internal._score_agg_step, STYPE = bytea, FINALFUNC = health_score_internal._score_agg_result,
    COMBINEFUNC = health_score_internal._score_agg_merge, PARALLEL = SAFE);
CREATE OR REPLACE AGGREGATE health_score.score_agg(model text, input_key text, value text) (
    SFUNC = health_score_internal._score_agg_step, STYPE = bytea, FINALFUNC = health_score_internal._score_agg_result,
    COMBINEFUNC = health_score_internal._score_agg_merge, PARALLEL = SAFE);
DROP FUNCTION health_score_internal._score_agg_trans(internal, jsonb, text, jsonb),
              health_score_internal._score_agg_trans(internal, jsonb, text, double precision),
              health_score_internal._score_agg_trans(internal, jsonb, text, text),
              health_score_internal._score_agg_trans(internal, text, text, jsonb),
              health_score_internal._score_agg_trans(internal, text, text, double precision),
              health_score_internal._score_agg_trans(internal, text, text, text),
              health_score_internal._score_agg_combine(internal, internal),
              health_score_internal._score_agg_serialize(internal),
              health_score_internal._score_agg_deserialize(bytea, internal),
              health_score_internal._score_agg_final(internal);

-------------------------------------------------------------------------------------------
-- Issue 21: the functions that keep the cluster's own state run on the Citus coordinator
-- only (sql/citus.sql); the others got the check where they are defined above
-------------------------------------------------------------------------------------------
CREATE FUNCTION health_score_internal._require_coordinator(what text) RETURNS void
    AS 'MODULE_PATHNAME', 'hs_require_coordinator' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._require_coordinator(text) IS
    'Raises 0A000 naming the function on a worker of a Citus cluster (a server whose pg_dist_local_group is not 0); nothing elsewhere';

CREATE OR REPLACE FUNCTION health_score.unschedule(job_id bigint) RETURNS boolean
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

-------------------------------------------------------------------------------------------
-- Issue 21, item 3: _calibration keeps auc's flat state; auc's internal functions go
-------------------------------------------------------------------------------------------
CREATE FUNCTION health_score_internal._calibration_result(state bytea) RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'hs_calibration_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._calibration_result(bytea) IS
    '_calibration final: {intercept, slope} of the L2-regularised logistic regression of the outcome on the score';
CREATE OR REPLACE AGGREGATE health_score_internal._calibration(score double precision, churned boolean) (
    SFUNC = health_score_internal._auc_step, STYPE = bytea, SSPACE = 160,
    FINALFUNC = health_score_internal._calibration_result, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score_internal._auc_merge, PARALLEL = SAFE);
DROP FUNCTION health_score_internal._auc_trans(internal, double precision, boolean),
              health_score_internal._auc_combine(internal, internal),
              health_score_internal._auc_serialize(internal),
              health_score_internal._auc_deserialize(bytea, internal),
              health_score_internal._auc_final(internal),
              health_score_internal._calibration_final(internal);

-------------------------------------------------------------------------------------------
-- Issue 21, items 1, 4, 5 and 7: the registry replicated to every node, the history
-- distributed and brought back (sql/citus.sql), snapshots and alerts over a distributed
-- history (their new bodies are above, where 0.3.0 replaced them), the current state
-- recomputed on demand (sql/latest.sql)
-------------------------------------------------------------------------------------------
-- The manual inputs applied to a snapshot row, with the model's own band beside the override
-- that replaced it. Immutable (to_jsonb of a text is; PostgreSQL marks it stable for every
-- type), which Citus requires of a function in a CASE of a distributed write.
CREATE FUNCTION health_score_internal._with_model_band(manual jsonb, model_band text) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_set(manual, '{band,model_band}', coalesce(to_jsonb(model_band), 'null'::jsonb))
$$;
COMMENT ON FUNCTION health_score_internal._with_model_band(jsonb, text) IS
    'The manual inputs applied to a snapshot row (health_score.scores'' manual JSON) with "model_band" set in its band override';

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

-- The current state of a model (or of every model) recomputed from the history in one
-- statement: what a distributed history needs after rows were changed by hand
-- (docs/scale-out.md), and a check anywhere (it gives the state the triggers keep).
CREATE FUNCTION health_score.refresh_current_state(model text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    kept bigint;
BEGIN
    PERFORM health_score_internal._require_coordinator('refresh_current_state');
    DELETE FROM health_score_internal.current_state c
     WHERE refresh_current_state.model IS NULL OR c.model = refresh_current_state.model;
    INSERT INTO health_score_internal.current_state
    SELECT l.model, l.entity_key, l.scored_at, l.model_version, l.score, l.band, l.band_rank, l.coverage, l.segment,
           l.previous_at, l.previous_score, l.previous_band, l.previous_band_rank, l.model_band, l.previous_model_band
      FROM (SELECT s.model, s.entity_key, s.scored_at, s.model_version, s.score, s.band, s.band_rank, s.coverage, s.segment,
                   lead(s.scored_at) OVER w AS previous_at, lead(s.score) OVER w AS previous_score,
                   lead(s.band) OVER w AS previous_band, lead(s.band_rank) OVER w AS previous_band_rank,
                   s.manual->'band'->>'model_band' AS model_band,
                   lead(s.manual->'band'->>'model_band') OVER w AS previous_model_band,
                   row_number() OVER w AS n
              FROM health_score_internal.score_rows s
             WHERE refresh_current_state.model IS NULL OR s.model = refresh_current_state.model
            WINDOW w AS (PARTITION BY s.entity_key, s.model ORDER BY s.scored_at DESC)) l
     WHERE l.n = 1;
    GET DIAGNOSTICS kept = ROW_COUNT;
    RETURN kept;
END
$$;
COMMENT ON FUNCTION health_score.refresh_current_state(text) IS
    'Recomputes the current state (health_score.latest) of a model, or of every model, from its stored snapshots; returns the entities kept. Needed after changing a distributed history by hand';
REVOKE EXECUTE ON FUNCTION health_score.refresh_current_state(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score.refresh_current_state(text) TO health_score_admin;

-------------------------------------------------------------------------------------------
-- Issue 21, item 3: backtest and fit keep bytea states (expanded objects while the aggregate
-- runs), which Citus aggregates partially on its workers; their internal functions go
-- (parent_health, the shape fit and suggest, new in 0.3.0, have them where they are created)
-------------------------------------------------------------------------------------------
-- _backtest's state is a bytea (an expanded object while the aggregate runs, its serialized
-- bytes where it travels): Citus aggregates it partially on its workers. Citus checks the
-- caller's right to run these functions, so they stay executable by PUBLIC; each refuses a
-- call from outside an aggregate and a state that is not one of its own (docs/security.md).
CREATE FUNCTION health_score_internal._backtest_step(state bytea, score double precision, band text, band_rank integer, churned boolean) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_backtest_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._backtest_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_backtest_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._backtest_result(state bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_backtest_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._backtest_step(bytea, double precision, text, integer, boolean) IS
    '_backtest transition: counts the account, in its band, and keeps its score for the AUC (in place)';
COMMENT ON FUNCTION health_score_internal._backtest_merge(bytea, bytea) IS '_backtest combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._backtest_result(bytea) IS '_backtest final: the totals, AUC and bands as JSON text';
CREATE OR REPLACE AGGREGATE health_score_internal._backtest(score double precision, band text, band_rank integer, churned boolean) (
    SFUNC = health_score_internal._backtest_step, STYPE = bytea, SSPACE = 128,
    FINALFUNC = health_score_internal._backtest_result, FINALFUNC_MODIFY = READ_ONLY,
    COMBINEFUNC = health_score_internal._backtest_merge, PARALLEL = SAFE);
DROP FUNCTION health_score_internal._backtest_trans(internal, double precision, text, integer, boolean),
              health_score_internal._backtest_combine(internal, internal),
              health_score_internal._backtest_serialize(internal),
              health_score_internal._backtest_deserialize(bytea, internal),
              health_score_internal._backtest_final(internal);

-- _fit's state is a bytea (an expanded object while the aggregate runs, its serialized
-- bytes where it travels): Citus aggregates it partially on its workers. Citus checks the
-- caller's right to run these functions, so they stay executable by PUBLIC; each refuses a
-- call from outside an aggregate and a state that is not one of its own (docs/security.md).
CREATE FUNCTION health_score_internal._fit_step(state bytea, design double precision[], churned boolean, l2 double precision) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_fit_step' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._fit_merge(state bytea, other bytea) RETURNS bytea
    AS 'MODULE_PATHNAME', 'hs_fit_merge' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION health_score_internal._fit_result(state bytea) RETURNS text
    AS 'MODULE_PATHNAME', 'hs_fit_result' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION health_score_internal._fit_step(bytea, double precision[], boolean, double precision) IS '_fit transition: keeps the design in its segment''s data (in place)';
COMMENT ON FUNCTION health_score_internal._fit_merge(bytea, bytea) IS '_fit combine: merges two partial states (parallel aggregation, Citus workers)';
COMMENT ON FUNCTION health_score_internal._fit_result(bytea) IS '_fit final: solves each segment''s constrained logistic regression (rows sorted first, so the result does not depend on their order)';

CREATE OR REPLACE AGGREGATE health_score_internal._fit(design double precision[], churned boolean, l2 double precision) (
    SFUNC = health_score_internal._fit_step, STYPE = bytea, SSPACE = 1024,
    FINALFUNC = health_score_internal._fit_result,
    COMBINEFUNC = health_score_internal._fit_merge, PARALLEL = SAFE);
DROP FUNCTION health_score_internal._fit_trans(internal, double precision[], boolean, double precision),
              health_score_internal._fit_combine(internal, internal),
              health_score_internal._fit_serialize(internal),
              health_score_internal._fit_deserialize(bytea, internal),
              health_score_internal._fit_final(internal);

-------------------------------------------------------------------------------------------
-- Last: the privileges users granted on the extension's objects stay theirs
-------------------------------------------------------------------------------------------
-- Every GRANT and REVOKE run by this script on one of the extension's objects recorded the
-- object's whole ACL as the extension's initial privileges, the users' own grants on it (such
-- as EXECUTE on snapshot to a role of theirs) included, and pg_dump leaves initial privileges
-- out. The extension's scripts grant to PUBLIC and its roles only (the owner's own entry
-- aside): whatever else is recorded is a user's, and is taken out, so that pg_dump keeps it.
UPDATE pg_catalog.pg_init_privs i
   SET initprivs = ARRAY(SELECT u.a FROM pg_catalog.unnest(i.initprivs) WITH ORDINALITY u(a, n),
                                         LATERAL (SELECT e.grantee, e.grantor FROM pg_catalog.aclexplode(ARRAY[u.a]) e LIMIT 1) e
                          WHERE e.grantee = 0 OR e.grantee = e.grantor
                             OR e.grantee IN (SELECT r.oid FROM pg_catalog.pg_roles r
                                               WHERE r.rolname IN ('health_score_reader', 'health_score_admin', 'health_score_csm'))
                          ORDER BY u.n)
 WHERE EXISTS (SELECT FROM pg_catalog.pg_depend d, pg_catalog.pg_extension x
                WHERE x.extname = 'health_score' AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
                  AND d.refobjid = x.oid AND d.deptype = 'e' AND d.classid = i.classoid AND d.objid = i.objoid);
