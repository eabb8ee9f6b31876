//! Broker and result-backend URLs: `CELERY_BROKER_URL` and `CELERY_RESULT_BACKEND`.
//!
//! [`BrokerUrl::parse`] and [`ResultBackendUrl::parse`] turn a Celery-style URL into a typed
//! configuration, one struct per scheme:
//!
//! | scheme | broker | result backend | config |
//! |---|---|---|---|
//! | `memory://[NAME]` | yes | yes | [`MemoryUrl`] |
//! | `redis://`, `rediss://` | yes | yes | [`RedisUrl`] |
//! | `amqp://`, `amqps://` | yes | no | [`AmqpUrl`] |
//! | `sqs://[KEY:SECRET@]` | yes | no | [`SqsUrl`] |
//! | `kafka://host[:port][,host[:port]...]` | yes | no | [`KafkaUrl`] |
//! | `postgres://`, `postgresql://` | yes | yes | [`PostgresUrl`] |
//! | `db+postgresql://`, `db+postgres://`, `[db+]postgresql+DRIVER://` | no | yes | [`PostgresUrl`] |
//!
//! Options travel as query parameters (`?visibility_timeout=30&max_receives=5`). Durations are
//! given in seconds (fractions allowed unless the option says otherwise) and stored as
//! [`Duration`]; counts are stored as integers. Every option may appear at most once and must
//! not be empty; an option a scheme does not know is an error that lists the ones it knows.
//!
//! What callers may rely on:
//! - Parsing never panics; every failure is a [`UrlError`] that says what is wrong.
//! - No [`UrlError`] message, and no `Display` or `Debug` output of a parsed URL, contains a
//!   password or secret key: passwords live in [`Secret`], which prints `***`, and error
//!   messages never echo the part of the URL before the host.
//! - `Display` prints the canonical form (defaults filled in, options in a fixed order) with the
//!   password replaced by `***`; parsing that text gives back an equal value, apart from the
//!   password, which then reads `***`.
//! - [`redact`] scrubs `scheme://user:password@` occurrences from arbitrary text, for error
//!   messages of client libraries.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Schemes accepted by [`BrokerUrl::parse`] (the value of `CELERY_BROKER_URL`).
pub const BROKER_SCHEMES: &[&str] = &[
    "memory",
    "redis",
    "rediss",
    "amqp",
    "amqps",
    "sqs",
    "kafka",
    "postgres",
    "postgresql",
];

/// Schemes accepted by [`ResultBackendUrl::parse`] (the value of `CELERY_RESULT_BACKEND`).
///
/// `SQLAlchemy` driver suffixes (`postgresql+psycopg2://`, `db+postgresql+psycopg2://`, ...) are
/// accepted as well and mean the same as the scheme without the suffix.
pub const RESULT_BACKEND_SCHEMES: &[&str] = &[
    "memory",
    "redis",
    "rediss",
    "db+postgresql",
    "db+postgres",
    "postgres",
    "postgresql",
];

const MEMORY_OPTIONS: &[&str] = &[
    "visibility_timeout",
    "max_receives",
    "dedup_window",
    "result_expires",
];
const REDIS_OPTIONS: &[&str] = &[
    "visibility_timeout",
    "max_receives",
    "dedup_window",
    "key_prefix",
    "result_expires",
    "ssl_cert_reqs",
];
const AMQP_OPTIONS: &[&str] = &[
    "prefetch",
    "heartbeat",
    "connection_timeout",
    "max_receives",
];
const SQS_OPTIONS: &[&str] = &[
    "region",
    "endpoint_url",
    "visibility_timeout",
    "wait_time_seconds",
    "queue_name_prefix",
    "max_receives",
];
const KAFKA_OPTIONS: &[&str] = &[
    "group_id",
    "session_timeout_ms",
    "visibility_timeout",
    "max_receives",
];
const POSTGRES_OPTIONS: &[&str] = &[
    "schema",
    "visibility_timeout",
    "max_receives",
    "dedup_window",
    "poll_interval",
    "result_expires",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "connect_timeout",
    "options",
];
const SSLMODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Query values additionally keep `:` and `/` readable (for `endpoint_url`).
const QUERY_VALUE: &AsciiSet = &UNRESERVED.remove(b':').remove(b'/');

/// How much of a user-supplied value an error message repeats.
const MAX_ECHO_CHARS: usize = 64;

// ---------------------------------------------------------------------------------------------
// Secret
// ---------------------------------------------------------------------------------------------

/// A password or secret key. `Debug` and `Display` print `***`; only [`Secret::expose`] gives
/// the value, for handing to a client library.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value. Hand it to the driver; never log or print it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Which of the two environment URLs is being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlKind {
    /// `CELERY_BROKER_URL`, parsed by [`BrokerUrl::parse`].
    Broker,
    /// `CELERY_RESULT_BACKEND`, parsed by [`ResultBackendUrl::parse`].
    ResultBackend,
}

impl UrlKind {
    /// The schemes this kind of URL accepts ([`BROKER_SCHEMES`] or [`RESULT_BACKEND_SCHEMES`]).
    #[must_use]
    pub fn known_schemes(self) -> &'static [&'static str] {
        match self {
            Self::Broker => BROKER_SCHEMES,
            Self::ResultBackend => RESULT_BACKEND_SCHEMES,
        }
    }

    /// The environment variable that conventionally holds this kind of URL.
    #[must_use]
    pub fn env_var(self) -> &'static str {
        match self {
            Self::Broker => "CELERY_BROKER_URL",
            Self::ResultBackend => "CELERY_RESULT_BACKEND",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Broker => Self::ResultBackend,
            Self::ResultBackend => Self::Broker,
        }
    }
}

impl fmt::Display for UrlKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Broker => "broker",
            Self::ResultBackend => "result backend",
        })
    }
}

/// Why a broker or result-backend URL was rejected.
///
/// Messages name the problem and, where useful, the accepted alternatives. They never contain
/// the URL's password or secret key, not even when the URL is malformed; user-supplied values
/// they repeat are shortened to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The text is not a usable URL of this kind (no scheme, bad port, bad host, ...).
    #[error("malformed {kind} URL: {reason}")]
    Malformed {
        /// Which URL was being parsed.
        kind: UrlKind,
        /// What is wrong, for example `missing scheme` or `invalid port`.
        reason: String,
    },
    /// The scheme is not known at all.
    #[error("unknown {kind} scheme `{scheme}`; known schemes: {known_list}", known_list = .known.join(", "))]
    UnknownScheme {
        /// Which URL was being parsed.
        kind: UrlKind,
        /// The scheme as given, lowercased.
        scheme: String,
        /// The schemes this kind of URL accepts.
        known: &'static [&'static str],
    },
    /// The scheme is valid for the other kind of URL only (for example `amqp://` as a result
    /// backend, or `db+postgresql://` as a broker).
    #[error(
        "`{scheme}` is a {other} scheme, not a {kind} scheme; known {kind} schemes: {known_list}",
        other = .kind.other(),
        known_list = .known.join(", ")
    )]
    WrongKind {
        /// Which URL was being parsed.
        kind: UrlKind,
        /// The scheme as given, lowercased.
        scheme: String,
        /// The schemes this kind of URL accepts.
        known: &'static [&'static str],
    },
    /// A query parameter the scheme does not know.
    #[error("unknown option `{option}` for {scheme} URLs; known options: {known_list}", known_list = .known.join(", "))]
    UnknownOption {
        /// The canonical scheme (`redis`, `postgresql`, ...).
        scheme: &'static str,
        /// The option as given.
        option: String,
        /// The options this scheme knows.
        known: &'static [&'static str],
    },
    /// A known option with a value that cannot be used.
    #[error("invalid value `{value}` for option `{option}`: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// The value as given (passwords found in it are replaced by `***`).
        value: String,
        /// Why it cannot be used and what is expected.
        reason: String,
    },
    /// The same option appears more than once.
    #[error("option `{option}` is given more than once")]
    DuplicateOption {
        /// The option.
        option: &'static str,
    },
}

impl UrlError {
    /// Sets the URL kind on errors built without it and scrubs secrets and long values from
    /// every user-supplied part of the message.
    fn finish(mut self, url_kind: UrlKind, secrets: &[String]) -> Self {
        match &mut self {
            Self::Malformed { kind, .. } => *kind = url_kind,
            Self::UnknownScheme { scheme, .. } | Self::WrongKind { scheme, .. } => {
                scrub(scheme, secrets);
            }
            Self::UnknownOption { option, .. } => scrub(option, secrets),
            Self::InvalidOption { value, .. } => scrub(value, secrets),
            Self::DuplicateOption { .. } => {}
        }
        self
    }
}

fn scrub(text: &mut String, secrets: &[String]) {
    let mut clean = redact(text);
    for secret in secrets {
        if !secret.is_empty() && clean.contains(secret.as_str()) {
            clean = clean.replace(secret.as_str(), "***");
        }
    }
    if let Some((cut, _)) = clean.char_indices().nth(MAX_ECHO_CHARS) {
        clean.truncate(cut);
        clean.push('…');
    }
    *text = clean;
}

/// A malformed-URL error; the kind is filled in by [`UrlError::finish`].
fn malformed(reason: impl Into<String>) -> UrlError {
    UrlError::Malformed {
        kind: UrlKind::Broker,
        reason: reason.into(),
    }
}

fn invalid(option: &'static str, value: &str, reason: impl Into<String>) -> UrlError {
    UrlError::InvalidOption {
        option,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration types
// ---------------------------------------------------------------------------------------------

/// Queue-semantics options shared by the broker configurations. `None` means "the backend's
/// default".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueOptions {
    /// `visibility_timeout`: how long a received message stays hidden before it is delivered
    /// again unless acknowledged or extended. Greater than zero.
    pub visibility_timeout: Option<Duration>,
    /// `max_receives`: deliveries after which a message goes to the dead-letter place. At least 1.
    pub max_receives: Option<u32>,
    /// `dedup_window` (memory, Redis, PostgreSQL): how long a deduplication id is remembered.
    /// Greater than zero, except on memory, where zero turns deduplication off.
    pub dedup_window: Option<Duration>,
}

/// `memory://` or `memory://NAME`: the embedded in-process broker and result store.
#[derive(Clone, PartialEq, Eq)]
pub struct MemoryUrl {
    /// Selects a named in-process instance: URLs with the same name share queues and results.
    /// `default` when the URL names none. Letters, digits, `.`, `_` and `-` only.
    pub name: String,
    /// `visibility_timeout`, `max_receives`, `dedup_window`.
    pub queue: QueueOptions,
    /// `result_expires`: how long stored results are kept.
    pub result_expires: Option<Duration>,
}

impl Default for MemoryUrl {
    /// `memory://default` with no options.
    fn default() -> Self {
        Self {
            name: "default".to_owned(),
            queue: QueueOptions::default(),
            result_expires: None,
        }
    }
}

/// Whether a `rediss://` client verifies the server certificate (Celery's `ssl_cert_reqs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SslCertReqs {
    /// `required` / `CERT_REQUIRED`: the certificate must be valid.
    Required,
    /// `optional` / `CERT_OPTIONAL`: verified when presented.
    Optional,
    /// `none` / `CERT_NONE`: not verified.
    None,
}

