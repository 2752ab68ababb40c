//! [`HttpUpstream`]: one configured upstream over HTTP, with retries, deadlines and streaming.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::backend::{BoxFuture, CallContext, ChatBackend, ChatOutcome, ChatStream, ServedBy};
use crate::config::{ApiKey, UpstreamConfig};
use crate::error::{from_reqwest, ErrorKind, UpstreamError};
use crate::fetch::{FetchError, ImageFetcher};
use crate::images::DecodeLimits;
use crate::images::{self, ImageFit};
use crate::profile::Profile;
use crate::retry::{fits_before, retry_after_from_headers, RetryPolicy};
use crate::shape::shape_request;
use crate::sse::{SseEvent, SseParser};
use crate::types::{
    ChatChunk, ChatRequest, ChatResponse, ChunkChoice, Delta, FunctionCallDelta, ToolCallDelta,
};

/// A reqwest client suitable for upstream calls (share one between upstreams: it pools connections).
///
/// TLS is rustls with reqwest's built-in aws-lc-rs provider. The leaner `ring` route
/// (`rustls-no-provider`) was tried and rejected: cargo unifies features across the workspace, so
/// every other `reqwest::Client::new()` (e.g. the black-box tests) would panic until someone
/// installed a provider by hand.
pub fn http_client() -> Result<reqwest::Client, UpstreamError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("etchr/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| UpstreamError::config(format!("cannot build the HTTP client: {e}")))
}

/// Fetches one image under the fetcher's policy and within the call's deadline.
async fn fetch_image(
    fetcher: &ImageFetcher,
    url: &str,
    ctx: &CallContext,
) -> Result<Vec<u8>, UpstreamError> {
    match tokio::time::timeout_at(ctx.deadline.into(), fetcher.fetch(url)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(FetchError::Timeout(m))) => Err(UpstreamError::new(ErrorKind::Timeout, m)),
        Ok(Err(e)) => Err(UpstreamError::invalid_request(e.to_string())),
        Err(_) => Err(UpstreamError::deadline()),
    }
}

/// One upstream reached over HTTP.
#[derive(Clone)]
pub struct HttpUpstream {
    profile: Profile,
    client: reqwest::Client,
    key: Option<ApiKey>,
    policy: RetryPolicy,
    timeout: Duration,
    pass_through_auth: bool,
    fetch_remote_images: bool,
    /// Fetches `http(s)` images for providers that take only inline images; `None` (the
    /// default) refuses such requests. Set by the server from its `[fetch]` policy.
    fetcher: Option<ImageFetcher>,
    /// The largest image decoded when one must be re-encoded to fit (the server passes its
    /// `[limits]`; the renderer's defaults otherwise).
    decode_limits: DecodeLimits,
}

/// Hand-written so that no future field can leak the key.
impl std::fmt::Debug for HttpUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpUpstream")
            .field("name", &self.profile.name)
            .field("provider", &self.profile.provider)
            .field("base_url", &self.profile.base_url)
            .field("model", &self.profile.model)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("policy", &self.policy)
            .field("pass_through_auth", &self.pass_through_auth)
            .field("fetcher", &self.fetcher)
            .field("decode_limits", &self.decode_limits)
            .finish()
    }
}

impl HttpUpstream {
    /// Builds the upstream described by `config` (its `fallback` list is ignored here; see
    /// [`crate::build`]).
    pub fn new(config: &UpstreamConfig) -> Result<Self, UpstreamError> {
        Self::with_client(config, http_client()?)
    }

    /// Like [`HttpUpstream::new`] with a shared client.
    pub fn with_client(
        config: &UpstreamConfig,
        client: reqwest::Client,
    ) -> Result<Self, UpstreamError> {
        config.validate()?;
        Ok(Self {
            profile: config.profile()?,
            client,
            key: config.resolved_key(),
            policy: config.retry_policy(),
            timeout: config.timeout(),
            pass_through_auth: config.pass_through_auth,
            fetch_remote_images: config.fetch_remote_images,
            fetcher: None,
            decode_limits: DecodeLimits::default(),
        })
    }

    /// Lets this upstream fetch `http(s)` images (when its `fetch_remote_images` is on) through
    /// `fetcher`, which enforces the allowlist, address and size rules.
    pub fn with_fetcher(mut self, fetcher: Option<ImageFetcher>) -> Self {
        self.fetcher = fetcher;
        self
    }

