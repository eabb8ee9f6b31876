//! What every backend's throughput benchmark measures the same way.

use std::time::{Duration, Instant};

use broker_core::Queue;
use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};

/// A throughput group with the settings the backend benchmarks share: 10 samples, 1 s of
/// warm-up, 3 s of measurement.
pub fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group
}

/// Times `rounds` rounds of receiving `batch` deliveries from `queue` and acking them in one
/// call. The queue must already hold `rounds * batch` messages.
///
/// # Panics
/// When a round receives fewer than `batch` deliveries, or a receive or ack fails.
pub async fn time_consume_ack(queue: &Queue, rounds: u64, batch: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..rounds {
        let got = queue.receive(batch, Duration::ZERO).await.expect("receive");
        assert_eq!(got.len(), batch, "the queue was filled beforehand");
        queue.ack_all(got).await.expect("ack");
    }
    start.elapsed()
}
