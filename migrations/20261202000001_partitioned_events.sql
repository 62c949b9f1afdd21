-- The event log becomes a partitioned table: ranges of `pending_no`.
--
-- Why that key: a row is written with `seq` NULL (the outbox) and only later
-- given its `seq`, so `seq` cannot route a row to its partition; the
-- insertion number can, and the sequencer gives positions in insertion
-- order, so a partition's events occupy a narrow band of `seq` too. Each
-- partition's band is recorded in `event_partitions` once it can no longer
-- change ("sealed", below), and every read "after seq N" restricts itself to
-- `pending_no >= herald_history_floor(N)`: the partitions that may hold a
-- position after N, the others pruned at executor start-up.
--
-- Lifecycle of a partition (herald-worker's `event_log`, every retention tick):
--   created ahead   empty, attached before insertion numbers reach it
--                   (herald_event_partitions_ahead; CREATE + ATTACH: no lock
--                   that blocks reads or writes)
--   opened          the first insertion number inside it was drawn
--   closed          insertion numbers passed its end: by volume
--                   (`partition_size` numbers), or because the worker rolled
--                   the identity on to the next partition when it had been
--                   open for `HERALD_EVENT_PARTITION_SPAN` (a `setval` under
--                   an instant SHARE lock on `events`, so no insertion number
--                   is being drawn meanwhile)
--   sealed          closed, no transaction that was running when it closed is
--                   still running (so no row can still land in it: a row's
--                   number is drawn inside its transaction), and every row in
--                   it has its `seq`. Its band of `seq` and newest
--                   `created_at` are then final and recorded.
--   dropped         retention: sealed, the oldest, every event older than
--                   HERALD_RETENTION. `pruned_seq` is raised to the band's top
--                   first, then the partition is detached CONCURRENTLY and
--                   dropped. No DELETE, no long lock, no bloat.
--
-- `pruned_seq` now means: every event after it is in the log (events at or
-- below it may be, until their partition is detached). Readers only ever
-- relied on that half: a page is complete when `pruned_seq <= after`.
--
-- An existing log is converted in place: the old table becomes the first
-- partition ("events_legacy", every insertion number so far), sealed and
-- dropped by retention like any other once its events expire.

LOCK TABLE events IN ACCESS EXCLUSIVE MODE;

ALTER TABLE events RENAME TO events_legacy;
ALTER INDEX events_outbox RENAME TO events_legacy_outbox;
ALTER INDEX events_topic_seq RENAME TO events_legacy_topic_seq;
-- The old table's own unique constraints: the partitioned table's replace them.
ALTER TABLE events_legacy DROP CONSTRAINT events_pkey;
ALTER TABLE events_legacy DROP CONSTRAINT events_seq_key;
ALTER SEQUENCE events_pending_no_seq RENAME TO events_pending_no_seq_old;

CREATE TABLE event_log (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- Insertion numbers per partition (the worker writes its
    -- HERALD_EVENT_PARTITION_SIZE here; partitions already made keep theirs).
    partition_size bigint NOT NULL DEFAULT 10000000 CHECK (partition_size > 0)
);
INSERT INTO event_log DEFAULT VALUES;

-- One row per partition of `events`.
CREATE TABLE event_partitions (
    name        text PRIMARY KEY,
    lo          bigint NOT NULL UNIQUE,   -- insertion numbers [lo, hi)
    hi          bigint NOT NULL CHECK (hi > lo),
    opened_at   timestamptz,
    closed_at   timestamptz,
    sealed_at   timestamptz,
    -- Final once sealed (NULL: no event).
    min_seq     bigint,
    max_seq     bigint,
    max_created timestamptz,
    events      bigint,
    -- Retention has raised pruned_seq past it and is detaching it.
    detaching   boolean NOT NULL DEFAULT false
);

CREATE TABLE events (
    id           uuid NOT NULL,
    pending_no   bigint GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME events_pending_no_seq),
    seq          bigint,
    topic        text NOT NULL,
    type         text NOT NULL,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sequenced_at timestamptz,
    batch_pos    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (id, pending_no)
) PARTITION BY RANGE (pending_no);

DO $$
DECLARE
    next_no bigint;
