-- One inbox entry per recipient. State changes are timestamps; "unread" is
-- read_at IS NULL, and so on. Expired entries (expires_at <= now()) are left
-- out of every list and count by the queries themselves, so they disappear
-- exactly at expires_at.
CREATE TABLE notifications (
    id          uuid PRIMARY KEY,
    user_id     text NOT NULL,
    category    text NOT NULL,
    title       text NOT NULL,
    body        text,
    data        jsonb NOT NULL DEFAULT '{}',
    action_url  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    read_at     timestamptz,
    seen_at     timestamptz,
    archived_at timestamptz
);

-- Newest-first pages of one inbox (ids are UUIDv7: time-ordered).
CREATE INDEX notifications_inbox ON notifications (user_id, id DESC);
-- The badge: unread, not archived.
CREATE INDEX notifications_unread ON notifications (user_id) WHERE read_at IS NULL AND archived_at IS NULL;
