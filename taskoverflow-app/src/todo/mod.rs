//! The todo: what the API stores, returns and validates.
//!
//! [`Todo`] is the stored record as clients see it; it serializes to (and deserializes from)
//! exactly the contract's JSON object, so the same value travels to the calendar worker.
//! [`NewTodo`] and [`TodoPatch`] are validated request bodies, built by
//! [`NewTodo::from_json`] and [`TodoPatch::from_json`], which reject anything the contract does
//! not allow with a [`ValidationError`] whose message is safe to show to the client.

pub mod datetime;
mod input;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

pub use self::input::{
    FIELDS, MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS, NewTodo, TodoPatch, ValidationError,
};

/// A stored todo, as the API returns it.
///
/// Serializes to `{"id", "title", "description", "completed", "deadline_at", "created_at",
/// "updated_at"}` with datetimes in the contract's naive-UTC form (see [`datetime`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Todo {
    /// Assigned by the store on creation; never reused, even after a delete.
    pub id: i64,
    /// At most [`MAX_TITLE_CHARS`] characters, never empty.
    pub title: String,
    /// At most [`MAX_DESCRIPTION_CHARS`] characters, or `None`.
    pub description: Option<String>,
    /// `false` unless set.
    pub completed: bool,
    /// Naive UTC, microsecond precision, or `None`.
    #[serde(with = "datetime::serde_optional")]
    #[schema(value_type = Option<String>, example = "2030-01-02T03:04:05")]
    pub deadline_at: Option<NaiveDateTime>,
    /// Naive UTC, set by the store on creation.
    #[serde(with = "datetime::serde_required")]
    #[schema(value_type = String, example = "2026-12-07T18:00:00.123456")]
    pub created_at: NaiveDateTime,
    /// Naive UTC, set by the store on creation and on every update.
    #[serde(with = "datetime::serde_required")]
    #[schema(value_type = String, example = "2026-12-07T18:00:00.123456")]
    pub updated_at: NaiveDateTime,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Todo {
        let at = |text| datetime::parse(text).expect("valid test input");
        Todo {
            id: 7,
            title: "Write report".to_owned(),
            description: None,
            completed: false,
            deadline_at: Some(at("2026-11-22T07:22:49.903009")),
            created_at: at("2023-02-27T00:00:00"),
            updated_at: at("2023-02-27T00:00:00.5"),
        }
    }

    #[test]
    fn todo_serializes_to_the_contract_object() {
        let value = serde_json::to_value(sample()).expect("serializable");
        assert_eq!(
            value,
            json!({
                "id": 7,
                "title": "Write report",
                "description": null,
                "completed": false,
                "deadline_at": "2026-11-22T07:22:49.903009",
                "created_at": "2023-02-27T00:00:00",
                "updated_at": "2023-02-27T00:00:00.500000",
            })
        );
    }

    #[test]
    fn todo_json_round_trips() {
        let todo = sample();
        let text = serde_json::to_string(&todo).expect("serializable");
        let back: Todo = serde_json::from_str(&text).expect("deserializable");
        assert_eq!(back, todo);
    }
}
