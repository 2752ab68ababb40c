//! ETCHR's upstream client: OpenAI-compatible chat completions against vLLM, DashScope (Qwen),
//! Gemini, Moonshot (Kimi) and OpenAI.
//!
//! The reasoning loop sees upstreams only through [`ChatBackend`]. Behind it, [`HttpUpstream`]
//! shapes requests for its provider ([`profile`], [`shape`]), fits images to the provider's limits
//! ([`images`]), retries with backoff inside the request's deadline ([`retry`]), streams SSE
//! ([`sse`]) and normalises every error shape into one [`UpstreamError`]; [`FallbackChain`] tries
//! upstreams in order.
//!
//! ```no_run
//! # async fn demo() -> Result<(), etchr_upstream::UpstreamError> {
//! use std::time::Duration;
//! use etchr_upstream::{CallContext, ChatBackend, ChatRequest, Message, Role};
//!
//! let upstream = etchr_upstream::HttpUpstream::from_url("http://gpu:8000/v1", "vllm", None)?;
//! let req = ChatRequest::new("Qwen/Qwen3-VL-8B-Instruct", vec![Message::text(Role::User, "hi")]);
//! let out = upstream.chat(req, CallContext::with_budget(Duration::from_secs(30))).await?;
//! println!("{}", out.response.text());
//! # Ok(()) }
//! ```

pub mod backend;
pub mod client;
pub mod config;
pub mod error;
pub mod fallback;
pub mod fetch;
pub mod images;
pub mod profile;
pub mod retry;
pub mod shape;
pub mod sse;
pub mod types;

use std::sync::Arc;

pub use backend::{BoxFuture, CallContext, ChatBackend, ChatOutcome, ChatStream, ServedBy};
pub use client::{http_client, HttpUpstream};
pub use config::{ApiKey, UpstreamConfig, KEY_ENV};
pub use error::{ErrorKind, UpstreamError};
pub use fallback::FallbackChain;
pub use fetch::{FetchError, FetchPolicy, ImageFetcher};
pub use images::{DecodeLimits, ImageFit};
pub use profile::{BoxConvention, ImageLimits, Profile, Provider, QwenRegion};
pub use retry::RetryPolicy;
pub use types::*;

/// Builds the backend a config describes: one [`HttpUpstream`], or a [`FallbackChain`] when the
/// config lists fallbacks (all members share one connection pool).
pub fn build(config: &UpstreamConfig) -> Result<Arc<dyn ChatBackend>, UpstreamError> {
    build_with(config, None, DecodeLimits::default())
}

/// Like [`build`], with an [`ImageFetcher`] for upstreams that need `http(s)` images inlined
/// (without one, such requests are refused) and the largest image decoded to fit one
/// (`decode`; the server passes its `[limits]`).
pub fn build_with(
    config: &UpstreamConfig,
    fetcher: Option<ImageFetcher>,
    decode: DecodeLimits,
) -> Result<Arc<dyn ChatBackend>, UpstreamError> {
    config.validate()?;
    let client = http_client()?;
    let member = |config: &UpstreamConfig| -> Result<Arc<dyn ChatBackend>, UpstreamError> {
        Ok(Arc::new(
            HttpUpstream::with_client(config, client.clone())?
                .with_fetcher(fetcher.clone())
                .with_decode_limits(decode),
        ))
    };
    let primary = member(config)?;
    if config.fallback.is_empty() {
        return Ok(primary);
    }
    let mut members = vec![primary];
    for fb in &config.fallback {
        push_flattened(fb, &member, &mut members)?;
    }
    Ok(Arc::new(FallbackChain::new(members)?))
}

/// Builds one member of a fallback chain from its config.
type MemberFn<'a> = dyn Fn(&UpstreamConfig) -> Result<Arc<dyn ChatBackend>, UpstreamError> + 'a;

/// Nested fallback lists are flattened depth-first, in order.
fn push_flattened(
    config: &UpstreamConfig,
    member: &MemberFn<'_>,
    out: &mut Vec<Arc<dyn ChatBackend>>,
) -> Result<(), UpstreamError> {
    out.push(member(config)?);
    for fb in &config.fallback {
        push_flattened(fb, member, out)?;
    }
    Ok(())
}
