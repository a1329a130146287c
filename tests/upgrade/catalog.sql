-- Everything the catalog says about the health_score extension, one line per fact, for the
-- upgrade test to compare an updated install with a fresh one. Nothing node-specific (OIDs,
-- the database's name) appears; objects are named by pg_identify_object's identity.
WITH ext AS (
    SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'health_score'
), members AS (
    SELECT d.classid, d.objid, (pg_catalog.pg_identify_object(d.classid, d.objid, 0)).*
      FROM pg_catalog.pg_depend d, ext
     WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
), member_relations AS (
    SELECT c.oid, m.identity, c.relkind FROM members m JOIN pg_catalog.pg_class c ON c.oid = m.objid
     WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
), member_types AS (
    SELECT t.oid, m.identity, t.typtype, t.typrelid FROM members m JOIN pg_catalog.pg_type t ON t.oid = m.objid
     WHERE m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
), columns AS (  -- of member relations and member composite types, by position among live columns
    SELECT r.identity, a.*, pg_catalog.row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS position
      FROM (SELECT oid, identity FROM member_relations
            UNION ALL SELECT typrelid, identity FROM member_types WHERE typtype = 'c') r
      JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
)
SELECT fact FROM (
    SELECT pg_catalog.format('extension: version %s, schema %s, relocatable %s', e.extversion,
                             e.extnamespace::pg_catalog.regnamespace, e.extrelocatable) AS fact
      FROM pg_catalog.pg_extension e WHERE e.extname = 'health_score'
    UNION ALL
    SELECT pg_catalog.format('config dump: %s where %L', c.rel::pg_catalog.regclass, c.cond)
      FROM pg_catalog.pg_extension e,
           LATERAL ROWS FROM (pg_catalog.unnest(e.extconfig), pg_catalog.unnest(e.extcondition)) AS c(rel, cond)
     WHERE e.extname = 'health_score'
    UNION ALL
    SELECT pg_catalog.format('member %s %s', m.type, m.identity) FROM members m
    UNION ALL
    SELECT pg_catalog.format('comment on %s %s: %s', m.type, m.identity,
                             coalesce(pg_catalog.obj_description(m.objid, m.classid::pg_catalog.regclass::text), '(none)'))
      FROM members m
    UNION ALL  -- functions and procedures: the whole definition (volatility, strictness,
               -- parallel safety, cost, rows, support, settings, body or C symbol)
    SELECT pg_catalog.format('function %s: owner %s, acl %s, definition %s', m.identity,
                             pg_catalog.pg_get_userbyid(p.proowner), coalesce(p.proacl::text, '(default)'),
                             pg_catalog.pg_get_functiondef(p.oid))
      FROM members m JOIN pg_catalog.pg_proc p ON p.oid = m.objid
     WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.prokind IN ('f', 'p')
    UNION ALL
    SELECT pg_catalog.format('aggregate %s: owner %s, acl %s, parallel %s, returns %s, kind %s, direct args %s, '
                             'sfunc %s, stype %s, sspace %s, finalfunc %s (extra %s, modify %s), combinefunc %s, '
                             'serialfunc %s, deserialfunc %s, msfunc %s, minvfunc %s, mstype %s, initcond %L, '
                             'minitcond %L, sortop %s',
                             m.identity, pg_catalog.pg_get_userbyid(p.proowner), coalesce(p.proacl::text, '(default)'),
                             p.proparallel, pg_catalog.pg_get_function_result(p.oid), a.aggkind, a.aggnumdirectargs,
                             a.aggtransfn::pg_catalog.regprocedure, a.aggtranstype::pg_catalog.regtype, a.aggtransspace,
                             a.aggfinalfn::pg_catalog.regprocedure, a.aggfinalextra, a.aggfinalmodify,
                             a.aggcombinefn::pg_catalog.regprocedure, a.aggserialfn::pg_catalog.regprocedure,
                             a.aggdeserialfn::pg_catalog.regprocedure, a.aggmtransfn::pg_catalog.regprocedure,
                             a.aggminvtransfn::pg_catalog.regprocedure, a.aggmtranstype::pg_catalog.regtype,
                             a.agginitval, a.aggminitval, a.aggsortop::pg_catalog.regoperator)
      FROM members m JOIN pg_catalog.pg_proc p ON p.oid = m.objid JOIN pg_catalog.pg_aggregate a ON a.aggfnoid = p.oid
     WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
    UNION ALL
    SELECT pg_catalog.format('relation %s: kind %s, owner %s, acl %s, options %s, persistence %s, row security %s/%s, replica identity %s',
                             r.identity, c.relkind, pg_catalog.pg_get_userbyid(c.relowner), coalesce(c.relacl::text, '(default)'),
                             coalesce(c.reloptions::text, '(none)'), c.relpersistence, c.relrowsecurity,
                             c.relforcerowsecurity, c.relreplident)
      FROM member_relations r JOIN pg_catalog.pg_class c ON c.oid = r.oid
    UNION ALL
    SELECT pg_catalog.format('column %s.%I: position %s, type %s, not null %s, default %s, identity %L, generated %L, collation %s, acl %s, comment %s',
                             c.identity, c.attname, c.position, pg_catalog.format_type(c.atttypid, c.atttypmod),
                             c.attnotnull, coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '(none)'),
                             c.attidentity, c.attgenerated, coalesce(co.collname::text, '(default)'),
                             coalesce(c.attacl::text, '(default)'),
                             coalesce(pg_catalog.col_description(c.attrelid, c.attnum), '(none)'))
      FROM columns c
      LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.attrelid AND d.adnum = c.attnum
      LEFT JOIN pg_catalog.pg_collation co ON co.oid = c.attcollation
                AND c.attcollation <> (SELECT t.typcollation FROM pg_catalog.pg_type t WHERE t.oid = c.atttypid)
    UNION ALL
    SELECT pg_catalog.format('view %s: %s', r.identity, pg_catalog.pg_get_viewdef(r.oid, true))
      FROM member_relations r WHERE r.relkind IN ('v', 'm')
    UNION ALL
    SELECT pg_catalog.format('constraint %I on %s: %s%s', k.conname, r.identity, pg_catalog.pg_get_constraintdef(k.oid),
                             CASE WHEN k.condeferrable THEN ' deferrable' ELSE '' END)
      FROM member_relations r JOIN pg_catalog.pg_constraint k ON k.conrelid = r.oid
    UNION ALL
    SELECT pg_catalog.format('index on %s: %s', r.identity, pg_catalog.pg_get_indexdef(i.indexrelid))
      FROM member_relations r JOIN pg_catalog.pg_index i ON i.indrelid = r.oid
    UNION ALL
    SELECT pg_catalog.format('trigger on %s: %s (enabled %s)', r.identity, pg_catalog.pg_get_triggerdef(t.oid), t.tgenabled)
      FROM member_relations r JOIN pg_catalog.pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
    UNION ALL
    SELECT pg_catalog.format('policy %I on %s: %s %s to %s using %s check %s', p.polname, r.identity, p.polcmd,
                             p.polpermissive, p.polroles::pg_catalog.regrole[],
                             pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid))
      FROM member_relations r JOIN pg_catalog.pg_policy p ON p.polrelid = r.oid
    UNION ALL
    SELECT pg_catalog.format('rule %I on %s: %s', w.rulename, r.identity, pg_catalog.pg_get_ruledef(w.oid))
      FROM member_relations r JOIN pg_catalog.pg_rewrite w ON w.ev_class = r.oid AND w.rulename <> '_RETURN'
    UNION ALL
    SELECT pg_catalog.format('sequence %s: %s %s..%s start %s increment %s cache %s cycle %s', r.identity,
                             s.seqtypid::pg_catalog.regtype, s.seqmin, s.seqmax, s.seqstart, s.seqincrement, s.seqcache, s.seqcycle)
      FROM member_relations r JOIN pg_catalog.pg_sequence s ON s.seqrelid = r.oid
    UNION ALL
    SELECT pg_catalog.format('type %s: kind %s, owner %s, acl %s, base %s, not null %s, default %L, enum labels %s',
                             t.identity, t.typtype, pg_catalog.pg_get_userbyid(y.typowner), coalesce(y.typacl::text, '(default)'),
                             y.typbasetype::pg_catalog.regtype, y.typnotnull, y.typdefault,
                             (SELECT pg_catalog.string_agg(l.enumlabel::text, ',' ORDER BY l.enumsortorder)
                                FROM pg_catalog.pg_enum l WHERE l.enumtypid = t.oid))
      FROM member_types t JOIN pg_catalog.pg_type y ON y.oid = t.oid
    UNION ALL
    SELECT pg_catalog.format('domain constraint %I on %s: %s', k.conname, t.identity, pg_catalog.pg_get_constraintdef(k.oid))
      FROM member_types t JOIN pg_catalog.pg_constraint k ON k.contypid = t.oid
    UNION ALL
    SELECT pg_catalog.format('schema %s: owner %s, acl %s, comment %s', n.nspname, pg_catalog.pg_get_userbyid(n.nspowner),
                             coalesce(n.nspacl::text, '(default)'),
                             coalesce(pg_catalog.obj_description(n.oid, 'pg_namespace'), '(none)'))
      FROM pg_catalog.pg_namespace n
     WHERE n.oid = (SELECT e.extnamespace FROM pg_catalog.pg_extension e WHERE e.extname = 'health_score')
        OR n.oid IN (SELECT m.objid FROM members m WHERE m.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass)
    UNION ALL
    SELECT pg_catalog.format('event trigger %s: on %s, tags %s, function %s, enabled %s, owner %s', t.evtname, t.evtevent,
                             t.evttags, t.evtfoid::pg_catalog.regprocedure, t.evtenabled, pg_catalog.pg_get_userbyid(t.evtowner))
      FROM members m JOIN pg_catalog.pg_event_trigger t ON t.oid = m.objid
     WHERE m.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass
    UNION ALL  -- what pg_dump takes as the extension's own privileges
    SELECT pg_catalog.format('initial privileges of %s %s%s: %s (%s)', m.type, m.identity,
                             CASE WHEN i.objsubid <> 0 THEN '.' || pg_catalog.quote_ident(a.attname) ELSE '' END,
                             i.initprivs, i.privtype)
      FROM members m
      JOIN pg_catalog.pg_init_privs i ON i.classoid = m.classid AND i.objoid = m.objid
      LEFT JOIN pg_catalog.pg_attribute a ON i.objsubid <> 0 AND a.attrelid = i.objoid AND a.attnum = i.objsubid
) facts
ORDER BY fact COLLATE "C";
