//! Two workers at once: two independent SQS brokers, as two worker processes would hold, receive
//! from the same queue while a third publishes to it. What SQS promises, and the backend
//! declares, holds across both receivers:
//! - on either kind of queue every message is received and acked, and nothing is left behind;
//! - on a standard queue a message may come twice (counted, allowed: the emulator never
//!   duplicates, AWS may);
//! - on a FIFO queue no message of a group is handed out while an earlier one of that group is
//!   in flight, whichever receiver holds it, so each group is worked through in publish order.
//!
//! Needs `BROKER_TEST_SQS_URL`.

mod support;

use std::{collections::HashMap, sync::Arc, time::Duration};

use aws_sdk_sqs::{Client, types::QueueAttributeName};
use broker_core::{Broker, Delivery, Message, Queue};
use broker_sqs::{QueueKind, SqsBroker, SqsConfig};
use tokio::{sync::Mutex, task::JoinHandle, time::Instant};

/// Message groups (ordering keys); on a standard queue they only name the messages.
const GROUPS: usize = 5;
/// Messages published per group.
const PER_GROUP: usize = 30;
const TOTAL: usize = GROUPS * PER_GROUP;
/// How many one receive may take: small, so that neither receiver takes every group at once.
const RECEIVE_AT_MOST: usize = 4;
/// How long a receiver works on what it took before acking it.
const WORK: Duration = Duration::from_millis(15);
const WITHIN: Duration = Duration::from_secs(90);

/// The `seq`-th message of `group`, as its payload names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Tag {
    group: usize,
    seq: usize,
}

impl Tag {
    fn payload(&self) -> String {
        format!("g{}:{}", self.group, self.seq)
    }

    fn of(delivery: &Delivery) -> Self {
        let text = String::from_utf8_lossy(delivery.payload());
        let (group, seq) = text
            .strip_prefix('g')
            .and_then(|rest| rest.split_once(':'))
            .unwrap_or_else(|| panic!("a payload this test did not publish: {text}"));
        Self {
            group: group.parse().expect("a group number"),
            seq: seq.parse().expect("a sequence number"),
        }
    }
}

/// What both receivers got, and on FIFO who holds which group now.
#[derive(Debug, Default)]
struct Ledger {
    /// Deliveries of each message, duplicates included.
    deliveries: HashMap<Tag, usize>,
    /// Deliveries per receiver.
    per_receiver: [usize; 2],
    /// FIFO: per group, the receiver holding its messages in flight.
    holder: HashMap<usize, usize>,
    /// FIFO: per group, the sequence number of its first message not yet acked.
    next: HashMap<usize, usize>,
}

impl Ledger {
    fn distinct(&self) -> usize {
        self.deliveries.len()
    }

    fn duplicates(&self) -> usize {
        self.deliveries.values().map(|n| n - 1).sum()
    }

    /// Records a batch `receiver` took; on FIFO, checks that each group's messages in it follow
    /// the last acked one of the group, with no other of the group in flight.
    fn took(&mut self, receiver: usize, batch: &[Tag], fifo: bool) {
        self.per_receiver[receiver] += batch.len();
        for tag in batch {
            *self.deliveries.entry(tag.clone()).or_default() += 1;
        }
        if !fifo {
            return;
        }
        let mut taken: HashMap<usize, usize> = HashMap::new();
        for tag in batch {
            if let Some(other) = self.holder.get(&tag.group) {
                panic!(
                    "receiver {receiver} got {} while receiver {other} holds an earlier message of group {} in flight",
                    tag.payload(),
                    tag.group
                );
            }
            let expected = self.next.get(&tag.group).copied().unwrap_or(0)
                + taken.get(&tag.group).copied().unwrap_or(0);
            assert_eq!(
                tag.seq,
                expected,
                "receiver {receiver} got {} out of order: g{}:{expected} is the group's next",
                tag.payload(),
                tag.group
            );
            *taken.entry(tag.group).or_default() += 1;
        }
        for (group, count) in taken {
            self.holder.insert(group, receiver);
            *self.next.entry(group).or_default() += count;
        }
    }

    /// `receiver` acked every message it held.
    fn acked(&mut self, receiver: usize) {
        self.holder.retain(|_, holder| *holder != receiver);
    }
}

struct Setup {
    config: SqsConfig,
    raw: Client,
    name: String,
}

async fn setup(kind: QueueKind) -> Option<Setup> {
    let config = SqsConfig {
        queue_kind: kind,
        ..support::config()?
    };
    let raw = support::raw_client(&config).await;
    let name = match kind {
        QueueKind::Standard => support::fresh("two-receivers"),
        QueueKind::Fifo => format!("{}.fifo", support::fresh("two-receivers")),
    };
    Some(Setup { config, raw, name })
}

/// A broker of its own: its own SDK client and connections, as another process would have.
async fn connect(config: &SqsConfig) -> Arc<dyn Broker> {
    Arc::new(SqsBroker::connect(config.clone()).await.expect("connects"))
}

