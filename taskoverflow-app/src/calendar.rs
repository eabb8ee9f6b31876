//! The calendar export: todos with a deadline as an iCalendar (RFC 5545) document.
//!
//! [`build_calendar`] writes, with CRLF line ends, text escaped and long lines folded at
//! 75 octets by the `icalendar` crate:
//!
//! ```text
//! BEGIN:VCALENDAR
//! VERSION:2.0
//! PRODID:-//Taskoverflow Calendar//mxm.dk//
//! BEGIN:VEVENT
//! DESCRIPTION:<description, only when not null>
//! DTSTAMP:<updated_at as YYYYMMDDTHHMMSSZ>
//! DTSTART:<deadline_at as YYYYMMDDTHHMMSS>
//! SUMMARY:<title>
//! UID:<id>
//! END:VEVENT
//! END:VCALENDAR
//! ```
//!
//! Two differences from the reference's Python output, both forced by the crate and both
//! invisible to a calendar client:
//!
//! - **`DTSTAMP`**: RFC 5545 (section 3.6.1) requires one in every `VEVENT`, and the crate
//!   writes the current time when a component has none; no builder call removes it
//!   (`remove_timestamp` only clears one set before, and the crate adds "now" again when it
//!   writes). Only the crate's parser types skip it, and they do not escape text. So we set it
//!   ourselves to the todo's `updated_at` (in UTC, as the RFC wants): for a calendar without a
//!   `METHOD`, DTSTAMP is "when the information was last revised", which is exactly that, and
//!   the output becomes a pure function of the todos.
//! - **Property order**: the crate keeps a component's properties in a sorted map, so they come
//!   out in alphabetical order. RFC 5545 gives property order no meaning.
//!
//! `DTSTART` is a floating time (no `Z`), as in the reference: the stored deadline is naive UTC
//! and the reference writes it that way. Line breaks in text are normalized to `\n` before
//! escaping (a lone or paired CR would otherwise reach the output raw).

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, Event, EventLike, Property};

use crate::todo::Todo;

/// The `PRODID` of every calendar we write.
pub const PRODID: &str = "-//Taskoverflow Calendar//mxm.dk//";

/// The `Content-Type` of a calendar document.
pub const CONTENT_TYPE: &str = "text/calendar";

/// Builds the calendar of `todos`: one `VEVENT` per todo that has a deadline, in the order
/// given; todos without a deadline are skipped. The same todos always give the same text.
pub fn build_calendar(todos: &[Todo]) -> String {
    let mut calendar = Calendar::empty();
    calendar.append_property(Property::new("VERSION", "2.0"));
    calendar.append_property(Property::new("PRODID", PRODID));
    for todo in todos {
        if let Some(event) = event_for(todo) {
            calendar.push(event);
        }
    }
    calendar.to_string()
}

fn event_for(todo: &Todo) -> Option<Event> {
    let deadline = todo.deadline_at?;
    let mut event = Event::new();
    event
        .summary(&normalize_line_breaks(&todo.title))
        .starts(deadline)
        .uid(&todo.id.to_string())
        .timestamp(DateTime::<Utc>::from_naive_utc_and_offset(
            todo.updated_at,
            Utc,
        ));
    if let Some(description) = &todo.description {
        event.description(&normalize_line_breaks(description));
    }
    Some(event.done())
}

