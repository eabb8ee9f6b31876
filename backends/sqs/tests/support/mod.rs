//! Test support: the SQS service of `BROKER_TEST_SQS_URL`, and a plain `aws-sdk-sqs` client
//! on it to look at queues behind the broker's back.

#![allow(dead_code, unreachable_pub)]

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::{Client, config::Credentials};
use broker_sqs::SqsConfig;
use conformance_tests::{endpoint, skip};

/// The settings `BROKER_TEST_SQS_URL` names; `None` (with the calling test's skip printed)
/// when it is not set.
///
/// # Panics
/// When the URL does not parse.
pub fn config() -> Option<SqsConfig> {
    let url = skip::or_skip(endpoint::broker_url("sqs"))?;
    Some(SqsConfig::from_url(&url).expect("BROKER_TEST_SQS_URL parses"))
}

/// An SDK client on the same service as a broker with `config`.
///
/// # Panics
/// When the test URL names no keys or no endpoint (the emulator's URL has both).
pub async fn raw_client(config: &SqsConfig) -> Client {
    let (key, secret) = config.credentials.clone().expect("the test URL has keys");
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(
            config.region.clone().unwrap_or_else(|| "us-east-1".into()),
        ))
        .endpoint_url(
            config
                .endpoint
                .clone()
                .expect("the test URL names the emulator"),
        )
        .credentials_provider(Credentials::new(key, secret.expose(), None, None, "test"))
        .load()
        .await;
    Client::new(&sdk)
}

/// A queue name no other test uses.
pub fn fresh(base: &str) -> String {
    format!("{base}-{}", uuid::Uuid::new_v4().simple())
}