    /// Decodes images that must be re-encoded to fit this upstream only within `limits`.
    pub fn with_decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.decode_limits = limits;
        self
    }

    /// The `--upstream-url URL --provider NAME` setup.
    pub fn from_url(url: &str, provider: &str, key: Option<&str>) -> Result<Self, UpstreamError> {
        Self::new(&UpstreamConfig::from_url(url, provider, key)?)
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Replaces the per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.policy
    }

    fn key_for<'a>(&'a self, ctx: &'a CallContext) -> Option<&'a ApiKey> {
        if self.pass_through_auth {
            if let Some(k) = &ctx.authorization {
                return Some(k);
            }
        }
        self.key.as_ref()
    }

    fn served_by(&self, model: String, images: Vec<ImageFit>, attempts: u32) -> ServedBy {
        ServedBy {
            upstream: self.profile.name.clone(),
            provider: self.profile.provider,
            model,
            box_convention: self.profile.box_convention,
            images,
            attempts,
        }
    }

    /// Shapes the request for the provider, inlines and fits its images, and serialises it once
    /// (the same bytes are reused by every retry).
    async fn prepare(
        &self,
        mut req: ChatRequest,
        ctx: &CallContext,
        stream: bool,
    ) -> Result<(Bytes, String, Vec<ImageFit>), UpstreamError> {
        let remote = images::needs_inlining(&req, &self.profile.image_limits);
        let fetcher = match (&self.fetcher, self.fetch_remote_images) {
            (Some(f), true) => Some(f),
            _ => None,
        };
        if !remote.is_empty() && fetcher.is_none() {
            return Err(UpstreamError::invalid_request(format!(
                "upstream `{}` ({}) accepts images only as base64 data: URLs, and fetching \
                 image URLs is off",
                self.profile.name, self.profile.provider
            )));
        }
        let mut fetched = Vec::new();
        for (mi, pi, url) in remote {
            let bytes = fetch_image(fetcher.expect("checked above"), &url, ctx).await?;
            let format = image::guess_format(&bytes).map_err(|_| {
                UpstreamError::invalid_request(format!(
                    "image at {url} is not in a recognised format"
                ))
            })?;
            if let Some(crate::types::Content::Parts(parts)) = &mut req.messages[mi].content {
                if let crate::types::ContentPart::ImageUrl { image_url } = &mut parts[pi] {
                    image_url.url = images::data_url(format, &bytes);
                }
            }
            fetched.push((mi, pi));
        }
        shape_request(&mut req, &self.profile);
        if req.model.is_empty() {
            return Err(UpstreamError::config(format!(
                "upstream `{}`: the request names no model and none is configured",
                self.profile.name
            )));
        }
        req.stream = stream.then_some(true);
        if !stream {
            req.extra.remove("stream_options");
        }
        let model = req.model.clone();
        let has_images = req.has_images();
        let limits = self.profile.image_limits.clone();
        let decode = self.decode_limits;
        let mut work = move || -> Result<(Bytes, Vec<ImageFit>), UpstreamError> {
            let fits = images::fit_request(&mut req, &limits, &decode)?;
            let body = serde_json::to_vec(&req).map_err(|e| {
                UpstreamError::invalid_request(format!("cannot serialise request: {e}"))
            })?;
            Ok((Bytes::from(body), fits))
        };
        let (body, mut fits) = if !has_images {
            work()?
        } else {
            // Decoding and resizing images is CPU work: keep it off the async runtime.
            tokio::task::spawn_blocking(work).await.map_err(|e| {
                UpstreamError::invalid_request(format!("image fitting failed: {e}"))
            })??
        };
        for f in &mut fits {
            f.fetched = fetched.contains(&(f.message, f.part));
        }
        Ok((body, model, fits))
    }

    /// POSTs the body once; non-2xx statuses become normalised errors.
    async fn send(
        &self,
        body: &Bytes,
        ctx: &CallContext,
        stream: bool,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut rb = self
            .client
            .post(self.profile.chat_url())
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone());
        if stream {
            rb = rb.header(ACCEPT, "text/event-stream");
        }
        if let Some(id) = &ctx.request_id {
            rb = rb.header("x-request-id", id);
        }
        if let Some(key) = self.key_for(ctx) {
            // bearer_auth marks the header sensitive, so it is redacted from reqwest's own Debug.
            rb = rb.bearer_auth(key.expose());
        }
        let resp = rb.send().await.map_err(from_reqwest)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = retry_after_from_headers(resp.headers());
        let body = resp.bytes().await.unwrap_or_default();
        Err(UpstreamError::from_response(
            status.as_u16(),
            &body,
            retry_after,
        ))
    }

    /// Runs `attempt` until it succeeds, fails for good, runs out of retries or would pass the
    /// deadline. Returns the result and the number of attempts made.
    async fn with_retries<T, F, Fut>(
        &self,
        ctx: &CallContext,
        mut attempt: F,
    ) -> (Result<T, UpstreamError>, u32)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let name = &self.profile.name;
        let mut attempts = 0u32;
        loop {
            let now = Instant::now();
            if now >= ctx.deadline {
                return (Err(UpstreamError::deadline().with_upstream(name)), attempts);
            }
            let until = ctx.deadline.min(now + self.timeout);
            attempts += 1;
            let result = match tokio::time::timeout_at(until.into(), attempt()).await {
                Ok(r) => r,
                Err(_) if until >= ctx.deadline => Err(UpstreamError::deadline()),
                Err(_) => Err(UpstreamError::new(
                    ErrorKind::Timeout,
                    format!(
                        "no answer within the per-call timeout of {:?}",
                        self.timeout
                    ),
                )),
            };
            let err = match result {
                Ok(v) => return (Ok(v), attempts),
                Err(e) => e.with_upstream(name),
            };
            let retry = attempts - 1;
            if !err.is_retryable() || retry >= self.policy.max_retries {
                return (Err(err), attempts);
            }
            let Some(wait) = self.policy.delay(retry, err.retry_after) else {
                tracing::warn!(upstream = %name, error = %err, "Retry-After too long; giving up on this upstream");
                return (Err(err), attempts);
            };
            if !fits_before(ctx.deadline, wait) {
                tracing::warn!(upstream = %name, error = %err, "no time left to retry before the deadline");
                return (Err(err), attempts);
            }
            tracing::warn!(upstream = %name, error = %err, attempt = attempts, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn chat_impl(
        &self,
        req: ChatRequest,
        ctx: CallContext,
    ) -> Result<ChatOutcome, UpstreamError> {
        let (body, model, fits) = self
            .prepare(req, &ctx, false)
            .await
            .map_err(|e| e.with_upstream(&self.profile.name))?;
        let (result, attempts) = self
            .with_retries(&ctx, || async {
                let resp = self.send(&body, &ctx, false).await?;
                let bytes = resp.bytes().await.map_err(from_reqwest)?;
                parse_completion(&bytes)
            })
            .await;
        let response = result?;
        Ok(ChatOutcome {
            response,
            served_by: self.served_by(model, fits, attempts),
        })
    }

    async fn stream_impl(
        &self,
        req: ChatRequest,
        ctx: CallContext,
    ) -> Result<ChatStream, UpstreamError> {
        let name = self.profile.name.clone();
        let (body, model, fits) = self
            .prepare(req, &ctx, true)
            .await
            .map_err(|e| e.with_upstream(&name))?;
        let (resp, attempts) = self
            .with_retries(&ctx, || self.send(&body, &ctx, true))
            .await;
        let resp = resp?;
        let served_by = self.served_by(model, fits, attempts);
        let is_sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            // The server ignored `stream: true` and answered in one piece: replay it as one chunk.
            let bytes = tokio::time::timeout_at(ctx.deadline.into(), resp.bytes())
                .await
                .map_err(|_| UpstreamError::deadline().with_upstream(&name))?
                .map_err(|e| from_reqwest(e).with_upstream(&name))?;
            let chunk =
                response_to_chunk(parse_completion(&bytes).map_err(|e| e.with_upstream(&name))?);
            return Ok(ChatStream {
                served_by,
                chunks: Box::pin(futures_util::stream::iter([Ok(chunk)])),
            });
        }
        let state = SseState {
            body: Box::pin(resp.bytes_stream()),
            parser: SseParser::new(),
            pending: VecDeque::new(),
            done: false,
            deadline: ctx.deadline,
            idle: self.timeout,
            name,
        };
        Ok(ChatStream {
            served_by,
            chunks: Box::pin(futures_util::stream::unfold(state, SseState::next)),
        })
    }
}