impl fmt::Display for SslCertReqs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Required => "required",
            Self::Optional => "optional",
            Self::None => "none",
        })
    }
}

/// `redis://[user][:password]@host[:port][/db]`, or `rediss://` for TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// `true` for `rediss://`.
    pub tls: bool,
    /// Redis 6 ACL user name, percent-decoded.
    pub username: Option<String>,
    /// Password, percent-decoded.
    pub password: Option<Secret>,
    /// Host name (lowercased) or IP address (IPv6 without brackets); `localhost` by default.
    pub host: String,
    /// Port; 6379 by default.
    pub port: u16,
    /// Database number from the path; 0 by default.
    pub db: u32,
    /// `key_prefix`: kombu's global key prefix, put in front of every key.
    pub key_prefix: Option<String>,
    /// `ssl_cert_reqs` (`rediss://` only).
    pub ssl_cert_reqs: Option<SslCertReqs>,
    /// `visibility_timeout`, `max_receives`.
    pub queue: QueueOptions,
    /// `result_expires`: how long stored results are kept.
    pub result_expires: Option<Duration>,
}

/// `amqp://[user[:password]@]host[:port][/vhost]`, or `amqps://` for TLS.
#[derive(Clone, PartialEq, Eq)]
pub struct AmqpUrl {
    /// `true` for `amqps://`.
    pub tls: bool,
    /// User name, percent-decoded; `None` lets the backend choose its default.
    pub username: Option<String>,
    /// Password, percent-decoded; `None` lets the backend choose its default.
    pub password: Option<Secret>,
    /// Host name (lowercased) or IP address (IPv6 without brackets); `localhost` by default.
    pub host: String,
    /// Port; 5672 by default, 5671 for `amqps://`.
    pub port: u16,
    /// Virtual host, percent-decoded from the path (kombu's rule: everything after the first
    /// `/`); `/` when the path is empty or `/`. `/%2f` and `//` both mean `/`.
    pub vhost: String,
    /// `prefetch`: unacknowledged deliveries per consumer (0 means no limit, as in AMQP).
    pub prefetch: Option<u16>,
    /// `heartbeat`: whole seconds, 0..=65535 (0 turns heartbeats off).
    pub heartbeat: Option<Duration>,
    /// `connection_timeout`: seconds, greater than zero.
    pub connection_timeout: Option<Duration>,
    /// `max_receives`.
    pub queue: QueueOptions,
}

/// `sqs://` or `sqs://ACCESS_KEY:SECRET_KEY@` (Celery's form; keys may be percent-encoded).
///
/// The URL carries no host: the endpoint comes from `region`, `endpoint_url` or the AWS
/// environment.
#[derive(Clone, PartialEq, Eq)]
pub struct SqsUrl {
    /// AWS access key id, percent-decoded; `None` means the default credential chain.
    pub access_key_id: Option<String>,
    /// AWS secret access key, percent-decoded; present exactly when `access_key_id` is.
    pub secret_access_key: Option<Secret>,
    /// `region`, for example `eu-west-1`.
    pub region: Option<String>,
    /// `endpoint_url`: an `http://` or `https://` URL without credentials (emulators such as
    /// `ElasticMQ` or `LocalStack`), as given.
    pub endpoint_url: Option<String>,
    /// `wait_time_seconds`: long-polling wait, whole seconds 0..=20.
    pub wait_time: Option<Duration>,
    /// `queue_name_prefix`: put in front of every queue name (letters, digits, `-`, `_`).
    pub queue_name_prefix: Option<String>,
    /// `visibility_timeout`, `max_receives`.
    pub queue: QueueOptions,
}

/// One `host:port` pair of a Kafka bootstrap list. `Display` prints `host:port` (IPv6 in
/// brackets).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name (lowercased) or IP address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_host(f, &self.host)?;
        write!(f, ":{}", self.port)
    }
}

/// `kafka://[user:password@]host[:port][,host[:port]...]`: bootstrap brokers, SASL
/// credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaUrl {
    /// Bootstrap brokers in the given order, never empty; `localhost:9092` when the URL names
    /// none, port 9092 where a broker names none.
    pub brokers: Vec<HostPort>,
    /// SASL user name, percent-decoded.
    pub username: Option<String>,
    /// SASL password, percent-decoded.
    pub password: Option<Secret>,
    /// `group_id`: the consumer group.
    pub group_id: Option<String>,
    /// `session_timeout_ms`: whole milliseconds, greater than zero.
    pub session_timeout: Option<Duration>,
    /// `visibility_timeout`, `max_receives`.
    pub queue: QueueOptions,
}

impl KafkaUrl {
    /// The brokers as `host:port,host:port`, the form Kafka clients take as
    /// `bootstrap.servers`.
    #[must_use]
    pub fn bootstrap_servers(&self) -> String {
        self.brokers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `postgres://` / `postgresql://` (brokers and result backends) and `db+postgresql://`,
/// `db+postgres://`, `[db+]postgresql+DRIVER://` (result backends).
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    /// User name, percent-decoded; `None` lets the driver choose.
    pub username: Option<String>,
    /// Password, percent-decoded.
    pub password: Option<Secret>,
    /// Host name (lowercased) or IP address (IPv6 without brackets); `localhost` by default.
    pub host: String,
    /// Port; 5432 by default.
    pub port: u16,
    /// Database name from the path, percent-decoded; `None` lets the driver choose.
    pub database: Option<String>,
    /// `schema`: where the backend keeps its tables. A lowercase SQL identifier (`a-z`, digits,
    /// `_`, not starting with a digit, at most 63 characters).
    pub schema: Option<String>,
    /// `visibility_timeout`, `max_receives`.
    pub queue: QueueOptions,
    /// `poll_interval`: how often to poll when no notification arrives; greater than zero.
    pub poll_interval: Option<Duration>,
    /// `result_expires`: how long stored results are kept.
    pub result_expires: Option<Duration>,
    /// libpq options passed to the driver as given, in URL order: `sslmode` (checked against
    /// libpq's values), `connect_timeout` (whole seconds), `application_name`, `options`,
    /// `sslrootcert`, `sslcert`, `sslkey`.
    pub libpq_options: Vec<(String, String)>,
}

impl RedisUrl {
    /// The canonical scheme: `redis` or `rediss`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        if self.tls { "rediss" } else { "redis" }
    }

    /// `redis[s]://user:password@host:port/db` with the real password and no options, for
    /// handing to a client library. Never print it.
    #[must_use]
    pub fn connection_string(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_base(&mut out, true);
        out
    }

    fn write_base(&self, w: &mut dyn fmt::Write, reveal: bool) -> fmt::Result {
        write!(w, "{}://", self.scheme())?;
        write_userinfo(w, self.username.as_deref(), self.password.as_ref(), reveal)?;
        write_host(w, &self.host)?;
        write!(w, ":{}/{}", self.port, self.db)
    }
}

impl AmqpUrl {
    /// The canonical scheme: `amqp` or `amqps`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        if self.tls { "amqps" } else { "amqp" }
    }

    /// `amqp[s]://user:password@host:port/vhost` (vhost percent-encoded) with the real password
    /// and no options, for handing to a client library. Never print it.
    #[must_use]
    pub fn connection_string(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_base(&mut out, true);
        out
    }

    fn write_base(&self, w: &mut dyn fmt::Write, reveal: bool) -> fmt::Result {
        write!(w, "{}://", self.scheme())?;
        write_userinfo(w, self.username.as_deref(), self.password.as_ref(), reveal)?;
        write_host(w, &self.host)?;
        write!(
            w,
            ":{}/{}",
            self.port,
            utf8_percent_encode(&self.vhost, UNRESERVED)
        )
    }
}

impl MemoryUrl {
    /// Always `memory`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        "memory"
    }
}

impl SqsUrl {
    /// Always `sqs`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        "sqs"
    }
}

impl KafkaUrl {
    /// Always `kafka`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        "kafka"
    }
}

impl PostgresUrl {
    /// The canonical scheme, `postgresql`, whichever accepted form the URL used.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        "postgresql"
    }

    /// A plain `postgres://user:password@host:port/database` URL with the real password and
    /// only the libpq options, for handing to the driver. Never print it.
    #[must_use]
    pub fn connection_string(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_to(&mut out, true);
        out
    }

    /// `connection == true`: the driver's URL; otherwise the redacted canonical form.
    fn write_to(&self, w: &mut dyn fmt::Write, connection: bool) -> fmt::Result {
        w.write_str(if connection {
            "postgres://"
        } else {
            "postgresql://"
        })?;
        write_userinfo(
            w,
            self.username.as_deref(),
            self.password.as_ref(),
            connection,
        )?;
        write_host(w, &self.host)?;
        write!(w, ":{}", self.port)?;
        if let Some(db) = &self.database {
            write!(w, "/{}", utf8_percent_encode(db, UNRESERVED))?;
        }
        let mut q = QueryWriter::new(w);
        if !connection {
            q.opt("schema", self.schema.as_deref())?;
            q.queue(&self.queue)?;
            q.opt("poll_interval", self.poll_interval.map(Secs))?;
            q.opt("result_expires", self.result_expires.map(Secs))?;
        }
        for (name, value) in &self.libpq_options {
            q.pair(name, value)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Display / Debug
// ---------------------------------------------------------------------------------------------

impl fmt::Display for MemoryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory://{}", self.name)?;
        let mut q = QueryWriter::new(f);
        q.queue(&self.queue)?;
        q.opt("result_expires", self.result_expires.map(Secs))
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_base(f, false)?;
        let mut q = QueryWriter::new(f);
        q.queue(&self.queue)?;
        q.opt("key_prefix", self.key_prefix.as_deref())?;
        q.opt("result_expires", self.result_expires.map(Secs))?;
        q.opt("ssl_cert_reqs", self.ssl_cert_reqs)
    }
}

