//! kombu's SQS message format: what a message's SQS body is.
//!
//! kombu's SQS transport sends each message as the base64 text of a JSON envelope:
//!
//! ```text
//! base64({"body": "<base64 of the payload>",
//!         "content-encoding": "utf-8", "content-type": "application/json",
//!         "headers": {...},
//!         "properties": {"body_encoding": "base64",
//!                        "delivery_info": {"exchange": "", "routing_key": "<queue>"},
//!                        "delivery_mode": 2, "priority": 0,
//!                        "correlation_id": "...", "reply_to": "...",
//!                        "MessageGroupId": "...", "MessageDeduplicationId": "..."}})
//! ```
//!
//! kombu reads `MessageGroupId` and `MessageDeduplicationId` from the properties when it
//! publishes to a FIFO queue; this backend writes them there too, so the envelope carries a
//! message's ordering key. Unlike kombu, the envelope holds no random delivery tag (kombu
//! replaces it with the receipt handle when it receives): the same message is the same SQS
//! body, so a FIFO queue's content-based deduplication recognises a repeated publish.
//!
//! Reading follows kombu: the SQS body is base64-decoded when it is base64 (else taken as it
//! is), and a JSON object with `properties.delivery_info` is a kombu envelope. Any other body
//! (a message sent by another tool) is delivered as its bytes, without headers.

use base64::{Engine, engine::general_purpose::STANDARD};
use broker_core::{Headers, Message, Properties};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The fields of a received envelope that the backend hands on.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// The message's payload: the envelope's body, decoded.
    pub payload: Bytes,
    /// Its headers.
    pub headers: Headers,
    /// Its properties.
    pub properties: Properties,
    /// Its FIFO message group.
    pub ordering_key: Option<String>,
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    body: String,
    #[serde(rename = "content-encoding", skip_serializing_if = "Option::is_none")]
    content_encoding: Option<&'a str>,
    #[serde(rename = "content-type", skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    headers: &'a Headers,
    properties: PropertiesOut<'a>,
}

#[derive(Serialize)]
struct PropertiesOut<'a> {
    body_encoding: &'static str,
    delivery_info: DeliveryInfo<'a>,
    delivery_mode: u8,
    priority: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a str>,
    #[serde(rename = "MessageGroupId", skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(
        rename = "MessageDeduplicationId",
        skip_serializing_if = "Option::is_none"
    )]
    deduplication_id: Option<&'a str>,
}

#[derive(Serialize)]
struct DeliveryInfo<'a> {
    exchange: &'static str,
    routing_key: &'a str,
}

/// The SQS body of `message` published to the (portable) queue `queue`.
///
/// # Errors
/// When the headers cannot be written as JSON (never for `serde_json` values).
pub fn seal(message: &Message, queue: &str) -> Result<String, serde_json::Error> {
    let envelope = EnvelopeOut {
        body: STANDARD.encode(&message.payload),
        content_encoding: message.properties.content_encoding.as_deref(),
        content_type: message.properties.content_type.as_deref(),
        headers: &message.headers,
        properties: PropertiesOut {
            body_encoding: "base64",
            delivery_info: DeliveryInfo {
                exchange: "",
                routing_key: queue,
            },
            delivery_mode: 2,
            priority: 0,
            correlation_id: message.properties.correlation_id.as_deref(),
            reply_to: message.properties.reply_to.as_deref(),
            group: message.ordering_key.as_deref(),
            deduplication_id: message.deduplication_id.as_deref(),
        },
    };
    Ok(STANDARD.encode(serde_json::to_vec(&envelope)?))
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    #[serde(default)]
    body: Option<String>,
    #[serde(rename = "content-encoding", default)]
    content_encoding: Option<String>,
    #[serde(rename = "content-type", default)]
    content_type: Option<String>,
    #[serde(borrow, default)]
    headers: Option<&'a RawValue>,
    properties: PropertiesIn,
}

#[derive(Deserialize)]
struct PropertiesIn {
    // Its presence is what makes a JSON object a kombu envelope.
    #[allow(dead_code)]
    delivery_info: serde::de::IgnoredAny,
    #[serde(default)]
    body_encoding: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(rename = "MessageGroupId", default)]
    group: Option<String>,
}

