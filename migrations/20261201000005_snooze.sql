-- Snooze: an entry with `snoozed_until` set is out of every list (except
-- `status=snoozed`) and every count until due work wakes it
-- (`notification.wake`, at `snoozed_until`): it comes back unread, at the top.
-- The wake-up is a state change the worker makes and announces in one
-- transaction under the user's inbox lock, so counts stay exact through it.
ALTER TABLE notifications ADD COLUMN snoozed_until timestamptz;
CREATE INDEX notifications_snoozed ON notifications (user_id) WHERE snoozed_until IS NOT NULL;

ALTER TABLE due_work DROP CONSTRAINT due_work_kind_check;
ALTER TABLE due_work ADD CONSTRAINT due_work_kind_check
    CHECK (kind IN ('notification.expire', 'notification.wake'));
