-- The sequencing step writes the `sequencer` row only when it has
-- something to record.
--
-- As `20261203000002` left it, every step that looked at its floor
-- candidate (every >= 100 ms) wrote the row, events or not: an idle
-- worker's polls (every 200 ms by default) committed, and flushed WAL, five
-- times a second for nothing. Now a step writes when it sequenced events or
-- moved the floor or its candidate. An idle database's candidate is the next
-- insertion number and its floor already there, so nothing moves and
-- nothing is written; a step that finds the candidate still waiting for a
-- transaction, with no events, writes nothing either, and the next step
-- looks again.
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
