//! From a URL to a connected backend.
//!
//! Backend crates each provide a [`BackendFactory`]; an application builds a [`Registry`] of
//! the backends it was compiled with and opens `CELERY_BROKER_URL` and
//! `CELERY_RESULT_BACKEND` through it. Parsing is the core's ([`crate::urls`]), so a
//! malformed URL or an unknown scheme is reported the same way whatever is compiled in, and a
//! known scheme whose backend is not compiled in says so.

use std::{fmt, sync::Arc};

use async_trait::async_trait;

use crate::{
    Broker, Error, ErrorKind, Operation, Result, ResultStore,
    urls::{BrokerUrl, ResultBackendUrl, UrlError},
};

/// Opens one backend's brokers and result stores from parsed URLs.
#[async_trait]
pub trait BackendFactory: Send + Sync + 'static {
    /// The backend's short name, as [`BrokerUrl::backend_name`] gives it.
    fn backend(&self) -> &'static str;

    /// Connects a broker for `url`, which names this backend.
    async fn broker(&self, url: &BrokerUrl) -> Result<Arc<dyn Broker>>;

    /// Connects a result store for `url`, which names this backend; `None` when the backend
    /// has no result store.
    async fn result_store(&self, url: &ResultBackendUrl) -> Option<Result<Arc<dyn ResultStore>>> {
        let _ = url;
        None
    }
}

/// The backends an application was built with.
#[derive(Default, Clone)]
pub struct Registry {
    factories: Vec<Arc<dyn BackendFactory>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.backends()).finish()
    }
}

fn url_error(err: &UrlError) -> Error {
    Error::new(
        ErrorKind::Configuration,
        "core",
        Operation::ParseUrl,
        err.to_string(),
    )
}

impl Registry {
    /// A registry with no backend.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a backend (a later one for the same name wins).
    #[must_use]
    pub fn with(mut self, factory: impl BackendFactory) -> Self {
        self.factories.insert(0, Arc::new(factory));
        self
    }

    /// The names of the backends compiled in.
    #[must_use]
    pub fn backends(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.factories.iter().map(|f| f.backend()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    fn factory(&self, backend: &str, scheme: &str) -> Result<&Arc<dyn BackendFactory>> {
        self.factories.iter().find(|f| f.backend() == backend).ok_or_else(|| {
            Error::new(
                ErrorKind::Configuration,
                "core",
                Operation::Connect,
                format!(
                    "{scheme}:// needs the {backend} backend, which this program was built without \
                     (built with: {})",
                    self.backends().join(", ")
                ),
            )
        })
    }

    /// Parses `url` as a broker URL and connects it.
    ///
    /// # Errors
    /// `Configuration` for a malformed URL, an unknown scheme (listing the known ones) or a
    /// backend not compiled in; the backend's connect error otherwise. Never contains the
    /// URL's password.
    pub async fn broker(&self, url: &str) -> Result<Arc<dyn Broker>> {
        let parsed = BrokerUrl::parse(url).map_err(|e| url_error(&e))?;
        self.broker_for(&parsed).await
    }

    /// Connects an already parsed broker URL.
    ///
    /// # Errors
    /// See [`Registry::broker`].
    pub async fn broker_for(&self, url: &BrokerUrl) -> Result<Arc<dyn Broker>> {
        tracing::info!(broker = %url, "connecting the broker");
        self.factory(url.backend_name(), url.scheme())?
            .broker(url)
            .await
    }

    /// Parses `url` as a result-backend URL and connects it.
    ///
    /// # Errors
    /// As [`Registry::broker`], and `Configuration` when the backend keeps no results.
    pub async fn result_store(&self, url: &str) -> Result<Arc<dyn ResultStore>> {
        let parsed = ResultBackendUrl::parse(url).map_err(|e| url_error(&e))?;
        self.result_store_for(&parsed).await
    }

    /// Connects an already parsed result-backend URL.
    ///
    /// # Errors
    /// See [`Registry::result_store`].
    pub async fn result_store_for(&self, url: &ResultBackendUrl) -> Result<Arc<dyn ResultStore>> {
        tracing::info!(result_backend = %url, "connecting the result store");
        let factory = self.factory(url.backend_name(), url.scheme())?;
        factory.result_store(url).await.unwrap_or_else(|| {
            Err(Error::new(
                ErrorKind::Configuration,
                factory.backend(),
                Operation::Connect,
                format!("the {} backend keeps no task results", factory.backend()),
            ))
        })
    }
}
