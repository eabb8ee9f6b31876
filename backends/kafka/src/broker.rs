//! [`KafkaBroker`]: a topic per queue, a consumer group per queue, commits that never pass an
//! unacked message.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering as AtomicOrdering},
    },
    time::Duration,
};

use async_trait::async_trait;
use broker_core::{
    AckToken, Broker, Capabilities, Capacity, Counting, DEAD_LETTER_REASON_HEADER, DeadLetter,
    Deduplication, Delay, DeliveryGuarantee, Error, ErrorKind, Message, NackAction, Operation,
    Ordering, Persistence, Received, Redelivery, Result, StaleTokens,
};
use futures::future::join_all;
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::RDKafkaErrorCode as Code,
    producer::{FutureProducer, FutureRecord, Producer},
};

use crate::{
    BACKEND,
    config::KafkaConfig,
    consumer::{QueueConsumer, Token},
    error::{closed, connect_error, from_kafka, queue_not_found},
    partitions::Taken,
    record::{Record, due_in},
};

/// The most messages one publish or receive handles.
pub const MAX_BATCH: usize = 500;
/// The largest message accepted (payload, headers and properties), in bytes. A record also
/// carries the backend's own headers; [`MAX_RECORD`] leaves room for them.
pub const MAX_PAYLOAD: usize = 1_000_000;
/// The producer's `message.max.bytes`: 1 MiB, what a Kafka broker accepts by default.
pub(crate) const MAX_RECORD: usize = 1_048_576;
/// How often `declare_queue` asks whether a topic it created is visible yet.
const WARM_ATTEMPTS: usize = 20;
/// How long a metadata or admin request may take.
const ROUND_TRIP: Duration = Duration::from_secs(10);

/// The Kafka driver. Cheap to share behind an `Arc`; one producer for every queue, and one
/// consumer (a member of the queue's group) per queue this broker receives from.
pub struct KafkaBroker {
    config: KafkaConfig,
    capabilities: Capabilities,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// Topics known to exist.
    topics: Mutex<HashSet<String>>,
    consumers: Mutex<HashMap<String, Arc<QueueConsumer>>>,
    closed: AtomicBool,
}