BEGIN
    -- Insertion numbers go on from where the old table's stopped.
    SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END
      INTO next_no FROM events_pending_no_seq_old s;
    next_no := greatest(next_no, (SELECT COALESCE(max(pending_no), 0) + 1 FROM events_legacy));
    EXECUTE format('ALTER TABLE events ALTER COLUMN pending_no RESTART WITH %s', next_no);
    IF EXISTS (SELECT 1 FROM events_legacy) THEN
        ALTER TABLE events_legacy ALTER COLUMN pending_no DROP IDENTITY;
        EXECUTE format('ALTER TABLE events ATTACH PARTITION events_legacy FOR VALUES FROM (MINVALUE) TO (%s)', next_no);
        INSERT INTO event_partitions (name, lo, hi, opened_at, closed_at)
        VALUES ('events_legacy', -9223372036854775808, next_no, now(), now());
    ELSE
        DROP TABLE events_legacy;
    END IF;
END
$$;

-- The insertion number the next row will get (numbers below it were drawn).
CREATE FUNCTION herald_next_pending_no() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END
      FROM events_pending_no_seq s
$$;

-- Indexes of every partition (created on each as it is attached).
-- The outbox: committed rows still waiting for a seq, in insertion order.
CREATE INDEX events_outbox ON events (pending_no, batch_pos) WHERE seq IS NULL;
-- Replay and history: one topic (or a few) after a position.
CREATE INDEX events_topic_seq ON events (topic, seq) WHERE seq IS NOT NULL;
-- The relay and the rewind check: every topic after a position, one position.
CREATE INDEX events_seq ON events (seq) WHERE seq IS NOT NULL;

-- Partitions ahead of the insertion numbers: the one they are in and
-- `ahead` more, each `event_log.partition_size` numbers. Safe to call
-- concurrently (an advisory lock serializes callers); takes no lock that
-- blocks readers or writers of `events`.
CREATE FUNCTION herald_event_partitions_ahead(ahead int) RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    size bigint;
    next_no bigint;
    top bigint;
    made int := 0;
    hi bigint;
    name text;
BEGIN
    PERFORM pg_advisory_xact_lock(7243516001);
    SELECT partition_size INTO size FROM event_log;
    next_no := herald_next_pending_no();
    SELECT max(p.hi) INTO top FROM event_partitions p;
    top := COALESCE(top, next_no);
    LOOP
        EXIT WHEN top > next_no
              AND (SELECT count(*) FROM event_partitions p WHERE p.lo > next_no) >= ahead;
        -- One partition covers any numbers already drawn past the last one
        -- (their inserts failed: no row has them).
        hi := greatest(top + size, next_no + 1);
        name := 'events_p' || top;
        EXECUTE format('CREATE TABLE %I (LIKE events)', name);
        EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)', name, top, hi);
        INSERT INTO event_partitions (name, lo, hi) VALUES (name, top, hi);
        top := hi;
        made := made + 1;
    END LOOP;
    RETURN made;
END
$$;

SELECT herald_event_partitions_ahead(2);

-- Rolls the insertion numbers on to the next partition when the one they
-- are in has been open for `span`: closes partitions by time, whatever the
-- volume, so retention can drop them. The SHARE lock waits for every
-- transaction writing to `events` and holds new ones off for the instant of
-- the `setval` (the caller sets a lock_timeout): no number can be drawn
-- meanwhile, so the sequence only ever moves forward. Returns whether it
-- rolled.
CREATE FUNCTION herald_event_log_roll(span interval) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    next_no bigint;
    cur event_partitions;
BEGIN
    PERFORM pg_advisory_xact_lock(7243516001);
    next_no := herald_next_pending_no();
    SELECT * INTO cur FROM event_partitions p WHERE p.lo <= next_no AND next_no < p.hi;
    IF cur.name IS NULL OR cur.opened_at IS NULL OR cur.opened_at > clock_timestamp() - span
       OR NOT EXISTS (SELECT 1 FROM event_partitions p WHERE p.lo = cur.hi) THEN
        RETURN false;
    END IF;
    LOCK TABLE events IN SHARE MODE;
    next_no := herald_next_pending_no();
    IF next_no < cur.hi THEN
        PERFORM setval('events_pending_no_seq', cur.hi, false);
    END IF;
    UPDATE event_partitions p SET closed_at = clock_timestamp()
     WHERE p.name = cur.name AND p.closed_at IS NULL;
    RETURN true;
END
$$;

