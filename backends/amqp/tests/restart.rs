//! A RabbitMQ restart loses nothing that was confirmed, and the broker reconnects by itself,
//! also under a running producer and worker (the fault suite's restart case).
//! Runs against a private RabbitMQ node (its own port, data directory and node name) that the
//! test stops and starts again, never the machine's shared one. Needs `rabbitmq-server`
//! (installed with the machine's RabbitMQ); the shared server's URL gives the credentials.

mod support;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use broker_amqp::{AmqpBroker, AmqpConfig};
use broker_core::{Broker, Message, Queue};
use conformance_tests::{Harness, HarnessFeature, Settings, Unavailable, endpoint, run_case, skip};
use support::private_node::PrivateNode;
use tokio::time::Instant;

/// The node, or why there is none; `None` after a skip (a failure when `BROKER_TEST_REQUIRE`
/// asks for amqp).
fn private_node() -> Option<Arc<PrivateNode>> {
    skip::or_skip(endpoint::broker_url("amqp"))?;
    skip::or_skip(PrivateNode::start().map_err(|reason| Unavailable::new("amqp", reason)))
        .map(Arc::new)
}

struct Restartable {
    node: Arc<PrivateNode>,
}

#[async_trait]
impl Harness for Restartable {
    async fn broker(&self, settings: Settings) -> Result<Arc<dyn Broker>, Unavailable> {
        let config = AmqpConfig {
            max_receives: settings.max_receives,
            ..AmqpConfig::from_url(&self.node.url()).expect("the node's URL parses")
        };
        let broker = AmqpBroker::connect(config)
            .await
            .map_err(|e| Unavailable::new("amqp", e.to_string()))?;
        Ok(Arc::new(broker))
    }

    fn features(&self) -> Vec<HarnessFeature> {
        vec![HarnessFeature::Restart]
    }

    async fn restart(&self) -> Result<(), String> {
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || node.restart())
            .await
            .map_err(|e| e.to_string())?
    }
}

#[test]
fn restart_loses_nothing() {
    let Some(node) = private_node() else {
        return;
    };
    run_case("restart", "restart_loses_nothing", || Restartable { node });
}

/// The fault suite's restart case, which the shared server's harness cannot run.
#[test]
fn a_restart_mid_run_loses_no_task() {
    let Some(node) = private_node() else {
        return;
    };
    run_case("restart", "a_restart_mid_run_loses_no_task", || {
        Restartable { node }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_reconnects_after_rabbitmq_restarts() {
    let Some(node) = tokio::task::spawn_blocking(private_node).await.unwrap() else {
        return;
    };
    let config = AmqpConfig::from_url(&node.url()).unwrap();
    let broker: Arc<dyn Broker> = Arc::new(AmqpBroker::connect(config).await.expect("connect"));
    let queue = Queue::declare(broker.clone(), "survivor")
        .await
        .expect("declare");
    queue
        .publish(Message::new("before"))
        .await
        .expect("publish");

    let restarting = node.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .expect("restart");

    // The old connection is gone; calls fail as retryable until the new one opens.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match queue.publish(Message::new("after")).await {
            Ok(()) => break,
            Err(err) => {
                assert!(err.is_retryable(), "not worth retrying: {err}");
                assert!(Instant::now() < deadline, "never reconnected: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let mut got = Vec::new();
    while got.len() < 2 && Instant::now() < deadline {
        if let Ok(more) = queue.receive(2, Duration::from_millis(500)).await {
            got.extend(more);
        }
    }
    let mut texts: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8_lossy(d.payload()).into_owned())
        .collect();
    texts.sort();
    assert_eq!(texts, ["after", "before"], "a confirmed message was lost");
    queue.ack_all(got).await.expect("ack");
}
