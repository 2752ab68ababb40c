//! Running the service: bind, serve, shut down gracefully.

use crate::app;
use crate::state::AppState;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves until `shutdown` completes, then marks the service not ready, waits
/// `shutdown_grace_secs` (so load balancers notice), stops accepting and drains in-flight
/// requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app::router(state.clone());
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            state.begin_draining();
            tracing::info!(grace_secs = grace.as_secs(), "shutdown requested; draining");
            if !grace.is_zero() {
                tokio::time::sleep(grace).await;
            }
        })
        .await
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
