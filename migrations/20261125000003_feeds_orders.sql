-- Activity feeds. `foreign_id` (the publisher's own id for the activity)
-- makes re-sending an activity an update of the same row.
CREATE TABLE feed_activities (
    id          uuid PRIMARY KEY,
    feed        text NOT NULL,
    actor       text NOT NULL,
    verb        text NOT NULL,
    object      text NOT NULL,
    target      text,
    data        jsonb NOT NULL DEFAULT '{}',
    foreign_id  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (feed, foreign_id)
);
-- Newest-first pages of one feed (ids are UUIDv7: time-ordered).
CREATE INDEX feed_activities_page ON feed_activities (feed, id DESC);

-- Orders and their status timeline. Status changes lock the order row, so
-- two concurrent requests for one transition cannot both succeed.
CREATE TABLE orders (
    order_id    text PRIMARY KEY,
    customer_id text NOT NULL,
    status      text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer ON orders (customer_id);

CREATE TABLE order_timeline (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id  text NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    status    text NOT NULL,
    note      text,
    data      jsonb NOT NULL DEFAULT '{}',
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_timeline_order ON order_timeline (order_id, id);
