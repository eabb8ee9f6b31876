//! `memory://` URLs, read into a [`MemoryConfig`].
//!
//! `memory://` or `memory://NAME` (letters, digits, `.`, `_` and `-`; `default` when none):
//! every broker and result store opened under one name in one process shares its queues and
//! records. Options:
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `visibility_timeout` | seconds a delivery stays leased | 30 |
//! | `max_receives` | receives after which a message is dead-lettered | 5 |
//! | `dedup_window` | seconds a deduplication id is remembered; 0 turns deduplication off | 300 |
//! | `result_expires` | seconds a task result is kept | 86400 |

use broker_core::urls::{UrlError, UrlParts};

use crate::MemoryConfig;

/// The scheme the memory backend answers, as a broker and as a result backend.
pub const SCHEMES: &[&str] = &["memory"];

/// The options a memory URL may carry.
pub const OPTIONS: &[&str] = &[
    "visibility_timeout",
    "max_receives",
    "dedup_window",
    "result_expires",
];

impl MemoryConfig {
    /// The settings a `memory://` URL asks for; what it does not say stays at its default.
    ///
    /// # Errors
    /// [`UrlError`] for another scheme, a malformed URL, an unknown option or an unusable
    /// value.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let parts = UrlParts::parse(url)?;
        if parts.scheme() != "memory" {
            return Err(UrlError::malformed(format!(
                "`{}://` is not a memory URL; use memory://",
                parts.scheme()
            )));
        }
        parts.expect_no_credentials()?;
        parts.expect_no_path()?;
        let name = match parts.raw_host() {
            "" => "default",
            name if name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) =>
            {
                name
            }
            _ => {
                return Err(UrlError::malformed(
                    "invalid memory instance name (letters, digits, `.`, `_` and `-`; no port)",
                ));
            }
        };
        let options = parts.options(OPTIONS)?;
        let defaults = Self::default();
        let config = Self {
            name: Some(name.to_owned()),
            visibility_timeout: options
                .seconds("visibility_timeout")?
                .unwrap_or(defaults.visibility_timeout),
            max_receives: options
                .count("max_receives")?
                .unwrap_or(defaults.max_receives),
            dedup_window: options
                .seconds_or_zero("dedup_window")?
                .unwrap_or(defaults.dedup_window),
            result_expires: options
                .seconds("result_expires")?
                .unwrap_or(defaults.result_expires),
        };
        options.finish()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn every_option_reaches_the_settings() {
        let config = MemoryConfig::from_url(
            "memory://app-1?visibility_timeout=7&max_receives=2&dedup_window=0&result_expires=60",
        )
        .unwrap();
        assert_eq!(
            config,
            MemoryConfig {
                name: Some("app-1".into()),
                visibility_timeout: Duration::from_secs(7),
                max_receives: 2,
                dedup_window: Duration::ZERO,
                result_expires: Duration::from_secs(60),
            }
        );
    }

    #[test]
    fn a_bare_url_is_the_default_instance_with_default_settings() {
        assert_eq!(
            MemoryConfig::from_url("memory://").unwrap(),
            MemoryConfig {
                name: Some("default".into()),
                ..MemoryConfig::default()
            }
        );
    }

    #[test]
    fn unusable_urls_are_rejected_with_the_reason() {
        for (url, expected) in [
            ("memory://a:1", "instance name"),
            ("memory://u:p@a", "no user name or password"),
            ("memory://a/b", "take no path"),
            ("memory://a?max_receives=0", "from 1 to"),
            ("memory://a?bogus=1", "known options: visibility_timeout"),
            ("redis://a", "not a memory URL"),
        ] {
            let err = MemoryConfig::from_url(url).expect_err(url);
            assert!(err.to_string().contains(expected), "{url}: {err}");
        }
    }
}