impl fmt::Display for AmqpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_base(f, false)?;
        let mut q = QueryWriter::new(f);
        q.opt("prefetch", self.prefetch)?;
        q.opt("heartbeat", self.heartbeat.map(Secs))?;
        q.opt("connection_timeout", self.connection_timeout.map(Secs))?;
        q.queue(&self.queue)
    }
}

impl fmt::Display for SqsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sqs://")?;
        write_userinfo(
            f,
            self.access_key_id.as_deref(),
            self.secret_access_key.as_ref(),
            false,
        )?;
        let mut q = QueryWriter::new(f);
        q.opt("region", self.region.as_deref())?;
        q.opt("endpoint_url", self.endpoint_url.as_deref())?;
        q.queue(&self.queue)?;
        q.opt("wait_time_seconds", self.wait_time.map(Secs))?;
        q.opt("queue_name_prefix", self.queue_name_prefix.as_deref())
    }
}

impl fmt::Display for KafkaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("kafka://")?;
        write_userinfo(f, self.username.as_deref(), self.password.as_ref(), false)?;
        f.write_str(&self.bootstrap_servers())?;
        let mut q = QueryWriter::new(f);
        q.opt("group_id", self.group_id.as_deref())?;
        q.opt(
            "session_timeout_ms",
            self.session_timeout.map(|d| d.as_millis()),
        )?;
        q.queue(&self.queue)
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f, false)
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(u) => u.fmt(f),
            Self::Redis(u) => u.fmt(f),
            Self::Amqp(u) => u.fmt(f),
            Self::Sqs(u) => u.fmt(f),
            Self::Kafka(u) => u.fmt(f),
            Self::Postgres(u) => u.fmt(f),
        }
    }
}

impl fmt::Display for ResultBackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(u) => u.fmt(f),
            Self::Redis(u) => u.fmt(f),
            Self::Postgres(u) => u.fmt(f),
        }
    }
}

/// `Debug` prints `TypeName(<redacted canonical URL>)`.
macro_rules! debug_as_redacted_url {
    ($($ty:ident),* $(,)?) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($ty)).field(&format_args!("{self}")).finish()
            }
        }
    )*};
}

debug_as_redacted_url!(
    MemoryUrl,
    RedisUrl,
    AmqpUrl,
    SqsUrl,
    KafkaUrl,
    PostgresUrl,
    BrokerUrl,
    ResultBackendUrl,
);

/// Seconds with the shortest exact decimal fraction: `30`, `1.5`, `0.001`.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs())?;
        let nanos = self.0.subsec_nanos();
        if nanos != 0 {
            let digits = format!("{nanos:09}");
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        Ok(())
    }
}

fn write_host(w: &mut dyn fmt::Write, host: &str) -> fmt::Result {
    if host.contains(':') {
        write!(w, "[{host}]")
    } else {
        w.write_str(host)
    }
}

fn write_userinfo(
    w: &mut dyn fmt::Write,
    user: Option<&str>,
    password: Option<&Secret>,
    reveal: bool,
) -> fmt::Result {
    if user.is_none() && password.is_none() {
        return Ok(());
    }
    if let Some(user) = user {
        write!(w, "{}", utf8_percent_encode(user, UNRESERVED))?;
    }
    if let Some(password) = password {
        if reveal {
            write!(w, ":{}", utf8_percent_encode(password.expose(), UNRESERVED))?;
        } else {
            w.write_str(":***")?;
        }
    }
    w.write_char('@')
}

struct QueryWriter<'w> {
    w: &'w mut dyn fmt::Write,
    first: bool,
}

impl<'w> QueryWriter<'w> {
    fn new(w: &'w mut dyn fmt::Write) -> Self {
        Self { w, first: true }
    }

    fn pair(&mut self, key: &str, value: impl fmt::Display) -> fmt::Result {
        self.w.write_char(if self.first { '?' } else { '&' })?;
        self.first = false;
        let value = value.to_string();
        write!(
            self.w,
            "{}={}",
            utf8_percent_encode(key, QUERY_VALUE),
            utf8_percent_encode(&value, QUERY_VALUE)
        )
    }

    fn opt(&mut self, key: &str, value: Option<impl fmt::Display>) -> fmt::Result {
        match value {
            Some(value) => self.pair(key, value),
            None => Ok(()),
        }
    }

    fn queue(&mut self, queue: &QueueOptions) -> fmt::Result {
        self.opt("visibility_timeout", queue.visibility_timeout.map(Secs))?;
        self.opt("max_receives", queue.max_receives)?;
        self.opt("dedup_window", queue.dedup_window.map(Secs))
    }
}

// ---------------------------------------------------------------------------------------------
// Top-level URL enums
// ---------------------------------------------------------------------------------------------

/// A parsed `CELERY_BROKER_URL`: which broker to use and how to configure it.
#[derive(Clone, PartialEq, Eq)]
pub enum BrokerUrl {
    /// `memory://[NAME]`.
    Memory(MemoryUrl),
    /// `redis://` or `rediss://`.
    Redis(RedisUrl),
    /// `amqp://` or `amqps://`.
    Amqp(AmqpUrl),
    /// `sqs://`.
    Sqs(SqsUrl),
    /// `kafka://`.
    Kafka(KafkaUrl),
    /// `postgres://` or `postgresql://`.
    Postgres(PostgresUrl),
}

impl Default for BrokerUrl {
    /// The embedded default, `memory://default`.
    fn default() -> Self {
        Self::Memory(MemoryUrl::default())
    }
}

impl BrokerUrl {
    /// Parses a broker URL. Leading and trailing whitespace is ignored; scheme matching is
    /// case-insensitive.
    ///
    /// # Errors
    /// [`UrlError`] when the URL is malformed, its scheme is unknown or only valid for result
    /// backends, or an option is unknown, repeated or has an unusable value. The error never
    /// contains the password.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let kind = UrlKind::Broker;
        let raw = Raw::split(input).map_err(|e| e.finish(kind, &[]))?;
        let secrets = raw.secrets();
        let parsed = match raw.scheme.as_str() {
            "memory" => parse_memory(&raw).map(Self::Memory),
            "redis" => parse_redis(&raw, false).map(Self::Redis),
            "rediss" => parse_redis(&raw, true).map(Self::Redis),
            "amqp" => parse_amqp(&raw, false).map(Self::Amqp),
            "amqps" => parse_amqp(&raw, true).map(Self::Amqp),
            "sqs" => parse_sqs(&raw).map(Self::Sqs),
            "kafka" => parse_kafka(&raw).map(Self::Kafka),
            "postgres" | "postgresql" => parse_postgres(&raw).map(Self::Postgres),
            other if is_postgres_result_scheme(other) => Err(UrlError::WrongKind {
                kind,
                scheme: other.to_owned(),
                known: BROKER_SCHEMES,
            }),
            other => Err(UrlError::UnknownScheme {
                kind,
                scheme: other.to_owned(),
                known: BROKER_SCHEMES,
            }),
        };
        parsed.map_err(|e| e.finish(kind, &secrets))
    }

    /// The canonical scheme: `memory`, `redis`, `rediss`, `amqp`, `amqps`, `sqs`, `kafka` or
    /// `postgresql`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Memory(u) => u.scheme(),
            Self::Redis(u) => u.scheme(),
            Self::Amqp(u) => u.scheme(),
            Self::Sqs(u) => u.scheme(),
            Self::Kafka(u) => u.scheme(),
            Self::Postgres(u) => u.scheme(),
        }
    }

    /// The backend that serves this URL: `memory`, `redis`, `amqp`, `sqs`, `kafka` or
    /// `postgres` (TLS variants share their backend).
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
            Self::Amqp(_) => "amqp",
            Self::Sqs(_) => "sqs",
            Self::Kafka(_) => "kafka",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The queue-semantics options, whichever the backend.
    #[must_use]
    pub fn queue_options(&self) -> &QueueOptions {
        match self {
            Self::Memory(u) => &u.queue,
            Self::Redis(u) => &u.queue,
            Self::Amqp(u) => &u.queue,
            Self::Sqs(u) => &u.queue,
            Self::Kafka(u) => &u.queue,
            Self::Postgres(u) => &u.queue,
        }
    }
}

impl FromStr for BrokerUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A parsed `CELERY_RESULT_BACKEND`: where task states and results are stored.
#[derive(Clone, PartialEq, Eq)]
pub enum ResultBackendUrl {
    /// `memory://[NAME]`.
    Memory(MemoryUrl),
    /// `redis://` or `rediss://`.
    Redis(RedisUrl),
    /// `postgres://`, `postgresql://`, `db+postgresql://`, `db+postgres://` and driver forms.
    Postgres(PostgresUrl),
}

impl Default for ResultBackendUrl {
    /// The embedded default, `memory://default`.
    fn default() -> Self {
        Self::Memory(MemoryUrl::default())
    }
}

impl ResultBackendUrl {
    /// Parses a result-backend URL. Leading and trailing whitespace is ignored; scheme matching
    /// is case-insensitive.
    ///
    /// # Errors
    /// [`UrlError`] when the URL is malformed, its scheme is unknown or only valid for brokers,
    /// or an option is unknown, repeated or has an unusable value. The error never contains
    /// the password.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let kind = UrlKind::ResultBackend;
        let raw = Raw::split(input).map_err(|e| e.finish(kind, &[]))?;
        let secrets = raw.secrets();
        let parsed = match raw.scheme.as_str() {
            "memory" => parse_memory(&raw).map(Self::Memory),
            "redis" => parse_redis(&raw, false).map(Self::Redis),
            "rediss" => parse_redis(&raw, true).map(Self::Redis),
            other if is_postgres_result_scheme(other) => parse_postgres(&raw).map(Self::Postgres),
            other @ ("amqp" | "amqps" | "sqs" | "kafka") => Err(UrlError::WrongKind {
                kind,
                scheme: other.to_owned(),
                known: RESULT_BACKEND_SCHEMES,
            }),
            other => Err(UrlError::UnknownScheme {
                kind,
                scheme: other.to_owned(),
                known: RESULT_BACKEND_SCHEMES,
            }),
        };
        parsed.map_err(|e| e.finish(kind, &secrets))
    }

    /// The canonical scheme: `memory`, `redis`, `rediss` or `postgresql`.
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Memory(u) => u.scheme(),
            Self::Redis(u) => u.scheme(),
            Self::Postgres(u) => u.scheme(),
        }
    }

    /// The backend that serves this URL: `memory`, `redis` or `postgres`.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
            Self::Postgres(_) => "postgres",
        }
    }

    /// The `result_expires` option, whichever the backend.
    #[must_use]
    pub fn result_expires(&self) -> Option<Duration> {
        match self {
            Self::Memory(u) => u.result_expires,
            Self::Redis(u) => u.result_expires,
            Self::Postgres(u) => u.result_expires,
        }
    }
}

