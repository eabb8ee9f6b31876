-- The result store's table. `__SCHEMA__` is replaced by the configured schema.
CREATE TABLE __SCHEMA__.task_results (
    task_id    text        PRIMARY KEY,
    status     text        NOT NULL
        CHECK (status IN ('PENDING', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED')),
    result     jsonb       NOT NULL DEFAULT 'null'::jsonb,
    traceback  text,
    date_done  timestamptz,
    expires_at timestamptz NOT NULL
);
CREATE INDEX task_results_expires_at ON __SCHEMA__.task_results (expires_at);
