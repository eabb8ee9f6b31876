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
//! The golden fixtures in `tests/fixtures/celery/` were published by real Celery; the tests
//! at the bottom of this file decode them and compare what we encode with them.
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

use std::{borrow::Cow, fmt, sync::OnceLock, time::Duration};

use chrono::{DateTime, Datelike, NaiveDateTime, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::headers::{Headers, MAX_DEPTH};

/// The only content type this codec reads or writes.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// The only content encoding this codec reads or writes (kombu's JSON serializer's).
pub const CONTENT_ENCODING_UTF8: &str = "utf-8";

/// The `lang` header value of messages built by [`TaskMessage::new`].
pub const LANG_RUST: &str = "rust";

/// AMQP `delivery_mode` for a persistent message, which Celery sends by default.
pub const DELIVERY_MODE_PERSISTENT: u8 = 2;

/// Longest `argsrepr`/`kwargsrepr`, in characters, before it is cut (Celery's
/// `argsrepr_maxsize` and `kwargsrepr_maxsize`).
pub const REPR_MAX_CHARS: usize = 1024;

/// Nesting depth from which containers are shown as `[...]`/`{...}` in `argsrepr`/`kwargsrepr`
/// (Celery's default `task_repr_maxlevels`).
const REPR_MAX_LEVELS: usize = 3;

// Header names of the standard Celery 5 protocol v2 headers.
const H_LANG: &str = "lang";
const H_TASK: &str = "task";
const H_ID: &str = "id";
const H_SHADOW: &str = "shadow";
const H_ETA: &str = "eta";
const H_EXPIRES: &str = "expires";
const H_GROUP: &str = "group";
const H_GROUP_INDEX: &str = "group_index";
const H_RETRIES: &str = "retries";
const H_TIMELIMIT: &str = "timelimit";
const H_ROOT_ID: &str = "root_id";
const H_PARENT_ID: &str = "parent_id";
const H_ARGSREPR: &str = "argsrepr";
const H_KWARGSREPR: &str = "kwargsrepr";
const H_ORIGIN: &str = "origin";
const H_IGNORE_RESULT: &str = "ignore_result";
const H_REPLACED_TASK_NESTING: &str = "replaced_task_nesting";
const H_STAMPED_HEADERS: &str = "stamped_headers";
const H_STAMPS: &str = "stamps";
/// kombu's header naming the compression of a compressed body.
const H_COMPRESSION: &str = "compression";

/// Every header name [`TaskHeaders`] keeps in a typed field.
pub const STANDARD_HEADERS: [&str; 19] = [
    H_LANG,
    H_TASK,
    H_ID,
    H_SHADOW,
    H_ETA,
    H_EXPIRES,
    H_GROUP,
    H_GROUP_INDEX,
    H_RETRIES,
    H_TIMELIMIT,
    H_ROOT_ID,
    H_PARENT_ID,
    H_ARGSREPR,
    H_KWARGSREPR,
    H_ORIGIN,
    H_IGNORE_RESULT,
    H_REPLACED_TASK_NESTING,
    H_STAMPED_HEADERS,
    H_STAMPS,
];

const EMBED_CALLBACKS: &str = "callbacks";
const EMBED_ERRBACKS: &str = "errbacks";
const EMBED_CHAIN: &str = "chain";
const EMBED_CHORD: &str = "chord";

/// Why a task message could not be decoded or encoded.
///
/// The `Display` text names the problem and the offending value, so it can be stored as a
/// dead-letter reason as it is. New variants may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The content type is not `application/json` (for example Celery's `pickle` or
    /// `msgpack` serializers).
    #[error(
        "unsupported content type {content_type:?}: only application/json task messages are supported"
    )]
    UnsupportedContentType {
        /// The content type the message declared.
        content_type: String,
    },
    /// The content encoding is not UTF-8.
    #[error("unsupported content encoding {content_encoding:?}: only utf-8 is supported")]
    UnsupportedContentEncoding {
        /// The content encoding the message declared.
        content_encoding: String,
    },
    /// The body was compressed by kombu (`compression` header); compression is not supported.
    #[error("compressed task messages are not supported (compression {compression:?})")]
    UnsupportedCompression {
        /// The value of the `compression` header.
        compression: String,
    },
    /// The body is a protocol v1 message: a JSON object with a `task` key.
    #[error(
        "Celery protocol v1 is not supported: the body is an object with a \"task\" key; \
         publish with Celery's default task_protocol = 2"
    )]
    ProtocolV1,
    /// The body is not JSON (or not UTF-8).
    #[error("body is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The body is JSON but not `[args, kwargs, embed]` with an array, an object and an
    /// object or null.
    #[error("body is not a Celery v2 [args, kwargs, embed] array: {reason}")]
    InvalidBody {
        /// What is wrong with it.
        reason: String,
    },
    /// A header without which the message cannot be run (`task` or `id`) is absent, null or
    /// empty.
    #[error("missing required header {name:?}")]
    MissingHeader {
        /// The header's name.
        name: &'static str,
    },
    /// A standard header has a value of the wrong type or form.
    #[error("header {name:?} is invalid: {reason}")]
    InvalidHeader {
        /// The header's name.
        name: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// Encoding only: an entry of [`TaskHeaders::extra`] uses the name of a standard header
    /// (set the typed field instead) or of kombu's `compression` header.
    #[error("extra header {name:?} is reserved; set the typed field instead")]
    ReservedHeader {
        /// The header's name.
        name: String,
    },
    /// Encoding only: the body or the headers could not be serialized.
    #[error("cannot serialize the task message: {0}")]
    Serialize(#[source] serde_json::Error),
}

/// A task message's headers, typed where we use them.
///
/// [`TaskHeaders::from_headers`] and [`TaskHeaders::to_headers`] convert from and to the
/// message [`Headers`] on the wire; a backend that needs only, say, the `eta` can read the
/// headers without the body. Fields are named like Celery's headers.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskHeaders {
    /// Language of the producer: `"py"` from Celery, [`LANG_RUST`] from us. Informational;
    /// empty when absent.
    pub lang: String,
    /// Registered name of the task to run. Never empty in a decoded message.
    pub task: String,
    /// The task id (a UUID string from Celery and from us, but any string is accepted). Never
    /// empty in a decoded message.
    pub id: String,
    /// A name to show instead of `task` in logs and events.
    pub shadow: Option<String>,
    /// Do not run before this instant. Microsecond precision.
    pub eta: Option<DateTime<Utc>>,
    /// Do not run after this instant (the worker revokes it). Microsecond precision.
    pub expires: Option<DateTime<Utc>>,
    /// Id of the group this task belongs to.
    pub group: Option<String>,
    /// Position of this task in its group.
    pub group_index: Option<u64>,
    /// How many times this task has been retried so far (0 for the first run).
    pub retries: u32,
    /// `(hard, soft)` time limits in seconds, as Celery's `[time_limit, soft_time_limit]`;
    /// `None` means the worker's default.
    pub timelimit: (Option<f64>, Option<f64>),
    /// Id of the first task of the workflow this task is part of (itself for a task sent
    /// alone).
    pub root_id: Option<String>,
    /// Id of the task that sent this one, if a task did.
    pub parent_id: Option<String>,
    /// Python-style repr of the args, for logs and monitoring only. Empty when absent.
    pub argsrepr: String,
    /// Python-style repr of the kwargs, for logs and monitoring only. Empty when absent.
    pub kwargsrepr: String,
    /// Node that sent the message, `gen<pid>@<hostname>` for a non-worker producer.
    pub origin: Option<String>,
    /// Whether the worker should not store the result. `None` (written as `null`) lets the
    /// worker use the task's own setting, as Celery's `send_task` does.
    pub ignore_result: Option<bool>,
    /// How many times this task was replaced by `Task.replace`.
    pub replaced_task_nesting: u32,
    /// Names of the stamps in [`TaskHeaders::stamps`] (Celery's stamping API), `None` when
    /// there are none.
    pub stamped_headers: Option<Vec<String>>,
    /// Stamp values by name.
    pub stamps: Map<String, Value>,
    /// Every other header, unchanged. Must not use a [`STANDARD_HEADERS`] name (nor
    /// `compression`): encoding rejects that.
    pub extra: Map<String, Value>,
}

impl Default for TaskHeaders {
    /// Headers with Celery's defaults, `lang` = [`LANG_RUST`], and an empty `task` and `id`
    /// (which [`TaskMessage::encode`] rejects until they are set).
    fn default() -> Self {
        Self {
            lang: LANG_RUST.to_owned(),
            task: String::new(),
            id: String::new(),
            shadow: None,
            eta: None,
            expires: None,
            group: None,
            group_index: None,
            retries: 0,
            timelimit: (None, None),
            root_id: None,
            parent_id: None,
            argsrepr: String::new(),
            kwargsrepr: String::new(),
            origin: None,
            ignore_result: None,
            replaced_task_nesting: 0,
            stamped_headers: None,
            stamps: Map::new(),
            extra: Map::new(),
        }
    }
}

