-- Grouped notifications (digests): notifications with the same recipient,
-- category and `group_key` within the category's `group_window` of the
-- group's first one fold into one inbox entry while it is unread.
--
--   latest_id         UUIDv7 of the newest notification folded in (the
--                     entry's own id when alone), or of its return from
--                     snooze: lists are ordered by it, newest first, so an
--                     entry moves to the top when it changes that way
--   latest_at         when that was
--   group_open_until  until when new notifications may join (NULL: not
--                     grouped); closed (set to the past) when the entry is
--                     read, archived or snoozed, so such a group never reopens
--   group_count       notifications folded in
--   actors            the last few distinct actors, newest first
ALTER TABLE notifications
    ADD COLUMN latest_id uuid,
    ADD COLUMN latest_at timestamptz,
    ADD COLUMN group_key text,
    ADD COLUMN group_open_until timestamptz,
    ADD COLUMN group_count integer NOT NULL DEFAULT 1 CHECK (group_count >= 1),
    ADD COLUMN actors text[] NOT NULL DEFAULT '{}';
UPDATE notifications SET latest_id = id, latest_at = created_at;
ALTER TABLE notifications
    ALTER COLUMN latest_id SET NOT NULL,
    ALTER COLUMN latest_at SET NOT NULL,
    ALTER COLUMN latest_at SET DEFAULT now();

DROP INDEX notifications_inbox;
CREATE INDEX notifications_inbox ON notifications (user_id, latest_id DESC);
-- A send finds the recipient's open group.
CREATE INDEX notifications_open_groups ON notifications (user_id, group_key)
    WHERE group_key IS NOT NULL AND read_at IS NULL AND archived_at IS NULL;

ALTER TABLE categories
    ADD COLUMN group_window_ms bigint NOT NULL DEFAULT 3600000 CHECK (group_window_ms >= 0);
