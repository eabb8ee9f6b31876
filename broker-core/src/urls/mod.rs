//! What every backend's URL shares: splitting it, reading its options, keeping its secrets.
//!
//! The core knows no backend's URL. A backend crate reads its own schemes with
//! [`UrlParts::parse`] (scheme, credentials, hosts, path), reads its options with the typed
//! readers of [`Options`] (durations, counts, booleans, sizes, choices), and builds its own
//! configuration from them. The [`backends`](crate::backends) registry dispatches a URL to the
//! backend that answers its scheme.
//!
//! What callers may rely on:
//! - Nothing here panics on any input; every failure is a [`UrlError`] that says what is wrong
//!   and what is accepted (an unknown option lists the known ones).
//! - No [`UrlError`] and no `Debug` output contains a password or the value of a secret
//!   option: passwords live in [`Secret`], which prints `***`.
//! - [`redact`] is the one redaction rule of the workspace, for URLs and for any text that may
//!   contain one (client libraries' error messages).

mod error;
mod options;
mod parts;
mod redact;
mod secret;

pub use error::{UrlError, UrlKind};
pub use options::Options;
pub use parts::{HostPort, UrlParts, encode};
pub use redact::{MASK, is_secret_option, redact};
pub use secret::Secret;
