//! One throughput benchmark for every backend, and what it is built from.
//!
//! A backend wires itself in with a [`target::BenchTarget`] (how the framework opens its
//! broker and result store) and a [`raw::RawClient`] (the same broker calls made directly
//! with its client library), in its own crate's `benches/throughput.rs`, so that a backend's
//! client library is built only for its own crate. [`harness::run`] then measures the same
//! groups on every backend; see [`harness`] for what each measures. The `bench-compare`
//! binary reads criterion's saved estimates of every backend into one table (see
//! [`compare`]).

pub mod acks;
pub mod compare;
pub mod finished;
pub mod harness;
pub mod payload;
pub mod raw;
pub mod raw_worker;
pub mod target;
