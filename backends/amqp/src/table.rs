//! Headers between the workspace's JSON form and AMQP field tables.
//!
//! Celery's protocol v2 headers travel as the AMQP message's header table, so a Python Celery
//! worker reads them where kombu put them. JSON maps onto AMQP types without loss for what
//! Celery sends: strings are long strings, integers 64-bit signed, other numbers doubles,
//! `null` is void, arrays and objects nest. Reading back, every AMQP integer and timestamp is
//! a JSON integer, decimals and floats are numbers, byte arrays and strings are text (invalid
//! UTF-8 replaced). A timestamp past `i64::MAX` is read as a number instead: sent again, as a
//! double, it reads back the same.

use broker_core::Headers;
use lapin::types::{AMQPValue, FieldArray, FieldTable, ShortString};
use serde_json::{Map, Number, Value};

/// Header names are AMQP short strings: at most 255 bytes.
const MAX_NAME: usize = 255;

/// The header table for `headers`, or the name of the first header whose name is too long.
pub fn to_table(headers: &Headers) -> Result<FieldTable, String> {
    object_to_table(headers)
}

fn object_to_table(object: &Map<String, Value>) -> Result<FieldTable, String> {
    let mut table = FieldTable::default();
    for (name, value) in object {
        if name.len() > MAX_NAME {
            return Err(format!(
                "header name of {} bytes (AMQP allows {MAX_NAME})",
                name.len()
            ));
        }
        table.insert(ShortString::from(name.as_str()), to_value(value)?);
    }
    Ok(table)
}

fn to_value(value: &Value) -> Result<AMQPValue, String> {
    Ok(match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => AMQPValue::LongString(s.as_str().into()),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(to_value).collect::<Result<Vec<_>, _>>()?,
        )),
        Value::Object(object) => AMQPValue::FieldTable(object_to_table(object)?),
    })
}

/// `table` as headers, leaving out the names `skip` says to.
pub fn from_table(table: &FieldTable, skip: impl Fn(&str) -> bool) -> Headers {
    table
        .inner()
        .iter()
        .filter(|(name, _)| !skip(name.as_str()))
        .map(|(name, value)| (name.to_string(), from_value(value)))
        .collect::<Map<String, Value>>()
        .into()
}

fn from_value(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(i) => Value::from(*i),
        AMQPValue::ShortShortUInt(i) => Value::from(*i),
        AMQPValue::ShortInt(i) => Value::from(*i),
        AMQPValue::ShortUInt(i) => Value::from(*i),
        AMQPValue::LongInt(i) => Value::from(*i),
        AMQPValue::LongUInt(i) => Value::from(*i),
        AMQPValue::LongLongInt(i) => Value::from(*i),
        AMQPValue::Timestamp(t) => match i64::try_from(*t) {
            Ok(t) => Value::from(t),
            // As a double, like every number `to_value` cannot send as a signed integer.
            Err(_) => number(*t as f64),
        },
        AMQPValue::Float(f) => number(f64::from(*f)),
        AMQPValue::Double(f) => number(*f),
        AMQPValue::DecimalValue(d) => number(f64::from(d.value) / 10f64.powi(i32::from(d.scale))),
        AMQPValue::ShortString(s) => Value::String(s.to_string()),
        AMQPValue::LongString(s) => Value::String(s.to_string()),
        AMQPValue::ByteArray(bytes) => {
            Value::String(String::from_utf8_lossy(bytes.as_slice()).into_owned())
        }
        AMQPValue::FieldArray(items) => {
            Value::Array(items.as_slice().iter().map(from_value).collect())
        }
        AMQPValue::FieldTable(table) => Value::Object(
            table
                .inner()
                .iter()
                .map(|(name, value)| (name.to_string(), from_value(value)))
                .collect(),
        ),
        AMQPValue::Void => Value::Null,
    }
}

fn number(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// A count kept in a header, whichever integer type the sender used.
pub fn count(table: &FieldTable, name: &str) -> Option<u32> {
    match table.inner().get(name)? {
        AMQPValue::LongLongInt(i) => u32::try_from(*i).ok(),
        AMQPValue::LongInt(i) => u32::try_from(*i).ok(),
        AMQPValue::LongUInt(i) => Some(*i),
        AMQPValue::ShortInt(i) => u32::try_from(*i).ok(),
        AMQPValue::ShortUInt(i) => Some(u32::from(*i)),
        AMQPValue::ShortShortUInt(i) => Some(u32::from(*i)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn headers(value: Value) -> Headers {
        let Value::Object(map) = value else {
            panic!("an object")
        };
        map.into()
    }

    #[test]
    fn celery_headers_survive_the_round_trip() {
        let sent = headers(json!({
            "lang": "py",
            "task": "ical.build",
            "id": "4f1c",
            "retries": 0,
            "eta": null,
            "timelimit": [null, 30],
            "ignore_result": false,
            "stamps": {"a": [1.5, "x"]},
        }));
        let table = to_table(&sent).unwrap();
        assert_eq!(from_table(&table, |_| false), sent);
    }

    #[test]
    fn skipped_names_are_left_out() {
        let table = to_table(&headers(json!({"keep": 1, "drop": 2}))).unwrap();
        assert_eq!(
            from_table(&table, |name| name == "drop"),
            headers(json!({"keep": 1}))
        );
    }

    #[test]
    fn a_header_name_longer_than_a_short_string_is_refused() {
        let long = "n".repeat(256);
        let err = to_table(&headers(json!({ long: 1 }))).unwrap_err();
        assert!(err.contains("256 bytes"), "{err}");
    }

    #[test]
    fn a_timestamp_past_the_signed_range_reads_back_the_same_when_sent_again() {
        let mut table = FieldTable::default();
        table.insert("t".into(), AMQPValue::Timestamp(u64::MAX));
        table.insert("now".into(), AMQPValue::Timestamp(1_714_564_800));
        let read = from_table(&table, |_| false);
        assert_eq!(
            read,
            headers(json!({"t": 1.8446744073709552e19, "now": 1_714_564_800}))
        );
        assert_eq!(from_table(&to_table(&read).unwrap(), |_| false), read);
    }

    #[test]
    fn counts_are_read_from_any_integer_type() {
        let mut table = FieldTable::default();
        table.insert("a".into(), AMQPValue::LongLongInt(3));
        table.insert("b".into(), AMQPValue::ShortShortUInt(4));
        table.insert("c".into(), AMQPValue::LongString("5".into()));
        assert_eq!(count(&table, "a"), Some(3));
        assert_eq!(count(&table, "b"), Some(4));
        assert_eq!(count(&table, "c"), None);
    }
}
