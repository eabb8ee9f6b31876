//! What goes onto a queue: payload bytes, headers and the routing hints a backend may honour.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::headers::Headers;

/// Message properties in AMQP's sense; every backend carries them beside the headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// MIME type of the payload, e.g. `application/json`.
    pub content_type: Option<String>,
    /// Encoding of the payload's text, e.g. `utf-8`.
    pub content_encoding: Option<String>,
    /// Correlates a reply with its request (Celery sets it to the task id).
    pub correlation_id: Option<String>,
    /// Where replies go, if anywhere.
    pub reply_to: Option<String>,
}

/// A message to publish.
///
/// Built with [`Message::new`] and the chained setters. Which of the routing hints take
/// effect depends on the backend's [`Capabilities`](crate::Capabilities): an ordering key on a
/// backend without per-key ordering is carried but orders nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    /// The payload; any bytes, including empty.
    pub payload: Bytes,
    /// Application headers.
    pub headers: Headers,
    /// AMQP-style properties.
    pub properties: Properties,
    /// Messages with the same key are delivered in publish order where the backend orders per
    /// key (SQS FIFO message group, Kafka key).
    pub ordering_key: Option<String>,
    /// Two messages with the same id published within the backend's deduplication window are
    /// delivered once, where the backend deduplicates by id.
    pub deduplication_id: Option<String>,
    /// Not delivered before this much time has passed, where the backend supports delay.
    pub delay: Option<Duration>,
}

impl Message {
    /// A message carrying `payload` and nothing else.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            payload: payload.into(),
            ..Self::default()
        }
    }

    /// A message carrying `value` as JSON, with content type `application/json`.
    ///
    /// # Errors
    /// [`ErrorKind::Codec`](crate::ErrorKind::Codec) when `value` cannot be serialized (a map
    /// with non-string keys, a failing `Serialize` implementation).
    pub fn json(value: &impl serde::Serialize) -> crate::Result<Self> {
        let payload = serde_json::to_vec(value)
            .map_err(|e| crate::Error::codec(crate::Operation::Encode, e.to_string()))?;
        Ok(Self::new(payload).content_type("application/json"))
    }

    /// Adds or replaces one header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Sets the ordering key (see the field's documentation).
    #[must_use]
    pub fn ordering_key(mut self, key: impl Into<String>) -> Self {
        self.ordering_key = Some(key.into());
        self
    }

    /// Sets the deduplication id (see the field's documentation).
    #[must_use]
    pub fn deduplication_id(mut self, id: impl Into<String>) -> Self {
        self.deduplication_id = Some(id.into());
        self
    }

    /// Delays delivery (see the field's documentation).
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Sets the content type property.
    #[must_use]
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.properties.content_type = Some(content_type.into());
        self
    }

    /// The size this message counts for against a backend's payload limit: the payload, the
    /// JSON text of the headers, and the text of the properties and hints (what most backends
    /// store beside it).
    #[must_use]
    pub fn encoded_size(&self) -> usize {
        let headers = self.headers.json_len();
        let p = &self.properties;
        let properties: usize = [
            &p.content_type,
            &p.content_encoding,
            &p.correlation_id,
            &p.reply_to,
        ]
        .into_iter()
        .map(|v| v.as_ref().map_or(0, String::len))
        .sum();
        let hints = self.ordering_key.as_ref().map_or(0, String::len)
            + self.deduplication_id.as_ref().map_or(0, String::len);
        self.payload.len() + headers + properties + hints
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_message_carries_the_value_and_its_content_type() {
        let message = Message::json(&serde_json::json!({"todo": 1})).unwrap();
        assert_eq!(message.payload.as_ref(), br#"{"todo":1}"#);
        assert_eq!(
            message.properties.content_type.as_deref(),
            Some("application/json")
        );
    }

    #[test]
    fn encoded_size_counts_payload_headers_and_hints() {
        let bare = Message::new(vec![0u8; 100]);
        assert_eq!(bare.encoded_size(), 100);
        let dressed = bare.header("client", "alice").ordering_key("k");
        assert_eq!(
            dressed.encoded_size(),
            100 + r#"{"client":"alice"}"#.len() + "k".len()
        );
        let nested = Message::new(Vec::new()).header("n", serde_json::json!([1, {"a": null}]));
        assert_eq!(nested.encoded_size(), r#"{"n":[1,{"a":null}]}"#.len());
    }
}
