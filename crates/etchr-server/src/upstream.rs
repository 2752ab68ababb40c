//! The server's side of the upstream: the reasoning loop's backend, the raw passthrough proxy
//! and the trajectory log, built once from `[upstream]` and `[reason]`.
//!
//! Passthrough does not use [`ChatBackend`]: a forwarded chat request (text-only, or with images
//! in passthrough mode) goes out as the very bytes the client sent, and the upstream's answer
//! (JSON or SSE) streams back as the very bytes it sent — nothing is parsed or re-serialised, so
//! nothing is lost and nothing is slow. A large body known to be passed through starts going
//! upstream while it still arrives ([`EarlyForward`]), so its two hops overlap. (Only a body
//! naming no model, or naming an alias or carrying an `etchr` field, has its top-level object
//! re-assembled from raw slices.) Provider quirks that the loop's client handles (Gemini's inline
//! images, Kimi's content arrays) are not applied to forwarded requests: they reach the upstream
//! as the client wrote them.

use crate::config::Config;
use crate::error::ApiError;
use bytes::Bytes;
use etchr_reason::{Reasoner, TrajectoryLog};
use etchr_upstream::retry::{fits_before, retry_after_from_headers};
use etchr_upstream::{ApiKey, ChatBackend, ErrorKind, RetryPolicy, UpstreamConfig, UpstreamError};
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The primary and its fallbacks, depth-first.
fn push_targets(config: &UpstreamConfig, out: &mut Vec<ProxyTarget>) -> Result<(), UpstreamError> {
    out.push(ProxyTarget::new(config)?);
    for fb in &config.fallback {
        push_targets(fb, out)?;
    }
    Ok(())
}

/// Everything that talks to the upstream.
pub struct UpstreamState {
    pub backend: Arc<dyn ChatBackend>,
    pub reasoner: Reasoner,
    pub proxy: Proxy,
    pub trajectories: Option<Arc<TrajectoryLog>>,
}

impl UpstreamState {
    /// Builds the upstream from config; `None` when none is configured.
    pub fn from_config(
        config: &Config,
        fetcher: Option<etchr_upstream::ImageFetcher>,
    ) -> Result<Option<Self>, String> {
        let Some(up) = &config.upstream else {
            return Ok(None);
        };
        let backend = etchr_upstream::build_with(up, fetcher, config.decode_limits())
            .map_err(|e| e.to_string())?;
        let proxy = Proxy::new(up).map_err(|e| e.to_string())?;
        let reasoner = Reasoner::new(backend.clone(), config.loop_config());
        let trajectories = match config.reason.trajectory_dir.trim() {
            "" => None,
            dir => Some(Arc::new(TrajectoryLog::open(dir).map_err(|e| {
                format!("cannot open the trajectory log in {dir}: {e}")
            })?)),
        };
        Ok(Some(Self {
            backend,
            reasoner,
            proxy,
            trajectories,
        }))
    }
}

/// Byte-for-byte forwarding, with retries before any byte is returned, and the same ordered
/// fallback as the loop: the primary upstream first, then `[upstream] fallback` in order.
#[derive(Clone)]
pub struct Proxy {
    client: reqwest::Client,
    /// The primary first; nested fallback lists flattened depth-first, as the loop's chain is.
    targets: Arc<[ProxyTarget]>,
}

/// One upstream as the proxy sees it.
struct ProxyTarget {
    name: String,
    chat_url: String,
    models_url: String,
    /// Inserted into bodies that name no model.
    model: Option<String>,
    key: Option<ApiKey>,
    pass_through_auth: bool,
    policy: RetryPolicy,
    timeout: Duration,
}

/// Hand-written so that no key can ever be printed.
impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("Proxy")
            .field("upstreams", &names)
            .finish_non_exhaustive()
    }
}

/// A forwarded response whose head has arrived; the body is still on the wire.
pub struct Forwarded {
    pub response: reqwest::Response,
    /// From the first attempt's send to the final response head, retries and fallbacks included.
    pub upstream_time: Duration,
}

/// A passthrough request sent to the primary upstream while its body is still arriving from the
/// client, so that a large body crosses the two hops at once rather than one after the other.
///
/// Each chunk is forwarded as it arrives, all but the last byte received so far, so the upstream
/// never has the whole body until [`EarlyForward::release`]. The server releases it only after
/// checking the complete body (valid JSON, nothing to rewrite, passthrough after all); otherwise
/// (or when dropped, e.g. when the client goes away) the upstream's body is cut off with an error,
/// which aborts that request before the upstream can act on it, and the request takes the ordinary
/// path with the body collected here.
pub struct EarlyForward {
    tx: Option<tokio::sync::mpsc::UnboundedSender<std::io::Result<Bytes>>>,
    held: Option<Bytes>,
    /// The body so far, copied as it arrives (off the path after its last byte).
    collected: bytes::BytesMut,
    task: Option<tokio::task::JoinHandle<Result<reqwest::Response, UpstreamError>>>,
}

