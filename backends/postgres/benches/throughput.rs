//! Throughput of the PostgreSQL backend beside a baseline that runs the very same SQL
//! statements (`broker_postgres::sql::Statements`, and `CeleryTables` for results) through
//! sqlx directly, with `LISTEN` for waiting. The groups are the shared harness's
//! (`broker_benches::harness`). Needs `BROKER_TEST_POSTGRES_URL`; its tables live in a fresh
//! schema, dropped at the end.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use broker_benches::{
    harness,
    raw::{RawClient, RawMessage, RawTask},
    target::BenchTarget,
};
use broker_core::{Broker, Headers, ResultStore, dead_letter_queue};
use broker_postgres::{
    PostgresBroker, PostgresConfig, PostgresResultStore,
    celery_tables::CeleryTables,
    sql::{Statements, channel},
};
use serde_json::{Value, json, value::RawValue};
use sqlx::{
    PgPool, Row,
    postgres::{PgListener, PgPoolOptions},
    types::Json,
};

const LEASE: Duration = Duration::from_secs(60);
const DEDUP_WINDOW: Duration = Duration::from_secs(300);

struct Postgres {
    url: String,
    schema: String,
}

impl Postgres {
    fn config(&self) -> PostgresConfig {
        PostgresConfig {
            schema: self.schema.clone(),
            result_schema: Some(self.schema.clone()),
            visibility_timeout: LEASE,
            dedup_window: DEDUP_WINDOW,
            ..PostgresConfig::new(self.url.clone())
        }
    }

    /// Creates the schema's tables as the broker and the result store do; the baseline uses
    /// the same tables.
    async fn open(url: String) -> Self {
        let schema = format!(
            "bpg_bench_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let target = Self { url, schema };
        PostgresBroker::connect(target.config())
            .await
            .expect("migrate");
        PostgresResultStore::connect(target.config())
            .await
            .expect("result tables");
        target
    }
}

#[async_trait]
impl BenchTarget for Postgres {
    type Raw = RawPostgres;

    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(
            PostgresBroker::connect(self.config())
                .await
                .expect("connect"),
        )
    }

    async fn result_store(&self) -> Option<Arc<dyn ResultStore>> {
        let store = PostgresResultStore::connect(self.config()).await;
        Some(Arc::new(store.expect("result store")))
    }

    async fn raw(&self) -> RawPostgres {
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect(&self.url)
            .await
            .expect("raw pool");
        let mut listener = PgListener::connect(&self.url).await.expect("listen");
        listener
            .listen(&channel(&self.schema))
            .await
            .expect("listen");
        RawPostgres {
            sql: Statements::new(&self.schema),
            results: CeleryTables::new(Some(&self.schema)),
            channel: channel(&self.schema),
            schema: self.schema.clone(),
            listener: tokio::sync::Mutex::new(listener),
            pool,
        }
    }

    async fn clean_up(&self) {
        let raw = self.raw().await;
        sqlx::query(&format!("DROP SCHEMA \"{}\" CASCADE", self.schema))
            .execute(&raw.pool)
            .await
            .expect("drop the benchmark schema");
    }
}

/// The hand-written client: a pool, and a `LISTEN` connection for waiting.
struct RawPostgres {
    sql: Statements,
    results: CeleryTables,
    channel: String,
    schema: String,
    listener: tokio::sync::Mutex<PgListener>,
    pool: PgPool,
}

/// A leased message, as the claim statement returns it.
struct Claimed {
    id: i64,
    token: i64,
    payload: Vec<u8>,
    headers: Value,
}

/// Claims up to `max` messages.
async fn raw_claim(raw: &RawPostgres, queue: &str, max: usize) -> Vec<Claimed> {
    sqlx::query(&raw.sql.claim)
        .bind(queue)
        .bind(max as i64)
        .bind(LEASE.as_secs_f64())
        .bind(dead_letter_queue(queue))
        .bind(5_i32)
        .bind("received 5 times without an ack")
        .bind(&raw.channel)
        .bind("x-dead-letter-reason")
        .fetch_all(&raw.pool)
        .await
        .expect("claim")
        .iter()
        // A row without an id is the statement's "nothing leased" report.
        .filter_map(|row| {
            let id: i64 = row.get::<Option<i64>, _>("id")?;
            let Json(headers): Json<Value> = row.get("headers");
            Some(Claimed {
                id,
                token: row.get("lease_token"),
                payload: row.get("payload"),
                headers,
            })
        })
        .collect()
}

