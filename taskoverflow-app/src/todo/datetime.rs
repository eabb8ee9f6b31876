//! The contract's datetime format, both ways.
//!
//! Every datetime in the API is a naive UTC timestamp with microsecond precision, the way
//! Python's `datetime.isoformat()` writes it:
//!
//! - [`format()`] always writes seconds and writes the fraction only when it is not zero, as six
//!   digits: `2023-02-27T00:00:00`, `2026-11-22T07:22:49.903009`.
//! - [`parse()`] accepts that form and the variants existing clients send: a space instead of
//!   the `T` (`2030-01-02 03:04:05.678`), one to nine fractional digits (truncated to
//!   microseconds), minutes without seconds (`2030-01-02T03:04`, what an HTML
//!   `datetime-local` input gives), a bare date (midnight), and a trailing `Z` or UTC offset
//!   (`+02:00`, `+0200`, `+02`), which is converted to UTC.
//!
//! Years are four digits, 0001 to 9999, the range Python's `datetime` allows, so every value
//! accepted here can be stored by every engine and read back by every client.

use std::fmt;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// Why a string is not a datetime the API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an ISO-8601 datetime such as 2023-02-27T00:00:00")]
pub struct ParseDatetimeError;

/// The latest instant [`parse`] can produce: the last microsecond of year 9999.
pub fn max_supported() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|date| date.and_hms_micro_opt(23, 59, 59, 999_999))
        .unwrap_or(NaiveDateTime::MAX)
}

/// Truncates a timestamp to whole microseconds, the precision the API and its stores keep.
pub fn truncate_to_micros(value: NaiveDateTime) -> NaiveDateTime {
    let nanos = value.nanosecond();
    // `nanosecond()` may exceed 999_999_999 only to represent a leap second; keep that flag.
    value
        .with_nanosecond(nanos - nanos % 1_000)
        .unwrap_or(value)
}

/// Writes a timestamp in the contract's output form.
///
/// Seconds are always present; the fraction is present only when the microseconds are not
/// zero, and then always six digits. Nanoseconds beyond microseconds are ignored.
pub fn format(value: NaiveDateTime) -> String {
    Formatted(value).to_string()
}

/// A [`Display`](fmt::Display) adapter writing the contract's output form without allocating.
#[derive(Debug, Clone, Copy)]
pub struct Formatted(pub NaiveDateTime);

impl fmt::Display for Formatted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S"))?;
        let micros = self.0.nanosecond() % 1_000_000_000 / 1_000;
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        Ok(())
    }
}

/// Reads a datetime in any form the module documentation lists, as naive UTC with
/// microsecond precision.
///
/// # Errors
/// [`ParseDatetimeError`] for anything else, including surrounding whitespace, impossible
/// dates (`2023-02-30`), and instants that fall outside years 0001 to 9999 once converted
/// to UTC.
pub fn parse(input: &str) -> Result<NaiveDateTime, ParseDatetimeError> {
    let mut cursor = Cursor::new(input);
    let date = cursor.date()?;
    let (time, offset_seconds) = if cursor.is_at_end() {
        (NaiveTime::MIN, 0)
    } else {
        cursor.date_time_separator()?;
        let time = cursor.time()?;
        let offset = cursor.offset()?;
        (time, offset)
    };
    if !cursor.is_at_end() {
        return Err(ParseDatetimeError);
    }
    let local = date.and_time(time);
    let utc = local
        .checked_sub_signed(Duration::seconds(offset_seconds))
        .ok_or(ParseDatetimeError)?;
    let earliest = NaiveDate::from_ymd_opt(1, 1, 1)
        .map(|date| date.and_time(NaiveTime::MIN))
        .ok_or(ParseDatetimeError)?;
    if utc < earliest || utc > max_supported() {
        return Err(ParseDatetimeError);
    }
    Ok(utc)
}