impl EarlyForward {
    /// The client's next chunk: forwards all of it but its last byte (and the byte held back
    /// before it), and holds that byte back.
    pub fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.collected.extend_from_slice(&chunk);
        let mut ahead = chunk;
        let last = ahead.split_off(ahead.len() - 1);
        if let Some(tx) = &self.tx {
            // A closed channel means the upstream's request already failed; the ordinary
            // path retries it with the collected body.
            for part in [self.held.take(), Some(ahead)].into_iter().flatten() {
                if !part.is_empty() {
                    let _ = tx.send(Ok(part));
                }
            }
        }
        self.held = Some(last);
    }

    /// The body received so far, in one buffer (taken: a second call gets what arrived since).
    pub fn take_body(&mut self) -> Bytes {
        self.collected.split().freeze()
    }

    /// Completes the upstream's request (the held-back byte goes out, the body ends).
    pub fn release(mut self) -> EarlyAttempt {
        if let (Some(last), Some(tx)) = (self.held.take(), &self.tx) {
            let _ = tx.send(Ok(last));
        }
        self.tx = None;
        EarlyAttempt {
            task: self.task.take(),
        }
    }
}

impl Drop for EarlyForward {
    /// Not released: the upstream's body ends in an error, so its request is aborted unfinished.
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            tracing::debug!("early forward abandoned; the upstream's copy is cut off");
            let _ = tx.send(Err(std::io::Error::other(
                "the request was not forwarded after all",
            )));
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// An early forward whose body is complete: the upstream's answer is on its way.
pub struct EarlyAttempt {
    task: Option<tokio::task::JoinHandle<Result<reqwest::Response, UpstreamError>>>,
}

impl EarlyAttempt {
    async fn response(mut self) -> Result<reqwest::Response, UpstreamError> {
        let task = self
            .task
            .as_mut()
            .expect("an early attempt is awaited once");
        let out = task.await.unwrap_or_else(|e| {
            Err(UpstreamError::new(
                ErrorKind::Connect,
                format!("the forwarded request failed: {e}"),
            ))
        });
        self.task = None;
        out
    }
}

impl Drop for EarlyAttempt {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A failed send, as an upstream error.
fn send_error(e: reqwest::Error) -> UpstreamError {
    UpstreamError::new(
        if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Connect
        },
        format!(
            "cannot reach the upstream: {}",
            etchr_upstream::error::error_chain(&e.without_url())
        ),
    )
}

/// Who a forwarded request is for: the same on every attempt.
#[derive(Clone, Copy)]
struct Caller<'a> {
    /// The client's own key, sent on where `pass_through_auth` allows.
    client_auth: Option<&'a ApiKey>,
    request_id: Option<&'a str>,
}

/// What the proxy forwards.
pub enum ForwardBody {
    /// These bytes, to whichever upstream serves.
    Exact(Bytes),
    /// A body that names no model: each upstream gets its configured `model` inserted (the
    /// top-level object re-assembled from raw slices; nested values are never re-parsed).
    NeedsModel(BTreeMap<String, Box<RawValue>>),
}

impl ForwardBody {
    fn for_target(&self, target: &ProxyTarget) -> Result<Bytes, UpstreamError> {
        match (self, &target.model) {
            (ForwardBody::Exact(b), _) => Ok(b.clone()),
            (ForwardBody::NeedsModel(obj), None) => to_bytes(obj),
            (ForwardBody::NeedsModel(obj), Some(model)) => {
                let mut obj = obj.clone();
                let raw = serde_json::value::to_raw_value(model)
                    .map_err(|e| UpstreamError::invalid_request(e.to_string()))?;
                obj.insert("model".into(), raw);
                to_bytes(&obj)
            }
        }
    }
}

fn to_bytes(obj: &BTreeMap<String, Box<RawValue>>) -> Result<Bytes, UpstreamError> {
    serde_json::to_vec(obj)
        .map(Bytes::from)
        .map_err(|e| UpstreamError::invalid_request(format!("cannot serialise request: {e}")))
}

