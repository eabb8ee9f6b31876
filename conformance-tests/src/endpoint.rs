//! Where a test finds its broker: an environment URL, else a container, else a skip.

use crate::Unavailable;

/// The URL of the broker a test should use: the value of `env_var` when set (the
/// documented way; `scripts/services.sh` prints every such variable), else
/// [`Unavailable`] with a reason that says what to set.
///
/// # Errors
/// [`Unavailable`] when no broker is configured.
pub fn broker_url(env_var: &str) -> Result<String, Unavailable> {
    match std::env::var(env_var) {
        Ok(url) if !url.trim().is_empty() => Ok(url),
        _ => Err(Unavailable(format!(
            "{env_var} is not set; run `eval \"$(scripts/services.sh)\"` or point it at a broker"
        ))),
    }
}
