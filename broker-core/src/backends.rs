//! From a URL to a connected backend: the backends a program was built with, by scheme.
//!
//! Each backend crate provides a [`BackendFactory`] that declares the schemes it answers and
//! reads its own URLs. A program puts the factories it links into [`Backends`] and opens
//! `CELERY_BROKER_URL` and `CELERY_RESULT_BACKEND` through it; the core names no backend, so a
//! program knows exactly the schemes of the backends it was built with.

use std::{fmt, sync::Arc};

use async_trait::async_trait;

use crate::{
    Broker, Error, Operation, Result, ResultStore,
    urls::{UrlError, UrlKind, UrlParts, redact},
};

/// Opens one backend's brokers and result stores from their URLs.
///
/// The registry calls [`broker`](Self::broker) and [`result_store`](Self::result_store) only
/// with URLs whose scheme this factory [`answers`](Self::answers) for that kind of URL.
#[async_trait]
pub trait BackendFactory: Send + Sync + 'static {
    /// The backend's name, as its [`Capabilities::backend`](crate::Capabilities::backend) and
    /// errors give it.
    fn backend(&self) -> &'static str;

    /// The schemes this backend answers, for listing in messages: `kind` says whether as a
    /// broker or as a result backend. Empty when it is not that kind of backend.
    fn schemes(&self, kind: UrlKind) -> &'static [&'static str];

    /// Whether this backend answers `scheme` (lowercased) for `kind`. By default, whether
    /// [`schemes`](Self::schemes) lists it; a backend with a family of schemes (`SQLAlchemy`'s
    /// `postgresql+DRIVER`) says more.
    fn answers(&self, kind: UrlKind, scheme: &str) -> bool {
        self.schemes(kind).contains(&scheme)
    }

    /// Whether its brokers live inside this process, out of reach of another process.
    fn in_process(&self) -> bool {
        false
    }

    /// Connects a broker for `url`.
    ///
    /// # Errors
    /// [`ErrorKind::Configuration`](crate::ErrorKind::Configuration) for a URL the backend
    /// cannot use; the backend's connect error otherwise.
    async fn broker(&self, url: &str) -> Result<Arc<dyn Broker>>;

    /// Connects a result store for `url`. Only called when the backend answers result-backend
    /// schemes; the default is for backends that answer none.
    ///
    /// # Errors
    /// As [`broker`](Self::broker).
    async fn result_store(&self, url: &str) -> Result<Arc<dyn ResultStore>> {
        let _ = url;
        Err(Error::configuration(
            Operation::Connect,
            format!("the {} backend keeps no task results", self.backend()),
        ))
    }
}

/// The backends a program was built with.
#[derive(Default, Clone)]
pub struct Backends {
    factories: Vec<Arc<dyn BackendFactory>>,
}

impl fmt::Debug for Backends {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.factories.iter().map(|f| f.backend()))
            .finish()
    }
}

impl Backends {
    /// No backend at all.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a backend. When two answer one scheme, the one added later wins.
    #[must_use]
    pub fn with(mut self, factory: impl BackendFactory) -> Self {
        self.factories.insert(0, Arc::new(factory));
        self
    }

    /// Every scheme of `kind` some backend answers, without repeats, in the order the backends
    /// were added.
    #[must_use]
    pub fn schemes(&self, kind: UrlKind) -> Vec<&'static str> {
        let mut schemes = Vec::new();
        for factory in self.factories.iter().rev() {
            for scheme in factory.schemes(kind) {
                if !schemes.contains(scheme) {
                    schemes.push(*scheme);
                }
            }
        }
        schemes
    }

    /// The backend that answers `url` as a `kind` URL, without connecting.
    ///
    /// # Errors
    /// [`ErrorKind::Configuration`](crate::ErrorKind::Configuration) for a malformed URL or a
    /// scheme no backend answers for `kind` (the message lists the schemes that work). It
    /// never contains the URL's password.
    pub fn factory(&self, kind: UrlKind, url: &str) -> Result<&dyn BackendFactory> {
        let parts = UrlParts::parse(url)?;
        let scheme = parts.scheme();
        let answering = |kind| self.factories.iter().find(|f| f.answers(kind, scheme));
        if let Some(factory) = answering(kind) {
            return Ok(factory.as_ref());
        }
        let other = match kind {
            UrlKind::Broker => UrlKind::ResultBackend,
            UrlKind::ResultBackend => UrlKind::Broker,
        };
        let known = self.schemes(kind);
        Err(match answering(other) {
            Some(factory) => UrlError::WrongKind {
                kind,
                scheme: scheme.to_owned(),
                backend: factory.backend(),
                known,
            },
            None => UrlError::UnknownScheme {
                kind,
                scheme: scheme.to_owned(),
                known,
            },
        }
        .into())
    }

    /// Connects the broker `url` names.
    ///
    /// # Errors
    /// As [`factory`](Self::factory), then the backend's own URL and connect errors. None
    /// contains the URL's password.
    pub async fn broker(&self, url: &str) -> Result<Arc<dyn Broker>> {
        let factory = self.factory(UrlKind::Broker, url)?;
        tracing::info!(broker = %redact(url.trim()), "connecting the broker");
        factory.broker(url.trim()).await
    }

    /// Connects the result store `url` names.
    ///
    /// # Errors
    /// As [`broker`](Self::broker).
    pub async fn result_store(&self, url: &str) -> Result<Arc<dyn ResultStore>> {
        let factory = self.factory(UrlKind::ResultBackend, url)?;
        tracing::info!(result_backend = %redact(url.trim()), "connecting the result store");
        factory.result_store(url.trim()).await
    }
}
