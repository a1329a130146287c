-- health_score 0.2.0 -> 0.3.0, the version being written (docs/upgrading.md): every change
-- to an SQL object since 0.2.0, in the order made. Frozen when 0.3.0 is released.
\echo Use "ALTER EXTENSION health_score UPDATE TO '0.3.0'" to load this file. \quit

-- rescore: a version reference as the model ('churn@5') is 22023 (its version was ignored)
CREATE OR REPLACE FUNCTION health_score.rescore(model text, version integer, from_at timestamptz, to_at timestamptz)
    RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    model_name text := regexp_replace(rescore.model, '@[^@]*$', '');
    pinned text;
    keys text[];
    without_inputs bigint;
    lacking bigint;
    written bigint;
BEGIN
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
    pinned := model_name || '@' || rescore.version;
    PERFORM health_score._resolve_model(pinned);
    -- one rescore per model version at a time: two over overlapping ranges would update the
    -- same rows, in whatever order each one's plan reads them (a deadlock waiting to happen)
    PERFORM pg_advisory_xact_lock(hashtext('health_score.rescore'), hashtext(pinned));
    keys := health_score._input_keys(pinned);
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
                   health_score._snapshot_row(pinned, 'entity_key', s.entity_key, s.inputs) AS e
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
CREATE FUNCTION health_score._record_model_version(name text, config jsonb, caller oid) RETURNS integer
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
    PERFORM health_score._require_valid_model(_record_model_version.config);
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
COMMENT ON FUNCTION health_score._record_model_version(text, jsonb, oid) IS
    'Validates and registers a model version for the role caller; run by health_score.set_model as the registry''s owner';

INSERT INTO health_score.model_names (name, last_version)
SELECT v.name, max(v.version) FROM health_score.model_versions v GROUP BY v.name;

CREATE OR REPLACE FUNCTION health_score.set_model(name text, config jsonb) RETURNS integer
    AS 'MODULE_PATHNAME', 'hs_set_model' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION health_score.set_model(text, jsonb) IS
    'Validates a model and registers it as the next immutable version of that name; returns the version number. Scoring by name uses the latest version; ''name@3'' pins version 3.';

REVOKE EXECUTE ON FUNCTION health_score._record_model_version(text, jsonb, oid) FROM PUBLIC;
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
REVOKE INSERT, UPDATE, DELETE ON health_score.views FROM health_score_admin;

