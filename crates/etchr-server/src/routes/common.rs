//! Small helpers shared by the upstream-facing routes.

use crate::engine::{payload_bytes, ImagePayload};
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use etchr_reason::{ReasonOutcome, Strategy};
use etchr_upstream::ApiKey;
use std::time::Duration;

/// The request id set (or propagated) by the middleware.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The client's bearer token, for upstreams configured with `pass_through_auth`.
pub fn client_auth(headers: &HeaderMap) -> Option<ApiKey> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(ApiKey::from_authorization)
}

/// The raw `Authorization` header, for the loop's call context.
pub fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `x-etchr-strategy`, if sent, parsed as `T` (a loop [`Strategy`], or the chat route's mode,
/// which also knows `passthrough`); a value `T` rejects is a 400 naming the header.
pub fn strategy_header<T>(headers: &HeaderMap) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match headers.get("x-etchr-strategy") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .unwrap_or_default()
            .parse()
            .map(Some)
            .map_err(|e: T::Err| {
                ApiError::invalid_request(e.to_string(), Some("x-etchr-strategy"))
            }),
    }
}

/// Resolves a configured alias to the upstream's model name.
pub fn resolve_model(state: &AppState, model: Option<String>) -> Option<String> {
    let model = model.filter(|m| !m.trim().is_empty())?;
    Some(
        state
            .config
            .models
            .aliases
            .get(&model)
            .cloned()
            .unwrap_or(model),
    )
}

/// Sets `x-etchr-overhead-ms` and records the overhead histogram.
pub fn record_overhead(
    state: &AppState,
    res: &mut Response,
    route: &'static str,
    total: Duration,
    upstream: Duration,
) {
    let overhead = total.saturating_sub(upstream);
    state
        .metrics
        .record_overhead(route, overhead.as_secs_f64(), upstream.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", overhead.as_secs_f64() * 1000.0)) {
        res.headers_mut().insert("x-etchr-overhead-ms", v);
    }
}

/// Counts one finished loop by strategy and how it ended (its stop reason, or `error`).
pub fn record_loop(
    state: &AppState,
    strategy: Strategy,
    result: &Result<ReasonOutcome, etchr_reason::ReasonError>,
) {
    let outcome = match result {
        Ok(o) => o.trace.stop_reason.as_str(),
        Err(_) => "error",
    };
    state.metrics.record_loop(strategy.as_str(), outcome);
}

/// Appends a finished run to the trajectory log, when one is configured. Failures are logged,
/// never the client's problem. The append runs as tracked background work: it completes even
/// if the request is abandoned (client gone, deadline), and shutdown waits for it.
pub async fn log_trajectory(state: &AppState, outcome: &ReasonOutcome) {
    let Some(log) = state.upstream.as_ref().and_then(|u| u.trajectories.clone()) else {
        return;
    };
    let outcome = outcome.clone();
    match state
        .background
        .spawn_blocking(move || log.append(&outcome))
        .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "could not append to the trajectory log"),
        Err(e) => tracing::error!(error = %e, "the trajectory log task failed"),
    }
}

/// Whether an image field holds an `http(s)` URL rather than inline data.
fn is_remote(text: &str) -> bool {
    let t = text.trim_start().as_bytes();
    let starts = |p: &[u8]| t.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    starts(b"http://") || starts(b"https://")
}

/// Replaces an `http(s)` image URL by the fetched bytes, under the `[fetch]` policy (400
/// `image_url_not_allowed` when fetching is off or the URL is refused); inline payloads pass
/// through untouched.
pub async fn fetch_if_remote(
    state: &AppState,
    payload: ImagePayload,
) -> Result<ImagePayload, ApiError> {
    let ImagePayload::Text(text) = &payload else {
        return Ok(payload);
    };
    if !is_remote(text) {
        return Ok(payload);
    }
    let fetcher = state.fetcher.as_ref().ok_or_else(|| {
        ApiError::ImageUrlNotAllowed(
            "image URLs are not fetched (the server's [fetch] enabled = false): send the image \
             inline as a data:image/...;base64, URL"
                .into(),
        )
    })?;
    Ok(ImagePayload::Bytes(fetcher.fetch(text).await?.into()))
}

/// The bytes of an image field: a data URL or bare base64, or an `http(s)` URL fetched under
/// the `[fetch]` policy.
pub async fn image_bytes(state: &AppState, text: String) -> Result<Vec<u8>, ApiError> {
    let payload = fetch_if_remote(state, ImagePayload::Text(text)).await?;
    Ok(payload_bytes(&payload)?.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_are_told_from_inline_data() {
        for s in [
            "http://a/x.png",
            " HTTPS://a/x.png",
            "https://a",
            "http://127.0.0.1:9/x",
        ] {
            assert!(is_remote(s), "{s}");
        }
        for s in [
            "data:image/png;base64,AAAA",
            "iVBORw0KGgo",
            "http:",
            "",
            "httpx://a",
        ] {
            assert!(!is_remote(s), "{s}");
        }
    }
}
