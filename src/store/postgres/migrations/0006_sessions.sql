-- Dashboard sessions, shared by every node: a login on one node is live on
-- all, a logout ends it everywhere at once. Keyed by the SHA-256 of the
-- session id (the cookie itself is never stored). The flash slot holds a
-- webhook URL sealed with the secret key for its source (never in clear).
CREATE TABLE sessions (
    key          text PRIMARY KEY,
    csrf         text NOT NULL,
    expires_at   timestamptz NOT NULL,
    flash_source uuid,
    flash_sealed jsonb
);
-- Pruning expired sessions (at every login) is a range scan.
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Values every node must agree on, written by the first node that finds
-- none: the admin token's hash ('admin_token') and a canary sealed with the
-- secret key ('secret_key_canary'), so a node with another key refuses to
-- start.
CREATE TABLE shared_settings (
    name   text PRIMARY KEY,
    value  jsonb NOT NULL,
    set_at timestamptz NOT NULL DEFAULT now()
);
