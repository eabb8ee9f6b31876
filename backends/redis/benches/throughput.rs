//! Throughput of the Redis backend beside a baseline that drives the `redis` crate directly
//! with the same commands: the same Lua scripts, kombu's envelope written by hand, the same
//! result writes (`SETEX` + `PUBLISH` in `MULTI`), and a wake-up subscription for waiting.
//! The groups are the shared harness's (`broker_benches::harness`). Needs
//! `BROKER_TEST_REDIS_URL`; every key it writes is under a fresh prefix, deleted at the end.

use std::{
    borrow::Cow,
    pin::Pin,
    sync::{Arc, LazyLock},
    time::Duration,
};

use async_trait::async_trait;
use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use broker_benches::{
    harness,
    raw::{RawClient, RawMessage, RawTask},
    target::BenchTarget,
};
use broker_core::{Broker, DEAD_LETTER_SUFFIX, ResultStore};
use broker_redis::{RedisBroker, RedisConfig, RedisResultStore, layout::Keys, scripts};
use futures::{Stream, StreamExt as _};
use redis::{IntoConnectionInfo, Script, aio::MultiplexedConnection, io::tcp::TcpSettings};
use serde::Deserialize;
use serde_json::json;

const LEASE_MS: u64 = 60_000;

static PUBLISH: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::PUBLISH));
static RECEIVE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::RECEIVE));
static ACK: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::ACK));

/// What a hand-written client sends to the publish script for one message: kombu's envelope
/// after its counters, with a fresh delivery tag, around a body it encoded once.
fn raw_tail(queue: &str, body_base64: &str, headers: &str, content_type: &str) -> String {
    format!(
        r#""properties":{{"delivery_tag":"{}","body_encoding":"base64","delivery_info":{{"exchange":"{queue}","routing_key":"{queue}"}},"priority":0,"delivery_mode":2}},"headers":{headers},"content-type":"{content_type}","content-encoding":"utf-8","body":"{body_base64}"}}"#,
        uuid::Uuid::new_v4()
    )
}

async fn raw_publish(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    queue: &str,
    tails: impl IntoIterator<Item = String>,
) {
    let mut call = PUBLISH.prepare_invoke();
    call.key(keys.binding(queue))
        .key(keys.queue(queue))
        .key(keys.delayed(queue))
        .key(keys.sequence())
        .arg(keys.prefix())
        .arg(queue)
        .arg(300_000);
    for tail in tails {
        call.arg(tail).arg(0).arg("");
    }
    let _: i64 = call.invoke_async(conn).await.expect("publish script");
}

/// Receives up to `max` with the receive script: (tag, receive count) pairs and envelopes.
async fn raw_receive(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    queue: &str,
    max: usize,
) -> Vec<(String, Vec<u8>)> {
    let reply: Vec<redis::Value> = RECEIVE
        .key(keys.binding(queue))
        .key(keys.queue(queue))
        .key(keys.unacked())
        .key(keys.unacked_index())
        .key(keys.delayed(queue))
        .key(keys.sequence())
        .arg(keys.prefix())
        .arg(queue)
        .arg(max)
        .arg(LEASE_MS)
        .arg(5)
        .arg("\"exhausted\"")
        .arg(DEAD_LETTER_SUFFIX)
        .invoke_async(conn)
        .await
        .expect("receive script");
    reply[2..]
        .chunks(2)
        .map(|pair| match pair {
            [
                redis::Value::BulkString(tag),
                redis::Value::BulkString(entry),
            ] => {
                // kombu's unacked entry: `[envelope,"<queue>","<queue>"]`
                let env = &entry[1..entry.len() - 2 * queue.len() - 7];
                (String::from_utf8(tag.clone()).unwrap(), env.to_vec())
            }
            other => panic!("unexpected reply {other:?}"),
        })
        .collect()
}

async fn raw_ack(conn: &mut MultiplexedConnection, keys: &Keys, tags: &[String]) {
    let mut call = ACK.prepare_invoke();
    call.key(keys.unacked())
        .key(keys.unacked_index())
        .arg(LEASE_MS);
    for tag in tags {
        call.arg(tag).arg(1);
    }
    let lost: i64 = call.invoke_async(conn).await.expect("ack script");
    assert_eq!(lost, 0);
}

struct Redis {
    url: String,
    prefix: String,
    keys: Keys,
}

impl Redis {
    fn config(&self) -> RedisConfig {
        RedisConfig {
            key_prefix: self.prefix.clone(),
            visibility_timeout: Duration::from_millis(LEASE_MS),
            ..RedisConfig::new(self.url.clone())
        }
    }

    /// A plain client with `TCP_NODELAY`, as the backend's own connections have.
    fn client(&self) -> redis::Client {
        let info = self
            .url
            .as_str()
            .into_connection_info()
            .expect("BROKER_TEST_REDIS_URL parses")
            .set_tcp_settings(TcpSettings::default().set_nodelay(true));
        redis::Client::open(info).expect("a client")
    }
}

