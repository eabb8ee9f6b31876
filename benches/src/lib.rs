//! Throughput benchmarks live in `benches/` (criterion) and in each backend crate's own
//! `benches/` folder, so that a backend's client library is built only for its own crate.
//! Every throughput group is named `<backend>/<operation>` and holds a `framework` and,
//! where a raw client exists, a `raw` function per batch size; the `bench-compare` binary
//! reads criterion's saved estimates of every backend into one table (see [`compare`]).

pub mod acks;
pub mod compare;
pub mod finished;
pub mod groups;
pub mod payload;
