//! `amqp://`, `amqps://` and Celery's `pyamqp://` URLs, read into an [`AmqpConfig`].
//!
//! `amqp[s]://[user[:password]@]host[:port][/vhost][?options]`, as Celery and kombu write
//! them: user and password `guest`, port 5672 (5671 for `amqps://`), vhost `/`. The vhost is
//! the path after the first `/`, percent-decoded, so `/%2f` and Celery's `//` both mean `/`,
//! and an empty path means `/` too. `pyamqp://` is Celery's name for the same broker.
//! Options:
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `heartbeat` | seconds between heartbeats (0 disables them) | the server's (60) |
//! | `connection_name` | the name RabbitMQ shows for the connection | none |
//! | `connect_timeout` | seconds opening a connection may take | 5 |
//! | `confirm_window` | publishes awaiting their confirm at once | 1000 |
//! | `max_receives` | receives after which a message is dead-lettered | 5 |
//! | `ssl` | kombu's spelling of TLS: `true` makes `amqp://` use TLS | false |
//! | `ssl_ca_certs` | TLS only: PEM file of certificate authorities to trust besides the system's | system roots only |

use std::path::PathBuf;

use broker_core::urls::{UrlError, UrlParts};

use crate::AmqpConfig;

/// The schemes the RabbitMQ backend answers, as a broker.
pub const SCHEMES: &[&str] = &["amqp", "amqps", "pyamqp"];

/// The options an AMQP URL may carry.
pub const OPTIONS: &[&str] = &[
    "heartbeat",
    "connection_name",
    "connect_timeout",
    "confirm_window",
    "max_receives",
    "ssl",
    "ssl_ca_certs",
];

impl AmqpConfig {
    /// The settings an `amqp://`, `amqps://` or `pyamqp://` URL asks for; what it does not
    /// say stays at its default.
    ///
    /// # Errors
    /// [`UrlError`] for another scheme, a malformed URL, an unknown option or an unusable
    /// value. The message never contains the password.
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let parts = UrlParts::parse(url)?;
        let scheme_tls = match parts.scheme() {
            "amqp" | "pyamqp" => false,
            "amqps" => true,
            other => {
                return Err(UrlError::malformed(format!(
                    "`{other}://` is not an AMQP URL; use amqp://, amqps:// or pyamqp://"
                )));
            }
        };
        let options = parts.options(OPTIONS)?;
        let tls = scheme_tls || options.boolean("ssl")?.unwrap_or(false);
        let endpoint = parts.host(if tls { 5671 } else { 5672 })?;
        let defaults = Self::default();
        let ca_certificates = options.text("ssl_ca_certs").map(PathBuf::from);
        if ca_certificates.is_some() && !tls {
            return Err(UrlError::invalid(
                "ssl_ca_certs",
                &ca_certificates.unwrap_or_default().display().to_string(),
                "only applies to TLS connections (amqps:// or ssl=true)",
            ));
        }
        let confirm_window = options
            .number("confirm_window", 1..=65_535_usize)?
            .unwrap_or(defaults.confirm_window);
        let config = Self {
            endpoint,
            tls,
            username: parts.username().unwrap_or("guest").to_owned(),
            password: parts.password().cloned().unwrap_or(defaults.password),
            vhost: parts
                .path("the virtual host")?
                .unwrap_or_else(|| "/".to_owned()),
            heartbeat: options.number("heartbeat", 0..=u16::MAX)?,
            connection_name: options.text("connection_name"),
            connect_timeout: options
                .seconds("connect_timeout")?
                .unwrap_or(defaults.connect_timeout),
            confirm_window,
            max_receives: options
                .count("max_receives")?
                .unwrap_or(defaults.max_receives),
            ca_certificates,
        };
        options.finish()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use broker_core::urls::{HostPort, Secret};

    use super::*;