/// Replaces CRLF and lone CR by LF, which the crate escapes as `\n`.
fn normalize_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;

    use super::*;
    use crate::todo::datetime;

    fn at(text: &str) -> NaiveDateTime {
        datetime::parse(text).expect("valid test input")
    }

    fn todo(id: i64, title: &str, description: Option<&str>, deadline: Option<&str>) -> Todo {
        Todo {
            id,
            title: title.to_owned(),
            description: description.map(str::to_owned),
            completed: false,
            deadline_at: deadline.map(at),
            created_at: at("2023-02-01T08:00:00"),
            updated_at: at("2023-02-01T09:30:15.25"),
        }
    }

    /// The calendar's lines, unfolded (RFC 5545 section 3.1) and without CRLF.
    fn unfolded_lines(calendar: &str) -> Vec<String> {
        calendar
            .replace("\r\n ", "")
            .replace("\r\n\t", "")
            .split("\r\n")
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn calendar_has_the_contract_header_and_one_event_per_todo_with_a_deadline() {
        let calendar = build_calendar(&[
            todo(
                1,
                "Write report",
                Some("Chapter 3"),
                Some("2023-02-27T00:00:00"),
            ),
            todo(2, "No deadline", Some("skipped"), None),
        ]);
        assert_eq!(
            calendar,
            "BEGIN:VCALENDAR\r\n\
             VERSION:2.0\r\n\
             PRODID:-//Taskoverflow Calendar//mxm.dk//\r\n\
             BEGIN:VEVENT\r\n\
             DESCRIPTION:Chapter 3\r\n\
             DTSTAMP:20230201T093015Z\r\n\
             DTSTART:20230227T000000\r\n\
             SUMMARY:Write report\r\n\
             UID:1\r\n\
             END:VEVENT\r\n\
             END:VCALENDAR\r\n"
        );
    }

    #[test]
    fn calendar_without_deadlines_has_no_events() {
        let calendar = build_calendar(&[todo(1, "Someday", None, None)]);
        assert!(!calendar.contains("BEGIN:VEVENT"), "{calendar}");
        assert!(calendar.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"));
        assert!(calendar.ends_with("END:VCALENDAR\r\n"));
    }

    #[test]
    fn null_description_writes_no_description_line() {
        let calendar = build_calendar(&[todo(3, "Plain", None, Some("2030-01-02T03:04:05"))]);
        assert!(!calendar.contains("DESCRIPTION"), "{calendar}");
    }

    #[test]
    fn deadline_is_a_floating_time_without_fraction() {
        let calendar = build_calendar(&[todo(4, "t", None, Some("2026-11-22T07:22:49.903009"))]);
        assert!(
            calendar.contains("\r\nDTSTART:20261122T072249\r\n"),
            "{calendar}"
        );
    }

    #[test]
    fn events_follow_the_order_of_the_todos() {
        let calendar = build_calendar(&[
            todo(9, "later id first", None, Some("2030-01-02T00:00:00")),
            todo(2, "earlier id second", None, Some("2030-01-01T00:00:00")),
        ]);
        let uids: Vec<_> = unfolded_lines(&calendar)
            .into_iter()
            .filter(|line| line.starts_with("UID:"))
            .collect();
        assert_eq!(uids, ["UID:9", "UID:2"]);
    }

    #[test]
    fn text_escapes_commas_semicolons_backslashes_and_newlines() {
        let calendar = build_calendar(&[todo(
            5,
            "a, b; c\\d",
            Some("line one\nline two\r\nline three\rend"),
            Some("2030-01-02T03:04:05"),
        )]);
        let lines = unfolded_lines(&calendar);
        assert!(
            lines.contains(&r"SUMMARY:a\, b\; c\\d".to_owned()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&r"DESCRIPTION:line one\nline two\nline three\nend".to_owned()),
            "{lines:?}"
        );
        assert!(!calendar.replace("\r\n", "").contains(['\r', '\n']));
    }

    #[test]
    fn long_text_is_folded_at_75_octets_and_unfolds_to_the_original() {
        let description = "word ".repeat(24).trim_end().to_owned();
        let calendar = build_calendar(&[todo(
            6,
            "t",
            Some(&description),
            Some("2030-01-02T00:00:00"),
        )]);
        for line in calendar.split("\r\n") {
            assert!(line.len() <= 75, "line of {} octets: {line:?}", line.len());
        }
        assert!(unfolded_lines(&calendar).contains(&format!("DESCRIPTION:{description}")));
    }

    #[test]
    fn unicode_is_kept_and_never_folded_inside_a_character() {
        let title = "Prüfung 試験 🗓️ ".repeat(6).trim_end().to_owned();
        let calendar = build_calendar(&[todo(7, &title, None, Some("2030-01-02T00:00:00"))]);
        for line in calendar.split("\r\n") {
            assert!(line.len() <= 75, "line of {} octets: {line:?}", line.len());
        }
        assert!(unfolded_lines(&calendar).contains(&format!("SUMMARY:{title}")));
    }

    #[test]
    fn same_todos_give_the_same_calendar() {
        let todos = [todo(8, "t", Some("d"), Some("2030-01-02T00:00:00"))];
        assert_eq!(build_calendar(&todos), build_calendar(&todos));
    }
}