impl fmt::Debug for KafkaBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaBroker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl KafkaBroker {
    /// Connects to the bootstrap brokers and checks that they answer.
    ///
    /// # Errors
    /// [`ErrorKind::Connection`] naming the brokers and the cause when none answers within
    /// 10 s; [`ErrorKind::Configuration`] for settings librdkafka refuses.
    pub async fn connect(config: KafkaConfig) -> Result<Self> {
        let producer: FutureProducer = config
            .producer()
            .create()
            .map_err(|e| from_kafka(Operation::Connect, &e))?;
        let admin: AdminClient<DefaultClientContext> = config
            .client()
            .create()
            .map_err(|e| from_kafka(Operation::Connect, &e))?;
        let probe = producer.clone();
        let bootstrap = config.bootstrap_servers();
        tokio::task::spawn_blocking(move || probe.client().fetch_metadata(None, ROUND_TRIP))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Backend,
                    BACKEND,
                    Operation::Connect,
                    e.to_string(),
                )
            })?
            .map_err(|e| connect_error(&bootstrap, &e))?;
        let capabilities = capabilities(&config);
        Ok(Self {
            config,
            capabilities,
            producer,
            admin,
            topics: Mutex::default(),
            consumers: Mutex::default(),
            closed: AtomicBool::new(false),
        })
    }

    fn check_open(&self, operation: Operation) -> Result<()> {
        if self.closed.load(AtomicOrdering::SeqCst) {
            Err(closed(operation))
        } else {
            Ok(())
        }
    }

    /// Fails with `QueueNotFound` unless `topic` exists (asked once, then remembered).
    async fn ensure_topic(&self, operation: Operation, topic: &str) -> Result<()> {
        if lock(&self.topics).contains(topic) {
            return Ok(());
        }
        let producer = self.producer.clone();
        let name = topic.to_owned();
        let metadata = tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(Some(&name), ROUND_TRIP)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Backend, BACKEND, operation, e.to_string()))?
        .map_err(|e| from_kafka(operation, &e))?;
        let exists = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !exists {
            return Err(queue_not_found(operation, topic));
        }
        lock(&self.topics).insert(topic.to_owned());
        Ok(())
    }

    /// The consumer of `queue`, joining its group on first use.
    async fn consumer(&self, queue: &str) -> Result<Arc<QueueConsumer>> {
        if let Some(consumer) = lock(&self.consumers).get(queue) {
            return Ok(consumer.clone());
        }
        self.ensure_topic(Operation::Receive, queue).await?;
        let mut consumers = lock(&self.consumers);
        if let Some(consumer) = consumers.get(queue) {
            return Ok(consumer.clone());
        }
        let consumer = Arc::new(QueueConsumer::subscribe(&self.config, queue)?);
        consumers.insert(queue.to_owned(), consumer.clone());
        Ok(consumer)
    }

    /// Writes `records` to `topic` and waits until every one is acknowledged by all in-sync
    /// replicas.
    async fn produce(&self, operation: Operation, topic: &str, records: &[Record]) -> Result<()> {
        let mut pending = Vec::with_capacity(records.len());
        for record in records {
            let mut kafka = FutureRecord::<str, [u8]>::to(topic)
                .payload(&record.payload)
                .headers(record.wire_headers());
            if let Some(key) = &record.key {
                kafka = kafka.key(key.as_str());
            }
            let delivery = self
                .producer
                .send_result(kafka)
                .map_err(|(e, _)| from_kafka(operation, &e))?;
            pending.push(delivery);
        }
        for outcome in join_all(pending).await {
            match outcome {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(from_kafka(operation, &e)),
                Err(_canceled) => {
                    return Err(Error::new(
                        ErrorKind::Connection,
                        BACKEND,
                        operation,
                        "the producer was shut down before the broker answered",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Publishes a copy of `record` to the dead-letter topic of `queue` with `reason`.
    async fn dead_letter(
        &self,
        operation: Operation,
        queue: &str,
        record: &Record,
        reason: &str,
    ) -> Result<()> {
        let Some(dlq) = self.dead_letter_queue(queue) else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                BACKEND,
                operation,
                format!("`{queue}` is a dead-letter queue; dead letters end there"),
            ));
        };
        let mut dead = Record {
            receives: 0,
            not_before: None,
            ..record.clone()
        };
        dead.headers
            .insert(DEAD_LETTER_REASON_HEADER.to_owned(), reason.into());
        self.produce(operation, &dlq, &[dead]).await
    }

    fn exhausted(&self, queue: &str, receive_count: u32) -> bool {
        receive_count >= self.config.max_receives && self.dead_letter_queue(queue).is_some()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the backend keeps with `config`.
fn capabilities(config: &KafkaConfig) -> Capabilities {
    Capabilities {
        backend: BACKEND,
        delivery: DeliveryGuarantee::AtLeastOnce,
        ordering: Ordering::PerKey,
        deduplication: Deduplication::None,
        redelivery: Redelivery::OnDisconnect,
        stale_tokens: StaleTokens::MaySettle,
        delay: Delay::UpTo {
            max: config.max_delay,
        },
        dead_letter: DeadLetter::Queue {
            max_receives: config.max_receives,
        },
        persistence: Persistence::Transient,
        // A topic's backlog is its group's lag (high watermark less committed offset), but the
        // test broker's high watermark is wrong for multi-record batches, so no count here is
        // tested: none is promised. Messages handed out and not committed are known only to
        // the consumer holding them.
        counting: Counting::Unsupported,
        max_batch: MAX_BATCH,
        max_payload: MAX_PAYLOAD,
        // A waiting receive polls the consumer, which the fetch returns to as soon as a
        // record arrives.
        idle_pickup: Duration::from_secs(1),
    }
}

#[async_trait]
impl Broker for KafkaBroker {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Creates the topic (and `<queue>.dlq`) with the configured partitions and replicas;
    /// a topic that exists already is kept as it is.
    async fn declare_queue(&self, queue: &str) -> Result<()> {
        self.check_open(Operation::DeclareQueue)?;
        let names: Vec<String> = std::iter::once(queue.to_owned())
            .chain(self.dead_letter_queue(queue))
            .collect();
        let topics: Vec<NewTopic<'_>> = names
            .iter()
            .map(|name| {
                NewTopic::new(
                    name,
                    self.config.partitions,
                    TopicReplication::Fixed(self.config.replication),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(ROUND_TRIP));
        let results = self
            .admin
            .create_topics(&topics, &options)
            .await
            .map_err(|e| from_kafka(Operation::DeclareQueue, &e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, Code::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(Error::new(
                        ErrorKind::Backend,
                        BACKEND,
                        Operation::DeclareQueue,
                        format!("cannot create topic `{topic}`: {code}"),
                    ));
                }
            }
        }
        // Asking for the new topics' metadata now puts their leaders in the producer's cache:
        // the first publish then does not wait for librdkafka's next topic scan (a second).
        // A cluster may take a moment to show a new topic; publishing checks again anyway.
        for name in &names {
            for _ in 0..WARM_ATTEMPTS {
                match self.ensure_topic(Operation::DeclareQueue, name).await {
                    Err(e) if e.kind() == ErrorKind::QueueNotFound => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    found => {
                        found?;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    async fn delete_queue(&self, queue: &str) -> Result<()> {
        self.check_open(Operation::DeleteQueue)?;
        let names: Vec<String> = std::iter::once(queue.to_owned())
            .chain(self.dead_letter_queue(queue))
            .collect();
        let consumers: Vec<_> = {
            let mut consumers = lock(&self.consumers);
            names.iter().filter_map(|n| consumers.remove(n)).collect()
        };
        // Leave the groups before the topics go: a consumer whose topic vanishes under it
        // never finishes closing.
        let _ = tokio::task::spawn_blocking(move || drop(consumers)).await;
        {
            let mut topics = lock(&self.topics);
            for name in &names {
                topics.remove(name);
            }
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let options = AdminOptions::new().operation_timeout(Some(ROUND_TRIP));
        let results = self
            .admin
            .delete_topics(&refs, &options)
            .await
            .map_err(|e| from_kafka(Operation::DeleteQueue, &e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, Code::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => {
                    return Err(Error::new(
                        ErrorKind::Backend,
                        BACKEND,
                        Operation::DeleteQueue,
                        format!("cannot delete topic `{topic}`: {code}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Each message becomes a record keyed by its ordering key (same key, same partition,
    /// publish order). A delayed message is written at once with the time it is due.
    async fn publish(&self, queue: &str, batch: &[Message]) -> Result<()> {
        self.check_open(Operation::Publish)?;
        // rdkafka passes header names to librdkafka as C strings: a NUL cannot travel.
        for (index, message) in batch.iter().enumerate() {
            if let Some(name) = message.headers.keys().find(|name| name.contains('\0')) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    BACKEND,
                    Operation::Publish,
                    format!(
                        "message {index}: header name {name:?} holds a NUL byte, which Kafka headers cannot carry"
                    ),
                ));
            }
        }
        self.ensure_topic(Operation::Publish, queue).await?;
        let records: Vec<Record> = batch.iter().map(Record::publish).collect();
        self.produce(Operation::Publish, queue, &records).await
    }

    /// Records of one partition are handed out in offset order. A record read for the
    /// `max_receives`-th time and more goes to the dead-letter topic instead.
    async fn receive_up_to(
        &self,
        queue: &str,
        capacity: &Capacity<'_>,
        wait: Duration,
    ) -> Result<Vec<Received>> {
        self.check_open(Operation::Receive)?;
        let consumer = self.consumer(queue).await?;
        let taken = consumer.receive(capacity, wait).await?;
        let mut received = Vec::with_capacity(taken.len());
        for taken in taken {
            let exhausted = taken.receive_count > self.config.max_receives;
            if exhausted && self.dead_letter_queue(queue).is_some() {
                let reason = format!(
                    "received {} times; max_receives is {}",
                    taken.receive_count, self.config.max_receives
                );
                self.dead_letter(Operation::Receive, queue, &taken.record, &reason)
                    .await?;
                let token = Token::parse(Operation::Receive, &Token::of(&taken))?;
                consumer.settle(Operation::Receive, &[token]).await?;
                continue;
            }
            received.push(into_received(&taken));
        }
        Ok(received)
    }

    /// Commits, per partition, up to the first delivery not yet acked. An ack whose partition
    /// went to another consumer is `LeaseLost`: that consumer delivers the message again.
    async fn ack(&self, queue: &str, tokens: &[AckToken]) -> Result<()> {
        self.check_open(Operation::Ack)?;
        let tokens = tokens
            .iter()
            .map(|t| Token::parse(Operation::Ack, t))
            .collect::<Result<Vec<_>>>()?;
        let consumer = self.consumer(queue).await?;
        consumer.settle(Operation::Ack, &tokens).await
    }

    /// Requeue (with or without delay) writes a copy to the end of the same topic, with the
    /// receive count so far, then acks the original: the copy comes after later messages of
    /// its key. After `max_receives` receives, and for a dead-letter nack, the copy goes to
    /// `<queue>.dlq` with the reason in `x-dead-letter-reason`. A crash between the copy and
    /// the ack delivers the message twice.
    async fn nack(&self, queue: &str, token: &AckToken, action: &NackAction) -> Result<()> {
        self.check_open(Operation::Nack)?;
        let token = Token::parse(Operation::Nack, token)?;
        let consumer = self.consumer(queue).await?;
        let Some((record, receive_count)) = consumer.held(token) else {
            return Err(Error::new(
                ErrorKind::LeaseLost,
                BACKEND,
                Operation::Nack,
                format!(
                    "the delivery's partition of `{queue}` went to another consumer, which delivers it again"
                ),
            ));
        };
        match action {
            NackAction::DeadLetter { reason } => {
                self.dead_letter(Operation::Nack, queue, &record, reason)
                    .await?;
            }
            NackAction::Requeue | NackAction::RequeueAfter(_)
                if self.exhausted(queue, receive_count) =>
            {
                let reason = format!(
                    "received {receive_count} times; max_receives is {}",
                    self.config.max_receives
                );
                self.dead_letter(Operation::Nack, queue, &record, &reason)
                    .await?;
            }
            NackAction::Requeue | NackAction::RequeueAfter(_) => {
                let delay = match action {
                    NackAction::RequeueAfter(delay) if !delay.is_zero() => Some(due_in(*delay)),
                    _ => None,
                };
                let copy = Record {
                    receives: receive_count,
                    not_before: delay,
                    ..(*record).clone()
                };
                self.produce(Operation::Nack, queue, &[copy]).await?;
            }
        }
        consumer.settle(Operation::Nack, &[token]).await
    }

    async fn extend_lease(&self, _queue: &str, _token: &AckToken, _lease: Duration) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            BACKEND,
            Operation::ExtendLease,
            "Kafka deliveries have no lease: they stay with their consumer until it acks or leaves its group",
        ))
    }

    /// Leaves every consumer group (the partitions, and the messages held, go to the other
    /// members at once) and flushes the producer.
    async fn close(&self) -> Result<()> {
        if self.closed.swap(true, AtomicOrdering::SeqCst) {
            return Ok(());
        }
        let consumers: Vec<_> = lock(&self.consumers).drain().map(|(_, c)| c).collect();
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || {
            drop(consumers);
            producer.flush(ROUND_TRIP)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Backend, BACKEND, Operation::Close, e.to_string()))?
        .map_err(|e| from_kafka(Operation::Close, &e))
    }
}

fn into_received(taken: &Taken) -> Received {
    let record = &taken.record;
    Received {
        id: record.id.clone(),
        payload: record.payload.clone(),
        headers: record.headers.clone(),
        properties: record.properties.clone(),
        ordering_key: record.key.clone(),
        receive_count: taken.receive_count,
        token: Token::of(taken),
    }
}
