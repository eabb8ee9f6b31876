//! URL parsing and redaction on any text: neither panics, redaction is idempotent, and a URL
//! that parses still parses once redacted, to the same scheme, user, hosts and path, with its
//! password masked.

#![no_main]

use broker_core::urls::{MASK, UrlParts, redact};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let redacted = redact(text);
    assert_eq!(redact(&redacted), redacted, "redaction is idempotent");
    let Ok(parts) = UrlParts::parse(text) else {
        return;
    };
    let again = UrlParts::parse(&redacted).expect("a redacted URL parses");
    assert_eq!(again.scheme(), parts.scheme());
    assert_eq!(again.username(), parts.username());
    assert_eq!(again.raw_host(), parts.raw_host());
    assert_eq!(again.raw_path(), parts.raw_path());
    assert_eq!(
        again.password().map(|p| p.expose().to_owned()),
        parts.password().map(|_| MASK.to_owned()),
        "the password is masked"
    );
});
