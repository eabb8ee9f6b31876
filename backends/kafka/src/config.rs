//! Settings of the Kafka broker, and the librdkafka configuration they become.

use std::{fmt, time::Duration};

use broker_core::urls::{HostPort, Secret};
use rdkafka::ClientConfig;

/// The placeholder in [`KafkaConfig::group`] that stands for the queue's name.
pub const QUEUE_PLACEHOLDER: &str = "{queue}";

/// How the client talks to the brokers (librdkafka's `security.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No TLS, no SASL.
    Plaintext,
    /// TLS, no SASL.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// librdkafka's name for it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }
}

/// Settings of a [`KafkaBroker`](crate::KafkaBroker).
///
/// Every consumer of a queue must use the same `group` (that is what makes them share its
/// partitions) and the same `max_receives`. `Debug` never prints the password.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// The bootstrap brokers, in order. Default `127.0.0.1:9092`.
    pub bootstrap: Vec<HostPort>,
    /// The consumer group of a queue, with [`QUEUE_PLACEHOLDER`] replaced by the queue's name.
    /// Default `{queue}-consumer-group`, the group kombu's `confluentkafka` transport uses, so
    /// each queue has its own group and a topic's partitions are shared by its consumers.
    pub group: String,
    /// Partitions of a topic created by `declare_queue`: how many consumers of one queue can
    /// work at once, and how many keys keep their own order side by side. Default 4.
    pub partitions: i32,
    /// Replicas of a topic created by `declare_queue`. Default 1 (a single broker); use 3 on a
    /// production cluster.
    pub replication: i32,
    /// The client id the brokers see in their logs and quotas. Default `switchyard`.
    pub client_id: String,
    /// Receives without an ack after which a message goes to `<queue>.dlq`. Default 5.
    pub max_receives: u32,
    /// The longest delay accepted for publishing and for nack. A delayed message is held in
    /// its consumer's memory until due, and holds its partition's commit point back while it
    /// waits. Default 15 minutes.
    pub max_delay: Duration,
    /// How long the group waits for a silent consumer before its partitions (and the messages
    /// it held) go to the others: librdkafka's `session.timeout.ms`. Default 6 s, the
    /// smallest a Kafka broker accepts by default.
    pub session_timeout: Duration,
    /// `security.protocol`. Default plaintext, or `sasl_plaintext` when the URL has a user.
    pub security_protocol: SecurityProtocol,
    /// `sasl.mechanism` (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`), when SASL is used.
    pub sasl_mechanism: Option<String>,
    /// `sasl.username`.
    pub sasl_username: Option<String>,
    /// `sasl.password`.
    pub sasl_password: Option<Secret>,
    /// `ssl.ca.location`: the CA certificates to trust instead of the system's.
    pub ssl_ca_location: Option<String>,
    /// `ssl.certificate.location`: the client's certificate, for mutual TLS.
    pub ssl_certificate_location: Option<String>,
    /// `ssl.key.location`: the client's private key, for mutual TLS.
    pub ssl_key_location: Option<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap: vec![HostPort {
                host: "127.0.0.1".to_owned(),
                port: 9092,
            }],
            group: format!("{QUEUE_PLACEHOLDER}-consumer-group"),
            partitions: 4,
            replication: 1,
            client_id: "switchyard".to_owned(),
            max_receives: 5,
            max_delay: Duration::from_secs(15 * 60),
            session_timeout: Duration::from_secs(6),
            security_protocol: SecurityProtocol::Plaintext,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            ssl_ca_location: None,
            ssl_certificate_location: None,
            ssl_key_location: None,
        }
    }
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("bootstrap", &self.bootstrap_servers())
            .field("group", &self.group)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("client_id", &self.client_id)
            .field("max_receives", &self.max_receives)
            .field("max_delay", &self.max_delay)
            .field("session_timeout", &self.session_timeout)
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &self.sasl_password)
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("ssl_certificate_location", &self.ssl_certificate_location)
            .field("ssl_key_location", &self.ssl_key_location)
            .finish()
    }
}

