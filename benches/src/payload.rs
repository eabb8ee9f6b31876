//! How long the largest message a backend accepts takes to publish, receive and ack.

use std::{
    fmt,
    time::{Duration, Instant},
};

use broker_core::{Message, Queue};

/// The times of each step of moving one message of `size` bytes, over several runs.
#[derive(Debug, Clone)]
pub struct PayloadTimes {
    /// The payload's length in bytes.
    pub size: usize,
    /// One entry per run.
    pub publish: Vec<Duration>,
    /// From calling receive to holding the delivery.
    pub receive: Vec<Duration>,
    /// One ack of the delivery.
    pub ack: Vec<Duration>,
}

/// Publishes, receives and acks one message of the largest payload the queue accepts,
/// `runs` times, one step after the other. The queue must be empty and its
/// lease long enough for one run.
///
/// # Panics
/// When a step fails or the message does not come back whole.
pub async fn time_largest_payload(queue: &Queue, runs: usize) -> PayloadTimes {
    let size = queue.capabilities().max_payload;
    let payload: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let mut times = PayloadTimes {
        size,
        publish: Vec::new(),
        receive: Vec::new(),
        ack: Vec::new(),
    };
    for _ in 0..runs {
        let start = Instant::now();
        queue
            .publish(Message::new(payload.clone()))
            .await
            .expect("publish");
        times.publish.push(start.elapsed());

        let start = Instant::now();
        let got = queue
            .receive(1, Duration::from_secs(60))
            .await
            .expect("receive");
        times.receive.push(start.elapsed());
        assert_eq!(got.len(), 1, "the message arrives");
        assert_eq!(got[0].payload().len(), size, "and arrives whole");

        let start = Instant::now();
        queue.ack_all(got).await.expect("ack");
        times.ack.push(start.elapsed());
    }
    times
}

impl fmt::Display for PayloadTimes {
    /// `publish 120 ms, receive 340 ms, ack 2 ms` (medians), then the slowest of each.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let median = |times: &[Duration]| {
            let mut sorted = times.to_vec();
            sorted.sort();
            sorted.get(sorted.len() / 2).copied().unwrap_or_default()
        };
        let max = |times: &[Duration]| times.iter().max().copied().unwrap_or_default();
        write!(
            f,
            "{:.1} MiB x {} runs: publish {:.0} ms, receive {:.0} ms, ack {:.0} ms (median); \
             slowest {:.0} / {:.0} / {:.0} ms",
            self.size as f64 / (1024.0 * 1024.0),
            self.publish.len(),
            ms(median(&self.publish)),
            ms(median(&self.receive)),
            ms(median(&self.ack)),
            ms(max(&self.publish)),
            ms(max(&self.receive)),
            ms(max(&self.ack)),
        )
    }
}

/// The number of runs given as the program's first argument; 5 without one.
///
/// # Panics
/// When the argument is not a number.
#[must_use]
pub fn runs() -> usize {
    std::env::args()
        .nth(1)
        .map_or(5, |n| n.parse().expect("the number of runs"))
}