impl FromStr for ResultBackendUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// `postgres`, `postgresql`, `db+postgres`, `db+postgresql`, each optionally followed by a
/// `SQLAlchemy` driver suffix `+driver`.
fn is_postgres_result_scheme(scheme: &str) -> bool {
    let rest = scheme.strip_prefix("db+").unwrap_or(scheme);
    let Some(rest) = rest
        .strip_prefix("postgresql")
        .or_else(|| rest.strip_prefix("postgres"))
    else {
        return false;
    };
    match rest.strip_prefix('+') {
        None => rest.is_empty(),
        Some(driver) => {
            !driver.is_empty()
                && driver
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------------------------

/// Replaces the password of every `scheme://user:password@` occurrence in `text` with `***`,
/// keeping the user name and everything else. Meant for error messages of client libraries
/// that may repeat the URL they were given. Text without such occurrences comes back
/// unchanged; applying it twice changes nothing more.
///
/// A password is recognised up to the last `@` before the next whitespace, `/`, `?`, `#`,
/// quote or angle bracket, so passwords containing those characters unencoded may escape it.
#[must_use]
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, after) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = after
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`')
            })
            .unwrap_or(after.len());
        let (authority, tail) = after.split_at(end);
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, password)) if !password.is_empty() => {
                    out.push_str(user);
                    out.push_str(":***@");
                    out.push_str(host);
                }
                _ => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A URL split into its raw (still percent-encoded) parts.
struct Raw<'a> {
    /// Lowercased.
    scheme: String,
    userinfo: Option<&'a str>,
    hostport: &'a str,
    /// Empty or starting with `/`.
    path: &'a str,
    /// Without the `?`.
    query: &'a str,
}

impl<'a> Raw<'a> {
    fn split(input: &'a str) -> Result<Self, UrlError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(malformed("the URL is empty"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(malformed(
                "the URL contains whitespace or control characters",
            ));
        }
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(malformed(
                "missing scheme (expected `scheme://...`, for example `redis://localhost`)",
            ));
        };
        if scheme.is_empty() {
            return Err(malformed("missing scheme before `://`"));
        }
        let mut chars = scheme.chars();
        let valid_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid_scheme {
            return Err(malformed(
                "invalid scheme (letters, digits, `+`, `-` and `.`, starting with a letter)",
            ));
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, after) = rest.split_at(authority_end);
        if after.contains('@') {
            return Err(malformed(
                "`@` after the host; percent-encode `@`, `/`, `?`, `#` and `:` in user names \
                 and passwords (as %40, %2F, %3F, %23, %3A)",
            ));
        }
        if after.contains('#') {
            return Err(malformed(
                "fragments (`#...`) are not allowed; percent-encode `#` in passwords as %23",
            ));
        }
        let (path, query) = after.split_once('?').unwrap_or((after, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        Ok(Self {
            scheme: scheme.to_ascii_lowercase(),
            userinfo,
            hostport,
            path,
            query,
        })
    }

    /// The password as written and as decoded, for scrubbing error messages.
    fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some((_, password)) = self.userinfo.and_then(|u| u.split_once(':'))
            && !password.is_empty()
        {
            out.push(password.to_owned());
            let decoded = percent_decode_str(password).decode_utf8_lossy();
            if decoded != password {
                out.push(decoded.into_owned());
            }
        }
        out
    }

    /// Percent-decoded user name and password; empty ones are `None`.
    fn credentials(&self) -> Result<(Option<String>, Option<Secret>), UrlError> {
        let Some(userinfo) = self.userinfo else {
            return Ok((None, None));
        };
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        let user = decode_component(user, "the user name")?;
        let password = match password {
            Some(password) => decode_component(password, "the password")?.map(Secret),
            None => None,
        };
        Ok((user, password))
    }

    fn host_port(&self, default_port: u16) -> Result<(String, u16), UrlError> {
        parse_host_port(self.hostport, default_port)
    }

    fn expect_no_path(&self, scheme: &str) -> Result<(), UrlError> {
        if matches!(self.path, "" | "/") {
            Ok(())
        } else {
            Err(malformed(format!("{scheme} URLs take no path")))
        }
    }

    fn options(
        &self,
        scheme: &'static str,
        known: &'static [&'static str],
    ) -> Result<Vec<(&'static str, String)>, UrlError> {
        let mut out: Vec<(&'static str, String)> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(self.query.as_bytes()) {
            let Some(name) = known.iter().copied().find(|name| *name == key) else {
                return Err(UrlError::UnknownOption {
                    scheme,
                    option: key.into_owned(),
                    known,
                });
            };
            if out.iter().any(|(seen, _)| *seen == name) {
                return Err(UrlError::DuplicateOption { option: name });
            }
            if value.is_empty() {
                return Err(invalid(name, "", "must not be empty"));
            }
            out.push((name, value.into_owned()));
        }
        Ok(out)
    }
}

fn decode_component(raw: &str, what: &str) -> Result<Option<String>, UrlError> {
    if raw.is_empty() {
        return Ok(None);
    }
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| Some(s.into_owned()))
        .map_err(|_| malformed(format!("{what} is not valid UTF-8 after percent-decoding")))
}

/// `host[:port]` or `[v6][:port]`; an empty host means `localhost`, an empty or missing port
/// the default.
fn parse_host_port(hostport: &str, default_port: u16) -> Result<(String, u16), UrlError> {
    let (host, port) = if hostport.starts_with('[') {
        let Some(close) = hostport.find(']') else {
            return Err(malformed("unclosed `[` in an IPv6 host"));
        };
        let (host, rest) = hostport.split_at(close + 1);
        if rest.is_empty() {
            (host, None)
        } else if let Some(port) = rest.strip_prefix(':') {
            (host, Some(port))
        } else {
            return Err(malformed("unexpected characters after an IPv6 host"));
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(port) => port
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| port.parse::<u16>().ok())
            .flatten()
            .filter(|port| *port != 0)
            .ok_or_else(|| malformed("invalid port (expected a number from 1 to 65535)"))?,
    };
    let host = if host.is_empty() {
        "localhost".to_owned()
    } else {
        match url::Host::parse(host) {
            Ok(url::Host::Domain(domain)) => domain,
            Ok(url::Host::Ipv4(address)) => address.to_string(),
            Ok(url::Host::Ipv6(address)) => address.to_string(),
            Err(_) => return Err(malformed("invalid host")),
        }
    };
    Ok((host, port))
}

fn seconds(option: &'static str, value: &str, allow_zero: bool) -> Result<Duration, UrlError> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid(
            option,
            value,
            "expected a number of seconds such as `30` or `0.5`",
        ));
    }
    if frac.len() > 9 {
        return Err(invalid(
            option,
            value,
            "at most 9 decimal places (nanoseconds)",
        ));
    }
    let secs = if int.is_empty() {
        0
    } else {
        int.parse::<u64>()
            .map_err(|_| invalid(option, value, "too large"))?
    };
    let nanos = format!("{frac:0<9}")
        .parse::<u32>()
        .map_err(|_| invalid(option, value, "invalid fraction"))?;
    let duration = Duration::new(secs, nanos);
    if !allow_zero && duration.is_zero() {
        return Err(invalid(option, value, "must be greater than zero"));
    }
    Ok(duration)
}

/// A whole number without sign, within `T`'s range and `>= min`.
fn whole<T>(option: &'static str, value: &str, min: T, expected: &str) -> Result<T, UrlError>
where
    T: FromStr + PartialOrd + Copy,
{
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(option, value, expected));
    }
    match value.parse::<T>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(invalid(option, value, expected)),
    }
}

fn count(option: &'static str, value: &str) -> Result<u32, UrlError> {
    whole(
        option,
        value,
        1,
        "expected a whole number from 1 to 4294967295",
    )
}

fn parse_memory(raw: &Raw<'_>) -> Result<MemoryUrl, UrlError> {
    if raw.userinfo.is_some() {
        return Err(malformed("memory URLs take no user name or password"));
    }
    if raw.hostport.contains(':') {
        return Err(malformed("memory URLs take no port"));
    }
    raw.expect_no_path("memory")?;
    let mut out = MemoryUrl::default();
    if !raw.hostport.is_empty() {
        if !raw
            .hostport
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(malformed(
                "invalid memory instance name (letters, digits, `.`, `_` and `-`)",
            ));
        }
        raw.hostport.clone_into(&mut out.name);
    }
    for (name, value) in raw.options("memory", MEMORY_OPTIONS)? {
        let v = value.as_str();
        match name {
            "visibility_timeout" => out.queue.visibility_timeout = Some(seconds(name, v, false)?),
            "max_receives" => out.queue.max_receives = Some(count(name, v)?),
            "dedup_window" => out.queue.dedup_window = Some(seconds(name, v, true)?),
            "result_expires" => out.result_expires = Some(seconds(name, v, false)?),
            _ => {}
        }
    }
    Ok(out)
}

fn parse_redis(raw: &Raw<'_>, tls: bool) -> Result<RedisUrl, UrlError> {
    let (username, password) = raw.credentials()?;
    let (host, port) = raw.host_port(6379)?;
    let db = match raw.path {
        "" | "/" => 0,
        path => path
            .strip_prefix('/')
            .filter(|db| db.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|db| db.parse::<u32>().ok())
            .ok_or_else(|| {
                malformed("invalid Redis database number in the path (expected `/0`, `/1`, ...)")
            })?,
    };
    let mut out = RedisUrl {
        tls,
        username,
        password,
        host,
        port,
        db,
        key_prefix: None,
        ssl_cert_reqs: None,
        queue: QueueOptions::default(),
        result_expires: None,
    };
    let scheme = out.scheme();
    for (name, value) in raw.options(scheme, REDIS_OPTIONS)? {
        let v = value.as_str();
        match name {
            "visibility_timeout" => out.queue.visibility_timeout = Some(seconds(name, v, false)?),
            "max_receives" => out.queue.max_receives = Some(count(name, v)?),
            "dedup_window" => out.queue.dedup_window = Some(seconds(name, v, false)?),
            "key_prefix" => out.key_prefix = Some(value),
            "result_expires" => out.result_expires = Some(seconds(name, v, false)?),
            "ssl_cert_reqs" => {
                if !tls {
                    return Err(invalid(name, v, "only applies to rediss:// URLs"));
                }
                let reqs = match v.to_ascii_lowercase().as_str() {
                    "required" | "cert_required" => SslCertReqs::Required,
                    "optional" | "cert_optional" => SslCertReqs::Optional,
                    "none" | "cert_none" => SslCertReqs::None,
                    _ => {
                        return Err(invalid(
                            name,
                            v,
                            "expected required, optional or none (or CERT_REQUIRED, ...)",
                        ));
                    }
                };
                out.ssl_cert_reqs = Some(reqs);
            }
            _ => {}
        }
    }
    Ok(out)
}

