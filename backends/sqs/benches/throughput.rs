//! Throughput of the SQS backend beside a baseline that makes the same `aws-sdk-sqs` calls
//! directly: `SendMessageBatch` of bodies in kombu's format, in chunks of 10; a long-polling
//! `ReceiveMessage` that asks for the receive count; `DeleteMessageBatch`. The groups are the
//! shared harness's (`broker_benches::harness`). Neither side keeps results: SQS is a broker
//! only. Needs `BROKER_TEST_SQS_URL` (the emulator bounds both sides); every queue it
//! declares is deleted at the end.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use aws_sdk_sqs::{
    Client,
    types::{
        DeleteMessageBatchRequestEntry, MessageSystemAttributeName, SendMessageBatchRequestEntry,
    },
};
use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use broker_benches::{
    harness,
    raw::{RawClient, RawMessage, RawTask},
    target::BenchTarget,
};
use broker_core::{Broker, ResultStore};
use broker_sqs::{MAX_POLL, SqsBroker, SqsConfig, naming::sqs_queue_name};

/// SQS takes and returns at most 10 messages a call.
const MAX_BATCH: usize = 10;

struct Sqs {
    config: SqsConfig,
}

#[async_trait]
impl BenchTarget for Sqs {
    type Raw = RawSqs;

    fn name(&self) -> &'static str {
        "sqs"
    }

    async fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(
            SqsBroker::connect(self.config.clone())
                .await
                .expect("connect"),
        )
    }

    async fn result_store(&self) -> Option<Arc<dyn ResultStore>> {
        None
    }

    /// A client with the settings the broker's client has.
    async fn raw(&self) -> RawSqs {
        RawSqs {
            client: Client::new(&self.config.sdk_config().await),
            prefix: self.config.queue_name_prefix.clone(),
            urls: tokio::sync::Mutex::default(),
        }
    }
}

/// The hand-written client, with the queue URLs it has looked up.
struct RawSqs {
    client: Client,
    prefix: String,
    urls: tokio::sync::Mutex<HashMap<String, String>>,
}

impl RawSqs {
    async fn url(&self, queue: &str) -> String {
        let mut urls = self.urls.lock().await;
        if let Some(url) = urls.get(queue) {
            return url.clone();
        }
        let url = self
            .client
            .get_queue_url()
            .queue_name(sqs_queue_name(&self.prefix, queue))
            .send()
            .await
            .expect("the queue was declared")
            .queue_url
            .expect("a queue URL");
        urls.insert(queue.to_owned(), url.clone());
        url
    }

    /// Deletes `handles` from the queue at `url`, 10 a call.
    async fn delete(&self, url: &str, handles: Vec<String>) {
        for chunk in handles.chunks(MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, handle)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .expect("entry")
                })
                .collect();
            let deleted = self
                .client
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("delete");
            assert!(deleted.failed().is_empty(), "every delete succeeded");
        }
    }
}

/// `message` in kombu's SQS format: base64 of the JSON envelope, whose body is base64 too.
fn seal(queue: &str, message: &RawMessage) -> String {
    let envelope = format!(
        r#"{{"body":"{}","content-encoding":"utf-8","content-type":"{}","headers":{},"properties":{{"body_encoding":"base64","delivery_info":{{"exchange":"","routing_key":"{queue}"}},"delivery_mode":2,"priority":0,"delivery_tag":"{}"}}}}"#,
        BASE64.encode(&message.payload),
        message.content_type,
        message.headers,
        uuid::Uuid::new_v4(),
    );
    BASE64.encode(envelope)
}

/// What a worker reads from a body [`seal`] wrote.
fn open(body: &str) -> RawTask {
    #[derive(serde::Deserialize)]
    struct Envelope {
        headers: Box<serde_json::value::RawValue>,
        body: String,
    }
    let envelope: Envelope =
        serde_json::from_slice(&BASE64.decode(body).expect("base64")).expect("an envelope");
    RawTask::from_json_headers(
        envelope.headers.get(),
        BASE64.decode(envelope.body).expect("a base64 body"),
    )
}

#[async_trait]
impl RawClient for RawSqs {
    /// The receipt handle and the body.
    type Received = (String, String);

    async fn publish(&self, queue: &str, messages: Vec<RawMessage>) {
        let url = self.url(queue).await;
        for chunk in messages.chunks(MAX_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, message)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(seal(queue, message))
                        .build()
                        .expect("entry")
                })
                .collect();
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("send");
            assert!(sent.failed().is_empty(), "every message was taken");
        }
    }

    async fn receive(&self, queue: &str, max: usize, wait: Duration) -> Vec<(String, String)> {
        let url = self.url(queue).await;
        let got = self
            .client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(i32::try_from(max.min(MAX_BATCH)).expect("small"))
            .wait_time_seconds(i32::try_from(wait.min(MAX_POLL).as_secs()).expect("small"))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .expect("receive");
        got.messages()
            .iter()
            .map(|m| {
                (
                    m.receipt_handle().expect("a receipt handle").to_owned(),
                    m.body().expect("a body").to_owned(),
                )
            })
            .collect()
    }

    async fn ack(&self, queue: &str, received: Vec<(String, String)>) {
        let url = self.url(queue).await;
        self.delete(
            &url,
            received.into_iter().map(|(handle, _)| handle).collect(),
        )
        .await;
    }

    fn task(&self, (_, body): &(String, String)) -> RawTask {
        open(body)
    }

    async fn store_result(&self, _task_id: &str, _state: &str) {}

    /// Receives and deletes until the queue is empty: the emulator's costs grow with a
    /// queue's length, and AWS allows one `PurgeQueue` a minute.
    async fn clear(&self, queue: &str) {
        loop {
            let got = self.receive(queue, MAX_BATCH, Duration::ZERO).await;
            if got.is_empty() {
                return;
            }
            self.ack(queue, got).await;
        }
    }
}

fn main() {
    harness::run_with_url("BROKER_TEST_SQS_URL", |url| async move {
        Sqs {
            config: SqsConfig::from_url(&url).expect("BROKER_TEST_SQS_URL parses"),
        }
    });
}
