-- History pages whose cost does not grow with the number of partitions.
--
-- The readers of 20261202000001_partitioned_events.sql wrote the partition
-- floor as `pending_no >= (SELECT herald_history_floor(n))`. A subquery's
-- value is known only once the executor runs it, so every partition's scan
-- was planned, locked and initialised before the pruning dropped all but the
-- last one or two: replay of 100 missed events took 2.5 ms with 4 partitions
-- and 4.0 ms with 52 (scripts/bench-history, 2026-12-02).
--
-- Here the floor is computed first, into a variable, and the page's query is
-- planned with it as a constant (plan_cache_mode = force_custom_plan: a
-- generic plan would again hold every partition), so the planner opens only
-- the partitions at or above the floor. STABLE: both statements read the
-- calling statement's snapshot, so the positions, the floor and the events
-- are of one snapshot, as before.

-- One reader: the events of `topics` after `after`, in `seq` order, at most
-- `page`, and the positions. One row with NULL event columns when there is
-- none.
CREATE FUNCTION herald_history_page(topics text[], after bigint, page bigint)
RETURNS TABLE (head bigint, pruned bigint, id uuid, seq bigint, topic text, type text,
               data jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
    floor bigint := herald_history_floor(after);
BEGIN
    RETURN QUERY
    SELECT s.last_seq, s.pruned_seq, e.id, e.seq, e.topic, e.type, e.data, e.created_at
      FROM sequencer s
      LEFT JOIN LATERAL (
            SELECT ev.id, ev.seq, ev.topic, ev.type, ev.data, ev.created_at
              FROM events ev
             WHERE ev.topic = ANY(topics) AND ev.seq > GREATEST(after, s.pruned_seq)
               AND ev.pending_no >= floor
             ORDER BY ev.seq
             LIMIT page
      ) e ON true
     ORDER BY e.seq;
END
$$;

-- Many readers at once (a gateway batches the replays of concurrent
-- resumes): reader `i` asks for the events of `topics[i]` (comma-separated)
-- after `afters[i]`. Rows in (i, seq) order; a reader with none gets one row
-- with NULL event columns.
CREATE FUNCTION herald_history_pages(readers int4[], topics text[], afters int8[], page bigint)
RETURNS TABLE (i int4, head bigint, pruned bigint, id uuid, seq bigint, topic text, type text,
               data jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
    floor bigint := herald_history_floor((SELECT min(a) FROM unnest(afters) a));
BEGIN
    RETURN QUERY
    SELECT q.i, s.last_seq, s.pruned_seq, e.id, e.seq, e.topic, e.type, e.data, e.created_at
      FROM sequencer s
     CROSS JOIN unnest(readers, topics, afters) AS q(i, topics, after)
      LEFT JOIN LATERAL (
            SELECT ev.id, ev.seq, ev.topic, ev.type, ev.data, ev.created_at
              FROM events ev
             WHERE ev.topic = ANY(string_to_array(q.topics, ','))
               AND ev.seq > GREATEST(q.after, s.pruned_seq)
               AND ev.pending_no >= floor
             ORDER BY ev.seq
             LIMIT page
      ) e ON true
     ORDER BY q.i, e.seq;
END
$$;

-- The event at `at`, if the log holds it (a gateway's check that history was
-- not rewritten under it), opening only the partitions that may hold it.
CREATE FUNCTION herald_event_at(at bigint)
RETURNS uuid
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    floor bigint := herald_history_floor(at - 1);
    found uuid;
BEGIN
    SELECT ev.id INTO found FROM events ev WHERE ev.seq = at AND ev.pending_no >= floor;
    RETURN found;
END
$$;

-- As in 20261202000001_partitioned_events.sql, and: the sequencer opens only
-- the partitions that are not sealed (a sealed one has no row without `seq`).
-- Its reads and its UPDATE used to plan and lock every partition, so a
-- retention pass's DETACH … FINALIZE (ACCESS EXCLUSIVE on an old partition)
-- queued behind it and stalled sequencing, and with it delivery, for up to
-- the pass's lock_timeout (delivery p99 2.4× during a pass over 10M events).
CREATE OR REPLACE FUNCTION herald_sequence(batch_limit bigint)
RETURNS TABLE (id uuid, seq bigint, topic text, type text, data jsonb, created_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET enable_sort = off
SET plan_cache_mode = force_custom_plan
AS $$
#variable_conflict use_column
DECLARE
    base bigint;
    n bigint;
    ids uuid[];
    nos bigint[];
    k int;
    floor bigint;
BEGIN
    -- Serializes sequencers: the next block starts after the last one.
    SELECT s.last_seq INTO base FROM sequencer s FOR UPDATE;
    SELECT COALESCE(min(p.lo), 9223372036854775807) INTO floor
      FROM event_partitions p WHERE p.sealed_at IS NULL;
    SELECT array_agg(c.id ORDER BY c.pending_no, c.batch_pos),
           array_agg(c.pending_no ORDER BY c.pending_no, c.batch_pos)
      INTO ids, nos
      FROM (SELECT e.id, e.pending_no, e.batch_pos
              FROM events e
             WHERE e.seq IS NULL AND e.pending_no >= floor
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
    floor := nos[1];
    RETURN QUERY
    UPDATE events e
       SET seq = base + u.ord, sequenced_at = now()
      FROM unnest(ids[1:k], nos[1:k]) WITH ORDINALITY AS u(id, no, ord)
     WHERE e.id = u.id AND e.pending_no = u.no AND e.pending_no >= floor
    RETURNING e.id, e.seq, e.topic, e.type, e.data, e.created_at;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        UPDATE sequencer SET last_seq = base + n;
    END IF;
END
$$;