impl TaskHeaders {
    /// Reads the headers of a protocol v2 message.
    ///
    /// An absent or `null` standard header takes Celery's default (see the fields). Every
    /// header that is not standard goes to [`TaskHeaders::extra`] unchanged.
    ///
    /// # Errors
    /// [`ProtocolError::MissingHeader`] when `task` or `id` is absent, null or empty;
    /// [`ProtocolError::UnsupportedCompression`] when kombu compressed the body;
    /// [`ProtocolError::InvalidHeader`] when a standard header has the wrong type or form
    /// (for example an `eta` that is not an ISO-8601 date-time).
    pub fn from_headers(headers: &Headers) -> Result<Self, ProtocolError> {
        HeaderFields::read(headers)?.into_task_headers()
    }

    /// Writes the headers as Celery 5 does: every standard header is present (`null` where
    /// unset), dates as `isoformat()` with `+00:00`, `timelimit` as `[hard, soft]` (whole
    /// seconds as integers), followed by the [`TaskHeaders::extra`] entries.
    ///
    /// # Errors
    /// [`ProtocolError::MissingHeader`] when `task` or `id` is empty;
    /// [`ProtocolError::InvalidHeader`] for a time limit that is not a finite number or a date
    /// outside the years 1 to 9999 (Python cannot represent it);
    /// [`ProtocolError::ReservedHeader`] when `extra` uses a standard header's name.
    pub fn to_headers(&self) -> Result<Headers, ProtocolError> {
        if self.task.is_empty() {
            return Err(ProtocolError::MissingHeader { name: H_TASK });
        }
        if self.id.is_empty() {
            return Err(ProtocolError::MissingHeader { name: H_ID });
        }
        for (name, value) in &self.extra {
            if STANDARD_HEADERS.contains(&name.as_str()) || name == H_COMPRESSION {
                return Err(ProtocolError::ReservedHeader { name: name.clone() });
            }
            // The headers object and this entry's value take the first two levels.
            if 1 + nesting_depth(value) > MAX_DEPTH {
                return Err(invalid_header(
                    name,
                    format!("nested deeper than the {MAX_DEPTH} levels JSON readers accept"),
                ));
            }
        }
        let wire = WireHeaders {
            headers: self,
            eta: datetime_text(H_ETA, self.eta)?,
            expires: datetime_text(H_EXPIRES, self.expires)?,
            timelimit: [
                seconds_value(self.timelimit.0)?,
                seconds_value(self.timelimit.1)?,
            ],
        };
        let text = serde_json::value::to_raw_value(&wire).map_err(ProtocolError::Serialize)?;
        Headers::from_json(text).map_err(ProtocolError::Serialize)
    }
}

/// [`TaskHeaders`] as Celery 5 writes them, in its order: the standard headers, then the
/// extra ones. Dates and time limits are converted (and checked) beforehand.
struct WireHeaders<'a> {
    headers: &'a TaskHeaders,
    eta: Option<String>,
    expires: Option<String>,
    timelimit: [Value; 2],
}

impl Serialize for WireHeaders<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let h = self.headers;
        let mut map = serializer.serialize_map(Some(STANDARD_HEADERS.len() + h.extra.len()))?;
        map.serialize_entry(H_LANG, &h.lang)?;
        map.serialize_entry(H_TASK, &h.task)?;
        map.serialize_entry(H_ID, &h.id)?;
        map.serialize_entry(H_SHADOW, &h.shadow)?;
        map.serialize_entry(H_ETA, &self.eta)?;
        map.serialize_entry(H_EXPIRES, &self.expires)?;
        map.serialize_entry(H_GROUP, &h.group)?;
        map.serialize_entry(H_GROUP_INDEX, &h.group_index)?;
        map.serialize_entry(H_RETRIES, &h.retries)?;
        map.serialize_entry(H_TIMELIMIT, &self.timelimit)?;
        map.serialize_entry(H_ROOT_ID, &h.root_id)?;
        map.serialize_entry(H_PARENT_ID, &h.parent_id)?;
        map.serialize_entry(H_ARGSREPR, &h.argsrepr)?;
        map.serialize_entry(H_KWARGSREPR, &h.kwargsrepr)?;
        map.serialize_entry(H_ORIGIN, &h.origin)?;
        map.serialize_entry(H_IGNORE_RESULT, &h.ignore_result)?;
        map.serialize_entry(H_REPLACED_TASK_NESTING, &h.replaced_task_nesting)?;
        map.serialize_entry(H_STAMPED_HEADERS, &h.stamped_headers)?;
        map.serialize_entry(H_STAMPS, &h.stamps)?;
        for (name, value) in &h.extra {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// The headers of a message being read: the standard ones by position in
/// [`STANDARD_HEADERS`], taken out by value as they are converted, and every other one.
#[derive(Default)]
struct HeaderFields {
    standard: [Option<Value>; STANDARD_HEADERS.len()],
    extra: Map<String, Value>,
}

impl HeaderFields {
    fn read(headers: &Headers) -> Result<Self, ProtocolError> {
        if let Some(text) = headers.json_text() {
            // Read straight from the text: no map is built only to be taken apart.
            return serde_json::from_str(text)
                .map_err(|e| invalid_header("headers", format!("not a JSON object: {e}")));
        }
        let mut fields = Self::default();
        for (name, value) in &**headers {
            fields.put(Cow::Borrowed(name), value.clone());
        }
        Ok(fields)
    }

    /// Rejects a body kombu compressed.
    fn check_compression(&self) -> Result<(), ProtocolError> {
        match self.extra.get(H_COMPRESSION).filter(|v| !v.is_null()) {
            Some(compression) => Err(ProtocolError::UnsupportedCompression {
                compression: value_text(compression),
            }),
            None => Ok(()),
        }
    }

    /// Files one header; a name given twice keeps its last value, as a map would.
    fn put(&mut self, name: Cow<'_, str>, value: Value) {
        match STANDARD_HEADERS
            .iter()
            .position(|standard| *standard == name)
        {
            Some(index) => self.standard[index] = Some(value),
            None => {
                self.extra.insert(name.into_owned(), value);
            }
        }
    }

    /// The value of standard header `name`, `None` when absent or null.
    fn take(&mut self, name: &str) -> Option<Value> {
        let index = STANDARD_HEADERS
            .iter()
            .position(|standard| *standard == name)?;
        self.standard[index].take().filter(|v| !v.is_null())
    }

    fn into_task_headers(mut self) -> Result<TaskHeaders, ProtocolError> {
        self.check_compression()?;
        let task = string(H_TASK, self.take(H_TASK))?
            .filter(|s| !s.is_empty())
            .ok_or(ProtocolError::MissingHeader { name: H_TASK })?;
        let id = string(H_ID, self.take(H_ID))?
            .filter(|s| !s.is_empty())
            .ok_or(ProtocolError::MissingHeader { name: H_ID })?;
        Ok(TaskHeaders {
            lang: string(H_LANG, self.take(H_LANG))?.unwrap_or_default(),
            task,
            id,
            shadow: string(H_SHADOW, self.take(H_SHADOW))?,
            eta: datetime(H_ETA, self.take(H_ETA))?,
            expires: datetime(H_EXPIRES, self.take(H_EXPIRES))?,
            group: string(H_GROUP, self.take(H_GROUP))?,
            group_index: unsigned(H_GROUP_INDEX, self.take(H_GROUP_INDEX))?,
            retries: unsigned_32(H_RETRIES, self.take(H_RETRIES))?.unwrap_or(0),
            timelimit: timelimit(self.take(H_TIMELIMIT))?,
            root_id: string(H_ROOT_ID, self.take(H_ROOT_ID))?,
            parent_id: string(H_PARENT_ID, self.take(H_PARENT_ID))?,
            argsrepr: string(H_ARGSREPR, self.take(H_ARGSREPR))?.unwrap_or_default(),
            kwargsrepr: string(H_KWARGSREPR, self.take(H_KWARGSREPR))?.unwrap_or_default(),
            origin: string(H_ORIGIN, self.take(H_ORIGIN))?,
            ignore_result: boolean(H_IGNORE_RESULT, self.take(H_IGNORE_RESULT))?,
            replaced_task_nesting: unsigned_32(
                H_REPLACED_TASK_NESTING,
                self.take(H_REPLACED_TASK_NESTING),
            )?
            .unwrap_or(0),
            stamped_headers: string_list(H_STAMPED_HEADERS, self.take(H_STAMPED_HEADERS))?,
            stamps: object(H_STAMPS, self.take(H_STAMPS))?.unwrap_or_default(),
            extra: self.extra,
        })
    }
}

impl<'de> Deserialize<'de> for HeaderFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = HeaderFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of headers")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut entries: A,
            ) -> Result<HeaderFields, A::Error> {
                let mut fields = HeaderFields::default();
                while let Some(Name(name)) = entries.next_key()? {
                    let value = entries.next_value()?;
                    fields.put(name, value);
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// A header name, borrowed from the text it is read from unless it has escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }
            fn visit_string<E>(self, name: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name)))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// The canvas part of the body: what runs after this task.