/// Parses a 2xx body as a completion. An error object with a 2xx status (seen from proxies and
/// Gemini) is reported as such rather than as a decode failure.
fn parse_completion(bytes: &[u8]) -> Result<ChatResponse, UpstreamError> {
    match serde_json::from_slice::<ChatResponse>(bytes) {
        Ok(r) if !r.choices.is_empty() || !r.extra.contains_key("error") => Ok(r),
        _ => {
            let mut e = match serde_json::from_slice::<serde_json::Value>(bytes) {
                Ok(v) if is_error_body(&v) => UpstreamError::from_response(200, bytes, None),
                _ => UpstreamError::new(
                    ErrorKind::Decode,
                    format!(
                        "upstream answered 2xx with a body that is not a chat completion: {}",
                        String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                    ),
                ),
            };
            e.kind = ErrorKind::Decode;
            Err(e)
        }
    }
}

fn is_error_body(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Array(items) => items.first().is_some_and(|f| f.get("error").is_some()),
        other => other.get("error").is_some(),
    }
}

fn response_to_chunk(r: ChatResponse) -> ChatChunk {
    ChatChunk {
        id: r.id,
        object: "chat.completion.chunk".into(),
        created: r.created,
        model: r.model,
        usage: r.usage,
        extra: Default::default(),
        choices: r
            .choices
            .into_iter()
            .map(|c| ChunkChoice {
                index: c.index,
                finish_reason: c.finish_reason,
                extra: Default::default(),
                delta: Delta {
                    role: Some(c.message.role),
                    content: c.message.content.as_ref().map(|c| c.text()),
                    reasoning_content: c.message.reasoning_content,
                    tool_calls: c.message.tool_calls.map(|calls| {
                        calls
                            .into_iter()
                            .enumerate()
                            .map(|(i, t)| ToolCallDelta {
                                index: i as u32,
                                id: Some(t.id),
                                kind: Some(t.kind),
                                function: Some(FunctionCallDelta {
                                    name: Some(t.function.name),
                                    arguments: Some(t.function.arguments),
                                }),
                            })
                            .collect()
                    }),
                    extra: Default::default(),
                },
            })
            .collect(),
    }
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The state of an SSE response being turned into chunks.
struct SseState {
    body: ByteStream,
    parser: SseParser,
    pending: VecDeque<Result<ChatChunk, UpstreamError>>,
    done: bool,
    deadline: Instant,
    /// The longest silence tolerated between reads.
    idle: Duration,
    name: String,
}

impl SseState {
    async fn next(mut self) -> Option<(Result<ChatChunk, UpstreamError>, Self)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some((item, self));
            }
            if self.done {
                return None;
            }
            let wake = self.deadline.min(Instant::now() + self.idle);
            match tokio::time::timeout_at(wake.into(), self.body.next()).await {
                Err(_) => {
                    let e = if wake >= self.deadline {
                        UpstreamError::deadline()
                    } else {
                        UpstreamError::new(ErrorKind::Timeout, "the stream went silent")
                    };
                    self.fail(e);
                }
                Ok(None) => {
                    self.done = true;
                    if let Some(ev) = self.parser.finish() {
                        self.handle(ev);
                    }
                }
                Ok(Some(Err(e))) => {
                    let mut e = from_reqwest(e);
                    e.kind = ErrorKind::Stream;
                    self.fail(e);
                }
                Ok(Some(Ok(bytes))) => {
                    for ev in self.parser.push(&bytes) {
                        self.handle(ev);
                        if self.done {
                            break;
                        }
                    }
                }
            }
        }
    }

    fn fail(&mut self, e: UpstreamError) {
        self.done = true;
        self.pending.push_back(Err(e.with_upstream(&self.name)));
    }

    fn handle(&mut self, ev: SseEvent) {
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return;
        }
        let value: serde_json::Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => {
                let msg = format!("stream event is not JSON: {}", &data[..data.len().min(200)]);
                return self.fail(UpstreamError::new(ErrorKind::Decode, msg));
            }
        };
        if ev.event.as_deref() == Some("error") || is_error_body(&value) {
            let mut e = UpstreamError::from_response(200, data.as_bytes(), None);
            e.kind = ErrorKind::Stream;
            e.status = None;
            return self.fail(e);
        }
        match serde_json::from_value::<ChatChunk>(value) {
            Ok(chunk) => self.pending.push_back(Ok(chunk)),
            Err(e) => self.fail(UpstreamError::new(
                ErrorKind::Decode,
                format!("bad stream chunk: {e}"),
            )),
        }
    }
}

