//! The window of publisher confirms: how many publishes on one channel may await their confirm
//! at once.
//!
//! Awaiting each publish's confirm alone costs a round trip (and, on a durable queue, a disk
//! sync) per message; sending many before awaiting their confirms together does not. The
//! window bounds how many are sent and not yet confirmed, across every caller sharing the
//! channel, so that a burst of publishes cannot pile up unconfirmed messages without limit.

use tokio::sync::Semaphore;

/// Room for at most `size` publishes awaiting their confirm, shared by every caller.
///
/// What a caller may rely on: at no moment have more than `size` items been sent through
/// [`send_all`](Self::send_all), by all callers together, whose confirms have not resolved;
/// callers wait for room in the order they asked for it. One exception: a `send_all` dropped
/// before it ends (cancelled) frees its room at once, though its confirms may still be due.
#[derive(Debug)]
pub(crate) struct ConfirmWindow {
    room: Semaphore,
    size: usize,
}

impl ConfirmWindow {
    /// A window of `size` (at least 1).
    pub(crate) fn new(size: usize) -> Self {
        let size = size.max(1);
        Self {
            room: Semaphore::new(size),
            size,
        }
    }

    /// Sends `items` in order, a chunk of at most the window's size at a time: waits for room
    /// for the chunk, starts each item's publish with `send` (which returns the item's
    /// confirm), then awaits the chunk's confirms together before freeing their room and
    /// sending the next chunk. Returns every confirm's outcome, in the items' order.
    ///
    /// # Errors
    /// The first error of `send`; nothing after it is sent, and the confirms already started
    /// are awaited before their room is freed.
    pub(crate) async fn send_all<T, S, C, E>(
        &self,
        items: Vec<T>,
        mut send: impl FnMut(T) -> S,
    ) -> Result<Vec<C::Output>, E>
    where
        S: Future<Output = Result<C, E>>,
        C: Future,
    {
        let mut outcomes = Vec::with_capacity(items.len());
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let chunk: Vec<T> = items.by_ref().take(self.size).collect();
            let count = u32::try_from(chunk.len()).expect("a window fits in u32");
            let _room = self
                .room
                .acquire_many(count)
                .await
                .expect("the window is never closed");
            let mut confirms = Vec::with_capacity(chunk.len());
            let mut failed = None;
            for item in chunk {
                match send(item).await {
                    Ok(confirm) => confirms.push(confirm),
                    Err(err) => {
                        failed = Some(err);
                        break;
                    }
                }
            }
            outcomes.extend(futures::future::join_all(confirms).await);
            if let Some(err) = failed {
                return Err(err);
            }
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use tokio::sync::oneshot;

    use super::*;

    /// A fake channel: counts publishes whose confirm has not resolved, and the most at once.
    #[derive(Default)]
    struct Unconfirmed {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    impl Unconfirmed {
        fn sent(&self) {
            let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
        }

        fn confirmed(&self) {
            self.now.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_never_have_more_than_the_window_awaiting_confirms() {
        let window = Arc::new(ConfirmWindow::new(8));
        let unconfirmed = Arc::new(Unconfirmed::default());
        let callers: Vec<_> = (0..4)
            .map(|_| {
                let (window, unconfirmed) = (window.clone(), unconfirmed.clone());
                tokio::spawn(async move {
                    window
                        .send_all((0..25).collect(), |n: usize| {
                            unconfirmed.sent();
                            let unconfirmed = unconfirmed.clone();
                            async move {
                                Ok::<_, Infallible>(async move {
                                    tokio::time::sleep(Duration::from_millis(2)).await;
                                    unconfirmed.confirmed();
                                    n
                                })
                            }
                        })
                        .await
                })
            })
            .collect();
        for caller in callers {
            let outcomes = caller.await.unwrap().unwrap();
            assert_eq!(outcomes, (0..25).collect::<Vec<_>>(), "outcomes in order");
        }
        // Never above the window; and a whole chunk is in flight at once, not one at a time.
        assert_eq!(unconfirmed.most.load(Ordering::SeqCst), 8);
        assert_eq!(unconfirmed.now.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_caller_waits_for_room_until_earlier_confirms_resolve() {
        let window = Arc::new(ConfirmWindow::new(3));
        let (confirm, confirmed) = oneshot::channel::<()>();
        let confirmed = Arc::new(tokio::sync::Mutex::new(Some(confirmed)));
        let first = tokio::spawn({
            let window = window.clone();
            async move {
                window
                    .send_all(vec![1, 2, 3], |n: u32| {
                        let confirmed = confirmed.clone();
                        async move {
                            Ok::<_, Infallible>(async move {
                                if let Some(confirmed) = confirmed.lock().await.take() {
                                    confirmed.await.unwrap();
                                }
                                n
                            })
                        }
                    })
                    .await
            }
        });
        let sent_later = Arc::new(AtomicUsize::new(0));
        let second = tokio::spawn({
            let (window, sent_later) = (window.clone(), sent_later.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                window
                    .send_all(vec![4], |n: u32| {
                        sent_later.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, Infallible>(async move { n }) }
                    })
                    .await
            }
        });

        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            sent_later.load(Ordering::SeqCst),
            0,
            "sent while the window was full"
        );
        confirm.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), [1, 2, 3]);
        assert_eq!(second.await.unwrap().unwrap(), [4]);
        assert_eq!(sent_later.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_send_stops_the_rest_and_gives_its_room_back() {
        let window = ConfirmWindow::new(4);
        let mut sent = Vec::new();
        let result = window
            .send_all(vec![1, 2, 3, 4, 5, 6], |n: u32| {
                let outcome = if n == 3 {
                    Err("channel closed")
                } else {
                    sent.push(n);
                    Ok(async move { n })
                };
                async move { outcome }
            })
            .await;
        assert_eq!(result, Err("channel closed"));
        assert_eq!(sent, [1, 2], "nothing is sent after the failure");
        assert_eq!(window.room.available_permits(), 4, "room given back");
    }
}
