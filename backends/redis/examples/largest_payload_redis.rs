//! Times one message of the largest accepted payload (16 MiB) through the Redis broker:
//! publish, receive, ack; five runs unless a count is given.
//!
//! ```text
//! BROKER_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo run -p broker-redis --example largest_payload_redis
//! ```
//! Writes only under a fresh key prefix, and deletes its queue at the end.

use std::{sync::Arc, time::Duration};

use broker_benches::payload::{runs, time_largest_payload};
use broker_core::{Broker, Queue};
use broker_redis::{RedisBroker, RedisConfig};

#[tokio::main]
async fn main() {
    let url = std::env::var("BROKER_TEST_REDIS_URL").expect("set BROKER_TEST_REDIS_URL");
    let token = uuid::Uuid::new_v4().simple().to_string();
    let config = RedisConfig {
        key_prefix: format!("largest-payload:{token}:"),
        visibility_timeout: Duration::from_secs(300),
        ..RedisConfig::new(url)
    };
    let broker: Arc<dyn Broker> = Arc::new(RedisBroker::connect(config).await.expect("connect"));
    let queue = Queue::declare(broker.clone(), "largest-payload")
        .await
        .expect("declare");
    let times = time_largest_payload(&queue, runs()).await;
    broker.delete_queue(queue.name()).await.expect("delete");
    println!("redis: {times}");
}
