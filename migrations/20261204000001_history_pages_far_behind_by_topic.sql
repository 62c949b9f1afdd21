-- A page of a reader far behind reads its own topics' rows, in a batch too.
--
-- `20261203000006` bounded a far-behind page by each topic's `page`-th event
-- after the reader's position, and that holds for the single page (its
-- topics are constants to the planner). In the batched function, though,
-- each reader's topics come from the row of its request: to the planner an
-- unknown array, so it estimates from the column alone and, with few topics
-- in the log, walks the `seq` index filtered by topic. For a reader of a
-- topic that is rare in the log (a user's own topic, in the log of every
-- user's) the bound is that topic's `page`-th event, far off, and the walk
-- stepped over every other topic's event up to it: 499,500 rows and 118 ms
-- for one page of a topic that has one event in a thousand, 600,000 events
-- back (the single page: 2 ms).
--
-- Now a reader with more than 4 pages of the log after its position, alone
-- or in a batch, reads each of its topics with that topic a constant (a
-- custom plan, sorts off, as the bound's probe did: `herald_history_topic_heads`):
-- the (topic, seq) index hands over that topic's first `page` events after
-- the position in order, and the page is the first `page` of those
-- (`herald_history_far_page`). That reads at most `page` rows per topic,
-- whatever the statistics say, and needs no bound.
-- A reader nearer the head is as before: the whole log after it is at most
-- 4 pages, whichever index the plan takes.

-- Each of `topics`' first `page` events after `from_seq`, topic by topic.
CREATE OR REPLACE FUNCTION herald_history_topic_heads(topics text[], from_seq bigint, page bigint, floor bigint)
RETURNS TABLE (id uuid, seq bigint, topic text, type text, data jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan
-- Without sorts to choose, the plan merges the partitions' ordered scans of
-- the (topic, seq) index.
SET enable_sort = off
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY(SELECT DISTINCT u FROM unnest(topics) u) LOOP
        -- `t` is a constant to the planner (a custom plan).
        RETURN QUERY
        SELECT ev.id, ev.seq, ev.topic, ev.type, ev.data, ev.created_at
          FROM events ev
         WHERE ev.topic = t AND ev.seq > from_seq AND ev.pending_no >= floor
         ORDER BY ev.seq
         LIMIT page;
    END LOOP;
END
$$;

-- The page of a reader far behind: the first `page` of its topics' heads.
CREATE OR REPLACE FUNCTION herald_history_far_page(topics text[], from_seq bigint, page bigint, floor bigint)
RETURNS TABLE (id uuid, seq bigint, topic text, type text, data jsonb, created_at timestamptz)
LANGUAGE sql STABLE
AS $$
    SELECT h.id, h.seq, h.topic, h.type, h.data, h.created_at
      FROM herald_history_topic_heads(topics, from_seq, page, floor) h
     ORDER BY h.seq
     LIMIT page
$$;

CREATE OR REPLACE FUNCTION herald_history_page(topics text[], after bigint, page bigint)
RETURNS TABLE (head bigint, pruned bigint, id uuid, seq bigint, topic text, type text,
               data jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    floor bigint := herald_history_floor(after);
    from_seq bigint;
    far boolean;
BEGIN
    SELECT GREATEST(after, s.pruned_seq), s.last_seq - GREATEST(after, s.pruned_seq) > 4 * page
      INTO from_seq, far
      FROM sequencer s;
    IF far THEN
        RETURN QUERY
        SELECT s.last_seq, s.pruned_seq, e.id, e.seq, e.topic, e.type, e.data, e.created_at
          FROM sequencer s
          LEFT JOIN LATERAL herald_history_far_page(topics, from_seq, page, floor) e ON true
         ORDER BY e.seq;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT s.last_seq, s.pruned_seq, e.id, e.seq, e.topic, e.type, e.data, e.created_at
      FROM sequencer s
      LEFT JOIN LATERAL (
            SELECT ev.id, ev.seq, ev.topic, ev.type, ev.data, ev.created_at
              FROM events ev
             WHERE ev.topic = ANY(topics) AND ev.seq > from_seq
               AND ev.pending_no >= floor
             ORDER BY ev.seq
             LIMIT page
      ) e ON true
     ORDER BY e.seq;
END
$$;

-- Readers near the head share one statement; each reader far behind gets
-- its own (rare: a reconnect storm's readers are seconds behind). Rows come
-- in seq order within each reader; the caller groups them by reader.
CREATE OR REPLACE FUNCTION herald_history_pages(readers int4[], topics text[], afters int8[], page bigint)
RETURNS TABLE (i int4, head bigint, pruned bigint, id uuid, seq bigint, topic text, type text,
               data jsonb, created_at timestamptz)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    floor bigint := herald_history_floor((SELECT min(a) FROM unnest(afters) a));
    r record;
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
     WHERE s.last_seq - GREATEST(q.after, s.pruned_seq) <= 4 * page
     ORDER BY q.i, e.seq;
    FOR r IN
        SELECT q.i, string_to_array(q.topics, ',') AS topics, GREATEST(q.after, s.pruned_seq) AS from_seq,
               s.last_seq, s.pruned_seq
          FROM sequencer s
         CROSS JOIN unnest(readers, topics, afters) AS q(i, topics, after)
         WHERE s.last_seq - GREATEST(q.after, s.pruned_seq) > 4 * page
    LOOP
        RETURN QUERY
        SELECT r.i, r.last_seq, r.pruned_seq, e.id, e.seq, e.topic, e.type, e.data, e.created_at
          FROM (SELECT) one
          LEFT JOIN LATERAL herald_history_far_page(r.topics, r.from_seq, page, floor) e ON true
         ORDER BY e.seq;
    END LOOP;
END
$$;

DROP FUNCTION herald_history_bound(text[], bigint, bigint, bigint);
