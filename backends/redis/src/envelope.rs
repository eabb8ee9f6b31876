//! kombu's message envelope: the JSON object a message is stored as in Redis.
//!
//! ```text
//! {"x-seq":17,"x-receives":0,
//!  "properties":{"delivery_tag":"<uuid>","body_encoding":"base64",
//!                "delivery_info":{"exchange":"<queue>","routing_key":"<queue>"},
//!                "priority":0,"delivery_mode":2,"correlation_id":"...","reply_to":"...",
//!                "x-ordering-key":"..."},
//!  "headers":{...},"content-type":"...","content-encoding":"...","body":"<base64>"}
//! ```
//! The two counters come first so that the Lua scripts can read and rewrite them without a
//! JSON decoder; the publish script writes them, this module writes the rest (the "tail").

use std::borrow::Cow;

use base64::{
    Engine as _,
    alphabet::STANDARD,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use broker_core::{AckToken, Headers, Message, Properties, Received};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// kombu's `body_encoding: base64`: standard alphabet, padded when written; read with or
/// without padding, as Python's and other producers' encoders differ there.
const BODY: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

#[derive(Serialize)]
struct Head<'a> {
    properties: PropertiesOut<'a>,
    headers: &'a Headers,
    #[serde(rename = "content-type", skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    #[serde(rename = "content-encoding", skip_serializing_if = "Option::is_none")]
    content_encoding: Option<&'a str>,
}

#[derive(Serialize)]
struct PropertiesOut<'a> {
    delivery_tag: &'a str,
    body_encoding: &'static str,
    delivery_info: DeliveryInfo<'a>,
    priority: u8,
    delivery_mode: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a str>,
    #[serde(rename = "x-ordering-key", skip_serializing_if = "Option::is_none")]
    ordering_key: Option<&'a str>,
}

#[derive(Serialize)]
struct DeliveryInfo<'a> {
    exchange: &'a str,
    routing_key: &'a str,
}

/// The envelope of `message` without its opening brace and counters (the publish script
/// prepends `{"x-seq":N,"x-receives":0,`). `tag` becomes the delivery tag and message id.
///
/// # Errors
/// When the headers cannot be written as JSON (never for `serde_json::Value`s).
pub fn encode_tail(
    message: &Message,
    tag: &str,
    queue: &str,
) -> Result<Vec<u8>, serde_json::Error> {
    let head = Head {
        properties: PropertiesOut {
            delivery_tag: tag,
            body_encoding: "base64",
            delivery_info: DeliveryInfo {
                exchange: queue,
                routing_key: queue,
            },
            priority: 0,
            delivery_mode: 2,
            correlation_id: message.properties.correlation_id.as_deref(),
            reply_to: message.properties.reply_to.as_deref(),
            ordering_key: message.ordering_key.as_deref(),
        },
        headers: &message.headers,
        content_type: message.properties.content_type.as_deref(),
        content_encoding: message.properties.content_encoding.as_deref(),
    };
    let mut out = serde_json::to_string(&head)?;
    out.reserve(base64::encoded_len(message.payload.len(), true).unwrap_or(0) + 16);
    // `{...}` -> `...,"body":"<base64>"}`
    out.remove(0);
    out.pop();
    out.push_str(",\"body\":\"");
    BODY.encode_string(&message.payload, &mut out);
    out.push_str("\"}");
    Ok(out.into_bytes())
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    #[serde(rename = "x-receives", default)]
    receives: u32,
    #[serde(default)]
    properties: PropertiesIn,
    #[serde(borrow, default)]
    headers: Option<&'a RawValue>,
    #[serde(rename = "content-type", default)]
    content_type: Option<String>,
    #[serde(rename = "content-encoding", default)]
    content_encoding: Option<String>,
    #[serde(borrow, default)]
    body: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct PropertiesIn {
    #[serde(default)]
    body_encoding: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(rename = "x-ordering-key", default)]
    ordering_key: Option<String>,
}

/// A token names a delivery's tag and the receive count it was handed out under: a later
/// receive of the same message makes the earlier token stale.
pub(crate) fn token(tag: &str, receives: u32) -> AckToken {
    AckToken::new(format!("{tag}:{receives}"))
}

/// The tag and receive count of a token this crate made.
pub(crate) fn parse_token(token: &AckToken) -> Option<(&str, u32)> {
    let (tag, receives) = token.as_str().rsplit_once(':')?;
    Some((tag, receives.parse().ok()?))
}

/// The envelope inside kombu's unacked entry `[envelope,"<queue>","<queue>"]`, in the form the
/// receive script writes and returns it; `None` when `entry` is not one of `queue`.
pub(crate) fn in_entry<'a>(entry: &'a [u8], queue: &str) -> Option<&'a [u8]> {
    let closing = format!(",\"{queue}\",\"{queue}\"]");
    entry.strip_prefix(b"[")?.strip_suffix(closing.as_bytes())
}

