-------------------------------------------------------------------------------------------
-- CSM inputs: manual values of a model's inputs and band overrides, recorded per entity by
-- account managers (role health_score_csm) with a reason and an optional expiry, audited;
-- applied by snapshot, the generated views and the scoring functions' entity forms
-- (docs/acting.md#csm-inputs)
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