impl ChatBackend for HttpUpstream {
    fn chat<'a>(
        &'a self,
        req: ChatRequest,
        ctx: CallContext,
    ) -> BoxFuture<'a, Result<ChatOutcome, UpstreamError>> {
        Box::pin(self.chat_impl(req, ctx))
    }

    fn chat_stream<'a>(
        &'a self,
        req: ChatRequest,
        ctx: CallContext,
    ) -> BoxFuture<'a, Result<ChatStream, UpstreamError>> {
        Box::pin(self.stream_impl(req, ctx))
    }

    fn profile(&self) -> &Profile {
        &self.profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_with_2xx_are_not_completions() {
        let e = parse_completion(
            br#"[{"error":{"code":400,"message":"bad image","status":"INVALID_ARGUMENT"}}]"#,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Decode);
        assert_eq!(e.message, "bad image");
        let e = parse_completion(b"<html>").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Decode);
        assert!(parse_completion(
            br#"{"choices":[{"message":{"role":"assistant","content":"hi"}}]}"#
        )
        .is_ok());
    }

    #[test]
    fn debug_redacts_the_key() {
        let u = HttpUpstream::from_url("http://127.0.0.1:9/v1", "vllm", Some("sk-very-secret"))
            .unwrap();
        let d = format!("{u:?}");
        assert!(
            !d.contains("sk-very-secret") && d.contains("redacted"),
            "{d}"
        );
    }
}
