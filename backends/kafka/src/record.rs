//! How a message travels as a Kafka record: the payload as the value, the ordering key as the
//! key, every application header as a Kafka header holding its JSON text, and the properties
//! and the backend's bookkeeping as Kafka headers named `switchyard-*`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_core::{Headers, Message, Properties};
use bytes::Bytes;
use rdkafka::message::{Header, Headers as _, OwnedHeaders};
use serde_json::{Map, Value, value::RawValue};

/// The message's id, stable across republishes.
const ID: &str = "switchyard-id";
/// How many times earlier copies of this message were handed out (absent: none).
const RECEIVES: &str = "switchyard-receives";
/// Not to be handed out before this time, in milliseconds since the Unix epoch.
const NOT_BEFORE: &str = "switchyard-not-before";
const CONTENT_TYPE: &str = "switchyard-content-type";
const CONTENT_ENCODING: &str = "switchyard-content-encoding";
const CORRELATION_ID: &str = "switchyard-correlation-id";
const REPLY_TO: &str = "switchyard-reply-to";

/// A message as it is stored in a topic, or about to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: String,
    pub payload: Bytes,
    pub headers: Headers,
    pub properties: Properties,
    pub key: Option<String>,
    /// How many times earlier copies were handed out.
    pub receives: u32,
    /// Milliseconds since the Unix epoch before which it is not handed out.
    pub not_before: Option<u64>,
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Record {
    /// A freshly published `message`, with a new id.
    pub(crate) fn publish(message: &Message) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            payload: message.payload.clone(),
            headers: message.headers.clone(),
            properties: message.properties.clone(),
            key: message.ordering_key.clone(),
            receives: 0,
            not_before: message.delay.filter(|d| !d.is_zero()).map(due_in),
        }
    }

    /// Reads a record off the wire. `fallback_id` names a record some other producer wrote
    /// without an id. Headers that are not JSON (another producer's) are kept as strings; of
    /// a name given twice, the last value is kept.
    pub fn read(message: &impl rdkafka::Message, fallback_id: impl FnOnce() -> String) -> Self {
        let mut record = Self {
            id: String::new(),
            payload: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
            headers: Headers::new(),
            properties: Properties::default(),
            key: message
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned()),
            receives: 0,
            not_before: None,
        };
        let mut application = Vec::new();
        if let Some(wire) = message.headers() {
            for header in wire.iter() {
                let text =
                    || String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned();
                match header.key {
                    ID => record.id = text(),
                    RECEIVES => record.receives = text().parse().unwrap_or(0),
                    NOT_BEFORE => record.not_before = text().parse().ok(),
                    CONTENT_TYPE => record.properties.content_type = Some(text()),
                    CONTENT_ENCODING => record.properties.content_encoding = Some(text()),
                    CORRELATION_ID => record.properties.correlation_id = Some(text()),
                    REPLY_TO => record.properties.reply_to = Some(text()),
                    name => application.push((name, header.value.unwrap_or_default())),
                }
            }
        }
        record.headers =
            headers_as_text(&application).unwrap_or_else(|| headers_as_map(&application));
        if record.id.is_empty() {
            record.id = fallback_id();
        }
        record
    }

    /// The Kafka headers this record travels with.
    pub fn wire_headers(&self) -> OwnedHeaders {
        let mut wire = OwnedHeaders::new_with_capacity(self.headers.len() + 4);
        for (name, value) in &self.headers {
            let json = value.to_string();
            wire = wire.insert(Header {
                key: name,
                value: Some(json.as_bytes()),
            });
        }
        let receives = self.receives.to_string();
        let not_before = self.not_before.map(|ms| ms.to_string());
        let p = &self.properties;
        let ours = [
            (ID, Some(self.id.as_str())),
            (RECEIVES, (self.receives > 0).then_some(receives.as_str())),
            (NOT_BEFORE, not_before.as_deref()),
            (CONTENT_TYPE, p.content_type.as_deref()),
            (CONTENT_ENCODING, p.content_encoding.as_deref()),
            (CORRELATION_ID, p.correlation_id.as_deref()),
            (REPLY_TO, p.reply_to.as_deref()),
        ];
        for (key, value) in ours {
            if let Some(value) = value {
                wire = wire.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                });
            }
        }
        wire
    }

    /// Whether it may be handed out at `now` (milliseconds since the Unix epoch).
    pub(crate) fn is_due(&self, now: u64) -> bool {
        self.not_before.is_none_or(|due| due <= now)
    }
}

