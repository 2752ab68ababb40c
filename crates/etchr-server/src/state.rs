//! Shared application state, cloned into every handler.

use crate::auth::{ClientAuth, MetricsToken};
use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::planner::Planner;
use crate::upstream::UpstreamState;
use etchr_upstream::ImageFetcher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// The editing model, when one is loaded. `None` until etchr-model lands.
    pub planner: Option<Arc<dyn Planner>>,
    pub renders: Arc<RenderGate>,
    /// The upstream MLLM (loop, passthrough, trajectory log), when configured.
    pub upstream: Option<Arc<UpstreamState>>,
    /// Client API keys and rate limits; `None` means open access.
    pub auth: Option<Arc<ClientAuth>>,
    /// The token `GET /metrics` requires, if one is set.
    pub metrics_token: Option<MetricsToken>,
    /// Fetches `http(s)` image URLs under the `[fetch]` policy; `None` when fetching is off.
    pub fetcher: Option<ImageFetcher>,
    /// Bounds the reasoning loops running at once.
    pub loops: Arc<LoopGate>,
    /// Work that must finish even if its request is abandoned (trajectory appends); shutdown
    /// waits for it.
    pub background: TaskTracker,
    draining: Arc<AtomicBool>,
}

impl AppState {
    /// State for `config`. Panics on an upstream that cannot be built; use [`AppState::try_new`]
    /// where the config comes from a user.
    pub fn new(config: Config) -> Self {
        Self::try_new(config).expect("the upstream configuration is invalid")
    }

    /// State for `config`, or why its upstream (or trajectory log) cannot be set up.
    pub fn try_new(config: Config) -> Result<Self, String> {
        let fetcher = config.fetch.policy().map(ImageFetcher::new).transpose()?;
        let upstream = UpstreamState::from_config(&config, fetcher.clone())?.map(Arc::new);
        let renders = Arc::new(RenderGate::new(
            config.render_workers(),
            config.limits.render_queue,
        ));
        Ok(Self {
            metrics: Arc::new(Metrics::new()),
            planner: None,
            renders,
            upstream,
            auth: ClientAuth::from_config(&config.security).map(Arc::new),
            metrics_token: MetricsToken::from_config(&config.security),
            fetcher,
            loops: Arc::new(LoopGate::new(config.reason.max_concurrent_loops)),
            background: TaskTracker::new(),
            config: Arc::new(config),
            draining: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The upstream, or the 503 that says none is configured.
    pub fn upstream(&self) -> Result<&Arc<UpstreamState>, ApiError> {
        self.upstream.as_ref().ok_or_else(|| {
            ApiError::NoUpstream(
                "no upstream MLLM is configured: start with --upstream-url URL --provider NAME \
                 or an [upstream] section"
                    .into(),
            )
        })
    }

    /// Attaches the editing model: `/v1/edit` plans with it, and so do the loop's `evr` and
    /// `progressive` strategies.
    pub fn with_planner(mut self, planner: Arc<dyn Planner>) -> Self {
        if let Some(up) = &self.upstream {
            let u = UpstreamState {
                backend: up.backend.clone(),
                reasoner: up.reasoner.clone().with_planner(planner.clone()),
                proxy: up.proxy.clone(),
                trajectories: up.trajectories.clone(),
            };
            self.upstream = Some(Arc::new(u));
        }
        self.planner = Some(planner);
        self
    }

    /// Marks the service as shutting down: `/readyz` answers 503 from now on.
    pub fn begin_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// Bounds the reasoning loops running at once. A loop mostly waits on the upstream, so the
/// bound protects the upstream and memory rather than CPU; beyond it a request is refused at
/// once with 503 and `Retry-After` (shedding load beats growing a queue nobody will wait for).
pub struct LoopGate {
    slots: Arc<Semaphore>,
    capacity: usize,
}

impl LoopGate {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// A slot for one loop, held until the permit drops, or a 503 `overloaded`.
    pub fn try_enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            ApiError::Overloaded(format!(
                "too many reasoning loops in progress ({}); retry shortly",
                self.capacity
            ))
        })
    }

    /// Loops running now.
    pub fn running(&self) -> usize {
        self.capacity - self.slots.available_permits()
    }
}

/// Bounds CPU-heavy work: at most `workers` renders run at once and at most `queue` wait.
/// Beyond that a request is refused at once with 503 rather than left to pile up, so latency
/// stays bounded and clients can retry elsewhere.
pub struct RenderGate {
    workers: Arc<Semaphore>,
    admitted: AtomicUsize,
    capacity: usize,
}

/// Decrements the admission count when the work ends, even if the request was abandoned.
struct Admitted(Arc<RenderGate>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::SeqCst);
    }
}

impl RenderGate {
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = workers.max(1);
        Self {
            workers: Arc::new(Semaphore::new(workers)),
            admitted: AtomicUsize::new(0),
            capacity: workers + queue,
        }
    }

    /// Runs `f` on a blocking thread once a worker is free. The worker stays taken until `f`
    /// returns, even if the caller gave up (timeout), so abandoned work still counts.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let previous = self.admitted.fetch_add(1, Ordering::SeqCst);
        let admitted = Admitted(self.clone());
        if previous >= self.capacity {
            return Err(ApiError::Overloaded(format!(
                "too many edits in progress ({} running or queued); retry shortly",
                self.capacity
            )));
        }
        let permit = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Unavailable("the server is shutting down".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _admitted = admitted;
            f()
        })
        .await
        .map_err(|e| {
            if e.is_panic() {
                ApiError::Internal(
                    "the renderer panicked on this request; this is a bug, please report it".into(),
                )
            } else {
                ApiError::Internal("the render task was cancelled".into())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_gate_refuses_beyond_capacity_and_frees_on_drop() {
        let gate = LoopGate::new(2);
        let a = gate.try_enter().unwrap();
        let _b = gate.try_enter().unwrap();
        assert_eq!(gate.running(), 2);
        assert_eq!(gate.try_enter().unwrap_err().code(), "overloaded");
        drop(a);
        assert!(gate.try_enter().is_ok());
    }

    #[tokio::test]
    async fn full_queue_is_a_fast_503_and_panics_are_500() {
        let gate = Arc::new(RenderGate::new(1, 0));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let g = gate.clone();
        let busy = tokio::spawn(async move { g.run(move || rx.recv().ok()).await });
        // Wait until the first job holds the only slot.
        while gate.admitted.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let refused = gate.run(|| ()).await.unwrap_err();
        assert_eq!(refused.code(), "overloaded");
        tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        let panicked = gate
            .run(|| panic!("boom"))
            .await
            .map(|_: ()| ())
            .unwrap_err();
        assert_eq!(panicked.code(), "internal_error");
        assert_eq!(gate.admitted.load(Ordering::SeqCst), 0);
    }
}
