//! Settings of the SQS broker.

use std::{fmt, time::Duration};

use aws_config::{
    BehaviorVersion, Region, SdkConfig, meta::region::RegionProviderChain, retry::RetryConfig,
    stalled_stream_protection::StalledStreamProtectionConfig, timeout::TimeoutConfig,
};
use aws_sdk_sqs::config::Credentials;
use broker_core::{Error, ErrorKind, Operation, Result, urls::Secret};

use crate::BACKEND;

/// The longest visibility timeout SQS accepts: 12 hours.
pub const MAX_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(12 * 3600);

/// The longest long poll SQS accepts (`WaitTimeSeconds`).
pub const MAX_POLL: Duration = Duration::from_secs(20);

/// Which kind of SQS queue a broker serves; it decides the capabilities the broker declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueKind {
    /// Standard queues: best-effort order, at least once, duplicates possible, delays up to
    /// 15 minutes. Queue names must not end in `.fifo`.
    #[default]
    Standard,
    /// FIFO queues: order per message group, deduplication for 5 minutes, no per-message
    /// delay. Queue names must end in `.fifo`.
    Fifo,
}

/// Settings of an [`SqsBroker`](crate::SqsBroker).
#[derive(Clone, PartialEq, Eq)]
pub struct SqsConfig {
    /// Access key id and secret; `None` takes credentials from the standard AWS chain
    /// (environment, profile, instance role), as `sqs://` does in Celery.
    pub credentials: Option<(String, Secret)>,
    /// The AWS region; `None` takes it from the standard chain (`AWS_REGION`, profile), and
    /// `us-east-1` (kombu's default) when that names none.
    pub region: Option<String>,
    /// The service endpoint (`http://127.0.0.1:9324` for an emulator); `None` is AWS's
    /// endpoint for the region (or `AWS_ENDPOINT_URL_SQS` when set).
    pub endpoint: Option<String>,
    /// Put in front of every queue name (kombu's `queue_name_prefix`). Default empty.
    pub queue_name_prefix: String,
    /// The lease a delivery gets at receipt, whole seconds from 1 to 12 hours (SQS counts in
    /// seconds; a fraction is rounded up). Default 1800 s, kombu's default.
    pub visibility_timeout: Duration,
    /// The longest single long poll, 0 to 20 s (kombu's `wait_time_seconds`); a receive that
    /// waits longer polls again. Default 20 s.
    pub wait_time_seconds: Duration,
    /// Which kind of queue this broker serves. Default standard.
    pub queue_kind: QueueKind,
    /// The message group of a FIFO message published without an ordering key. Default
    /// `default`, kombu's.
    pub message_group_id: String,
    /// Receives without an ack after which SQS moves a message to the dead-letter queue (the
    /// redrive policy's `maxReceiveCount`). Default 5.
    pub max_receives: u32,
}

impl Default for SqsConfig {
    fn default() -> Self {
        Self {
            credentials: None,
            region: None,
            endpoint: None,
            queue_name_prefix: String::new(),
            visibility_timeout: Duration::from_secs(1800),
            wait_time_seconds: MAX_POLL,
            queue_kind: QueueKind::Standard,
            message_group_id: "default".to_owned(),
            max_receives: 5,
        }
    }
}

impl fmt::Debug for SqsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsConfig")
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(key, secret)| (key, secret)),
            )
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("queue_name_prefix", &self.queue_name_prefix)
            .field("visibility_timeout", &self.visibility_timeout)
            .field("wait_time_seconds", &self.wait_time_seconds)
            .field("queue_kind", &self.queue_kind)
            .field("message_group_id", &self.message_group_id)
            .field("max_receives", &self.max_receives)
            .finish()
    }
}

impl SqsConfig {
    /// Checks the settings a broker relies on.
    ///
    /// # Errors
    /// [`ErrorKind::Configuration`] naming the setting that is out of range.
    pub fn validate(&self) -> Result<()> {
        if self.visibility_timeout < Duration::from_secs(1)
            || self.visibility_timeout > MAX_VISIBILITY_TIMEOUT
        {
            return Err(config_error(
                "visibility_timeout must be from 1 second to 12 hours",
            ));
        }
        if self.wait_time_seconds > MAX_POLL {
            return Err(config_error("wait_time_seconds must be at most 20 seconds"));
        }
        if !(1..=1000).contains(&self.max_receives) {
            return Err(config_error("max_receives must be from 1 to 1000"));
        }
        if self.message_group_id.is_empty() || self.message_group_id.len() > 128 {
            return Err(config_error(
                "message_group_id must have 1 to 128 characters",
            ));
        }
        Ok(())
    }
}

fn config_error(detail: &str) -> Error {
    Error::new(
        ErrorKind::Configuration,
        BACKEND,
        Operation::Connect,
        detail,
    )
}

impl SqsConfig {
    /// The AWS SDK settings the broker's client is made from: the region (the URL's, else
    /// the standard chain's, else `us-east-1`), the URL's credentials or the standard chain's,
    /// the endpoint, no retries of the SDK's own (`Queue` retries), a 5 s connect timeout and
    /// an attempt timeout longer than the longest long poll. A client for the same account
    /// with the same behaviour is `aws_sdk_sqs::Client::new(&config.sdk_config().await)`.
    pub async fn sdk_config(&self) -> SdkConfig {
        let region = match &self.region {
            Some(region) => RegionProviderChain::first_try(Region::new(region.clone())),
            None => RegionProviderChain::default_provider().or_else(Region::new("us-east-1")),
        };
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .retry_config(RetryConfig::disabled())
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    // A long poll answers after at most 20 s.
                    .operation_attempt_timeout(MAX_POLL + Duration::from_secs(20))
                    .build(),
            );
        if let Some((key, secret)) = &self.credentials {
            loader = loader.credentials_provider(Credentials::new(
                key,
                secret.expose(),
                None,
                None,
                "sqs-url",
            ));
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        loader.load().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_settings_are_configuration_errors() {
        for config in [
            SqsConfig {
                visibility_timeout: Duration::from_millis(500),
                ..SqsConfig::default()
            },
            SqsConfig {
                wait_time_seconds: Duration::from_secs(21),
                ..SqsConfig::default()
            },
            SqsConfig {
                max_receives: 0,
                ..SqsConfig::default()
            },
        ] {
            let err = config.validate().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
        }
        SqsConfig::default().validate().expect("defaults are valid");
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let config = SqsConfig {
            credentials: Some(("AKIA".into(), Secret::new("hunter2"))),
            ..SqsConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("AKIA"), "{shown}");
    }
}
