//! [`SqsBroker`]: the `Broker` driver on `aws-sdk-sqs`.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering as AtomicOrdering},
    },
    time::Duration,
};

use async_trait::async_trait;
use aws_config::Region;
use aws_sdk_sqs::{
    Client,
    error::{ProvideErrorMetadata, SdkError},
    types::{
        DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
        QueueAttributeName, SendMessageBatchRequestEntry,
    },
};
use broker_core::{
    AckToken, Broker, Capabilities, Capacity, Counting, DEAD_LETTER_REASON_HEADER, DeadLetter,
    Deduplication, Delay, DeliveryGuarantee, Error, ErrorKind, LeaseExtension, Message, NackAction,
    Operation, Ordering, Persistence, QueueCounts, Received, Redelivery, Result, StaleTokens,
};
use tokio::time::Instant;

use crate::{
    BACKEND, SqsConfig,
    config::{MAX_POLL, QueueKind},
    envelope,
    error::{
        closed, connect_error, entry_failure, from_sdk, invalid_input, protocol, queue_not_found,
    },
    naming::{self, is_fifo},
    token::{self, Held},
};

/// The most messages one SQS batch call (send, receive, delete) takes.
pub const MAX_BATCH: usize = 10;

/// The largest SQS message body and the largest batch SQS accepts: 1 MiB, on AWS (since 2025)
/// and on the emulator.
pub const MAX_SQS_MESSAGE: usize = 1024 * 1024;

/// The largest message this backend accepts, counted as
/// [`Message::encoded_size`]: what fits in [`MAX_SQS_MESSAGE`] once kombu's envelope has
/// base64-encoded the payload and then the whole envelope (two growths by 4/3), less 4 KiB for
/// the envelope's own fields.
pub const MAX_PAYLOAD: usize = MAX_SQS_MESSAGE / 4 * 3 / 4 * 3 - 4096;

/// The longest per-message delay SQS accepts (`DelaySeconds`), on standard queues.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// The longest lease one extension may set. SQS keeps a message hidden at most 12 hours from
/// its receipt; 11 hours from now stays within that for an extension made in a delivery's
/// first hour.
pub const MAX_LEASE: Duration = Duration::from_secs(11 * 3600);

/// How long a FIFO queue remembers a deduplication id.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(5 * 60);

/// How often a receive whose wait has less than a second left looks again (SQS long polls
/// count whole seconds).
const SHORT_POLL_PAUSE: Duration = Duration::from_millis(100);

/// How far past its wait a receive may run so that a wait of whole seconds, measured a moment
/// after it began, still long polls for those seconds instead of short polling.
const POLL_OVERRUN: Duration = Duration::from_millis(50);

/// An SQS queue as this broker found it: its URL and whether it deduplicates by content.
#[derive(Debug)]
struct Resolved {
    url: String,
    content_dedup: bool,
}

/// A broker on Amazon SQS (or an emulator): standard queues, or FIFO queues with
/// `fifo=true`.
///
/// One broker serves one kind of queue, because the two kinds keep different promises (see
/// [`SqsBroker::capabilities_for`]): a standard broker refuses names ending in `.fifo`, a FIFO
/// broker names without it, before calling SQS. Queue URLs are resolved by name once and
/// cached. Every call is one or a few SQS requests, never retried here (the SDK's own retries
/// are off: `Queue` and `Delivery` retry what is retryable).
#[derive(Debug)]
pub struct SqsBroker {
    client: Client,
    config: SqsConfig,
    endpoint: String,
    capabilities: Capabilities,
    queues: RwLock<HashMap<String, Arc<Resolved>>>,
    closed: AtomicBool,
}

impl SqsBroker {
    /// Connects and checks that the endpoint answers (one `ListQueues` call).
    ///
    /// # Errors
    /// [`ErrorKind::Configuration`] for invalid settings or refused credentials; otherwise the
    /// error of the first call, naming the endpoint and the root cause.
    pub async fn connect(config: SqsConfig) -> Result<Self> {
        config.validate()?;
        let sdk_config = config.sdk_config().await;
        let endpoint = config.endpoint.clone().unwrap_or_else(|| {
            let region = sdk_config.region().map_or("us-east-1", Region::as_ref);
            format!("https://sqs.{region}.amazonaws.com")
        });
        let client = Client::new(&sdk_config);
        client
            .list_queues()
            .max_results(1)
            .send()
            .await
            .map_err(|e| connect_error(&endpoint, &e))?;
        Ok(Self {
            client,
            capabilities: Self::capabilities_for(&config),
            config,
            endpoint,
            queues: RwLock::default(),
            closed: AtomicBool::new(false),
        })
    }