///
/// Signatures are kept as the JSON objects Celery sends (`{"task", "args", "kwargs",
/// "options", "subtask_type", "immutable"}`); `None` is Celery's `null`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embed {
    /// Signatures to apply with this task's result when it succeeds (`link`).
    pub callbacks: Option<Vec<Value>>,
    /// Signatures to apply when this task fails (`link_error`).
    pub errbacks: Option<Vec<Value>>,
    /// The rest of a chain, in reverse order: the last element runs next.
    pub chain: Option<Vec<Value>>,
    /// The chord body signature this task is a header member of.
    pub chord: Option<Value>,
    /// Any other key of the embed object, unchanged.
    pub extra: Map<String, Value>,
}

impl Embed {
    fn from_value(value: Value) -> Result<Self, ProtocolError> {
        let mut map = match value {
            Value::Null => return Ok(Self::default()),
            Value::Object(map) => map,
            other => {
                return Err(invalid_body(format!(
                    "embed (third element) must be an object or null, got {}",
                    kind(&other)
                )));
            }
        };
        let mut list = |key: &str| match map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(invalid_body(format!(
                "embed.{key} must be a list or null, got {}",
                kind(&other)
            ))),
        };
        let callbacks = list(EMBED_CALLBACKS)?;
        let errbacks = list(EMBED_ERRBACKS)?;
        let chain = list(EMBED_CHAIN)?;
        let chord = map.remove(EMBED_CHORD).filter(|v| !v.is_null());
        Ok(Self {
            callbacks,
            errbacks,
            chain,
            chord,
            extra: map,
        })
    }
}

/// [`Embed`] as Celery writes it: the four standard keys (`null` where unset), then any other
/// key that does not repeat one of them.
struct WireEmbed<'a>(&'a Embed);

impl Serialize for WireEmbed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let embed = self.0;
        let standard = [EMBED_CALLBACKS, EMBED_ERRBACKS, EMBED_CHAIN, EMBED_CHORD];
        let extra = embed
            .extra
            .iter()
            .filter(|(key, _)| !standard.contains(&key.as_str()));
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(EMBED_CALLBACKS, &embed.callbacks)?;
        map.serialize_entry(EMBED_ERRBACKS, &embed.errbacks)?;
        map.serialize_entry(EMBED_CHAIN, &embed.chain)?;
        map.serialize_entry(EMBED_CHORD, &embed.chord)?;
        for (key, value) in extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Broker-level message properties, in kombu's (AMQP's) sense.
///
/// Serializes to and from the JSON object with these names; unknown properties (for
/// example `expiration`, which Celery sets from `expires` for `RabbitMQ`) are kept in
/// [`TaskProperties::extra`]. A property object without `content_type` or
/// `content_encoding` deserializes with the defaults (`application/json`, `utf-8`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskProperties {
    /// Celery sets it to the task id; result backends that reply (`rpc://`) use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Queue for replies (`rpc://` result backend); Celery sends `""` when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// MIME type of the body; [`CONTENT_TYPE_JSON`] is the only one supported.
    pub content_type: String,
    /// Text encoding of the body; [`CONTENT_ENCODING_UTF8`] is the only one supported.
    pub content_encoding: String,
    /// Message priority, where the broker supports it (Celery sends 0 by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// AMQP delivery mode: 2 is persistent (Celery's default), 1 transient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_mode: Option<u8>,
    /// Every other property, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for TaskProperties {
    /// JSON in UTF-8, and nothing else set.
    fn default() -> Self {
        Self {
            correlation_id: None,
            reply_to: None,
            content_type: CONTENT_TYPE_JSON.to_owned(),
            content_encoding: CONTENT_ENCODING_UTF8.to_owned(),
            priority: None,
            delivery_mode: None,
            extra: Map::new(),
        }
    }
}

impl TaskProperties {
    fn check_supported(&self) -> Result<(), ProtocolError> {
        if !self
            .content_type
            .trim()
            .eq_ignore_ascii_case(CONTENT_TYPE_JSON)
        {
            return Err(ProtocolError::UnsupportedContentType {
                content_type: self.content_type.clone(),
            });
        }
        let encoding = self.content_encoding.trim();
        if !(encoding.eq_ignore_ascii_case("utf-8") || encoding.eq_ignore_ascii_case("utf8")) {
            return Err(ProtocolError::UnsupportedContentEncoding {
                content_encoding: self.content_encoding.clone(),
            });
        }
        Ok(())
    }
}

/// A task message in its wire form, neutral to the broker: what a backend stores or sends.
///
/// A backend must carry all three parts unchanged (headers may be stored as JSON text where
/// the broker's own headers are strings).
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedTask {
    /// The message headers (see [`TaskHeaders`]), held as the JSON text they travel as.
    pub headers: Headers,
    /// The message properties.
    pub properties: TaskProperties,
    /// The UTF-8 JSON body `[args, kwargs, embed]`.
    pub body: Vec<u8>,
}

/// One task invocation in Celery's protocol v2.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMessage {
    /// The headers: task name, id, scheduling, workflow ids, monitoring fields.
    pub headers: TaskHeaders,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Callbacks, errbacks, chain and chord.
    pub embed: Embed,
    /// Broker-level properties.
    pub properties: TaskProperties,
}

