//! The Lua scripts behind every broker operation, public so that a benchmark or a client in
//! another language can run exactly the same commands. Each is the shared helpers followed by
//! the operation; the comment at the top of each operation lists its KEYS and ARGV.

use std::sync::LazyLock;

use redis::Script;

macro_rules! script {
    ($file:literal) => {
        concat!(include_str!("lua/common.lua"), include_str!($file))
    };
}

/// Publishes a batch (LPUSH, or the delayed set; deduplication by id).
pub const PUBLISH: &str = script!("lua/publish.lua");
/// Receives: moves due delayed messages, restores expired leases, takes and leases a batch.
pub const RECEIVE: &str = script!("lua/receive.lua");
/// Acks a batch of deliveries whose leases are current.
pub const ACK: &str = script!("lua/ack.lua");
/// Nacks one delivery: back to its place, after a delay, or to the dead-letter queue.
pub const NACK: &str = script!("lua/nack.lua");
/// Extends one delivery's lease.
pub const EXTEND: &str = script!("lua/extend.lua");
/// Counts a queue's ready, leased and delayed messages.
pub const COUNT: &str = include_str!("lua/count.lua");

pub(crate) struct Scripts {
    pub(crate) publish: Script,
    pub(crate) receive: Script,
    pub(crate) ack: Script,
    pub(crate) nack: Script,
    pub(crate) extend: Script,
    pub(crate) count: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    publish: Script::new(PUBLISH),
    receive: Script::new(RECEIVE),
    ack: Script::new(ACK),
    nack: Script::new(NACK),
    extend: Script::new(EXTEND),
    count: Script::new(COUNT),
});
