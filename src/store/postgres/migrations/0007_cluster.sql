-- Single-event retries asked on a node that does not process, taken by
-- the node holding the processing lease (see cluster.rs).
CREATE TABLE retries (
    seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id uuid NOT NULL,
    asked_at timestamptz NOT NULL DEFAULT now()
);