impl TaskMessage {
    /// A message that calls `task` with `args` and `kwargs`, as Celery's `app.send_task` would
    /// build it.
    ///
    /// It has a fresh UUID v4 `id`, `root_id` and `correlation_id` equal to the id, no parent,
    /// `retries` 0, `origin` `gen<pid>@<hostname>`, `lang` [`LANG_RUST`], `ignore_result`
    /// `null` (the worker's task setting decides), `reply_to` `""`, `priority` 0 and
    /// persistent `delivery_mode`, an empty embed, and `argsrepr`/`kwargsrepr` computed from
    /// the arguments (see [`TaskMessage::refresh_reprs`]).
    pub fn new(task: impl Into<String>, args: Vec<Value>, kwargs: Map<String, Value>) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        let mut message = Self {
            headers: TaskHeaders {
                task: task.into(),
                root_id: Some(id.clone()),
                origin: Some(default_origin()),
                id: id.clone(),
                ..TaskHeaders::default()
            },
            args,
            kwargs,
            embed: Embed::default(),
            properties: TaskProperties {
                correlation_id: Some(id),
                reply_to: Some(String::new()),
                priority: Some(0),
                delivery_mode: Some(DELIVERY_MODE_PERSISTENT),
                ..TaskProperties::default()
            },
        };
        message.refresh_reprs();
        message
    }

    /// Recomputes `argsrepr` and `kwargsrepr` from the current args and kwargs.
    ///
    /// They approximate Celery's `saferepr`: Python literal syntax (`'str'` with only `'`
    /// escaped, `True`, `None`, floats like Python's `repr`, args as a list as `send_task`
    /// shows them), containers nested 3 levels deep shown as `[...]`/`{...}`, and the text
    /// cut after [`REPR_MAX_CHARS`] characters with `...` appended (Celery cuts each long
    /// string on its own, so long values read differently). Kwargs appear in map order, which
    /// is sorted unless `serde_json`'s `preserve_order` is enabled. They are for people and
    /// monitoring only; no worker parses them.
    pub fn refresh_reprs(&mut self) {
        self.headers.argsrepr = python_repr_list(&self.args);
        self.headers.kwargsrepr = python_repr_map(&self.kwargs);
    }

    /// Replaces the id, and with it `correlation_id` and (when it was the old id) `root_id`.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        if self.headers.root_id.as_deref() == Some(self.headers.id.as_str()) {
            self.headers.root_id = Some(id.clone());
        }
        if self.properties.correlation_id.as_deref() == Some(self.headers.id.as_str()) {
            self.properties.correlation_id = Some(id.clone());
        }
        self.headers.id = id;
        self
    }

    /// Not to run before `eta` (kept at microsecond precision).
    #[must_use]
    pub fn with_eta(mut self, eta: DateTime<Utc>) -> Self {
        self.headers.eta = Some(truncate_to_micros(eta));
        self
    }

    /// Not to run before `countdown` from now: sets `eta`, as Celery's `countdown` does.
    /// A countdown too large for a date saturates (and then fails to encode).
    #[must_use]
    pub fn with_countdown(self, countdown: Duration) -> Self {
        let eta = add_duration(Utc::now(), countdown);
        self.with_eta(eta)
    }

    /// Revoked by the worker if not started by `expires` (microsecond precision).
    #[must_use]
    pub fn with_expires(mut self, expires: DateTime<Utc>) -> Self {
        self.headers.expires = Some(truncate_to_micros(expires));
        self
    }

    /// Revoked by the worker if not started within `after` from now, as Celery's numeric
    /// `expires` does.
    #[must_use]
    pub fn with_expires_in(self, after: Duration) -> Self {
        let expires = add_duration(Utc::now(), after);
        self.with_expires(expires)
    }

    /// Sets how many times the task has been retried already.
    #[must_use]
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.headers.retries = retries;
        self
    }

    /// Marks the task as sent by task `parent_id` within the workflow started by `root_id`.
    #[must_use]
    pub fn with_parent(mut self, parent_id: impl Into<String>, root_id: impl Into<String>) -> Self {
        self.headers.parent_id = Some(parent_id.into());
        self.headers.root_id = Some(root_id.into());
        self
    }

    /// Sets the hard and soft time limits (`None`: the worker's default).
    #[must_use]
    pub fn with_timelimit(mut self, hard: Option<Duration>, soft: Option<Duration>) -> Self {
        self.headers.timelimit = (hard.map(|d| d.as_secs_f64()), soft.map(|d| d.as_secs_f64()));
        self
    }

    /// Places the task in group `group_id` (optionally at `index`).
    #[must_use]
    pub fn with_group(mut self, group_id: impl Into<String>, index: Option<u64>) -> Self {
        self.headers.group = Some(group_id.into());
        self.headers.group_index = index;
        self
    }

    /// Tells the worker whether to store the result (`None`: the task's setting decides).
    #[must_use]
    pub fn with_ignore_result(mut self, ignore_result: Option<bool>) -> Self {
        self.headers.ignore_result = ignore_result;
        self
    }

    /// Sets the message priority, where the broker supports priorities.
    #[must_use]
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.properties.priority = Some(priority);
        self
    }

    /// Adds a custom header (kept in [`TaskHeaders::extra`]; Celery tasks see it in
    /// `self.request`). A standard header's name makes [`TaskMessage::encode`] fail.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.headers.extra.insert(name.into(), value.into());
        self
    }

    /// The message Celery's `Task.retry` would publish for this one: same id, args, kwargs,
    /// embed, workflow ids and headers, `retries` + 1 (saturating), the given `eta`, and a
    /// fresh `origin`.
    #[must_use]
    pub fn for_retry(&self, eta: Option<DateTime<Utc>>) -> Self {
        let mut next = self.clone();
        next.headers.retries = self.headers.retries.saturating_add(1);
        next.headers.eta = eta.map(truncate_to_micros);
        next.headers.origin = Some(default_origin());
        next
    }

    /// The wire form: headers as [`TaskHeaders::to_headers`] writes them, these properties, and
    /// the compact UTF-8 JSON body `[args, kwargs, embed]`.
    ///
    /// # Errors
    /// What [`TaskHeaders::to_headers`] rejects, and [`ProtocolError::UnsupportedContentType`] /
    /// [`ProtocolError::UnsupportedContentEncoding`] when the properties declare anything
    /// but JSON in UTF-8.
    pub fn encode(&self) -> Result<EncodedTask, ProtocolError> {
        self.properties.check_supported()?;
        let headers = self.headers.to_headers()?;
        let body = serde_json::to_vec(&(&self.args, &self.kwargs, WireEmbed(&self.embed)))
            .map_err(ProtocolError::Serialize)?;
        Ok(EncodedTask {
            headers,
            properties: self.properties.clone(),
            body,
        })
    }

    /// Reads a task from its wire form.
    ///
    /// Checks, in this order: content type and encoding, compression, that the body is JSON,
    /// that it is not a protocol v1 body, the headers ([`TaskHeaders::from_headers`]), and the
    /// body's shape.
    ///
    /// # Errors
    /// A [`ProtocolError`] whose text says what is wrong; such a message is poison (no retry
    /// will make it decode).
    pub fn decode(encoded: &EncodedTask) -> Result<Self, ProtocolError> {
        Self::decode_parts(&encoded.headers, &encoded.properties, &encoded.body)
    }

    /// [`TaskMessage::decode`] from borrowed parts, for a caller that holds them apart (a
    /// received message) and should not copy them to decode.
    ///
    /// # Errors
    /// As [`TaskMessage::decode`].
    pub fn decode_parts(
        headers: &Headers,
        properties: &TaskProperties,
        body: &[u8],
    ) -> Result<Self, ProtocolError> {
        properties.check_supported()?;
        let headers = HeaderFields::read(headers)?;
        headers.check_compression()?;
        let body: Value = serde_json::from_slice(body).map_err(ProtocolError::InvalidJson)?;
        let parts = match body {
            Value::Array(parts) => parts,
            Value::Object(map) if map.contains_key("task") => {
                return Err(ProtocolError::ProtocolV1);
            }
            other => {
                return Err(invalid_body(format!(
                    "expected an array, got {}",
                    kind(&other)
                )));
            }
        };
        let headers = headers.into_task_headers()?;
        let [args, kwargs, embed]: [Value; 3] = parts.try_into().map_err(|parts: Vec<Value>| {
            invalid_body(format!("expected 3 elements, got {}", parts.len()))
        })?;
        let Value::Array(args) = args else {
            return Err(invalid_body(format!(
                "args (first element) must be an array, got {}",
                kind(&args)
            )));
        };
        let Value::Object(kwargs) = kwargs else {
            return Err(invalid_body(format!(
                "kwargs (second element) must be an object, got {}",
                kind(&kwargs)
            )));
        };
        Ok(Self {
            headers,
            args,
            kwargs,
            embed: Embed::from_value(embed)?,
            properties: properties.clone(),
        })
    }
}

/// `gen<pid>@<hostname>`, the `origin` Celery gives messages sent from outside a worker.
///
/// The hostname is the kernel's (`/proc/sys/kernel/hostname` on Linux), else the
/// `HOSTNAME` or `COMPUTERNAME` variable, else `localhost`. Both are read once per process.
pub fn default_origin() -> String {
    static ORIGIN: OnceLock<String> = OnceLock::new();
    ORIGIN
        .get_or_init(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .or_else(|| std::env::var("COMPUTERNAME").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_owned());
            format!("gen{}@{host}", std::process::id())
        })
        .clone()
}

// ---------------------------------------------------------------------------------------------
// Header reading helpers

fn invalid_header(name: &str, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::InvalidHeader {
        name: name.to_owned(),
        reason: reason.into(),
    }
}

fn invalid_body(reason: String) -> ProtocolError {
    ProtocolError::InvalidBody { reason }
}

/// Name of a JSON value's type, for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string as itself, anything else as JSON text.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// Each reader takes a standard header's value (`None` when absent or null) by value, so
// strings and lists move into the typed field instead of being copied.

fn string(name: &str, value: Option<Value>) -> Result<Option<String>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid_header(
            name,
            format!("expected a string, got {}", kind(&other)),
        )),
    }
}

fn unsigned(name: &str, value: Option<Value>) -> Result<Option<u64>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            invalid_header(
                name,
                format!("expected a non-negative integer, got {value}"),
            )
        }),
    }
}

fn unsigned_32(name: &str, value: Option<Value>) -> Result<Option<u32>, ProtocolError> {
    unsigned(name, value)?
        .map(|n| u32::try_from(n).map_err(|_| invalid_header(name, format!("{n} is too large"))))
        .transpose()
}

fn boolean(name: &str, value: Option<Value>) -> Result<Option<bool>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(other) => Err(invalid_header(
            name,
            format!("expected a boolean, got {}", kind(&other)),
        )),
    }
}

fn object(name: &str, value: Option<Value>) -> Result<Option<Map<String, Value>>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(invalid_header(
            name,
            format!("expected an object, got {}", kind(&other)),
        )),
    }
}

fn string_list(name: &str, value: Option<Value>) -> Result<Option<Vec<String>>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                other => Err(invalid_header(
                    name,
                    format!("expected a list of strings, found {}", kind(&other)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(invalid_header(
            name,
            format!("expected a list of strings, got {}", kind(&other)),
        )),
    }
}

fn datetime(name: &str, value: Option<Value>) -> Result<Option<DateTime<Utc>>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => parse_datetime(&text).map(Some).ok_or_else(|| {
            invalid_header(name, format!("{text:?} is not an ISO-8601 date and time"))
        }),
        Some(other) => Err(invalid_header(
            name,
            format!("expected an ISO-8601 string, got {}", kind(&other)),
        )),
    }
}

fn timelimit(value: Option<Value>) -> Result<(Option<f64>, Option<f64>), ProtocolError> {
    let seconds = |value: &Value| match value {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid_header(H_TIMELIMIT, format!("{n} is not a number of seconds"))),
        other => Err(invalid_header(
            H_TIMELIMIT,
            format!("expected seconds or null, got {}", kind(other)),
        )),
    };
    match value {
        None => Ok((None, None)),
        Some(Value::Array(items)) if items.len() == 2 => {
            Ok((seconds(&items[0])?, seconds(&items[1])?))
        }
        Some(other) => Err(invalid_header(
            H_TIMELIMIT,
            format!("expected [hard, soft], got {other}"),
        )),
    }
}

/// Parses what Python's `isoformat()` and other ISO-8601 writers produce: with an offset
/// (`+00:00`, `+0000`, `Z`) or naive (read as UTC), `T` or space between date and time, any
/// number of fraction digits. The result is cut to microseconds.
fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(truncate_to_micros(dt.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(text, format) {
            return Some(truncate_to_micros(dt.with_timezone(&Utc)));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(truncate_to_micros(naive.and_utc()));
        }
    }
    None
}

fn truncate_to_micros(dt: DateTime<Utc>) -> DateTime<Utc> {
    dt.with_nanosecond(dt.nanosecond() / 1_000 * 1_000)
        .unwrap_or(dt)
}

