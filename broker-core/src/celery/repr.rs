//! `argsrepr` and `kwargsrepr`: an approximation of Celery's `saferepr`, for people and
//! monitoring only (no worker parses them).

use serde_json::{Map, Number, Value};

/// Longest `argsrepr`/`kwargsrepr`, in characters, before it is cut (Celery's
/// `argsrepr_maxsize` and `kwargsrepr_maxsize`).
pub const REPR_MAX_CHARS: usize = 1024;

/// Nesting depth from which containers are shown as `[...]`/`{...}` in `argsrepr`/`kwargsrepr`
/// (Celery's default `task_repr_maxlevels`).
const REPR_MAX_LEVELS: usize = 3;

/// Bounded writer: stops accepting text once `REPR_MAX_CHARS` characters are written.
struct ReprWriter {
    out: String,
    chars: usize,
    full: bool,
}

impl ReprWriter {
    fn new() -> Self {
        Self {
            out: String::new(),
            chars: 0,
            full: false,
        }
    }

    fn push(&mut self, text: &str) {
        for c in text.chars() {
            if self.chars == REPR_MAX_CHARS {
                self.full = true;
                return;
            }
            self.out.push(c);
            self.chars += 1;
        }
    }

    fn finish(mut self) -> String {
        if self.full {
            self.out.push_str("...");
        }
        self.out
    }

    fn value(&mut self, value: &Value, level: usize) {
        if self.full {
            return;
        }
        match value {
            Value::Null => self.push("None"),
            Value::Bool(true) => self.push("True"),
            Value::Bool(false) => self.push("False"),
            Value::Number(n) => self.push(&python_number(n)),
            Value::String(s) => self.push(&python_str_repr(s)),
            Value::Array(items) => self.list(items, level),
            Value::Object(map) => self.map(map, level),
        }
    }

    fn list(&mut self, items: &[Value], level: usize) {
        self.push("[");
        if level >= REPR_MAX_LEVELS {
            self.push("...");
        } else {
            for (i, item) in items.iter().enumerate() {
                if self.full {
                    return;
                }
                if i > 0 {
                    self.push(", ");
                }
                self.value(item, level + 1);
            }
        }
        self.push("]");
    }

    fn map(&mut self, map: &Map<String, Value>, level: usize) {
        self.push("{");
        if level >= REPR_MAX_LEVELS {
            self.push("...");
        } else {
            for (i, (key, item)) in map.iter().enumerate() {
                if self.full {
                    return;
                }
                if i > 0 {
                    self.push(", ");
                }
                self.push(&python_str_repr(key));
                self.push(": ");
                self.value(item, level + 1);
            }
        }
        self.push("}");
    }
}

/// A list (the args) as Python writes it, cut after [`REPR_MAX_CHARS`] characters.
pub(super) fn python_repr_list(items: &[Value]) -> String {
    let mut writer = ReprWriter::new();
    writer.list(items, 0);
    writer.finish()
}

/// A dict (the kwargs) as Python writes it, cut after [`REPR_MAX_CHARS`] characters.
pub(super) fn python_repr_map(map: &Map<String, Value>) -> String {
    let mut writer = ReprWriter::new();
    writer.map(map, 0);
    writer.finish()
}

/// Python's `repr` of an int or float (`1.0`, `1e-07`, `1e+16`).
fn python_number(n: &Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let Some(f) = n.as_f64() else {
        return n.to_string();
    };
    // Rust's `{:e}` gives the shortest round-trip digits, like Python's repr.
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..16).contains(&exponent) {
        let plain = f.to_string();
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

/// A str as Celery's `saferepr` writes it: in single quotes with `'` escaped as `\'` and
/// nothing else escaped (unlike Python's own `repr`).
fn python_str_repr(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn python_repr_approximates_saferepr() {
        let cases = [
            (
                json!([1, 2.5, "x", null, true, false]),
                "[1, 2.5, 'x', None, True, False]",
            ),
            (
                json!([1e-7, 1.0, 1e16, 1e22, 0.1, 1e15]),
                "[1e-07, 1.0, 1e+16, 1e+22, 0.1, 1000000000000000.0]",
            ),
            (
                json!([
                    "it's",
                    "say \"hi\"",
                    "both ' \"",
                    "back\\slash",
                    "tab\tline\n"
                ]),
                // saferepr escapes only the single quote.
                "['it\\'s', 'say \"hi\"', 'both \\' \"', 'back\\slash', 'tab\tline\n']",
            ),
            (json!([[[[1]]], [[[]]]]), "[[[[...]]], [[[...]]]]"),
            (json!([{"a": {"b": {"c": 1}}}]), "[{'a': {'b': {...}}}]"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_repr_list(value.as_array().unwrap()), expected);
        }
        let kwargs = json!({"k": [1, 2]});
        let kwargs = kwargs.as_object().expect("an object");
        assert_eq!(python_repr_map(kwargs), "{'k': [1, 2]}");
        let long = python_repr_list(&[json!("x".repeat(5000))]);
        assert_eq!(long.chars().count(), REPR_MAX_CHARS + 3);
        assert!(long.ends_with("xxx..."));
        let many = python_repr_list(&vec![json!(12345); 10_000]);
        assert_eq!(many.chars().count(), REPR_MAX_CHARS + 3);
    }
}