/// Application headers as one JSON text, which a delivery then copies in one piece: each
/// value the JSON it holds, or its text as a string. `None` when a name repeats or the text
/// would nest too deep; [`headers_as_map`] handles those.
fn headers_as_text(headers: &[(&str, &[u8])]) -> Option<Headers> {
    let size: usize = headers
        .iter()
        .map(|(name, value)| name.len() + value.len() + 8)
        .sum();
    let mut text = Vec::with_capacity(size + 2);
    text.push(b'{');
    for (i, &(name, value)) in headers.iter().enumerate() {
        if headers[..i].iter().any(|(earlier, _)| *earlier == name) {
            return None;
        }
        if i > 0 {
            text.push(b',');
        }
        serde_json::to_writer(&mut text, name).ok()?;
        text.push(b':');
        match serde_json::from_slice::<&RawValue>(value) {
            Ok(json) => text.extend_from_slice(json.get().as_bytes()),
            Err(_) => serde_json::to_writer(&mut text, &String::from_utf8_lossy(value)).ok()?,
        }
    }
    text.push(b'}');
    let text = String::from_utf8(text).ok()?;
    Headers::from_json(RawValue::from_string(text).ok()?).ok()
}

/// Application headers as a map, each value parsed on its own: a value that is not JSON, or
/// nests too deep, is kept as its text; of a name given twice, the last value is kept.
fn headers_as_map(headers: &[(&str, &[u8])]) -> Headers {
    let mut map = Map::new();
    for &(name, value) in headers {
        let value = serde_json::from_slice(value)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(value).into_owned()));
        map.insert(name.to_owned(), value);
    }
    Headers::from(map)
}

/// The time `delay` from now, in milliseconds since the Unix epoch.
pub(crate) fn due_in(delay: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use rdkafka::message::{OwnedMessage, Timestamp};
    use serde_json::json;

    use super::*;

    fn on_the_wire(record: &Record) -> OwnedMessage {
        OwnedMessage::new(
            Some(record.payload.to_vec()),
            record.key.as_ref().map(|k| k.as_bytes().to_vec()),
            "q".into(),
            Timestamp::NotAvailable,
            0,
            7,
            Some(record.wire_headers()),
        )
    }

    #[test]
    fn headers_properties_key_and_bookkeeping_survive_the_trip() {
        let mut message = Message::new(vec![0u8, 255, 7])
            .header("retries", 3)
            .header("timelimit", json!([null, 30.5]))
            .header("unicode", "ünïcode ✓")
            .content_type("application/json")
            .ordering_key("k1");
        message.properties.content_encoding = Some("utf-8".into());
        message.properties.correlation_id = Some("c-1".into());
        message.properties.reply_to = Some("replies".into());
        let mut record = Record::publish(&message.delay(Duration::from_secs(5)));
        record.receives = 2;
        let back = Record::read(&on_the_wire(&record), || unreachable!("the id travels"));
        assert_eq!(back, record);
        assert!(!back.is_due(now_ms()));
        assert!(back.is_due(now_ms() + 6_000));
    }

    #[test]
    fn a_foreign_record_gets_the_fallback_id_and_keeps_text_headers() {
        let wire = OwnedMessage::new(
            Some(b"hi".to_vec()),
            None,
            "q".into(),
            Timestamp::NotAvailable,
            1,
            9,
            Some(OwnedHeaders::new().insert(Header {
                key: "trace",
                value: Some("not json".as_bytes()),
            })),
        );
        let record = Record::read(&wire, || "q/1/9".into());
        assert_eq!(record.id, "q/1/9");
        assert_eq!(record.receives, 0);
        assert_eq!(record.headers.get("trace"), Some(&json!("not json")));
        assert!(record.is_due(0));
    }

    #[test]
    fn headers_read_as_one_text_match_headers_read_one_by_one() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let cases: [&[(&str, &[u8])]; 4] = [
            &[
                ("retries", b"3"),
                ("timelimit", b" [null, 30.5] "),
                ("trace", b"not json"),
                ("empty", b""),
                ("quote\"d", br#""\u00fc""#),
                ("bytes", b"\xff\xfe"),
            ],
            &[("task", b"\"a\""), ("task", b"\"b\"")],
            &[("deep", deep.as_bytes())],
            &[],
        ];
        for headers in cases {
            let map = headers_as_map(headers);
            if let Some(text) = headers_as_text(headers) {
                assert!(text.json_text().is_some(), "held as text");
                assert_eq!(*text, *map, "{headers:?}");
            }
        }
        assert!(
            headers_as_text(cases[1]).is_none(),
            "a repeated name is left to the map"
        );
        assert_eq!(headers_as_map(cases[1]).get("task"), Some(&json!("b")));
        assert!(headers_as_map(cases[2]).get("deep").unwrap().is_string());
    }
}
