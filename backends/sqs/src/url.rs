//! `sqs://` URLs, read into an [`SqsConfig`].
//!
//! `sqs://[KEY:SECRET@][host[:port]][?options]`, as Celery and kombu write them. Without
//! credentials, the standard AWS chain supplies them (environment, profile, instance role); a
//! secret holding `/` or `+` must be percent-encoded. A host in the URL is the endpoint, as in
//! kombu: `https://host[:port]`, or `http://` with `is_secure=false`. Options:
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `region` | the AWS region | the AWS chain's, else `us-east-1` |
//! | `endpoint_url` | the service endpoint, for an emulator (`http://127.0.0.1:9324`); not with a host | AWS's, or `AWS_ENDPOINT_URL_SQS` |
//! | `is_secure` | with a host: `true` for `https://`, `false` for `http://` | `true` |
//! | `queue_name_prefix` | put in front of every queue name (kombu's) | none |
//! | `visibility_timeout` | whole seconds a delivery stays leased, 1 to 43200 | 1800 |
//! | `wait_time_seconds` | the longest single long poll, 0 to 20 | 20 |
//! | `fifo` | `true`: the broker serves FIFO queues (names ending in `.fifo`) and declares their guarantees | `false` |
//! | `message_group_id` | FIFO: the group of a message without an ordering key | `default` |
//! | `max_receives` | receives after which SQS moves a message to the dead-letter queue | 5 |

use std::time::Duration;

use broker_core::urls::{UrlError, UrlParts};

use crate::{
    SqsConfig,
    config::{MAX_POLL, QueueKind},
};

/// The schemes the SQS backend answers (as a broker only: SQS keeps no results).
pub const SCHEMES: &[&str] = &["sqs"];

/// The options an SQS URL may carry.
pub const OPTIONS: &[&str] = &[
    "region",
    "endpoint_url",
    "is_secure",
    "queue_name_prefix",
    "visibility_timeout",
    "wait_time_seconds",
    "fifo",
    "message_group_id",
    "max_receives",
];

