-- The sequencing step starts its outbox read at a floor below which no row
-- can be waiting, instead of at the oldest insertion number of the partition.
--
-- The outbox is the partial index `(pending_no, batch_pos) WHERE seq IS
-- NULL`. Sequencing a row leaves its entry behind, dead, until VACUUM
-- removes it, and autovacuum lets a partition gather dead rows up to a fifth
-- of its live ones. A read with no lower bound starts at the left edge of
-- the index and steps over every dead entry (killed, but on pages it still
-- reads) before it reaches the first waiting row: 1,919 index pages and
-- 4.7–5.5 ms per step after 500,000 events, against ~0.8 ms on a vacuumed
-- partition (pgbench, this machine); ~20 ms per step on a 10M-event
-- partition just before its autovacuum. Every event's latency paid it.
--
-- `floor_no`: every row with a lower insertion number has its seq, or was
-- rolled back, and no transaction can still add one. It may only rise when
-- that is proved, and the proof is about transactions, not rows: an
-- insertion number is drawn inside a transaction, so a transaction that
-- holds a number below N, drawn before N was read, was running when N was
-- read. A candidate is therefore N (read first) with every transaction of
-- this database running just after (read second, by their virtual
-- transaction ids: a transaction has one from its start, before it draws a
-- number or has an xid). Once none of them runs any more (their vxid locks
-- are released after they left the proc array, so their rows are visible to
-- every later snapshot), and no prepared transaction of this database waits
-- (preparing releases the vxid), a step's outbox read sees every row below
-- N that will ever exist; when it sequences all it saw, the floor rises to
-- N (or to the first row it left for the next step). This relies on the
-- insertion numbers' sequence handing out numbers in order (CACHE 1, no
-- `setval` backwards), as sealing a partition does.
--
-- Looking at the lock table costs ~0.2 ms, so a candidate is checked at
-- most every 100 ms: the floor trails the head by a fraction of a second of
-- traffic, plus the longest transaction of the database (a long one, such
-- as `pg_dump`'s, holds it where it is; the step then reads as before).
ALTER TABLE sequencer
    ADD COLUMN floor_no bigint NOT NULL DEFAULT 0,
    ADD COLUMN floor_next bigint,
    ADD COLUMN floor_wait text[],
    ADD COLUMN floor_checked timestamptz;

COMMENT ON COLUMN sequencer.floor_no IS
    'No row with a lower pending_no waits for a seq, or ever will (herald_sequence)';
COMMENT ON COLUMN sequencer.floor_next IS
    'The candidate floor: proved once no transaction of floor_wait runs';
COMMENT ON COLUMN sequencer.floor_wait IS
    'Virtual transaction ids running when floor_next was read';

-- The transactions of this database running now, by virtual transaction id.
CREATE FUNCTION herald_running_vxids() RETURNS text[]
LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(array_agg(l.virtualxid), '{}')
      FROM pg_locks l
      JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'virtualxid' AND l.granted AND l.mode = 'ExclusiveLock'
       AND a.datname = current_database()
$$;

-- Whether any of `vxids` still runs, or a prepared transaction of this
-- database waits.
CREATE FUNCTION herald_any_running(vxids text[]) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT EXISTS (SELECT 1 FROM pg_locks l
                    WHERE l.locktype = 'virtualxid' AND l.granted
                      AND l.virtualxid = ANY (vxids))
        OR EXISTS (SELECT 1 FROM pg_prepared_xacts x
                    WHERE x.database = current_database())
$$;

CREATE OR REPLACE FUNCTION herald_sequence(batch_limit bigint)
RETURNS TABLE (id uuid, seq bigint, topic text, type text, data jsonb, created_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET enable_sort = off
AS $$
#variable_conflict use_column
DECLARE
    base bigint;
    next_no bigint;
    want bigint := batch_limit + 499;
    part record;
    more_ids uuid[];
    more_nos bigint[];
    ids uuid[] := '{}';
    nos bigint[] := '{}';
    -- The partitions that had rows, and where each one's rows end in `ids`.
    parts text[] := '{}';
    ends int[] := '{}';
    k int;
    j int;
    first int := 1;
    last int;
    n bigint;
    done bigint := 0;
    -- The floor, and the candidate for the next one.
    lowest bigint;
    cand bigint;
    cand_wait text[];
    checked timestamptz;
    ripe boolean := false;
    renew boolean := false;
    read_all boolean := true;
BEGIN
    -- Serializes sequencers: the next block starts after the last one.
    SELECT s.last_seq, s.floor_no, s.floor_next, s.floor_wait, s.floor_checked
      INTO base, lowest, cand, cand_wait, checked
      FROM sequencer s FOR UPDATE;
    IF cand IS NULL THEN
        renew := true;
    ELSIF checked IS NULL OR clock_timestamp() - checked >= interval '100 ms' THEN
        -- Before the outbox read: its snapshot must see the rows of every
        -- transaction found ended here.
        ripe := NOT herald_any_running(cand_wait);
        renew := true;
    END IF;
    next_no := herald_next_pending_no();
    FOR part IN SELECT p.name FROM event_partitions p
                 WHERE p.sealed_at IS NULL AND p.lo < next_no AND p.hi > lowest
                 ORDER BY p.lo LOOP
        EXECUTE format(
            'SELECT array_agg(c.id ORDER BY c.pending_no, c.batch_pos),
                    array_agg(c.pending_no ORDER BY c.pending_no, c.batch_pos)
               FROM (SELECT e.id, e.pending_no, e.batch_pos FROM %I e
                      WHERE e.seq IS NULL AND e.pending_no >= $2
                      ORDER BY e.pending_no, e.batch_pos
                      LIMIT $1) c', part.name)
           INTO more_ids, more_nos
          USING want - cardinality(ids), lowest;
        CONTINUE WHEN more_ids IS NULL;
        ids := ids || more_ids;
        nos := nos || more_nos;
        parts := parts || part.name::text;
        ends := ends || cardinality(ids);
        IF cardinality(ids) >= want THEN
            read_all := false;
            EXIT;
        END IF;
    END LOOP;
    -- Keep the first `batch_limit`, and the rest of the last one's insertion
    -- number (a batch is at most 500 events, so it is within the 499 more;
    -- and one insertion number is in one partition).
    k := least(cardinality(ids), batch_limit);
    WHILE k < cardinality(ids) AND nos[k + 1] = nos[k] LOOP
        k := k + 1;
    END LOOP;
    FOR j IN 1 .. cardinality(parts) LOOP
        EXIT WHEN first > k;
        last := least(ends[j], k);
        RETURN QUERY EXECUTE format(
            'UPDATE %I e
                SET seq = $1 + u.ord, sequenced_at = now()
               FROM unnest($2::uuid[], $3::bigint[]) WITH ORDINALITY AS u(id, no, ord)
              WHERE e.id = u.id AND e.pending_no = u.no
          RETURNING e.id, e.seq, e.topic, e.type, e.data, e.created_at', parts[j])
          USING base + first - 1, ids[first:last], nos[first:last];
        GET DIAGNOSTICS n = ROW_COUNT;
        done := done + n;
        first := last + 1;
    END LOOP;
    -- Every row read is committed and only a sequencer (this one: the lock)
    -- gives it a seq, so all k are updated; were one not, the positions
    -- after it would be given out twice. Refuse rather than risk it.
    IF done <> k THEN
        RAISE EXCEPTION 'herald_sequence: % of % outbox rows updated', done, k;
    END IF;
    IF ripe THEN
        -- Every row below `cand` that will ever exist was visible to the
        -- read; what it saw and this step left waits from nos[k + 1] on
        -- (the read was in insertion order), and a read cut short may have
        -- left more of nos[k].
        IF k < cardinality(ids) THEN
            cand := least(cand, nos[k + 1]);
        ELSIF NOT read_all THEN
            cand := least(cand, nos[k]);
        END IF;
        lowest := greatest(lowest, cand);
    END IF;
    IF ripe OR cand IS NULL THEN
        -- A new candidate: the next insertion number (read above), then
        -- the transactions that might hold a lower one.
        cand := next_no;
        cand_wait := herald_running_vxids();
    END IF;
    IF k > 0 OR renew THEN
        UPDATE sequencer
           SET last_seq = base + k, floor_no = lowest, floor_next = cand,
               floor_wait = cand_wait,
               floor_checked = CASE WHEN renew THEN clock_timestamp() ELSE floor_checked END;
    END IF;
END
$$;

-- Belt and braces, run with the event log's upkeep (off the events' path,
-- every 0.25–30 s): a row waiting below the floor would never be sequenced
-- (never delivered, never in the history), so if one is found the floor
-- drops to it, with a warning, and the next step sequences it late rather
-- than never. The proof above says it cannot happen; this is what would
-- tell. Reads each unsealed partition below the floor by name (a sealed one
-- has no waiting row), as the step does.
CREATE FUNCTION herald_sequence_floor_check() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    lowest bigint;
    part record;
    stray bigint;
    n bigint;
    found_min bigint;
    found bigint := 0;
BEGIN
    SELECT s.floor_no INTO lowest FROM sequencer s;
    FOR part IN SELECT p.name FROM event_partitions p
                 WHERE p.sealed_at IS NULL AND p.lo < lowest
                 ORDER BY p.lo LOOP
        EXECUTE format('SELECT min(e.pending_no), count(*) FROM %I e
                         WHERE e.seq IS NULL AND e.pending_no < $1', part.name)
           INTO stray, n
          USING lowest;
        IF n > 0 THEN
            found := found + n;
            found_min := least(found_min, stray);
        END IF;
    END LOOP;
    IF found > 0 THEN
        RAISE WARNING 'herald_sequence: % rows below the floor % wait for a seq; the floor drops to %',
            found, lowest, found_min;
        UPDATE sequencer
           SET floor_no = least(floor_no, found_min), floor_next = NULL, floor_wait = NULL;
    END IF;
    RETURN found;
END
$$;
