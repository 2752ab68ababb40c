//! The server's side of the upstream: the reasoning loop's backend, the raw passthrough proxy
//! and the trajectory log, built once from `[upstream]` and `[reason]`.
//!
//! Passthrough does not use [`ChatBackend`]: a text-only chat request is forwarded as the very
//! bytes the client sent, and the upstream's answer (JSON or SSE) streams back as the very bytes
//! it sent — nothing is parsed or re-serialised, so nothing is lost and nothing is slow.

use crate::config::Config;
use crate::error::ApiError;
use bytes::Bytes;
use etchr_reason::{Reasoner, TrajectoryLog};
use etchr_upstream::retry::{fits_before, retry_after_from_headers};
use etchr_upstream::{ApiKey, ChatBackend, ErrorKind, RetryPolicy, UpstreamConfig, UpstreamError};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
        let backend = etchr_upstream::build_with_fetcher(up, fetcher).map_err(|e| e.to_string())?;
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

/// Byte-for-byte forwarding to the primary upstream, with retries before any byte is returned.
#[derive(Clone)]
pub struct Proxy {
    client: reqwest::Client,
    name: String,
    chat_url: String,
    models_url: String,
    key: Option<ApiKey>,
    pass_through_auth: bool,
    policy: RetryPolicy,
    timeout: Duration,
}

/// Hand-written so that the key can never be printed.
impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("name", &self.name)
            .field("chat_url", &self.chat_url)
            .finish_non_exhaustive()
    }
}

/// A forwarded response whose head has arrived; the body is still on the wire.
pub struct Forwarded {
    pub response: reqwest::Response,
    /// From the first attempt's send to the final response head, retries included.
    pub upstream_time: Duration,
}

impl Proxy {
    pub fn new(config: &UpstreamConfig) -> Result<Self, UpstreamError> {
        let profile = config.profile()?;
        let base = profile.base_url.trim_end_matches('/').to_string();
        Ok(Self {
            client: etchr_upstream::http_client()?,
            name: profile.name.clone(),
            chat_url: profile.chat_url(),
            models_url: format!("{base}/models"),
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

    /// POSTs `body` to `/chat/completions`, retrying 408/429/5xx and connection failures with
    /// backoff (honouring `Retry-After`) while the deadline allows. A 2xx comes back unread; a
    /// final failure becomes an [`UpstreamError`] (the server renders it in the OpenAI shape).
    pub async fn chat(
        &self,
        body: Bytes,
        stream: bool,
        client_auth: Option<&ApiKey>,
        request_id: Option<&str>,
        deadline: Instant,
    ) -> Result<Forwarded, UpstreamError> {
        let started = Instant::now();
        let mut retry = 0u32;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(UpstreamError::deadline().with_upstream(&self.name));
            }
            let until = deadline.min(now + self.timeout);
            let mut rb = self
                .client
                .post(&self.chat_url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
            if stream {
                rb = rb.header(ACCEPT, "text/event-stream");
            }
            if let Some(id) = request_id {
                rb = rb.header("x-request-id", id);
            }
            if let Some(k) = self.key(client_auth) {
                rb = rb.bearer_auth(k.expose());
            }
            let err = match tokio::time::timeout_at(until.into(), rb.send()).await {
                Err(_) if until >= deadline => UpstreamError::deadline(),
                Err(_) => {
                    UpstreamError::new(ErrorKind::Timeout, "no answer within the per-call timeout")
                }
                Ok(Err(e)) => UpstreamError::new(
                    if e.is_timeout() {
                        ErrorKind::Timeout
                    } else {
                        ErrorKind::Connect
                    },
                    format!(
                        "cannot reach the upstream: {}",
                        etchr_upstream::error::error_chain(&e.without_url())
                    ),
                ),
                Ok(Ok(resp)) if resp.status().is_success() => {
                    return Ok(Forwarded {
                        response: resp,
                        upstream_time: started.elapsed(),
                    })
                }
                Ok(Ok(resp)) => {
                    let status = resp.status().as_u16();
                    let retry_after = retry_after_from_headers(resp.headers());
                    let body = resp.bytes().await.unwrap_or_default();
                    UpstreamError::from_response(status, &body, retry_after)
                }
            }
            .with_upstream(&self.name);
            if !err.is_retryable() || retry >= self.policy.max_retries {
                return Err(err);
            }
            let Some(wait) = self.policy.delay(retry, err.retry_after) else {
                return Err(err);
            };
            if !fits_before(deadline, wait) {
                return Err(err);
            }
            tracing::warn!(upstream = %self.name, error = %err, wait_ms = wait.as_millis() as u64, "retrying passthrough");
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    /// `GET /models` on the upstream, as JSON.
    pub async fn models(
        &self,
        client_auth: Option<&ApiKey>,
    ) -> Result<serde_json::Value, ApiError> {
        let mut rb = self.client.get(&self.models_url).timeout(self.timeout);
        if let Some(k) = self.key(client_auth) {
            rb = rb.bearer_auth(k.expose());
        }
        let resp = rb.send().await.map_err(|e| {
            ApiError::Upstream(
                UpstreamError::new(
                    ErrorKind::Connect,
                    format!(
                        "cannot reach the upstream: {}",
                        etchr_upstream::error::error_chain(&e.without_url())
                    ),
                )
                .with_upstream(&self.name),
            )
        })?;
        let status = resp.status();
        let retry_after = retry_after_from_headers(resp.headers());
        let body = resp.bytes().await.unwrap_or_default();
        if !status.is_success() {
            return Err(ApiError::Upstream(
                UpstreamError::from_response(status.as_u16(), &body, retry_after)
                    .with_upstream(&self.name),
            ));
        }
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::Upstream(
                UpstreamError::new(
                    ErrorKind::Decode,
                    format!("the model list is not JSON: {e}"),
                )
                .with_upstream(&self.name),
            )
        })
    }
}
