//! Test support: private RabbitMQ nodes (plain or TLS) that tests may restart or stop, and the
//! certificates a TLS node presents.

#![allow(dead_code, unreachable_pub)]

pub mod certificates;
pub mod private_node;
