//! Settings of the Redis broker and result store, and how they come from a parsed URL.

use std::{fmt, time::Duration};

use broker_core::{Error, ErrorKind, Operation, Result, urls::redact};

use crate::BACKEND;

/// Settings shared by [`RedisBroker`](crate::RedisBroker) and
/// [`RedisResultStore`](crate::RedisResultStore).
///
/// Every consumer of one Redis database and key prefix must use the same
/// `visibility_timeout` (as with kombu): it gives the lease index its meaning.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://...` for TLS. Used to open the
    /// client only; never printed with its password.
    pub url: String,
    /// Prepended to every key and channel (kombu's `global_keyprefix`). Default empty, the
    /// layout Celery uses out of the box.
    pub key_prefix: String,
    /// The lease a delivery gets at receipt. Default 3600 s, kombu's default, so that a Celery
    /// worker sharing the queues with default settings agrees on when a lease ends.
    pub visibility_timeout: Duration,
    /// Receives without an ack after which a message goes to the dead-letter queue. Default 5.
    pub max_receives: u32,
    /// How long a deduplication id is remembered after its first publish. Default 5 minutes.
    pub dedup_window: Duration,
    /// How long a task result is kept (`result_expires` in Celery). Default one day; zero
    /// keeps results until they are forgotten.
    pub result_expires: Duration,
    /// How long one command may take before it fails as a (retryable) timeout. Default 10 s.
    pub response_timeout: Duration,
    /// PEM certificates to trust for `rediss://` instead of the system's roots (a private CA).
    pub tls_root_certificates: Option<Vec<u8>>,
    /// Whether a `rediss://` client checks the server's certificate. Default `true`; `false`
    /// (`ssl_cert_reqs=none`) accepts any certificate, and with it any server in the middle.
    pub verify_certificate: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            key_prefix: String::new(),
            visibility_timeout: Duration::from_secs(3600),
            max_receives: 5,
            dedup_window: Duration::from_secs(300),
            result_expires: Duration::from_secs(24 * 3600),
            response_timeout: Duration::from_secs(10),
            tls_root_certificates: None,
            verify_certificate: true,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact(&self.url))
            .field("key_prefix", &self.key_prefix)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("max_receives", &self.max_receives)
            .field("dedup_window", &self.dedup_window)
            .field("result_expires", &self.result_expires)
            .field("response_timeout", &self.response_timeout)
            .field(
                "tls_root_certificates",
                &self.tls_root_certificates.as_ref().map(Vec::len),
            )
            .field("verify_certificate", &self.verify_certificate)
            .finish()
    }
}

impl RedisConfig {
    /// A configuration for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Checks the settings a broker relies on.
    ///
    /// # Errors
    /// [`ErrorKind::Configuration`] naming the setting that is out of range.
    pub fn validate(&self) -> Result<()> {
        if self.visibility_timeout < Duration::from_millis(10) {
            return Err(config_error("visibility_timeout must be at least 10 ms"));
        }
        if self.max_receives == 0 {
            return Err(config_error("max_receives must be at least 1"));
        }
        if self.dedup_window < Duration::from_millis(1) {
            return Err(config_error("dedup_window must be at least 1 ms"));
        }
        if self.response_timeout.is_zero() {
            return Err(config_error("response_timeout must not be zero"));
        }
        Ok(())
    }
}

fn config_error(detail: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::Configuration,
        BACKEND,
        Operation::Connect,
        redact(&detail.into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_are_configuration_errors() {
        let config = RedisConfig {
            visibility_timeout: Duration::from_millis(1),
            ..RedisConfig::default()
        };
        let err = config.validate().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Configuration);
        assert!(err.to_string().contains("visibility_timeout"), "{err}");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let config = RedisConfig::new("redis://user:hunter2@localhost:6379/0");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
