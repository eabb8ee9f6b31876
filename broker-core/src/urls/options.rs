//! Typed readers for a URL's query options.

use std::{cell::Cell, fmt, ops::RangeInclusive, str::FromStr, time::Duration};

use super::{Secret, UrlError};

/// A URL's query options, checked against the names a backend knows (see
/// [`UrlParts::options`](super::UrlParts::options)).
///
/// Each reader returns `Ok(None)` when the option is absent and an
/// [`UrlError::InvalidOption`] that says what is expected when its value is unusable. A backend
/// reads every option it knows, then calls [`Options::finish`], which fails for an option that
/// was given but never read: an accepted option is always used.
#[derive(Debug)]
pub struct Options {
    given: Vec<Given>,
}

#[derive(Debug)]
struct Given {
    name: &'static str,
    value: String,
    read: Cell<bool>,
}

impl Options {
    pub(super) fn parse(
        scheme: &str,
        query: &str,
        known: &'static [&'static str],
    ) -> Result<Self, UrlError> {
        let mut given: Vec<Given> = Vec::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let Some(name) = known.iter().copied().find(|name| *name == key) else {
                return Err(UrlError::UnknownOption {
                    scheme: scheme.to_owned(),
                    option: super::error::echo(&key),
                    known,
                });
            };
            if given.iter().any(|g| g.name == name) {
                return Err(UrlError::DuplicateOption {
                    option: name.to_owned(),
                });
            }
            if value.is_empty() {
                return Err(UrlError::invalid(name, "", "must not be empty"));
            }
            given.push(Given {
                name,
                value: value.into_owned(),
                read: Cell::new(false),
            });
        }
        Ok(Self { given })
    }

    fn get(&self, name: &str) -> Option<(&'static str, &str)> {
        self.given.iter().find(|g| g.name == name).map(|g| {
            g.read.set(true);
            (g.name, g.value.as_str())
        })
    }

    /// The value as given.
    #[must_use]
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(|(_, value)| value.to_owned())
    }

    /// The value as a [`Secret`], for options that hold credentials.
    #[must_use]
    pub fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(|(_, value)| Secret::new(value))
    }

    /// The value checked by `check`, which says what is wrong with an unusable one.
    ///
    /// # Errors
    /// [`UrlError::InvalidOption`] with `check`'s reason.
    pub fn parsed<T>(
        &self,
        name: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, UrlError> {
        self.get(name)
            .map(|(name, value)| {
                check(value).map_err(|reason| UrlError::invalid(name, value, reason))
            })
            .transpose()
    }

    /// Seconds, fractions allowed (`30`, `0.5`), greater than zero.
    ///
    /// # Errors
    /// [`UrlError::InvalidOption`] for anything else.
    pub fn seconds(&self, name: &str) -> Result<Option<Duration>, UrlError> {
        self.parsed(name, |value| match seconds(value)? {
            d if d.is_zero() => Err("must be greater than zero".to_owned()),
            d => Ok(d),
        })
    }

    /// Seconds, fractions allowed, zero included (zero usually turns a feature off).
    ///
    /// # Errors
    /// [`UrlError::InvalidOption`] for anything else.
    pub fn seconds_or_zero(&self, name: &str) -> Result<Option<Duration>, UrlError> {
        self.parsed(name, seconds)
    }

    /// A whole number without sign within `range`.
    ///
    /// # Errors
    /// [`UrlError::InvalidOption`] for anything else.
    pub fn number<T>(&self, name: &str, range: RangeInclusive<T>) -> Result<Option<T>, UrlError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        self.parsed(name, |value| {
            let expected = || {
                format!(
                    "expected a whole number from {} to {}",
                    range.start(),
                    range.end()
                )
            };
            if !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(expected());
            }
            value
                .parse::<T>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(expected)
        })
    }

    /// A count of at least 1.
    ///
    /// # Errors
    /// [`UrlError::InvalidOption`] for anything else.
    pub fn count(&self, name: &str) -> Result<Option<u32>, UrlError> {
        self.number(name, 1..=u32::MAX)
    }

    /// `true`, `yes`, `on`, `1` or `false`, `no`, `off`, `0`, in any case.
    ///
    /// # Errors
    /// [`UrlError::InvalidOption`] for anything else.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, UrlError> {
        self.parsed(name, |value| match value.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        })
    }

    /// A size in bytes: a whole number, optionally followed by `K`/`KiB`, `M`/`MiB` or
    /// `G`/`GiB` (powers of 1024).
    ///
    /// # Errors
    /// [`UrlError::InvalidOption`] for anything else, or a size above `u64::MAX`.
    pub fn size(&self, name: &str) -> Result<Option<u64>, UrlError> {
        self.parsed(name, |value| {
            let digits = value
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(value.len());
            let (number, unit) = value.split_at(digits);
            let shift = match unit.to_ascii_lowercase().as_str() {
                "" | "b" => 0,
                "k" | "kib" => 10,
                "m" | "mib" => 20,
                "g" | "gib" => 30,
                _ => return Err("expected bytes such as `1048576`, `512KiB` or `1MiB`".to_owned()),
            };
            number
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(1 << shift))
                .ok_or_else(|| "expected bytes such as `1048576`, `512KiB` or `1MiB`".to_owned())
        })
    }

    /// One of `choices`, compared without case; returns the choice as listed.
    ///
    /// # Errors
    /// [`UrlError::InvalidOption`] listing the choices.
    pub fn one_of(
        &self,
        name: &str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>, UrlError> {
        self.parsed(name, |value| {
            choices
                .iter()
                .copied()
                .find(|choice| choice.eq_ignore_ascii_case(value))
                .ok_or_else(|| format!("expected one of {}", choices.join(", ")))
        })
    }

    /// Fails for an option that was given but never read: a backend that accepts an option
    /// must use it.
    ///
    /// # Errors
    /// [`UrlError::InvalidOption`] naming the unused option.
    pub fn finish(self) -> Result<(), UrlError> {
        match self.given.iter().find(|g| !g.read.get()) {
            None => Ok(()),
            Some(unused) => Err(UrlError::invalid(
                unused.name,
                &unused.value,
                "this backend does not use the option here",
            )),
        }
    }
}

