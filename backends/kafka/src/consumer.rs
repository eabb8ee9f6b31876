//! One queue's consumer: a member of the queue's consumer group, the partitions the group gave
//! it, and the commits that follow the contiguous watermark (see [`partitions`](crate::partitions)).

use std::{
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use broker_core::{AckToken, Capacity, Error, ErrorKind, Operation, Result};
use futures::FutureExt as _;
use rdkafka::{
    ClientContext, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer},
    error::{KafkaError, KafkaResult, RDKafkaErrorCode as Code},
};
use tokio::time::Instant;

use crate::{
    BACKEND,
    config::KafkaConfig,
    error::{bad_token, from_kafka},
    partitions::{Commit, Partitions, Settled, Taken},
    record::{Record, now_ms},
};

/// How long a commit or an offset fetch may take.
const ROUND_TRIP: Duration = Duration::from_secs(10);

/// Keeps [`Partitions`] in step with the group's rebalances.
struct Rebalances {
    topic: String,
    partitions: Arc<Mutex<Partitions>>,
}

impl ClientContext for Rebalances {}

impl Rebalances {
    /// This topic's partitions in `list`. (rdkafka 0.36 reads an empty list's null element
    /// pointer as a slice, which is undefined behaviour: an empty list is not read.)
    fn partitions_in(&self, list: &TopicPartitionList) -> Vec<i32> {
        if list.count() == 0 {
            return Vec::new();
        }
        list.elements_for_topic(&self.topic)
            .iter()
            .map(|element| element.partition())
            .collect()
    }
}

impl ConsumerContext for Rebalances {
    fn pre_rebalance(&self, rebalance: &Rebalance<'_>) {
        let mut partitions = lock(&self.partitions);
        match rebalance {
            Rebalance::Revoke(list) => {
                for partition in self.partitions_in(list) {
                    partitions.revoke(partition);
                }
            }
            Rebalance::Error(_) => partitions.revoke_all(),
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let mut partitions = lock(&self.partitions);
            for partition in self.partitions_in(list) {
                partitions.assign(partition);
            }
        }
    }
}

fn lock(partitions: &Mutex<Partitions>) -> MutexGuard<'_, Partitions> {
    partitions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A delivery's place: partition, offset and the epoch of the assignment it was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) epoch: u64,
}

impl Token {
    pub(crate) fn of(taken: &Taken) -> AckToken {
        AckToken::new(format!(
            "{}:{}:{}",
            taken.partition, taken.offset, taken.epoch
        ))
    }

    pub(crate) fn parse(operation: Operation, token: &AckToken) -> Result<Self> {
        let mut parts = token.as_str().split(':');
        let mut next = || parts.next().and_then(|p| p.parse::<i64>().ok());
        match (next(), next(), next()) {
            (Some(partition), Some(offset), Some(epoch)) => Ok(Self {
                partition: i32::try_from(partition)
                    .map_err(|_| bad_token(operation, token.as_str()))?,
                offset,
                epoch: u64::try_from(epoch).map_err(|_| bad_token(operation, token.as_str()))?,
            }),
            _ => Err(bad_token(operation, token.as_str())),
        }
    }
}

