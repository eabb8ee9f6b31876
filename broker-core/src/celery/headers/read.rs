//! Reading [`TaskHeaders`] from the wire: every standard header checked and converted, every
//! other header kept as it is.

use std::{borrow::Cow, fmt};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    H_ARGSREPR, H_COMPRESSION, H_ETA, H_EXPIRES, H_GROUP, H_GROUP_INDEX, H_ID, H_IGNORE_RESULT,
    H_KWARGSREPR, H_LANG, H_ORIGIN, H_PARENT_ID, H_REPLACED_TASK_NESTING, H_RETRIES, H_ROOT_ID,
    H_SHADOW, H_STAMPED_HEADERS, H_STAMPS, H_TASK, H_TIMELIMIT, STANDARD_HEADERS, TaskHeaders,
};
use crate::{
    celery::{
        ProtocolError,
        error::{invalid_header, kind},
        time::parse_datetime,
    },
    headers::Headers,
};

/// The headers of a message being read: the standard ones by position in
/// [`STANDARD_HEADERS`], taken out by value as they are converted, and every other one.
#[derive(Default)]
pub(in crate::celery) struct HeaderFields {
    standard: [Option<Value>; STANDARD_HEADERS.len()],
    extra: Map<String, Value>,
}

impl HeaderFields {
    pub(in crate::celery) fn read(headers: &Headers) -> Result<Self, ProtocolError> {
        if let Some(text) = headers.json_text() {
            // Read straight from the text: no map is built only to be taken apart.
            return serde_json::from_str(text)
                .map_err(|e| invalid_header("headers", format!("not a JSON object: {e}")));
        }
        let mut fields = Self::default();
        for (name, value) in &**headers {
            fields.put(Cow::Borrowed(name), value.clone());
        }
        Ok(fields)
    }

    /// Rejects a body kombu compressed.
    pub(in crate::celery) fn check_compression(&self) -> Result<(), ProtocolError> {
        match self.extra.get(H_COMPRESSION).filter(|v| !v.is_null()) {
            Some(compression) => Err(ProtocolError::UnsupportedCompression {
                compression: value_text(compression),
            }),
            None => Ok(()),
        }
    }

    /// Files one header; a name given twice keeps its last value, as a map would.
    fn put(&mut self, name: Cow<'_, str>, value: Value) {
        match STANDARD_HEADERS
            .iter()
            .position(|standard| *standard == name)
        {
            Some(index) => self.standard[index] = Some(value),
            None => {
                self.extra.insert(name.into_owned(), value);
            }
        }
    }

    /// The value of standard header `name`, `None` when absent or null.
    fn take(&mut self, name: &str) -> Option<Value> {
        let index = STANDARD_HEADERS
            .iter()
            .position(|standard| *standard == name)?;
        self.standard[index].take().filter(|v| !v.is_null())
    }

    pub(in crate::celery) fn into_task_headers(mut self) -> Result<TaskHeaders, ProtocolError> {
        self.check_compression()?;
        let task = string(H_TASK, self.take(H_TASK))?
            .filter(|s| !s.is_empty())
            .ok_or(ProtocolError::MissingHeader { name: H_TASK })?;
        let id = string(H_ID, self.take(H_ID))?
            .filter(|s| !s.is_empty())
            .ok_or(ProtocolError::MissingHeader { name: H_ID })?;
        Ok(TaskHeaders {
            lang: string(H_LANG, self.take(H_LANG))?.unwrap_or_default(),
            task,
            id,
            shadow: string(H_SHADOW, self.take(H_SHADOW))?,
            eta: datetime(H_ETA, self.take(H_ETA))?,
            expires: datetime(H_EXPIRES, self.take(H_EXPIRES))?,
            group: string(H_GROUP, self.take(H_GROUP))?,
            group_index: unsigned(H_GROUP_INDEX, self.take(H_GROUP_INDEX))?,
            retries: unsigned_32(H_RETRIES, self.take(H_RETRIES))?.unwrap_or(0),
            timelimit: timelimit(self.take(H_TIMELIMIT))?,
            root_id: string(H_ROOT_ID, self.take(H_ROOT_ID))?,
            parent_id: string(H_PARENT_ID, self.take(H_PARENT_ID))?,
            argsrepr: string(H_ARGSREPR, self.take(H_ARGSREPR))?.unwrap_or_default(),
            kwargsrepr: string(H_KWARGSREPR, self.take(H_KWARGSREPR))?.unwrap_or_default(),
            origin: string(H_ORIGIN, self.take(H_ORIGIN))?,
            ignore_result: boolean(H_IGNORE_RESULT, self.take(H_IGNORE_RESULT))?,
            replaced_task_nesting: unsigned_32(
                H_REPLACED_TASK_NESTING,
                self.take(H_REPLACED_TASK_NESTING),
            )?
            .unwrap_or(0),
            stamped_headers: string_list(H_STAMPED_HEADERS, self.take(H_STAMPED_HEADERS))?,
            stamps: object(H_STAMPS, self.take(H_STAMPS))?.unwrap_or_default(),
            extra: self.extra,
        })
    }
}