DROP FUNCTION health_score._generate_view(name, name, text, regclass, text);
-- (Re)generates one view for the latest version of its model. Every identifier is parsed or
-- taken from the catalogs and quoted with %I; values go in with %L. Runs as the registry's
-- owner (called by create_view through src/pg/registry.rs, by refresh_views and by the
-- trigger on new versions; nobody else can execute it), so it checks what PostgreSQL would
-- check of view_owner, and hands the view to view_owner: the view reads its source with
-- view_owner's rights, never the owner's or those of whoever registered a new version.
CREATE FUNCTION health_score._generate_view(view_schema name, view_name name, model text, source regclass,
                                            key_column text, view_owner name, creating boolean)
    RETURNS regclass
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    shown_version integer;
    config jsonb;
    target text := format('%I.%I', _generate_view.view_schema, _generate_view.view_name);
    select_list text;
    c record;
    saved_acl aclitem[];
    g record;
    result regclass;
    owner_id oid := to_regrole(quote_ident(_generate_view.view_owner));
    existing record;
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
    PERFORM pg_advisory_xact_lock(hashtext('health_score.create_view'), hashtext(target));
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
    shown_version := health_score._resolve_model(_generate_view.model);
    SELECT v.config INTO config FROM health_score.model_versions v
     WHERE v.name = _generate_view.model AND v.version = shown_version;
    PERFORM health_score._require_column('create_view', _generate_view.source, _generate_view.key_column);
    IF _generate_view.key_column IN ('score', 'band', 'coverage', 'segment')
       OR EXISTS (SELECT FROM health_score._components(config) t WHERE t.component || '_points' = _generate_view.key_column) THEN
        RAISE EXCEPTION 'create_view: the key column % would clash with a column of the view', quote_ident(_generate_view.key_column)
            USING ERRCODE = '42701', HINT = 'rename the key column in a view of the source';
    END IF;
    IF EXISTS (SELECT FROM health_score._components(config) t WHERE octet_length(t.component || '_points') > 63) THEN
        RAISE EXCEPTION 'create_view: a component name is too long for a column name ending in _points (63 bytes at most)'
            USING ERRCODE = '42622', HINT = 'component names of up to 56 bytes fit; rename the component in a new version of the model';
    END IF;
    select_list := format('src.%I, r.score, r.band, r.coverage, r.segment', _generate_view.key_column);
    FOR c IN SELECT t.component, t.model_order FROM health_score._components(config) t ORDER BY t.model_order LOOP
        select_list := select_list || format(', r.points[%s] AS %I', c.model_order, c.component || '_points');
    END LOOP;
    -- the version is pinned in the view, so its columns always match the points it reads
    BEGIN
        EXECUTE format('CREATE OR REPLACE VIEW %s AS SELECT %s FROM %s AS src, LATERAL health_score._view_row(%L, src) AS r',
                       target, select_list, _generate_view.source, _generate_view.model || '@' || shown_version);
    EXCEPTION WHEN invalid_table_definition THEN
        -- the columns changed: recreate the view, with the grants it had
        SELECT cl.relacl INTO saved_acl FROM pg_class cl WHERE cl.oid = target::regclass;
        EXECUTE format('DROP VIEW %s', target);
        EXECUTE format('CREATE VIEW %s AS SELECT %s FROM %s AS src, LATERAL health_score._view_row(%L, src) AS r',
                       target, select_list, _generate_view.source, _generate_view.model || '@' || shown_version);
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
    EXECUTE format('COMMENT ON COLUMN %s.segment IS %L', target, 'Segment override applied, NULL for the base model');
    FOR c IN SELECT t.component, t.parent, t.description FROM health_score._components(config) t LOOP
        EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', target, c.component || '_points',
                       coalesce(c.description || '. ', '') || format('Points the component %s contributes to the score%s',
                                c.component, coalesce(' (part of ' || c.parent || ')', '')));
    END LOOP;
    INSERT INTO health_score.views AS v (view_schema, view_name, model, model_version, source, key_column, view_owner)
    VALUES (_generate_view.view_schema, _generate_view.view_name, _generate_view.model, shown_version,
            _generate_view.source, _generate_view.key_column, _generate_view.view_owner)
    ON CONFLICT ON CONSTRAINT views_pkey DO UPDATE
       SET model = excluded.model, model_version = excluded.model_version, source = excluded.source,
           key_column = excluded.key_column, refreshed_at = excluded.refreshed_at, view_owner = excluded.view_owner;
    RETURN result;
END
$$;
COMMENT ON FUNCTION health_score._generate_view(name, name, text, regclass, text, name, boolean) IS
    'Generates or regenerates one view of health_score.views for the latest version of its model, owned by view_owner; run as the registry''s owner';

CREATE FUNCTION health_score._create_view(view_schema name, view_name name, model text, source regclass, key_column text)
    RETURNS regclass
    AS 'MODULE_PATHNAME', 'hs_create_view' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION health_score._create_view(name, name, text, regclass, text) IS
    'Generates a view owned by the caller and registers it: health_score.create_view once the name is parsed';

-- No SET search_path here: an unqualified view name goes, as CREATE VIEW would put it, in the
-- caller's current schema. So every name below is qualified, operators and types included
-- (a caller's search_path may put a planted public.= ahead of pg_catalog's), and the SQL is
-- built (and run with a pinned search_path) by _generate_view.
CREATE OR REPLACE FUNCTION health_score.create_view(view_name text, model text, source regclass, key_column text)
    RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    parts pg_catalog.text[];
    schema_name pg_catalog.name;
