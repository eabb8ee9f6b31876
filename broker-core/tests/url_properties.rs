//! Properties of URL parsing and redaction, over generated URLs: parsing never panics,
//! redaction is idempotent, and a URL printed with redaction parses again to the same
//! settings, with its password and secret options masked and nothing of them left.

use broker_core::urls::{MASK, UrlParts, is_secret_option, redact};
use proptest::prelude::*;

/// Text as it may appear in user info, percent-encoded or not: every printable ASCII
/// character but the delimiters `/ ? # @` and whitespace.
const USERINFO_TEXT: &str = "([!-\"$-.0->A-~]|%[0-9A-Fa-f]{2}){0,10}";

/// A URL as users write them, with optional credentials and options, some of them secret.
fn url_like() -> impl Strategy<Value = String> {
    let scheme = "[a-z][a-z0-9+.-]{0,6}";
    let credentials = prop::option::of((USERINFO_TEXT, prop::option::of(USERINFO_TEXT)));
    let hosts = "([a-z0-9.-]{1,8}(:[0-9]{1,5})?|\\[::1\\](:[0-9]{1,4})?)(,[a-z0-9.-]{1,6}(:[0-9]{1,4})?){0,2}";
    let path = "(/([a-zA-Z0-9._%-]{0,8})){0,2}";
    let option = (
        "(password|sasl_password|api_token|key_prefix|region|aws_secret_access_key|sslmode)",
        "[a-zA-Z0-9._:/%-]{0,10}",
    );
    let options = prop::collection::vec(option, 0..4);
    (scheme, credentials, hosts, path, options).prop_map(
        |(scheme, credentials, hosts, path, options)| {
            let userinfo = match credentials {
                None => String::new(),
                Some((user, None)) => format!("{user}@"),
                Some((user, Some(password))) => format!("{user}:{password}@"),
            };
            let query: Vec<String> = options.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            format!("{scheme}://{userinfo}{hosts}{path}{query}")
        },
    )
}

/// The raw password of `url`'s user info, as written.
fn written_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, password)| password)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn parsing_any_text_returns_without_panicking(text in any::<String>()) {
        let _ = UrlParts::parse(&text);
    }

    #[test]
    fn redacting_any_text_twice_changes_nothing_more(text in any::<String>()) {
        let once = redact(&text);
        prop_assert_eq!(redact(&once), once);
    }

    #[test]
    fn a_redacted_url_parses_to_the_same_settings_without_its_secrets(url in url_like()) {
        let Ok(parts) = UrlParts::parse(&url) else {
            return Ok(()); // undecodable user info: parsing refused it, which is tested apart
        };
        let printed = redact(&url);
        let again = UrlParts::parse(&printed).expect("a redacted URL parses");
        prop_assert_eq!(again.scheme(), parts.scheme());
        prop_assert_eq!(again.username(), parts.username());
        prop_assert_eq!(again.raw_host(), parts.raw_host());
        prop_assert_eq!(again.raw_path(), parts.raw_path());
        prop_assert_eq!(
            again.password().map(|p| p.expose().to_owned()),
            parts.password().map(|_| MASK.to_owned())
        );
        if let Some(password) = written_password(&url).filter(|p| !p.is_empty() && *p != MASK) {
            prop_assert!(
                printed.contains(&format!(":{MASK}@")) && !printed.contains(&format!(":{password}@")),
                "{} printed as {}", url, printed
            );
        }
        let query = printed.split_once('?').map_or("", |(_, query)| query);
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if is_secret_option(name) && !value.is_empty() {
                prop_assert_eq!(value, MASK, "{} printed as {}", url, printed);
            }
        }
    }
}
