-- The error log (ErrorEntry as JSON), by entry id (UUID v7: time order).
CREATE TABLE errors (
    id  uuid PRIMARY KEY,
    doc jsonb NOT NULL
);

-- The processor's committed cursor: the last event of its last batch (id,
-- and its `seq` in the log). One row.
CREATE TABLE progress (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    event_id   uuid NOT NULL,
    event_seq  bigint NOT NULL
);

-- Per-source counters (Counts as JSON), absolute, written by each batch.
CREATE TABLE counts (
    source_id uuid PRIMARY KEY,
    doc       jsonb NOT NULL
);

-- Time buckets (Bucket as JSON) per source, window and ring slot.
CREATE TABLE activity (
    source_id uuid NOT NULL,
    win       text NOT NULL,
    slot      integer NOT NULL,
    doc       jsonb NOT NULL,
    PRIMARY KEY (source_id, win, slot)
);

-- Idempotency keys (source id ‖ key) and the event holding each.
CREATE TABLE dedupe (
    key      bytea PRIMARY KEY,
    event_id uuid NOT NULL
);

-- Learned schema snapshots (JSON bytes, as the sniffer writes them).
CREATE TABLE schemas (
    source_id uuid PRIMARY KEY,
    snapshot  bytea NOT NULL
);

-- Requests on a rotated-out token during its grace (OldTokenUse as JSON).
CREATE TABLE old_token_uses (
    source_id uuid PRIMARY KEY,
    requests  bigint NOT NULL,
    doc       jsonb NOT NULL
);

-- Delivery ids a source accepted or has in flight (DeliveryState as JSON),
-- and how many redeliveries each source was answered.
CREATE TABLE deliveries (
    source_id   uuid NOT NULL,
    delivery_id text COLLATE "C" NOT NULL,
    doc         jsonb NOT NULL,
    PRIMARY KEY (source_id, delivery_id)
);
CREATE TABLE redeliveries (
    source_id uuid PRIMARY KEY,
    answered  bigint NOT NULL
);
