-------------------------------------------------------------------------------------------
-- How snapshots are stored: a compact table partitioned by model and time, the
-- health_score.scores view that reads it as the table of 0.1.0 and 0.2.0 read, its partitions
-- and their retention
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