/// A byte-wise reader over the ASCII grammar of the accepted forms.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn new(input: &'a str) -> Self {
        Self {
            bytes: input.as_bytes(),
            position: 0,
        }
    }

    fn is_at_end(&self) -> bool {
        self.position == self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), ParseDatetimeError> {
        if self.peek() == Some(byte) {
            self.position += 1;
            Ok(())
        } else {
            Err(ParseDatetimeError)
        }
    }

    /// Exactly `count` ASCII digits as a number.
    fn digits(&mut self, count: usize) -> Result<u32, ParseDatetimeError> {
        let end = self.position + count;
        let slice = self
            .bytes
            .get(self.position..end)
            .ok_or(ParseDatetimeError)?;
        let mut value = 0_u32;
        for &byte in slice {
            if !byte.is_ascii_digit() {
                return Err(ParseDatetimeError);
            }
            value = value * 10 + u32::from(byte - b'0');
        }
        self.position = end;
        Ok(value)
    }

    /// `YYYY-MM-DD`
    fn date(&mut self) -> Result<NaiveDate, ParseDatetimeError> {
        let year = self.digits(4)?;
        self.expect(b'-')?;
        let month = self.digits(2)?;
        self.expect(b'-')?;
        let day = self.digits(2)?;
        let year = i32::try_from(year).map_err(|_| ParseDatetimeError)?;
        NaiveDate::from_ymd_opt(year, month, day).ok_or(ParseDatetimeError)
    }

    /// `T`, `t` or a single space.
    fn date_time_separator(&mut self) -> Result<(), ParseDatetimeError> {
        match self.peek() {
            Some(b'T' | b't' | b' ') => {
                self.position += 1;
                Ok(())
            }
            _ => Err(ParseDatetimeError),
        }
    }

    /// `HH:MM`, optionally followed by `:SS` and then optionally by `.` and 1 to 9 digits.
    fn time(&mut self) -> Result<NaiveTime, ParseDatetimeError> {
        let hour = self.digits(2)?;
        self.expect(b':')?;
        let minute = self.digits(2)?;
        let mut second = 0;
        let mut micros = 0;
        if self.peek() == Some(b':') {
            self.position += 1;
            second = self.digits(2)?;
            if self.peek() == Some(b'.') {
                self.position += 1;
                micros = self.fraction_as_micros()?;
            }
        }
        NaiveTime::from_hms_micro_opt(hour, minute, second, micros).ok_or(ParseDatetimeError)
    }

    /// 1 to 9 digits of a decimal fraction, truncated to microseconds.
    fn fraction_as_micros(&mut self) -> Result<u32, ParseDatetimeError> {
        let start = self.position;
        while self.peek().is_some_and(|byte| byte.is_ascii_digit()) {
            self.position += 1;
        }
        let digits = &self.bytes[start..self.position];
        if digits.is_empty() || digits.len() > 9 {
            return Err(ParseDatetimeError);
        }
        let micros = (0..6).fold(0_u32, |value, index| {
            let digit = digits.get(index).map_or(0, |byte| u32::from(byte - b'0'));
            value * 10 + digit
        });
        Ok(micros)
    }

    /// Nothing, `Z`, or `+HH:MM`, `+HHMM`, `+HH` (or `-`), as seconds east of UTC.
    fn offset(&mut self) -> Result<i64, ParseDatetimeError> {
        let sign = match self.peek() {
            None => return Ok(0),
            Some(b'Z' | b'z') => {
                self.position += 1;
                return Ok(0);
            }
            Some(b'+') => 1,
            Some(b'-') => -1,
            Some(_) => return Err(ParseDatetimeError),
        };
        self.position += 1;
        let hours = self.digits(2)?;
        let minutes = match self.peek() {
            None => 0,
            Some(b':') => {
                self.position += 1;
                self.digits(2)?
            }
            Some(_) => self.digits(2)?,
        };
        if hours > 23 || minutes > 59 {
            return Err(ParseDatetimeError);
        }
        Ok(sign * i64::from(hours * 3_600 + minutes * 60))
    }
}

/// Serde support for a required datetime field in the contract's format
/// (`#[serde(with = "datetime::serde_required")]`).
pub mod serde_required {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Writes the contract's output form.
    pub fn serialize<S: Serializer>(
        value: &NaiveDateTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&super::Formatted(*value))
    }

    /// Reads any accepted input form.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<NaiveDateTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::parse(&text).map_err(D::Error::custom)
    }
}

