//! Dates as Celery carries them: read from any ISO-8601 form, written as Python's
//! `datetime.isoformat()`, kept at Python's microsecond precision.

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDateTime, TimeDelta, Timelike, Utc};

/// Parses what Python's `isoformat()` and other ISO-8601 writers produce: with an offset
/// (`+00:00`, `+0000`, `Z`) or naive (read as UTC), `T` or space between date and time, any
/// number of fraction digits. The result is cut to microseconds.
pub(super) fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(truncate_to_micros(dt.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(text, format) {
            return Some(truncate_to_micros(dt.with_timezone(&Utc)));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            return Some(truncate_to_micros(naive.and_utc()));
        }
    }
    None
}

/// Python's `datetime.isoformat()` of an aware UTC datetime (`2024-01-01T10:00:00+00:00`, six
/// fraction digits when there are microseconds); `None` outside the years 1 to 9999, which
/// Python cannot represent.
pub(super) fn python_isoformat(dt: DateTime<Utc>) -> Option<String> {
    if !(1..=9999).contains(&dt.year()) {
        return None;
    }
    let micros = (dt.nanosecond() / 1_000).min(999_999);
    let base = dt.format("%Y-%m-%dT%H:%M:%S");
    Some(if micros == 0 {
        format!("{base}+00:00")
    } else {
        format!("{base}.{micros:06}+00:00")
    })
}

/// `dt` without its nanoseconds below the microsecond.
pub(super) fn truncate_to_micros(dt: DateTime<Utc>) -> DateTime<Utc> {
    dt.with_nanosecond(dt.nanosecond() / 1_000 * 1_000)
        .unwrap_or(dt)
}

/// `start + duration`, saturating at the latest date chrono represents.
pub(super) fn add_duration(start: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| start.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("an RFC 3339 date")
            .with_timezone(&Utc)
    }

    #[test]
    fn dates_in_other_iso_forms_are_read() {
        for (text, expected) in [
            ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
            ("2024-01-01T12:00:00+02:00", "2024-01-01T10:00:00Z"),
            ("2024-01-01 10:00:00+0000", "2024-01-01T10:00:00Z"),
            (
                "2024-01-01T10:00:00.123456789",
                "2024-01-01T10:00:00.123456Z",
            ),
            ("2024-01-01 10:00:00", "2024-01-01T10:00:00Z"),
        ] {
            assert_eq!(parse_datetime(text), Some(utc(expected)), "{text}");
        }
        assert_eq!(parse_datetime("tomorrow"), None);
    }
}