fn parse_amqp(raw: &Raw<'_>, tls: bool) -> Result<AmqpUrl, UrlError> {
    let (username, password) = raw.credentials()?;
    let (host, port) = raw.host_port(if tls { 5671 } else { 5672 })?;
    let vhost = match raw.path.strip_prefix('/') {
        None | Some("") => "/".to_owned(),
        Some(vhost) => decode_component(vhost, "the virtual host")?.unwrap_or_default(),
    };
    let mut out = AmqpUrl {
        tls,
        username,
        password,
        host,
        port,
        vhost,
        prefetch: None,
        heartbeat: None,
        connection_timeout: None,
        queue: QueueOptions::default(),
    };
    let scheme = out.scheme();
    for (name, value) in raw.options(scheme, AMQP_OPTIONS)? {
        let v = value.as_str();
        match name {
            "prefetch" => {
                out.prefetch = Some(whole(
                    name,
                    v,
                    0,
                    "expected a whole number from 0 (no limit) to 65535",
                )?);
            }
            "heartbeat" => {
                let secs: u16 = whole(name, v, 0, "expected whole seconds from 0 (off) to 65535")?;
                out.heartbeat = Some(Duration::from_secs(u64::from(secs)));
            }
            "connection_timeout" => out.connection_timeout = Some(seconds(name, v, false)?),
            "max_receives" => out.queue.max_receives = Some(count(name, v)?),
            _ => {}
        }
    }
    Ok(out)
}

fn parse_sqs(raw: &Raw<'_>) -> Result<SqsUrl, UrlError> {
    if !raw.hostport.is_empty() {
        return Err(malformed(
            "sqs URLs take no host or port (`sqs://` or `sqs://ACCESS_KEY:SECRET_KEY@`); \
             use the `region` or `endpoint_url` option",
        ));
    }
    raw.expect_no_path("sqs")?;
    let (access_key_id, secret_access_key) = raw.credentials()?;
    if access_key_id.is_some() != secret_access_key.is_some() {
        return Err(malformed(
            "an sqs URL needs both the access key and the secret key \
             (`sqs://ACCESS_KEY:SECRET_KEY@`) or neither",
        ));
    }
    let mut out = SqsUrl {
        access_key_id,
        secret_access_key,
        region: None,
        endpoint_url: None,
        wait_time: None,
        queue_name_prefix: None,
        queue: QueueOptions::default(),
    };
    for (name, value) in raw.options("sqs", SQS_OPTIONS)? {
        let v = value.as_str();
        match name {
            "region" => {
                if !v
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                {
                    return Err(invalid(
                        name,
                        v,
                        "expected an AWS region such as `eu-west-1`",
                    ));
                }
                out.region = Some(value);
            }
            "endpoint_url" => {
                check_endpoint_url(v)?;
                out.endpoint_url = Some(value);
            }
            "visibility_timeout" => out.queue.visibility_timeout = Some(seconds(name, v, false)?),
            "wait_time_seconds" => {
                let secs: u64 = whole(name, v, 0, "expected whole seconds from 0 to 20")?;
                if secs > 20 {
                    return Err(invalid(name, v, "expected whole seconds from 0 to 20"));
                }
                out.wait_time = Some(Duration::from_secs(secs));
            }
            "queue_name_prefix" => {
                if !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                {
                    return Err(invalid(
                        name,
                        v,
                        "SQS queue names allow letters, digits, `-` and `_` only",
                    ));
                }
                out.queue_name_prefix = Some(value);
            }
            "max_receives" => out.queue.max_receives = Some(count(name, v)?),
            _ => {}
        }
    }
    Ok(out)
}

fn check_endpoint_url(value: &str) -> Result<(), UrlError> {
    const OPTION: &str = "endpoint_url";
    let Ok(url) = url::Url::parse(value) else {
        return Err(invalid(
            OPTION,
            value,
            "expected an http:// or https:// URL such as `http://localhost:9324`",
        ));
    };
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            OPTION,
            value,
            "expected an http:// or https:// URL with a host",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(OPTION, value, "must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(OPTION, value, "must not have a query or fragment"));
    }
    Ok(())
}

