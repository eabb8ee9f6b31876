//! Exponential backoff with jitter, kept apart from what is retried.
//!
//! The same [`RetryPolicy`] drives transport retries (a publish that hit a dropped connection)
//! and task retries in the [`worker`](crate::worker).

use std::{future::Future, time::Duration};

use crate::error::Result;

/// How often and how patiently to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. `1` never retries.
    pub max_attempts: u32,
    /// Backoff before the second attempt.
    pub initial_backoff: Duration,
    /// Backoff never exceeds this.
    pub max_backoff: Duration,
    /// Each backoff is this many times the previous one.
    pub multiplier: f64,
    /// Randomise each backoff within `[backoff / 2, backoff]`, so that many clients that failed
    /// together do not retry together.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// Five attempts, 100 ms doubling up to 5 s, with jitter.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    #[must_use]
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before attempt `retry + 1`, where `retry` counts retries made so far
    /// (0 for the first retry). Without jitter this is `initial * multiplier^retry` capped at
    /// `max_backoff`; with jitter a uniformly random value in its upper half.
    #[must_use]
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
        let uncapped = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        let capped = uncapped.min(self.max_backoff.as_secs_f64()).max(0.0);
        let secs = if self.jitter {
            capped * (0.5 + fastrand::f64() * 0.5)
        } else {
            capped
        };
        Duration::from_secs_f64(secs)
    }

    /// Whether a task that has been retried `retries` times may be retried again.
    #[must_use]
    pub fn allows_retry(&self, retries: u32) -> bool {
        retries.saturating_add(1) < self.max_attempts
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or attempts run out;
    /// sleeps [`backoff`](Self::backoff) between attempts. Returns the last error.
    ///
    /// # Errors
    /// The last error `op` returned.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut retry = 0;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_retryable() && self.allows_retry(retry) => {
                    let wait = self.backoff(retry);
                    tracing::warn!(error = %err, retry, ?wait, "retryable error; trying again");
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::{Error, ErrorKind, Operation};

    fn fixed() -> RetryPolicy {
        RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn backoff_doubles_until_the_cap() {
        let p = fixed();
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(1), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(800));
        assert_eq!(p.backoff(40), Duration::from_secs(5));
    }

    #[test]
    fn jittered_backoff_stays_in_the_upper_half() {
        let p = RetryPolicy::default();
        for _ in 0..1000 {
            let b = p.backoff(2);
            assert!(
                b >= Duration::from_millis(200) && b <= Duration::from_millis(400),
                "{b:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn run_retries_retryable_errors_and_stops_at_max_attempts() {
        let calls = AtomicU32::new(0);
        let result: Result<()> = fixed()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(
                    ErrorKind::Connection,
                    "test",
                    Operation::Publish,
                    "down",
                ))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn run_does_not_retry_permanent_errors() {
        let calls = AtomicU32::new(0);
        let result: Result<()> = fixed()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::new(
                    ErrorKind::QueueNotFound,
                    "test",
                    Operation::Publish,
                    "q",
                ))
            })
            .await;
        assert_eq!(result.unwrap_err().kind(), ErrorKind::QueueNotFound);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