#[async_trait]
impl BenchTarget for Redis {
    type Raw = RawRedis;

    fn name(&self) -> &'static str {
        "redis"
    }

    async fn broker(&self) -> Arc<dyn Broker> {
        Arc::new(RedisBroker::connect(self.config()).await.expect("connect"))
    }

    async fn result_store(&self) -> Option<Arc<dyn ResultStore>> {
        let store = RedisResultStore::connect(self.config()).await;
        Some(Arc::new(store.expect("result store")))
    }

    async fn raw(&self) -> RawRedis {
        let client = self.client();
        let connect = || async {
            client
                .get_multiplexed_async_connection()
                .await
                .expect("raw connection")
        };
        let mut wake = client.get_async_pubsub().await.expect("subscriber");
        wake.subscribe(self.keys.wake_channel())
            .await
            .expect("subscribe");
        RawRedis {
            conn: connect().await,
            results: connect().await,
            wake: tokio::sync::Mutex::new(Box::pin(wake.into_on_message())),
            keys: self.keys.clone(),
        }
    }

    async fn clean_up(&self) {
        let mut conn = self.raw().await.conn;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        for chunk in keys.chunks(500) {
            let _: redis::RedisResult<()> =
                redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
        }
    }
}

type WakeUps = Pin<Box<dyn Stream<Item = redis::Msg> + Send>>;

/// The hand-written client: one connection for the queues, one for results, and a
/// subscription to the wake-up channel.
struct RawRedis {
    conn: MultiplexedConnection,
    results: MultiplexedConnection,
    wake: tokio::sync::Mutex<WakeUps>,
    keys: Keys,
}

/// What a hand-written worker reads from kombu's envelope to run a Celery task: the task's
/// name and id from the headers, and the base64 body.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow)]
    headers: RawHeaders<'a>,
    #[serde(borrow)]
    body: Cow<'a, str>,
}

#[derive(Deserialize)]
struct RawHeaders<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    task: Cow<'a, str>,
}

#[async_trait]
impl RawClient for RawRedis {
    /// The delivery tag and kombu's envelope.
    type Received = (String, Vec<u8>);

    async fn publish(&self, queue: &str, messages: Vec<RawMessage>) {
        let tails = messages.iter().map(|message| {
            raw_tail(
                queue,
                &BASE64.encode(&message.payload),
                &message.headers,
                message.content_type,
            )
        });
        raw_publish(&mut self.conn.clone(), &self.keys, queue, tails).await;
    }

    async fn receive(&self, queue: &str, max: usize, wait: Duration) -> Vec<(String, Vec<u8>)> {
        let mut conn = self.conn.clone();
        let got = raw_receive(&mut conn, &self.keys, queue, max).await;
        if !got.is_empty() || wait.is_zero() {
            return got;
        }
        // The publish script signals the wake-up channel; one that came before this wait
        // is still buffered, so none is missed.
        let _ = tokio::time::timeout(wait, self.wake.lock().await.next()).await;
        raw_receive(&mut conn, &self.keys, queue, max).await
    }

    async fn ack(&self, _queue: &str, received: Vec<(String, Vec<u8>)>) {
        let tags: Vec<String> = received.into_iter().map(|(tag, _)| tag).collect();
        raw_ack(&mut self.conn.clone(), &self.keys, &tags).await;
    }

    fn task(&self, (_, envelope): &(String, Vec<u8>)) -> RawTask {
        let envelope: RawEnvelope<'_> = serde_json::from_slice(envelope).expect("an envelope");
        RawTask {
            id: envelope.headers.id.into_owned(),
            name: envelope.headers.task.into_owned(),
            body: BASE64
                .decode(envelope.body.as_bytes())
                .expect("a base64 body"),
        }
    }

    async fn store_result(&self, task_id: &str, state: &str) {
        let key = self.keys.result(task_id);
        let text = json!({"status": state, "result": null, "traceback": null, "children": [], "date_done": null, "task_id": task_id}).to_string();
        let _: () = redis::pipe()
            .atomic()
            .set_ex(&key, &text, 3600)
            .ignore()
            .publish(&key, &text)
            .ignore()
            .query_async(&mut self.results.clone())
            .await
            .expect("store a result");
    }

    async fn clear(&self, queue: &str) {
        let _: () = redis::cmd("DEL")
            .arg(self.keys.queue(queue))
            .arg(self.keys.unacked())
            .arg(self.keys.unacked_index())
            .query_async(&mut self.conn.clone())
            .await
            .expect("clear");
    }
}

fn main() {
    harness::run_with_url("BROKER_TEST_REDIS_URL", |url| async move {
        let prefix = format!("bench:{}:", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Redis {
            keys: Keys::new(prefix.clone()),
            url,
            prefix,
        }
    });
}