/// Serde support for a nullable datetime field in the contract's format
/// (`#[serde(with = "datetime::serde_optional")]`).
pub mod serde_optional {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Writes `null` or the contract's output form.
    pub fn serialize<S: Serializer>(
        value: &Option<NaiveDateTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => serializer.collect_str(&super::Formatted(*value)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads `null` or any accepted input form.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<NaiveDateTime>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
        text.map(|text| super::parse(&text).map_err(D::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").expect("valid test input")
    }

    #[test]
    fn output_always_has_seconds_and_no_fraction_when_zero() {
        assert_eq!(format(at("2023-02-27 00:00:00")), "2023-02-27T00:00:00");
    }

    #[test]
    fn output_has_six_fraction_digits_when_microseconds_are_not_zero() {
        assert_eq!(
            format(at("2026-11-22 07:22:49.903009")),
            "2026-11-22T07:22:49.903009"
        );
        assert_eq!(
            format(at("2030-01-02 03:04:05.678")),
            "2030-01-02T03:04:05.678000"
        );
        assert_eq!(
            format(at("2030-01-02 03:04:05.000001")),
            "2030-01-02T03:04:05.000001"
        );
    }

    #[test]
    fn output_ignores_nanoseconds_below_a_microsecond() {
        assert_eq!(
            format(at("2030-01-02 03:04:05.000000999")),
            "2030-01-02T03:04:05"
        );
    }

    #[test]
    fn output_form_reads_back_unchanged() {
        for text in [
            "2023-02-27T00:00:00",
            "2026-11-22T07:22:49.903009",
            "0001-01-01T00:00:00",
        ] {
            assert_eq!(format(parse(text).expect("accepted")), text);
        }
    }

    #[test]
    fn input_accepts_a_space_instead_of_t() {
        assert_eq!(
            parse("2030-01-02 03:04:05.678"),
            Ok(at("2030-01-02 03:04:05.678"))
        );
    }

    #[test]
    fn input_converts_a_trailing_z_or_offset_to_utc() {
        let expected = Ok(at("2030-01-02 03:04:05"));
        assert_eq!(parse("2030-01-02T03:04:05Z"), expected);
        assert_eq!(parse("2030-01-02T03:04:05+00:00"), expected);
        assert_eq!(parse("2030-01-02T05:04:05+02:00"), expected);
        assert_eq!(parse("2030-01-02T05:34:05+0230"), expected);
        assert_eq!(parse("2030-01-01T22:04:05-05"), expected);
    }

    #[test]
    fn input_offset_may_cross_midnight_and_keep_the_fraction() {
        assert_eq!(
            parse("2030-01-01T23:30:00.25-01:00"),
            Ok(at("2030-01-02 00:30:00.25"))
        );
    }

    #[test]
    fn input_fraction_of_any_length_up_to_nine_digits_is_truncated_to_microseconds() {
        assert_eq!(
            parse("2030-01-02T03:04:05.1"),
            Ok(at("2030-01-02 03:04:05.1"))
        );
        assert_eq!(
            parse("2030-01-02T03:04:05.123456789"),
            Ok(at("2030-01-02 03:04:05.123456"))
        );
        assert_eq!(
            parse("2030-01-02T03:04:05.1234567891"),
            Err(ParseDatetimeError)
        );
        assert_eq!(parse("2030-01-02T03:04:05."), Err(ParseDatetimeError));
    }

    #[test]
    fn input_without_seconds_or_time_means_zero() {
        assert_eq!(parse("2030-01-02T03:04"), Ok(at("2030-01-02 03:04:00")));
        assert_eq!(parse("2030-01-02"), Ok(at("2030-01-02 00:00:00")));
    }

    #[test]
    fn input_rejects_malformed_text() {
        for text in [
            "",
            "tomorrow",
            "2030-1-2T03:04:05",
            "2030-01-02T3:04:05",
            "2030-01-02T03:04:05 ",
            " 2030-01-02T03:04:05",
            "2030-01-02T",
            "2030-01-02X03:04:05",
            "2030-01-02T03:04:05+25:00",
            "2030-01-02T03:04:05+02:",
            "2030-01-02T03:04:05ZZ",
            "+2030-01-02T03:04:05",
            "20300102T030405",
        ] {
            assert_eq!(parse(text), Err(ParseDatetimeError), "{text:?}");
        }
    }

    #[test]
    fn input_rejects_impossible_dates_and_times() {
        for text in [
            "2023-02-29T00:00:00",
            "2030-13-01T00:00:00",
            "2030-01-02T24:00:00",
        ] {
            assert_eq!(parse(text), Err(ParseDatetimeError), "{text:?}");
        }
    }

    #[test]
    fn input_rejects_instants_outside_years_1_to_9999_after_conversion() {
        assert_eq!(parse("9999-12-31T23:59:59.999999"), Ok(max_supported()));
        assert_eq!(parse("9999-12-31T23:30:00-01:00"), Err(ParseDatetimeError));
        assert_eq!(parse("0001-01-01T00:30:00+01:00"), Err(ParseDatetimeError));
        assert_eq!(parse("0000-06-01T00:00:00"), Err(ParseDatetimeError));
    }

    #[test]
    fn truncation_drops_sub_microsecond_digits_only() {
        assert_eq!(
            truncate_to_micros(at("2030-01-02 03:04:05.123456789")),
            at("2030-01-02 03:04:05.123456")
        );
    }
}
