//! The worker runtime: registered tasks run from a queue, with leases, retries,
//! dead-lettering, result states and graceful shutdown written once for every backend.

mod lease;
mod runtime;
mod settler;
mod task_registry;

pub use runtime::{Worker, WorkerOptions, WorkerReport};
pub use task_registry::{Task, TaskError, TaskFuture, TaskOptions, TaskRegistry, TaskRequest};

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
