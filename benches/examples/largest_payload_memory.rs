//! Times one message of the largest accepted payload (8 MiB) through the in-process broker:
//! publish, receive, ack; five runs unless a count is given.
//!
//! ```text
//! cargo run -p broker-benches --example largest_payload_memory
//! ```

use std::{sync::Arc, time::Duration};

use broker_benches::payload::{runs, time_largest_payload};
use broker_core::{Broker, Queue};
use broker_memory::{MemoryBroker, MemoryConfig};

#[tokio::main]
async fn main() {
    let config = MemoryConfig {
        visibility_timeout: Duration::from_secs(300),
        ..MemoryConfig::default()
    };
    let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new(config));
    let queue = Queue::declare(broker, "largest-payload")
        .await
        .expect("declare");
    println!("memory: {}", time_largest_payload(&queue, runs()).await);
}