/// Receives, works and acks until every message was seen or time ran out. On FIFO the ledger
/// stays locked from the ack until it is recorded, so the other receiver never sees a group
/// released before the ledger does.
fn receiver(id: usize, queue: Queue, ledger: Arc<Mutex<Ledger>>, fifo: bool) -> JoinHandle<()> {
    tokio::spawn(async move {
        let deadline = Instant::now() + WITHIN;
        while ledger.lock().await.distinct() < TOTAL && Instant::now() < deadline {
            let batch = queue
                .receive(RECEIVE_AT_MOST, Duration::from_secs(1))
                .await
                .expect("receive");
            if batch.is_empty() {
                continue;
            }
            let tags: Vec<Tag> = batch.iter().map(Tag::of).collect();
            ledger.lock().await.took(id, &tags, fifo);
            tokio::time::sleep(WORK).await;
            let mut ledger = ledger.lock().await;
            queue.ack_all(batch).await.expect("ack");
            ledger.acked(id);
        }
    })
}

/// Publishes every group's messages in order, interleaving the groups, ten at a time.
async fn publish_all(queue: &Queue, fifo: bool) {
    let mut messages = Vec::with_capacity(TOTAL);
    for seq in 0..PER_GROUP {
        for group in 0..GROUPS {
            let tag = Tag { group, seq };
            let message = Message::new(tag.payload());
            messages.push(if fifo {
                message.ordering_key(format!("g{group}"))
            } else {
                message
            });
        }
    }
    for batch in messages.chunks(10) {
        queue.publish_batch(batch.to_vec()).await.expect("publish");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs two receivers while a third broker publishes, and returns what they got and the
/// publisher's queue.
async fn two_receivers_while_publishing(setup: &Setup) -> (Ledger, Queue) {
    let fifo = setup.config.queue_kind == QueueKind::Fifo;
    let publisher = Queue::declare(connect(&setup.config).await, setup.name.as_str())
        .await
        .expect("declare");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut receivers = Vec::new();
    for id in 0..2 {
        let queue = Queue::new(connect(&setup.config).await, setup.name.as_str());
        receivers.push(receiver(id, queue, ledger.clone(), fifo));
    }
    publish_all(&publisher, fifo).await;
    for receiver in receivers {
        receiver.await.expect("a receiver failed");
    }
    let ledger = Arc::try_unwrap(ledger)
        .expect("the receivers are done")
        .into_inner();
    (ledger, publisher)
}

/// Counts of what the queue still has, as SQS reports them (approximate on AWS, so asked
/// again for a while until they read zero).
async fn left_in(raw: &Client, name: &str) -> Vec<(QueueAttributeName, String)> {
    let url = raw
        .get_queue_url()
        .queue_name(name)
        .send()
        .await
        .expect("the queue's URL")
        .queue_url
        .expect("a URL");
    let names = [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        QueueAttributeName::ApproximateNumberOfMessagesDelayed,
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = raw
            .get_queue_attributes()
            .queue_url(&url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .expect("attributes");
        let left: Vec<_> = answer
            .attributes()
            .expect("attributes")
            .iter()
            .filter(|(_, count)| count.as_str() != "0")
            .map(|(name, count)| (name.clone(), count.clone()))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn assert_every_message_was_received(ledger: &Ledger) {
    let missing: Vec<String> = (0..PER_GROUP)
        .flat_map(|seq| (0..GROUPS).map(move |group| Tag { group, seq }))
        .filter(|tag| !ledger.deliveries.contains_key(tag))
        .map(|tag| tag.payload())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {TOTAL} messages never arrived: {missing:?}",
        missing.len()
    );
    assert!(
        ledger.per_receiver.iter().all(|&n| n > 0),
        "one receiver got everything ({:?}): the test did not run two receivers at once",
        ledger.per_receiver
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receivers_on_a_standard_queue_get_every_message_and_leave_none_behind() {
    let Some(setup) = setup(QueueKind::Standard).await else {
        return;
    };
    let (ledger, queue) = two_receivers_while_publishing(&setup).await;

    assert_every_message_was_received(&ledger);
    // SQS may hand a standard queue's message out twice: allowed, and shown.
    println!(
        "received {} deliveries of {TOTAL} messages, {} duplicates, per receiver {:?}",
        ledger.deliveries.values().sum::<usize>(),
        ledger.duplicates(),
        ledger.per_receiver
    );
    let left = left_in(&setup.raw, &setup.name).await;
    assert!(left.is_empty(), "acked messages are still queued: {left:?}");
    queue
        .broker()
        .delete_queue(&setup.name)
        .await
        .expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receivers_on_a_fifo_queue_never_hold_one_group_at_once_and_keep_its_order() {
    let Some(setup) = setup(QueueKind::Fifo).await else {
        return;
    };
    // Each batch a receiver takes is checked against the group's state as it arrives.
    let (ledger, queue) = two_receivers_while_publishing(&setup).await;

    assert_every_message_was_received(&ledger);
    println!("per receiver {:?}", ledger.per_receiver);
    assert_eq!(
        ledger.duplicates(),
        0,
        "a FIFO queue handed a message out twice"
    );
    let left = left_in(&setup.raw, &setup.name).await;
    assert!(left.is_empty(), "acked messages are still queued: {left:?}");
    queue
        .broker()
        .delete_queue(&setup.name)
        .await
        .expect("delete");
}
