-------------------------------------------------------------------------------------------
-- A durable alert queue: rules per model, evaluated by snapshot as it writes, raising events
-- that workers claim with a lease (docs/acting.md#the-alert-queue)
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