-- Stamps partitions opened and closed, and seals the closed ones that can
-- no longer change: no transaction of this database that began before the
-- close is still running (a row's insertion number is drawn inside its
-- transaction, so none can still add a row), and none of its rows waits for
-- a seq. Records each sealed partition's band of seq, newest created_at and
-- event count. Returns how many it sealed.
CREATE FUNCTION herald_event_partitions_seal() RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    next_no bigint;
    p event_partitions;
    busy boolean;
    pending boolean;
    lo_seq bigint;
    hi_seq bigint;
    newest timestamptz;
    n bigint;
    sealed int := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7243516001);
    next_no := herald_next_pending_no();
    -- clock_timestamp(): the time of this observation, after the numbers
    -- passed; a straggler's transaction began before it.
    UPDATE event_partitions x SET opened_at = clock_timestamp()
     WHERE x.opened_at IS NULL AND x.lo < next_no;
    UPDATE event_partitions x SET closed_at = clock_timestamp()
     WHERE x.closed_at IS NULL AND x.hi <= next_no;
    FOR p IN SELECT * FROM event_partitions x
              WHERE x.closed_at IS NOT NULL AND x.sealed_at IS NULL ORDER BY x.lo LOOP
        SELECT EXISTS (SELECT 1 FROM pg_stat_activity a
                        WHERE a.datname = current_database()
                          AND a.pid <> pg_backend_pid()
                          AND a.xact_start < p.closed_at)
          INTO busy;
        EXIT WHEN busy;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE seq IS NULL)', p.name) INTO pending;
        CONTINUE WHEN pending;
        EXECUTE format('SELECT min(seq), max(seq), max(created_at), count(*) FROM %I', p.name)
           INTO lo_seq, hi_seq, newest, n;
        UPDATE event_partitions x
           SET sealed_at = clock_timestamp(), min_seq = lo_seq, max_seq = hi_seq,
               max_created = newest, events = n
         WHERE x.name = p.name;
        sealed := sealed + 1;
    END LOOP;
    RETURN sealed;
END
$$;

-- The lowest insertion number a partition holding a position after `after`
-- can have: every partition not sealed yet, and every sealed one whose band
-- reaches past `after`. STABLE, so a query's `pending_no >= floor(...)` is
-- evaluated once, at executor start-up, and prunes the other partitions.
CREATE FUNCTION herald_history_floor(after bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(min(p.lo), 9223372036854775807)
      FROM event_partitions p
     WHERE p.sealed_at IS NULL OR p.max_seq > after
$$;

-- As in 20261201000007_sequence_plan.sql, and: the UPDATE joins on the
-- partition key too, so each row is found in its own partition.
CREATE OR REPLACE FUNCTION herald_sequence(batch_limit bigint)
RETURNS TABLE (id uuid, seq bigint, topic text, type text, data jsonb, created_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET enable_sort = off
AS $$
#variable_conflict use_column
DECLARE
    base bigint;
    n bigint;
    ids uuid[];
    nos bigint[];
    k int;
BEGIN
    -- Serializes sequencers: the next block starts after the last one.
    SELECT s.last_seq INTO base FROM sequencer s FOR UPDATE;
    SELECT array_agg(c.id ORDER BY c.pending_no, c.batch_pos),
           array_agg(c.pending_no ORDER BY c.pending_no, c.batch_pos)
      INTO ids, nos
      FROM (SELECT e.id, e.pending_no, e.batch_pos
              FROM events e
             WHERE e.seq IS NULL
             ORDER BY e.pending_no, e.batch_pos
             LIMIT batch_limit + 499) c;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    -- Keep the first `batch_limit`, and the rest of the last one's insertion
    -- number (a batch is at most 500 events, so it is within the 499 more).
    k := least(array_length(ids, 1), batch_limit);
    WHILE k < array_length(ids, 1) AND nos[k + 1] = nos[k] LOOP
        k := k + 1;
    END LOOP;
    RETURN QUERY
    UPDATE events e
       SET seq = base + u.ord, sequenced_at = now()
      FROM unnest(ids[1:k], nos[1:k]) WITH ORDINALITY AS u(id, no, ord)
     WHERE e.id = u.id AND e.pending_no = u.no
    RETURNING e.id, e.seq, e.topic, e.type, e.data, e.created_at;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        UPDATE sequencer SET last_seq = base + n;
    END IF;
END
$$;
