-- The todos of TaskOverflow. Datetimes are naive UTC with microsecond precision, stored as
-- text in the one format the store writes, YYYY-MM-DD HH:MM:SS with a left-aligned fraction
-- only when it is not zero, whose text order is time order (the window filter relies on it).
-- AUTOINCREMENT: ids are never reused after a delete, as with PostgreSQL's identity.
CREATE TABLE todos (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    title       TEXT    NOT NULL CHECK (length(title) <= 80),
    description TEXT             CHECK (description IS NULL OR length(description) <= 120),
    completed   BOOLEAN NOT NULL DEFAULT 0,
    deadline_at TEXT,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);

-- Serves the window filter (deadline at most N days from now).
CREATE INDEX todos_deadline_at_idx ON todos (deadline_at) WHERE deadline_at IS NOT NULL;
