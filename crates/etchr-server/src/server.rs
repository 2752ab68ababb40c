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

/// Completes on Ctrl-C or, on Unix, SIGTERM or SIGINT.
///
/// The handlers are installed when this is *called*, not when the future is first polled: a
/// signal that arrives between "listening" and the first poll must not kill the process with the
/// default action. Call it inside the runtime, before announcing the listener.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let unix_signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (term, int) = unix_signals;
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
