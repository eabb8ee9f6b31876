//! `redis://` and `rediss://` URLs, read into a [`RedisConfig`].
//!
//! `redis[s]://[user][:password]@host[:port][/db][?options]`, as Celery and kombu write them:
//! port 6379 and database 0 by default. Options:
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `visibility_timeout` | seconds a delivery stays leased (at least 0.01) | 3600 |
//! | `max_receives` | receives after which a message is dead-lettered | 5 |
//! | `dedup_window` | seconds a deduplication id is remembered | 300 |
//! | `key_prefix` (or kombu's `global_keyprefix`) | put in front of every key and channel | none (Celery's layout) |
//! | `result_expires` | seconds a task result is kept; 0 keeps it until forgotten | 86400 |
//! | `response_timeout` | seconds one command may take before a retryable timeout | 10 |
//! | `ssl_cert_reqs` | `rediss://` only: `required` (or `optional`, the same for a client) verifies the server's certificate; `none` does not. Celery's `CERT_*` spellings work too | `required` |

use std::time::Duration;

use broker_core::urls::{HostPort, UrlError, UrlParts, encode};

use crate::RedisConfig;

/// The schemes the Redis backend answers, as a broker and as a result backend.
pub const SCHEMES: &[&str] = &["redis", "rediss"];

/// The options a Redis URL may carry.
pub const OPTIONS: &[&str] = &[
    "visibility_timeout",
    "max_receives",
    "dedup_window",
    "key_prefix",
    "global_keyprefix",
    "result_expires",
    "response_timeout",
    "ssl_cert_reqs",
];

/// The shortest lease the broker accepts.
const MIN_LEASE: Duration = Duration::from_millis(10);

impl RedisConfig {
    /// The settings a `redis://` or `rediss://` URL asks for; what it does not say stays at
    /// its default.
    ///
    /// # Errors
    /// [`UrlError`] for another scheme, a malformed URL, an unknown option or an unusable
    /// value. The message never contains the password.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let parts = UrlParts::parse(url)?;
        let tls = match parts.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(UrlError::malformed(format!(
                    "`{other}://` is not a Redis URL; use redis:// or rediss://"
                )));
            }
        };
        let endpoint = parts.host(6379)?;
        let db = match parts.path("the database number")? {
            None => 0,
            Some(db) => db
                .parse::<u32>()
                .ok()
                .filter(|_| db.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    UrlError::malformed(
                        "invalid Redis database number in the path (expected `/0`, `/1`, ...)",
                    )
                })?,
        };
        let options = parts.options(OPTIONS)?;
        let defaults = Self::default();
        let visibility_timeout = options
            .seconds("visibility_timeout")?
            .unwrap_or(defaults.visibility_timeout);
        if visibility_timeout < MIN_LEASE {
            return Err(UrlError::invalid(
                "visibility_timeout",
                &format!("{}", visibility_timeout.as_secs_f64()),
                "must be at least 0.01 seconds",
            ));
        }
        let certificate_check = options.one_of(
            "ssl_cert_reqs",
            &[
                "required",
                "optional",
                "none",
                "cert_required",
                "cert_optional",
                "cert_none",
            ],
        )?;
        if certificate_check.is_some() && !tls {
            return Err(UrlError::invalid(
                "ssl_cert_reqs",
                certificate_check.unwrap_or_default(),
                "only applies to rediss:// URLs",
            ));
        }
        let key_prefix = match (options.text("key_prefix"), options.text("global_keyprefix")) {
            (Some(_), Some(kombu)) => {
                return Err(UrlError::invalid(
                    "global_keyprefix",
                    &kombu,
                    "give `key_prefix` or kombu's `global_keyprefix`, not both",
                ));
            }
            (prefix, kombu) => prefix.or(kombu).unwrap_or_default(),
        };
        let config = Self {
            url: client_url(tls, &parts, &endpoint, db),
            key_prefix,
            visibility_timeout,
            max_receives: options
                .count("max_receives")?
                .unwrap_or(defaults.max_receives),
            dedup_window: options
                .seconds("dedup_window")?
                .unwrap_or(defaults.dedup_window),
            result_expires: options
                .seconds_or_zero("result_expires")?
                .unwrap_or(defaults.result_expires),
            response_timeout: options
                .seconds("response_timeout")?
                .unwrap_or(defaults.response_timeout),
            verify_certificate: !matches!(certificate_check, Some("none" | "cert_none")),
            ..defaults
        };
        options.finish()?;
        Ok(config)
    }
}

/// `redis[s]://user:password@host:port/db`, credentials percent-encoded, for the client.
fn client_url(tls: bool, parts: &UrlParts, endpoint: &HostPort, db: u32) -> String {
    let mut url = String::from(if tls { "rediss://" } else { "redis://" });
    if parts.username().is_some() || parts.password().is_some() {
        if let Some(user) = parts.username() {
            url.push_str(&encode(user));
        }
        if let Some(password) = parts.password() {
            url.push(':');
            url.push_str(&encode(password.expose()));
        }
        url.push('@');
    }
    url.push_str(&format!("{endpoint}/{db}"));
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_reaches_the_settings() {
        let config = RedisConfig::from_url(
            "rediss://user:s%40cret@Cache:6380/2?visibility_timeout=90&key_prefix=app:\
             &max_receives=7&dedup_window=1.5&result_expires=60&ssl_cert_reqs=CERT_NONE\
             &response_timeout=2",
        )
        .unwrap();
        assert_eq!(config.url, "rediss://user:s%40cret@cache:6380/2");
        assert_eq!(config.key_prefix, "app:");
        assert_eq!(config.visibility_timeout, Duration::from_secs(90));
        assert_eq!(config.max_receives, 7);
        assert_eq!(config.dedup_window, Duration::from_millis(1500));
        assert_eq!(config.result_expires, Duration::from_secs(60));
        assert_eq!(config.response_timeout, Duration::from_secs(2));
        assert!(!config.verify_certificate);
        let kombu = RedisConfig::from_url("redis://h?global_keyprefix=k:").unwrap();
        assert_eq!(kombu.key_prefix, "k:");
    }

    #[test]
    fn a_bare_url_keeps_every_default() {
        let config = RedisConfig::from_url("redis://").unwrap();
        assert_eq!(
            config,
            RedisConfig {
                url: "redis://localhost:6379/0".into(),
                ..RedisConfig::default()
            }
        );
        assert!(
            RedisConfig::from_url("rediss://h?ssl_cert_reqs=required")
                .unwrap()
                .verify_certificate
        );
    }

    #[test]
    fn unusable_urls_are_rejected_with_the_reason() {
        for (url, expected) in [
            ("redis://h?visibility_timeout=0.001", "at least 0.01"),
            ("redis://h?dedup_window=0", "greater than zero"),
            ("redis://h?ssl_cert_reqs=none", "only applies to rediss://"),
            ("rediss://h?ssl_cert_reqs=maybe", "expected one of"),
            ("redis://h/db0", "database number"),
            ("redis://h?key_prefix=a&global_keyprefix=b", "not both"),
            ("redis://h?response_timeout=0", "greater than zero"),
            ("redis://h?bogus=1", "known options: visibility_timeout"),
            ("amqp://h", "not a Redis URL"),
        ] {
            let err = RedisConfig::from_url(url).expect_err(url);
            assert!(err.to_string().contains(expected), "{url}: {err}");
        }
    }

    #[test]
    fn errors_never_show_the_password() {
        let err = RedisConfig::from_url("redis://u:hunter2@h?max_receives=x").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
