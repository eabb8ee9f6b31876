//! Validation of request bodies into [`NewTodo`] and [`TodoPatch`].
//!
//! The checks run in a fixed order, so a body with several faults always gets the same
//! answer: not an object, then extra fields, then (on create) a missing title, then each
//! field in the order `title`, `description`, `completed`, `deadline_at`.

use chrono::NaiveDateTime;
use serde_json::{Map, Value};

use super::datetime;

/// The fields a client may send; anything else is [`ValidationError::ExtraFields`].
pub const FIELDS: [&str; 4] = ["title", "description", "completed", "deadline_at"];

/// The longest title accepted, in characters (Unicode scalar values, as Python counts).
pub const MAX_TITLE_CHARS: usize = 80;

/// The longest description accepted, in characters (Unicode scalar values).
pub const MAX_DESCRIPTION_CHARS: usize = 120;

/// Why a request body was refused. The `Display` text is the client-facing message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The body is JSON, but not an object.
    #[error("request body must be a JSON object")]
    NotAnObject,
    /// The body names a field outside [`FIELDS`] (`id`, `created_at`, `updated_at` included).
    #[error("extra fields")]
    ExtraFields,
    /// A create without a title, or any body with `"title": null`.
    #[error("missing title")]
    MissingTitle,
    /// A title that is empty or only whitespace.
    #[error("title must not be blank")]
    BlankTitle,
    /// A field of the wrong JSON type.
    #[error("{field} must be {expected}")]
    WrongType {
        /// The offending field.
        field: &'static str,
        /// What it must be, in words.
        expected: &'static str,
    },
    /// A text field longer than its limit.
    #[error("{field} must be at most {max} characters")]
    TooLong {
        /// The offending field.
        field: &'static str,
        /// Its limit in characters.
        max: usize,
    },
    /// A datetime field whose text is not an accepted datetime.
    #[error("{field} must be a datetime such as 2023-02-27T00:00:00, or null")]
    BadDatetime {
        /// The offending field.
        field: &'static str,
    },
}

/// A validated body of `POST /todos`. Its schema is the body's: any other field is refused.
#[derive(Debug, Clone, PartialEq, Eq, utoipa::ToSchema)]
pub struct NewTodo {
    /// Non-blank, at most [`MAX_TITLE_CHARS`] characters.
    #[schema(example = "Hand in report")]
    pub title: String,
    /// At most [`MAX_DESCRIPTION_CHARS`] characters; `None` when absent or null.
    #[schema(required = false)]
    pub description: Option<String>,
    /// `false` when absent.
    #[schema(required = false, default = false)]
    pub completed: bool,
    /// Naive UTC with microsecond precision; `None` when absent or null.
    #[schema(value_type = Option<String>, required = false, example = "2030-01-02T03:04:05")]
    pub deadline_at: Option<NaiveDateTime>,
}

/// A validated body of `PUT /todos/{id}`: `None` leaves a field unchanged.
///
/// For the nullable fields, `Some(None)` sets the field to null.
#[derive(Debug, Clone, Default, PartialEq, Eq, utoipa::ToSchema)]
pub struct TodoPatch {
    /// A new title, with the same rules as [`NewTodo::title`].
    #[schema(value_type = String, required = false)]
    pub title: Option<String>,
    /// A new description, or `Some(None)` to clear it.
    #[schema(value_type = Option<String>, required = false)]
    pub description: Option<Option<String>>,
    /// A new completion state.
    #[schema(value_type = bool, required = false)]
    pub completed: Option<bool>,
    /// A new deadline, or `Some(None)` to clear it.
    #[schema(value_type = Option<String>, required = false, example = "2030-01-02T03:04:05")]
    pub deadline_at: Option<Option<NaiveDateTime>>,
}

impl NewTodo {
    /// Validates a `POST /todos` body.
    ///
    /// # Errors
    /// The first fault found, in the order the module documentation gives.
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        let fields = object_with_known_fields(body)?;
        if fields.get("title").is_none_or(Value::is_null) {
            return Err(ValidationError::MissingTitle);
        }
        let patch = TodoPatch::from_fields(fields)?;
        Ok(Self {
            title: patch.title.ok_or(ValidationError::MissingTitle)?,
            description: patch.description.flatten(),
            completed: patch.completed.unwrap_or(false),
            deadline_at: patch.deadline_at.flatten(),
        })
    }
}

impl TodoPatch {
    /// Validates a `PUT /todos/{id}` body; `{}` is valid and changes nothing.
    ///
    /// # Errors
    /// The first fault found, in the order the module documentation gives.
    pub fn from_json(body: &Value) -> Result<Self, ValidationError> {
        Self::from_fields(object_with_known_fields(body)?)
    }

    fn from_fields(fields: &Map<String, Value>) -> Result<Self, ValidationError> {
        Ok(Self {
            title: fields.get("title").map(title).transpose()?,
            description: fields.get("description").map(description).transpose()?,
            completed: fields.get("completed").map(completed).transpose()?,
            deadline_at: fields
                .get("deadline_at")
                .map(|value| nullable_datetime("deadline_at", value))
                .transpose()?,
        })
    }