impl ProxyTarget {
    fn new(config: &UpstreamConfig) -> Result<Self, UpstreamError> {
        let profile = config.profile()?;
        let base = profile.base_url.trim_end_matches('/').to_string();
        Ok(Self {
            name: profile.name.clone(),
            chat_url: profile.chat_url(),
            models_url: format!("{base}/models"),
            model: config.model.clone().filter(|m| !m.trim().is_empty()),
            key: config.resolved_key(),
            pass_through_auth: config.pass_through_auth,
            policy: config.retry_policy(),
            timeout: config.timeout(),
        })
    }

    fn key<'a>(&'a self, client_auth: Option<&'a ApiKey>) -> Option<&'a ApiKey> {
        match client_auth {
            Some(k) if self.pass_through_auth => Some(k),
            _ => self.key.as_ref(),
        }
    }
}

impl Proxy {
    pub fn new(config: &UpstreamConfig) -> Result<Self, UpstreamError> {
        let mut targets = Vec::new();
        push_targets(config, &mut targets)?;
        Ok(Self {
            client: etchr_upstream::http_client()?,
            targets: targets.into(),
        })
    }

    /// Whether any upstream has a configured model to insert into bodies that name none.
    pub fn fills_model(&self) -> bool {
        self.targets.iter().any(|t| t.model.is_some())
    }

    /// POSTs the body to each upstream's `/chat/completions` in turn until one answers 2xx or a
    /// failure should not fall back (the request's fault, the deadline). Each upstream retries
    /// 408/429/5xx and connection failures with backoff (honouring `Retry-After`) first. A 2xx
    /// comes back unread; a final failure becomes an [`UpstreamError`] (the server renders it in
    /// the OpenAI shape).
    ///
    /// `early` is the primary's first attempt when the body went out while it arrived
    /// ([`Proxy::start_early`]); its failures are retried (and fall back) like any other.
    pub async fn chat(
        &self,
        body: &ForwardBody,
        stream: bool,
        client_auth: Option<&ApiKey>,
        request_id: Option<&str>,
        deadline: Instant,
        early: Option<EarlyAttempt>,
    ) -> Result<Forwarded, UpstreamError> {
        let started = Instant::now();
        let early = std::sync::Mutex::new(early);
        let early = &early;
        let primary = &self.targets[0];
        let response = self
            .in_order("passthrough", Some(deadline), |target| async move {
                let bytes = body.for_target(target)?;
                let first = if std::ptr::eq(target, primary) {
                    early.lock().unwrap_or_else(|p| p.into_inner()).take()
                } else {
                    None
                };
                let caller = Caller {
                    client_auth,
                    request_id,
                };
                self.forward(target, bytes, stream, caller, deadline, first)
                    .await
            })
            .await?;
        Ok(Forwarded {
            response,
            upstream_time: started.elapsed(),
        })
    }

