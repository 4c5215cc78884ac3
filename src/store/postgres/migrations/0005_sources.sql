-- Sources (Source as JSON: token hashes, sealed signing secrets, settings).
CREATE TABLE sources (
    id  uuid PRIMARY KEY,
    doc jsonb NOT NULL
);

-- Every token hash a source answers to (the current one, and a rotated-out
-- one in its grace), replaced with the source in one transaction.
CREATE TABLE source_tokens (
    hash      text COLLATE "C" PRIMARY KEY,
    source_id uuid NOT NULL REFERENCES sources (id) ON DELETE CASCADE
);
CREATE INDEX source_tokens_source ON source_tokens (source_id);

-- Every saved version of a source's mapping (MappingVersion as JSON).
-- Kept when the source is removed, as the embedded backend does.
CREATE TABLE mapping_versions (
    source_id uuid NOT NULL,
    version   integer NOT NULL,
    doc       jsonb NOT NULL,
    PRIMARY KEY (source_id, version)
);

-- A replay job per source (ReplayJob as JSON), replaced as it progresses.
CREATE TABLE replays (
    source_id uuid PRIMARY KEY,
    finished  boolean NOT NULL,
    doc       jsonb NOT NULL
);
CREATE INDEX replays_open ON replays (source_id) WHERE NOT finished;
