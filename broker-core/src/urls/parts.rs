//! Splitting a URL into the parts every backend reads the same way.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::{Options, Secret, UrlError};

/// Every character but RFC 3986's unreserved ones is percent-encoded.
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` percent-encoded for any part of a URL (user name, password, path segment, option
/// value): only letters, digits, `-`, `.`, `_` and `~` stay as they are.
#[must_use]
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, RESERVED).to_string()
}

/// One `host:port` pair. `Display` prints `host:port`, an IPv6 address in brackets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name (lowercased) or IP address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A URL split into scheme, credentials, hosts, path and options, without knowing which
/// backend it is for: `scheme://[user[:password]@]host[:port][,host[:port]...][/path][?options]`.
///
/// Splitting never panics. Credentials are percent-decoded; the password is a [`Secret`].
/// `Debug` shows no password.
#[derive(Debug, Clone)]
pub struct UrlParts {
    scheme: String,
    username: Option<String>,
    password: Option<Secret>,
    authority: String,
    path: String,
    query: String,
}

impl UrlParts {
    /// Splits `input`. Surrounding whitespace is ignored; the scheme is lowercased.
    ///
    /// # Errors
    /// [`UrlError::Malformed`] for text that is not `scheme://...`, has whitespace inside, a
    /// fragment, an `@` after the host (an unencoded `@` in a password), or credentials that
    /// are not UTF-8 once decoded. The message never repeats the credentials.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(UrlError::malformed("the URL is empty"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlError::malformed(
                "the URL contains whitespace or control characters",
            ));
        }
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(UrlError::malformed(
                "missing scheme (expected `scheme://...`, for example `redis://localhost`)",
            ));
        };
        let mut chars = scheme.chars();
        let valid_scheme = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !valid_scheme {
            return Err(UrlError::malformed(
                "invalid scheme (letters, digits, `+`, `-` and `.`, starting with a letter)",
            ));
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, after) = rest.split_at(authority_end);
        if after.contains('@') {
            return Err(UrlError::malformed(
                "`@` after the host; percent-encode `@`, `/`, `?`, `#` and `:` in user names \
                 and passwords (as %40, %2F, %3F, %23, %3A)",
            ));
        }
        if after.contains('#') {
            return Err(UrlError::malformed(
                "fragments (`#...`) are not allowed; percent-encode `#` in passwords as %23",
            ));
        }
        let (path, query) = after.split_once('?').unwrap_or((after, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (userinfo, None),
                };
                let password = match password {
                    Some(password) => decode(password, "the password")?.map(Secret::new),
                    None => None,
                };
                (decode(user, "the user name")?, password)
            }
        };
        Ok(Self {
            scheme: scheme.to_ascii_lowercase(),
            username,
            password,
            authority: hosts.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
        })
    }

    /// The scheme, lowercased.
    #[must_use]
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The user name, percent-decoded; `None` when absent or empty.
    #[must_use]
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password, percent-decoded; `None` when absent or empty.
    #[must_use]
    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// Whether the URL names a host (or a list of hosts).
    #[must_use]
    pub fn has_host(&self) -> bool {
        !self.authority.is_empty()
    }

    /// The host part as written (`host[:port][,...]`), for backends whose "host" is a name
    /// (`memory://NAME`).
    #[must_use]
    pub fn raw_host(&self) -> &str {
        &self.authority
    }

    /// The one host the URL names, `localhost` when it names none, with `default_port` when
    /// it gives no port.
    ///
    /// # Errors
    /// [`UrlError::Malformed`] for a list of hosts, a bad host or a port outside 1..=65535.
    pub fn host(&self, default_port: u16) -> Result<HostPort, UrlError> {
        if self.authority.contains(',') {
            return Err(UrlError::malformed(format!(
                "{}:// URLs name one host, not a list",
                self.scheme
            )));
        }
        host_port(&self.authority, default_port)
    }

    /// The comma-separated hosts the URL names, in order; `[localhost:default_port]` when it
    /// names none.
    ///
    /// # Errors
    /// [`UrlError::Malformed`] for an empty entry, a bad host or a bad port.
    pub fn hosts(&self, default_port: u16) -> Result<Vec<HostPort>, UrlError> {
        self.authority
            .split(',')
            .map(|entry| {
                if entry.is_empty() && self.authority.contains(',') {
                    return Err(UrlError::malformed(
                        "empty host in the comma-separated list",
                    ));
                }
                host_port(entry, default_port)
            })
            .collect()
    }

    /// The path as written (still percent-encoded): empty or starting with `/`.
    #[must_use]
    pub fn raw_path(&self) -> &str {
        &self.path
    }

    /// Everything after the path's first `/`, percent-decoded; `None` when that is empty.
    ///
    /// # Errors
    /// [`UrlError::Malformed`] when it is not UTF-8 once decoded.
    pub fn path(&self, what: &str) -> Result<Option<String>, UrlError> {
        decode(self.path.strip_prefix('/').unwrap_or(&self.path), what)
    }

    /// Fails unless the path is empty or `/`.
    ///
    /// # Errors
    /// [`UrlError::Malformed`] saying that this scheme takes no path.
    pub fn expect_no_path(&self) -> Result<(), UrlError> {
        if matches!(self.path.as_str(), "" | "/") {
            Ok(())
        } else {
            Err(UrlError::malformed(format!(
                "{}:// URLs take no path",
                self.scheme
            )))
        }
    }

    /// Fails when the URL carries a user name or password.
    ///
    /// # Errors
    /// [`UrlError::Malformed`] saying that this scheme takes no credentials.
    pub fn expect_no_credentials(&self) -> Result<(), UrlError> {
        if self.username.is_none() && self.password.is_none() {
            Ok(())
        } else {
            Err(UrlError::malformed(format!(
                "{}:// URLs take no user name or password",
                self.scheme
            )))
        }
    }

    /// The query options, checked against `known`: each at most once, none empty, none
    /// unknown. Read them with the typed readers of [`Options`].
    ///
    /// # Errors
    /// [`UrlError::UnknownOption`] (listing `known`), [`UrlError::DuplicateOption`] or
    /// [`UrlError::InvalidOption`] for an empty value.
    pub fn options(&self, known: &'static [&'static str]) -> Result<Options, UrlError> {
        Options::parse(&self.scheme, &self.query, known)
    }
}

