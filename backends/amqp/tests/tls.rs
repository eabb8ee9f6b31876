//! `amqps://` works against a real TLS listener: a private RabbitMQ node that listens with TLS
//! only, presenting a certificate signed by a CA made for the test (with the `openssl`
//! command). The broker trusts that CA through `ssl_ca_certs`, checks the server's certificate
//! (no CA, no connection), and a plain `amqp://` client on the TLS port fails with the
//! endpoint and the cause. Needs `rabbitmq-server` and `openssl`; the node is stopped and its
//! directory removed when the last test using it ends, also when one fails.

mod support;

use std::{
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use broker_amqp::{AmqpBroker, AmqpConfig};
use broker_core::{Broker, ErrorKind, Message, Queue};
use conformance_tests::{Unavailable, endpoint, skip};
use support::private_node::PrivateNode;

/// The TLS node the tests of this file share while any of them runs: it boots in seconds.
async fn tls_node() -> Option<Arc<PrivateNode>> {
    static SHARED: Mutex<Weak<PrivateNode>> = Mutex::new(Weak::new());
    skip::or_skip(endpoint::broker_url("amqp"))?;
    tokio::task::spawn_blocking(|| {
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(node) = shared.upgrade() {
            return Some(node);
        }
        let node = skip::or_skip(
            PrivateNode::start_tls().map_err(|reason| Unavailable::new("amqp", reason)),
        )
        .map(Arc::new)?;
        *shared = Arc::downgrade(&node);
        Some(node)
    })
    .await
    .expect("the node's start does not panic")
}

fn amqps_url(node: &PrivateNode) -> String {
    format!("amqps://guest:guest@127.0.0.1:{}/%2f", node.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_trusting_the_test_ca_publishes_receives_and_acks() {
    let Some(node) = tls_node().await else {
        return;
    };
    let ca = node.ca_certificate().expect("a TLS node has a CA");
    let config = AmqpConfig::from_url(&format!(
        "{}?ssl_ca_certs={}",
        amqps_url(&node),
        ca.display()
    ))
    .expect("the URL parses");
    assert!(config.tls);
    let broker: Arc<dyn Broker> =
        Arc::new(AmqpBroker::connect(config).await.expect("a TLS connection"));

    let queue = Queue::declare(broker.clone(), "over-tls")
        .await
        .expect("declare");
    queue
        .publish(Message::new("sealed"))
        .await
        .expect("publish");
    let delivery = queue
        .receive_one(Duration::from_secs(5))
        .await
        .expect("receive")
        .expect("the message arrives over TLS");
    assert_eq!(delivery.payload().as_ref(), b"sealed");
    delivery.ack().await.expect("ack");

    broker.close().await.expect("close");
    let again: Arc<dyn Broker> = Arc::new(
        AmqpBroker::connect(
            AmqpConfig::from_url(&format!(
                "{}?ssl_ca_certs={}",
                amqps_url(&node),
                ca.display()
            ))
            .unwrap(),
        )
        .await
        .expect("a second TLS connection"),
    );
    let left = Queue::new(again.clone(), "over-tls")
        .receive(10, Duration::from_millis(500))
        .await
        .expect("receive");
    assert!(left.is_empty(), "the acked message came back");
    again.delete_queue("over-tls").await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_refuses_a_server_whose_certificate_it_cannot_verify() {
    let Some(node) = tls_node().await else {
        return;
    };
    let config = AmqpConfig::from_url(&amqps_url(&node)).expect("the URL parses");

    let err = AmqpBroker::connect(config)
        .await
        .expect_err("the test CA is not among the system's roots");

    let shown = err.to_string();
    let endpoint = format!("127.0.0.1:{}: ", node.port());
    assert!(
        shown.starts_with("amqp: connect failed") && shown.contains(&endpoint),
        "{shown}"
    );
    assert!(shown.contains("UnknownIssuer"), "{shown}");
    assert_eq!(err.kind(), ErrorKind::Configuration, "{shown}");
    assert!(!err.is_retryable(), "trying again changes nothing: {shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_amqp_to_the_tls_port_fails_naming_the_endpoint_and_the_cause() {
    let Some(node) = tls_node().await else {
        return;
    };
    let url = format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f?connect_timeout=5",
        node.port()
    );
    let config = AmqpConfig::from_url(&url).expect("the URL parses");
    assert!(!config.tls);

    let err = AmqpBroker::connect(config)
        .await
        .expect_err("a TLS listener does not speak plain AMQP");

    let shown = err.to_string();
    assert!(
        matches!(err.kind(), ErrorKind::Connection | ErrorKind::Timeout),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("127.0.0.1:{}: ", node.port())),
        "{shown}"
    );
    // The listener either resets the connection or answers with a TLS alert, which is no
    // AMQP: the cause says which.
    assert!(
        shown.contains("Connection reset by peer") || shown.contains("is not AMQP 0-9-1"),
        "{shown}"
    );
    assert!(!shown.contains("guest:guest"), "{shown}");
}

#[tokio::test]
async fn ssl_ca_certs_without_a_certificate_fails_before_connecting() {
    let file = std::env::temp_dir().join(format!("not-a-ca-{}.pem", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, "not a certificate\n").expect("write");
    // Nothing listens on port 1: only the file can be the cause.
    let url = format!("amqps://127.0.0.1:1/?ssl_ca_certs={}", file.display());

    let err = AmqpBroker::connect(AmqpConfig::from_url(&url).expect("the URL parses")).await;
    let _ = std::fs::remove_file(&file);

    let err = err.expect_err("a CA file without a certificate trusts nothing");
    assert_eq!(err.kind(), ErrorKind::Configuration, "{err}");
    assert!(
        err.to_string().contains("holds no PEM certificate"),
        "{err}"
    );
}