fn add_duration(start: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| start.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

// ---------------------------------------------------------------------------------------------
// Header writing helpers

/// Python's `datetime.isoformat()` of an aware UTC datetime.
fn format_datetime(dt: DateTime<Utc>) -> String {
    let micros = (dt.nanosecond() / 1_000).min(999_999);
    let base = dt.format("%Y-%m-%dT%H:%M:%S");
    if micros == 0 {
        format!("{base}+00:00")
    } else {
        format!("{base}.{micros:06}+00:00")
    }
}

/// `dt` as Python's `isoformat()`, if it is a date Python can represent.
fn datetime_text(name: &str, dt: Option<DateTime<Utc>>) -> Result<Option<String>, ProtocolError> {
    let Some(dt) = dt else {
        return Ok(None);
    };
    if !(1..=9999).contains(&dt.year()) {
        return Err(invalid_header(
            name,
            format!("{dt} is outside the years 1 to 9999 that Python can represent"),
        ));
    }
    Ok(Some(format_datetime(dt)))
}

/// How deeply arrays and objects nest in `value` (0 for a scalar).
fn nesting_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(nesting_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(nesting_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Seconds as JSON: whole numbers as integers (as Celery sends `30`), others as floats.
fn seconds_value(seconds: Option<f64>) -> Result<Value, ProtocolError> {
    const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    let Some(seconds) = seconds else {
        return Ok(Value::Null);
    };
    if seconds.fract() == 0.0 && seconds.abs() < EXACT_INTEGER_LIMIT {
        // Exact: a whole number below 2^53 converts to i64 without loss.
        #[allow(clippy::cast_possible_truncation)]
        return Ok(Value::from(seconds as i64));
    }
    Number::from_f64(seconds)
        .map(Value::Number)
        .ok_or_else(|| invalid_header(H_TIMELIMIT, format!("{seconds} is not a finite number")))
}

// ---------------------------------------------------------------------------------------------
// Python-style repr (an approximation of celery.utils.saferepr)

/// Bounded writer: stops accepting text once `REPR_MAX_CHARS` characters are written.
struct ReprWriter {
    out: String,
    chars: usize,
    full: bool,
}

impl ReprWriter {
    fn new() -> Self {
        Self {
            out: String::new(),
            chars: 0,
            full: false,
        }
    }

    fn push(&mut self, text: &str) {
        for c in text.chars() {
            if self.chars == REPR_MAX_CHARS {
                self.full = true;
                return;
            }
            self.out.push(c);
            self.chars += 1;
        }
    }

    fn finish(mut self) -> String {
        if self.full {
            self.out.push_str("...");
        }
        self.out
    }

    fn value(&mut self, value: &Value, level: usize) {
        if self.full {
            return;
        }
        match value {
            Value::Null => self.push("None"),
            Value::Bool(true) => self.push("True"),
            Value::Bool(false) => self.push("False"),
            Value::Number(n) => self.push(&python_number(n)),
            Value::String(s) => self.push(&python_str_repr(s)),
            Value::Array(items) => self.list(items, level),
            Value::Object(map) => self.map(map, level),
        }
    }

    fn list(&mut self, items: &[Value], level: usize) {
        self.push("[");
        if level >= REPR_MAX_LEVELS {
            self.push("...");
        } else {
            for (i, item) in items.iter().enumerate() {
                if self.full {
                    return;
                }
                if i > 0 {
                    self.push(", ");
                }
                self.value(item, level + 1);
            }
        }
        self.push("]");
    }

    fn map(&mut self, map: &Map<String, Value>, level: usize) {
        self.push("{");
        if level >= REPR_MAX_LEVELS {
            self.push("...");
        } else {
            for (i, (key, item)) in map.iter().enumerate() {
                if self.full {
                    return;
                }
                if i > 0 {
                    self.push(", ");
                }
                self.push(&python_str_repr(key));
                self.push(": ");
                self.value(item, level + 1);
            }
        }
        self.push("}");
    }
}

fn python_repr_list(items: &[Value]) -> String {
    let mut writer = ReprWriter::new();
    writer.list(items, 0);
    writer.finish()
}

fn python_repr_map(map: &Map<String, Value>) -> String {
    let mut writer = ReprWriter::new();
    writer.map(map, 0);
    writer.finish()
}

/// Python's `repr` of an int or float (`1.0`, `1e-07`, `1e+16`).
fn python_number(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let Some(f) = n.as_f64() else {
        return n.to_string();
    };
    // Rust's `{:e}` gives the shortest round-trip digits, like Python's repr.
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..16).contains(&exponent) {
        let plain = f.to_string();
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

/// A str as Celery's `saferepr` writes it: in single quotes with `'` escaped as `\'` and
/// nothing else escaped (unlike Python's own `repr`).
fn python_str_repr(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

impl fmt::Display for TaskMessage {
    /// `name[id]`, as Celery logs a task.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.headers.task, self.headers.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every fixture published by Celery: (file name, contents).
    const FIXTURES: [(&str, &str); 10] = [
        ("plain", include_str!("../tests/fixtures/celery/plain.json")),
        (
            "send_task",
            include_str!("../tests/fixtures/celery/send_task.json"),
        ),
        (
            "eta_expires",
            include_str!("../tests/fixtures/celery/eta_expires.json"),
        ),
        (
            "eta_naive",
            include_str!("../tests/fixtures/celery/eta_naive.json"),
        ),
        ("retry", include_str!("../tests/fixtures/celery/retry.json")),
        ("chain", include_str!("../tests/fixtures/celery/chain.json")),
        (
            "callbacks",
            include_str!("../tests/fixtures/celery/callbacks.json"),
        ),
        (
            "stamped",
            include_str!("../tests/fixtures/celery/stamped.json"),
        ),
        (
            "unicode",
            include_str!("../tests/fixtures/celery/unicode.json"),
        ),
        (
            "timelimits",
            include_str!("../tests/fixtures/celery/timelimits.json"),
        ),
    ];

    fn fixture_json(name: &str) -> Value {
        let (_, text) = FIXTURES
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no fixture {name}"));
        serde_json::from_str(text).expect("fixture is JSON")
    }

    fn encoded_from_json(fixture: &Value) -> EncodedTask {
        EncodedTask {
            headers: fixture["headers"]
                .as_object()
                .expect("headers")
                .clone()
                .into(),
            properties: serde_json::from_value(fixture["properties"].clone()).expect("properties"),
            body: fixture["body"].as_str().expect("body").as_bytes().to_vec(),
        }
    }

    fn encoded(name: &str) -> EncodedTask {
        encoded_from_json(&fixture_json(name))
    }

    /// The fixture's task, decoded from its headers as a map and, as a backend reads them,
    /// from the headers' text as Celery wrote it; the two must agree.
    fn decoded(name: &str) -> TaskMessage {
        let mut e = encoded(name);
        let from_map = TaskMessage::decode(&e)
            .unwrap_or_else(|e| panic!("fixture {name} does not decode: {e}"));
        #[derive(Deserialize)]
        struct Text {
            headers: Box<serde_json::value::RawValue>,
        }
        let (_, fixture) = FIXTURES.iter().find(|(n, _)| *n == name).unwrap();
        let text: Text = serde_json::from_str(fixture).unwrap();
        e.headers = Headers::from_json(text.headers).unwrap();
        assert!(e.headers.json_text().is_some());
        let from_text = TaskMessage::decode(&e)
            .unwrap_or_else(|e| panic!("fixture {name} does not decode from text: {e}"));
        assert_eq!(from_map, from_text, "fixture {name}");
        from_map
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn obj(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn tid(n: u32) -> String {
        format!("00000000-0000-0000-0000-{n:012x}")
    }

    /// The JSON type of a value, to compare shapes.
    fn shape(value: &Value) -> &'static str {
        match value {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    #[test]
    fn fixtures_record_the_celery_version() {
        for (name, _) in FIXTURES {
            let fixture = fixture_json(name);
            let version = fixture["celery_version"].as_str().expect("celery_version");
            assert!(
                version.starts_with("5."),
                "{name}: made with Celery {version}"
            );
        }
    }

    #[test]
    fn plain_fixture_decodes() {
        let m = decoded("plain");
        assert_eq!(m.headers.lang, "py");
        assert_eq!(m.headers.task, "tasks.add");
        assert_eq!(m.headers.id, tid(1));
        assert_eq!(m.headers.root_id.as_deref(), Some(tid(1).as_str()));
        assert_eq!(m.headers.parent_id, None);
        assert_eq!(m.headers.group, None);
        assert_eq!(m.headers.retries, 0);
        assert_eq!(m.headers.eta, None);
        assert_eq!(m.headers.expires, None);
        assert_eq!(m.headers.timelimit, (None, None));
        assert_eq!(m.headers.ignore_result, Some(false));
        assert_eq!(m.headers.argsrepr, "(2, 3.5, 'x', None, True)");
        assert_eq!(m.headers.kwargsrepr, "{'verbose': False, 'n': 7}");
        assert_eq!(m.headers.origin.as_deref(), Some("gen4242@fixture-host"));
        assert_eq!(m.headers.stamped_headers, None);
        assert!(m.headers.stamps.is_empty());
        assert!(m.headers.extra.is_empty());
        assert_eq!(
            m.args,
            vec![json!(2), json!(3.5), json!("x"), Value::Null, json!(true)]
        );
        assert_eq!(m.kwargs, obj(json!({"verbose": false, "n": 7})));
        assert_eq!(m.embed, Embed::default());
        assert_eq!(
            m.properties.correlation_id.as_deref(),
            Some(tid(1).as_str())
        );
        assert_eq!(m.properties.content_type, CONTENT_TYPE_JSON);
        assert_eq!(m.properties.content_encoding, CONTENT_ENCODING_UTF8);
        assert_eq!(m.properties.priority, Some(0));
        assert_eq!(m.properties.delivery_mode, Some(2));
        assert!(m.properties.extra.is_empty());
    }

    #[test]
    fn send_task_fixture_decodes() {
        let m = decoded("send_task");
        assert_eq!(m.headers.task, "tasks.remote");
        assert_eq!(m.headers.ignore_result, None);
        assert_eq!(m.headers.argsrepr, "[1, 'a']");
        assert_eq!(m.args, vec![json!(1), json!("a")]);
        assert_eq!(m.kwargs, obj(json!({"k": [1, 2]})));
    }

    #[test]
    fn eta_and_expires_fixture_decodes() {
        let m = decoded("eta_expires");
        assert_eq!(m.headers.eta, Some(utc("2024-01-01T10:01:00Z")));
        assert_eq!(m.headers.expires, Some(utc("2024-01-01T11:00:00Z")));
        // Celery also sets kombu's per-message TTL; it is kept as an unknown property.
        assert_eq!(
            m.properties.extra.get("expiration"),
            Some(&json!("3600000"))
        );
    }

    #[test]
    fn naive_eta_fixture_decodes_as_utc() {
        let m = decoded("eta_naive");
        assert_eq!(m.headers.eta, Some(utc("2030-01-01T10:00:00.25Z")));
        assert_eq!(m.headers.expires, Some(utc("2030-01-02T10:00:00Z")));
        let encoded = m.encode().unwrap();
        assert_eq!(
            encoded.headers["eta"],
            json!("2030-01-01T10:00:00.250000+00:00")
        );
        assert_eq!(
            encoded.headers["expires"],
            json!("2030-01-02T10:00:00+00:00")
        );
    }

    #[test]
    fn retry_fixture_decodes() {
        let m = decoded("retry");
        assert_eq!(m.headers.id, tid(4));
        assert_eq!(m.headers.retries, 3);
        assert_eq!(m.headers.root_id.as_deref(), Some(tid(0x28).as_str()));
        assert_eq!(m.headers.parent_id.as_deref(), Some(tid(0x29).as_str()));
        assert_eq!(m.headers.group.as_deref(), Some(tid(0x2a).as_str()));
        assert_eq!(m.headers.group_index, Some(3));
        assert_eq!(m.headers.eta, Some(utc("2024-01-01T10:00:10Z")));
        assert_eq!(m.headers.extra, obj(json!({"x_custom": "kept"})));
        assert_eq!(m.properties.priority, Some(5));
        assert_eq!(m.properties.reply_to.as_deref(), Some("reply-queue-1"));
        // Celery's retry path puts a null `origin` among the properties.
        assert_eq!(m.properties.extra, obj(json!({"origin": null})));
    }

    #[test]
    fn chain_fixture_decodes() {
        let m = decoded("chain");
        let chain = m.embed.chain.as_ref().expect("chain");
        assert_eq!(chain.len(), 2);
        // Reverse order: the next task to run is the last element.
        assert_eq!(chain[1]["task"], json!("tasks.mul"));
        assert_eq!(chain[1]["args"], json!([3]));
        assert_eq!(chain[0]["args"], json!([4]));
        let errbacks = m.embed.errbacks.as_ref().expect("errbacks");
        assert_eq!(errbacks.len(), 1);
        assert_eq!(errbacks[0]["task"], json!("tasks.on_error"));
        assert_eq!(m.embed.callbacks, None);
        assert_eq!(m.embed.chord, None);
    }

    #[test]
    fn callbacks_fixture_decodes() {
        let m = decoded("callbacks");
        let callbacks = m.embed.callbacks.as_ref().expect("callbacks");
        assert_eq!(callbacks.len(), 2);
        assert_eq!(callbacks[0]["args"], json!([10]));
        assert_eq!(callbacks[1]["options"]["task_id"], json!(tid(11)));
        assert_eq!(m.embed.errbacks.as_ref().map(Vec::len), Some(1));
        assert_eq!(m.headers.shadow.as_deref(), Some("tasks.add[shadowed]"));
        assert_eq!(m.headers.ignore_result, Some(true));
    }

    #[test]
    fn stamped_fixture_decodes() {
        let m = decoded("stamped");
        assert_eq!(m.headers.stamped_headers, Some(vec!["trace".to_owned()]));
        assert_eq!(m.headers.stamps, obj(json!({"trace": ["acme", 1]})));
    }

    #[test]
    fn unicode_fixture_decodes() {
        let m = decoded("unicode");
        assert_eq!(
            m.args,
            vec![
                json!("héllo wörld ✓"),
                json!("日本語"),
                json!("emoji 🚀"),
                json!("quote's \"double\""),
                json!("tab\tnewline\n"),
            ]
        );
        assert_eq!(m.kwargs["user"]["name"], json!("Zoë"));
        assert_eq!(m.kwargs["user"]["tags"], json!(["a", "ß", ""]));
        assert_eq!(
            m.kwargs["user"]["meta"]["depth"]["x"],
            json!([1, {"y": null}])
        );
        assert_eq!(m.kwargs["float"], json!(1.5e-7));
        assert_eq!(m.kwargs["big"], json!(9_007_199_254_740_993_u64));
        assert_eq!(m.kwargs["negative"], json!(-42));
        // kombu's typed JSON markers travel as plain objects.
        assert_eq!(
            m.kwargs["when"],
            json!({"__type__": "datetime", "__value__": "2024-01-01T10:00:00+00:00"})
        );
        assert_eq!(
            m.kwargs["amount"],
            json!({"__type__": "decimal", "__value__": "12.50"})
        );
        // Our repr of the same args is Celery's.
        assert_eq!(python_repr_list(&m.args), m.headers.argsrepr);
    }

    #[test]
    fn timelimits_fixture_decodes() {
        let m = decoded("timelimits");
        assert_eq!(m.headers.timelimit, (Some(30.0), Some(20.5)));
        assert_eq!(m.properties.priority, Some(7));
        let encoded = m.encode().unwrap();
        assert_eq!(encoded.headers["timelimit"], json!([30, 20.5]));
    }

    #[test]
    fn every_fixture_round_trips_without_loss() {
        for (name, _) in FIXTURES {
            let fixture = fixture_json(name);
            let original = encoded_from_json(&fixture);
            let first = TaskMessage::decode(&original).unwrap();
            let again = first.encode().unwrap();
            let second = TaskMessage::decode(&again).unwrap();
            assert_eq!(first, second, "{name}: decode → encode → decode differs");

            // Headers: equal to Celery's, except that naive dates gain "+00:00".
            let mut expected_headers = original.headers.clone();
            for key in ["eta", "expires"] {
                if let Some(Value::String(s)) = expected_headers.get_mut(key) {
                    if !s.ends_with("+00:00") {
                        s.push_str("+00:00");
                    }
                }
            }
            assert_eq!(again.headers, expected_headers, "{name}: headers differ");

            // Properties: equal as JSON objects, unknown ones included.
            assert_eq!(
                serde_json::to_value(&again.properties).unwrap(),
                fixture["properties"],
                "{name}: properties differ"
            );

            // Body: equal as JSON (kombu's spacing and \u escapes differ from ours).
            let ours: Value = serde_json::from_slice(&again.body).unwrap();
            let celery: Value = serde_json::from_slice(&original.body).unwrap();
            assert_eq!(ours, celery, "{name}: body differs");
        }
    }

    /// Compares our encoding with Celery's key by key: same header names, same JSON types
    /// wherever Celery's value is not null, and the same property names and types.
    fn assert_same_shape(ours: &EncodedTask, celery: &EncodedTask, what: &str) {
        let ours_keys: Vec<_> = ours.headers.keys().collect();
        let celery_keys: Vec<_> = celery.headers.keys().collect();
        assert_eq!(ours_keys, celery_keys, "{what}: header names differ");
        for (key, celery_value) in &celery.headers {
            let ours_value = &ours.headers[key];
            if !celery_value.is_null() {
                assert_eq!(
                    shape(ours_value),
                    shape(celery_value),
                    "{what}: header {key}: ours {ours_value}, Celery's {celery_value}"
                );
            }
        }
        let ours_props = obj(serde_json::to_value(&ours.properties).unwrap());
        let celery_props = obj(serde_json::to_value(&celery.properties).unwrap());
        // kombu's per-message TTL derived from `expires` is the broker's business.
        let celery_props: Map<String, Value> = celery_props
            .into_iter()
            .filter(|(k, _)| k != "expiration")
            .collect();
        assert_eq!(
            ours_props.keys().collect::<Vec<_>>(),
            celery_props.keys().collect::<Vec<_>>(),
            "{what}: property names differ"
        );
        for (key, celery_value) in &celery_props {
            assert_eq!(
                shape(&ours_props[key]),
                shape(celery_value),
                "{what}: property {key}"
            );
        }
    }

    #[test]
    fn our_message_has_celerys_shape() {
        let celery = encoded("send_task");
        let ours = TaskMessage::new(
            "tasks.remote",
            vec![json!(1), json!("a")],
            obj(json!({"k": [1, 2]})),
        )
        .encode()
        .unwrap();
        assert_same_shape(&ours, &celery, "send_task");

        // Field by field, everything but ids, origin and lang equals Celery's.
        let ignored = ["id", "root_id", "origin", "lang"];
        for (key, value) in &celery.headers {
            if !ignored.contains(&key.as_str()) {
                assert_eq!(&ours.headers[key], value, "header {key}");
            }
        }
        assert_eq!(ours.headers["lang"], json!("rust"));
        assert_eq!(ours.headers["root_id"], ours.headers["id"]);
        assert_eq!(
            ours.properties.correlation_id.as_ref(),
            ours.headers["id"].as_str().map(str::to_owned).as_ref()
        );
        let origin = ours.headers["origin"].as_str().unwrap();
        let (node, host) = origin.split_once('@').expect("gen<pid>@<host>");
        assert!(
            node.strip_prefix("gen")
                .is_some_and(|pid| pid.parse::<u32>().is_ok()),
            "{origin}"
        );
        assert!(!host.is_empty());
        let body: Value = serde_json::from_slice(&ours.body).unwrap();
        let celery_body: Value = serde_json::from_slice(&celery.body).unwrap();
        assert_eq!(body, celery_body);
    }

    #[test]
    fn our_scheduled_retried_message_has_celerys_shape() {
        let ours = TaskMessage::new("tasks.add", vec![json!(1), json!(2)], Map::new())
            .with_countdown(Duration::from_secs(60))
            .with_expires_in(Duration::from_secs(3600))
            .with_timelimit(
                Some(Duration::from_secs(30)),
                Some(Duration::from_millis(20_500)),
            )
            .with_retries(3)
            .with_parent(tid(0x29), tid(0x28))
            .with_group(tid(0x2a), Some(3))
            .with_ignore_result(Some(false))
            .encode()
            .unwrap();
        for name in ["eta_expires", "timelimits", "retry"] {
            let mut celery = encoded(name);
            celery.headers.remove("x_custom");
            celery.properties.extra.remove("origin");
            assert_same_shape(&ours, &celery, name);
        }
        assert_eq!(ours.headers["timelimit"], json!([30, 20.5]));
        assert_eq!(ours.headers["retries"], json!(3));
        assert_eq!(ours.headers["parent_id"], json!(tid(0x29)));
        assert_eq!(ours.headers["root_id"], json!(tid(0x28)));
        let eta = ours.headers["eta"].as_str().unwrap();
        assert!(eta.ends_with("+00:00"), "{eta}");
        let eta = parse_datetime(eta).unwrap();
        let wait = eta - Utc::now();
        assert!(
            wait > TimeDelta::seconds(50) && wait <= TimeDelta::seconds(60),
            "{wait}"
        );
    }

    #[test]
    fn new_message_defaults() {
        let m = TaskMessage::new("tasks.x", vec![], Map::new());
        let id = uuid::Uuid::parse_str(&m.headers.id).expect("uuid");
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(m.headers.root_id.as_deref(), Some(m.headers.id.as_str()));
        assert_eq!(
            m.properties.correlation_id.as_deref(),
            Some(m.headers.id.as_str())
        );
        assert_eq!(m.headers.retries, 0);
        assert_eq!(m.headers.lang, LANG_RUST);
        assert_eq!(m.headers.argsrepr, "[]");
        assert_eq!(m.headers.kwargsrepr, "{}");
        assert_ne!(
            TaskMessage::new("tasks.x", vec![], Map::new()).headers.id,
            m.headers.id
        );
        assert_eq!(m.to_string(), format!("tasks.x[{}]", m.headers.id));

        let renamed = m.with_id("fixed");
        assert_eq!(renamed.headers.id, "fixed");
        assert_eq!(renamed.headers.root_id.as_deref(), Some("fixed"));
        assert_eq!(renamed.properties.correlation_id.as_deref(), Some("fixed"));

        let retry = renamed.for_retry(Some(utc("2024-01-01T10:00:00.123456789Z")));
        assert_eq!(retry.headers.id, "fixed");
        assert_eq!(retry.headers.retries, 1);
        assert_eq!(retry.headers.eta, Some(utc("2024-01-01T10:00:00.123456Z")));
    }

    #[test]
    fn dates_are_written_like_python_isoformat() {
        let m = TaskMessage::new("t", vec![], Map::new())
            .with_eta(utc("2024-01-01T10:00:00Z"))
            .with_expires(utc("2024-01-01T10:00:00.5Z"));
        let e = m.encode().unwrap();
        assert_eq!(e.headers["eta"], json!("2024-01-01T10:00:00+00:00"));
        assert_eq!(
            e.headers["expires"],
            json!("2024-01-01T10:00:00.500000+00:00")
        );
    }

    #[test]
    fn dates_in_other_iso_forms_are_read() {
        for (text, expected) in [
            ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
            ("2024-01-01T12:00:00+02:00", "2024-01-01T10:00:00Z"),
            ("2024-01-01 10:00:00+0000", "2024-01-01T10:00:00Z"),
            (
                "2024-01-01T10:00:00.123456789",
                "2024-01-01T10:00:00.123456Z",
            ),
            ("2024-01-01 10:00:00", "2024-01-01T10:00:00Z"),
        ] {
            assert_eq!(parse_datetime(text), Some(utc(expected)), "{text}");
        }
        assert_eq!(parse_datetime("tomorrow"), None);
    }

    #[test]
    fn python_repr_approximates_saferepr() {
        let cases = [
            (
                json!([1, 2.5, "x", null, true, false]),
                "[1, 2.5, 'x', None, True, False]",
            ),
            (
                json!([1e-7, 1.0, 1e16, 1e22, 0.1, 1e15]),
                "[1e-07, 1.0, 1e+16, 1e+22, 0.1, 1000000000000000.0]",
            ),
            (
                json!([
                    "it's",
                    "say \"hi\"",
                    "both ' \"",
                    "back\\slash",
                    "tab\tline\n"
                ]),
                // saferepr escapes only the single quote.
                "['it\\'s', 'say \"hi\"', 'both \\' \"', 'back\\slash', 'tab\tline\n']",
            ),
            (json!([[[[1]]], [[[]]]]), "[[[[...]]], [[[...]]]]"),
            (json!([{"a": {"b": {"c": 1}}}]), "[{'a': {'b': {...}}}]"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_repr_list(value.as_array().unwrap()), expected);
        }
        assert_eq!(python_repr_map(&obj(json!({"k": [1, 2]}))), "{'k': [1, 2]}");
        let long = python_repr_list(&[json!("x".repeat(5000))]);
        assert_eq!(long.chars().count(), REPR_MAX_CHARS + 3);
        assert!(long.ends_with("xxx..."));
        let many = python_repr_list(&vec![json!(12345); 10_000]);
        assert_eq!(many.chars().count(), REPR_MAX_CHARS + 3);
    }

    #[test]
    fn encode_rejects_what_decode_would_reject() {
        let base = TaskMessage::new("t", vec![], Map::new());

        let mut m = base.clone();
        m.headers.task.clear();
        assert!(matches!(
            m.encode(),
            Err(ProtocolError::MissingHeader { name: "task" })
        ));

        let m = base.clone().with_header("eta", "soon");
        let err = m.encode().unwrap_err();
        assert!(matches!(err, ProtocolError::ReservedHeader { .. }));
        assert_eq!(
            err.to_string(),
            "extra header \"eta\" is reserved; set the typed field instead"
        );

        let mut m = base.clone();
        m.headers.timelimit = (Some(f64::NAN), None);
        assert!(matches!(
            m.encode(),
            Err(ProtocolError::InvalidHeader { .. })
        ));

        let m = base.clone().with_countdown(Duration::MAX);
        let err = m.encode().unwrap_err();
        assert!(err.to_string().contains("years 1 to 9999"), "{err}");

        let mut m = base.clone();
        m.properties.content_type = "application/x-python-serialize".into();
        assert!(matches!(
            m.encode(),
            Err(ProtocolError::UnsupportedContentType { .. })
        ));

        let nested = |levels: usize| (0..levels).fold(json!(1), |inner, _| json!([inner]));
        let m = base.clone().with_header("x-deep", nested(MAX_DEPTH - 1));
        assert!(TaskMessage::decode(&m.encode().unwrap()).is_ok());
        let m = base.clone().with_header("x-deep", nested(MAX_DEPTH));
        let err = m.encode().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("header \"x-deep\" is invalid: nested deeper"),
            "{err}"
        );

        let m = base.with_header("x-trace", json!({"a": 1}));
        let e = m.encode().unwrap();
        assert_eq!(e.headers["x-trace"], json!({"a": 1}));
    }

    /// The error decoding the `plain` fixture after `mutate`, which must be the same whether
    /// the headers are held as a map or as text.
    fn decode_error(mutate: impl FnOnce(&mut EncodedTask)) -> ProtocolError {
        let mut e = encoded("plain");
        mutate(&mut e);
        let from_map = TaskMessage::decode(&e).expect_err("should not decode");
        e.headers = as_text(&e.headers);
        let from_text = TaskMessage::decode(&e).expect_err("should not decode from text");
        assert_eq!(from_map.to_string(), from_text.to_string());
        from_map
    }

    /// The same headers, held as their JSON text.
    fn as_text(headers: &Headers) -> Headers {
        Headers::from_json(serde_json::value::to_raw_value(&**headers).unwrap()).unwrap()
    }

    #[test]
    fn decode_rejects_other_content_types() {
        let err =
            decode_error(|e| e.properties.content_type = "application/x-python-serialize".into());
        assert!(matches!(err, ProtocolError::UnsupportedContentType { .. }));
        assert_eq!(
            err.to_string(),
            "unsupported content type \"application/x-python-serialize\": \
             only application/json task messages are supported"
        );
        let err = decode_error(|e| e.properties.content_type = String::new());
        assert!(matches!(err, ProtocolError::UnsupportedContentType { .. }));
        // Case and surrounding spaces do not matter.
        let mut e = encoded("plain");
        e.properties.content_type = " Application/JSON".into();
        assert!(TaskMessage::decode(&e).is_ok());
    }

    #[test]
    fn decode_rejects_other_encodings_and_compression() {
        let err = decode_error(|e| e.properties.content_encoding = "binary".into());
        assert_eq!(
            err.to_string(),
            "unsupported content encoding \"binary\": only utf-8 is supported"
        );
        let err = decode_error(|e| {
            e.headers
                .insert("compression".into(), json!("application/x-gzip"));
        });
        assert!(matches!(err, ProtocolError::UnsupportedCompression { .. }));
        assert_eq!(
            err.to_string(),
            "compressed task messages are not supported (compression \"application/x-gzip\")"
        );
    }

    #[test]
    fn decode_rejects_invalid_json() {
        let err = decode_error(|e| e.body = b"[[1, 2], {}, {".to_vec());
        assert!(matches!(err, ProtocolError::InvalidJson(_)));
        assert!(
            err.to_string().starts_with("body is not valid JSON: "),
            "{err}"
        );
        let err = decode_error(|e| e.body = vec![b'"', 0xff, b'"']);
        assert!(matches!(err, ProtocolError::InvalidJson(_)), "{err}");
        let err = decode_error(|e| e.body.clear());
        assert!(matches!(err, ProtocolError::InvalidJson(_)), "{err}");
    }

    #[test]
    fn decode_rejects_bodies_of_the_wrong_shape() {
        for (body, reason) in [
            (json!({"args": []}), "expected an array, got an object"),
            (json!("text"), "expected an array, got a string"),
            (json!([[], {}]), "expected 3 elements, got 2"),
            (json!([[], {}, null, 1]), "expected 3 elements, got 4"),
            (
                json!([{}, {}, null]),
                "args (first element) must be an array, got an object",
            ),
            (
                json!([[], [], null]),
                "kwargs (second element) must be an object, got an array",
            ),
            (
                json!([[], {}, 5]),
                "embed (third element) must be an object or null, got a number",
            ),
            (
                json!([[], {}, {"callbacks": {"task": "x"}}]),
                "embed.callbacks must be a list or null, got an object",
            ),
        ] {
            let err = decode_error(|e| e.body = body.to_string().into_bytes());
            assert!(
                matches!(err, ProtocolError::InvalidBody { .. }),
                "{body}: {err}"
            );
            assert_eq!(
                err.to_string(),
                format!("body is not a Celery v2 [args, kwargs, embed] array: {reason}"),
            );
        }
        // A null embed is what Celery's worker accepts too.
        let mut e = encoded("plain");
        e.body = b"[[1], {}, null]".to_vec();
        assert_eq!(TaskMessage::decode(&e).unwrap().embed, Embed::default());
    }

    #[test]
    fn decode_rejects_protocol_v1() {
        let err = decode_error(|e| {
            e.headers.clear();
            e.body =
                json!({"task": "tasks.add", "id": "1", "args": [1, 2], "kwargs": {}, "utc": true})
                    .to_string()
                    .into_bytes();
        });
        assert!(matches!(err, ProtocolError::ProtocolV1));
        assert!(
            err.to_string()
                .starts_with("Celery protocol v1 is not supported"),
            "{err}"
        );
    }

    #[test]
    fn decode_rejects_missing_task_or_id() {
        for (name, value) in [
            ("task", None),
            ("task", Some(json!(null))),
            ("id", None),
            ("id", Some(json!(""))),
        ] {
            let err = decode_error(|e| {
                match value.clone() {
                    None => e.headers.remove(name),
                    Some(v) => e.headers.insert(name.into(), v),
                };
            });
            assert!(matches!(err, ProtocolError::MissingHeader { .. }), "{err}");
            assert_eq!(
                err.to_string(),
                format!("missing required header \"{name}\"")
            );
        }
    }

    #[test]
    fn decode_rejects_invalid_standard_headers() {
        for (name, value, reason) in [
            (
                "eta",
                json!("next tuesday"),
                "\"next tuesday\" is not an ISO-8601 date and time",
            ),
            (
                "expires",
                json!(1_700_000_000),
                "expected an ISO-8601 string, got a number",
            ),
            (
                "retries",
                json!("3"),
                "expected a non-negative integer, got \"3\"",
            ),
            (
                "retries",
                json!(-1),
                "expected a non-negative integer, got -1",
            ),
            (
                "retries",
                json!(5_000_000_000_u64),
                "5000000000 is too large",
            ),
            ("timelimit", json!([1]), "expected [hard, soft], got [1]"),
            (
                "timelimit",
                json!(["1", null]),
                "expected seconds or null, got a string",
            ),
            ("task", json!(7), "expected a string, got a number"),
            (
                "ignore_result",
                json!("yes"),
                "expected a boolean, got a string",
            ),
            (
                "stamped_headers",
                json!([1]),
                "expected a list of strings, found a number",
            ),
            ("stamps", json!([]), "expected an object, got an array"),
        ] {
            let err = decode_error(|e| {
                e.headers.insert(name.into(), value.clone());
            });
            assert!(
                matches!(err, ProtocolError::InvalidHeader { .. }),
                "{name}: {err}"
            );
            assert_eq!(
                err.to_string(),
                format!("header \"{name}\" is invalid: {reason}")
            );
        }
    }

    #[test]
    fn absent_optional_headers_take_celerys_defaults() {
        let mut e = encoded("plain");
        e.headers.retain(|k, _| k == "task" || k == "id");
        let m = TaskMessage::decode(&e).unwrap();
        assert_eq!(m.headers.lang, "");
        assert_eq!(m.headers.retries, 0);
        assert_eq!(m.headers.timelimit, (None, None));
        assert_eq!(m.headers.root_id, None);
        assert_eq!(m.headers.ignore_result, None);
        let again = m.encode().unwrap();
        assert_eq!(again.headers.len(), STANDARD_HEADERS.len());
    }

    #[test]
    fn properties_serialize_like_kombu() {
        let p: TaskProperties = serde_json::from_value(json!({
            "correlation_id": "c", "priority": 3, "app_id": "x", "delivery_mode": 1
        }))
        .unwrap();
        assert_eq!(p.content_type, CONTENT_TYPE_JSON);
        assert_eq!(p.content_encoding, CONTENT_ENCODING_UTF8);
        assert_eq!(p.priority, Some(3));
        assert_eq!(p.delivery_mode, Some(1));
        assert_eq!(p.extra, obj(json!({"app_id": "x"})));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({
                "correlation_id": "c", "priority": 3, "app_id": "x", "delivery_mode": 1,
                "content_type": "application/json", "content_encoding": "utf-8"
            })
        );
    }

    /// Writes a message we encoded, in the fixtures' JSON form, to the file named by
    /// `CELERY_RUST_MESSAGE_OUT`, for `generate.py --check` to feed to a real Celery worker.
    /// Does nothing when the variable is unset.
    #[test]
    fn export_message_for_celery_check() {
        let Some(path) = std::env::var_os("CELERY_RUST_MESSAGE_OUT") else {
            return;
        };
        let message = TaskMessage::new(
            "tasks.echo",
            vec![
                json!(1),
                json!("zwei ✓"),
                json!([3.5, null]),
                json!({"nested": {"deep": [true]}}),
            ],
            obj(json!({"user": {"name": "Zoë", "tags": ["a", "ß"]}, "n": 42})),
        )
        .with_countdown(Duration::from_secs(2))
        .with_expires_in(Duration::from_secs(600))
        .with_timelimit(
            Some(Duration::from_secs(30)),
            Some(Duration::from_millis(20_500)),
        )
        .with_retries(2)
        .with_parent(tid(0x29), tid(0x28))
        .with_header("x_custom", "from rust");
        let mut message = message;
        message.embed.errbacks = Some(vec![json!({
            "task": "tasks.on_error", "args": [], "kwargs": {}, "options": {},
            "subtask_type": null, "immutable": false
        })]);
        let encoded = message.encode().unwrap();
        let file = json!({
            "description": "written by broker_core::celery's export_message_for_celery_check test",
            "headers": encoded.headers,
            "properties": encoded.properties,
            "body": String::from_utf8(encoded.body).unwrap(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    }
}
