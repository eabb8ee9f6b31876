//! Message headers: names to JSON values, kept as the JSON text they travel as until someone
//! reads them as a map.

use std::{
    fmt,
    ops::{Deref, DerefMut},
    sync::OnceLock,
};

use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{Error as _, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Map, Value, value::RawValue};

/// The deepest nesting `serde_json` parses (its recursion limit), counting the headers object
/// itself as 1. Text nested deeper is refused when the headers are made, so reading them as
/// a map later cannot fail.
pub(crate) const MAX_DEPTH: usize = 127;

/// Message headers: names to JSON values.
///
/// JSON values (not only strings) because task protocols such as Celery's carry numbers, lists
/// and nulls in headers. Every backend round-trips them unchanged; backends whose native headers
/// are strings or bytes store the JSON text.
///
/// Headers are held in one of two forms, and a caller sees the same headers in either:
///
/// * as a map (`serde_json`'s, sorted by name), when built in code: [`Headers::new`],
///   `From<Map>`, [`FromIterator`];
/// * as the JSON text of an object, when a codec wrote them ([`Headers::from_json`]) or a
///   backend read them off the wire. Publishing writes that text out as it is, and reading
///   the headers as a map ([`Deref`]) parses it once, on first use. A reader of only a few
///   fields, such as the task codec, can read the text itself ([`Headers::json_text`]).
///
/// Changing the headers ([`DerefMut`]) turns them into a map for good. Equality compares the
/// maps, whatever the form.
#[derive(Clone, Default)]
pub struct Headers {
    /// The authoritative form when `Some`: a JSON object no deeper than [`MAX_DEPTH`].
    text: Option<Box<RawValue>>,
    /// The map: the authoritative form when `text` is `None`, else `text` parsed on first
    /// read.
    map: OnceLock<Map<String, Value>>,
}

impl Headers {
    /// No headers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Headers held as `text`, which must be a JSON object.
    ///
    /// # Errors
    /// When `text` is not a JSON object, or is nested deeper than `serde_json` parses (127
    /// levels, counting the object itself).
    pub fn from_json(text: Box<RawValue>) -> Result<Self, serde_json::Error> {
        if !text.get().trim_start().starts_with('{') {
            return Err(serde_json::Error::custom("headers are not a JSON object"));
        }
        // Everything a map would refuse (nesting past the limit, a number out of range, a
        // lone surrogate escape...), refused now: later reads cannot fail.
        serde_json::from_str::<Readable>(text.get())?;
        Ok(Self {
            text: Some(text),
            map: OnceLock::new(),
        })
    }

    /// The JSON text these headers were made from, as long as they have not been changed
    /// since; `None` for headers held as a map.
    #[must_use]
    pub fn json_text(&self) -> Option<&str> {
        self.text.as_deref().map(RawValue::get)
    }

    /// The length of the headers' JSON text: the text they were made from, or the compact
    /// text of the map (counted, not written). 0 when there are no headers: there is nothing
    /// to store.
    #[must_use]
    pub fn json_len(&self) -> usize {
        match self.json_text() {
            // Only an empty object has nothing but braces and spaces; the scan stops at the
            // first name of any other.
            Some(text) if text.bytes().all(|b| b"{} \t\r\n".contains(&b)) => 0,
            Some(text) => text.len(),
            None if self.map().is_empty() => 0,
            None => json_len(self.map()),
        }
    }

    fn map(&self) -> &Map<String, Value> {
        self.map.get_or_init(|| {
            let text = self.json_text().unwrap_or("{}");
            // `from_json` checked that the text is an object `serde_json` can parse.
            serde_json::from_str(text).unwrap_or_else(|e| {
                unreachable!("headers text was checked when the headers were made: {e}")
            })
        })
    }
}

impl Deref for Headers {
    type Target = Map<String, Value>;

    /// The headers as a map; parsed from their text on the first call.
    fn deref(&self) -> &Self::Target {
        self.map()
    }
}

impl DerefMut for Headers {
    /// The headers as a map to change; from now on they are held as a map only.
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.map();
        self.text = None;
        self.map
            .get_mut()
            .unwrap_or_else(|| unreachable!("the map was just initialised"))
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a String, &'a Value);
    type IntoIter = serde_json::map::Iter<'a>;

    /// The headers in name order.
    fn into_iter(self) -> Self::IntoIter {
        self.map().iter()
    }
}

impl From<Map<String, Value>> for Headers {
    fn from(map: Map<String, Value>) -> Self {
        Self {
            text: None,
            map: OnceLock::from(map),
        }
    }
}

impl FromIterator<(String, Value)> for Headers {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(entries: I) -> Self {
        Self::from(Map::from_iter(entries))
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        match (self.json_text(), other.json_text()) {
            (Some(a), Some(b)) if a == b => true,
            _ => **self == **other,
        }
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl Serialize for Headers {
    /// Writes the text the headers were made from unchanged where the serializer is
    /// `serde_json`'s, else the map.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.text {
            Some(text) => text.serialize(serializer),
            None => self.map().serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Headers {
    /// Reads a map (a backend that wants to keep the text deserializes a `RawValue` and calls
    /// [`Headers::from_json`]).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::deserialize(deserializer).map(Self::from)
    }
}

/// JSON read as a [`Value`] reads it, keeping nothing: it fails exactly where reading a
/// `Value` (or a map of them) would, at the same nesting limit, without allocating the values.
struct Readable;

impl<'de> Deserialize<'de> for Readable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Readable)
    }
}