/// `30`, `1.5`, `.25`: seconds with up to nine decimal places.
fn seconds(value: &str) -> Result<Duration, String> {
    const EXPECTED: &str = "expected a number of seconds such as `30` or `0.5`";
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(EXPECTED.to_owned());
    }
    if frac.len() > 9 {
        return Err("at most 9 decimal places (nanoseconds)".to_owned());
    }
    let secs = if int.is_empty() {
        0
    } else {
        int.parse::<u64>().map_err(|_| "too large".to_owned())?
    };
    let nanos = format!("{frac:0<9}")
        .parse::<u32>()
        .map_err(|_| EXPECTED.to_owned())?;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["wait", "count", "flag", "size", "mode", "password"];

    fn options(query: &str) -> Options {
        Options::parse("test", query, KNOWN).unwrap()
    }

    #[test]
    fn typed_readers_read_their_values() {
        let o = options("wait=1.5&count=7&flag=YES&size=2MiB&mode=Fast");
        assert_eq!(
            o.seconds("wait").unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(o.count("count").unwrap(), Some(7));
        assert_eq!(o.boolean("flag").unwrap(), Some(true));
        assert_eq!(o.size("size").unwrap(), Some(2 << 20));
        assert_eq!(o.one_of("mode", &["slow", "fast"]).unwrap(), Some("fast"));
        o.finish().unwrap();
    }

    #[test]
    fn absent_options_read_as_none() {
        let o = options("");
        assert_eq!(o.seconds("wait").unwrap(), None);
        assert_eq!(o.count("count").unwrap(), None);
        o.finish().unwrap();
    }

    #[test]
    fn unusable_values_say_what_is_expected() {
        type Read = fn(&Options) -> Result<(), UrlError>;
        let cases: [(&str, Read, &str); 6] = [
            (
                "wait=0",
                |o| o.seconds("wait").map(drop),
                "greater than zero",
            ),
            (
                "wait=abc",
                |o| o.seconds("wait").map(drop),
                "number of seconds",
            ),
            ("count=0", |o| o.count("count").map(drop), "from 1 to"),
            (
                "flag=maybe",
                |o| o.boolean("flag").map(drop),
                "true or false",
            ),
            ("size=1TB", |o| o.size("size").map(drop), "bytes"),
            (
                "mode=x",
                |o| o.one_of("mode", &["a", "b"]).map(drop),
                "one of a, b",
            ),
        ];
        for (query, read, expected) in cases {
            let err = read(&options(query)).expect_err(query);
            assert!(err.to_string().contains(expected), "{query}: {err}");
        }
    }

    #[test]
    fn unknown_repeated_and_empty_options_are_rejected() {
        let unknown = Options::parse("test", "bogus=1", KNOWN).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "unknown option `bogus` for test:// URLs; known options: wait, count, flag, size, mode, password"
        );
        let repeated = Options::parse("test", "wait=1&wait=2", KNOWN).unwrap_err();
        assert!(
            matches!(repeated, UrlError::DuplicateOption { .. }),
            "{repeated}"
        );
        let empty = Options::parse("test", "wait=", KNOWN).unwrap_err();
        assert!(empty.to_string().contains("must not be empty"), "{empty}");
    }

    #[test]
    fn an_option_given_but_never_read_is_an_error() {
        let o = options("wait=1&count=2");
        o.seconds("wait").unwrap();
        let err = o.finish().unwrap_err();
        assert!(err.to_string().contains("`count`"), "{err}");
    }

    #[test]
    fn secret_values_are_never_echoed() {
        let o = options("password=hunter2");
        let err = o.count("password").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
