//! `kafka://` and kombu's `confluentkafka://` URLs, read into a [`KafkaConfig`].
//!
//! `kafka://[user:password@]host[:port][,host[:port]...][?options]`: the bootstrap brokers,
//! port 9092 by default. A user name and password are SASL credentials (`sasl_plaintext`
//! unless `security_protocol` says otherwise). Options:
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `group` | consumer group of a queue; `{queue}` stands for the queue's name | `{queue}-consumer-group` (kombu's) |
//! | `partitions` | partitions of a topic the backend creates (1 to 10000) | 4 |
//! | `replication` | replicas of a topic the backend creates (1 to 32) | 1 |
//! | `client_id` | the client id the brokers log | `switchyard` |
//! | `max_receives` | receives after which a message goes to `<queue>.dlq` | 5 |
//! | `max_delay` | seconds of the longest delay accepted (publish and nack) | 900 |
//! | `session_timeout` | seconds before a silent consumer's partitions go to the others | 6 |
//! | `security_protocol` | `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl` | `plaintext` (`sasl_plaintext` with a user) |
//! | `sasl_mechanism` | `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512` | librdkafka's (`GSSAPI`) |
//! | `ssl_ca_location` | file of CA certificates to trust | the system's |
//! | `ssl_certificate_location` | client certificate file (mutual TLS) | none |
//! | `ssl_key_location` | client private key file (mutual TLS) | none |

use broker_core::urls::{UrlError, UrlParts};

use crate::{KafkaConfig, config::SecurityProtocol};

/// The schemes the Kafka backend answers, as a broker only.
pub const SCHEMES: &[&str] = &["kafka", "confluentkafka"];

/// The options a Kafka URL may carry.
pub const OPTIONS: &[&str] = &[
    "group",
    "partitions",
    "replication",
    "client_id",
    "max_receives",
    "max_delay",
    "session_timeout",
    "security_protocol",
    "sasl_mechanism",
    "ssl_ca_location",
    "ssl_certificate_location",
    "ssl_key_location",
];

impl KafkaConfig {
    /// The settings a `kafka://` or `confluentkafka://` URL asks for; what it does not say
    /// stays at its default.
    ///
    /// # Errors
    /// [`UrlError`] for another scheme, a malformed URL, an unknown option or an unusable
    /// value. The message never contains the password.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let parts = UrlParts::parse(url)?;
        if !SCHEMES.contains(&parts.scheme()) {
            return Err(UrlError::malformed(format!(
                "`{}://` is not a Kafka URL; use kafka:// or confluentkafka://",
                parts.scheme()
            )));
        }
        parts.expect_no_path()?;
        let defaults = Self::default();
        let bootstrap = if parts.has_host() {
            parts.hosts(9092)?
        } else {
            defaults.bootstrap.clone()
        };
        let options = parts.options(OPTIONS)?;
        let group = options.text("group").unwrap_or(defaults.group.clone());
        let sasl_username = parts.username().map(str::to_owned);
        let security_protocol = options
            .one_of(
                "security_protocol",
                &["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"],
            )?
            .map_or(
                if sasl_username.is_some() {
                    SecurityProtocol::SaslPlaintext
                } else {
                    SecurityProtocol::Plaintext
                },
                |name| match name {
                    "ssl" => SecurityProtocol::Ssl,
                    "sasl_plaintext" => SecurityProtocol::SaslPlaintext,
                    "sasl_ssl" => SecurityProtocol::SaslSsl,
                    _ => SecurityProtocol::Plaintext,
                },
            );
        let max_delay = options.seconds("max_delay")?.unwrap_or(defaults.max_delay);
        let session_timeout = options
            .seconds("session_timeout")?
            .unwrap_or(defaults.session_timeout);
        let config = Self {
            bootstrap,
            partitions: options
                .number("partitions", 1..=10_000)?
                .unwrap_or(defaults.partitions),
            replication: options
                .number("replication", 1..=32)?
                .unwrap_or(defaults.replication),
            client_id: options
                .text("client_id")
                .unwrap_or(defaults.client_id.clone()),
            max_receives: options
                .count("max_receives")?
                .unwrap_or(defaults.max_receives),
            max_delay,
            session_timeout,
            security_protocol,
            sasl_mechanism: options
                .one_of(
                    "sasl_mechanism",
                    &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
                )?
                .map(str::to_owned),
            sasl_password: parts.password().cloned(),
            sasl_username,
            ssl_ca_location: options.text("ssl_ca_location"),
            ssl_certificate_location: options.text("ssl_certificate_location"),
            ssl_key_location: options.text("ssl_key_location"),
            group,
        };
        options.finish()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use broker_core::urls::HostPort;

    use super::*;

