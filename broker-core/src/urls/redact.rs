//! The one redaction rule of the workspace, for URLs and for any text that may contain one.

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// Whether an option or parameter called `name` holds a secret: its lowercased name contains
/// `password`, `passwd`, `secret` or `token`, or ends with `key` (`access_key`, `sslkey`,
/// `api_key`; not `key_prefix`).
#[must_use]
pub fn is_secret_option(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "passwd", "secret", "token"]
        .iter()
        .any(|word| name.contains(word))
        || name.ends_with("key")
}

/// Masks every secret in `text`: the password of each `scheme://user:password@host`, and the
/// value of each `?name=value` or `&name=value` whose name [`is_secret_option`]. Everything
/// else comes back as it was, so the result still says which endpoint and option were meant.
///
/// Meant for URLs and for the messages of client libraries, which may repeat the URL they
/// were given. Idempotent: redacting twice changes nothing more.
///
/// A password runs up to the last `@` before the next whitespace, so an unencoded `/`, `?`,
/// `#` or quote in a password is masked too; when in doubt, more is masked, never less.
#[must_use]
pub fn redact(text: &str) -> String {
    mask_secret_parameters(&mask_passwords(text))
}

fn mask_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, after) = rest.split_at(pos + 3);
        out.push_str(head);
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let (word, tail) = after.split_at(end);
        // The authority ends at the first `/`, `?` or `#` after the last `@` of the word.
        match word.rsplit_once('@') {
            Some((userinfo, host_and_rest)) => match userinfo.split_once(':') {
                Some((user, password)) if !password.is_empty() && password != MASK => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                    out.push('@');
                    out.push_str(host_and_rest);
                }
                _ => out.push_str(word),
            },
            None => out.push_str(word),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Masks the value of each secret option in a query: a `name=value` after the `?` that starts
/// a query, or after a `&` within one. A query ends at whitespace; a value at whitespace, `&`
/// or `#`, so a `?` or quote in a secret is masked with it.
fn mask_secret_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_query = false;
    let mut rest = text;
    while let Some(pos) = rest.find(|c: char| matches!(c, '?' | '&') || c.is_whitespace()) {
        let delimiter = rest[pos..].chars().next().unwrap_or(' ');
        let (head, after) = rest.split_at(pos + delimiter.len_utf8());
        out.push_str(head);
        rest = after;
        match delimiter {
            '?' => in_query = true,
            '&' if in_query => {}
            _ => {
                // Whitespace ends the query; a `&` outside one starts no option.
                in_query &= delimiter == '&';
                continue;
            }
        }
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .unwrap_or(rest.len());
        let (name, after_name) = rest.split_at(name_end);
        out.push_str(name);
        rest = after_name;
        if let Some(value_and_tail) = after_name.strip_prefix('=')
            && !name.is_empty()
            && is_secret_option(name)
        {
            let value_end = value_and_tail
                .find(|c: char| c.is_whitespace() || matches!(c, '&' | '#'))
                .unwrap_or(value_and_tail.len());
            out.push('=');
            if value_end > 0 {
                out.push_str(MASK);
            }
            rest = &value_and_tail[value_end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_users_hosts_and_paths_kept() {
        assert_eq!(
            redact("cannot reach postgres://app:s3cr%40t@db:5432/x?sslmode=require now"),
            "cannot reach postgres://app:***@db:5432/x?sslmode=require now"
        );
        assert_eq!(
            redact("redis://:pw@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        for text in [
            "no url here",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "redis://cache:6379?key_prefix=app:",
            "sqs://?region=eu-west-1&endpoint_url=http://sqs:9324",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn secret_query_options_are_masked() {
        assert_eq!(
            redact("kafka://k:9092?sasl_password=pw&client_id=app&api_token=t0k"),
            "kafka://k:9092?sasl_password=***&client_id=app&api_token=***"
        );
        assert_eq!(
            redact("postgres://db/todo?sslmode=require&password=hunter2"),
            "postgres://db/todo?sslmode=require&password=***"
        );
        assert_eq!(
            redact("sqs://?aws_secret_access_key=abc/def"),
            "sqs://?aws_secret_access_key=***"
        );
    }

    #[test]
    fn only_options_of_a_query_are_masked_and_a_secret_with_a_question_mark_whole() {
        // `&password=` before any `?` is part of a host, not an option.
        assert_eq!(
            redact("postgres://db&password=x?password=a?b'c&sslmode=require"),
            "postgres://db&password=x?password=***&sslmode=require"
        );
        assert_eq!(
            redact("a ?token=t0k b &token=t1k"),
            "a ?token=*** b &token=t1k"
        );
    }

    #[test]
    fn a_password_with_unencoded_slashes_is_masked_whole() {
        let text = "sqs://AKIA:abc/def+ghi@ and more";
        let redacted = redact(text);
        assert!(!redacted.contains("abc"), "{redacted}");
        assert!(!redacted.contains("ghi"), "{redacted}");
    }

    #[test]
    fn a_password_with_quotes_is_masked_whole_and_a_quoted_url_keeps_its_quotes() {
        assert_eq!(redact("redis://:<'pw\"@cache"), "redis://:***@cache");
        assert_eq!(
            redact("cannot reach \"redis://:pw@cache:6379\": refused"),
            "cannot reach \"redis://:***@cache:6379\": refused"
        );
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        let once = redact("amqp://guest:guest@rabbit:5672/%2f?password=x");
        assert_eq!(redact(&once), once);
        assert_eq!(once, "amqp://guest:***@rabbit:5672/%2f?password=***");
    }

    #[test]
    fn secret_option_names_are_recognised_by_one_rule() {
        for name in [
            "password",
            "sasl.password",
            "aws_secret_access_key",
            "sslkey",
            "token",
            "API_KEY",
        ] {
            assert!(is_secret_option(name), "{name}");
        }
        for name in ["key_prefix", "region", "sslmode", "visibility_timeout"] {
            assert!(!is_secret_option(name), "{name}");
        }
    }
}
