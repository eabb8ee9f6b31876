//! [`AmqpBroker`], the RabbitMQ driver.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use broker_core::{
    AckToken, Broker, Capabilities, Capacity, Counting, DEAD_LETTER_REASON_HEADER, DeadLetter,
    Delay, DeliveryGuarantee, Error, ErrorKind, Message, NackAction, Operation, Ordering,
    Persistence, Properties, QueueCounts, Received, Redelivery, Result, StaleTokens,
};
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use lapin::{
    BasicProperties, Confirmation, ExchangeKind,
    message::Delivery as LapinDelivery,
    options::{
        BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    },
    types::{AMQPValue, FieldTable, ShortString},
};

use crate::{
    AmqpConfig, BACKEND,
    connect::{Link, Session},
    consumer::{Consumer, Stored},
    error::{backend, from_lapin, invalid_input, lease_lost, queue_not_found},
    table,
    topology::{self, RECEIVES_HEADER, short},
};

/// The most messages one publish, receive or ack call handles.
pub const MAX_BATCH: usize = 1000;
/// The largest message accepted, in bytes (RabbitMQ 3.10 accepts up to 128 MiB; large
/// messages stall a queue's other traffic, so this stays well below).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
/// The longest delay accepted for publishes and nacks.
pub const MAX_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);

/// A RabbitMQ broker.
///
/// What a caller may rely on:
/// - `publish` returns `Ok` only once RabbitMQ confirmed every message as stored on a durable
///   queue (persistent, `delivery_mode` 2); a message it could not route (no such queue) or
///   that it nacked is an error, never a silent loss. Confirms of one call and of concurrent
///   calls are awaited together, up to [`AmqpConfig::confirm_window`] outstanding;
/// - a delivery stays with this connection until it is acked or nacked; when the connection
///   drops (close, crash, network), RabbitMQ hands it out again marked redelivered;
/// - `nack` publishes a copy (back to the queue, to a delay queue, or to the dead-letter
///   queue with its reason) and acks the original once the copy is confirmed: a crash in
///   between duplicates the message, never loses it;
/// - receive counts are exact across nacks and a lower bound across disconnects: a copy
///   records the receives so far, and a redelivery adds one however many consumers died
///   holding it. A message received more than `max_receives` times goes to `<queue>.dlq`;
/// - after the connection drops, the next call connects again (failing fast during a
///   backoff of 100 ms doubling up to 10 s); the tokens of the old connection settle nothing.
#[derive(Clone)]
pub struct AmqpBroker {
    link: Arc<Link>,
    capabilities: Capabilities,
}

impl std::fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBroker")
            .field("config", self.link.config())
            .finish_non_exhaustive()
    }
}

impl AmqpBroker {
    /// Connects to the server `config` names.
    ///
    /// # Errors
    /// A connection error naming the endpoint and the cause (refused, timeout, login refused,
    /// no such vhost).
    pub async fn connect(config: AmqpConfig) -> Result<Self> {
        if config.max_receives == 0 || config.confirm_window == 0 {
            return Err(Error::configuration(
                Operation::Connect,
                "max_receives and confirm_window must be at least 1",
            ));
        }
        let capabilities = Capabilities {
            delivery: DeliveryGuarantee::AtLeastOnce,
            // RabbitMQ keeps publish order per queue, but a nack's copy joins the back and
            // consumers that die give their messages back late: no order is promised.
            ordering: Ordering::None,
            redelivery: Redelivery::OnDisconnect,
            stale_tokens: StaleTokens::MaySettle,
            delay: Delay::UpTo { max: MAX_DELAY },
            dead_letter: DeadLetter::Queue {
                max_receives: config.max_receives,
            },
            persistence: Persistence::Durable,
            counting: Counting::Exact,
            max_batch: MAX_BATCH,
            max_payload: MAX_PAYLOAD,
            ..Capabilities::minimal(BACKEND)
        };
        Ok(Self {
            link: Arc::new(Link::open(config).await?),
            capabilities,
        })
    }

    /// Runs `work` on a fresh channel (declarations and deletions: a channel error such as
    /// `PRECONDITION_FAILED` closes only that channel).
    async fn on_new_channel<T>(
        &self,
        operation: Operation,
        work: impl AsyncFnOnce(&lapin::Channel) -> lapin::Result<T>,
    ) -> Result<T> {
        let session = self.link.session(operation).await?;
        let channel = session
            .connection
            .create_channel()
            .await
            .map_err(|e| self.fail(&session, operation, &e))?;
        let result = work(&channel).await;
        if channel.status().connected() {
            let _ = channel.close(200, "done".into()).await;
        }
        result.map_err(|e| self.fail(&session, operation, &e))
    }

