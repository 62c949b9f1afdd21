-- herald_sequence, with a plan that cannot go wrong. The version of
-- 20261201000002_batch_positions.sql numbered its candidates with a window
-- function inside a CTE it read twice; the planner then sorted every row with
-- `seq IS NULL` (through events_seq_key, dead index entries included) instead
-- of reading the first rows of events_outbox in order, and joined the result
-- back to events. Under a steady publish load with autovacuum behind, one call
-- took 1-4 s (the publish benchmark stalled). Now the candidates are one
-- ordered, limited scan of events_outbox into arrays; the cut at the end of
-- the last batch is made in plpgsql; the UPDATE joins on the primary key.
-- Same result as before: the first `batch_limit` unsequenced rows in
-- (pending_no, batch_pos) order, and the rest of the last one's insertion
-- number, numbered from last_seq + 1.
CREATE OR REPLACE FUNCTION herald_sequence(batch_limit bigint)
RETURNS TABLE (id uuid, seq bigint, topic text, type text, data jsonb, created_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
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
      FROM unnest(ids[1:k]) WITH ORDINALITY AS u(id, ord)
     WHERE e.id = u.id
    RETURNING e.id, e.seq, e.topic, e.type, e.data, e.created_at;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        UPDATE sequencer SET last_seq = base + n;
    END IF;
END
$$;
