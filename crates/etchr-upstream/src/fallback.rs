//! Ordered fallback across upstreams.
//!
//! A deployment typically has a preferred upstream (a local vLLM) and a paid one behind it. The chain
//! tries each in order and moves on when one fails in a way another might not (see
//! [`UpstreamError::should_fall_back`]): overload, outages, exhausted retries, a refused key. It does
//! not move on when the request itself is at fault or the deadline has passed. Each member applies
//! its own retries first, so the chain sees only final failures.

use std::sync::Arc;
use std::time::Instant;

use crate::backend::{BoxFuture, CallContext, ChatBackend, ChatOutcome, ChatStream};
use crate::error::UpstreamError;
use crate::profile::Profile;
use crate::types::ChatRequest;

/// Upstreams tried in order; itself a [`ChatBackend`].
#[derive(Clone)]
pub struct FallbackChain {
    upstreams: Vec<Arc<dyn ChatBackend>>,
}

impl std::fmt::Debug for FallbackChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .upstreams
            .iter()
            .map(|u| u.profile().name.as_str())
            .collect();
        f.debug_struct("FallbackChain")
            .field("upstreams", &names)
            .finish()
    }
}

impl FallbackChain {
    /// A chain over `upstreams`, tried first to last; at least one is required.
    pub fn new(upstreams: Vec<Arc<dyn ChatBackend>>) -> Result<Self, UpstreamError> {
        if upstreams.is_empty() {
            return Err(UpstreamError::config(
                "a fallback chain needs at least one upstream",
            ));
        }
        Ok(Self { upstreams })
    }

    pub fn upstreams(&self) -> &[Arc<dyn ChatBackend>] {
        &self.upstreams
    }

    /// Runs `call` on each upstream in turn until one succeeds or a failure should not fall back.
    async fn run<'a, T, F>(&'a self, ctx: &CallContext, mut call: F) -> Result<T, UpstreamError>
    where
        F: FnMut(&'a dyn ChatBackend) -> BoxFuture<'a, Result<T, UpstreamError>>,
    {
        let last = self.upstreams.len() - 1;
        for (i, upstream) in self.upstreams.iter().enumerate() {
            let err = match call(upstream.as_ref()).await {
                Ok(v) => return Ok(v),
                Err(e) => e.with_upstream(&upstream.profile().name),
            };
            if i == last || !err.should_fall_back() || Instant::now() >= ctx.deadline {
                return Err(err);
            }
            let next = &self.upstreams[i + 1].profile().name;
            tracing::warn!(error = %err, next = %next, "upstream failed; falling back");
        }
        unreachable!("the loop returns on the last upstream")
    }
}

impl ChatBackend for FallbackChain {
    fn chat<'a>(
        &'a self,
        req: ChatRequest,
        ctx: CallContext,
    ) -> BoxFuture<'a, Result<ChatOutcome, UpstreamError>> {
        Box::pin(async move {
            let c = ctx.clone();
            self.run(&ctx, move |u| u.chat(req.clone(), c.clone()))
                .await
        })
    }

    fn chat_stream<'a>(
        &'a self,
        req: ChatRequest,
        ctx: CallContext,
    ) -> BoxFuture<'a, Result<ChatStream, UpstreamError>> {
        Box::pin(async move {
            let c = ctx.clone();
            self.run(&ctx, move |u| u.chat_stream(req.clone(), c.clone()))
                .await
        })
    }

    fn profile(&self) -> &Profile {
        self.upstreams[0].profile()
    }
}
