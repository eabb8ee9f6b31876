//! The body `[args, kwargs, embed]`: what the task is called with, and the canvas [`Embed`]
//! (what runs after it).

use serde::Serialize;
use serde_json::{Map, Value};

use super::{
    ProtocolError,
    error::{invalid_body, kind},
};

const EMBED_CALLBACKS: &str = "callbacks";
const EMBED_ERRBACKS: &str = "errbacks";
const EMBED_CHAIN: &str = "chain";
const EMBED_CHORD: &str = "chord";

/// The compact UTF-8 JSON body `[args, kwargs, embed]`, the embed's standard keys first.
pub(super) fn encode(
    args: &[Value],
    kwargs: &Map<String, Value>,
    embed: &Embed,
) -> Result<Vec<u8>, ProtocolError> {
    serde_json::to_vec(&(args, kwargs, WireEmbed(embed))).map_err(ProtocolError::Serialize)
}

/// What a body holds: the call's arguments and what runs after it.
pub(super) struct Call {
    pub(super) args: Vec<Value>,
    pub(super) kwargs: Map<String, Value>,
    pub(super) embed: Embed,
}

/// A body that is a JSON array, not yet checked to be `[args, kwargs, embed]`.
///
/// Decoding reads a body in two steps: a body that is not JSON, or a protocol v1 body (which
/// carries no v2 headers), is reported before the headers are checked; a JSON array of the
/// wrong shape only after them.
pub(super) struct Parts(Vec<Value>);

impl Parts {
    /// Parses `body` as a JSON array.
    ///
    /// # Errors
    /// [`ProtocolError::InvalidJson`] for anything but UTF-8 JSON, [`ProtocolError::ProtocolV1`]
    /// for an object with a `task` key, [`ProtocolError::InvalidBody`] for any other non-array.
    pub(super) fn parse(body: &[u8]) -> Result<Self, ProtocolError> {
        match serde_json::from_slice(body).map_err(ProtocolError::InvalidJson)? {
            Value::Array(parts) => Ok(Self(parts)),
            Value::Object(map) if map.contains_key("task") => Err(ProtocolError::ProtocolV1),
            other => Err(invalid_body(format!(
                "expected an array, got {}",
                kind(&other)
            ))),
        }
    }

    /// The args, kwargs and embed.
    ///
    /// # Errors
    /// [`ProtocolError::InvalidBody`] unless the array holds an array, an object and an object
    /// or null.
    pub(super) fn into_call(self) -> Result<Call, ProtocolError> {
        let [args, kwargs, embed]: [Value; 3] =
            self.0.try_into().map_err(|parts: Vec<Value>| {
                invalid_body(format!("expected 3 elements, got {}", parts.len()))
            })?;
        let Value::Array(args) = args else {
            return Err(invalid_body(format!(
                "args (first element) must be an array, got {}",
                kind(&args)
            )));
        };
        let Value::Object(kwargs) = kwargs else {
            return Err(invalid_body(format!(
                "kwargs (second element) must be an object, got {}",
                kind(&kwargs)
            )));
        };
        Ok(Call {
            args,
            kwargs,
            embed: Embed::from_value(embed)?,
        })
    }
}

/// The canvas part of the body: what runs after this task.
///
/// Signatures are kept as the JSON objects Celery sends (`{"task", "args", "kwargs",
/// "options", "subtask_type", "immutable"}`); `None` is Celery's `null`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embed {
    /// Signatures to apply with this task's result when it succeeds (`link`).
    pub callbacks: Option<Vec<Value>>,
    /// Signatures to apply when this task fails (`link_error`).
    pub errbacks: Option<Vec<Value>>,
    /// The rest of a chain, in reverse order: the last element runs next.
    pub chain: Option<Vec<Value>>,
    /// The chord body signature this task is a header member of.
    pub chord: Option<Value>,
    /// Any other key of the embed object, unchanged.
    pub extra: Map<String, Value>,
}

impl Embed {
    fn from_value(value: Value) -> Result<Self, ProtocolError> {
        let mut map = match value {
            Value::Null => return Ok(Self::default()),
            Value::Object(map) => map,
            other => {
                return Err(invalid_body(format!(
                    "embed (third element) must be an object or null, got {}",
                    kind(&other)
                )));
            }
        };
        let mut list = |key: &str| match map.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(invalid_body(format!(
                "embed.{key} must be a list or null, got {}",
                kind(&other)
            ))),
        };
        let callbacks = list(EMBED_CALLBACKS)?;
        let errbacks = list(EMBED_ERRBACKS)?;
        let chain = list(EMBED_CHAIN)?;
        let chord = map.remove(EMBED_CHORD).filter(|v| !v.is_null());
        Ok(Self {
            callbacks,
            errbacks,
            chain,
            chord,
            extra: map,
        })
    }
}

/// [`Embed`] as Celery writes it: the four standard keys (`null` where unset), then any other
/// key that does not repeat one of them.
struct WireEmbed<'a>(&'a Embed);

impl Serialize for WireEmbed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let embed = self.0;
        let standard = [EMBED_CALLBACKS, EMBED_ERRBACKS, EMBED_CHAIN, EMBED_CHORD];
        let extra = embed
            .extra
            .iter()
            .filter(|(key, _)| !standard.contains(&key.as_str()));
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(EMBED_CALLBACKS, &embed.callbacks)?;
        map.serialize_entry(EMBED_ERRBACKS, &embed.errbacks)?;
        map.serialize_entry(EMBED_CHAIN, &embed.chain)?;
        map.serialize_entry(EMBED_CHORD, &embed.chord)?;
        for (key, value) in extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}
