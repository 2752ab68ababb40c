//! Running the service: bind, serve, shut down gracefully.

use crate::app;
use crate::state::AppState;
use axum::serve::ListenerExt;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Serves until `shutdown` completes, then: marks the service not ready and waits
/// `shutdown_grace_secs` (so load balancers stop routing here), stops accepting, gives
/// in-flight requests up to `shutdown_drain_secs` to finish, and finally waits for background
/// work (trajectory appends) so no record is lost or torn.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app::router(state.clone());
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    let drain = Duration::from_secs(state.config.shutdown_drain_secs);
    let closing = Arc::new(Notify::new());
    let signal_state = state.clone();
    let closed = closing.clone();
    // Small replies (proxied completions, SSE chunks) go out at once, not after Nagle's wait.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        signal_state.begin_draining();
        tracing::info!(grace_secs = grace.as_secs(), "shutdown requested; draining");
        if !grace.is_zero() {
            tokio::time::sleep(grace).await;
        }
        tracing::info!(
            drain_secs = drain.as_secs(),
            loops_running = signal_state.loops.running(),
            "no longer accepting connections; waiting for in-flight requests"
        );
        // `notify_one` stores a permit, so the waiter below cannot miss it.
        closed.notify_one();
    });
    let drain_deadline = async {
        closing.notified().await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        r = server.into_future() => r?,
        () = drain_deadline => {
            tracing::warn!(
                loops_running = state.loops.running(),
                "in-flight requests did not finish within shutdown_drain_secs; abandoning them"
            );
        }
    }
    flush_background(&state).await;
    Ok(())
}

/// Waits (bounded) for tracked background work such as trajectory appends.
async fn flush_background(state: &AppState) {
    state.background.close();
    let pending = state.background.len();
    if pending > 0 {
        tracing::info!(pending, "flushing background work (trajectory log)");
    }
    if tokio::time::timeout(Duration::from_secs(30), state.background.wait())
        .await
        .is_err()
    {
        tracing::error!(
            pending = state.background.len(),
            "background work did not finish within 30 s"
        );
    }
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
