-- The event log: one row per record, in `record` the RawEvent as JSON bytes
-- (bytea, so a payload comes back byte for byte as it was stored). An erased
-- event's row holds its scrubbed copy. Ids are UUID v7 assigned at append by
-- the receiving node; `seq` is the log order: appends commit one group at a
-- time under an advisory lock (see log.rs), so `seq` order is commit order
-- on every node, which event ids from several nodes' clocks are not.
CREATE TABLE events (
    id          uuid PRIMARY KEY,
    seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    source_id   uuid NOT NULL,
    received_at timestamptz NOT NULL,
    record      bytea NOT NULL
);
CREATE INDEX events_source ON events (source_id, id);

-- The processor's queue: one row per event not processed yet, written in the
-- append's transaction, read in `seq` order. The batch that processes an
-- event deletes its row in the same transaction as its state, so an event is
-- processed exactly once: a node that lost the processing lease finds the
-- rows gone and writes nothing.
CREATE TABLE pending (
    event_id  uuid PRIMARY KEY,
    source_id uuid NOT NULL,
    seq       bigint NOT NULL UNIQUE
);
CREATE INDEX pending_source ON pending (source_id);
