//! Tasks on queues: Celery v2 task messages carried by any broker.
//!
//! [`celery`](crate::celery) is the pure codec; this module maps an encoded task onto a
//! broker [`Message`] and back, and sends tasks through a [`Queue`].

use std::time::Duration;

use chrono::Utc;
use tracing::Instrument as _;

use crate::{
    capabilities::Delay,
    celery::TaskMessage,
    delivery::Delivery,
    error::{Error, Operation, Result},
    instruments::SENT_AT_HEADER,
    message::{Message, Properties},
    queue::Queue,
    trace_context::{TRACEPARENT_HEADER, enter_trace, propagation},
};

/// Builds the broker message that carries `task`.
///
/// When the task has an ETA in the future and the backend can delay that long, the message is
/// published with that delay, so no worker holds it early. Otherwise the worker waits for the
/// ETA itself.
///
/// # Errors
/// [`ErrorKind::Codec`](crate::ErrorKind::Codec) when the task cannot be encoded.
pub fn task_to_message(task: &TaskMessage, delay_support: Delay) -> Result<Message> {
    let encoded = task
        .encode()
        .map_err(|e| Error::codec(Operation::Encode, e.to_string()))?;
    let mut message = Message::new(encoded.body);
    message.headers = encoded.headers;
    let props = encoded.properties;
    message.properties = Properties {
        content_type: Some(props.content_type),
        content_encoding: Some(props.content_encoding),
        correlation_id: props.correlation_id,
        reply_to: props.reply_to,
    };
    if let (Some(eta), Delay::UpTo { max }) = (task.headers.eta, delay_support) {
        let wait = (eta - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if !wait.is_zero() && wait <= max {
            message.delay = Some(wait);
        }
    }
    Ok(message)
}

/// Decodes the task a delivery carries.
///
/// # Errors
/// [`ErrorKind::Codec`](crate::ErrorKind::Codec) saying why the message is not a task (wrong content type, malformed
/// body, missing headers); such a message is poison and belongs in the dead-letter queue.
pub fn task_from_delivery(delivery: &Delivery) -> Result<TaskMessage> {
    let props = delivery.properties();
    let mut properties = crate::celery::TaskProperties::default();
    if let Some(content_type) = &props.content_type {
        properties.content_type.clone_from(content_type);
    }
    if let Some(encoding) = &props.content_encoding {
        properties.content_encoding.clone_from(encoding);
    }
    properties.correlation_id.clone_from(&props.correlation_id);
    properties.reply_to.clone_from(&props.reply_to);
    TaskMessage::decode_parts(delivery.headers(), &properties, delivery.payload())
        .map_err(|e| Error::codec(Operation::Decode, e.to_string()))
}

/// Sends `task` to `queue`; returns its id.
///
/// # Errors
/// Encoding errors, payload limits, and the backend's publish error after retries.
///
/// The message carries the send time in header [`SENT_AT_HEADER`], from which workers measure
/// how long tasks waited in the queue, and the `traceparent` of its `enqueue` span: a child of
/// the current trace context (a new trace without one), which the worker continues (see
/// [`trace_context`](crate::trace_context)).
pub async fn send_task(queue: &Queue, task: &TaskMessage) -> Result<String> {
    let span = tracing::info_span!(
        "enqueue",
        task = %task.headers.task,
        id = %task.headers.id,
        queue = queue.name(),
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    publish_tasks(queue, std::slice::from_ref(task), span).await?;
    Ok(task.headers.id.clone())
}

/// Sends `tasks` to `queue`, in order, in as few publishes as the backend's batch limit
/// allows (one round trip per batch where [`send_task`] takes one per task); returns their
/// ids in the same order.
///
/// Each message is stamped as [`send_task`] stamps it; one `enqueue` span covers them all, and
/// every message carries its `traceparent`.
///
/// # Errors
/// As [`send_task`]. Every task is encoded and checked against the backend's limits before
/// the first is sent, so such an error sends nothing; a broker error that outlasts the retries
/// leaves earlier batches sent (see [`Queue::publish_batch`]).
pub async fn send_tasks(queue: &Queue, tasks: &[TaskMessage]) -> Result<Vec<String>> {
    let span = tracing::info_span!(
        "enqueue",
        tasks = tasks.len(),
        queue = queue.name(),
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    publish_tasks(queue, tasks, span).await?;
    Ok(tasks.iter().map(|task| task.headers.id.clone()).collect())
}

/// Encodes `tasks`, stamps each with the send time and `span`'s `traceparent`, and publishes
/// them in order within `span`.
async fn publish_tasks(queue: &Queue, tasks: &[TaskMessage], span: tracing::Span) -> Result<()> {
    let context = enter_trace(&span, propagation().current());
    let traceparent = context.to_traceparent();
    let sent_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    let delay = queue.capabilities().delay;
    let messages = tasks
        .iter()
        .map(|task| {
            let mut message = task_to_message(task, delay)?;
            message
                .headers
                .insert(SENT_AT_HEADER.to_owned(), sent_at.into());
            message
                .headers
                .insert(TRACEPARENT_HEADER.to_owned(), traceparent.as_str().into());
            Ok(message)
        })
        .collect::<Result<Vec<_>>>()?;
    queue.publish_batch(messages).instrument(span).await
}
