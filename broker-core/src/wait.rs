//! The wait-for-work loop of a receive, written once for every backend that waits and then
//! takes (memory, Redis, PostgreSQL).
//!
//! A backend supplies its wake-up source (a [`Notify`] it wakes, with
//! [`Notify::notify_waiters`], whenever work may have arrived in the queue) and one look at
//! the queue; [`wait_for_work`] arms the wake-up, looks, and sleeps until the wake-up, the
//! deadline or the moment the look named, then looks again.

use std::{future::Future, time::Duration};

use tokio::{sync::Notify, time::Instant};

use crate::{broker::Received, error::Result};

/// What one look at a queue found.
#[derive(Debug)]
pub enum Look {
    /// Deliveries taken (at least one): the receive returns them.
    Taken(Vec<Received>),
    /// Nothing to take. Look again when woken, when the receive's wait ends, or at `again_at`
    /// if it comes first: when work becomes available without a wake-up (a delayed message
    /// falling due, a lease ending) or when the backend wants to look anyway (a safety net for
    /// wake-ups its broker may drop). `None` when only a wake-up can bring work.
    Nothing {
        /// The next moment to look even without a wake-up.
        again_at: Option<Instant>,
    },
}

/// Looks for work with `look` until it takes some or `wait` has passed.
///
/// Each round arms `wake_up` before it looks, so a wake-up that comes while the look runs is
/// not missed; then, when the look found nothing and time is left, it sleeps until `wake_up`
/// is notified, the wait ends or the look's `again_at`, whichever is first. Every look reads
/// its own capacity, so a receiver's room is read when messages are taken. The last look is at
/// or after the deadline; a zero `wait` looks once. A wait too long to represent waits for
/// ever (until work comes).
///
/// Cancellation safe when `look` is: dropping the future between looks takes nothing.
///
/// # Errors
/// The first error of `look`, as it is.
pub async fn wait_for_work<F, Fut>(
    wake_up: &Notify,
    wait: Duration,
    mut look: F,
) -> Result<Vec<Received>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Look>>,
{
    let deadline = Instant::now().checked_add(wait);
    loop {
        let woken = wake_up.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();

        let again_at = match look().await? {
            Look::Taken(received) => return Ok(received),
            Look::Nothing { again_at } => again_at,
        };
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Ok(Vec::new());
        }
        let until = match (deadline, again_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match until {
            Some(until) => {
                tokio::select! {
                    () = &mut woken => {}
                    () = tokio::time::sleep_until(until) => {}
                }
            }
            None => woken.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;
    use crate::{broker::AckToken, headers::Headers, message::Properties};

    fn received() -> Received {
        Received {
            id: "1".into(),
            payload: "x".into(),
            headers: Headers::default(),
            properties: Properties::default(),
            ordering_key: None,
            receive_count: 1,
            token: AckToken::new("t"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_queue_is_looked_at_once_more_at_the_deadline() {
        let looks = AtomicUsize::new(0);
        let started = Instant::now();
        let got = wait_for_work(&Notify::new(), Duration::from_secs(5), || async {
            looks.fetch_add(1, Ordering::SeqCst);
            Ok(Look::Nothing { again_at: None })
        })
        .await
        .expect("no error");
        assert!(got.is_empty());
        assert_eq!(
            looks.load(Ordering::SeqCst),
            2,
            "a first look and a last one"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_wait_looks_once() {
        let looks = AtomicUsize::new(0);
        let got = wait_for_work(&Notify::new(), Duration::ZERO, || async {
            looks.fetch_add(1, Ordering::SeqCst);
            Ok(Look::Nothing { again_at: None })
        })
        .await
        .expect("no error");
        assert!(got.is_empty());
        assert_eq!(looks.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_up_during_the_look_is_not_missed() {
        let wake_up = Arc::new(Notify::new());
        let looks = AtomicUsize::new(0);
        let started = Instant::now();
        let got = wait_for_work(&wake_up, Duration::from_secs(60), || {
            let n = looks.fetch_add(1, Ordering::SeqCst);
            let wake_up = wake_up.clone();
            async move {
                if n == 0 {
                    // Work arrives after the look saw an empty queue, before it sleeps.
                    wake_up.notify_waiters();
                    return Ok(Look::Nothing { again_at: None });
                }
                Ok(Look::Taken(vec![received()]))
            }
        })
        .await
        .expect("no error");
        assert_eq!(got.len(), 1);
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "woken at once, not at the deadline"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_look_is_repeated_at_the_moment_it_named() {
        let looks = AtomicUsize::new(0);
        let started = Instant::now();
        let due = started + Duration::from_secs(2);
        let got = wait_for_work(&Notify::new(), Duration::from_secs(60), || async {
            if looks.fetch_add(1, Ordering::SeqCst) == 0 {
                Ok(Look::Nothing {
                    again_at: Some(due),
                })
            } else {
                Ok(Look::Taken(vec![received()]))
            }
        })
        .await
        .expect("no error");
        assert_eq!(got.len(), 1);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_too_long_to_represent_waits_for_a_wake_up_instead_of_panicking() {
        let wake_up = Arc::new(Notify::new());
        let waker = wake_up.clone();
        let looks = Arc::new(AtomicUsize::new(0));
        let counted = looks.clone();
        let receive = tokio::spawn(async move {
            wait_for_work(&wake_up, Duration::MAX, move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    Ok(if n == 0 {
                        Look::Nothing { again_at: None }
                    } else {
                        Look::Taken(vec![received()])
                    })
                }
            })
            .await
        });
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(looks.load(Ordering::SeqCst), 1, "still waiting");
        waker.notify_waiters();
        let got = receive.await.expect("no panic").expect("no error");
        assert_eq!(got.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_of_the_look_ends_the_wait() {
        let err = wait_for_work(&Notify::new(), Duration::from_secs(5), || async {
            Err(crate::Error::new(
                crate::ErrorKind::Closed,
                "test",
                crate::Operation::Receive,
                "closed",
            ))
        })
        .await
        .expect_err("the look's error");
        assert_eq!(err.kind(), crate::ErrorKind::Closed);
    }
}
