-- Each processed event's state (EventState as JSON), written by the
-- processor's batch transaction and changed by replays and erasure.
CREATE TABLE event_states (
    event_id  uuid PRIMARY KEY,
    source_id uuid NOT NULL,
    status    text NOT NULL,
    state     jsonb NOT NULL
);
CREATE INDEX event_states_source ON event_states (source_id, event_id);