/// The bytes an SQS body stands for: its base64 decoding when it is base64 (the decoding
/// encodes back to the same text, kombu's rule), else the body itself.
pub(crate) fn unwrap_body(sqs_body: &str) -> Vec<u8> {
    match STANDARD.decode(sqs_body) {
        Ok(bytes) if STANDARD.encode(&bytes) == sqs_body => bytes,
        _ => sqs_body.as_bytes().to_vec(),
    }
}

/// Reads an SQS body.
///
/// # Errors
/// A description of what is wrong when the body is a kombu envelope that cannot be read (bad
/// headers, a body that is not the base64 it claims to be).
pub fn open(sqs_body: &str) -> Result<Opened, String> {
    let raw = unwrap_body(sqs_body);
    let Ok(envelope) = serde_json::from_slice::<EnvelopeIn<'_>>(&raw) else {
        return Ok(Opened {
            payload: Bytes::from(raw),
            headers: Headers::new(),
            properties: Properties::default(),
            ordering_key: None,
        });
    };
    let headers = match envelope.headers {
        Some(text) if text.get() != "null" => Headers::from_json(text.to_owned())
            .map_err(|e| format!("envelope headers are unusable: {e}"))?,
        _ => Headers::new(),
    };
    let body = envelope.body.unwrap_or_default();
    let payload = match envelope.properties.body_encoding.as_deref() {
        Some("base64") => STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!("envelope body is not valid base64: {e}"))?,
        _ => body.into_bytes(),
    };
    Ok(Opened {
        payload: Bytes::from(payload),
        headers,
        properties: Properties {
            content_type: envelope.content_type,
            content_encoding: envelope.content_encoding,
            correlation_id: envelope.properties.correlation_id,
            reply_to: envelope.properties.reply_to,
        },
        ordering_key: envelope.properties.group,
    })
}

/// The SQS body `sqs_body` with header `name` set to `value`, for a copy sent to a
/// dead-letter queue; `None` when the body is not a kombu envelope (it has no headers).
pub(crate) fn with_header(sqs_body: &str, name: &str, value: &str) -> Option<String> {
    let raw = unwrap_body(sqs_body);
    let mut envelope: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&raw).ok()?;
    envelope.get("properties")?.get("delivery_info")?;
    let headers = envelope
        .entry("headers")
        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    if !headers.is_object() {
        *headers = serde_json::Value::Object(serde_json::Map::new());
    }
    headers
        .as_object_mut()?
        .insert(name.to_owned(), serde_json::Value::from(value));
    let text = serde_json::to_vec(&envelope).ok()?;
    Some(STANDARD.encode(text))
}

#[cfg(test)]
mod tests {
    use broker_core::{Delay, celery::TaskMessage, tasks::task_to_message};
    use serde_json::{Value, json};

    use super::*;

    /// What Python Celery 5.7 (kombu 5.7) sent to SQS for
    /// `send_task('tasks.add', args=(2, 3), task_id='11111111-...')` on queue `golden.capture`:
    /// the SQS body as it arrived.
    const KOMBU_TASK: &str = include_str!("../tests/fixtures/kombu_celery_task.sqs");

    fn task_of(opened: &Opened) -> TaskMessage {
        let mut properties = broker_core::celery::TaskProperties::default();
        properties
            .correlation_id
            .clone_from(&opened.properties.correlation_id);
        properties.reply_to.clone_from(&opened.properties.reply_to);
        TaskMessage::decode_parts(&opened.headers, &properties, &opened.payload).unwrap()
    }