    fn host(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn a_bare_url_keeps_every_default() {
        assert_eq!(
            KafkaConfig::from_url("kafka://").unwrap(),
            KafkaConfig::default()
        );
        assert_eq!(
            KafkaConfig::from_url("confluentkafka://127.0.0.1").unwrap(),
            KafkaConfig::default()
        );
    }

    #[test]
    fn every_bootstrap_broker_is_kept_in_order_with_the_default_port() {
        let config = KafkaConfig::from_url("kafka://k1:9093,k2,K3:19092").unwrap();
        assert_eq!(
            config.bootstrap,
            [host("k1", 9093), host("k2", 9092), host("k3", 19092)]
        );
        assert_eq!(config.bootstrap_servers(), "k1:9093,k2:9092,k3:19092");
    }

    #[test]
    fn group_names_the_consumer_group_of_each_queue() {
        let config = KafkaConfig::from_url("kafka://h?group=billing-{queue}").unwrap();
        assert_eq!(config.group_of("ical"), "billing-ical");
        let shared = KafkaConfig::from_url("kafka://h?group=workers").unwrap();
        assert_eq!(shared.group_of("ical"), "workers");
        assert_eq!(
            KafkaConfig::default().group_of("ical"),
            "ical-consumer-group"
        );
    }

    #[test]
    fn partitions_and_replication_shape_new_topics() {
        let config = KafkaConfig::from_url("kafka://h?partitions=12&replication=3").unwrap();
        assert_eq!((config.partitions, config.replication), (12, 3));
    }

    #[test]
    fn client_id_names_the_client() {
        let config = KafkaConfig::from_url("kafka://h?client_id=billing").unwrap();
        assert_eq!(config.client_id, "billing");
        assert_eq!(config.client().get("client.id"), Some("billing"));
    }

    #[test]
    fn max_receives_max_delay_and_session_timeout_reach_the_settings() {
        let config =
            KafkaConfig::from_url("kafka://h?max_receives=2&max_delay=60.5&session_timeout=10")
                .unwrap();
        assert_eq!(config.max_receives, 2);
        assert_eq!(config.max_delay, Duration::from_millis(60_500));
        assert_eq!(config.session_timeout, Duration::from_secs(10));
        assert_eq!(
            config.consumer("q").get("session.timeout.ms"),
            Some("10000")
        );
    }

    #[test]
    fn credentials_are_sasl_credentials() {
        let config = KafkaConfig::from_url("kafka://app:s%40cret@h").unwrap();
        assert_eq!(config.sasl_username.as_deref(), Some("app"));
        assert_eq!(
            config.sasl_password.as_ref().map(|p| p.expose()),
            Some("s@cret")
        );
        assert_eq!(config.security_protocol, SecurityProtocol::SaslPlaintext);
    }

    #[test]
    fn security_options_reach_the_settings() {
        let config = KafkaConfig::from_url(
            "kafka://app:pw@h?security_protocol=SASL_SSL&sasl_mechanism=scram-sha-256\
             &ssl_ca_location=/etc/ca.pem&ssl_certificate_location=c.pem&ssl_key_location=k.pem",
        )
        .unwrap();
        assert_eq!(config.security_protocol, SecurityProtocol::SaslSsl);
        assert_eq!(config.sasl_mechanism.as_deref(), Some("SCRAM-SHA-256"));
        assert_eq!(config.ssl_ca_location.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(config.ssl_certificate_location.as_deref(), Some("c.pem"));
        assert_eq!(config.ssl_key_location.as_deref(), Some("k.pem"));
        let tls = KafkaConfig::from_url("kafka://h?security_protocol=ssl").unwrap();
        assert_eq!(tls.security_protocol, SecurityProtocol::Ssl);
    }

    #[test]
    fn unusable_urls_are_rejected_with_the_reason() {
        for (url, expected) in [
            ("kafka://h?partitions=0", "from 1 to 10000"),
            ("kafka://h?replication=x", "from 1 to 32"),
            ("kafka://h?max_receives=0", "from 1"),
            ("kafka://h?max_delay=0", "greater than zero"),
            ("kafka://h?session_timeout=0", "greater than zero"),
            ("kafka://h?security_protocol=tls", "expected one of"),
            ("kafka://h?sasl_mechanism=GSSAPI", "expected one of"),
            ("kafka://h/topic", "take no path"),
            ("kafka://h,,k", "empty host"),
            ("kafka://h?bogus=1", "known options: group"),
            ("redis://h", "not a Kafka URL"),
        ] {
            let err = KafkaConfig::from_url(url).expect_err(url);
            assert!(err.to_string().contains(expected), "{url}: {err}");
        }
    }

    #[test]
    fn errors_never_show_the_password() {
        let err = KafkaConfig::from_url("kafka://u:hunter2@h?partitions=x").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
