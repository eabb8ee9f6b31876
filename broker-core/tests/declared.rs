//! `Queue`, `Delivery` and the worker keep to what a backend declares: input a backend's
//! capabilities refuse never reaches its driver, and dead letters go where the one naming rule
//! says. Run on the in-process broker, made to declare less than it can.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use broker_core::ResultStoreExt as _;
use broker_core::{
    AckToken, Broker, Capabilities, Capacity, DEAD_LETTER_REASON_HEADER, DeadLetter, Delay,
    ErrorKind, LeaseExtension, Message, NackAction, Queue, Received, Redelivery, Result, TaskState,
    celery::TaskMessage,
    tasks::{send_task, send_tasks},
    worker::{TaskRegistry, Worker, WorkerOptions},
};
use broker_memory::{MemoryBroker, MemoryConfig, MemoryResultStore};
use tokio_util::sync::CancellationToken;

/// The in-process broker declaring `capabilities` instead of its own, and recording every
/// driver call by name (with the capacity a receive could take).
#[derive(Debug)]
struct Declaring {
    inner: MemoryBroker,
    capabilities: Capabilities,
    calls: Mutex<Vec<String>>,
}

impl Declaring {
    fn new(change: impl FnOnce(&mut Capabilities)) -> Arc<Self> {
        let inner = MemoryBroker::new(MemoryConfig::default());
        let mut capabilities = inner.capabilities().clone();
        change(&mut capabilities);
        Arc::new(Self {
            inner,
            capabilities,
            calls: Mutex::default(),
        })
    }

    fn called(&self, call: impl Into<String>) {
        self.calls.lock().unwrap().push(call.into());
    }

    fn calls_to(&self, name: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.split(' ').next() == Some(name))
            .count()
    }

    async fn queue_with(self: &Arc<Self>, text: &str) -> (Queue, broker_core::Delivery) {
        let queue = Queue::declare(self.clone(), "work").await.expect("declare");
        queue
            .publish(Message::new(text.to_owned()))
            .await
            .expect("publish");
        let delivery = queue
            .receive_one(Duration::from_secs(1))
            .await
            .expect("receive")
            .expect("delivered");
        (queue, delivery)
    }
}

#[async_trait::async_trait]
impl Broker for Declaring {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }
    async fn declare_queue(&self, queue: &str) -> Result<()> {
        self.inner.declare_queue(queue).await
    }
    async fn delete_queue(&self, queue: &str) -> Result<()> {
        self.inner.delete_queue(queue).await
    }
    async fn publish(&self, queue: &str, batch: &[Message]) -> Result<()> {
        self.called(format!("publish {}", batch.len()));
        self.inner.publish(queue, batch).await
    }
    async fn receive_up_to(
        &self,
        queue: &str,
        capacity: &Capacity<'_>,
        wait: Duration,
    ) -> Result<Vec<Received>> {
        self.called(format!("receive {}", capacity.now()));
        self.inner.receive_up_to(queue, capacity, wait).await
    }
    async fn ack(&self, queue: &str, tokens: &[AckToken]) -> Result<()> {
        self.called(format!("ack {}", tokens.len()));
        self.inner.ack(queue, tokens).await
    }
    async fn nack(&self, queue: &str, token: &AckToken, action: &NackAction) -> Result<()> {
        self.called("nack");
        self.inner.nack(queue, token, action).await
    }
    async fn extend_lease(&self, queue: &str, token: &AckToken, lease: Duration) -> Result<()> {
        self.called("extend");
        self.inner.extend_lease(queue, token, lease).await
    }
    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}

#[tokio::test]
async fn a_refused_publish_delay_never_reaches_the_driver() {
    let broker = Declaring::new(|caps| caps.delay = Delay::Unsupported);
    let queue = Queue::declare(broker.clone(), "work")
        .await
        .expect("declare");
    let err = queue
        .publish_batch(vec![
            Message::new("now"),
            Message::new("later").delay(Duration::from_secs(1)),
        ])
        .await
        .expect_err("no delays declared");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(
        err.to_string(),
        "memory: publish failed: unsupported: message 1 asks for a delay; \
         the memory backend cannot delay messages"
    );
    assert_eq!(broker.calls_to("publish"), 0);
}

