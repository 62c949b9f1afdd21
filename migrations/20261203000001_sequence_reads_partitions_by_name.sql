-- The sequencing step names the partitions it reads and updates, instead of
-- asking the partitioned parent to prune down to them.
--
-- Since 20261202000002 the step planned its two statements on `events` on
-- every call (`force_custom_plan`), so that pruning happened in the planner
-- and an old partition was never locked (a generic plan locks every
-- partition before pruning, and then queues behind a retention pass's
-- DETACH). Planning a statement on the parent costs several times more than
-- on one table: 0.135 against 0.056 ms for the outbox read and 0.265 against
-- 0.153 ms for the UPDATE (pgbench, simple protocol, this machine), ~0.19 ms
-- of every step, on the path of every event's latency. Now the step reads
-- the outbox of each partition that can hold a row without a seq — not
-- sealed, and opened (an insertion number below the next one was drawn in
-- it: a partition made ahead holds nothing yet) — oldest first, and updates
-- each partition's rows in that partition: plain-table statements, still
-- never touching a sealed partition.
--
-- A row committed after the next insertion number was read is left for the
-- next step, as one committed after the outbox read always was: its commit's
-- NOTIFY wakes the worker for another step, which reads the number anew.
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
BEGIN
    -- Serializes sequencers: the next block starts after the last one.
    SELECT s.last_seq INTO base FROM sequencer s FOR UPDATE;
    next_no := herald_next_pending_no();
    FOR part IN SELECT p.name FROM event_partitions p
                 WHERE p.sealed_at IS NULL AND p.lo < next_no
                 ORDER BY p.lo LOOP
        EXECUTE format(
            'SELECT array_agg(c.id ORDER BY c.pending_no, c.batch_pos),
                    array_agg(c.pending_no ORDER BY c.pending_no, c.batch_pos)
               FROM (SELECT e.id, e.pending_no, e.batch_pos FROM %I e
                      WHERE e.seq IS NULL
                      ORDER BY e.pending_no, e.batch_pos
                      LIMIT $1) c', part.name)
           INTO more_ids, more_nos
          USING want - cardinality(ids);
        CONTINUE WHEN more_ids IS NULL;
        ids := ids || more_ids;
        nos := nos || more_nos;
        parts := parts || part.name::text;
        ends := ends || cardinality(ids);
        EXIT WHEN cardinality(ids) >= want;
    END LOOP;
    IF cardinality(ids) = 0 THEN
        RETURN;
    END IF;
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
    UPDATE sequencer SET last_seq = base + k;
END
$$;
