//! Times one message of the largest accepted payload (16 MiB) through the PostgreSQL broker:
//! publish, receive, ack; five runs unless a count is given.
//!
//! ```text
//! BROKER_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run -p broker-postgres --example largest_payload_postgres
//! ```
//! Works in a fresh schema, dropped at the end.

use std::{sync::Arc, time::Duration};

use broker_benches::payload::{runs, time_largest_payload};
use broker_core::{Broker, Queue};
use broker_postgres::{PostgresBroker, PostgresConfig};
use sqlx::{Connection, PgConnection};

#[tokio::main]
async fn main() {
    let url = std::env::var("BROKER_TEST_POSTGRES_URL").expect("set BROKER_TEST_POSTGRES_URL");
    let schema = format!(
        "largest_payload_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let config = PostgresConfig {
        schema: schema.clone(),
        visibility_timeout: Duration::from_secs(300),
        ..PostgresConfig::new(url.clone())
    };
    let broker: Arc<dyn Broker> = Arc::new(PostgresBroker::connect(config).await.expect("connect"));
    let queue = Queue::declare(broker.clone(), "largest-payload")
        .await
        .expect("declare");
    let times = time_largest_payload(&queue, runs()).await;
    broker.close().await.expect("close");
    let mut conn = PgConnection::connect(&url).await.expect("connect to drop");
    sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .expect("drop the schema");
    println!("postgres: {times}");
}
