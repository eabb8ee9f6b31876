-- The broker's tables. `__SCHEMA__` is replaced by the configured schema (a quoted
-- identifier) before this file runs; see src/migrate.rs.

-- Declared queues. A publish or receive on a name missing here is QueueNotFound.
CREATE TABLE __SCHEMA__.queues (
    name       text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Every message, waiting, delayed or leased. A row lives until it is acked (deleted) or its
-- queue is deleted; dead-lettering moves it to the dead-letter queue by changing `queue`.
CREATE TABLE __SCHEMA__.messages (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue         text        NOT NULL REFERENCES __SCHEMA__.queues (name) ON DELETE CASCADE,
    payload       bytea       NOT NULL,
    headers       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    properties    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    ordering_key  text,
    dedup_key     text,
    available_at  timestamptz NOT NULL DEFAULT now(),
    receive_count integer     NOT NULL DEFAULT 0,
    lease_token   bigint,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Claims scan a queue in publish order (id) and skip rows that are not yet available.
CREATE INDEX messages_queue_id ON __SCHEMA__.messages (queue, id);
-- The next moment something becomes available (a delay or a lease ending).
CREATE INDEX messages_queue_available_at ON __SCHEMA__.messages (queue, available_at);

-- Lease tokens: a fresh value for every claim, so a stale holder's token never matches.
CREATE SEQUENCE __SCHEMA__.lease_tokens AS bigint;

-- Deduplication ids seen within their window. A publish inserts here in the same statement as
-- the message; a row whose window has passed is replaced by the next publish of that id.
CREATE TABLE __SCHEMA__.dedup (
    queue      text        NOT NULL REFERENCES __SCHEMA__.queues (name) ON DELETE CASCADE,
    dedup_key  text        NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (queue, dedup_key)
);
CREATE INDEX dedup_expires_at ON __SCHEMA__.dedup (expires_at);
