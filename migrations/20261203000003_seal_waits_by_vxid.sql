-- A partition seals only once no transaction that could still add a row to
-- it runs, judged by virtual transaction ids instead of
-- `pg_stat_activity.xact_start`.
--
-- The straggler check compared each backend's `xact_start` with the
-- partition's `closed_at`. With `track_activities = off` (a setting a DBA
-- may choose, per session or server-wide) a backend reports no
-- `xact_start`, the comparison is NULL, and the check passed: a partition
-- sealed while a transaction that had drawn an insertion number in it was
-- still open. Its row, committed afterwards into a sealed partition, was
-- never sequenced (the sequencer reads only unsealed partitions): an event
-- accepted and lost. A prepared transaction is not in `pg_stat_activity` at
-- all, so it was missed the same way.
--
-- Now the close records the transactions of this database running just
-- after it read the next insertion number (`herald_running_vxids`, from the
-- sequencing floor's migration), and the partition seals once none of them
-- runs and no prepared transaction of this database waits
-- (`herald_any_running`): the argument of `20261203000002_sequence_floor`,
-- which does not depend on what backends report. A partition closed by the
-- roll (`herald_event_log_roll`: its SHARE lock waited for every writer, so
-- it has no straggler) or before this migration keeps the old check.
ALTER TABLE event_partitions ADD COLUMN closed_wait text[];

-- Leaves out the caller's own transaction, which draws no insertion number
-- (the sequencing step, the upkeep): a partition can seal in the pass that
-- closed it, as before.
CREATE OR REPLACE FUNCTION herald_running_vxids() RETURNS text[]
LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(array_agg(l.virtualxid), '{}')
      FROM pg_locks l
      JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'virtualxid' AND l.granted AND l.mode = 'ExclusiveLock'
       AND a.datname = current_database() AND l.pid <> pg_backend_pid()
$$;

COMMENT ON COLUMN event_partitions.closed_wait IS
    'Virtual transaction ids running when the partition closed: it seals once none runs';

CREATE OR REPLACE FUNCTION herald_event_partitions_seal() RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    next_no bigint;
    p event_partitions;
    busy boolean;
    pending boolean;
    lo_seq bigint;
    hi_seq bigint;
    newest timestamptz;
    n bigint;
    sealed int := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7243516001);
    next_no := herald_next_pending_no();
    -- clock_timestamp(): the time of this observation, after the numbers
    -- passed; a straggler's transaction began before it, and is among the
    -- running ones read here (after next_no).
    UPDATE event_partitions x SET opened_at = clock_timestamp()
     WHERE x.opened_at IS NULL AND x.lo < next_no;
    UPDATE event_partitions x SET closed_at = clock_timestamp(), closed_wait = herald_running_vxids()
     WHERE x.closed_at IS NULL AND x.hi <= next_no;
    FOR p IN SELECT * FROM event_partitions x
              WHERE x.closed_at IS NOT NULL AND x.sealed_at IS NULL ORDER BY x.lo LOOP
        IF p.closed_wait IS NOT NULL THEN
            busy := herald_any_running(p.closed_wait);
        ELSE
            SELECT EXISTS (SELECT 1 FROM pg_stat_activity a
                            WHERE a.datname = current_database()
                              AND a.pid <> pg_backend_pid()
                              AND a.xact_start < p.closed_at)
              INTO busy;
        END IF;
        EXIT WHEN busy;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE seq IS NULL)', p.name) INTO pending;
        CONTINUE WHEN pending;
        EXECUTE format('SELECT min(seq), max(seq), max(created_at), count(*) FROM %I', p.name)
           INTO lo_seq, hi_seq, newest, n;
        UPDATE event_partitions x
           SET sealed_at = clock_timestamp(), min_seq = lo_seq, max_seq = hi_seq,
               max_created = newest, events = n
         WHERE x.name = p.name;
        sealed := sealed + 1;
    END LOOP;
    RETURN sealed;
END
$$;