    /// What a broker with `config` promises. Standard queues: at least once, no order,
    /// duplicates possible, delays up to 15 minutes. FIFO queues: order per message group (the
    /// ordering key) and deduplication for 5 minutes, but no per-message delay. Both: a lease
    /// of the visibility timeout, extensible, receipt handles that may still settle a message
    /// after their lease, a dead-letter queue after `max_receives`, SQS's durable storage, and
    /// a waiting long poll that returns as soon as a message arrives.
    #[must_use]
    pub fn capabilities_for(config: &SqsConfig) -> Capabilities {
        let fifo = config.queue_kind == QueueKind::Fifo;
        Capabilities {
            backend: BACKEND,
            delivery: DeliveryGuarantee::AtLeastOnce,
            ordering: if fifo {
                Ordering::PerKey
            } else {
                Ordering::None
            },
            deduplication: if fifo {
                Deduplication::ById {
                    window: DEDUP_WINDOW,
                }
            } else {
                Deduplication::None
            },
            redelivery: Redelivery::Lease {
                default_lease: Duration::from_secs(whole_seconds(config.visibility_timeout)),
                extension: LeaseExtension::UpTo { max: MAX_LEASE },
            },
            stale_tokens: StaleTokens::MaySettle,
            delay: if fifo {
                Delay::Unsupported
            } else {
                Delay::UpTo { max: MAX_DELAY }
            },
            dead_letter: DeadLetter::Queue {
                max_receives: config.max_receives,
            },
            persistence: Persistence::Durable,
            counting: Counting::Approximate,
            max_batch: MAX_BATCH,
            max_payload: MAX_PAYLOAD,
            idle_pickup: Duration::from_secs(1),
        }
    }

    /// The endpoint this broker talks to.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The SQS name of the portable queue `queue` (prefix and kombu's spelling applied).
    #[must_use]
    pub fn sqs_queue_name(&self, queue: &str) -> String {
        naming::sqs_queue_name(&self.config.queue_name_prefix, queue)
    }

    fn fifo(&self) -> bool {
        self.config.queue_kind == QueueKind::Fifo
    }

    /// Fails when closed or when `queue` is not of this broker's kind.
    fn check(&self, operation: Operation, queue: &str) -> Result<()> {
        if self.closed.load(AtomicOrdering::SeqCst) {
            return Err(closed(operation));
        }
        match (self.fifo(), is_fifo(queue)) {
            (true, false) => Err(invalid_input(
                operation,
                format!("`{queue}`: a FIFO broker (fifo=true) serves only queues named *.fifo"),
            )),
            (false, true) => Err(invalid_input(
                operation,
                format!("`{queue}` is a FIFO queue; open the broker with fifo=true to use it"),
            )),
            _ => Ok(()),
        }
    }