impl KafkaConfig {
    /// `host:port,host:port`, as librdkafka's `bootstrap.servers` wants it.
    #[must_use]
    pub fn bootstrap_servers(&self) -> String {
        self.bootstrap
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The consumer group of `queue`.
    #[must_use]
    pub fn group_of(&self, queue: &str) -> String {
        self.group.replace(QUEUE_PLACEHOLDER, queue)
    }

    /// What every client (producer, consumer, admin) is configured with: the brokers, the
    /// client id and the security settings, passed through to librdkafka as they are.
    #[must_use]
    pub fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.bootstrap_servers())
            .set("client.id", &self.client_id)
            .set("security.protocol", self.security_protocol.as_str())
            .set("socket.connection.setup.timeout.ms", "10000")
            .set("allow.auto.create.topics", "false")
            .set("log_level", "3");
        let optional = [
            ("sasl.mechanism", self.sasl_mechanism.as_deref()),
            ("sasl.username", self.sasl_username.as_deref()),
            (
                "sasl.password",
                self.sasl_password.as_ref().map(Secret::expose),
            ),
            ("ssl.ca.location", self.ssl_ca_location.as_deref()),
            (
                "ssl.certificate.location",
                self.ssl_certificate_location.as_deref(),
            ),
            ("ssl.key.location", self.ssl_key_location.as_deref()),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                config.set(key, value);
            }
        }
        config
    }

    /// The producer: idempotent (no duplicates or reordering from its own retries), every
    /// write acknowledged by all in-sync replicas.
    #[must_use]
    pub fn producer(&self) -> ClientConfig {
        let mut config = self.client();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("message.max.bytes", crate::broker::MAX_RECORD.to_string());
        config
    }

    /// The consumer of `queue`: in its group, from the start of the topic when the group has
    /// committed nothing, committing only what the broker says (never on its own).
    #[must_use]
    pub fn consumer(&self, queue: &str) -> ClientConfig {
        let session = self.session_timeout.as_millis().max(1);
        let mut config = self.client();
        config
            .set("group.id", self.group_of(queue))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", session.to_string())
            .set("heartbeat.interval.ms", (session / 12).max(1).to_string())
            .set("fetch.wait.max.ms", "100");
        config
    }
}

impl KafkaConfig {
    /// The client that records the handed-out marks of `queue`'s group, as the offsets of the
    /// group `<group>.handed`, which it never joins.
    #[must_use]
    pub fn marks(&self, queue: &str) -> ClientConfig {
        let mut config = self.client();
        config
            .set("group.id", format!("{}.handed", self.group_of(queue)))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_settings_pass_through_to_librdkafka() {
        let config = KafkaConfig {
            security_protocol: SecurityProtocol::SaslSsl,
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            sasl_username: Some("app".into()),
            sasl_password: Some(Secret::new("hunter2")),
            ssl_ca_location: Some("ca.pem".into()),
            ssl_certificate_location: Some("client.pem".into()),
            ssl_key_location: Some("client.key".into()),
            ..KafkaConfig::default()
        };
        let client = config.consumer("ical");
        for (key, value) in [
            ("security.protocol", "sasl_ssl"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "app"),
            ("sasl.password", "hunter2"),
            ("ssl.ca.location", "ca.pem"),
            ("ssl.certificate.location", "client.pem"),
            ("ssl.key.location", "client.key"),
            ("group.id", "ical-consumer-group"),
        ] {
            assert_eq!(client.get(key), Some(value), "{key}");
        }
    }

    #[test]
    fn the_producer_is_idempotent_and_waits_for_every_replica() {
        let producer = KafkaConfig::default().producer();
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("acks"), Some("all"));
    }

    #[test]
    fn the_consumer_never_commits_on_its_own() {
        let consumer = KafkaConfig::default().consumer("q");
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("auto.offset.reset"), Some("earliest"));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let config = KafkaConfig {
            sasl_password: Some(Secret::new("hunter2")),
            ..KafkaConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
