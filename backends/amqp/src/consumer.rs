//! A consumer on one queue: its channel, the deliveries RabbitMQ pushed to it, and those
//! handed out and not yet settled.
//!
//! RabbitMQ counts every unacked delivery of the channel against its prefetch, the handed-out
//! ones included. Setting the prefetch to "handed out + room of the receiver" before each
//! receive makes RabbitMQ push only as many messages as the receiver has free slots, so no
//! message waits in this process while a free worker elsewhere could run it.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU16, Ordering},
    },
};

use broker_core::{Operation, Result};
use bytes::Bytes;
use futures::future::join_all;
use lapin::{
    BasicProperties, Channel,
    options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions},
    types::FieldTable,
};

use crate::{
    connect::Session,
    error::{from_lapin, queue_not_found},
    topology::short,
};

/// A delivery as received, kept until it is settled so that a nack can publish it again.
#[derive(Clone)]
pub(crate) struct Stored {
    pub(crate) payload: Bytes,
    pub(crate) table: FieldTable,
    pub(crate) properties: BasicProperties,
    /// The receive count reported with this delivery.
    pub(crate) receive_count: u32,
}

struct Held {
    stored: Stored,
    /// A nack is publishing its copy; the tag must not be acked by a `multiple` ack yet.
    settling: bool,
}

pub(crate) struct Consumer {
    pub(crate) channel: Channel,
    pub(crate) stream: tokio::sync::Mutex<lapin::Consumer>,
    held: Mutex<BTreeMap<u64, Held>>,
    prefetch: AtomicU16,
    /// The server cancelled the consumer (its queue was deleted) or its stream failed.
    ended: AtomicBool,
}

impl Consumer {
    /// Starts consuming `queue` with manual acks and room for `room` deliveries.
    pub(crate) async fn start(session: &Session, queue: &str, room: usize) -> Result<Self> {
        let operation = Operation::Receive;
        let name = short(queue).map_err(|_| queue_not_found(operation, queue))?;
        let channel = session
            .connection
            .create_channel()
            .await
            .map_err(|e| from_lapin(operation, &e))?;
        let prefetch = clamp(room);
        channel
            .basic_qos(prefetch, BasicQosOptions { global: true })
            .await
            .map_err(|e| from_lapin(operation, &e))?;
        let stream = channel
            .basic_consume(
                name,
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                let err = from_lapin(operation, &e);
                if err.kind() == broker_core::ErrorKind::QueueNotFound {
                    queue_not_found(operation, queue)
                } else {
                    err
                }
            })?;
        Ok(Self {
            channel,
            stream: tokio::sync::Mutex::new(stream),
            held: Mutex::default(),
            prefetch: AtomicU16::new(prefetch),
            ended: AtomicBool::new(false),
        })
    }

    /// Whether it still receives: its channel is open and its stream has not ended.
    pub(crate) fn usable(&self) -> bool {
        self.channel.status().connected() && !self.ended.load(Ordering::Acquire)
    }

    /// Records that the stream ended or failed: the next receive starts a new consumer.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }

    /// Raises the prefetch to the deliveries handed out plus `room` when it is lower. It is
    /// never lowered: a worker's held deliveries plus its free slots stay near its
    /// concurrency, and each change costs a round trip on the receive path.
    pub(crate) async fn fit_prefetch(&self, room: usize) -> Result<()> {
        let handed_out = self.held.lock().expect("held").len();
        let wanted = clamp(handed_out + room);
        if self.prefetch.fetch_max(wanted, Ordering::AcqRel) < wanted {
            self.channel
                .basic_qos(wanted, BasicQosOptions { global: true })
                .await
                .map_err(|e| from_lapin(Operation::Receive, &e))?;
        }
        Ok(())
    }

    /// Records a delivery handed out.
    pub(crate) fn hold(&self, tag: u64, stored: Stored) {
        self.held.lock().expect("held").insert(
            tag,
            Held {
                stored,
                settling: false,
            },
        );
    }

    /// Acks `tags` (each handed out and unsettled; the others are returned as lost): with one
    /// `multiple` ack when no other delivery of this channel below the highest is held or
    /// being settled, else one by one.
    ///
    /// The tags stay recorded, marked as settling, until their acks are sent: an ack of
    /// another receiver's batch that runs meanwhile sees them and does not cover them with a
    /// `multiple` ack, which would make the ack sent here one of an unknown delivery tag (a
    /// channel error).
    pub(crate) async fn ack(&self, tags: &[u64]) -> (Result<()>, Vec<u64>) {
        let (valid, lost, multiple) = {
            let mut held = self.held.lock().expect("held");
            let (valid, lost): (Vec<u64>, Vec<u64>) = tags
                .iter()
                .partition(|tag| held.get(tag).is_some_and(|h| !h.settling));
            for tag in &valid {
                if let Some(entry) = held.get_mut(tag) {
                    entry.settling = true;
                }
            }
            let highest = valid.iter().max().copied();
            let multiple = highest.filter(|max| {
                valid.len() > 1 && held.range(..*max).all(|(tag, _)| valid.contains(tag))
            });
            (valid, lost, multiple)
        };
        let result = match multiple {
            Some(max) => self.send_ack(max, true).await,
            None => join_all(valid.iter().map(|tag| self.send_ack(*tag, false)))
                .await
                .into_iter()
                .collect(),
        };
        let mut held = self.held.lock().expect("held");
        for tag in &valid {
            held.remove(tag);
        }
        (result, lost)
    }

    /// Marks `tag` as being settled by a nack and returns what was received, or `None` when
    /// it is not handed out (settled already, or from another channel).
    pub(crate) fn begin_settle(&self, tag: u64) -> Option<Stored> {
        let mut held = self.held.lock().expect("held");
        let entry = held.get_mut(&tag).filter(|h| !h.settling)?;
        entry.settling = true;
        Some(entry.stored.clone())
    }

    /// Ends a nack: acks the original once its copy is stored (`done`), or hands it back to
    /// the holder when the copy could not be published.
    pub(crate) async fn end_settle(&self, tag: u64, done: bool) -> Result<()> {
        if !done {
            if let Some(entry) = self.held.lock().expect("held").get_mut(&tag) {
                entry.settling = false;
            }
            return Ok(());
        }
        let result = self.send_ack(tag, false).await;
        self.held.lock().expect("held").remove(&tag);
        result
    }

    pub(crate) async fn send_ack(&self, tag: u64, multiple: bool) -> Result<()> {
        self.channel
            .basic_ack(tag, BasicAckOptions { multiple })
            .await
            .map_err(|e| from_lapin(Operation::Ack, &e))
    }
}

fn clamp(room: usize) -> u16 {
    u16::try_from(room.max(1)).unwrap_or(u16::MAX)
}
