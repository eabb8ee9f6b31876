//! The Kafka backend's record decoder on any record a producer could write: the input is the
//! key, value and headers part of a Kafka v2 record (zigzag varint lengths, -1 for null),
//! seeded by `fuzz/seeds/kafka_record`. Reading returns a message, never panics; the message,
//! written again as a record, reads back the same.

#![no_main]

use broker_kafka::record::Record;
use libfuzzer_sys::fuzz_target;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};

/// A zigzag varint: the next length, or `None` at the end of the input or for a negative one
/// (null).
fn length(data: &mut &[u8]) -> Result<Option<usize>, ()> {
    let mut raw = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = data.split_first().ok_or(())?;
        *data = rest;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let value = (raw >> 1) as i64 ^ -((raw & 1) as i64);
            return Ok(usize::try_from(value).ok());
        }
    }
    Err(())
}

fn bytes<'a>(data: &mut &'a [u8]) -> Result<Option<&'a [u8]>, ()> {
    let Some(len) = length(data)? else {
        return Ok(None);
    };
    if len > data.len() {
        return Err(());
    }
    let (value, rest) = data.split_at(len);
    *data = rest;
    Ok(Some(value))
}

fn message(key: Option<&[u8]>, value: Option<&[u8]>, headers: OwnedHeaders) -> OwnedMessage {
    OwnedMessage::new(
        value.map(<[u8]>::to_vec),
        key.map(<[u8]>::to_vec),
        "queue".into(),
        Timestamp::NotAvailable,
        0,
        0,
        Some(headers),
    )
}

fn parse(mut data: &[u8]) -> Result<OwnedMessage, ()> {
    let key = bytes(&mut data)?;
    let value = bytes(&mut data)?;
    let mut headers = OwnedHeaders::new();
    for _ in 0..length(&mut data)?.unwrap_or(0) {
        let name = bytes(&mut data)?.unwrap_or_default();
        let value = bytes(&mut data)?;
        // Names rdkafka cannot hand over: its C strings end at a NUL, and it unwraps the
        // UTF-8 check of each name it reads (a foreign name that is not UTF-8 panics there).
        let name = std::str::from_utf8(name).map_err(drop)?;
        if name.contains('\0') {
            return Err(());
        }
        headers = headers.insert(Header { key: name, value });
    }
    if data.is_empty() {
        Ok(message(key, value, headers))
    } else {
        Err(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = parse(data) else {
        return;
    };
    let first = Record::read(&wire, || "queue/0/0".into());
    let key = first.key.as_ref().map(String::as_bytes);
    let again = message(key, Some(&first.payload), first.wire_headers());
    let second = Record::read(&again, || unreachable!("the id travels"));
    assert_eq!(second, first);
});
