//! Every SQL statement the broker runs, built once per schema. (The result store's are in
//! [`crate::celery_tables`].)
//!
//! Public (but hidden from the documentation) so that the benchmark's raw baseline runs exactly
//! these statements through sqlx; nothing else should depend on it.

use crate::migrate::quoted;

/// The `NOTIFY` channel of a schema: publishes, requeues and dead-letters in the schema signal
/// it with the queue's name as payload.
#[must_use]
pub fn channel(schema: &str) -> String {
    format!("{schema}.messages")
}

/// The statements of one schema. Parameters are listed with each.
#[derive(Debug, Clone)]
pub struct Statements {
    /// Publishes a batch, deduplicating by id within the window, and notifies the channel once
    /// when anything was inserted. Sets `synchronous_commit = on` for the rest of the
    /// transaction (the caller's, with `publish_in`), so its commit is on disk whatever the
    /// session's setting.
    ///
    /// `$1` queue, `$2` payloads `bytea[]`, `$3` headers `jsonb[]`, `$4` properties `jsonb[]`,
    /// `$5` ordering keys `text[]`, `$6` deduplication ids `text[]`, `$7` delays in seconds
    /// `float8[]`, `$8` deduplication window in seconds, `$9` channel. Returns one row:
    /// `queue_exists bool`, `inserted int8`.
    pub publish: String,
    /// Claims up to `$2` available messages in id order, skipping rows other claims hold,
    /// leasing them for `$3` seconds with a fresh token; first moves messages already received
    /// `$5` times to the dead-letter queue `$4` (when not null and declared) with header `$8`
    /// set to the reason `$6`, notifying channel `$7`.
    ///
    /// Returns the leased rows: `id`, `payload`, `headers`, `properties`, `ordering_key`,
    /// `receive_count`, `lease_token`, in id order. When it leased nothing it returns instead
    /// one row whose `id` is null, with `queue_exists` (whether queue `$1` is declared) and
    /// `next_in_secs` (seconds until its earliest row becomes available: negative when one
    /// already is but another claim holds it, null when the queue is empty), so that an empty
    /// look costs one round trip.
    pub claim: String,
    /// Deletes the rows of queue `$1` whose (`id`, `lease_token`) pairs are in `$2` / `$3`.
    pub ack: String,
    /// Gives back row `$2` of queue `$1` held with token `$3`: available again after `$4`
    /// seconds, or moved to dead-letter queue `$6` (when not null) if `$5` is true or it was
    /// received `$7` times, with header `$9` set to reason `$8`. Notifies channel `$10`.
    /// Returns the row's queue afterwards.
    pub nack: String,
    /// Sets the lease of row `$2` of queue `$1` held with token `$3` to end `$4` seconds from
    /// now.
    pub extend: String,
    /// Declares the queues named in `$1` (`text[]`), leaving existing ones alone.
    pub declare: String,
    /// Deletes the queues named in `$1` (`text[]`) and, by cascade, their messages.
    pub delete: String,
    /// Forgets deduplication ids whose window has passed.
    pub purge_dedup: String,
    /// Counts queue `$1`'s messages at one instant: `queue_exists bool`, `ready int8`
    /// (available now, expired leases included), `in_flight int8` (leased), `delayed int8`
    /// (waiting for a delay).
    pub count: String,
}

