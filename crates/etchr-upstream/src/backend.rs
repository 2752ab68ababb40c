//! The trait the reasoning loop talks to, and what travels with each call.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::Stream;

use crate::config::ApiKey;
use crate::error::UpstreamError;
use crate::images::ImageFit;
use crate::profile::{BoxConvention, Profile, Provider};
use crate::types::{ChatChunk, ChatRequest, ChatResponse};

/// A boxed, sendable future: keeps [`ChatBackend`] object-safe so the loop can hold
/// `Arc<dyn ChatBackend>` and tests can swap in fakes.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Per-call inputs that are not part of the request body.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// Nothing — attempts, backoff sleeps, stream reads — runs past this instant.
    pub deadline: Instant,
    /// The calling client's bearer token, used instead of the configured key when the upstream is
    /// configured with `pass_through_auth`.
    pub authorization: Option<ApiKey>,
    /// Sent upstream as `x-request-id`, so one id follows a request through every hop.
    pub request_id: Option<String>,
}

impl CallContext {
    pub fn new(deadline: Instant) -> Self {
        Self {
            deadline,
            authorization: None,
            request_id: None,
        }
    }

    /// Attaches the request id forwarded upstream as `x-request-id`.
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// A context whose deadline is `budget` from now.
    pub fn with_budget(budget: Duration) -> Self {
        Self::new(Instant::now() + budget)
    }

    /// Attaches the client's `Authorization` header value (`Bearer ...`).
    pub fn with_client_authorization(mut self, header: &str) -> Self {
        self.authorization = ApiKey::from_authorization(header);
        self
    }

    /// Time left before the deadline (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Which upstream actually answered, and what was done to the request's images: the loop needs
/// both to read boxes in the answer (a fallback may answer in another convention, and a resized
/// image changes pixel coordinates).
#[derive(Debug, Clone, PartialEq)]
pub struct ServedBy {
    pub upstream: String,
    pub provider: Provider,
    pub model: String,
    pub box_convention: BoxConvention,
    /// One entry per image part of the request, in order.
    pub images: Vec<ImageFit>,
    /// HTTP attempts made on this upstream (1 + retries).
    pub attempts: u32,
}

/// A completed call.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatOutcome {
    pub response: ChatResponse,
    pub served_by: ServedBy,
}

/// A stream of chunks with the same provenance as [`ChatOutcome`]. Ends after `[DONE]`; a failure
/// mid-stream is yielded as one `Err` and ends the stream.
pub struct ChatStream {
    pub served_by: ServedBy,
    pub chunks: Pin<Box<dyn Stream<Item = Result<ChatChunk, UpstreamError>> + Send>>,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("served_by", &self.served_by)
            .finish_non_exhaustive()
    }
}

impl Stream for ChatStream {
    type Item = Result<ChatChunk, UpstreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.chunks.as_mut().poll_next(cx)
    }
}

/// An upstream MLLM reached over chat completions. Implemented by [`crate::HttpUpstream`] and
/// [`crate::FallbackChain`]; the loop holds `Arc<dyn ChatBackend>`.
pub trait ChatBackend: Send + Sync {
    /// One non-streaming completion, with retries, within `ctx.deadline`.
    fn chat<'a>(
        &'a self,
        req: ChatRequest,
        ctx: CallContext,
    ) -> BoxFuture<'a, Result<ChatOutcome, UpstreamError>>;

    /// A streaming completion. Retries cover establishing the stream; once chunks flow, a failure
    /// ends the stream with an error.
    fn chat_stream<'a>(
        &'a self,
        req: ChatRequest,
        ctx: CallContext,
    ) -> BoxFuture<'a, Result<ChatStream, UpstreamError>>;

    /// The (first) upstream's profile.
    fn profile(&self) -> &Profile;
}
