-- The sequencer's transaction as one server-side call: one round trip (and
-- the statement's own commit) instead of six (BEGIN, lock, pick, update,
-- update, COMMIT). Each statement of a VOLATILE plpgsql function takes a new
-- snapshot under READ COMMITTED, so the rows picked after the row lock is
-- granted include everything the previous lock holder sequenced: the same
-- ordering argument as before (see herald_worker::sequencer), unchanged.
CREATE FUNCTION herald_sequence(batch_limit bigint)
RETURNS TABLE (id uuid, seq bigint, topic text, type text, data jsonb, created_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    base bigint;
    n bigint;
BEGIN
    -- Serializes sequencers: the next block starts after the last one.
    SELECT s.last_seq INTO base FROM sequencer s FOR UPDATE;
    RETURN QUERY
    WITH picked AS (
        SELECT e.id, row_number() OVER (ORDER BY e.pending_no) AS ord
          FROM events e
         WHERE e.seq IS NULL
         ORDER BY e.pending_no
         LIMIT batch_limit
    )
    UPDATE events e
       SET seq = base + p.ord, sequenced_at = now()
      FROM picked p
     WHERE e.id = p.id
    RETURNING e.id, e.seq, e.topic, e.type, e.data, e.created_at;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        UPDATE sequencer SET last_seq = base + n;
    END IF;
END
$$;