    /// The queue's URL and settings, from the cache or from SQS.
    async fn resolve(&self, operation: Operation, queue: &str) -> Result<Arc<Resolved>> {
        if let Some(found) = self.cached(queue) {
            return Ok(found);
        }
        let url = self
            .client
            .get_queue_url()
            .queue_name(self.sqs_queue_name(queue))
            .send()
            .await
            .map_err(|e| not_found_or(operation, queue, &e))?
            .queue_url
            .ok_or_else(|| protocol(operation, "GetQueueUrl answered without a URL"))?;
        let content_dedup = self.fifo() && {
            let attributes = self
                .client
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::ContentBasedDeduplication)
                .send()
                .await
                .map_err(|e| not_found_or(operation, queue, &e))?;
            attributes
                .attributes()
                .and_then(|a| a.get(&QueueAttributeName::ContentBasedDeduplication))
                .is_some_and(|v| v == "true")
        };
        Ok(self.remember(queue, Resolved { url, content_dedup }))
    }

    fn cached(&self, queue: &str) -> Option<Arc<Resolved>> {
        self.queues
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(queue)
            .cloned()
    }

    fn remember(&self, queue: &str, resolved: Resolved) -> Arc<Resolved> {
        let resolved = Arc::new(resolved);
        self.queues
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(queue.to_owned(), resolved.clone());
        resolved
    }

    fn forget(&self, queue: &str) {
        self.queues
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(queue);
    }

    /// `err`, after forgetting the cached URL when it says the queue is gone.
    fn gone(&self, queue: &str, err: Error) -> Error {
        if err.kind() == ErrorKind::QueueNotFound {
            self.forget(queue);
        }
        err
    }

    /// Creates `queue` with `attributes`, or finds it when it exists with other attributes
    /// (created by kombu, or by a broker with other settings). Returns its URL and whether
    /// this call created it.
    async fn create(
        &self,
        queue: &str,
        attributes: &[(QueueAttributeName, String)],
    ) -> Result<(String, bool)> {
        let op = Operation::DeclareQueue;
        let mut request = self
            .client
            .create_queue()
            .queue_name(self.sqs_queue_name(queue));
        for (name, value) in attributes {
            request = request.attributes(name.clone(), value);
        }
        match request.send().await {
            Ok(created) => {
                let url = created
                    .queue_url
                    .ok_or_else(|| protocol(op, "CreateQueue answered without a URL"))?;
                Ok((url, true))
            }
            Err(err) if matches!(err.code(), Some("QueueAlreadyExists" | "QueueNameExists")) => {
                self.forget(queue);
                Ok((self.resolve(op, queue).await?.url.clone(), false))
            }
            Err(err) => Err(from_sdk(op, &err)),
        }
    }

    fn base_attributes(&self, queue: &str) -> Vec<(QueueAttributeName, String)> {
        let mut attributes = vec![
            (
                QueueAttributeName::VisibilityTimeout,
                whole_seconds(self.config.visibility_timeout).to_string(),
            ),
            (
                QueueAttributeName::MaximumMessageSize,
                MAX_SQS_MESSAGE.to_string(),
            ),
        ];
        if is_fifo(queue) {
            attributes.push((QueueAttributeName::FifoQueue, "true".to_owned()));
            attributes.push((
                QueueAttributeName::ContentBasedDeduplication,
                "true".to_owned(),
            ));
        }
        attributes
    }

    async fn queue_arn(&self, url: &str) -> Result<String> {
        let op = Operation::DeclareQueue;
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| from_sdk(op, &e))?;
        answer
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| protocol(op, "GetQueueAttributes answered without QueueArn"))
    }

    /// Deletes one SQS queue; a missing one is already deleted.
    async fn delete_one(&self, queue: &str) -> Result<()> {
        let op = Operation::DeleteQueue;
        let url = match self.resolve(op, queue).await {
            Ok(resolved) => resolved.url.clone(),
            Err(err) if err.kind() == ErrorKind::QueueNotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        self.forget(queue);
        match self.client.delete_queue().queue_url(url).send().await {
            Ok(_) => Ok(()),
            Err(err) => match from_sdk(op, &err) {
                e if e.kind() == ErrorKind::QueueNotFound => Ok(()),
                e => Err(e),
            },
        }
    }

    fn entry(
        &self,
        index: usize,
        message: &Message,
        queue: &str,
        resolved: &Resolved,
    ) -> Result<SendMessageBatchRequestEntry> {
        let op = Operation::Publish;
        let body = envelope::seal(message, queue)
            .map_err(|e| Error::codec(Operation::Encode, e.to_string()))?;
        let mut entry = SendMessageBatchRequestEntry::builder()
            .id(index.to_string())
            .message_body(body);
        if self.fifo() {
            let group = message
                .ordering_key
                .clone()
                .unwrap_or_else(|| self.config.message_group_id.clone());
            entry = entry.message_group_id(group);
            entry = match (&message.deduplication_id, resolved.content_dedup) {
                (Some(id), _) => entry.message_deduplication_id(id),
                (None, true) => entry,
                // A queue made without content-based deduplication (by kombu, say) needs an
                // id: a fresh one, as kombu sends, deduplicates nothing.
                (None, false) => {
                    entry.message_deduplication_id(uuid::Uuid::new_v4().simple().to_string())
                }
            };
        } else if let Some(delay) = message.delay.filter(|d| !d.is_zero()) {
            entry = entry.delay_seconds(seconds_i32(delay));
        }
        entry
            .build()
            .map_err(|e| protocol(op, format!("batch entry: {e}")))
    }

    fn received(&self, message: &aws_sdk_sqs::types::Message) -> Result<Received> {
        let op = Operation::Receive;
        let (Some(receipt), Some(message_id)) = (&message.receipt_handle, &message.message_id)
        else {
            return Err(protocol(
                op,
                "ReceiveMessage answered a message without receipt handle or id",
            ));
        };
        let body = message.body.as_deref().unwrap_or_default();
        let attribute = |name: &MessageSystemAttributeName| {
            message
                .attributes
                .as_ref()
                .and_then(|attributes| attributes.get(name))
        };
        let receive_count = attribute(&MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|count| count.parse().ok())
            .unwrap_or(1u32)
            .max(1);
        let group =
            attribute(&MessageSystemAttributeName::MessageGroupId).map_or("", String::as_str);
        let opened = envelope::open(body).unwrap_or_else(|problem| {
            // Delivered as its bytes: the consumer cannot decode it either and dead-letters
            // it, rather than every receive of the queue failing on it.
            tracing::warn!(id = %message_id, %problem, "unreadable kombu envelope");
            envelope::Opened {
                payload: bytes::Bytes::from(envelope::unwrap_body(body)),
                headers: broker_core::Headers::new(),
                properties: broker_core::Properties::default(),
                ordering_key: None,
            }
        });
        Ok(Received {
            id: message_id.clone(),
            payload: opened.payload,
            headers: opened.headers,
            properties: opened.properties,
            ordering_key: opened.ordering_key,
            receive_count,
            token: token::make(&Held {
                receipt,
                message_id,
                group,
                body,
            }),
        })
    }

    /// Sets the delivery's visibility to `seconds` from now.
    async fn change_visibility(
        &self,
        operation: Operation,
        queue: &str,
        receipt: &str,
        seconds: i32,
    ) -> Result<()> {
        let resolved = self.resolve(operation, queue).await?;
        self.client
            .change_message_visibility()
            .queue_url(&resolved.url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| self.gone(queue, from_sdk(operation, &e)))?;
        Ok(())
    }

    /// Copies the delivery to the dead-letter queue with `reason`, then deletes it here.
    async fn dead_letter(&self, queue: &str, held: &Held<'_>, reason: &str) -> Result<()> {
        let op = Operation::Nack;
        let dlq = self
            .dead_letter_queue(queue)
            .ok_or_else(|| invalid_input(op, format!("`{queue}` has no dead-letter queue")))?;
        let target = self.resolve(op, &dlq).await?;
        let mut request = self.client.send_message().queue_url(&target.url);
        request = match envelope::with_header(held.body, DEAD_LETTER_REASON_HEADER, reason) {
            Some(body) => request.message_body(body),
            // Not a kombu envelope, so no headers: the reason travels as a message attribute.
            None => request.message_body(held.body).message_attributes(
                DEAD_LETTER_REASON_HEADER,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(reason)
                    .build()
                    .map_err(|e| protocol(op, format!("message attribute: {e}")))?,
            ),
        };
        if is_fifo(&dlq) {
            let group = if held.group.is_empty() {
                &self.config.message_group_id
            } else {
                held.group
            };
            // The message id makes a repeated copy (a retried nack) a duplicate SQS drops.
            request = request
                .message_group_id(group)
                .message_deduplication_id(held.message_id);
        }
        request
            .send()
            .await
            .map_err(|e| self.gone(&dlq, from_sdk(op, &e)))?;
        let source = self.resolve(op, queue).await?;
        self.client
            .delete_message()
            .queue_url(&source.url)
            .receipt_handle(held.receipt)
            .send()
            .await
            .map_err(|e| self.gone(queue, from_sdk(op, &e)))?;
        Ok(())
    }
}