impl Statements {
    /// The statements for `schema` (a validated name).
    #[must_use]
    pub fn new(schema: &str) -> Self {
        let s = quoted(schema);
        Self {
            publish: format!(
                "WITH target AS (
                     SELECT name FROM {s}.queues WHERE name = $1
                 ), input AS (
                     SELECT m.*, row_number() OVER (PARTITION BY m.dedup_key ORDER BY m.ord) AS dedup_rank
                     FROM unnest($2::bytea[], $3::jsonb[], $4::jsonb[], $5::text[], $6::text[], $7::float8[])
                          WITH ORDINALITY AS m(payload, headers, properties, ordering_key, dedup_key, delay_secs, ord)
                 ), fresh_keys AS (
                     INSERT INTO {s}.dedup AS d (queue, dedup_key, expires_at)
                     SELECT target.name, input.dedup_key, clock_timestamp() + make_interval(secs => $8)
                     FROM input CROSS JOIN target
                     WHERE input.dedup_key IS NOT NULL AND input.dedup_rank = 1
                     ORDER BY input.dedup_key
                     ON CONFLICT (queue, dedup_key) DO UPDATE SET expires_at = EXCLUDED.expires_at
                         WHERE d.expires_at <= clock_timestamp()
                     RETURNING d.dedup_key
                 ), inserted AS (
                     INSERT INTO {s}.messages
                         (queue, payload, headers, properties, ordering_key, dedup_key, available_at)
                     SELECT target.name, input.payload, input.headers, input.properties,
                            input.ordering_key, input.dedup_key,
                            clock_timestamp() + make_interval(secs => input.delay_secs)
                     FROM input CROSS JOIN target
                     WHERE input.dedup_key IS NULL
                        OR (input.dedup_rank = 1 AND input.dedup_key IN (SELECT dedup_key FROM fresh_keys))
                     ORDER BY input.ord
                     RETURNING id
                 )
                 SELECT EXISTS (SELECT 1 FROM target) AS queue_exists,
                        (SELECT count(*) FROM inserted) AS inserted,
                        (SELECT count(*) FROM (
                            SELECT pg_notify($9, $1) WHERE EXISTS (SELECT 1 FROM inserted)
                        ) AS signal) AS notified,
                        set_config('synchronous_commit', 'on', true) AS synchronous_commit"
            ),
            // The `buried` update's RETURNING list calls pg_notify: a data-modifying WITH
            // clause always runs to completion, RETURNING included, even when unreferenced.
            claim: format!(
                "WITH picked AS (
                     SELECT id, receive_count FROM {s}.messages
                     WHERE queue = $1 AND available_at <= now()
                     ORDER BY id
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED
                 ), buried AS (
                     UPDATE {s}.messages AS m
                     SET queue = $4, receive_count = 0, available_at = clock_timestamp(),
                         lease_token = NULL,
                         headers = m.headers || jsonb_build_object($8::text, $6::text)
                     FROM picked
                     WHERE m.id = picked.id AND picked.receive_count >= $5
                       AND EXISTS (SELECT 1 FROM {s}.queues WHERE name = $4::text)
                     RETURNING m.id, pg_notify($7, $4)
                 ), leased AS (
                     UPDATE {s}.messages AS m
                     SET available_at = clock_timestamp() + make_interval(secs => $3),
                         receive_count = m.receive_count + 1,
                         lease_token = nextval('{s}.lease_tokens')
                     FROM picked
                     WHERE m.id = picked.id
                       AND (picked.receive_count < $5
                            OR NOT EXISTS (SELECT 1 FROM {s}.queues WHERE name = $4::text))
                     RETURNING m.id, m.payload, m.headers, m.properties, m.ordering_key,
                               m.receive_count, m.lease_token
                 )
                 SELECT id, payload, headers, properties, ordering_key, receive_count, lease_token,
                        NULL::bool AS queue_exists, NULL::float8 AS next_in_secs
                 FROM leased
                 UNION ALL
                 SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                        EXISTS (SELECT 1 FROM {s}.queues WHERE name = $1),
                        (SELECT extract(epoch FROM min(available_at) - clock_timestamp())::float8
                         FROM {s}.messages WHERE queue = $1)
                 WHERE NOT EXISTS (SELECT 1 FROM leased)
                 ORDER BY id"
            ),
            ack: format!(
                "DELETE FROM {s}.messages AS m
                 USING unnest($2::bigint[], $3::bigint[]) AS t(id, token)
                 WHERE m.id = t.id AND m.lease_token = t.token AND m.queue = $1"
            ),
            nack: format!(
                "WITH settled AS (
                     UPDATE {s}.messages AS m
                     SET queue = CASE WHEN {dead} THEN $6 ELSE m.queue END,
                         receive_count = CASE WHEN {dead} THEN 0 ELSE m.receive_count END,
                         headers = CASE WHEN {dead}
                                        THEN m.headers || jsonb_build_object($9::text, $8::text)
                                        ELSE m.headers END,
                         available_at = CASE WHEN {dead} THEN clock_timestamp()
                                        ELSE clock_timestamp() + make_interval(secs => $4) END,
                         lease_token = NULL
                     WHERE m.id = $2 AND m.lease_token = $3 AND m.queue = $1
                     RETURNING m.queue, pg_notify($10, m.queue)
                 )
                 SELECT queue FROM settled",
                dead = "($6::text IS NOT NULL AND ($5::bool OR m.receive_count >= $7::int))"
            ),
            extend: format!(
                "UPDATE {s}.messages SET available_at = clock_timestamp() + make_interval(secs => $4)
                 WHERE id = $2 AND lease_token = $3 AND queue = $1"
            ),
            declare: format!(
                "INSERT INTO {s}.queues (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING"
            ),
            delete: format!("DELETE FROM {s}.queues WHERE name = ANY($1::text[])"),
            purge_dedup: format!("DELETE FROM {s}.dedup WHERE expires_at <= clock_timestamp()"),
            count: format!(
                "SELECT EXISTS (SELECT 1 FROM {s}.queues WHERE name = $1) AS queue_exists,
                        count(*) FILTER (WHERE m.available_at <= t.now) AS ready,
                        count(*) FILTER (WHERE m.available_at > t.now AND m.lease_token IS NOT NULL)
                            AS in_flight,
                        count(*) FILTER (WHERE m.available_at > t.now AND m.lease_token IS NULL)
                            AS delayed
                 FROM (SELECT clock_timestamp() AS now) AS t
                 LEFT JOIN {s}.messages AS m ON m.queue = $1"
            ),
        }
    }
}
