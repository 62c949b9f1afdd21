-- Work that falls due at a time (a notification's expiry, and what else is
-- time-driven): one table, so one mechanism in the worker. Items are claimed
-- with FOR UPDATE SKIP LOCKED and deleted in the transaction that does the
-- work, so each runs exactly once across workers, and survives restarts.
CREATE TABLE due_work (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    due_at   timestamptz NOT NULL,
    -- What to do (herald_store::due::DueKind).
    kind     text NOT NULL CHECK (kind IN ('notification.expire')),
    -- What to do it to (a notification id).
    subject  uuid NOT NULL
);
CREATE INDEX due_work_due ON due_work (due_at);

-- Notifications that will still expire get their announcement.
INSERT INTO due_work (due_at, kind, subject)
SELECT expires_at, 'notification.expire', id
  FROM notifications
 WHERE expires_at > now() AND archived_at IS NULL;
