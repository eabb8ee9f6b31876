//! A dropped connection or a channel the server closed costs nothing: the next call opens
//! them again, calls in flight fail with retryable errors that [`Queue`] retries, and every
//! message arrives (a repeat is possible, a loss is not). The connection runs through a local
//! TCP proxy that the test cuts, so the machine's RabbitMQ is never restarted.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use broker_amqp::{AmqpBroker, AmqpConfig};
use broker_core::{Broker, Message, Queue};
use conformance_tests::{endpoint, skip};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    time::Instant,
};

/// Forwards connections to RabbitMQ until [`Proxy::cut`] drops every open one.
struct Proxy {
    port: u16,
    cuts: watch::Sender<u32>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (cuts, watching) = watch::channel(0);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let mut cut = watching.clone();
                cut.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { port, cuts }
    }

    /// Drops every connection open now; new ones are accepted.
    fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

async fn through_proxy() -> Option<(Proxy, AmqpConfig)> {
    let url = skip::or_skip(endpoint::broker_url("amqp"))?;
    let config = AmqpConfig::from_url(&url).expect("the test URL parses");
    let proxy = Proxy::start(config.endpoint.to_string()).await;
    let mut through = config;
    through.endpoint.host = "127.0.0.1".into();
    through.endpoint.port = proxy.port;
    Some((proxy, through))
}

/// Receives and acks until every number below `total` was seen or `within` passed.
fn consume(
    queue: Queue,
    total: usize,
    within: Duration,
) -> tokio::task::JoinHandle<BTreeSet<usize>> {
    tokio::spawn(async move {
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + within;
        while seen.len() < total && Instant::now() < deadline {
            let Ok(got) = queue.receive(10, Duration::from_millis(200)).await else {
                continue; // retries ran out mid-outage: try again
            };
            for delivery in &got {
                let n = String::from_utf8_lossy(delivery.payload()).parse().unwrap();
                seen.insert(n);
            }
            // A failed ack only means the message comes back on the new connection.
            let _ = queue.ack_all(got).await;
        }
        seen
    })
}

fn queue_name() -> String {
    format!("reconnect-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_reopened_and_nothing_is_lost() {
    let Some((proxy, config)) = through_proxy().await else {
        return;
    };
    let name = queue_name();
    let publisher = Arc::new(AmqpBroker::connect(config.clone()).await.expect("connect"));
    let consumer = Arc::new(AmqpBroker::connect(config).await.expect("connect"));
    let publishing = Queue::declare(publisher.clone(), name.as_str())
        .await
        .expect("declare");
    let total = 400;
    let received = consume(
        Queue::new(consumer, name.as_str()),
        total,
        Duration::from_secs(60),
    );

    let sender = tokio::spawn(async move {
        for n in 0..total {
            publishing
                .publish(Message::new(n.to_string()))
                .await
                .expect("publish survives dropped connections");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        proxy.cut();
    }
    sender.await.expect("publisher");
    let seen = received.await.expect("consumer");
    let missing: Vec<usize> = (0..total).filter(|n| !seen.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "lost {} messages: {missing:?}",
        missing.len()
    );
    publisher.delete_queue(&name).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_the_server_cancelled_is_started_again_by_the_next_receive() {
    let Some(url) = skip::or_skip(endpoint::broker_url("amqp")) else {
        return;
    };
    let config = AmqpConfig::from_url(&url).expect("the test URL parses");
    let name = queue_name();
    let admin = Arc::new(AmqpBroker::connect(config.clone()).await.expect("connect"));
    let consumer = Queue::new(
        Arc::new(AmqpBroker::connect(config).await.expect("connect")),
        name.as_str(),
    );
    let admin_queue = Queue::declare(admin.clone(), name.as_str())
        .await
        .expect("declare");
    assert!(
        consumer
            .receive(1, Duration::from_millis(100))
            .await
            .expect("receive starts the consumer")
            .is_empty()
    );

    // Deleting the queue makes RabbitMQ cancel the consumer; declaring it again and
    // publishing must reach the same broker without any help.
    admin.delete_queue(&name).await.expect("delete");
    admin.declare_queue(&name).await.expect("declare again");
    admin_queue
        .publish(Message::new("after the cancel"))
        .await
        .expect("publish");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < deadline {
        match consumer.receive(1, Duration::from_millis(500)).await {
            Ok(deliveries) => got = deliveries,
            Err(err) => assert!(err.is_retryable(), "not worth retrying: {err}"),
        }
    }
    assert_eq!(got.len(), 1, "the consumer came back by itself");
    consumer.ack_all(got).await.expect("ack");
    admin.delete_queue(&name).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_keeps_running_through_dropped_connections() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use broker_core::{
        Delay,
        celery::TaskMessage,
        tasks::task_to_message,
        worker::{TaskError, TaskRegistry, TaskRequest, Worker, WorkerOptions},
    };
    use serde_json::{Map, Value, json};

    let Some((proxy, config)) = through_proxy().await else {
        return;
    };
    let name = queue_name();
    let direct = AmqpConfig {
        endpoint: AmqpConfig::from_url(&endpoint::broker_url("amqp").unwrap())
            .unwrap()
            .endpoint,
        ..config.clone()
    };
    let publisher = Arc::new(AmqpBroker::connect(direct).await.expect("connect"));
    let publishing = Queue::declare(publisher.clone(), name.as_str())
        .await
        .expect("declare");
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let tasks = TaskRegistry::new().register("count", move |_: TaskRequest| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<Value, TaskError>(Value::Null)
        }
    });
    let results = Arc::new(broker_memory::MemoryResultStore::new(Duration::from_secs(
        60,
    )));
    let consuming = Arc::new(AmqpBroker::connect(config).await.expect("connect"));
    let worker = Worker::new(Queue::new(consuming, name.as_str()), results, tasks).with_options(
        WorkerOptions {
            poll_wait: Duration::from_millis(200),
            ..WorkerOptions::default()
        },
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));

    let total = 200;
    for _ in 0..total / 20 {
        let batch = (0..20)
            .map(|_| {
                task_to_message(
                    &TaskMessage::new("count", vec![json!(1)], Map::new()),
                    Delay::Unsupported,
                )
                .unwrap()
            })
            .collect();
        publishing.publish_batch(batch).await.expect("publish");
        tokio::time::sleep(Duration::from_millis(40)).await;
        proxy.cut();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while ran.load(Ordering::SeqCst) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ran.load(Ordering::SeqCst) >= total,
        "only {} of {total} tasks ran after ten dropped connections",
        ran.load(Ordering::SeqCst)
    );
    assert!(!running.is_finished(), "the worker stopped");
    stop.cancel();
    running
        .await
        .expect("the worker task")
        .expect("a clean stop");
    publisher.delete_queue(&name).await.expect("delete");
}
