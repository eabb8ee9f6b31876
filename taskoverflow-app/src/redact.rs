//! Printing connection URLs without their secrets.

use url::Url;

/// The text shown in place of a password.
const MASK: &str = "***";

/// Returns `url` with any password replaced by `***`, fit for logs and error messages.
///
/// Query parameters whose name suggests a secret (`password`, `secret`, `token`, `key`,
/// matched case-insensitively) are masked too. Text that does not parse as a URL is replaced
/// as a whole when it contains an `@` (it may hold credentials) and returned as is otherwise.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        return if url.contains('@') {
            "<unparsable URL with credentials>".to_owned()
        } else {
            url.to_owned()
        };
    };
    if parsed.password().is_some() && parsed.set_password(Some(MASK)).is_err() {
        return "<URL with credentials>".to_owned();
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let value = if is_secret_name(&name) {
                    MASK.to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.into()
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "token", "key"]
        .iter()
        .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_masked_and_user_kept() {
        assert_eq!(
            redact_url("postgresql://administrator:verySecretPassword@database:5432/todo"),
            "postgresql://administrator:***@database:5432/todo"
        );
    }

    #[test]
    fn url_without_password_is_unchanged() {
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
    }

    #[test]
    fn secret_query_parameters_are_masked() {
        let redacted = redact_url("postgres://db/todo?sslmode=require&password=hunter2");
        assert!(!redacted.contains("hunter2"), "{redacted}");
        assert!(redacted.contains("sslmode=require"), "{redacted}");
    }

    #[test]
    fn unparsable_text_with_credentials_is_hidden_whole() {
        assert_eq!(
            redact_url("not a url user:pw@host"),
            "<unparsable URL with credentials>"
        );
    }
}