/// `raw` percent-decoded; `None` when empty.
fn decode(raw: &str, what: &str) -> Result<Option<String>, UrlError> {
    if raw.is_empty() {
        return Ok(None);
    }
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| Some(s.into_owned()))
        .map_err(|_| {
            UrlError::malformed(format!("{what} is not valid UTF-8 after percent-decoding"))
        })
}

/// `host[:port]` or `[v6][:port]`; an empty host means `localhost`, an empty or missing port
/// the default.
fn host_port(text: &str, default_port: u16) -> Result<HostPort, UrlError> {
    let (host, port) = if text.starts_with('[') {
        let Some(close) = text.find(']') else {
            return Err(UrlError::malformed("unclosed `[` in an IPv6 host"));
        };
        let (host, rest) = text.split_at(close + 1);
        match rest.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if rest.is_empty() => (host, None),
            None => {
                return Err(UrlError::malformed(
                    "unexpected characters after an IPv6 host",
                ));
            }
        }
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(port) => port
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| port.parse::<u16>().ok())
            .flatten()
            .filter(|port| *port != 0)
            .ok_or_else(|| {
                UrlError::malformed("invalid port (expected a number from 1 to 65535)")
            })?,
    };
    let host = if host.is_empty() {
        "localhost".to_owned()
    } else {
        match url::Host::parse(host) {
            Ok(url::Host::Domain(domain)) => domain,
            Ok(url::Host::Ipv4(address)) => address.to_string(),
            Ok(url::Host::Ipv6(address)) => address.to_string(),
            Err(_) => return Err(UrlError::malformed("invalid host")),
        }
    };
    Ok(HostPort { host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_is_split_and_credentials_are_decoded() {
        let url = UrlParts::parse(" REDIS://us%40er:p%3Ass@Cache.Local:6380/2?a=1 ").unwrap();
        assert_eq!(url.scheme(), "redis");
        assert_eq!(url.username(), Some("us@er"));
        assert_eq!(url.password().map(Secret::expose), Some("p:ss"));
        assert_eq!(
            url.host(6379).unwrap(),
            HostPort {
                host: "cache.local".into(),
                port: 6380
            }
        );
        assert_eq!(url.raw_path(), "/2");
        assert_eq!(url.path("db").unwrap().as_deref(), Some("2"));
    }

    #[test]
    fn missing_host_and_port_take_the_defaults() {
        let url = UrlParts::parse("amqp://").unwrap();
        assert!(!url.has_host());
        assert_eq!(url.host(5672).unwrap().to_string(), "localhost:5672");
        assert_eq!(url.path("vhost").unwrap(), None);
    }

    #[test]
    fn host_lists_and_ipv6_hosts_are_read() {
        let url = UrlParts::parse("kafka://a:1,[::1]:2,b").unwrap();
        let hosts: Vec<String> = url
            .hosts(9092)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(hosts, ["a:1", "[::1]:2", "b:9092"]);
        assert!(url.host(9092).is_err());
        assert!(
            UrlParts::parse("kafka://a,,b")
                .unwrap()
                .hosts(9092)
                .is_err()
        );
    }

    #[test]
    fn malformed_urls_are_rejected_without_echoing_credentials() {
        for input in [
            "",
            "localhost:6379",
            "1redis://x",
            "redis://u:pa ss@h",
            "redis://u:s3cret@h/p@x",
            "redis://u:s3cret@h#frag",
            "redis://u:s3cret@h:99999",
            "redis://u:s3cret@h:0",
            "redis://u:s3cret@[::1",
            "redis://u:s3cret@bad host",
            "redis://u:%FF@h",
        ] {
            let err = UrlParts::parse(input)
                .and_then(|u| u.host(1).map(|_| u))
                .expect_err(input);
            assert!(matches!(err, UrlError::Malformed { .. }), "{input}: {err}");
            assert!(!err.to_string().contains("s3cret"), "{input}: {err}");
        }
    }

    #[test]
    fn encoded_text_decodes_to_itself() {
        let text = "p@ss:w/rd?#% é-._~";
        assert_eq!(encode(text), "p%40ss%3Aw%2Frd%3F%23%25%20%C3%A9-._~");
        let url = UrlParts::parse(&format!("x://u:{}@h", encode(text))).unwrap();
        assert_eq!(url.password().map(Secret::expose), Some(text));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let url = UrlParts::parse("redis://u:hunter2@h").unwrap();
        assert!(!format!("{url:?}").contains("hunter2"));
    }
}