BEGIN
    IF create_view.view_name IS NULL OR create_view.model IS NULL OR create_view.source IS NULL OR create_view.key_column IS NULL THEN
        RAISE EXCEPTION 'create_view: no argument may be NULL' USING ERRCODE = '22023',
            HINT = 'for example health_score.create_view(''account_health'', ''churn'', ''accounts'', ''account_id'')';
    END IF;
    -- SQL identifier syntax, as regclass input: name or schema.name, quoted where needed
    BEGIN
        parts := pg_catalog.parse_ident(create_view.view_name);
    EXCEPTION WHEN invalid_parameter_value THEN
        RAISE EXCEPTION 'create_view: % is not a view name (name or schema.name)', pg_catalog.quote_literal(create_view.view_name)
            USING ERRCODE = '42602', HINT = 'quote a name with spaces, dots or capitals as SQL does: ''"My View"'' or ''reports."My View"''';
    END;
    IF pg_catalog.cardinality(parts) OPERATOR(pg_catalog.=) 1 THEN
        schema_name := pg_catalog.current_schema();
    ELSIF pg_catalog.cardinality(parts) OPERATOR(pg_catalog.=) 2 THEN
        schema_name := parts[1];
    ELSE
        RAISE EXCEPTION 'create_view: % is not a view name (name or schema.name)', pg_catalog.quote_literal(create_view.view_name)
            USING ERRCODE = '42602', HINT = 'quote a name with dots or capitals as SQL does: ''"My View"'' or ''reports."My View"''';
    END IF;
    IF schema_name IS NULL OR NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) schema_name) THEN
        RAISE EXCEPTION 'create_view: schema % does not exist', coalesce(pg_catalog.quote_ident(schema_name), '(none)') USING ERRCODE = '3F000',
            HINT = 'create the schema first, or name the view without a schema to create it in the current one';
    END IF;
    RETURN health_score._create_view(schema_name, parts[pg_catalog.cardinality(parts)], create_view.model,
                                     create_view.source, create_view.key_column);
END
$$;
COMMENT ON FUNCTION health_score.create_view(text, text, regclass, text) IS
    'Creates or replaces a plain view over a source: its key, score, band, coverage, segment and one <component>_points column per component, with comments from the model; follows new model versions automatically';

-- SECURITY DEFINER (docs/security.md): regenerates views of any owner, each for its owner
CREATE OR REPLACE FUNCTION health_score.refresh_views(model text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
    refreshed integer := 0;
BEGIN
    FOR v IN SELECT * FROM health_score.views w WHERE w.model = refresh_views.model ORDER BY w.view_schema, w.view_name LOOP
        PERFORM health_score._generate_view(v.view_schema, v.view_name, v.model, v.source, v.key_column, v.view_owner, false);
        refreshed := refreshed + 1;
    END LOOP;
    RETURN refreshed;
END
$$;
COMMENT ON FUNCTION health_score.refresh_views(text) IS
    'Regenerates the views of a model for its latest version (set_model does it already; returns how many)';

-- a new version regenerates the model's views; one that cannot be (another owner, a
-- dependent view) keeps showing its version, with a WARNING, and never blocks set_model
CREATE OR REPLACE FUNCTION health_score._refresh_views_on_new_version() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    -- (views already at this version or a later one, as while a dump is restored, stay)
    FOR v IN SELECT * FROM health_score.views w WHERE w.model = NEW.name AND w.model_version < NEW.version
              ORDER BY w.view_schema, w.view_name LOOP
        BEGIN
            PERFORM health_score._generate_view(v.view_schema, v.view_name, v.model, v.source, v.key_column, v.view_owner, false);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'view %.% still shows % version %: %', quote_ident(v.view_schema), quote_ident(v.view_name),
                v.model, v.model_version, SQLERRM
                USING HINT = 'fix the cause and run SELECT health_score.refresh_views(' || quote_literal(v.model) || ')';
        END;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION health_score._refresh_views_on_new_version() IS
    'Trigger function: regenerates the generated views of a model that got a new version';
