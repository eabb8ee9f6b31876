//! Why a test did not run, and the one rule that decides whether that is a failure.
//!
//! A test that cannot reach a broker (or a database, or a browser) is skipped with its reason
//! printed, unless `BROKER_TEST_REQUIRE` asks for that service: `all` asks for every one (CI
//! sets it), and a comma-separated list (`redis,browser`) for those it names. Then the skip is
//! a failure. A case skipped because the backend does not declare a guarantee, or because its
//! harness cannot do what the case needs, is never a failure: nothing undeclared is assumed.

use std::{fmt, io::Write};

use broker_core::Requirement;

use crate::HarnessFeature;

/// The variable that turns a missing service into a failure.
pub const REQUIRE_ENV: &str = "BROKER_TEST_REQUIRE";

/// Something a test needs from outside its process cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// What is missing, as [`REQUIRE_ENV`] names it: `redis`, `postgres`, `amqp`, `browser`.
    pub service: &'static str,
    /// Why, and what to do about it.
    pub reason: String,
}

impl Unavailable {
    /// `service` is missing because of `reason`.
    #[must_use]
    pub fn new(service: &'static str, reason: impl Into<String>) -> Self {
        Self {
            service,
            reason: reason.into(),
        }
    }

    /// Whether [`REQUIRE_ENV`] makes this a failure: it is `all` or lists this service.
    #[must_use]
    pub fn is_required(&self) -> bool {
        std::env::var(REQUIRE_ENV).is_ok_and(|setting| requires(&setting, self.service))
    }

    /// Prints `SKIPPED <test>: <reason>`: the calling test passes without running.
    ///
    /// # Panics
    /// When [`REQUIRE_ENV`] requires this service: the test fails instead.
    pub fn skip(&self, test: &str) {
        Skip::Unavailable(self.clone()).report(test);
    }
}

/// `found`'s value; or `None` after reporting that the calling test is skipped, naming the test
/// after its thread (libtest runs each test on a thread named after it).
///
/// # Panics
/// When `found` is [`Unavailable`] and [`REQUIRE_ENV`] requires the service.
pub fn or_skip<T>(found: Result<T, Unavailable>) -> Option<T> {
    found
        .inspect_err(|unavailable| {
            unavailable.skip(std::thread::current().name().unwrap_or("this test"));
        })
        .ok()
}

/// Whether a [`REQUIRE_ENV`] value of `setting` requires `service`.
fn requires(setting: &str, service: &str) -> bool {
    setting
        .split(',')
        .map(str::trim)
        .any(|item| item == "all" || item == service)
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no {}: {}", self.service, self.reason)
    }
}

/// Why a conformance case did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The broker or its result store could not be reached.
    Unavailable(Unavailable),
    /// The backend does not declare guarantees the case checks.
    NotDeclared {
        /// The backend's name.
        backend: &'static str,
        /// Every requirement of the case that the backend does not keep.
        missing: Vec<Requirement>,
    },
    /// The backend's harness cannot do what the case needs.
    HarnessCannot(HarnessFeature),
}

impl Skip {
    /// Prints `SKIPPED <test>: <why>`.
    ///
    /// # Panics
    /// For [`Skip::Unavailable`] when [`REQUIRE_ENV`] requires the missing service.
    pub fn report(&self, test: &str) {
        if let Self::Unavailable(unavailable) = self {
            assert!(
                !unavailable.is_required(),
                "{test}: {unavailable}, and {REQUIRE_ENV}={} requires it",
                std::env::var(REQUIRE_ENV).unwrap_or_default()
            );
        }
        println!("SKIPPED {test}: {self}");
        let _ = std::io::stdout().flush();
    }
}

impl From<Unavailable> for Skip {
    fn from(unavailable: Unavailable) -> Self {
        Self::Unavailable(unavailable)
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(unavailable) => unavailable.fmt(f),
            Self::NotDeclared { backend, missing } => {
                write!(f, "{backend} does not declare ")?;
                for (index, requirement) in missing.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{requirement}")?;
                }
                Ok(())
            }
            Self::HarnessCannot(feature) => write!(f, "the harness cannot {feature}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn require_all_or_a_list_naming_the_service_requires_it() {
        assert!(requires("all", "redis"));
        assert!(requires("postgres, redis", "redis"));
        assert!(requires("browser,all", "redis"));
        assert!(!requires("postgres,browser", "redis"));
        assert!(!requires("", "redis"));
        assert!(!requires("redis-cluster", "redis"));
    }

    #[test]
    fn not_declared_names_the_backend_and_every_missing_guarantee() {
        let skip = Skip::NotDeclared {
            backend: "memory",
            missing: vec![
                Requirement::RedeliveryOnDisconnect,
                Requirement::Delay(Duration::from_secs(2)),
            ],
        };
        assert_eq!(
            skip.to_string(),
            "memory does not declare redelivery on disconnect, delays of 2s"
        );
    }

    #[test]
    fn harness_cannot_names_what_it_cannot_do() {
        let skip = Skip::HarnessCannot(HarnessFeature::Restart);
        assert_eq!(skip.to_string(), "the harness cannot restart its broker");
    }
}
