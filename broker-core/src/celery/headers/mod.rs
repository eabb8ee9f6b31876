//! The task message's headers: the typed [`TaskHeaders`] and the names Celery gives them.
//! Reading them from the wire is `read`, writing them `write`.

mod read;
mod write;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

pub(super) use read::HeaderFields;

use super::{LANG_RUST, ProtocolError};
use crate::headers::Headers;

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
    /// (which [`TaskMessage::encode`](super::TaskMessage::encode) rejects until they are set).
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
        write::to_headers(self)
    }
}