/// The consumer of one queue in one broker connection.
pub(crate) struct QueueConsumer {
    topic: String,
    consumer: Arc<StreamConsumer<Rebalances>>,
    /// A client of the group `<group>.handed`, which no consumer joins: its committed offsets
    /// are the handed-out marks (see [`partitions`](crate::partitions)).
    marks: Arc<BaseConsumer>,
    partitions: Arc<Mutex<Partitions>>,
    /// One receive at a time reads the partitions, so each partition is handed out in order.
    receiving: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for QueueConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueConsumer")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl QueueConsumer {
    /// Joins `topic`'s consumer group.
    pub(crate) fn subscribe(config: &KafkaConfig, topic: &str) -> Result<Self> {
        let partitions = Arc::new(Mutex::new(Partitions::default()));
        let context = Rebalances {
            topic: topic.to_owned(),
            partitions: partitions.clone(),
        };
        let consumer: StreamConsumer<Rebalances> = config
            .consumer(topic)
            .create_with_context(context)
            .map_err(|e| from_kafka(Operation::Receive, &e))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| from_kafka(Operation::Receive, &e))?;
        let marks: BaseConsumer = config
            .marks(topic)
            .create()
            .map_err(|e| from_kafka(Operation::Receive, &e))?;
        Ok(Self {
            topic: topic.to_owned(),
            consumer: Arc::new(consumer),
            marks: Arc::new(marks),
            partitions,
            receiving: tokio::sync::Mutex::new(()),
        })
    }

    /// Hands out up to `capacity` records, waiting up to `wait` for the first. Records of one
    /// partition leave in offset order; a delayed record waits (in memory) until it is due.
    /// Before they are returned, the group's handed-out mark is committed, so that whoever
    /// reads them again after a crash counts them as redelivered.
    pub(crate) async fn receive(
        &self,
        capacity: &Capacity<'_>,
        wait: Duration,
    ) -> Result<Vec<Taken>> {
        let _one_at_a_time = self.receiving.lock().await;
        let deadline = Instant::now() + wait;
        let mut taken: Vec<Taken> = Vec::new();
        loop {
            let room = capacity.now().saturating_sub(taken.len());
            if room == 0 {
                break;
            }
            self.resolve().await;
            let (due, next_due) = {
                let mut partitions = lock(&self.partitions);
                let due = partitions.take_due(now_ms(), room);
                (due, partitions.next_due(now_ms()))
            };
            let took = !due.is_empty();
            taken.extend(due);
            if took {
                continue;
            }
            let mut limit = if taken.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            if let Some(ms) = next_due {
                limit = limit.min(Duration::from_millis(ms));
            }
            // Without time to wait, only what the client holds already: no timer.
            let next = if limit.is_zero() {
                self.consumer.recv().now_or_never().ok_or(())
            } else {
                tokio::time::timeout(limit, self.consumer.recv())
                    .await
                    .map_err(|_elapsed| ())
            };
            match next {
                Ok(Ok(message)) => {
                    let read = self.record_of(&message);
                    drop(message);
                    self.keep(read).await;
                    // Then every record the client holds already, up to the room left,
                    // before they are looked through once.
                    for _ in 1..room {
                        let Some(Ok(message)) = self.consumer.recv().now_or_never() else {
                            break;
                        };
                        let read = self.record_of(&message);
                        drop(message);
                        self.keep(read).await;
                    }
                }
                Ok(Err(e)) if taken.is_empty() => return Err(from_kafka(Operation::Receive, &e)),
                Ok(Err(e)) => {
                    tracing::debug!(topic = %self.topic, error = %e, "receive stopped early");
                    break;
                }
                Err(()) if taken.is_empty() && Instant::now() < deadline => {}
                Err(()) => break,
            }
        }
        if !taken.is_empty() {
            if let Err(e) = self.mark().await {
                tracing::warn!(topic = %self.topic, error = %e, "the handed-out mark was not recorded; a redelivery after a crash may count one receive too few");
            }
        }
        Ok(taken)
    }

    /// The partition, offset and record of a message read off the wire.
    fn record_of(&self, message: &impl rdkafka::Message) -> (i32, i64, Record) {
        let (partition, offset) = (message.partition(), message.offset());
        let record = Record::read(message, || format!("{}/{partition}/{offset}", self.topic));
        (partition, offset, record)
    }

    /// Keeps a record read until it is handed out and settled.
    async fn keep(&self, (partition, offset, record): (i32, i64, Record)) {
        // Its partition may be newly assigned: where the group stands on it is read first.
        self.resolve().await;
        lock(&self.partitions).read(partition, offset, record);
    }

    /// Reads where the group stands on partitions assigned since the last call: the committed
    /// offset and the handed-out mark. When that read fails, the partitions count as never
    /// handed out (a redelivery may count one receive too few).
    async fn resolve(&self) {
        let unresolved = lock(&self.partitions).unresolved();
        if unresolved.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::with_capacity(unresolved.len());
        for (partition, _) in &unresolved {
            list.add_partition(&self.topic, *partition);
        }
        let consumer = self.consumer.clone();
        let ask = list.clone();
        let committed = blocking(move || consumer.committed_offsets(ask, ROUND_TRIP)).await;
        let marks = self.marks.clone();
        let marked = blocking(move || marks.committed_offsets(list, ROUND_TRIP)).await;
        let offset_of = |found: &KafkaResult<TopicPartitionList>, partition| {
            let found = found
                .as_ref()
                .ok()?
                .find_partition(&self.topic, partition)?;
            match found.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            }
        };
        for found in [&committed, &marked] {
            if let Err(e) = found {
                tracing::warn!(topic = %self.topic, error = %e, "cannot read committed offsets");
            }
        }
        let mut partitions = lock(&self.partitions);
        for (partition, epoch) in unresolved {
            let handed = offset_of(&marked, partition).unwrap_or(0);
            partitions.resolve(partition, epoch, offset_of(&committed, partition), handed);
        }
    }

    /// The record a token names and its receive count, while this consumer holds it.
    pub(crate) fn held(&self, token: Token) -> Option<(Arc<Record>, u32)> {
        lock(&self.partitions).held(token.partition, token.offset, token.epoch)
    }

    /// Settles `tokens` and commits what that lets the watermark pass.
    ///
    /// # Errors
    /// `LeaseLost` when a token's partition went to another consumer since (the others are
    /// settled); the commit's error when the broker refuses it for another reason than a
    /// rebalance.
    pub(crate) async fn settle(&self, operation: Operation, tokens: &[Token]) -> Result<()> {
        let stale = {
            let mut partitions = lock(&self.partitions);
            tokens
                .iter()
                .filter(|t| partitions.settle(t.partition, t.offset, t.epoch) == Settled::Stale)
                .count()
        };
        self.commit(operation).await?;
        if stale > 0 {
            return Err(Error::new(
                ErrorKind::LeaseLost,
                BACKEND,
                operation,
                format!(
                    "{stale} of {} deliveries belong to partitions of `{}` that went to another consumer, which delivers them again",
                    tokens.len(),
                    self.topic
                ),
            ));
        }
        Ok(())
    }

    /// Commits every partition whose watermark moved. A commit refused because the group is
    /// rebalancing is dropped: the partition's next owner reads again from the last commit
    /// (at least once).
    async fn commit(&self, operation: Operation) -> Result<()> {
        let commits = lock(&self.partitions).commits();
        if commits.is_empty() {
            return Ok(());
        }
        let list = self.list(operation, &commits)?;
        let consumer = self.consumer.clone();
        match blocking(move || consumer.commit(&list, CommitMode::Sync)).await {
            Ok(()) => {
                lock(&self.partitions).committed(&commits);
                Ok(())
            }
            Err(e) if is_rebalance(&e) => {
                tracing::debug!(topic = %self.topic, error = %e, "commit refused during a rebalance");
                Ok(())
            }
            Err(e) => Err(from_kafka(operation, &e)),
        }
    }

    /// Records the handed-out mark of every partition that handed out records past it.
    async fn mark(&self) -> Result<()> {
        let marks = lock(&self.partitions).marks();
        if marks.is_empty() {
            return Ok(());
        }
        let list = self.list(Operation::Receive, &marks)?;
        let client = self.marks.clone();
        blocking(move || client.commit(&list, CommitMode::Sync))
            .await
            .map_err(|e| from_kafka(Operation::Receive, &e))?;
        lock(&self.partitions).marked(&marks);
        Ok(())
    }

    fn list(&self, operation: Operation, commits: &[Commit]) -> Result<TopicPartitionList> {
        let mut list = TopicPartitionList::with_capacity(commits.len());
        for commit in commits {
            list.add_partition_offset(&self.topic, commit.partition, Offset::Offset(commit.offset))
                .map_err(|e| from_kafka(operation, &e))?;
        }
        Ok(list)
    }
}

/// Runs a blocking librdkafka call off the async threads. A call that cannot run (the
/// runtime is shutting down) fails as the client's own shutdown would.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> KafkaResult<T> + Send + 'static,
) -> KafkaResult<T> {
    tokio::task::spawn_blocking(call)
        .await
        .unwrap_or(Err(KafkaError::Canceled))
}

/// Whether a commit failed because the group is rebalancing.
fn is_rebalance(err: &KafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(
            Code::RebalanceInProgress
                | Code::IllegalGeneration
                | Code::UnknownMemberId
                | Code::AssignmentLost
                | Code::State
        )
    )
}