async fn raw_ack(raw: &RawPostgres, queue: &str, claimed: &[(i64, i64)]) {
    let (ids, tokens): (Vec<i64>, Vec<i64>) = claimed.iter().copied().unzip();
    let done = sqlx::query(&raw.sql.ack)
        .bind(queue)
        .bind(ids)
        .bind(tokens)
        .execute(&raw.pool)
        .await
        .expect("ack")
        .rows_affected();
    assert_eq!(done as usize, claimed.len());
}

async fn raw_store(raw: &RawPostgres, task_id: &str, status: &str) {
    let date_done = (status == "SUCCESS").then(|| chrono::Utc::now().naive_utc());
    // The statement writes arrays of rows; the raw worker writes one row per task.
    sqlx::query(&raw.results.store)
        .bind([task_id])
        .bind([status])
        .bind([b"null".as_slice()])
        .bind([date_done])
        .bind([None::<String>])
        .execute(&raw.pool)
        .await
        .expect("store result");
}

#[async_trait]
impl RawClient for RawPostgres {
    type Received = Claimed;

    async fn publish(&self, queue: &str, messages: Vec<RawMessage>) {
        let count = messages.len();
        let mut payloads = Vec::with_capacity(count);
        let mut headers = Vec::with_capacity(count);
        let mut properties = Vec::with_capacity(count);
        for message in messages {
            let text = RawValue::from_string(message.headers).expect("JSON headers");
            headers.push(Json(Headers::from_json(text).expect("header object")));
            properties.push(Json(json!({"content_type": message.content_type})));
            payloads.push(message.payload);
        }
        let row = sqlx::query(&self.sql.publish)
            .bind(queue)
            .bind(payloads)
            .bind(headers)
            .bind(properties)
            .bind(vec![None::<String>; count])
            .bind(vec![None::<String>; count])
            .bind(vec![0.0_f64; count])
            .bind(DEDUP_WINDOW.as_secs_f64())
            .bind(&self.channel)
            .fetch_one(&self.pool)
            .await
            .expect("publish");
        assert!(row.get::<bool, _>("queue_exists"));
    }

    async fn receive(&self, queue: &str, max: usize, wait: Duration) -> Vec<Claimed> {
        let got = raw_claim(self, queue, max).await;
        if !got.is_empty() || wait.is_zero() {
            return got;
        }
        // Buffered notifications return at once, so none is missed between the claim and
        // this wait.
        let _ = tokio::time::timeout(wait, self.listener.lock().await.recv()).await;
        raw_claim(self, queue, max).await
    }

    async fn ack(&self, queue: &str, received: Vec<Claimed>) {
        let held: Vec<(i64, i64)> = received.iter().map(|c| (c.id, c.token)).collect();
        raw_ack(self, queue, &held).await;
    }

    fn task(&self, claimed: &Claimed) -> RawTask {
        let text = |name: &str| {
            claimed.headers[name]
                .as_str()
                .unwrap_or_else(|| panic!("no {name} header"))
                .to_owned()
        };
        RawTask {
            id: text("id"),
            name: text("task"),
            body: claimed.payload.clone(),
        }
    }

    async fn store_result(&self, task_id: &str, state: &str) {
        raw_store(self, task_id, state).await;
    }

    /// Empties `queue` and vacuums the table, so that every sample starts without the dead
    /// rows of the previous one; otherwise whichever side runs second would scan them.
    async fn clear(&self, queue: &str) {
        sqlx::query(&format!(
            "DELETE FROM \"{}\".messages WHERE queue = $1",
            self.schema
        ))
        .bind(queue)
        .execute(&self.pool)
        .await
        .expect("clear");
        sqlx::query(&format!("VACUUM \"{}\".messages", self.schema))
            .execute(&self.pool)
            .await
            .expect("vacuum");
    }
}

fn main() {
    harness::run_with_url("BROKER_TEST_POSTGRES_URL", Postgres::open);
}
