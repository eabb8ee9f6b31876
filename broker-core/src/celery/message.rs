//! One task invocation ([`TaskMessage`]), how it is built, and its wire form
//! ([`EncodedTask`]).

use std::{fmt, sync::OnceLock, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{
    DELIVERY_MODE_PERSISTENT, Embed, ProtocolError, TaskHeaders, TaskProperties,
    body::{self, Call, Parts},
    headers::HeaderFields,
    repr::{python_repr_list, python_repr_map},
    time::{add_duration, truncate_to_micros},
};
use crate::headers::Headers;

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
    /// `retries` 0, `origin` `gen<pid>@<hostname>`, `lang` [`LANG_RUST`](super::LANG_RUST), `ignore_result`
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
    /// cut after [`REPR_MAX_CHARS`](super::REPR_MAX_CHARS) characters with `...` appended (Celery cuts each long
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
        let body = body::encode(&self.args, &self.kwargs, &self.embed)?;
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
        let parts = Parts::parse(body)?;
        let headers = headers.into_task_headers()?;
        let Call {
            args,
            kwargs,
            embed,
        } = parts.into_call()?;
        Ok(Self {
            headers,
            args,
            kwargs,
            embed,
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

impl fmt::Display for TaskMessage {
    /// `name[id]`, as Celery logs a task.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.headers.task, self.headers.id)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{celery::LANG_RUST, headers::MAX_DEPTH};

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("an RFC 3339 date")
            .with_timezone(&Utc)
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
}
