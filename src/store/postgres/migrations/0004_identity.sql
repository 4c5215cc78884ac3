-- Identity: profiles, the identifiers that point at them, redirects left by
-- merges, event links, the audit history, and the rules (kinds, never-merge).
-- Every writer holds the identity advisory lock (identity.rs, IDENTITY_LOCK);
-- the primary key on identifiers is the last line of defence: no identifier
-- can belong to two profiles whatever a writer does.

-- An identifier (kind name as the domain spells it, normalised value) and
-- the profile it was last written with (may be absorbed: follow redirects).
-- COLLATE "C": byte order, so prefix searches (starts_with) use the index.
CREATE TABLE identifiers (
    kind       text COLLATE "C" NOT NULL,
    value      text COLLATE "C" NOT NULL,
    profile_id uuid NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX identifiers_profile ON identifiers (profile_id);

-- Live profiles (Profile as JSON). Ids are UUID v7: key order is creation order.
CREATE TABLE profiles (
    id  uuid PRIMARY KEY,
    doc jsonb NOT NULL
);

-- An absorbed profile id and the survivor it points to.
CREATE TABLE redirects (
    from_id uuid PRIMARY KEY,
    to_id   uuid NOT NULL
);
CREATE INDEX redirects_to ON redirects (to_id);

-- Which events joined which profile (the profile as it was then: a merged
-- profile's links stay under its own id, listed through `merged_from`).
CREATE TABLE profile_events (
    profile_id uuid NOT NULL,
    event_id   uuid NOT NULL,
    PRIMARY KEY (profile_id, event_id)
);

-- The audit history (AuditEntry as JSON), per profile, in id (time) order.
CREATE TABLE audit (
    profile_id uuid NOT NULL,
    id         uuid NOT NULL,
    entry      jsonb NOT NULL,
    PRIMARY KEY (profile_id, id)
);

-- The identifier kinds (KindSet as JSON): one row, absent until first set.
CREATE TABLE identity_kinds (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    kinds     jsonb NOT NULL
);

-- Never-merge rules (NeverMergeRule as JSON), by rule id (UUID v7).
CREATE TABLE never_merge (
    id   uuid PRIMARY KEY,
    rule jsonb NOT NULL
);
