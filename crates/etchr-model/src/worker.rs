//! The inference service: one dedicated thread owns the model (candle work never runs on the
//! async runtime), fed by a bounded queue. Requests that arrive within a few milliseconds of
//! each other share one forward pass (micro-batching). A full queue is refused at once with
//! [`ModelError::Overloaded`] — the server turns that into a fast 503 with `Retry-After`.

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::model::{EditingModel, PlanInput, PlanOutput};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Requests waiting beyond the one being served; more are refused.
    pub queue_capacity: usize,
    /// Most requests in one forward pass.
    pub max_batch: usize,
    /// How long the first request of a batch waits for company.
    pub batch_window: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 64,
            max_batch: 8,
            batch_window: Duration::from_millis(2),
        }
    }
}

struct Job {
    input: PlanInput,
    reply: oneshot::Sender<Result<PlanOutput>>,
}

/// Counters, for metrics and tests.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub batches: AtomicUsize,
    pub requests: AtomicUsize,
    pub largest_batch: AtomicUsize,
    pub overloaded: AtomicUsize,
}

/// A cheap, cloneable handle to the inference thread. The thread stops when every handle is
/// dropped and the queue has drained.
#[derive(Clone)]
pub struct ModelHandle {
    tx: SyncSender<Job>,
    capacity: usize,
    config: Arc<ModelConfig>,
    stats: Arc<WorkerStats>,
}

impl std::fmt::Debug for ModelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelHandle")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

pub struct ModelWorker;

impl ModelWorker {
    /// Moves `model` onto its own thread and returns the handle that feeds it.
    pub fn spawn(model: EditingModel, cfg: WorkerConfig) -> std::io::Result<ModelHandle> {
        Self::spawn_gated(model, cfg, None)
    }

    /// `gate`: the thread waits for one message (or the sender's drop) before serving, so tests
    /// can fill the queue deterministically.
    fn spawn_gated(
        model: EditingModel,
        cfg: WorkerConfig,
        gate: Option<Receiver<()>>,
    ) -> std::io::Result<ModelHandle> {
        let capacity = cfg.queue_capacity.max(1);
        let (tx, rx) = sync_channel::<Job>(capacity);
        let stats = Arc::new(WorkerStats::default());
        let handle = ModelHandle {
            tx,
            capacity,
            config: Arc::new(model.config().clone()),
            stats: stats.clone(),
        };
        std::thread::Builder::new()
            .name("etchr-model".into())
            .spawn(move || {
                if let Some(g) = gate {
                    let _ = g.recv();
                }
                serve(model, cfg, rx, &stats)
            })?;
        Ok(handle)
    }
}

