//! Interchangeable message brokers with their delivery guarantees made explicit.
//!
//! A backend implements the narrow [`Broker`] driver trait and declares what it keeps in its
//! [`Capabilities`]; applications hold a [`Queue`] (publishing, receiving, retries, limits,
//! written once) and receive [`Delivery`] values that they ack or nack. Tasks travel in
//! Celery's message protocol v2 ([`celery`]) and are run by the [`worker`] runtime, which
//! writes their states to a [`ResultStore`]. [`backends`] turns `CELERY_BROKER_URL` and
//! `CELERY_RESULT_BACKEND` into connected backends, each backend reading its own URL with the
//! shared parts of [`urls`].

pub mod backends;
mod broker;
mod capabilities;
pub mod celery;
mod dead_letter;
mod delivery;
mod error;
mod headers;
pub mod instruments;
mod limits;
mod message;
mod queue;
mod redrive;
mod result;
mod retry;
pub mod tasks;
pub mod trace_context;
pub mod urls;
mod wait;
pub mod worker;

pub use broker::{AckToken, Broker, Capacity, NackAction, QueueCounts, Received};
pub use capabilities::{
    Capabilities, Counting, DeadLetter, Deduplication, Delay, DeliveryGuarantee, LeaseExtension,
    Ordering, Persistence, Redelivery, Requirement, StaleTokens,
};
pub use dead_letter::{
    DEAD_LETTER_REASON_HEADER, DEAD_LETTER_SUFFIX, dead_letter_queue, is_dead_letter_queue,
};
pub use delivery::{Delivery, SettleError};
pub use error::{Error, ErrorKind, Operation, Result};
pub use headers::Headers;
pub use message::{Message, Properties};
pub use queue::Queue;
pub use redrive::{DeadLetterSummary, DeadLetters};
pub use result::{ResultStore, ResultStoreExt, TaskResult, TaskState};
pub use retry::RetryPolicy;
pub use wait::{Look, wait_for_work};