fn parse_kafka(raw: &Raw<'_>) -> Result<KafkaUrl, UrlError> {
    let (username, password) = raw.credentials()?;
    raw.expect_no_path("kafka")?;
    let brokers = if raw.hostport.is_empty() {
        vec![HostPort {
            host: "localhost".to_owned(),
            port: 9092,
        }]
    } else {
        raw.hostport
            .split(',')
            .map(|entry| {
                if entry.is_empty() {
                    return Err(malformed(
                        "empty broker address in the comma-separated list",
                    ));
                }
                parse_host_port(entry, 9092).map(|(host, port)| HostPort { host, port })
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut out = KafkaUrl {
        brokers,
        username,
        password,
        group_id: None,
        session_timeout: None,
        queue: QueueOptions::default(),
    };
    for (name, value) in raw.options("kafka", KAFKA_OPTIONS)? {
        let v = value.as_str();
        match name {
            "group_id" => out.group_id = Some(value),
            "session_timeout_ms" => {
                let ms: u64 = whole(name, v, 1, "expected whole milliseconds, at least 1")?;
                out.session_timeout = Some(Duration::from_millis(ms));
            }
            "visibility_timeout" => out.queue.visibility_timeout = Some(seconds(name, v, false)?),
            "max_receives" => out.queue.max_receives = Some(count(name, v)?),
            _ => {}
        }
    }
    Ok(out)
}

fn parse_postgres(raw: &Raw<'_>) -> Result<PostgresUrl, UrlError> {
    let (username, password) = raw.credentials()?;
    let (host, port) = raw.host_port(5432)?;
    let database = match raw.path.strip_prefix('/') {
        None | Some("") => None,
        Some(db) if db.contains('/') => {
            return Err(malformed(
                "the database name in the path must be one segment (encode `/` as %2F)",
            ));
        }
        Some(db) => decode_component(db, "the database name")?,
    };
    let mut out = PostgresUrl {
        username,
        password,
        host,
        port,
        database,
        schema: None,
        queue: QueueOptions::default(),
        poll_interval: None,
        result_expires: None,
        libpq_options: Vec::new(),
    };
    for (name, value) in raw.options("postgresql", POSTGRES_OPTIONS)? {
        let v = value.as_str();
        match name {
            "schema" => {
                let mut chars = v.chars();
                let valid = v.len() <= 63
                    && chars
                        .next()
                        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                    && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    return Err(invalid(
                        name,
                        v,
                        "expected a lowercase SQL identifier (a-z, digits and `_`, not starting \
                         with a digit, at most 63 characters)",
                    ));
                }
                out.schema = Some(value);
            }
            "visibility_timeout" => out.queue.visibility_timeout = Some(seconds(name, v, false)?),
            "max_receives" => out.queue.max_receives = Some(count(name, v)?),
            "dedup_window" => out.queue.dedup_window = Some(seconds(name, v, false)?),
            "poll_interval" => out.poll_interval = Some(seconds(name, v, false)?),
            "result_expires" => out.result_expires = Some(seconds(name, v, false)?),
            "sslmode" => {
                if !SSLMODES.contains(&v) {
                    return Err(invalid(
                        name,
                        v,
                        format!("expected one of {}", SSLMODES.join(", ")),
                    ));
                }
                out.libpq_options.push((name.to_owned(), value));
            }
            "connect_timeout" => {
                let _: u32 = whole(name, v, 0, "expected whole seconds (0 waits forever)")?;
                out.libpq_options.push((name.to_owned(), value));
            }
            _ => out.libpq_options.push((name.to_owned(), value)),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "S3cr3tPa55";

    fn broker(s: &str) -> BrokerUrl {
        BrokerUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn backend(s: &str) -> ResultBackendUrl {
        ResultBackendUrl::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn broker_err(s: &str) -> UrlError {
        match BrokerUrl::parse(s) {
            Ok(u) => panic!("{s} parsed as {u}"),
            Err(e) => e,
        }
    }

    fn backend_err(s: &str) -> UrlError {
        match ResultBackendUrl::parse(s) {
            Ok(u) => panic!("{s} parsed as {u}"),
            Err(e) => e,
        }
    }

    #[allow(clippy::unnecessary_wraps)]
    fn secs(s: f64) -> Option<Duration> {
        Some(Duration::from_secs_f64(s))
    }

    // --- seed deployment URLs --------------------------------------------------------------

    #[test]
    fn seed_postgresql_broker_url_keeps_credentials_host_port_and_database() {
        let BrokerUrl::Postgres(u) =
            broker("postgresql://administrator:verySecretPassword@database:5432/todo")
        else {
            panic!("not postgres")
        };
        assert_eq!(u.username.as_deref(), Some("administrator"));
        assert_eq!(
            u.password.as_ref().map(Secret::expose),
            Some("verySecretPassword")
        );
        assert_eq!(u.host, "database");
        assert_eq!(u.port, 5432);
        assert_eq!(u.database.as_deref(), Some("todo"));
        assert_eq!(
            u.to_string(),
            "postgresql://administrator:***@database:5432/todo"
        );
    }

    #[test]
    fn seed_redis_url_fills_in_default_db() {
        let url = broker("redis://redis:6379");
        assert_eq!(url.backend_name(), "redis");
        let BrokerUrl::Redis(u) = url else {
            panic!("not redis")
        };
        assert_eq!(
            (u.host.as_str(), u.port, u.db, u.tls),
            ("redis", 6379, 0, false)
        );
        assert_eq!(u.to_string(), "redis://redis:6379/0");
    }

    #[test]
    fn seed_sqs_url_means_default_credentials_and_endpoint() {
        let BrokerUrl::Sqs(u) = broker("sqs://") else {
            panic!("not sqs")
        };
        assert_eq!(u.access_key_id, None);
        assert_eq!(u.secret_access_key, None);
        assert_eq!(u.region, None);
        assert_eq!(u.endpoint_url, None);
        assert_eq!(u.to_string(), "sqs://");
    }

    #[test]
    fn seed_db_postgresql_result_backend_parses_as_postgres() {
        let url = backend("db+postgresql://administrator:verySecretPassword@database:5432/todo");
        assert_eq!(url.backend_name(), "postgres");
        let ResultBackendUrl::Postgres(u) = url else {
            panic!("not postgres")
        };
        assert_eq!(u.database.as_deref(), Some("todo"));
        assert_eq!(
            u.connection_string(),
            "postgres://administrator:verySecretPassword@database:5432/todo"
        );
    }

    #[test]
    fn seed_amqp_url_decodes_percent_2f_vhost_to_slash() {
        let BrokerUrl::Amqp(u) = broker("amqp://guest:guest@127.0.0.1:5672/%2f") else {
            panic!("not amqp")
        };
        assert_eq!(u.username.as_deref(), Some("guest"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("guest"));
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 5672));
        assert_eq!(u.vhost, "/");
        assert_eq!(u.to_string(), "amqp://guest:***@127.0.0.1:5672/%2F");
    }

    #[test]
    fn seed_kafka_url_has_one_broker() {
        let BrokerUrl::Kafka(u) = broker("kafka://127.0.0.1:9092") else {
            panic!("not kafka")
        };
        assert_eq!(
            u.brokers,
            vec![HostPort {
                host: "127.0.0.1".into(),
                port: 9092
            }]
        );
        assert_eq!(u.to_string(), "kafka://127.0.0.1:9092");
    }

    // --- every scheme and its defaults -----------------------------------------------------

    #[test]
    fn memory_defaults_to_the_default_instance() {
        for s in ["memory://", "memory:///", "MEMORY://"] {
            let BrokerUrl::Memory(u) = broker(s) else {
                panic!("not memory")
            };
            assert_eq!(u, MemoryUrl::default());
            assert_eq!(u.name, "default");
        }
        assert_eq!(BrokerUrl::default(), broker("memory://"));
        assert_eq!(ResultBackendUrl::default(), backend("memory://default"));
    }

    #[test]
    fn memory_name_and_options_are_parsed() {
        let BrokerUrl::Memory(u) = broker(
            "memory://tests-1?visibility_timeout=1.5&max_receives=3&dedup_window=300&result_expires=60",
        ) else {
            panic!("not memory")
        };
        assert_eq!(u.name, "tests-1");
        assert_eq!(u.queue.visibility_timeout, secs(1.5));
        assert_eq!(u.queue.max_receives, Some(3));
        assert_eq!(u.queue.dedup_window, secs(300.0));
        assert_eq!(u.result_expires, secs(60.0));
        let ResultBackendUrl::Memory(r) = backend("memory://tests-1") else {
            panic!("not memory")
        };
        assert_eq!(r.name, "tests-1");
    }

    #[test]
    fn redis_defaults_to_localhost_6379_db_0() {
        for s in [
            "redis://",
            "redis://localhost",
            "redis://:6379/",
            "redis://localhost:/0",
        ] {
            let BrokerUrl::Redis(u) = broker(s) else {
                panic!("not redis")
            };
            assert_eq!(
                (u.host.as_str(), u.port, u.db),
                ("localhost", 6379, 0),
                "{s}"
            );
            assert_eq!(u.username, None);
            assert_eq!(u.password, None);
        }
    }

    #[test]
    fn redis_credentials_db_and_options_are_parsed() {
        let BrokerUrl::Redis(u) = broker(
            "redis://alice:p%40ss@Cache.Example.com:6380/3?visibility_timeout=3600&max_receives=5&key_prefix=app%3A&result_expires=86400",
        ) else {
            panic!("not redis")
        };
        assert_eq!(u.username.as_deref(), Some("alice"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert_eq!(
            (u.host.as_str(), u.port, u.db),
            ("cache.example.com", 6380, 3)
        );
        assert_eq!(u.queue.visibility_timeout, secs(3600.0));
        assert_eq!(u.queue.max_receives, Some(5));
        assert_eq!(u.key_prefix.as_deref(), Some("app:"));
        assert_eq!(u.result_expires, secs(86400.0));
        assert_eq!(
            u.connection_string(),
            "redis://alice:p%40ss@cache.example.com:6380/3"
        );

        let BrokerUrl::Redis(u) = broker("redis://:only-password@h") else {
            panic!("not redis")
        };
        assert_eq!(u.username, None);
        assert_eq!(
            u.password.as_ref().map(Secret::expose),
            Some("only-password")
        );
        assert_eq!(u.to_string(), "redis://:***@h:6379/0");
    }

    #[test]
    fn rediss_sets_tls_and_accepts_ssl_cert_reqs() {
        let url = broker("rediss://h:6380?ssl_cert_reqs=CERT_REQUIRED");
        assert_eq!(url.scheme(), "rediss");
        assert_eq!(url.backend_name(), "redis");
        let BrokerUrl::Redis(u) = url else {
            panic!("not redis")
        };
        assert!(u.tls);
        assert_eq!(u.ssl_cert_reqs, Some(SslCertReqs::Required));
        assert_eq!(u.to_string(), "rediss://h:6380/0?ssl_cert_reqs=required");
        assert!(matches!(
            broker_err("redis://h?ssl_cert_reqs=required"),
            UrlError::InvalidOption {
                option: "ssl_cert_reqs",
                ..
            }
        ));
        let ResultBackendUrl::Redis(r) = backend("rediss://h/1?result_expires=10") else {
            panic!("not redis")
        };
        assert!(r.tls);
        assert_eq!(r.db, 1);
    }

    #[test]
    fn amqp_defaults_and_vhost_forms() {
        let BrokerUrl::Amqp(u) = broker("amqp://") else {
            panic!("not amqp")
        };
        assert_eq!(
            (u.host.as_str(), u.port, u.vhost.as_str()),
            ("localhost", 5672, "/")
        );
        assert_eq!((u.username.as_ref(), u.password.as_ref()), (None, None));
        assert!(!u.tls);
        for (s, vhost) in [
            ("amqp://h", "/"),
            ("amqp://h/", "/"),
            ("amqp://h//", "/"),
            ("amqp://h/%2F", "/"),
            ("amqp://h/prod", "prod"),
            ("amqp://h/a%2Fb", "a/b"),
        ] {
            let BrokerUrl::Amqp(u) = broker(s) else {
                panic!("not amqp")
            };
            assert_eq!(u.vhost, vhost, "{s}");
        }
        let BrokerUrl::Amqp(u) =
            broker("amqp://guest@h?prefetch=10&heartbeat=60&connection_timeout=2.5&max_receives=4")
        else {
            panic!("not amqp")
        };
        assert_eq!(u.username.as_deref(), Some("guest"));
        assert_eq!(u.password, None);
        assert_eq!(u.prefetch, Some(10));
        assert_eq!(u.heartbeat, secs(60.0));
        assert_eq!(u.connection_timeout, secs(2.5));
        assert_eq!(u.queue.max_receives, Some(4));
    }

    #[test]
    fn amqps_defaults_to_port_5671() {
        let url = broker("amqps://rabbit.internal/");
        assert_eq!(url.scheme(), "amqps");
        let BrokerUrl::Amqp(u) = url else {
            panic!("not amqp")
        };
        assert!(u.tls);
        assert_eq!(u.port, 5671);
        assert_eq!(u.connection_string(), "amqps://rabbit.internal:5671/%2F");
    }

    #[test]
    fn sqs_keys_are_percent_decoded_and_options_parsed() {
        let BrokerUrl::Sqs(u) = broker(
            "sqs://AKIAEXAMPLE:abc%2Fdef%2Bghi@?region=eu-west-1&endpoint_url=http://localhost:9324&visibility_timeout=30&wait_time_seconds=20&queue_name_prefix=dev-&max_receives=5",
        ) else {
            panic!("not sqs")
        };
        assert_eq!(u.access_key_id.as_deref(), Some("AKIAEXAMPLE"));
        assert_eq!(
            u.secret_access_key.as_ref().map(Secret::expose),
            Some("abc/def+ghi")
        );
        assert_eq!(u.region.as_deref(), Some("eu-west-1"));
        assert_eq!(u.endpoint_url.as_deref(), Some("http://localhost:9324"));
        assert_eq!(u.queue.visibility_timeout, secs(30.0));
        assert_eq!(u.wait_time, secs(20.0));
        assert_eq!(u.queue_name_prefix.as_deref(), Some("dev-"));
        assert_eq!(u.queue.max_receives, Some(5));
        assert!(!u.to_string().contains("abc"));
        assert!(
            u.to_string()
                .starts_with("sqs://AKIAEXAMPLE:***@?region=eu-west-1")
        );
        assert_eq!(broker("sqs://@"), broker("sqs://"));
    }

    #[test]
    fn sqs_rejects_hosts_half_credentials_and_bad_options() {
        for s in [
            "sqs://localhost:9324",
            "sqs://AKIA@",
            "sqs://:secret@",
            "sqs:///queue",
        ] {
            assert!(matches!(broker_err(s), UrlError::Malformed { .. }), "{s}");
        }
        for s in [
            "sqs://?wait_time_seconds=21",
            "sqs://?endpoint_url=ftp://x",
            "sqs://?endpoint_url=localhost:9324",
            "sqs://?region=EU%20WEST",
            "sqs://?queue_name_prefix=a.b",
        ] {
            assert!(
                matches!(broker_err(s), UrlError::InvalidOption { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn kafka_takes_several_brokers_with_default_port() {
        let BrokerUrl::Kafka(u) = broker(
            "kafka://k1:9093,K2,[::1]:9094?group_id=workers&session_timeout_ms=45000&visibility_timeout=60&max_receives=3",
        ) else {
            panic!("not kafka")
        };
        let brokers: Vec<(&str, u16)> = u
            .brokers
            .iter()
            .map(|b| (b.host.as_str(), b.port))
            .collect();
        assert_eq!(brokers, [("k1", 9093), ("k2", 9092), ("::1", 9094)]);
        assert_eq!(u.bootstrap_servers(), "k1:9093,k2:9092,[::1]:9094");
        assert_eq!(u.group_id.as_deref(), Some("workers"));
        assert_eq!(u.session_timeout, Some(Duration::from_secs(45)));
        assert_eq!(u.queue.visibility_timeout, secs(60.0));
        assert_eq!(u.queue.max_receives, Some(3));

        let BrokerUrl::Kafka(u) = broker("kafka://") else {
            panic!("not kafka")
        };
        assert_eq!(u.bootstrap_servers(), "localhost:9092");
        assert!(matches!(
            broker_err("kafka://a:1,,b:2"),
            UrlError::Malformed { .. }
        ));
        assert!(matches!(
            broker_err("kafka://a:1,b:x"),
            UrlError::Malformed { .. }
        ));
    }

    #[test]
    fn kafka_carries_sasl_credentials() {
        let BrokerUrl::Kafka(u) = broker("kafka://svc:pa%3Ass@k1:9092,k2:9092") else {
            panic!("not kafka")
        };
        assert_eq!(u.username.as_deref(), Some("svc"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("pa:ss"));
        assert_eq!(u.brokers.len(), 2);
        assert_eq!(u.to_string(), "kafka://svc:***@k1:9092,k2:9092");
    }

    #[test]
    fn postgres_defaults_to_localhost_5432_without_database() {
        for s in [
            "postgres://",
            "postgresql://localhost",
            "postgresql://localhost:5432/",
        ] {
            let BrokerUrl::Postgres(u) = broker(s) else {
                panic!("not postgres")
            };
            assert_eq!((u.host.as_str(), u.port), ("localhost", 5432), "{s}");
            assert_eq!(u.database, None);
            assert_eq!(u.username, None);
        }
        assert_eq!(broker("postgres://h/db").scheme(), "postgresql");
    }

    #[test]
    fn postgres_options_and_libpq_pass_through() {
        let BrokerUrl::Postgres(u) = broker(
            "postgresql://u:p@h/db?schema=broker&visibility_timeout=30&max_receives=5&poll_interval=0.25&result_expires=3600&sslmode=verify-full&application_name=task%20worker&connect_timeout=10&options=-c%20statement_timeout%3D5000",
        ) else {
            panic!("not postgres")
        };
        assert_eq!(u.schema.as_deref(), Some("broker"));
        assert_eq!(u.queue.visibility_timeout, secs(30.0));
        assert_eq!(u.queue.max_receives, Some(5));
        assert_eq!(u.poll_interval, secs(0.25));
        assert_eq!(u.result_expires, secs(3600.0));
        let libpq: Vec<(&str, &str)> = u
            .libpq_options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            libpq,
            [
                ("sslmode", "verify-full"),
                ("application_name", "task worker"),
                ("connect_timeout", "10"),
                ("options", "-c statement_timeout=5000"),
            ]
        );
    }

    #[test]
    fn connection_string_has_real_password_and_only_libpq_options() {
        let BrokerUrl::Postgres(u) = broker(
            "postgresql://app:p%2Fw%20d@[::1]:6543/my%20db?schema=q&sslmode=require&poll_interval=1",
        ) else {
            panic!("not postgres")
        };
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("p/w d"));
        assert_eq!(u.database.as_deref(), Some("my db"));
        assert_eq!(
            u.connection_string(),
            "postgres://app:p%2Fw%20d@[::1]:6543/my%20db?sslmode=require"
        );
        assert_eq!(
            u.to_string(),
            "postgresql://app:***@[::1]:6543/my%20db?schema=q&poll_interval=1&sslmode=require"
        );
    }

    #[test]
    fn result_backend_accepts_db_and_driver_scheme_forms() {
        for s in [
            "db+postgresql://u:p@h/db",
            "db+postgres://u:p@h/db",
            "postgres://u:p@h/db",
            "postgresql://u:p@h/db",
            "postgresql+psycopg2://u:p@h/db",
            "postgresql+psycopg://u:p@h/db",
            "db+postgresql+psycopg2://u:p@h/db",
            "postgres+asyncpg://u:p@h/db",
        ] {
            let url = backend(s);
            assert_eq!(url.backend_name(), "postgres", "{s}");
            assert_eq!(url.scheme(), "postgresql", "{s}");
            assert_eq!(url.to_string(), "postgresql://u:***@h:5432/db", "{s}");
        }
        for s in [
            "postgresql+://h",
            "db+://h",
            "db+postgresqlx://h",
            "postgresql+a-b://h",
        ] {
            assert!(
                matches!(backend_err(s), UrlError::UnknownScheme { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn ipv6_hosts_are_stored_without_brackets_and_printed_with_them() {
        let BrokerUrl::Redis(u) = broker("redis://[::1]:7000/2") else {
            panic!("not redis")
        };
        assert_eq!((u.host.as_str(), u.port, u.db), ("::1", 7000, 2));
        assert_eq!(u.to_string(), "redis://[::1]:7000/2");
        assert!(matches!(
            broker_err("redis://[::1"),
            UrlError::Malformed { .. }
        ));
        assert!(matches!(
            broker_err("redis://[::1]x"),
            UrlError::Malformed { .. }
        ));
        assert!(matches!(
            broker_err("redis://::1"),
            UrlError::Malformed { .. }
        ));
    }

    #[test]
    fn scheme_and_backend_name_for_every_broker_scheme() {
        for (s, scheme, backend_name) in [
            ("memory://", "memory", "memory"),
            ("redis://", "redis", "redis"),
            ("rediss://", "rediss", "redis"),
            ("amqp://", "amqp", "amqp"),
            ("amqps://", "amqps", "amqp"),
            ("sqs://", "sqs", "sqs"),
            ("kafka://", "kafka", "kafka"),
            ("postgres://", "postgresql", "postgres"),
            ("postgresql://", "postgresql", "postgres"),
        ] {
            let url = broker(s);
            assert_eq!(
                (url.scheme(), url.backend_name()),
                (scheme, backend_name),
                "{s}"
            );
            assert!(BROKER_SCHEMES.contains(&s.trim_end_matches("://")));
        }
        for s in RESULT_BACKEND_SCHEMES {
            backend(&format!("{s}://"));
        }
    }

    #[test]
    fn durations_accept_exact_fractions_and_reject_junk() {
        let BrokerUrl::Memory(u) = broker("memory://?visibility_timeout=.5&dedup_window=0") else {
            panic!("not memory")
        };
        assert_eq!(u.queue.visibility_timeout, Some(Duration::from_millis(500)));
        assert_eq!(u.queue.dedup_window, Some(Duration::ZERO));
        let BrokerUrl::Memory(u) = broker("memory://?visibility_timeout=0.000000001") else {
            panic!("not memory")
        };
        assert_eq!(u.queue.visibility_timeout, Some(Duration::from_nanos(1)));
        assert_eq!(
            u.to_string(),
            "memory://default?visibility_timeout=0.000000001"
        );
        for v in [
            "-1",
            "abc",
            "1e3",
            "inf",
            "NaN",
            ".",
            "1.2.3",
            "0",
            "0.0",
            "1.0000000001",
            "99999999999999999999",
            "+5",
            "5s",
        ] {
            let s = format!("memory://?visibility_timeout={v}");
            assert!(
                matches!(
                    broker_err(&s),
                    UrlError::InvalidOption {
                        option: "visibility_timeout",
                        ..
                    }
                ),
                "{v}"
            );
        }
    }

    #[test]
    fn display_is_canonical_and_parses_back_to_the_same_value() {
        for s in [
            "memory://",
            "memory://x?visibility_timeout=2&max_receives=1&dedup_window=0.5&result_expires=9",
            "redis://redis:6379",
            "rediss://user@h:1/15?key_prefix=a%26b%3Dc%2Bd&ssl_cert_reqs=none&result_expires=1",
            "amqp://guest@127.0.0.1:5672/%2f?prefetch=0&heartbeat=0&connection_timeout=3",
            "amqps://h/v%20host?max_receives=9",
            "sqs://?region=us-east-1&endpoint_url=https://sqs.local:4566/x&wait_time_seconds=0",
            "kafka://a,b:1?group_id=g%20h&session_timeout_ms=1500",
            "postgresql://u@h/d?options=-c%20x%3Dy&sslmode=disable&schema=s_1",
        ] {
            let first = broker(s);
            let printed = first.to_string();
            let again = broker(&printed);
            assert_eq!(first, again, "{s} -> {printed}");
            assert_eq!(again.to_string(), printed);
            assert_eq!(format!("{first:?}"), format!("BrokerUrl({printed})"));
        }
        let with_password = broker("redis://u:pw@h");
        let reparsed = broker(&with_password.to_string());
        let BrokerUrl::Redis(r) = reparsed else {
            panic!("not redis")
        };
        assert_eq!(r.password.as_ref().map(Secret::expose), Some("***"));
    }

    // --- errors ----------------------------------------------------------------------------

    #[test]
    fn unknown_scheme_lists_known_schemes() {
        let e = broker_err("foo://bar");
        assert!(matches!(
            e,
            UrlError::UnknownScheme {
                kind: UrlKind::Broker,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "unknown broker scheme `foo`; known schemes: memory, redis, rediss, amqp, amqps, \
             sqs, kafka, postgres, postgresql"
        );
        let e = backend_err("mongodb://h");
        assert_eq!(
            e.to_string(),
            "unknown result backend scheme `mongodb`; known schemes: memory, redis, rediss, \
             db+postgresql, db+postgres, postgres, postgresql"
        );
    }

    #[test]
    fn broker_only_scheme_is_rejected_as_result_backend_and_vice_versa() {
        for s in ["amqp://h", "amqps://h", "sqs://", "kafka://h"] {
            let e = backend_err(s);
            assert!(
                matches!(
                    e,
                    UrlError::WrongKind {
                        kind: UrlKind::ResultBackend,
                        ..
                    }
                ),
                "{s}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains("is a broker scheme, not a result backend scheme"),
                "{msg}"
            );
            assert!(msg.contains("db+postgresql"), "{msg}");
        }
        for s in [
            "db+postgresql://h/d",
            "db+postgres://h",
            "postgresql+psycopg2://h",
        ] {
            let e = broker_err(s);
            assert!(
                matches!(
                    e,
                    UrlError::WrongKind {
                        kind: UrlKind::Broker,
                        ..
                    }
                ),
                "{s}"
            );
            assert!(
                e.to_string()
                    .contains("is a result backend scheme, not a broker scheme")
            );
        }
    }

    #[test]
    fn unknown_option_names_it_and_lists_the_known_ones() {
        let e = broker_err("redis://h?visibilty_timeout=3");
        assert_eq!(
            e.to_string(),
            "unknown option `visibilty_timeout` for redis URLs; known options: \
             visibility_timeout, max_receives, dedup_window, key_prefix, result_expires, ssl_cert_reqs"
        );
        let e = broker_err("amqp://h?dedup_window=3");
        assert!(matches!(e, UrlError::UnknownOption { scheme: "amqp", .. }));
        assert!(
            e.to_string()
                .contains("prefetch, heartbeat, connection_timeout, max_receives")
        );
    }

    #[test]
    fn invalid_option_value_names_option_value_and_reason() {
        let e = broker_err("redis://h?max_receives=0");
        assert_eq!(
            e.to_string(),
            "invalid value `0` for option `max_receives`: expected a whole number from 1 to \
             4294967295"
        );
        for (s, option) in [
            ("amqp://h?prefetch=70000", "prefetch"),
            ("amqp://h?heartbeat=1.5", "heartbeat"),
            ("kafka://h?session_timeout_ms=0", "session_timeout_ms"),
            ("kafka://h?group_id=", "group_id"),
            ("postgresql://h?sslmode=sometimes", "sslmode"),
            ("postgresql://h?schema=Robert%27);DROP", "schema"),
            ("postgresql://h?connect_timeout=-1", "connect_timeout"),
            ("memory://?max_receives=4294967296", "max_receives"),
        ] {
            let e = broker_err(s);
            assert!(
                matches!(&e, UrlError::InvalidOption { option: o, .. } if *o == option),
                "{s}: {e}"
            );
        }
        let long = "9".repeat(500);
        let msg = broker_err(&format!("redis://h?visibility_timeout=x{long}")).to_string();
        assert!(msg.len() < 250, "{msg}");
    }

    #[test]
    fn duplicated_option_is_rejected() {
        let e = broker_err("memory://?max_receives=1&max_receives=1");
        assert!(matches!(
            e,
            UrlError::DuplicateOption {
                option: "max_receives"
            }
        ));
        assert_eq!(
            e.to_string(),
            "option `max_receives` is given more than once"
        );
    }

    #[test]
    fn malformed_urls_give_a_reason() {
        for (s, reason) in [
            ("", "empty"),
            ("redis", "missing scheme"),
            ("redis:/h", "missing scheme"),
            ("://h", "missing scheme"),
            ("1redis://h", "invalid scheme"),
            ("re dis://h", "whitespace"),
            ("redis://h:notaport", "invalid port"),
            ("redis://h:0", "invalid port"),
            ("redis://h:65536", "invalid port"),
            ("redis://h:+1", "invalid port"),
            ("redis://h/x", "database number"),
            ("redis://h/1/2", "database number"),
            ("redis://exa<mple", "invalid host"),
            ("redis://h#frag", "fragments"),
            ("redis://u:p/q@h", "`@` after the host"),
            ("redis://u:%FF@h", "not valid UTF-8"),
            ("memory://u@x", "no user name"),
            ("memory://x:1", "no port"),
            ("memory://a*b", "instance name"),
            ("memory://x/y", "no path"),
            ("kafka://h/topic", "no path"),
            ("postgresql://h/a/b", "one segment"),
        ] {
            let e = broker_err(s);
            assert!(
                matches!(
                    e,
                    UrlError::Malformed {
                        kind: UrlKind::Broker,
                        ..
                    }
                ),
                "{s}: {e}"
            );
            let msg = e.to_string();
            assert!(msg.starts_with("malformed broker URL: "), "{msg}");
            assert!(msg.contains(reason), "{s}: {msg}");
        }
        let e = backend_err("redis://h:x");
        assert!(
            e.to_string()
                .starts_with("malformed result backend URL: invalid port")
        );
    }

    // --- secrets ---------------------------------------------------------------------------

    #[test]
    fn secret_prints_stars_and_exposes_on_request() {
        let s = Secret::new(PW);
        assert_eq!(s.to_string(), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
        assert_eq!(s.expose(), PW);
    }

    #[test]
    fn password_never_appears_in_display_debug_or_errors() {
        let encoded = "S3cr%33tPa55"; // decodes to PW
        let inputs = [
            format!("redis://:{PW}@host:notaport"),
            format!("redis://:{encoded}@host:notaport"),
            format!("redis://:{PW}@host:99999"),
            format!("redis://user:{PW}@[::1"),
            format!("redis://user:{PW}@exa<mple"),
            format!("redis://user:{PW}@host/notadb"),
            format!("redis://user:{PW}@host?visibility_timeout=abc"),
            format!("redis://user:{PW}@host?visibility_timeout={PW}"),
            format!("redis://user:{encoded}@host?visibility_timeout={PW}"),
            format!("redis://user:{PW}@host?visibility_timeout=x{PW}x"),
            format!("redis://user:{PW}@host?bogus=1"),
            format!("redis://user:{PW}@host?{PW}=1"),
            format!("redis://user:{PW}@host?max_receives=1&max_receives=2"),
            format!("redis://user:{PW}@host#frag"),
            format!("redis://user:{PW}/x@host"),
            format!("redis://user:{PW}?x@host"),
            format!("redis://user:{PW}#x@host"),
            format!("redis://user:{PW}"),
            format!("redis://user:{PW}@"),
            format!("redis://user:{PW}@host"),
            format!("redis://user:%FF{PW}@host"),
            format!("redis://:{PW}@h?ssl_cert_reqs=required"),
            format!("rediss://:{PW}@h?ssl_cert_reqs={PW}"),
            format!("redis://:{PW}@h?key_prefix=redis://u:{PW}@x"),
            format!("redis:{PW}"),
            format!("redis:/:{PW}@h"),
            PW.to_string(),
            format!(":{PW}@redis://h"),
            format!(" redis://:{PW}@h :1"),
            format!("redis://:{PW}@h\n"),
            format!("foo://user:{PW}@host"),
            format!("db+postgresql://user:{PW}@host/db"),
            format!("amqp://user:{PW}@host"),
            format!("amqp://user:{PW}@host/%FF"),
            format!("amqp://user:{PW}@host?prefetch={PW}"),
            format!("sqs://AKIA:{PW}@"),
            format!("sqs://AKIA:{PW}@somehost"),
            format!("sqs://AKIA:{PW}@?endpoint_url=ftp://x"),
            format!("sqs://AKIA:{PW}@?endpoint_url=http://u:{PW}@x"),
            format!("sqs://AKIA:{PW}@?region={PW}"),
            format!("sqs://:{PW}@"),
            format!("kafka://u:{PW}@h1:9092,,h2"),
            format!("kafka://u:{PW}@h1:abc"),
            format!("kafka://u:{PW}@h1,h2?group_id=g"),
            format!("postgresql://u:{PW}@h/db"),
            format!("postgresql://u:{PW}@h/db/extra"),
            format!("postgresql://u:{PW}@h/db?sslmode={PW}"),
            format!("postgresql://u:{PW}@h/db?schema=bad-name"),
            format!("postgresql://u:{PW}@h/db?connect_timeout={PW}"),
            format!("postgresql+psycopg2://u:{PW}@h/db"),
            format!("memory://u:{PW}@x"),
        ];
        for input in &inputs {
            let mut outputs = Vec::new();
            match BrokerUrl::parse(input) {
                Ok(u) => outputs.extend([u.to_string(), format!("{u:?}")]),
                Err(e) => outputs.extend([e.to_string(), format!("{e:?}")]),
            }
            match ResultBackendUrl::parse(input) {
                Ok(u) => outputs.extend([u.to_string(), format!("{u:?}")]),
                Err(e) => outputs.extend([e.to_string(), format!("{e:?}")]),
            }
            for out in outputs {
                assert!(!out.contains(PW), "{input:?} leaked: {out}");
                assert!(!out.contains(encoded), "{input:?} leaked: {out}");
            }
        }
    }

    #[test]
    fn redact_replaces_passwords_in_arbitrary_text() {
        let text = format!(
            "connect to redis://:{PW}@h:6379/0 failed; retry \"postgresql://app:{PW}@db/x\" \
             and amqp://guest@h and kafka://u:p%40{PW}@k1,k2 and http://example.com/a:b@c"
        );
        let clean = redact(&text);
        assert!(!clean.contains(PW), "{clean}");
        assert_eq!(
            clean,
            "connect to redis://:***@h:6379/0 failed; retry \"postgresql://app:***@db/x\" \
             and amqp://guest@h and kafka://u:***@k1,k2 and http://example.com/a:b@c"
        );
        assert_eq!(redact(&clean), clean);
        assert_eq!(redact("no urls here"), "no urls here");
        assert_eq!(redact("x://u:@h"), "x://u:@h");
        assert_eq!(redact("trailing ://"), "trailing ://");
        assert_eq!(redact("sqs://AKIA:a:b@c@"), "sqs://AKIA:***@");
    }

    #[test]
    fn parsing_never_panics_on_arbitrary_input() {
        const PIECES: &[&str] = &[
            "redis",
            "rediss",
            "amqp",
            "sqs",
            "kafka",
            "memory",
            "postgresql",
            "db+",
            "+x",
            "://",
            ":",
            "@",
            "/",
            "//",
            "?",
            "&",
            "=",
            "#",
            "%",
            "%2f",
            "%FF",
            "%",
            "[",
            "]",
            "::1",
            "h",
            "6379",
            "99999",
            ",",
            "é",
            "🦀",
            " ",
            "\n",
            "0",
            ".",
            "1.5",
            "visibility_timeout",
            "max_receives",
            "region",
            "endpoint_url",
            "http://x",
            "sslmode",
            "schema",
            "ssl_cert_reqs",
            "group_id",
            "prefetch",
            "wait_time_seconds",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = next() % 12;
            let mut s = String::new();
            for _ in 0..len {
                let index = usize::try_from(next() % PIECES.len() as u64).unwrap_or(0);
                s.push_str(PIECES[index]);
            }
            if let Ok(u) = BrokerUrl::parse(&s) {
                let _ = BrokerUrl::parse(&u.to_string());
            }
            if let Ok(u) = ResultBackendUrl::parse(&s) {
                let _ = ResultBackendUrl::parse(&u.to_string());
            }
            let _ = redact(&s);
        }
    }
}
