-- herald_sequence reads the outbox in order, whatever the statistics say.
-- Its candidates are the first rows of events_outbox in (pending_no,
-- batch_pos) order. After an ANALYZE taken while nothing was waiting, the
-- planner expects almost no row with `seq IS NULL` and prefers to fetch them
-- all (through events_seq_key or a bitmap scan) and sort them: with 230k
-- waiting that is 100-130 ms per step instead of <15 ms, and a burst of batch
-- publishes drained about 7x slower (the bench's storm-then-publish run).
-- Without sorting, the ordered index scan that stops after the limit is the
-- only plan left; nothing else in the function sorts.
ALTER FUNCTION herald_sequence(bigint) SET enable_sort = off;
