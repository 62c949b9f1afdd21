-- A history page reads a bounded number of rows however far behind its
-- reader is.
--
-- The page's query (`20261202000002_history_pages.sql`) asks for the events
-- of `topics` after a position, in `seq` order, at most `page`. With
-- `topic = ANY(topics)` the (topic, seq) index cannot hand rows over in
-- `seq` order (a scalar-array condition on its leading column), so the plan
-- is that index, every row of the topics after the position, and a top-N
-- sort; or the `seq` index filtered by topic, when the statistics say the
-- topic is common. When they say it is rare (a topic that grew since the
-- last ANALYZE: a new one, or a burst), each page of a reader far behind
-- read and sorted everything after it: 184 ms a page with 300,000 events
-- after it, and the bench's read-back of ~500,000 events (one stream,
-- 1,000 pages) took 134-174 s, ~3,600 events/s, quadratic in the backlog.
--
-- Now a reader with more than 4 pages of the log after its position first
-- finds, for each of its topics, the position of that topic's `page`-th
-- event after it (one ordered probe of the (topic, seq) index with the
-- topic a constant: at most `page` entries), and the page's query also
-- stops at the lowest of them: every event of the page is at or below it,
-- since that topic alone has `page` events up to there. The sort then
-- holds at most `page` rows per topic. A reader nearer the head (a resume a
-- few seconds back, every reader of a reconnect storm) is as before: the
-- whole log after it is at most 4 pages.

CREATE OR REPLACE FUNCTION herald_history_bound(topics text[], after bigint, page bigint, floor bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_custom_plan
-- The statistics may think the topic rare (that is when the sort hurts):
-- without sorts to choose, the plan merges the partitions' ordered scans.
SET enable_sort = off
AS $$
DECLARE
    t text;
    b bigint;
    bound bigint;
BEGIN
    FOREACH t IN ARRAY topics LOOP
        -- `t` is a constant to the planner (a custom plan): the index
        -- (topic, seq) then gives this topic's rows in `seq` order.
        SELECT ev.seq INTO b
          FROM events ev
         WHERE ev.topic = t AND ev.seq > after AND ev.pending_no >= floor
         ORDER BY ev.seq
        OFFSET page - 1
         LIMIT 1;
        IF FOUND THEN
            bound := least(bound, b);
        END IF;
    END LOOP;
    RETURN bound;
END
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
    bound bigint;
BEGIN
    SELECT GREATEST(after, s.pruned_seq),
           CASE WHEN s.last_seq - GREATEST(after, s.pruned_seq) > 4 * page
                THEN herald_history_bound(topics, GREATEST(after, s.pruned_seq), page, floor) END
      INTO from_seq, bound
      FROM sequencer s;
    RETURN QUERY
    SELECT s.last_seq, s.pruned_seq, e.id, e.seq, e.topic, e.type, e.data, e.created_at
      FROM sequencer s
      LEFT JOIN LATERAL (
            SELECT ev.id, ev.seq, ev.topic, ev.type, ev.data, ev.created_at
              FROM events ev
             WHERE ev.topic = ANY(topics) AND ev.seq > from_seq
               AND ev.seq <= COALESCE(bound, 9223372036854775807)
               AND ev.pending_no >= floor
             ORDER BY ev.seq
             LIMIT page
      ) e ON true
     ORDER BY e.seq;
END
$$;

-- jit = off: the planner takes the one-row `sequencer` for hundreds of rows
-- until it is analyzed, and a batch of readers then costs past
-- jit_above_cost: compiling took ~20 ms of a 21 ms query.
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
    bounds int8[];
BEGIN
    SELECT array_agg(
               CASE WHEN s.last_seq - GREATEST(q.after, s.pruned_seq) > 4 * page
                    THEN herald_history_bound(string_to_array(q.topics, ','),
                                              GREATEST(q.after, s.pruned_seq), page, floor) END
               ORDER BY q.ord)
      INTO bounds
      FROM sequencer s
     CROSS JOIN unnest(topics, afters) WITH ORDINALITY AS q(topics, after, ord);
    RETURN QUERY
    SELECT q.i, s.last_seq, s.pruned_seq, e.id, e.seq, e.topic, e.type, e.data, e.created_at
      FROM sequencer s
     CROSS JOIN unnest(readers, topics, afters, bounds) AS q(i, topics, after, bound)
      LEFT JOIN LATERAL (
            SELECT ev.id, ev.seq, ev.topic, ev.type, ev.data, ev.created_at
              FROM events ev
             WHERE ev.topic = ANY(string_to_array(q.topics, ','))
               AND ev.seq > GREATEST(q.after, s.pruned_seq)
               AND ev.seq <= COALESCE(q.bound, 9223372036854775807)
               AND ev.pending_no >= floor
             ORDER BY ev.seq
             LIMIT page
      ) e ON true
     ORDER BY q.i, e.seq;
END
$$;
