//! Broker-level message properties ([`TaskProperties`]) and the one serialization they may
//! declare: JSON in UTF-8.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{CONTENT_ENCODING_UTF8, CONTENT_TYPE_JSON, ProtocolError};

/// Broker-level message properties, in kombu's (AMQP's) sense.
///
/// Serializes to and from the JSON object with these names; unknown properties (for
/// example `expiration`, which Celery sets from `expires` for `RabbitMQ`) are kept in
/// [`TaskProperties::extra`]. A property object without `content_type` or
/// `content_encoding` deserializes with the defaults (`application/json`, `utf-8`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskProperties {
    /// Celery sets it to the task id; result backends that reply (`rpc://`) use it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Queue for replies (`rpc://` result backend); Celery sends `""` when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// MIME type of the body; [`CONTENT_TYPE_JSON`] is the only one supported.
    pub content_type: String,
    /// Text encoding of the body; [`CONTENT_ENCODING_UTF8`] is the only one supported.
    pub content_encoding: String,
    /// Message priority, where the broker supports it (Celery sends 0 by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// AMQP delivery mode: 2 is persistent (Celery's default), 1 transient.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_mode: Option<u8>,
    /// Every other property, unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for TaskProperties {
    /// JSON in UTF-8, and nothing else set.
    fn default() -> Self {
        Self {
            correlation_id: None,
            reply_to: None,
            content_type: CONTENT_TYPE_JSON.to_owned(),
            content_encoding: CONTENT_ENCODING_UTF8.to_owned(),
            priority: None,
            delivery_mode: None,
            extra: Map::new(),
        }
    }
}

impl TaskProperties {
    /// Rejects any serialization but JSON in UTF-8 (case and surrounding spaces aside).
    pub(super) fn check_supported(&self) -> Result<(), ProtocolError> {
        if !self
            .content_type
            .trim()
            .eq_ignore_ascii_case(CONTENT_TYPE_JSON)
        {
            return Err(ProtocolError::UnsupportedContentType {
                content_type: self.content_type.clone(),
            });
        }
        let encoding = self.content_encoding.trim();
        if !(encoding.eq_ignore_ascii_case("utf-8") || encoding.eq_ignore_ascii_case("utf8")) {
            return Err(ProtocolError::UnsupportedContentEncoding {
                content_encoding: self.content_encoding.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn properties_serialize_like_kombu() {
        let p: TaskProperties = serde_json::from_value(json!({
            "correlation_id": "c", "priority": 3, "app_id": "x", "delivery_mode": 1
        }))
        .unwrap();
        assert_eq!(p.content_type, CONTENT_TYPE_JSON);
        assert_eq!(p.content_encoding, CONTENT_ENCODING_UTF8);
        assert_eq!(p.priority, Some(3));
        assert_eq!(p.delivery_mode, Some(1));
        assert_eq!(Value::Object(p.extra.clone()), json!({"app_id": "x"}));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({
                "correlation_id": "c", "priority": 3, "app_id": "x", "delivery_mode": 1,
                "content_type": "application/json", "content_encoding": "utf-8"
            })
        );
    }
}