/// Whole seconds, rounded up: SQS counts timeouts and delays in seconds, and a lease or delay
/// must never end early.
fn whole_seconds(duration: Duration) -> u64 {
    duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0))
}

/// The `WaitTimeSeconds` of a receive with `left` of its wait to go: the whole seconds in it,
/// counting a wait within [`POLL_OVERRUN`] of a whole second as that second, and at most the
/// configured wait and SQS's 20 s. Zero is a short poll.
fn long_poll_seconds(left: Duration, configured: Duration) -> u64 {
    left.saturating_add(POLL_OVERRUN)
        .min(configured)
        .min(MAX_POLL)
        .as_secs()
}

/// [`whole_seconds`] as SQS's `i32`, saturating (the limits checked above keep it far below).
fn seconds_i32(duration: Duration) -> i32 {
    i32::try_from(whole_seconds(duration)).unwrap_or(i32::MAX)
}

/// A missing queue as `QueueNotFound` naming the portable name, anything else classified.
fn not_found_or<E, R>(operation: Operation, queue: &str, err: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let error = from_sdk(operation, err);
    if error.kind() == ErrorKind::QueueNotFound {
        queue_not_found(operation, queue)
    } else {
        error
    }
}

fn token_of(operation: Operation, token: &AckToken) -> Result<Held<'_>> {
    token::read(token)
        .ok_or_else(|| invalid_input(operation, "the token was not made by the SQS backend"))
}