impl<'de> Deserialize<'de> for HeaderFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = HeaderFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of headers")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut entries: A,
            ) -> Result<HeaderFields, A::Error> {
                let mut fields = HeaderFields::default();
                while let Some(Name(name)) = entries.next_key()? {
                    let value = entries.next_value()?;
                    fields.put(name, value);
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// A header name, borrowed from the text it is read from unless it has escapes.
struct Name<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }
            fn visit_string<E>(self, name: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name)))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// A string as itself, anything else as JSON text.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

// Each reader takes a standard header's value (`None` when absent or null) by value, so
// strings and lists move into the typed field instead of being copied.

fn string(name: &str, value: Option<Value>) -> Result<Option<String>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid_header(
            name,
            format!("expected a string, got {}", kind(&other)),
        )),
    }
}

fn unsigned(name: &str, value: Option<Value>) -> Result<Option<u64>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            invalid_header(
                name,
                format!("expected a non-negative integer, got {value}"),
            )
        }),
    }
}

fn unsigned_32(name: &str, value: Option<Value>) -> Result<Option<u32>, ProtocolError> {
    unsigned(name, value)?
        .map(|n| u32::try_from(n).map_err(|_| invalid_header(name, format!("{n} is too large"))))
        .transpose()
}

fn boolean(name: &str, value: Option<Value>) -> Result<Option<bool>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(other) => Err(invalid_header(
            name,
            format!("expected a boolean, got {}", kind(&other)),
        )),
    }
}

fn object(name: &str, value: Option<Value>) -> Result<Option<Map<String, Value>>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(other) => Err(invalid_header(
            name,
            format!("expected an object, got {}", kind(&other)),
        )),
    }
}

fn string_list(name: &str, value: Option<Value>) -> Result<Option<Vec<String>>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                other => Err(invalid_header(
                    name,
                    format!("expected a list of strings, found {}", kind(&other)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(invalid_header(
            name,
            format!("expected a list of strings, got {}", kind(&other)),
        )),
    }
}

fn datetime(name: &str, value: Option<Value>) -> Result<Option<DateTime<Utc>>, ProtocolError> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => parse_datetime(&text).map(Some).ok_or_else(|| {
            invalid_header(name, format!("{text:?} is not an ISO-8601 date and time"))
        }),
        Some(other) => Err(invalid_header(
            name,
            format!("expected an ISO-8601 string, got {}", kind(&other)),
        )),
    }
}

fn timelimit(value: Option<Value>) -> Result<(Option<f64>, Option<f64>), ProtocolError> {
    let seconds = |value: &Value| match value {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid_header(H_TIMELIMIT, format!("{n} is not a number of seconds"))),
        other => Err(invalid_header(
            H_TIMELIMIT,
            format!("expected seconds or null, got {}", kind(other)),
        )),
    };
    match value {
        None => Ok((None, None)),
        Some(Value::Array(items)) if items.len() == 2 => {
            Ok((seconds(&items[0])?, seconds(&items[1])?))
        }
        Some(other) => Err(invalid_header(
            H_TIMELIMIT,
            format!("expected [hard, soft], got {other}"),
        )),
    }
}