-- Removes a view and its registration. The view is dropped with the caller's rights; the
-- registration then goes by _forget_view, which removes only registrations of views that no
-- longer exist (so, SECURITY DEFINER, it lets nobody remove another's view).
CREATE FUNCTION health_score.drop_view(view_name regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    registered record;
BEGIN
    SELECT w.view_schema, w.view_name INTO registered
      FROM health_score.views w JOIN pg_class cl ON cl.relname = w.view_name
      JOIN pg_namespace n ON n.oid = cl.relnamespace AND n.nspname = w.view_schema
     WHERE cl.oid = drop_view.view_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'drop_view: % is not a view made by health_score.create_view', drop_view.view_name
            USING ERRCODE = '42809', HINT = 'health_score.views lists the generated views';
    END IF;
    EXECUTE format('DROP VIEW %s', drop_view.view_name);
    PERFORM health_score._forget_view(registered.view_schema, registered.view_name);
END
$$;
COMMENT ON FUNCTION health_score.drop_view(regclass) IS
    'Drops a view made by health_score.create_view (as DROP VIEW would: its owner only) and its registration';

-- SECURITY DEFINER (docs/security.md): health_score.views is the registry owner's to write
CREATE FUNCTION health_score._forget_view(view_schema name, view_name name) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF to_regclass(format('%I.%I', _forget_view.view_schema, _forget_view.view_name)) IS NOT NULL THEN
        RAISE EXCEPTION 'drop_view: view %.% still exists', quote_ident(_forget_view.view_schema), quote_ident(_forget_view.view_name)
            USING ERRCODE = '55006', HINT = 'drop it first: health_score.drop_view does both';
    END IF;
    DELETE FROM health_score.views w WHERE w.view_schema = _forget_view.view_schema AND w.view_name = _forget_view.view_name;
END
$$;
COMMENT ON FUNCTION health_score._forget_view(name, name) IS
    'Removes the registration of a generated view that no longer exists (health_score.drop_view)';

REVOKE EXECUTE ON FUNCTION health_score.create_view(text, text, regclass, text), health_score.refresh_views(text),
                           health_score.drop_view(regclass), health_score._forget_view(name, name),
                           health_score._create_view(name, name, text, regclass, text),
                           health_score._generate_view(name, name, text, regclass, text, name, boolean)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION health_score.create_view(text, text, regclass, text), health_score.refresh_views(text),
                          health_score.drop_view(regclass), health_score._forget_view(name, name),
                          health_score._create_view(name, name, text, regclass, text)
   TO health_score_admin;

-- Issue 15, item 4: inlined SQL functions and create_view (no pinned search_path) qualify
-- their operators and types
CREATE OR REPLACE FUNCTION health_score._held_out(entity_key text, fraction double precision) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('x' OPERATOR(pg_catalog.||) pg_catalog.left(pg_catalog.md5(entity_key), 8))::pg_catalog.bit(32)::pg_catalog.int8
           OPERATOR(pg_catalog./) 4294967296.0 OPERATOR(pg_catalog.<) fraction
$$;
CREATE OR REPLACE FUNCTION health_score.fit(model text, source regclass, outcome_column text, options jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT health_score._fit(m.model_sql, m.config, fit.source, fit.outcome_column, fit.options) OPERATOR(pg_catalog.->) 'model'
      FROM health_score._model_sql(fit.model) m
$$;
CREATE OR REPLACE FUNCTION health_score.fit(model jsonb, source regclass, outcome_column text, options jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT health_score._fit(m.model_sql, m.config, fit.source, fit.outcome_column, fit.options) OPERATOR(pg_catalog.->) 'model'
      FROM health_score._model_sql(fit.model) m
$$;