#[async_trait]
impl Broker for SqsBroker {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Creates the dead-letter queue (when `queue` has one), then `queue` with its visibility
    /// timeout, `FifoQueue` and `ContentBasedDeduplication` for `.fifo` names, and a redrive
    /// policy to the dead-letter queue after `max_receives`. A queue that exists with other
    /// attributes is kept, and given this broker's redrive policy.
    async fn declare_queue(&self, queue: &str) -> Result<()> {
        let op = Operation::DeclareQueue;
        self.check(op, queue)?;
        let mut attributes = self.base_attributes(queue);
        let redrive = match self.dead_letter_queue(queue) {
            Some(dlq) => {
                let (dlq_url, _) = self.create(&dlq, &self.base_attributes(&dlq)).await?;
                let arn = self.queue_arn(&dlq_url).await?;
                let policy = serde_json::json!({
                    "deadLetterTargetArn": arn,
                    "maxReceiveCount": self.config.max_receives,
                })
                .to_string();
                attributes.push((QueueAttributeName::RedrivePolicy, policy.clone()));
                Some(policy)
            }
            None => None,
        };
        let (url, created) = self.create(queue, &attributes).await?;
        if let (false, Some(policy)) = (created, redrive) {
            self.client
                .set_queue_attributes()
                .queue_url(&url)
                .attributes(QueueAttributeName::RedrivePolicy, policy)
                .send()
                .await
                .map_err(|e| from_sdk(op, &e))?;
        }
        if created {
            self.remember(
                queue,
                Resolved {
                    url,
                    content_dedup: is_fifo(queue),
                },
            );
        }
        Ok(())
    }

    async fn delete_queue(&self, queue: &str) -> Result<()> {
        self.check(Operation::DeleteQueue, queue)?;
        self.delete_one(queue).await?;
        if let Some(dlq) = self.dead_letter_queue(queue) {
            self.delete_one(&dlq).await?;
        }
        Ok(())
    }