impl<'de> Visitor<'de> for Readable {
    type Value = Readable;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Self, A::Error> {
        while items.next_element::<Readable>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Self, A::Error> {
        while entries.next_entry::<Readable, Readable>()?.is_some() {}
        Ok(self)
    }
}

/// The length of `value`'s compact JSON text, counted without building it.
pub(crate) fn json_len(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing JSON values to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(json: &str) -> Headers {
        Headers::from_json(RawValue::from_string(json.to_owned()).unwrap()).unwrap()
    }

    #[test]
    fn headers_made_from_text_read_as_the_map_it_holds() {
        let headers = text(r#"{"b": [1, {"c": null}], "a": "x"}"#);
        assert_eq!(headers["a"], json!("x"));
        assert_eq!(headers.len(), 2);
        let map: Headers = [
            ("a".to_owned(), json!("x")),
            ("b".to_owned(), json!([1, {"c": null}])),
        ]
        .into_iter()
        .collect();
        assert_eq!(headers, map);
        assert_eq!(map, headers);
    }

    #[test]
    fn headers_made_from_text_are_written_out_as_that_text() {
        let headers = text(r#"{"z": 1,  "a": 2}"#);
        // Reading does not change the form.
        assert_eq!(headers["z"], json!(1));
        assert_eq!(
            serde_json::to_string(&headers).unwrap(),
            r#"{"z": 1,  "a": 2}"#
        );
        assert_eq!(headers.json_len(), r#"{"z": 1,  "a": 2}"#.len());
    }

    /// Every backend writes header values as JSON and reads them back; a float must come
    /// back as the same float however often it travels (serde_json's `float_roundtrip`).
    /// Found by the Kafka record fuzz target.
    #[test]
    fn a_float_header_reads_back_the_same_after_any_number_of_trips() {
        let sent = 1.071_566_039_146_582_6e-75_f64;
        let mut value = json!(sent);
        for _ in 0..3 {
            value = serde_json::from_str(&value.to_string()).unwrap();
        }
        assert_eq!(value.as_f64(), Some(sent));
    }

    #[test]
    fn no_headers_take_no_space() {
        assert_eq!(Headers::new().json_len(), 0);
        assert_eq!(text("{ }").json_len(), 0);
        assert_eq!(text(r#"{"":0}"#).json_len(), 6);
    }

    #[test]
    fn changed_headers_are_held_as_a_map_from_then_on() {
        let mut headers = text(r#"{"z": 1}"#);
        headers.insert("a".into(), json!(true));
        assert_eq!(headers.json_text(), None);
        assert_eq!(
            serde_json::to_string(&headers).unwrap(),
            r#"{"a":true,"z":1}"#
        );
        assert_eq!(headers.json_len(), r#"{"a":true,"z":1}"#.len());
    }

    #[test]
    fn only_json_objects_make_headers() {
        for bad in ["[1]", "\"x\"", "null", "3"] {
            let raw = RawValue::from_string(bad.to_owned()).unwrap();
            let err = Headers::from_json(raw).unwrap_err();
            assert!(
                err.to_string().contains("not a JSON object"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn text_is_accepted_exactly_when_serde_json_can_read_it_as_a_map() {
        for depth in [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 2] {
            // An object holding `depth - 1` nested arrays, with brackets inside a string
            // that must not count.
            let inner = "[".repeat(depth - 1) + &"]".repeat(depth - 1);
            let json = format!(r#"{{"s": "[[{{\"]]", "deep": {inner}}}"#);
            let parses = serde_json::from_str::<Map<String, Value>>(&json).is_ok();
            let made = Headers::from_json(RawValue::from_string(json).unwrap());
            assert_eq!(made.is_ok(), parses, "depth {depth}");
            if let Ok(headers) = made {
                assert!(headers.contains_key("deep"));
            }
        }
    }

    #[test]
    fn text_a_map_could_not_hold_is_refused_when_the_headers_are_made() {
        // Each is JSON as far as its syntax goes, and a `RawValue` takes it.
        for bad in [
            r#"{"n": 1e400}"#,
            r#"{"n": [-1e400]}"#,
            r#"{"s": "\ud800"}"#,
        ] {
            let raw = RawValue::from_string(bad.to_owned()).expect("syntax");
            assert!(Headers::from_json(raw).is_err(), "{bad}");
        }
        let fine = r#"{"s": "[{\"]]", "big": 123456789012345678901234567890, "f": 1e300}"#;
        let headers = Headers::from_json(RawValue::from_string(fine.to_owned()).unwrap())
            .expect("a map holds it");
        assert!(headers.contains_key("big"));
    }

    #[test]
    fn headers_deserialize_as_a_map_and_debug_print_as_one() {
        let headers: Headers = serde_json::from_str(r#"{"k": "v"}"#).unwrap();
        assert_eq!(headers.json_text(), None);
        assert_eq!(format!("{headers:?}"), r#"{"k": String("v")}"#);
    }
}
