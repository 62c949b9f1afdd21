-- A batch (`POST /v1/events/batch`) gets consecutive positions, whatever
-- else commits at the same time. Its events share one insertion number
-- (`pending_no`, drawn once for the batch) and keep their order within it
-- (`batch_pos`); the sequencer never splits an insertion number across two
-- of its transactions, and a batch commits atomically, so no other event can
-- land between two of its events. Single events keep `batch_pos` 0.
ALTER TABLE events ADD COLUMN batch_pos integer NOT NULL DEFAULT 0;
DROP INDEX events_outbox;
CREATE INDEX events_outbox ON events (pending_no, batch_pos) WHERE seq IS NULL;

-- As before (see 20261125000004_sequence_function.sql), and: the pick goes on
-- past `batch_limit` to the end of the insertion number it reached (from the
-- same index scan, at most 499 rows further), so a batch is sequenced whole.
CREATE OR REPLACE FUNCTION herald_sequence(batch_limit bigint)
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
    WITH cand AS (
        SELECT e.id, e.pending_no, row_number() OVER (ORDER BY e.pending_no, e.batch_pos) AS ord
          FROM events e
         WHERE e.seq IS NULL
         ORDER BY e.pending_no, e.batch_pos
         LIMIT batch_limit + 499
    ), picked AS (
        -- The first `batch_limit`, and the rest of the last one's insertion
        -- number: contiguous in `ord`, since candidates come in that order.
        SELECT c.id, c.ord
          FROM cand c
         WHERE c.ord <= batch_limit
            OR c.pending_no = (SELECT c2.pending_no FROM cand c2 WHERE c2.ord = batch_limit)
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
