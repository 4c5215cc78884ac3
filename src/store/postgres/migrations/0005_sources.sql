-- Sources, the token lookups the hook path resolves, mapping versions and
-- replay jobs.

-- A source (Source as JSON), by id. UUID order is the seam's "id order".
CREATE TABLE sources (
    id  uuid PRIMARY KEY,
    doc jsonb NOT NULL
);

-- Every token hash that resolves to a source: its current token, and a
-- rotated-out one while the source keeps it (`Source::token_hashes`).
-- `put_source` replaces a source's rows in the statement that writes it.
CREATE TABLE source_tokens (
    hash      text COLLATE "C" PRIMARY KEY,
    source_id uuid NOT NULL
);
CREATE INDEX source_tokens_source ON source_tokens (source_id);

-- The last mapping version number given out per source. Its row lock
-- serialises saves of one source across nodes, so versions are consecutive
-- and never given twice (a counter, as the embedded store keeps, rather
-- than max(version) + 1, which two transactions could both compute).
CREATE TABLE mapping_counters (
    source_id uuid PRIMARY KEY,
    last      integer NOT NULL
);

-- Every saved version of a source's mapping (MappingSpec as JSON).
CREATE TABLE mappings (
    source_id  uuid NOT NULL,
    version    integer NOT NULL,
    mapping    jsonb NOT NULL,
    created_at timestamptz NOT NULL,
    preset     text,
    PRIMARY KEY (source_id, version)
);

-- One replay job per source (ReplayJob as JSON); `finished` mirrors
-- `finished_at` so open jobs are found by the partial index.
CREATE TABLE replays (
    source_id uuid PRIMARY KEY,
    job       jsonb NOT NULL,
    finished  boolean NOT NULL
);
CREATE INDEX replays_open ON replays (source_id) WHERE NOT finished;