    fn fail(&self, session: &Session, operation: Operation, err: &lapin::Error) -> Error {
        self.link.check(session);
        from_lapin(operation, err)
    }

    /// Publishes `messages` through the default exchange (each to its routing key, a queue of
    /// `queue`'s) and waits for every confirm, with at most the window's size outstanding.
    /// `Ok` only when RabbitMQ confirmed every message as stored.
    async fn publish_confirmed(
        &self,
        session: &Session,
        operation: Operation,
        queue: &str,
        messages: Vec<(ShortString, &[u8], BasicProperties)>,
    ) -> Result<()> {
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let total = messages.len();
        let outcomes = session
            .window
            .send_all(messages, |(routing_key, payload, properties)| {
                session.publisher.basic_publish(
                    "".into(),
                    routing_key,
                    options,
                    payload,
                    properties,
                )
            })
            .await
            .map_err(|e| self.fail(session, operation, &e))?;
        let mut refused = 0;
        for outcome in outcomes {
            match outcome.map_err(|e| self.fail(session, operation, &e))? {
                Confirmation::Ack(None) | Confirmation::NotRequested => {}
                Confirmation::Ack(Some(returned)) => {
                    return Err(if returned.reply_code == 312 {
                        queue_not_found(operation, queue)
                    } else {
                        backend(
                            operation,
                            format!("returned by RabbitMQ: {}", returned.reply_text),
                        )
                    });
                }
                Confirmation::Nack(_) => refused += 1,
            }
        }
        if refused > 0 {
            return Err(Error::new(
                ErrorKind::Unavailable,
                BACKEND,
                operation,
                format!(
                    "RabbitMQ refused to store {refused} of {total} messages for `{queue}` (nack: \
                     a full queue that rejects publishes, or a broker fault); the others are stored"
                ),
            ));
        }
        Ok(())
    }