fn serve(model: EditingModel, cfg: WorkerConfig, rx: Receiver<Job>, stats: &WorkerStats) {
    let max_batch = cfg.max_batch.max(1);
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let deadline = Instant::now() + cfg.batch_window;
        while jobs.len() < max_batch {
            // Whatever is already queued joins without waiting; then wait out the window.
            match rx.try_recv() {
                Ok(j) => {
                    jobs.push(j);
                    continue;
                }
                Err(_) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(j) => jobs.push(j),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
        // Callers that gave up (dropped their future) cost nothing.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.requests.fetch_add(jobs.len(), Ordering::Relaxed);
        stats.largest_batch.fetch_max(jobs.len(), Ordering::Relaxed);
        let (inputs, replies): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|j| (j.input, j.reply)).unzip();
        let n = inputs.len();
        let results = std::panic::catch_unwind(AssertUnwindSafe(|| model.plan_batch(inputs)))
            .unwrap_or_else(|panic| {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                tracing::error!(%msg, "the editing model panicked");
                (0..n)
                    .map(|_| Err(ModelError::Internal(msg.clone())))
                    .collect()
            });
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// What plans one input, synchronously: the serving worker ([`ModelHandle`]), or in Stage 2
/// training the policy itself, sampled (`etchr-train`'s `SamplingNetwork`). The sidecar's
/// planner calls the model through this, so training can run that very planner around the
/// policy it samples.
pub trait Network: Send + Sync {
    fn plan_one(&self, input: PlanInput) -> Result<PlanOutput>;
}

impl Network for ModelHandle {
    fn plan_one(&self, input: PlanInput) -> Result<PlanOutput> {
        self.plan_blocking(input)
    }
}

impl ModelHandle {
    /// Queues `input` without waiting; `Overloaded` at once when the queue is full.
    pub fn submit(&self, input: PlanInput) -> Result<oneshot::Receiver<Result<PlanOutput>>> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { input, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => {
                self.stats.overloaded.fetch_add(1, Ordering::Relaxed);
                Err(ModelError::Overloaded {
                    capacity: self.capacity,
                })
            }
            Err(TrySendError::Disconnected(_)) => Err(ModelError::WorkerGone),
        }
    }

    /// Plans `input` on the model thread.
    pub async fn plan(&self, input: PlanInput) -> Result<PlanOutput> {
        self.submit(input)?
            .await
            .map_err(|_| ModelError::WorkerGone)?
    }

    /// [`Self::plan`] for synchronous callers (not from inside an async runtime).
    pub fn plan_blocking(&self, input: PlanInput) -> Result<PlanOutput> {
        self.submit(input)?
            .blocking_recv()
            .map_err(|_| ModelError::WorkerGone)?
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    pub fn queue_capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ImageInput;
    use etchr_ops::RgbImage;

    fn input(i: u32) -> PlanInput {
        let img = RgbImage::from_fn(300 + i * 7, 200 + i * 3, |x, y| {
            image::Rgb([(x * 3 + i) as u8, (y * 5) as u8, ((x ^ y) + i * 40) as u8])
        });
        PlanInput::new(
            ImageInput::Decoded(Arc::new(img)),
            format!("what is in box {i}?"),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_are_all_served_in_batches() {
        let handle = ModelWorker::spawn(
            EditingModel::tiny(5).unwrap(),
            WorkerConfig {
                queue_capacity: 32,
                max_batch: 4,
                batch_window: Duration::from_millis(5),
            },
        )
        .unwrap();
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let h = handle.clone();
                tokio::spawn(async move { h.plan(input(i)).await })
            })
            .collect();
        for t in tasks {
            let out = t.await.unwrap().unwrap();
            assert!(out.timings.batch_size >= 1 && out.timings.batch_size <= 4);
            etchr_ops::validate(
                out.original_size.0,
                out.original_size.1,
                &out.program,
                &Default::default(),
            )
            .unwrap();
        }
        let s = handle.stats();
        assert_eq!(s.requests.load(Ordering::Relaxed), 12);
        assert!(s.largest_batch.load(Ordering::Relaxed) <= 4);
    }

    #[tokio::test]
    async fn full_queue_is_overloaded_and_queued_work_is_batched() {
        let (open, gate) = std::sync::mpsc::channel();
        let handle = ModelWorker::spawn_gated(
            EditingModel::tiny(5).unwrap(),
            WorkerConfig {
                queue_capacity: 3,
                max_batch: 8,
                batch_window: Duration::from_millis(1),
            },
            Some(gate),
        )
        .unwrap();
        let queued: Vec<_> = (0..3).map(|i| handle.submit(input(i)).unwrap()).collect();
        match handle.plan(input(9)).await {
            Err(ModelError::Overloaded { capacity: 3 }) => {}
            other => panic!("expected Overloaded, got {other:?}"),
        }
        open.send(()).unwrap();
        for rx in queued {
            let out = rx.await.unwrap().unwrap();
            assert_eq!(
                out.timings.batch_size, 3,
                "the queued requests share one pass"
            );
        }
        assert_eq!(handle.stats().batches.load(Ordering::Relaxed), 1);
        assert_eq!(handle.stats().overloaded.load(Ordering::Relaxed), 1);
        // And the queue has room again.
        handle.plan(input(4)).await.unwrap();
    }
}
