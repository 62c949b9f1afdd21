-- The event log. A row is written by the API in the same transaction as the
-- state it announces, with `seq` NULL: that is the outbox. The worker's
-- sequencer later assigns `seq` to committed rows, in commit order of its own
-- (serialized) transactions, so `seq` grows in the order events become visible.
CREATE TABLE events (
    id           uuid PRIMARY KEY,
    -- Insertion order of unsequenced rows; only used to order a batch.
    pending_no   bigint GENERATED ALWAYS AS IDENTITY,
    seq          bigint UNIQUE,
    topic        text NOT NULL,
    type         text NOT NULL,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sequenced_at timestamptz
);

-- The outbox: committed rows still waiting for a seq.
CREATE INDEX events_outbox ON events (pending_no) WHERE seq IS NULL;
-- Replay and history: one topic (or a few) after a position.
CREATE INDEX events_topic_seq ON events (topic, seq) WHERE seq IS NOT NULL;

-- One row: the sequencer's state.
--   last_seq      highest seq handed out (committed with its events)
--   published_seq every event up to here has been published to the bus
--   pruned_seq    history at or below this was deleted by retention
CREATE TABLE sequencer (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),
    last_seq      bigint NOT NULL DEFAULT 0,
    published_seq bigint NOT NULL DEFAULT 0,
    pruned_seq    bigint NOT NULL DEFAULT 0
);
INSERT INTO sequencer DEFAULT VALUES;

-- Idempotency-Key records, scoped by the caller's identity. The row is
-- written in the same transaction as the effect it protects.
CREATE TABLE idempotency_keys (
    principal    text NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status       smallint NOT NULL,
    response     jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