impl SqsConfig {
    /// The settings an `sqs://` URL asks for; what it does not say stays at its default.
    ///
    /// # Errors
    /// [`UrlError`] for another scheme, a malformed URL, an unknown option or an unusable
    /// value. The message never contains the secret.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let parts = UrlParts::parse(url)?;
        if parts.scheme() != "sqs" {
            return Err(UrlError::malformed(format!(
                "`{}://` is not an SQS URL; use sqs://",
                parts.scheme()
            )));
        }
        parts.expect_no_path()?;
        let credentials = match (parts.username(), parts.password()) {
            (None, None) => None,
            (Some(key), Some(secret)) => Some((key.to_owned(), secret.clone())),
            _ => {
                return Err(UrlError::malformed(
                    "give both the access key id and the secret (sqs://KEY:SECRET@), or neither",
                ));
            }
        };
        let options = parts.options(OPTIONS)?;
        let defaults = Self::default();
        let is_secure = options.boolean("is_secure")?;
        let endpoint_url = options.parsed("endpoint_url", |value| {
            if value.starts_with("http://") || value.starts_with("https://") {
                Ok(value.trim_end_matches('/').to_owned())
            } else {
                Err("must start with http:// or https://".to_owned())
            }
        })?;
        let endpoint = match (parts.has_host(), endpoint_url) {
            (true, Some(url)) => {
                return Err(UrlError::invalid(
                    "endpoint_url",
                    &url,
                    "give the endpoint as the URL's host or as endpoint_url, not both",
                ));
            }
            (true, None) => {
                let scheme = if is_secure.unwrap_or(true) {
                    "https"
                } else {
                    "http"
                };
                Some(format!("{scheme}://{}", parts.host(443)?))
            }
            (false, url) => url,
        };
        let visibility_timeout = options
            .number("visibility_timeout", 1..=43_200u64)?
            .map_or(defaults.visibility_timeout, Duration::from_secs);
        let wait_time_seconds = options
            .number("wait_time_seconds", 0..=MAX_POLL.as_secs())?
            .map_or(defaults.wait_time_seconds, Duration::from_secs);
        let queue_kind = match options.boolean("fifo")? {
            Some(true) => QueueKind::Fifo,
            _ => QueueKind::Standard,
        };
        let message_group_id = options.parsed("message_group_id", |value| {
            if value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(value.to_owned())
            } else {
                Err("must be 1 to 128 letters, digits or punctuation".to_owned())
            }
        })?;
        if message_group_id.is_some() && queue_kind != QueueKind::Fifo {
            return Err(UrlError::invalid(
                "message_group_id",
                message_group_id.as_deref().unwrap_or_default(),
                "only applies with fifo=true",
            ));
        }
        let config = Self {
            credentials,
            region: options.text("region"),
            endpoint,
            queue_name_prefix: options.text("queue_name_prefix").unwrap_or_default(),
            visibility_timeout,
            wait_time_seconds,
            queue_kind,
            message_group_id: message_group_id.unwrap_or(defaults.message_group_id),
            max_receives: options
                .number("max_receives", 1..=1000u32)?
                .unwrap_or(defaults.max_receives),
        };
        options.finish()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use broker_core::urls::Secret;

    use super::*;

    #[test]
    fn a_bare_url_takes_everything_from_the_aws_chain() {
        assert_eq!(SqsConfig::from_url("sqs://").unwrap(), SqsConfig::default());
    }

    #[test]
    fn credentials_in_the_url_are_used_and_decoded() {
        let config = SqsConfig::from_url("sqs://AKIA1:abc%2Fdef%2Bg@").unwrap();
        assert_eq!(
            config.credentials,
            Some(("AKIA1".to_owned(), Secret::new("abc/def+g")))
        );
        assert_eq!(config.endpoint, None);
    }

    #[test]
    fn the_compose_files_sqs_url_works_as_written() {
        let config =
            SqsConfig::from_url("sqs://?endpoint_url=http://sqs:9324&region=us-east-1").unwrap();
        assert_eq!(config.endpoint.as_deref(), Some("http://sqs:9324"));
        assert_eq!(config.region.as_deref(), Some("us-east-1"));
        assert_eq!(config.credentials, None);
    }

    #[test]
    fn a_host_is_the_endpoint_as_in_kombu() {
        let secure = SqsConfig::from_url("sqs://k:s@sqs.example:4566").unwrap();
        assert_eq!(secure.endpoint.as_deref(), Some("https://sqs.example:4566"));
        let plain = SqsConfig::from_url("sqs://k:s@127.0.0.1:9324?is_secure=false").unwrap();
        assert_eq!(plain.endpoint.as_deref(), Some("http://127.0.0.1:9324"));
    }

    #[test]
    fn every_option_reaches_the_settings() {
        let config = SqsConfig::from_url(
            "sqs://?region=eu-west-1&endpoint_url=http://localhost:9324/&queue_name_prefix=dev-\
             &visibility_timeout=90&wait_time_seconds=5&fifo=true&message_group_id=g1\
             &max_receives=7",
        )
        .unwrap();
        assert_eq!(
            config,
            SqsConfig {
                credentials: None,
                region: Some("eu-west-1".into()),
                endpoint: Some("http://localhost:9324".into()),
                queue_name_prefix: "dev-".into(),
                visibility_timeout: Duration::from_secs(90),
                wait_time_seconds: Duration::from_secs(5),
                queue_kind: QueueKind::Fifo,
                message_group_id: "g1".into(),
                max_receives: 7,
            }
        );
        let standard = SqsConfig::from_url("sqs://?fifo=false").unwrap();
        assert_eq!(standard.queue_kind, QueueKind::Standard);
    }

    #[test]
    fn unusable_urls_are_rejected_with_the_reason() {
        for (url, expected) in [
            ("sqs://h?endpoint_url=http://x", "not both"),
            ("sqs://?endpoint_url=ftp://x", "http:// or https://"),
            ("sqs://?visibility_timeout=0", "visibility_timeout"),
            ("sqs://?visibility_timeout=43201", "visibility_timeout"),
            ("sqs://?wait_time_seconds=21", "wait_time_seconds"),
            ("sqs://?message_group_id=g", "only applies with fifo=true"),
            ("sqs://?fifo=true&message_group_id=a%20b", "punctuation"),
            ("sqs://?max_receives=0", "max_receives"),
            ("sqs://?is_secure=maybe", "is_secure"),
            ("sqs://KEY@", "both the access key id and the secret"),
            ("sqs:///queue", "take no path"),
            ("sqs://?bogus=1", "known options: region"),
            ("redis://h", "not an SQS URL"),
        ] {
            let err = SqsConfig::from_url(url).expect_err(url);
            assert!(err.to_string().contains(expected), "{url}: {err}");
        }
    }

    #[test]
    fn errors_never_show_the_secret() {
        let err = SqsConfig::from_url("sqs://AKIA:hunter2@?max_receives=x").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