    /// Runs `call` on each upstream in the configured order until one succeeds, or fails in a
    /// way that should not fall back (the request's own fault), or `deadline` has passed. The
    /// error names the upstream it came from.
    async fn in_order<'a, T, F, Fut>(
        &'a self,
        what: &str,
        deadline: Option<Instant>,
        call: F,
    ) -> Result<T, UpstreamError>
    where
        F: Fn(&'a ProxyTarget) -> Fut,
        Fut: std::future::Future<Output = Result<T, UpstreamError>>,
    {
        let last = self.targets.len() - 1;
        for (i, target) in self.targets.iter().enumerate() {
            let err = match call(target).await {
                Ok(v) => return Ok(v),
                Err(e) => e.with_upstream(&target.name),
            };
            let expired = deadline.is_some_and(|d| Instant::now() >= d);
            if i == last || !err.should_fall_back() || expired {
                return Err(err);
            }
            let next = &self.targets[i + 1].name;
            tracing::warn!(error = %err, next = %next, "{what} failed; falling back");
        }
        unreachable!("the loop returns on the last upstream")
    }

    /// Starts forwarding a passthrough body of `len` bytes to the primary upstream while it is
    /// still arriving from the client: see [`EarlyForward`]. Sent without an `Accept` header
    /// (whether the body asks for a stream is not known yet; the body's `stream` decides).
    pub fn start_early(
        &self,
        len: u64,
        client_auth: Option<&ApiKey>,
        request_id: Option<&str>,
    ) -> EarlyForward {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<std::io::Result<Bytes>>();
        let chunks = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let target = &self.targets[0];
        let rb = self
            .request(
                target,
                false,
                Caller {
                    client_auth,
                    request_id,
                },
            )
            .header(CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(chunks));
        EarlyForward {
            tx: Some(tx),
            held: None,
            // The body limit has already refused a larger declared length.
            collected: bytes::BytesMut::with_capacity(len as usize),
            task: Some(tokio::spawn(
                async move { rb.send().await.map_err(send_error) },
            )),
        }
    }

    /// A chat POST to `target`, without its body.
    fn request(
        &self,
        target: &ProxyTarget,
        stream: bool,
        caller: Caller,
    ) -> reqwest::RequestBuilder {
        let Caller {
            client_auth,
            request_id,
        } = caller;
        let mut rb = self
            .client
            .post(&target.chat_url)
            .header(CONTENT_TYPE, "application/json");
        if stream {
            rb = rb.header(ACCEPT, "text/event-stream");
        }
        if let Some(id) = request_id {
            rb = rb.header("x-request-id", id);
        }
        if let Some(k) = target.key(client_auth) {
            rb = rb.bearer_auth(k.expose());
        }
        rb
    }

    /// One upstream, with its retries. `first`, when given, is this upstream's first attempt,
    /// already under way (an early forward).
    async fn forward(
        &self,
        target: &ProxyTarget,
        body: Bytes,
        stream: bool,
        caller: Caller<'_>,
        deadline: Instant,
        mut first: Option<EarlyAttempt>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut retry = 0u32;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(UpstreamError::deadline().with_upstream(&target.name));
            }
            let until = deadline.min(now + target.timeout);
            let sent = match first.take() {
                Some(attempt) => tokio::time::timeout_at(until.into(), attempt.response()).await,
                None => {
                    let rb = self.request(target, stream, caller).body(body.clone());
                    tokio::time::timeout_at(until.into(), async {
                        rb.send().await.map_err(send_error)
                    })
                    .await
                }
            };
            let err = match sent {
                Err(_) if until >= deadline => UpstreamError::deadline(),
                Err(_) => {
                    UpstreamError::new(ErrorKind::Timeout, "no answer within the per-call timeout")
                }
                Ok(Err(e)) => e,
                Ok(Ok(resp)) if resp.status().is_success() => return Ok(resp),
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    let retry_after = retry_after_from_headers(resp.headers());
                    let body = resp.bytes().await.unwrap_or_default();
                    UpstreamError::from_response(status, &body, retry_after)
                }
            }
            .with_upstream(&target.name);
            if !err.is_retryable() || retry >= target.policy.max_retries {
                return Err(err);
            }
            let Some(wait) = target.policy.delay(retry, err.retry_after) else {
                return Err(err);
            };
            if !fits_before(deadline, wait) {
                return Err(err);
            }
            tracing::warn!(upstream = %target.name, error = %err, wait_ms = wait.as_millis() as u64, "retrying passthrough");
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    /// `GET /models` on the upstream, as JSON: the primary's list, or, when it fails in a way
    /// that falls back (unreachable, 5xx, ...), the next upstream's, in the configured order,
    /// so that a client's model discovery survives the same outages its chats do.
    pub async fn models(
        &self,
        client_auth: Option<&ApiKey>,
    ) -> Result<serde_json::Value, ApiError> {
        self.in_order("model list", None, |target| {
            self.models_of(target, client_auth)
        })
        .await
        .map_err(ApiError::Upstream)
    }

    /// One upstream's `GET /models` (no retries: listing is cheap to repeat for the client).
    async fn models_of(
        &self,
        target: &ProxyTarget,
        client_auth: Option<&ApiKey>,
    ) -> Result<serde_json::Value, UpstreamError> {
        let mut rb = self.client.get(&target.models_url).timeout(target.timeout);
        if let Some(k) = target.key(client_auth) {
            rb = rb.bearer_auth(k.expose());
        }
        let resp = rb.send().await.map_err(|e| {
            UpstreamError::new(
                ErrorKind::Connect,
                format!(
                    "cannot reach the upstream: {}",
                    etchr_upstream::error::error_chain(&e.without_url())
                ),
            )
        })?;
        let status = resp.status();
        let retry_after = retry_after_from_headers(resp.headers());
        let body = resp.bytes().await.unwrap_or_default();
        if !status.is_success() {
            return Err(UpstreamError::from_response(
                status.as_u16(),
                &body,
                retry_after,
            ));
        }
        serde_json::from_slice(&body).map_err(|e| {
            UpstreamError::new(
                ErrorKind::Decode,
                format!("the model list is not JSON: {e}"),
            )
        })
    }
}
