//! Celery's task message protocol, version 2, as a pure codec.
//!
//! A [`TaskMessage`] is one task invocation: typed [`TaskHeaders`], the call's `args` and
//! `kwargs`, the canvas [`Embed`] (callbacks, errbacks, chain, chord) and the broker-level
//! [`TaskProperties`]. [`TaskMessage::encode`] turns it into an [`EncodedTask`] (headers,
//! properties and body bytes) that any broker backend can carry, and [`TaskMessage::decode`]
//! turns such a triple back into a task, rejecting with a [`ProtocolError`] anything that is
//! not a JSON protocol v2 task.
//!
//! The layout follows what Celery 5 itself publishes (`app.amqp.as_task_v2`, serialized by
//! kombu's JSON serializer), so Rust and Python Celery can share queues:
//!
//! * headers: `lang`, `task`, `id`, `shadow`, `eta`, `expires`, `group`, `group_index`,
//!   `retries`, `timelimit`, `root_id`, `parent_id`, `argsrepr`, `kwargsrepr`, `origin`,
//!   `ignore_result`, `replaced_task_nesting`, `stamped_headers`, `stamps`; any other header
//!   (custom headers given to `apply_async(headers=...)`, headers of later Celery versions) is
//!   kept in [`TaskHeaders::extra`];
//! * properties: `correlation_id` (the task id), `reply_to`, `content_type`
//!   (`application/json`), `content_encoding` (`utf-8`), `priority`, `delivery_mode`; any other
//!   property is kept in [`TaskProperties::extra`];
//! * body: the UTF-8 JSON array `[args, kwargs, {"callbacks", "errbacks", "chain", "chord"}]`.
//!
//! The golden fixtures in `tests/fixtures/celery/` were published by real Celery; the
//! `tests/celery_*.rs` tests decode them and compare what we encode with them.
//!
//! # Choices a caller may rely on
//!
//! * We send `lang = "rust"`. Celery's worker never reads `lang` (it only copies it when it
//!   converts old hybrid messages), so the value only tells people where a message came from.
//! * Dates (`eta`, `expires`) are written like Python's `datetime.isoformat()` of an aware UTC
//!   datetime: `2024-01-01T10:00:00+00:00`, or with six fraction digits when there are
//!   microseconds. They are kept at microsecond precision (Python's), so what you set is what
//!   a decoder sees. On decode any ISO-8601 date-time with an offset is accepted and
//!   converted to UTC; a naive one (no offset, as Celery writes a naive `eta` it was given) is
//!   read as UTC, which is what a Celery worker with its default `timezone = "UTC"` assumes.
//! * A decode → encode round trip keeps every header, property and body value; the only
//!   normalisations are that naive dates gain `+00:00`, standard headers that were absent
//!   are written with Celery's defaults (`null`, `0`, `{}`), and the body JSON is written
//!   compactly with keys in map order (JSON-equal, not byte-equal, to kombu's).
//! * Integers in args and kwargs survive exactly within the `i64`/`u64` range; larger ones
//!   become floating point (`serde_json` without arbitrary precision).
//!
//! # Modules
//!
//! One concept each: [`TaskMessage`] and its wire form [`EncodedTask`] (`message`), the
//! headers (`headers`, with their reading and writing), the body `[args, kwargs, embed]`
//! (`body`), the properties (`properties`), dates as Python writes them (`time`), the
//! `argsrepr`/`kwargsrepr` approximation of Python's `repr` (`repr`), and [`ProtocolError`]
//! (`error`).

mod body;
mod error;
mod headers;
mod message;
mod properties;
mod repr;
mod time;

pub use body::Embed;
pub use error::ProtocolError;
pub use headers::{STANDARD_HEADERS, TaskHeaders};
pub use message::{EncodedTask, TaskMessage, default_origin};
pub use properties::TaskProperties;
pub use repr::REPR_MAX_CHARS;

/// The only content type this codec reads or writes.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// The only content encoding this codec reads or writes (kombu's JSON serializer's).
pub const CONTENT_ENCODING_UTF8: &str = "utf-8";

/// The `lang` header value of messages built by [`TaskMessage::new`].
pub const LANG_RUST: &str = "rust";

/// AMQP `delivery_mode` for a persistent message, which Celery sends by default.
pub const DELIVERY_MODE_PERSISTENT: u8 = 2;