    fn endpoint(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn a_bare_url_keeps_every_default() {
        let config = AmqpConfig::from_url("amqp://").unwrap();
        assert_eq!(config, AmqpConfig::default());
    }

    #[test]
    fn credentials_host_and_port_are_read() {
        let config = AmqpConfig::from_url("amqp://app:s%40cret@Rabbit:5673/").unwrap();
        assert_eq!(config.endpoint, endpoint("rabbit", 5673));
        assert_eq!(config.username, "app");
        assert_eq!(config.password, Secret::new("s@cret"));
        assert_eq!(config.vhost, "/");
    }

    #[test]
    fn percent_encoded_slash_and_celerys_double_slash_both_mean_the_root_vhost() {
        for url in [
            "amqp://h/%2f",
            "amqp://h/%2F",
            "amqp://h//",
            "amqp://h/",
            "amqp://h",
        ] {
            assert_eq!(AmqpConfig::from_url(url).unwrap().vhost, "/", "{url}");
        }
        assert_eq!(AmqpConfig::from_url("amqp://h/jobs").unwrap().vhost, "jobs");
        assert_eq!(
            AmqpConfig::from_url("amqp://h/team%2Fjobs").unwrap().vhost,
            "team/jobs"
        );
    }

    #[test]
    fn pyamqp_is_celerys_name_for_plain_amqp() {
        let config = AmqpConfig::from_url("pyamqp://guest@localhost//").unwrap();
        assert!(!config.tls);
        assert_eq!(config.endpoint, endpoint("localhost", 5672));
        assert_eq!(config.vhost, "/");
    }

    #[test]
    fn amqps_uses_tls_on_port_5671() {
        let config = AmqpConfig::from_url("amqps://h").unwrap();
        assert!(config.tls);
        assert_eq!(config.endpoint.port, 5671);
    }

    #[test]
    fn ssl_true_is_kombus_spelling_of_tls() {
        let config = AmqpConfig::from_url("amqp://h?ssl=true").unwrap();
        assert!(config.tls);
        assert_eq!(config.endpoint.port, 5671);
        assert!(!AmqpConfig::from_url("amqp://h?ssl=false").unwrap().tls);
    }

    #[test]
    fn ssl_ca_certs_names_the_roots_to_trust() {
        let config = AmqpConfig::from_url("amqps://h?ssl_ca_certs=/etc/ca.pem").unwrap();
        assert_eq!(config.ca_certificates, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn heartbeat_is_proposed_in_seconds_and_zero_disables_it() {
        let config = AmqpConfig::from_url("amqp://h?heartbeat=10").unwrap();
        assert_eq!(config.heartbeat, Some(10));
        let off = AmqpConfig::from_url("amqp://h?heartbeat=0").unwrap();
        assert_eq!(off.heartbeat, Some(0));
    }

    #[test]
    fn connection_name_is_read() {
        let config = AmqpConfig::from_url("amqp://h?connection_name=worker%201").unwrap();
        assert_eq!(config.connection_name.as_deref(), Some("worker 1"));
    }

    #[test]
    fn connect_timeout_is_read_in_seconds() {
        let config = AmqpConfig::from_url("amqp://h?connect_timeout=2.5").unwrap();
        assert_eq!(config.connect_timeout, Duration::from_millis(2500));
    }

    #[test]
    fn confirm_window_is_read() {
        let config = AmqpConfig::from_url("amqp://h?confirm_window=64").unwrap();
        assert_eq!(config.confirm_window, 64);
    }

    #[test]
    fn max_receives_is_read() {
        let config = AmqpConfig::from_url("amqp://h?max_receives=9").unwrap();
        assert_eq!(config.max_receives, 9);
    }

    #[test]
    fn unusable_urls_are_rejected_with_the_reason() {
        for (url, expected) in [
            ("amqp://h?heartbeat=70000", "heartbeat"),
            ("amqp://h?confirm_window=0", "confirm_window"),
            ("amqp://h?max_receives=0", "from 1 to"),
            ("amqp://h?connect_timeout=0", "greater than zero"),
            ("amqp://h?ssl=maybe", "true or false"),
            ("amqp://h?ssl_ca_certs=/ca.pem", "only applies to TLS"),
            ("amqp://h?bogus=1", "known options: heartbeat"),
            ("amqp://a,b", "one host"),
            ("redis://h", "not an AMQP URL"),
        ] {
            let err = AmqpConfig::from_url(url).expect_err(url);
            assert!(err.to_string().contains(expected), "{url}: {err}");
        }
    }

    #[test]
    fn errors_never_show_the_password() {
        let err = AmqpConfig::from_url("amqp://u:hunter2@h?max_receives=x").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