    /// Whether the patch changes no field.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

fn object_with_known_fields(body: &Value) -> Result<&Map<String, Value>, ValidationError> {
    let fields = body.as_object().ok_or(ValidationError::NotAnObject)?;
    if fields.keys().any(|key| !FIELDS.contains(&key.as_str())) {
        return Err(ValidationError::ExtraFields);
    }
    Ok(fields)
}

fn title(value: &Value) -> Result<String, ValidationError> {
    let text = match value {
        Value::Null => return Err(ValidationError::MissingTitle),
        Value::String(text) => text,
        _ => {
            return Err(ValidationError::WrongType {
                field: "title",
                expected: "a string",
            });
        }
    };
    if text.trim().is_empty() {
        return Err(ValidationError::BlankTitle);
    }
    within_limit("title", text, MAX_TITLE_CHARS)
}

fn description(value: &Value) -> Result<Option<String>, ValidationError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => within_limit("description", text, MAX_DESCRIPTION_CHARS).map(Some),
        _ => Err(ValidationError::WrongType {
            field: "description",
            expected: "a string or null",
        }),
    }
}

fn completed(value: &Value) -> Result<bool, ValidationError> {
    value.as_bool().ok_or(ValidationError::WrongType {
        field: "completed",
        expected: "true or false",
    })
}

fn nullable_datetime(
    field: &'static str,
    value: &Value,
) -> Result<Option<NaiveDateTime>, ValidationError> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => datetime::parse(text)
            .map(Some)
            .map_err(|_| ValidationError::BadDatetime { field }),
        _ => Err(ValidationError::BadDatetime { field }),
    }
}

fn within_limit(field: &'static str, text: &str, max: usize) -> Result<String, ValidationError> {
    if text.chars().count() > max {
        return Err(ValidationError::TooLong { field, max });
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error_of_create(body: &Value) -> String {
        NewTodo::from_json(body)
            .expect_err("body must be refused")
            .to_string()
    }

    #[test]
    fn create_fills_defaults_for_absent_fields() {
        let todo = NewTodo::from_json(&json!({"title": "Buy milk"})).expect("valid");
        assert_eq!(
            todo,
            NewTodo {
                title: "Buy milk".to_owned(),
                description: None,
                completed: false,
                deadline_at: None,
            }
        );
    }

    #[test]
    fn create_reads_every_field() {
        let todo = NewTodo::from_json(&json!({
            "title": "Report",
            "description": "Chapter 3",
            "completed": true,
            "deadline_at": "2030-01-02 03:04:05.678",
        }))
        .expect("valid");
        assert_eq!(todo.description.as_deref(), Some("Chapter 3"));
        assert!(todo.completed);
        assert_eq!(
            todo.deadline_at.map(datetime::format).as_deref(),
            Some("2030-01-02T03:04:05.678000")
        );
    }

    #[test]
    fn extra_fields_are_reported_before_anything_else() {
        for field in ["id", "created_at", "updated_at", "colour"] {
            let body = json!({ field: 1, "completed": "not a bool" });
            assert_eq!(error_of_create(&body), "extra fields");
            let patch = TodoPatch::from_json(&body).expect_err("must be refused");
            assert_eq!(patch, ValidationError::ExtraFields);
        }
    }

    #[test]
    fn create_without_title_or_with_null_title_is_missing_title() {
        assert_eq!(error_of_create(&json!({})), "missing title");
        assert_eq!(
            error_of_create(&json!({"title": null, "completed": 3})),
            "missing title"
        );
    }

    #[test]
    fn bodies_that_are_not_objects_are_refused() {
        for body in [json!([]), json!("title"), json!(1), json!(null)] {
            assert_eq!(error_of_create(&body), "request body must be a JSON object");
        }
    }

    #[test]
    fn wrong_types_name_the_field() {
        assert_eq!(
            error_of_create(&json!({"title": 5})),
            "title must be a string"
        );
        assert_eq!(
            error_of_create(&json!({"title": "t", "description": false})),
            "description must be a string or null"
        );
        assert_eq!(
            error_of_create(&json!({"title": "t", "completed": "true"})),
            "completed must be true or false"
        );
        assert_eq!(
            error_of_create(&json!({"title": "t", "deadline_at": 20_300_102})),
            "deadline_at must be a datetime such as 2023-02-27T00:00:00, or null"
        );
    }

    #[test]
    fn bad_datetime_text_is_refused() {
        let error = NewTodo::from_json(&json!({"title": "t", "deadline_at": "next week"}));
        assert_eq!(
            error,
            Err(ValidationError::BadDatetime {
                field: "deadline_at"
            })
        );
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let title = "é".repeat(MAX_TITLE_CHARS);
        assert!(NewTodo::from_json(&json!({ "title": title })).is_ok());
        let title = "é".repeat(MAX_TITLE_CHARS + 1);
        assert_eq!(
            error_of_create(&json!({ "title": title })),
            "title must be at most 80 characters"
        );
        let description = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
        assert_eq!(
            error_of_create(&json!({"title": "t", "description": description})),
            "description must be at most 120 characters"
        );
    }

    #[test]
    fn blank_titles_are_refused() {
        assert_eq!(
            error_of_create(&json!({"title": ""})),
            "title must not be blank"
        );
        assert_eq!(
            error_of_create(&json!({"title": "  \t"})),
            "title must not be blank"
        );
    }

    #[test]
    fn empty_patch_changes_nothing() {
        let patch = TodoPatch::from_json(&json!({})).expect("valid");
        assert!(patch.is_empty());
    }

    #[test]
    fn patch_distinguishes_absent_from_null() {
        let patch = TodoPatch::from_json(&json!({"description": null, "deadline_at": null}))
            .expect("valid");
        assert_eq!(patch.title, None);
        assert_eq!(patch.description, Some(None));
        assert_eq!(patch.deadline_at, Some(None));
        assert_eq!(patch.completed, None);
    }

    #[test]
    fn patch_refuses_a_null_title() {
        assert_eq!(
            TodoPatch::from_json(&json!({"title": null})),
            Err(ValidationError::MissingTitle)
        );
    }
}
