//! The todo API's JSON input: the bodies of `POST /todos` and `PUT /todos/{id}`, seeded by
//! `fuzz/seeds/todo_json`. Validation returns an error or a todo, never panics, and what it
//! accepts keeps the contract's rules (a title that is not blank and not too long).

#![no_main]

use libfuzzer_sys::fuzz_target;
use taskoverflow::todo::{MAX_TITLE_CHARS, NewTodo, TodoPatch};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(todo) = NewTodo::from_json(&body) {
        assert!(!todo.title.trim().is_empty(), "{body}");
        assert!(todo.title.chars().count() <= MAX_TITLE_CHARS, "{body}");
    }
    if let Ok(patch) = TodoPatch::from_json(&body)
        && let Some(title) = patch.title
    {
        assert!(!title.trim().is_empty(), "{body}");
    }
});