/// Decodes an envelope handed out under `tag`.
///
/// # Errors
/// A description of what is wrong when the envelope is not a kombu message.
pub fn decode(tag: &str, raw: &[u8]) -> Result<Received, String> {
    let envelope: EnvelopeIn<'_> =
        serde_json::from_slice(raw).map_err(|e| format!("envelope is not kombu JSON: {e}"))?;
    // Kept as text: parsed only if someone reads them as a map.
    let headers = match envelope.headers {
        Some(text) => Headers::from_json(text.to_owned())
            .map_err(|e| format!("envelope headers are unusable: {e}"))?,
        None => Headers::new(),
    };
    let body = envelope.body.unwrap_or_default();
    let payload = match envelope.properties.body_encoding.as_deref() {
        Some("base64") => BODY
            .decode(body.as_bytes())
            .map_err(|e| format!("body is not valid base64: {e}"))?,
        _ => body.into_owned().into_bytes(),
    };
    Ok(Received {
        id: tag.to_owned(),
        payload: Bytes::from(payload),
        headers,
        properties: Properties {
            content_type: envelope.content_type,
            content_encoding: envelope.content_encoding,
            correlation_id: envelope.properties.correlation_id,
            reply_to: envelope.properties.reply_to,
        },
        ordering_key: envelope.properties.ordering_key,
        receive_count: envelope.receives.max(1),
        token: token(tag, envelope.receives),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn full(tail: &[u8], seq: u64, receives: u32) -> Vec<u8> {
        let mut env = format!("{{\"x-seq\":{seq},\"x-receives\":{receives},").into_bytes();
        env.extend_from_slice(tail);
        env
    }

    #[test]
    fn envelope_has_kombus_fields() {
        let message = Message::new(&b"hello"[..])
            .header("id", "task-1")
            .content_type("application/json");
        let env = full(&encode_tail(&message, "tag-1", "celery").unwrap(), 1, 0);
        let value: Value = serde_json::from_slice(&env).unwrap();
        assert_eq!(value["body"], "aGVsbG8=");
        assert_eq!(value["content-type"], "application/json");
        assert_eq!(value["headers"], json!({"id": "task-1"}));
        let props = &value["properties"];
        assert_eq!(props["delivery_tag"], "tag-1");
        assert_eq!(props["body_encoding"], "base64");
        assert_eq!(
            props["delivery_info"],
            json!({"exchange": "celery", "routing_key": "celery"})
        );
        assert_eq!(props["priority"], 0);
    }

    #[test]
    fn message_round_trips_through_its_envelope() {
        let mut message = Message::new(vec![0u8, 1, 2, 255, 254])
            .header("n", 3)
            .header("list", json!([null, 1.5, "x"]))
            .ordering_key("k")
            .content_type("application/octet-stream");
        message.properties.correlation_id = Some("c".into());
        message.properties.content_encoding = Some("binary".into());
        let env = full(&encode_tail(&message, "t", "q").unwrap(), 9, 2);
        let received = decode("t", &env).unwrap();
        assert_eq!(received.payload.as_ref(), &[0u8, 1, 2, 255, 254]);
        assert_eq!(received.headers, message.headers);
        assert_eq!(received.properties, message.properties);
        assert_eq!(received.ordering_key.as_deref(), Some("k"));
        assert_eq!(received.receive_count, 2);
        assert_eq!(received.id, "t");
        assert_eq!(parse_token(&received.token), Some(("t", 2)));
    }

    #[test]
    fn envelope_from_python_kombu_decodes() {
        let env = br#"{"body": "eyJ4IjogMX0=", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"task": "add"}, "properties": {"correlation_id": "abc", "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": "celery"}, "priority": 0, "body_encoding": "base64", "delivery_tag": "d2"}}"#;
        let received = decode("d2", env).unwrap();
        assert_eq!(received.payload.as_ref(), br#"{"x": 1}"#);
        assert_eq!(received.headers["task"], "add");
        assert_eq!(received.properties.correlation_id.as_deref(), Some("abc"));
        assert_eq!(received.receive_count, 1);
    }

    #[test]
    fn base64_body_decodes_with_or_without_padding() {
        for body in ["Zm8=", "Zm8"] {
            let env = format!(r#"{{"properties":{{"body_encoding":"base64"}},"body":"{body}"}}"#);
            assert_eq!(decode("t", env.as_bytes()).unwrap().payload.as_ref(), b"fo");
        }
    }

    #[test]
    fn every_byte_value_round_trips_at_every_length() {
        let data: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        for len in 0..data.len() {
            let env = full(
                &encode_tail(&Message::new(data[..len].to_vec()), "t", "q").unwrap(),
                1,
                0,
            );
            assert_eq!(decode("t", &env).unwrap().payload.as_ref(), &data[..len]);
        }
    }

    #[test]
    fn envelope_is_found_in_its_unacked_entry() {
        let env = br#"{"x-seq":1,"x-receives":1,"body":""}"#;
        let entry = [&b"["[..], env, br#","q","q"]"#].concat();
        assert_eq!(in_entry(&entry, "q"), Some(&env[..]));
        assert_eq!(in_entry(&entry, "other"), None);
        assert_eq!(in_entry(env, "q"), None);
    }

    #[test]
    fn header_named_twice_keeps_its_last_value() {
        let env = br#"{"headers": {"b": 1, "a": "x", "b": 2}, "body": ""}"#;
        let received = decode("t", env).unwrap();
        assert_eq!(received.headers.len(), 2);
        assert_eq!(received.headers["b"], 2);
        assert_eq!(received.headers["a"], "x");
    }

    #[test]
    fn malformed_envelopes_are_reported() {
        assert!(decode("t", b"not json").is_err());
        let bad_body = br#"{"properties":{"body_encoding":"base64"},"body":"***"}"#;
        assert!(decode("t", bad_body).unwrap_err().contains("base64"));
        let bad_headers = br#"{"headers":[1,2],"body":""}"#;
        assert!(decode("t", bad_headers).unwrap_err().contains("headers"));
    }
}