#[tokio::test]
async fn a_refused_nack_delay_never_reaches_the_driver_and_hands_the_delivery_back() {
    let broker = Declaring::new(|caps| {
        caps.delay = Delay::UpTo {
            max: Duration::from_secs(60),
        };
    });
    let (queue, delivery) = broker.queue_with("work").await;
    let refused = delivery
        .nack(NackAction::RequeueAfter(Duration::from_secs(61)))
        .await
        .expect_err("over the declared maximum");
    assert_eq!(refused.error.kind(), ErrorKind::InvalidInput);
    assert_eq!(broker.calls_to("nack"), 0);
    refused.delivery.ack().await.expect("still held");
    assert!(queue.receive(1, Duration::ZERO).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_dead_letter_nack_without_dead_letter_queues_never_reaches_the_driver() {
    let broker = Declaring::new(|caps| caps.dead_letter = DeadLetter::Unsupported);
    let (_queue, delivery) = broker.queue_with("poison").await;
    let refused = delivery
        .nack(NackAction::DeadLetter {
            reason: "bad".into(),
        })
        .await
        .expect_err("no dead-letter queues declared");
    assert_eq!(refused.error.kind(), ErrorKind::Unsupported);
    assert_eq!(
        refused.error.detail(),
        "the memory backend has no dead-letter queues"
    );
    assert_eq!(broker.calls_to("nack"), 0);
}

#[tokio::test]
async fn a_dead_letter_nack_from_a_dead_letter_queue_never_reaches_the_driver() {
    let broker = Declaring::new(|_| {});
    let dlq = Queue::declare(broker.clone(), "work.dlq")
        .await
        .expect("declare");
    dlq.publish(Message::new("dead")).await.expect("publish");
    let delivery = dlq
        .receive_one(Duration::from_secs(1))
        .await
        .expect("receive")
        .expect("delivered");
    let refused = delivery
        .nack(NackAction::DeadLetter {
            reason: "again".into(),
        })
        .await
        .expect_err("dead letters end here");
    assert_eq!(refused.error.kind(), ErrorKind::Unsupported);
    assert_eq!(
        refused.error.detail(),
        "`work.dlq` is a dead-letter queue and has none of its own"
    );
    assert_eq!(broker.calls_to("nack"), 0);
}

#[tokio::test]
async fn a_refused_lease_extension_never_reaches_the_driver() {
    let broker = Declaring::new(|caps| {
        caps.redelivery = Redelivery::Lease {
            default_lease: Duration::from_secs(30),
            extension: LeaseExtension::Unsupported,
        };
    });
    let (_queue, delivery) = broker.queue_with("slow").await;
    let err = delivery
        .extend_lease(Duration::from_secs(1))
        .await
        .expect_err("no extension declared");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(broker.calls_to("extend"), 0);
}

#[tokio::test]
async fn a_lease_extension_over_the_maximum_never_reaches_the_driver() {
    let broker = Declaring::new(|caps| {
        caps.redelivery = Redelivery::Lease {
            default_lease: Duration::from_secs(30),
            extension: LeaseExtension::UpTo {
                max: Duration::from_secs(60),
            },
        };
    });
    let (_queue, delivery) = broker.queue_with("slow").await;
    let err = delivery
        .extend_lease(Duration::from_secs(61))
        .await
        .expect_err("over the declared maximum");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(broker.calls_to("extend"), 0);
    delivery
        .extend_lease(Duration::from_secs(60))
        .await
        .expect("the maximum itself");
    assert_eq!(broker.calls_to("extend"), 1);
}

#[tokio::test]
async fn the_driver_sees_batches_and_receives_within_the_declared_limit() {
    let broker = Declaring::new(|caps| caps.max_batch = 3);
    let queue = Queue::declare(broker.clone(), "work")
        .await
        .expect("declare");
    let messages = (0..7).map(|n| Message::new(format!("m{n}"))).collect();
    queue.publish_batch(messages).await.expect("publish");
    let got = queue
        .receive(100, Duration::from_secs(1))
        .await
        .expect("asking for more than the limit is not an error");
    assert_eq!(got.len(), 3);
    let rest = queue
        .receive(0, Duration::from_secs(1))
        .await
        .expect("receive");
    assert_eq!(rest.len(), 1, "asking for none counts as one");
    let mut all = got;
    all.extend(rest);
    all.extend(queue.receive(3, Duration::from_secs(1)).await.unwrap());
    all.extend(queue.receive(3, Duration::from_secs(1)).await.unwrap());
    assert_eq!(all.len(), 7);
    queue.ack_all(all).await.expect("ack");
    assert_eq!(
        *broker.calls.lock().unwrap(),
        [
            "publish 3",
            "publish 3",
            "publish 1",
            "receive 3",
            "receive 1",
            "receive 3",
            "receive 3",
            "ack 3",
            "ack 3",
            "ack 1"
        ]
    );
}

#[tokio::test]
async fn a_worker_on_a_backend_without_dead_letters_publishes_them_to_the_dead_letter_queue() {
    let broker = Declaring::new(|caps| caps.dead_letter = DeadLetter::Unsupported);
    let queue = Queue::declare(broker.clone(), "tasks")
        .await
        .expect("declare");
    let results = Arc::new(MemoryResultStore::new(Duration::from_secs(60)));
    let task = send_task(
        &queue,
        &TaskMessage::new("no_such_task", vec![], serde_json::Map::new()),
    )
    .await
    .expect("send");
    let stop = CancellationToken::new();
    let worker = Worker::new(queue.clone(), results.clone(), TaskRegistry::new()).with_options(
        WorkerOptions {
            poll_wait: Duration::from_millis(100),
            ..WorkerOptions::default()
        },
    );
    let running = tokio::spawn(worker.run(stop.clone()));

    let dlq = Queue::new(broker.clone(), "tasks.dlq");
    let dead = dlq
        .receive_one(Duration::from_secs(5))
        .await
        .expect("receive")
        .expect("the worker published it to `tasks.dlq`");
    assert!(
        dead.header_str(DEAD_LETTER_REASON_HEADER)
            .is_some_and(|r| r.contains("no_such_task")),
        "{:?}",
        dead.header_str(DEAD_LETTER_REASON_HEADER)
    );
    assert_eq!(broker.calls_to("nack"), 0, "acked, not nacked");
    assert_eq!(
        results.state(&task).await.expect("state").status,
        TaskState::Failure
    );
    stop.cancel();
    let report = running.await.expect("join").expect("worker ran");
    assert_eq!(report.dead_lettered, 1);
}

#[tokio::test]
async fn a_message_too_large_to_copy_to_the_dead_letter_queue_is_kept_not_returned_in_a_loop() {
    let broker = Declaring::new(|caps| {
        caps.dead_letter = DeadLetter::Unsupported;
        caps.max_payload = 64;
    });
    let queue = Queue::declare(broker.clone(), "tasks")
        .await
        .expect("declare");
    // Another producer's message, over the limit this backend declares.
    broker
        .publish("tasks", &[Message::new(vec![b'x'; 65])])
        .await
        .expect("the driver takes it");
    let stop = CancellationToken::new();
    let results = Arc::new(MemoryResultStore::new(Duration::from_secs(60)));
    let worker =
        Worker::new(queue.clone(), results, TaskRegistry::new()).with_options(WorkerOptions {
            poll_wait: Duration::from_millis(50),
            ..WorkerOptions::default()
        });
    let running = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let report = running.await.expect("join").expect("worker ran");

    assert_eq!(report.dead_lettered, 1, "taken once, not over and over");
    assert_eq!(
        broker.calls_to("nack"),
        0,
        "not returned to come straight back"
    );
    assert_eq!(broker.calls_to("ack"), 0, "not dropped either");
    let counts = broker.inner.count("tasks").await.expect("count");
    assert_eq!(
        counts.in_flight,
        Some(1),
        "it waits out its lease in the queue: {counts:?}"
    );
}

#[tokio::test]
async fn a_worker_on_a_dead_letter_queue_leaves_poison_there_to_come_back_after_its_lease() {
    let lease = Duration::from_millis(300);
    let broker = Arc::new(MemoryBroker::new(MemoryConfig {
        visibility_timeout: lease,
        ..MemoryConfig::default()
    }));
    let queue = Queue::declare(broker, "tasks.dlq").await.expect("declare");
    send_task(
        &queue,
        &TaskMessage::new("no_such_task", vec![], serde_json::Map::new()),
    )
    .await
    .expect("send");
    let stop = CancellationToken::new();
    let results = Arc::new(MemoryResultStore::new(Duration::from_secs(60)));
    let worker =
        Worker::new(queue.clone(), results, TaskRegistry::new()).with_options(WorkerOptions {
            poll_wait: Duration::from_millis(100),
            ..WorkerOptions::default()
        });
    let running = tokio::spawn(worker.run(stop.clone()));
    tokio::time::sleep(lease * 3).await;
    stop.cancel();
    let report = running.await.expect("join").expect("worker ran");
    assert!(
        report.dead_lettered >= 2,
        "taken again after its lease: {report:?}"
    );

    let still_there = queue
        .receive_one(lease * 2)
        .await
        .expect("receive")
        .expect("the poison message stays in the dead-letter queue");
    assert!(
        still_there.receive_count() >= 3,
        "{}",
        still_there.receive_count()
    );
}

/// A lease lost by one delivery of a batch ack does not stop the rest: every chunk is still
/// acked, none of the others comes back, and the caller hears of the lost lease.
#[tokio::test]
async fn ack_all_acks_every_chunk_after_one_lost_its_lease() {
    let lease = Duration::from_millis(300);
    let inner = MemoryBroker::new(MemoryConfig {
        visibility_timeout: lease,
        ..MemoryConfig::default()
    });
    let mut capabilities = inner.capabilities().clone();
    capabilities.max_batch = 3;
    let broker = Arc::new(Declaring {
        inner,
        capabilities,
        calls: Mutex::default(),
    });
    let queue = Queue::declare(broker.clone(), "work")
        .await
        .expect("declare");
    let messages = (0..7).map(|n| Message::new(format!("m{n}"))).collect();
    queue.publish_batch(messages).await.expect("publish");
    let stale = queue
        .receive(1, Duration::from_secs(1))
        .await
        .expect("receive");
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let mut all = stale;
    while all.len() < 8 {
        all.extend(
            queue
                .receive(3, Duration::from_secs(1))
                .await
                .expect("receive"),
        );
    }
    broker.calls.lock().unwrap().clear();

    let err = queue
        .ack_all(all)
        .await
        .expect_err("the stale delivery lost its lease");
    assert_eq!(err.kind(), ErrorKind::LeaseLost);
    assert_eq!(*broker.calls.lock().unwrap(), ["ack 3", "ack 3", "ack 2"]);
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let back = queue
        .receive(10, Duration::from_millis(200))
        .await
        .expect("receive");
    assert!(
        back.is_empty(),
        "acked deliveries came back: {}",
        back.len()
    );
}

#[tokio::test]
async fn tasks_sent_together_go_in_batches_of_the_declared_size_in_order() {
    let broker = Declaring::new(|caps| caps.max_batch = 10);
    let queue = Queue::declare(broker.clone(), "tasks")
        .await
        .expect("declare");
    let tasks: Vec<TaskMessage> = (0..25)
        .map(|n| TaskMessage::new("add", vec![n.into()], serde_json::Map::new()))
        .collect();
    let ids = send_tasks(&queue, &tasks).await.expect("send");
    assert_eq!(ids.len(), 25);
    assert_eq!(
        broker.calls.lock().unwrap().clone(),
        ["publish 10", "publish 10", "publish 5"]
    );
    let mut received = Vec::new();
    while received.len() < 25 {
        let more = queue
            .receive(10, Duration::from_secs(1))
            .await
            .expect("receive");
        assert!(!more.is_empty(), "every task arrives");
        received.extend(more);
    }
    for (delivery, id) in received.iter().zip(&ids) {
        assert_eq!(delivery.header_str("id"), Some(id.as_str()), "in order");
        assert!(delivery.header_str("traceparent").is_some());
        assert!(delivery.headers().get("x-sent-at").is_some());
    }
}

#[tokio::test]
async fn tasks_sent_together_are_all_checked_before_any_is_sent() {
    let broker = Declaring::new(|caps| caps.max_payload = 1_000);
    let queue = Queue::declare(broker.clone(), "tasks")
        .await
        .expect("declare");
    let small = TaskMessage::new("add", vec![1.into()], serde_json::Map::new());
    let large = TaskMessage::new(
        "add",
        vec!["x".repeat(2_000).into()],
        serde_json::Map::new(),
    );
    let refused = send_tasks(&queue, &[small, large])
        .await
        .expect_err("the second is over the limit");
    assert_eq!(refused.kind(), ErrorKind::PayloadTooLarge);
    assert_eq!(broker.calls_to("publish"), 0, "nothing was sent");
}
