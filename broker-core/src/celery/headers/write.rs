//! Writing [`TaskHeaders`] as Celery 5 does: every standard header in Celery's order, then
//! the extra ones.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Number, Value};

use super::{
    H_ARGSREPR, H_COMPRESSION, H_ETA, H_EXPIRES, H_GROUP, H_GROUP_INDEX, H_ID, H_IGNORE_RESULT,
    H_KWARGSREPR, H_LANG, H_ORIGIN, H_PARENT_ID, H_REPLACED_TASK_NESTING, H_RETRIES, H_ROOT_ID,
    H_SHADOW, H_STAMPED_HEADERS, H_STAMPS, H_TASK, H_TIMELIMIT, STANDARD_HEADERS, TaskHeaders,
};
use crate::{
    celery::{ProtocolError, error::invalid_header, time::python_isoformat},
    headers::{Headers, MAX_DEPTH},
};

/// See [`TaskHeaders::to_headers`].
pub(super) fn to_headers(headers: &TaskHeaders) -> Result<Headers, ProtocolError> {
    if headers.task.is_empty() {
        return Err(ProtocolError::MissingHeader { name: H_TASK });
    }
    if headers.id.is_empty() {
        return Err(ProtocolError::MissingHeader { name: H_ID });
    }
    for (name, value) in &headers.extra {
        if STANDARD_HEADERS.contains(&name.as_str()) || name == H_COMPRESSION {
            return Err(ProtocolError::ReservedHeader { name: name.clone() });
        }
        // The headers object and this entry's value take the first two levels.
        if 1 + nesting_depth(value) > MAX_DEPTH {
            return Err(invalid_header(
                name,
                format!("nested deeper than the {MAX_DEPTH} levels JSON readers accept"),
            ));
        }
    }
    let wire = WireHeaders {
        headers,
        eta: datetime_text(H_ETA, headers.eta)?,
        expires: datetime_text(H_EXPIRES, headers.expires)?,
        timelimit: [
            seconds_value(headers.timelimit.0)?,
            seconds_value(headers.timelimit.1)?,
        ],
    };
    let text = serde_json::value::to_raw_value(&wire).map_err(ProtocolError::Serialize)?;
    Headers::from_json(text).map_err(ProtocolError::Serialize)
}

/// [`TaskHeaders`] as Celery 5 writes them, in its order: the standard headers, then the
/// extra ones. Dates and time limits are converted (and checked) beforehand.
struct WireHeaders<'a> {
    headers: &'a TaskHeaders,
    eta: Option<String>,
    expires: Option<String>,
    timelimit: [Value; 2],
}

impl Serialize for WireHeaders<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let h = self.headers;
        let mut map = serializer.serialize_map(Some(STANDARD_HEADERS.len() + h.extra.len()))?;
        map.serialize_entry(H_LANG, &h.lang)?;
        map.serialize_entry(H_TASK, &h.task)?;
        map.serialize_entry(H_ID, &h.id)?;
        map.serialize_entry(H_SHADOW, &h.shadow)?;
        map.serialize_entry(H_ETA, &self.eta)?;
        map.serialize_entry(H_EXPIRES, &self.expires)?;
        map.serialize_entry(H_GROUP, &h.group)?;
        map.serialize_entry(H_GROUP_INDEX, &h.group_index)?;
        map.serialize_entry(H_RETRIES, &h.retries)?;
        map.serialize_entry(H_TIMELIMIT, &self.timelimit)?;
        map.serialize_entry(H_ROOT_ID, &h.root_id)?;
        map.serialize_entry(H_PARENT_ID, &h.parent_id)?;
        map.serialize_entry(H_ARGSREPR, &h.argsrepr)?;
        map.serialize_entry(H_KWARGSREPR, &h.kwargsrepr)?;
        map.serialize_entry(H_ORIGIN, &h.origin)?;
        map.serialize_entry(H_IGNORE_RESULT, &h.ignore_result)?;
        map.serialize_entry(H_REPLACED_TASK_NESTING, &h.replaced_task_nesting)?;
        map.serialize_entry(H_STAMPED_HEADERS, &h.stamped_headers)?;
        map.serialize_entry(H_STAMPS, &h.stamps)?;
        for (name, value) in &h.extra {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// `dt` as Python's `isoformat()`, if it is a date Python can represent.
fn datetime_text(name: &str, dt: Option<DateTime<Utc>>) -> Result<Option<String>, ProtocolError> {
    let Some(dt) = dt else {
        return Ok(None);
    };
    python_isoformat(dt).map(Some).ok_or_else(|| {
        invalid_header(
            name,
            format!("{dt} is outside the years 1 to 9999 that Python can represent"),
        )
    })
}

fn nesting_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(nesting_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(nesting_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Seconds as JSON: whole numbers as integers (as Celery sends `30`), others as floats.
fn seconds_value(seconds: Option<f64>) -> Result<Value, ProtocolError> {
    const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    let Some(seconds) = seconds else {
        return Ok(Value::Null);
    };
    if seconds.fract() == 0.0 && seconds.abs() < EXACT_INTEGER_LIMIT {
        // Exact: a whole number below 2^53 converts to i64 without loss.
        #[allow(clippy::cast_possible_truncation)]
        return Ok(Value::from(seconds as i64));
    }
    Number::from_f64(seconds)
        .map(Value::Number)
        .ok_or_else(|| invalid_header(H_TIMELIMIT, format!("{seconds} is not a finite number")))
}