    /// Sends the batch in one `SendMessageBatch` call, or a few when the bodies add up to
    /// more than SQS takes in one. A message SQS refused fails the call: its first refusal is
    /// the error (retryable when SQS blamed itself), and a retry may duplicate the others.
    async fn publish(&self, queue: &str, batch: &[Message]) -> Result<()> {
        let op = Operation::Publish;
        self.check(op, queue)?;
        let resolved = self.resolve(op, queue).await?;
        let mut entries = Vec::with_capacity(batch.len());
        for (index, message) in batch.iter().enumerate() {
            entries.push(self.entry(index, message, queue, &resolved)?);
        }
        let mut rest = entries.as_slice();
        while !rest.is_empty() {
            let mut size = 0;
            let take = rest
                .iter()
                .take_while(|entry| {
                    size += entry.message_body().len();
                    size <= MAX_SQS_MESSAGE
                })
                .count()
                .max(1);
            let (chunk, after) = rest.split_at(take);
            rest = after;
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&resolved.url)
                .set_entries(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| self.gone(queue, not_found_or(op, queue, &e)))?;
            if let Some(failed) = sent.failed().first() {
                let error =
                    entry_failure(op, failed.code(), failed.sender_fault(), failed.message());
                return Err(Error::new(
                    error.kind(),
                    BACKEND,
                    op,
                    format!(
                        "{} of {} messages refused, message {}: {}",
                        sent.failed().len(),
                        chunk.len(),
                        failed.id(),
                        error.detail()
                    ),
                )
                .retryable(error.is_retryable()));
            }
        }
        Ok(())
    }

    /// Long-polls for up to 20 s at a time (`WaitTimeSeconds`) until `wait` has passed; the
    /// last part of a wait shorter than a second is spent in short polls 100 ms apart. The
    /// capacity is read before each poll: SQS fixes the count when a poll starts.
    async fn receive_up_to(
        &self,
        queue: &str,
        capacity: &Capacity<'_>,
        wait: Duration,
    ) -> Result<Vec<Received>> {
        let op = Operation::Receive;
        self.check(op, queue)?;
        let resolved = self.resolve(op, queue).await?;
        let deadline = Instant::now().checked_add(wait);
        let left = || {
            deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            })
        };
        let visibility = seconds_i32(self.config.visibility_timeout);
        loop {
            let poll = long_poll_seconds(left(), self.config.wait_time_seconds);
            let answer = self
                .client
                .receive_message()
                .queue_url(&resolved.url)
                .max_number_of_messages(i32::try_from(capacity.now().min(MAX_BATCH)).unwrap_or(1))
                .wait_time_seconds(i32::try_from(poll).unwrap_or(0))
                .visibility_timeout(visibility)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                .send()
                .await
                .map_err(|e| self.gone(queue, not_found_or(op, queue, &e)))?;
            let messages = answer.messages();
            if !messages.is_empty() {
                return messages.iter().map(|m| self.received(m)).collect();
            }
            if self.closed.load(AtomicOrdering::SeqCst) {
                return Err(closed(op));
            }
            let left = left();
            if left.is_zero() {
                return Ok(Vec::new());
            }
            if poll == 0 {
                tokio::time::sleep(left.min(SHORT_POLL_PAUSE)).await;
            }
        }
    }

    /// Deletes the deliveries in one `DeleteMessageBatch` call. A stale receipt handle SQS
    /// refuses is `LeaseLost`; SQS may also accept one (see [`StaleTokens::MaySettle`]).
    async fn ack(&self, queue: &str, tokens: &[AckToken]) -> Result<()> {
        let op = Operation::Ack;
        self.check(op, queue)?;
        let resolved = self.resolve(op, queue).await?;
        let mut entries = Vec::with_capacity(tokens.len());
        for (index, token) in tokens.iter().enumerate() {
            let held = token_of(op, token)?;
            entries.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(held.receipt)
                    .build()
                    .map_err(|e| protocol(op, format!("batch entry: {e}")))?,
            );
        }
        let deleted = self
            .client
            .delete_message_batch()
            .queue_url(&resolved.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| self.gone(queue, not_found_or(op, queue, &e)))?;
        match deleted.failed().first() {
            None => Ok(()),
            Some(failed) => {
                let error =
                    entry_failure(op, failed.code(), failed.sender_fault(), failed.message());
                Err(Error::new(
                    error.kind(),
                    BACKEND,
                    op,
                    format!(
                        "{} of {} deliveries not deleted, delivery {}: {}",
                        deleted.failed().len(),
                        tokens.len(),
                        failed.id(),
                        error.detail()
                    ),
                )
                .retryable(error.is_retryable()))
            }
        }
    }

    /// Requeue makes the delivery visible at once (`ChangeMessageVisibility` to 0), a delay
    /// after that many seconds (rounded up). Dead-lettering sends a copy with header
    /// `x-dead-letter-reason` to the dead-letter queue, then deletes the delivery: if the
    /// delete fails, the message stays here too (at least once).
    async fn nack(&self, queue: &str, token: &AckToken, action: &NackAction) -> Result<()> {
        let op = Operation::Nack;
        self.check(op, queue)?;
        let held = token_of(op, token)?;
        match action {
            NackAction::Requeue => self.change_visibility(op, queue, held.receipt, 0).await,
            NackAction::RequeueAfter(delay) => {
                self.change_visibility(op, queue, held.receipt, seconds_i32(*delay))
                    .await
            }
            NackAction::DeadLetter { reason } => self.dead_letter(queue, &held, reason).await,
        }
    }

    /// `ChangeMessageVisibility` to `lease` from now, rounded up to whole seconds.
    async fn extend_lease(&self, queue: &str, token: &AckToken, lease: Duration) -> Result<()> {
        let op = Operation::ExtendLease;
        self.check(op, queue)?;
        let held = token_of(op, token)?;
        self.change_visibility(op, queue, held.receipt, seconds_i32(lease))
            .await
    }

    fn dead_letter_queue(&self, queue: &str) -> Option<String> {
        naming::dead_letter_queue(queue)
    }

    /// SQS's approximate attributes: visible, not visible (in flight) and delayed messages,
    /// which settle within about a minute of a change on SQS itself.
    async fn count(&self, queue: &str) -> Result<QueueCounts> {
        let resolved = self.resolve(Operation::Count, queue).await?;
        let answer = self
            .client
            .get_queue_attributes()
            .queue_url(&resolved.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| not_found_or(Operation::Count, queue, &e))?;
        let attribute = |name: QueueAttributeName| {
            let value = answer.attributes().and_then(|a| a.get(&name));
            value.and_then(|v| v.parse::<u64>().ok())
        };
        Ok(QueueCounts {
            ready: attribute(QueueAttributeName::ApproximateNumberOfMessages).ok_or_else(|| {
                protocol(
                    Operation::Count,
                    "GetQueueAttributes answered without ApproximateNumberOfMessages",
                )
            })?,
            in_flight: attribute(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: attribute(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }

    /// Marks the broker closed; SQS keeps no connection state, so deliveries come back after
    /// their lease.
    async fn close(&self) -> Result<()> {
        self.closed.store(true, AtomicOrdering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_and_delays_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(seconds_i32(Duration::MAX), i32::MAX);
    }

    #[test]
    fn a_wait_of_whole_seconds_long_polls_for_them_from_its_first_moment() {
        let worker_wait = Duration::from_secs(1);
        let a_moment_later = worker_wait - Duration::from_micros(30);
        assert_eq!(long_poll_seconds(a_moment_later, MAX_POLL), 1);
        assert_eq!(long_poll_seconds(Duration::from_millis(900), MAX_POLL), 0);
        assert_eq!(long_poll_seconds(Duration::from_secs(60), MAX_POLL), 20);
        assert_eq!(
            long_poll_seconds(Duration::from_secs(60), Duration::from_secs(5)),
            5
        );
        assert_eq!(long_poll_seconds(Duration::MAX, MAX_POLL), 20);
    }

    #[test]
    fn the_largest_payload_fits_in_an_sqs_message_after_both_base64_layers() {
        let message = Message::new(vec![b'x'; MAX_PAYLOAD]);
        let long_queue = "q".repeat(80);
        let body = envelope::seal(&message, &long_queue).unwrap();
        assert!(body.len() <= MAX_SQS_MESSAGE, "{} bytes", body.len());
    }

    #[test]
    fn standard_and_fifo_brokers_declare_what_their_queues_keep() {
        let standard = SqsBroker::capabilities_for(&SqsConfig::default());
        assert_eq!(standard.ordering, Ordering::None);
        assert_eq!(standard.deduplication, Deduplication::None);
        assert_eq!(standard.delay, Delay::UpTo { max: MAX_DELAY });
        let fifo = SqsBroker::capabilities_for(&SqsConfig {
            queue_kind: QueueKind::Fifo,
            ..SqsConfig::default()
        });
        assert_eq!(fifo.ordering, Ordering::PerKey);
        assert_eq!(
            fifo.deduplication,
            Deduplication::ById {
                window: DEDUP_WINDOW
            }
        );
        assert_eq!(fifo.delay, Delay::Unsupported);
        assert_eq!(fifo.max_batch, 10);
    }
}