    /// Publishes a copy of a received message to `target`, recording `receives` and any
    /// `extra` header, and waits for its confirm.
    async fn publish_copy(
        &self,
        session: &Session,
        operation: Operation,
        target: &str,
        stored: &Stored,
        extra: Option<(&str, &str)>,
    ) -> Result<()> {
        let mut headers = stored.table.clone();
        headers.insert(
            RECEIVES_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(stored.receive_count)),
        );
        if let Some((name, value)) = extra {
            headers.insert(name.into(), AMQPValue::LongString(value.into()));
        }
        let properties = stored.properties.clone().with_headers(headers);
        let routing = short(target).map_err(|detail| invalid_input(operation, detail))?;
        self.publish_confirmed(
            session,
            operation,
            target,
            vec![(routing, &stored.payload, properties)],
        )
        .await
    }

    async fn declare_durable(
        &self,
        operation: Operation,
        queue: &str,
        arguments: FieldTable,
    ) -> Result<()> {
        let name = short(queue).map_err(|detail| invalid_input(operation, detail))?;
        self.on_new_channel(operation, async |channel| {
            channel
                .queue_declare(name, durable_queue(), arguments)
                .await
                .map(drop)
        })
        .await
    }

    /// The consumer of `queue` on `session`, started with room for `room` if there is none
    /// or the last one ended.
    async fn consumer(&self, session: &Session, queue: &str, room: usize) -> Result<Arc<Consumer>> {
        let mut consumers = session.consumers.lock().await;
        if let Some(consumer) = consumers.get(queue) {
            if consumer.usable() {
                return Ok(consumer.clone());
            }
            // Closing its channel gives the deliveries it still held back to their queue.
            let channel = consumer.channel.clone();
            tokio::spawn(async move {
                if channel.status().connected() {
                    let _ = channel.close(200, "consumer ended".into()).await;
                }
            });
        }
        let consumer = Arc::new(
            Consumer::start(session, queue, room)
                .await
                .inspect_err(|_| self.link.check(session))?,
        );
        consumers.insert(queue.to_owned(), consumer.clone());
        Ok(consumer)
    }

    /// The delivery as handed out, or `None` after moving it to the dead-letter queue
    /// because it was received too often.
    async fn accept(
        &self,
        session: &Session,
        consumer: &Consumer,
        queue: &str,
        delivery: LapinDelivery,
    ) -> Result<Option<Received>> {
        let tag = delivery.delivery_tag;
        let table = delivery.properties.headers().clone().unwrap_or_default();
        let before = table::count(&table, RECEIVES_HEADER).unwrap_or(0);
        let receive_count = before
            .saturating_add(1)
            .saturating_add(u32::from(delivery.redelivered));
        let properties = delivery.properties;
        let stored = Stored {
            payload: Bytes::from(delivery.data),
            table,
            properties,
            receive_count,
        };
        let max_receives = self.link.config().max_receives;
        if receive_count > max_receives
            && let Some(dlq) = self.dead_letter_queue(queue)
        {
            let reason = format!(
                "received {receive_count} times without an ack (max_receives {max_receives})"
            );
            tracing::warn!(queue, %reason, "dead-lettering a message");
            self.declare_durable(Operation::Receive, &dlq, FieldTable::default())
                .await?;
            self.publish_copy(
                session,
                Operation::Receive,
                &dlq,
                &stored,
                Some((DEAD_LETTER_REASON_HEADER, &reason)),
            )
            .await?;
            consumer.send_ack(tag, false).await?;
            return Ok(None);
        }
        let properties = &stored.properties;
        let text = |value: &Option<ShortString>| value.as_ref().map(ToString::to_string);
        let header_id = stored
            .table
            .inner()
            .get("id")
            .and_then(|value| match value {
                AMQPValue::LongString(s) => Some(s.to_string()),
                AMQPValue::ShortString(s) => Some(s.to_string()),
                _ => None,
            });
        let id = text(properties.message_id())
            .or_else(|| text(properties.correlation_id()))
            .or(header_id)
            .unwrap_or_else(|| format!("amqp-{}-{}-{tag}", session.id, consumer.channel.id()));
        let received = Received {
            id,
            payload: stored.payload.clone(),
            headers: table::from_table(&stored.table, topology::is_transit_header),
            properties: Properties {
                content_type: text(properties.content_type()),
                content_encoding: text(properties.content_encoding()),
                correlation_id: text(properties.correlation_id()),
                reply_to: text(properties.reply_to()),
            },
            ordering_key: None,
            receive_count,
            token: AckToken::new(format!("{}.{}.{tag}", session.id, consumer.channel.id())),
        };
        consumer.hold(tag, stored);
        Ok(Some(received))
    }

    /// The consumer and delivery tag a token names, if it belongs to the open connection.
    async fn holder(
        &self,
        operation: Operation,
        queue: &str,
        token: &AckToken,
    ) -> Result<Option<(Arc<Session>, Arc<Consumer>, u64)>> {
        let Some(session) = self.link.current(operation)? else {
            return Ok(None);
        };
        let mut parts = token.as_str().split('.');
        let (Some(session_id), Some(channel), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let (Ok(session_id), Ok(channel), Ok(tag)) = (
            session_id.parse::<u64>(),
            channel.parse::<u16>(),
            tag.parse::<u64>(),
        ) else {
            return Ok(None);
        };
        if session_id != session.id {
            return Ok(None);
        }
        let consumer = session.consumers.lock().await.get(queue).cloned();
        Ok(consumer
            .filter(|c| c.channel.id() == channel)
            .map(|c| (session, c, tag)))
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn message_properties(message: &Message, operation: Operation) -> Result<BasicProperties> {
    let short_property = |value: &str| {
        short(value).map_err(|detail| invalid_input(operation, format!("a property: {detail}")))
    };
    let headers =
        table::to_table(&message.headers).map_err(|detail| invalid_input(operation, detail))?;
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_priority(0)
        .with_message_id(uuid::Uuid::new_v4().simple().to_string().into())
        .with_headers(headers);
    let p = &message.properties;
    if let Some(value) = &p.content_type {
        properties = properties.with_content_type(short_property(value)?);
    }
    if let Some(value) = &p.content_encoding {
        properties = properties.with_content_encoding(short_property(value)?);
    }
    if let Some(value) = &p.correlation_id {
        properties = properties.with_correlation_id(short_property(value)?);
    }
    if let Some(value) = &p.reply_to {
        properties = properties.with_reply_to(short_property(value)?);
    }
    Ok(properties)
}

#[async_trait]
impl Broker for AmqpBroker {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Declares the queue, the direct exchange named like it and their binding as Celery
    /// does, and its dead-letter queue. Fails with `PRECONDITION_FAILED` (a
    /// [`ErrorKind::Backend`] error) when the queue exists with other arguments.
    async fn declare_queue(&self, queue: &str) -> Result<()> {
        let operation = Operation::DeclareQueue;
        let name = short(queue).map_err(|detail| invalid_input(operation, detail))?;
        let dlq = match self.dead_letter_queue(queue) {
            Some(dlq) => Some(short(&dlq).map_err(|detail| invalid_input(operation, detail))?),
            None => None,
        };
        self.on_new_channel(operation, async |channel| {
            channel
                .exchange_declare(
                    name.clone(),
                    ExchangeKind::Direct,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            channel
                .queue_declare(name.clone(), durable_queue(), FieldTable::default())
                .await?;
            channel
                .queue_bind(
                    name.clone(),
                    name.clone(),
                    name,
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            if let Some(dlq) = dlq {
                channel
                    .queue_declare(dlq, durable_queue(), FieldTable::default())
                    .await?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_queue(&self, queue: &str) -> Result<()> {
        let operation = Operation::DeleteQueue;
        let mut names = vec![queue.to_owned()];
        names.extend(self.dead_letter_queue(queue));
        let names = names
            .iter()
            .map(|n| short(n).map_err(|detail| invalid_input(operation, detail)))
            .collect::<Result<Vec<_>>>()?;
        let session = self.link.session(operation).await?;
        session.consumers.lock().await.remove(queue);
        let exchange = names[0].clone();
        self.on_new_channel(operation, async |channel| {
            for name in names {
                channel
                    .queue_delete(name, QueueDeleteOptions::default())
                    .await?;
            }
            channel
                .exchange_delete(exchange, ExchangeDeleteOptions::default())
                .await
        })
        .await
    }

    async fn publish(&self, queue: &str, batch: &[Message]) -> Result<()> {
        let operation = Operation::Publish;
        let session = self.link.session(operation).await?;
        let mut delays: Vec<Duration> = batch.iter().filter_map(|m| m.delay).collect();
        delays.sort_unstable();
        delays.dedup();
        for delay in &delays {
            let delay_queue = topology::delay_queue(queue, *delay);
            self.declare_durable(
                operation,
                &delay_queue,
                topology::delay_queue_arguments(queue, *delay),
            )
            .await?;
        }
        let mut messages = Vec::with_capacity(batch.len());
        for message in batch {
            let target = match message.delay {
                Some(delay) if !delay.is_zero() => topology::delay_queue(queue, delay),
                _ => queue.to_owned(),
            };
            let routing = short(&target).map_err(|_| queue_not_found(operation, queue))?;
            messages.push((
                routing,
                message.payload.as_ref(),
                message_properties(message, operation)?,
            ));
        }
        self.publish_confirmed(&session, operation, queue, messages)
            .await
    }

    async fn receive_up_to(
        &self,
        queue: &str,
        capacity: &Capacity<'_>,
        wait: Duration,
    ) -> Result<Vec<Received>> {
        let operation = Operation::Receive;
        let session = self.link.session(operation).await?;
        let consumer = self.consumer(&session, queue, capacity.now()).await?;
        consumer
            .fit_prefetch(capacity.now())
            .await
            .inspect_err(|_| self.link.check(&session))?;
        let mut stream = consumer.stream.lock().await;
        let deadline = tokio::time::Instant::now() + wait;
        let mut received = Vec::new();
        loop {
            let next = if received.is_empty() {
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                }
            } else if received.len() < capacity.now() {
                match stream.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            } else {
                break;
            };
            if !matches!(next, Some(Ok(_))) {
                consumer.end();
            }
            let delivery = match next {
                Some(Ok(delivery)) => delivery,
                Some(Err(err)) if received.is_empty() => {
                    return Err(self.fail(&session, operation, &err));
                }
                None if received.is_empty() => {
                    self.link.check(&session);
                    return Err(Error::new(
                        ErrorKind::Connection,
                        BACKEND,
                        operation,
                        format!(
                            "the consumer of `{queue}` ended (queue deleted or channel closed)"
                        ),
                    ));
                }
                // Hand out what arrived; the next receive starts a new consumer.
                Some(Err(_)) | None => break,
            };
            if let Some(delivery) = self.accept(&session, &consumer, queue, delivery).await? {
                received.push(delivery);
            }
        }
        Ok(received)
    }

    /// Acks with one `multiple` ack when that covers exactly these deliveries, else one ack
    /// each. A token of an earlier connection, or one already settled, is
    /// [`ErrorKind::LeaseLost`] (the others are acked).
    async fn ack(&self, queue: &str, tokens: &[AckToken]) -> Result<()> {
        let operation = Operation::Ack;
        let mut by_consumer: Vec<(Arc<Session>, Arc<Consumer>, Vec<u64>)> = Vec::new();
        let mut lost = 0;
        for token in tokens {
            match self.holder(operation, queue, token).await? {
                None => lost += 1,
                Some((session, consumer, tag)) => {
                    match by_consumer
                        .iter_mut()
                        .find(|(_, c, _)| Arc::ptr_eq(c, &consumer))
                    {
                        Some((_, _, tags)) => tags.push(tag),
                        None => by_consumer.push((session, consumer, vec![tag])),
                    }
                }
            }
        }
        for (session, consumer, tags) in by_consumer {
            let (result, stale) = consumer.ack(&tags).await;
            lost += stale.len();
            result.inspect_err(|_| self.link.check(&session))?;
        }
        if lost > 0 {
            return Err(lease_lost(
                operation,
                format!(
                    "{lost} of {} deliveries are no longer held by this connection (settled, or received on a connection that dropped)",
                    tokens.len()
                ),
            ));
        }
        Ok(())
    }

    async fn nack(&self, queue: &str, token: &AckToken, action: &NackAction) -> Result<()> {
        let operation = Operation::Nack;
        let not_held = || {
            lease_lost(
                operation,
                "the delivery is no longer held by this connection",
            )
        };
        let (session, consumer, tag) = self
            .holder(operation, queue, token)
            .await?
            .ok_or_else(not_held)?;
        let stored = consumer.begin_settle(tag).ok_or_else(not_held)?;
        let copied = match action {
            NackAction::Requeue => {
                self.publish_copy(&session, operation, queue, &stored, None)
                    .await
            }
            NackAction::RequeueAfter(delay) => {
                let delay_queue = topology::delay_queue(queue, *delay);
                match self
                    .declare_durable(
                        operation,
                        &delay_queue,
                        topology::delay_queue_arguments(queue, *delay),
                    )
                    .await
                {
                    Ok(()) => {
                        self.publish_copy(&session, operation, &delay_queue, &stored, None)
                            .await
                    }
                    Err(err) => Err(err),
                }
            }
            NackAction::DeadLetter { reason } => {
                let dlq = self.dead_letter_queue(queue).ok_or_else(|| {
                    invalid_input(operation, format!("`{queue}` has no dead-letter queue"))
                })?;
                match self
                    .declare_durable(operation, &dlq, FieldTable::default())
                    .await
                {
                    Ok(()) => {
                        self.publish_copy(
                            &session,
                            operation,
                            &dlq,
                            &stored,
                            Some((DEAD_LETTER_REASON_HEADER, reason)),
                        )
                        .await
                    }
                    Err(err) => Err(err),
                }
            }
        };
        let done = copied.is_ok();
        let acked = consumer.end_settle(tag, done).await;
        copied?;
        acked.inspect_err(|_| self.link.check(&session))
    }

    async fn extend_lease(&self, _queue: &str, _token: &AckToken, _lease: Duration) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            BACKEND,
            Operation::ExtendLease,
            "RabbitMQ deliveries have no lease: they stay with the connection until settled",
        ))
    }

    /// A passive `queue.declare`: RabbitMQ's count of the messages it has not pushed to any
    /// consumer. Messages pushed and not yet acked (this process's prefetch included) are in
    /// flight, which AMQP does not count, and each delay has its own queue
    /// ([`delay_queue`](crate::topology::delay_queue)), which it cannot list: both are `None`.
    async fn count(&self, queue: &str) -> Result<QueueCounts> {
        let operation = Operation::Count;
        let name = short(queue).map_err(|detail| invalid_input(operation, detail))?;
        let declared = self
            .on_new_channel(operation, async |channel| {
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..durable_queue()
                };
                channel
                    .queue_declare(name, passive, FieldTable::default())
                    .await
            })
            .await
            .map_err(|e| {
                if e.kind() == ErrorKind::QueueNotFound {
                    queue_not_found(operation, queue)
                } else {
                    e
                }
            })?;
        Ok(QueueCounts {
            ready: u64::from(declared.message_count()),
            in_flight: None,
            delayed: None,
        })
    }

    async fn close(&self) -> Result<()> {
        self.link.close().await
    }
}