    #[test]
    fn a_task_kombu_sent_opens_to_the_task_celery_meant() {
        let opened = open(KOMBU_TASK.trim()).unwrap();
        assert_eq!(
            opened.properties.content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(opened.properties.content_encoding.as_deref(), Some("utf-8"));
        let task = task_of(&opened);
        assert_eq!(task.headers.task, "tasks.add");
        assert_eq!(task.headers.id, "11111111-2222-3333-4444-555555555555");
        assert_eq!(task.args, vec![json!(2), json!(3)]);
        assert!(task.kwargs.is_empty());
        assert_eq!(opened.ordering_key, None);
    }

    #[test]
    fn the_same_task_sealed_here_is_kombus_envelope_but_for_its_random_delivery_tag() {
        let theirs = envelope_json(KOMBU_TASK.trim());
        let task = task_of(&open(KOMBU_TASK.trim()).unwrap());
        let message = task_to_message(&task, Delay::Unsupported).unwrap();
        let ours = envelope_json(&seal(&message, "golden.capture").unwrap());
        let body = |envelope: &Value| -> Value {
            let text = STANDARD.decode(envelope["body"].as_str().unwrap()).unwrap();
            serde_json::from_slice(&text).unwrap()
        };
        assert_eq!(body(&ours), body(&theirs), "the Celery body, JSON-equal");
        let without = |mut envelope: Value| {
            envelope.as_object_mut().unwrap().remove("body");
            envelope["properties"]
                .as_object_mut()
                .unwrap()
                .remove("delivery_tag");
            envelope
        };
        assert_eq!(without(ours), without(theirs));
    }

    fn envelope_json(sqs_body: &str) -> Value {
        serde_json::from_slice(&STANDARD.decode(sqs_body).unwrap()).unwrap()
    }

    #[test]
    fn a_message_is_sealed_in_kombus_fields() {
        let mut message = Message::new(&b"hello"[..])
            .header("id", "task-1")
            .content_type("application/json")
            .ordering_key("k");
        message.properties.content_encoding = Some("utf-8".into());
        message.properties.correlation_id = Some("task-1".into());
        let value = envelope_json(&seal(&message, "ical").unwrap());
        assert_eq!(
            value,
            json!({
                "body": "aGVsbG8=",
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {"id": "task-1"},
                "properties": {
                    "body_encoding": "base64",
                    "delivery_info": {"exchange": "", "routing_key": "ical"},
                    "delivery_mode": 2,
                    "priority": 0,
                    "correlation_id": "task-1",
                    "MessageGroupId": "k",
                },
            })
        );
    }

    #[test]
    fn the_same_message_is_the_same_body() {
        let message = Message::new("Message 7").header("client", "alice");
        assert_eq!(seal(&message, "q").unwrap(), seal(&message, "q").unwrap());
    }

    #[test]
    fn a_message_round_trips_through_its_envelope() {
        let mut message = Message::new(vec![0u8, 1, 2, 255, 254])
            .header("n", 3)
            .header("list", json!([null, 1.5, "x"]))
            .ordering_key("k")
            .content_type("application/octet-stream");
        message.properties.correlation_id = Some("c".into());
        message.properties.reply_to = Some("r".into());
        message.properties.content_encoding = Some("binary".into());
        let opened = open(&seal(&message, "q").unwrap()).unwrap();
        assert_eq!(opened.payload.as_ref(), &[0u8, 1, 2, 255, 254]);
        assert_eq!(opened.headers, message.headers);
        assert_eq!(opened.properties, message.properties);
        assert_eq!(opened.ordering_key.as_deref(), Some("k"));
    }

    #[test]
    fn a_body_from_another_tool_is_delivered_as_it_is() {
        let opened = open("plain text, not base64!").unwrap();
        assert_eq!(opened.payload.as_ref(), b"plain text, not base64!");
        assert!(opened.headers.is_empty());
        let json_without_properties = open(r#"{"x": 1}"#).unwrap();
        assert_eq!(json_without_properties.payload.as_ref(), br#"{"x": 1}"#);
    }

    #[test]
    fn a_broken_envelope_is_reported() {
        let bad_body = STANDARD.encode(
            br#"{"body": "***", "properties": {"body_encoding": "base64", "delivery_info": {}}}"#,
        );
        assert!(open(&bad_body).unwrap_err().contains("base64"));
        let bad_headers = STANDARD
            .encode(br#"{"body": "", "headers": [1], "properties": {"delivery_info": {}}}"#);
        assert!(open(&bad_headers).unwrap_err().contains("headers"));
    }

    #[test]
    fn a_dead_letter_copy_carries_the_reason_and_everything_else() {
        let message = Message::new("poison").header("client", "bob");
        let copy = with_header(&seal(&message, "q").unwrap(), "why", "bad json").unwrap();
        let opened = open(&copy).unwrap();
        assert_eq!(opened.payload.as_ref(), b"poison");
        assert_eq!(opened.headers["client"], "bob");
        assert_eq!(opened.headers["why"], "bad json");
        assert_eq!(with_header("not an envelope", "why", "x"), None);
    }
}
