-- Scheduled delivery: an event or a notification accepted now (a POST with
-- `deliver_at`) and delivered at `deliver_at` by due work
-- (`scheduled.deliver`), through the outbox like any publish, so it gets its
-- `seq` when it becomes visible. Until then it is nowhere else: not in the
-- events table, not in an inbox.
--
-- The row stays after delivery or cancellation (until retention), so a
-- cancel can tell "already delivered" (409) from "no such id" (404).
CREATE TABLE scheduled_deliveries (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('event', 'notification')),
    deliver_at   timestamptz NOT NULL,
    -- What to deliver (herald_store::scheduled::Scheduled).
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    cancelled_at timestamptz,
    CHECK (delivered_at IS NULL OR cancelled_at IS NULL)
);
-- Retention: finished rows, oldest first.
CREATE INDEX scheduled_deliveries_done ON scheduled_deliveries (COALESCE(delivered_at, cancelled_at))
    WHERE delivered_at IS NOT NULL OR cancelled_at IS NOT NULL;

ALTER TABLE due_work DROP CONSTRAINT due_work_kind_check;
ALTER TABLE due_work ADD CONSTRAINT due_work_kind_check
    CHECK (kind IN ('notification.expire', 'notification.wake', 'scheduled.deliver'));
