-- Category defaults, set by services (PUT /v1/categories/{category}). A
-- category with no row has every channel on, is not required, pushes at once.
CREATE TABLE categories (
    category      text PRIMARY KEY,
    in_app        boolean NOT NULL,
    web_push      boolean NOT NULL,
    required      boolean NOT NULL,
    push_delay_ms bigint NOT NULL CHECK (push_delay_ms >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A user's own choices, per category; NULL follows the category's default.
CREATE TABLE preferences (
    user_id    text NOT NULL,
    category   text NOT NULL,
    in_app     boolean,
    web_push   boolean,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, category)
);

-- Browsers' push subscriptions (PushSubscription.toJSON()). An endpoint is
-- one browser profile's: re-subscribing it moves it to the new user.
CREATE TABLE push_subscriptions (
    id              uuid PRIMARY KEY,
    user_id         text NOT NULL,
    endpoint        text NOT NULL UNIQUE,
    p256dh          text NOT NULL,
    auth            text NOT NULL,
    expiration_time timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);

-- The push queue: one row per notification and subscription, written in the
-- notification's transaction, due after the category's push_delay. The worker
-- claims due rows with FOR UPDATE SKIP LOCKED, pushing `due_at` ahead by a lease
-- in the claiming statement: a worker killed mid-send leaves its rows to come
-- due again, so what was not acknowledged is sent again, and nothing more.
CREATE TABLE push_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id uuid NOT NULL REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    user_id         text NOT NULL,
    notification_id uuid NOT NULL,
    category        text NOT NULL,
    -- {id, title, body, action_url, category}; `unread` is added when sent.
    payload         jsonb NOT NULL,
    due_at          timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX push_deliveries_due ON push_deliveries (due_at);
