-- The sequencing floor's candidate waits for the transactions that hold an
-- insertion number, not for every transaction of the database, and finds
-- them in the lock table alone.
--
-- As `20261203000002` left it, a step that looked at its candidate (every
-- >= 100 ms) read `pg_stat_activity` to keep the virtual transaction ids of
-- this database: the first read of it in a transaction copies every
-- backend's status, and the two looks cost 1.3-1.8 ms of that step (the
-- step's own work is ~0.7 ms), on the latency of every tenth event at
-- 100 events/s. And any transaction of the database held the floor, a
-- `pg_dump` or an idle-in-transaction session that never publishes among
-- them.
--
-- A transaction draws an insertion number with `nextval` on
-- `events_pending_no_seq` (the identity default, or the batch path's
-- explicit call), and `nextval` takes a RowExclusiveLock on the sequence
-- before it draws, held by the top transaction until it ends (also through
-- a rolled-back savepoint, and carried over by PREPARE TRANSACTION to the
-- prepared transaction, whose locks show with no pid). So the transactions
-- that may hold a number below N, drawn before N was read, all hold that
-- lock when looked at after N was read; one that waits for the lock, or
-- takes it later, draws N or above. The candidate keeps their
-- `virtualtransaction`s; it is ripe once none of them holds the lock any
-- more and no prepared transaction does (a normal transaction that prepares
-- changes its `virtualtransaction`: so any prepared holder keeps every
-- candidate waiting, as before). `pg_locks` reads fast-path locks too, and
-- the lock is released after the transaction left the proc array, so its
-- rows are visible to every later snapshot: the argument of `20261203000002`
-- holds with "drew a number" for "runs".
--
-- Sealing a partition (`20261203000003`) still waits for every transaction
-- by vxid: it is off the path of events.

-- The transactions holding an insertion number now, by the lock table's
-- `virtualtransaction` (`holders`), and whether any of `wait` still holds
-- one or a prepared transaction does (`waiting`). One pass over `pg_locks`
-- (~0.1-0.2 ms). plpgsql, so its statement's plan is kept across calls.
CREATE FUNCTION herald_pending_no_holders(wait text[], OUT holders text[], OUT waiting boolean)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT coalesce(array_agg(l.virtualtransaction), '{}'),
           coalesce(bool_or(l.pid IS NULL OR l.virtualtransaction = ANY (wait)), false)
      INTO holders, waiting
      FROM pg_locks l
     WHERE l.locktype = 'relation'
       AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
       AND l.relation = 'events_pending_no_seq'::regclass
       AND l.mode = 'RowExclusiveLock' AND l.granted
       AND l.pid IS DISTINCT FROM pg_backend_pid();
END
$$;

COMMENT ON COLUMN sequencer.floor_wait IS
    'The virtualtransactions holding an insertion number when floor_next was read';

-- The candidate taken under the old rule waited for vxids: start afresh.
UPDATE sequencer SET floor_next = NULL, floor_wait = NULL, floor_checked = NULL;

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
    was_lowest bigint;
    cand bigint;
    was_cand bigint;
    cand_wait text[];
    checked timestamptz;
    holders text[];
    waiting boolean;
    ripe boolean := false;
    renew boolean := false;
    read_all boolean := true;
BEGIN
    -- Serializes sequencers: the next block starts after the last one.
    SELECT s.last_seq, s.floor_no, s.floor_next, s.floor_wait, s.floor_checked
      INTO base, lowest, cand, cand_wait, checked
      FROM sequencer s FOR UPDATE;
    was_lowest := lowest;
    was_cand := cand;
    -- The next insertion number, read first; then who holds a number (so
    -- every holder of one below it is among them). Inline, not through
    -- herald_next_pending_no(): a SQL function is planned at every call.
    SELECT CASE WHEN q.is_called THEN q.last_value + 1 ELSE q.last_value END
      INTO next_no FROM events_pending_no_seq q;
    IF cand IS NULL OR checked IS NULL OR clock_timestamp() - checked >= interval '100 ms' THEN
        -- Before the outbox read: its snapshot must see the rows of every
        -- transaction found ended here.
        SELECT h.holders, h.waiting INTO holders, waiting
          FROM herald_pending_no_holders(cand_wait) h;
        ripe := cand IS NOT NULL AND NOT waiting;
        renew := true;
    END IF;
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
        -- A new candidate: the next insertion number, and the
        -- transactions that held one when it was read (both read above).
        cand := next_no;
        cand_wait := holders;
    END IF;
    -- Written when there is something to record: a step with events, or a
    -- floor or candidate that moved. An empty step that found the candidate
    -- still waiting writes nothing (the next one looks again; no event waits
    -- on an empty step), so an idle worker's polls commit nothing.
    IF k > 0 OR lowest IS DISTINCT FROM was_lowest OR cand IS DISTINCT FROM was_cand THEN
        UPDATE sequencer
           SET last_seq = base + k, floor_no = lowest, floor_next = cand,
               floor_wait = cand_wait,
               floor_checked = CASE WHEN renew THEN clock_timestamp() ELSE floor_checked END;
    END IF;
END
$$;
