//! Why a URL was rejected.

use std::fmt;

use super::redact::{MASK, is_secret_option, redact};

/// How much of a user-supplied value an error message repeats.
const MAX_ECHO_CHARS: usize = 64;

/// Which of the two environment URLs is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlKind {
    /// `CELERY_BROKER_URL`: where tasks are queued.
    Broker,
    /// `CELERY_RESULT_BACKEND`: where task states and results are kept.
    ResultBackend,
}

impl UrlKind {
    /// The environment variable that conventionally holds this kind of URL.
    #[must_use]
    pub fn env_var(self) -> &'static str {
        match self {
            Self::Broker => "CELERY_BROKER_URL",
            Self::ResultBackend => "CELERY_RESULT_BACKEND",
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
/// Messages say what is wrong and, where useful, what is accepted. They never contain a
/// password or the value of a secret option, not even when the URL is malformed; other values
/// they repeat are redacted and shortened to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The text is not a usable URL (no scheme, bad port, bad host, a path where none belongs).
    #[error("malformed URL: {reason}")]
    Malformed {
        /// What is wrong, for example `missing scheme`.
        reason: String,
    },
    /// No backend this program was built with answers the scheme.
    #[error("unknown {kind} scheme `{scheme}`; known {kind} schemes: {known_list}", known_list = .known.join(", "))]
    UnknownScheme {
        /// Which URL was being opened.
        kind: UrlKind,
        /// The scheme as given, lowercased.
        scheme: String,
        /// The schemes this kind of URL accepts in this program.
        known: Vec<&'static str>,
    },
    /// The scheme is answered for the other kind of URL only (`amqp://` as a result backend).
    #[error("`{scheme}://` is not a {kind} URL: the {backend} backend keeps no {role}; known {kind} schemes: {known_list}",
        role = match .kind { UrlKind::Broker => "queues", UrlKind::ResultBackend => "task results" },
        known_list = .known.join(", "))]
    WrongKind {
        /// Which URL was being opened.
        kind: UrlKind,
        /// The scheme as given, lowercased.
        scheme: String,
        /// The backend that answers the scheme for the other kind.
        backend: &'static str,
        /// The schemes this kind of URL accepts in this program.
        known: Vec<&'static str>,
    },
    /// A query option the scheme does not know.
    #[error("unknown option `{option}` for {scheme}:// URLs; known options: {known_list}", known_list = .known.join(", "))]
    UnknownOption {
        /// The scheme.
        scheme: String,
        /// The option as given.
        option: String,
        /// The options the scheme knows.
        known: &'static [&'static str],
    },
    /// A known option with a value that cannot be used.
    #[error("invalid value `{value}` for option `{option}`: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// The value as given (`***` for a secret option), redacted and shortened.
        value: String,
        /// Why it cannot be used and what is expected.
        reason: String,
    },
    /// The same option appears more than once.
    #[error("option `{option}` is given more than once")]
    DuplicateOption {
        /// The option.
        option: String,
    },
}

impl UrlError {
    /// A malformed-URL error.
    pub fn malformed(reason: impl Into<String>) -> Self {
        Self::Malformed {
            reason: reason.into(),
        }
    }

    /// An unusable value of `option`. The value is echoed redacted and shortened, or as `***`
    /// when the option holds a secret.
    pub fn invalid(option: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self::InvalidOption {
            option,
            value: if is_secret_option(option) {
                MASK.to_owned()
            } else {
                echo(value)
            },
            reason: reason.into(),
        }
    }
}

/// `text` redacted and cut to [`MAX_ECHO_CHARS`].
pub(super) fn echo(text: &str) -> String {
    let mut clean = redact(text);
    if let Some((cut, _)) = clean.char_indices().nth(MAX_ECHO_CHARS) {
        clean.truncate(cut);
        clean.push('…');
    }
    clean
}

impl From<UrlError> for crate::Error {
    fn from(err: UrlError) -> Self {
        Self::configuration(crate::Operation::ParseUrl, err.to_string())
    }
}
