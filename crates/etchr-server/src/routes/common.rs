//! Small helpers shared by the upstream-facing routes.

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

/// `x-etchr-strategy`, if sent.
pub fn strategy_header(headers: &HeaderMap) -> Result<Option<Strategy>, ApiError> {
    match headers
        .get("x-etchr-strategy")
        .and_then(|v| v.to_str().ok())
    {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|e: etchr_reason::ReasonError| {
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

/// Appends a finished run to the trajectory log, when one is configured. Failures are logged,
/// never the client's problem.
pub async fn log_trajectory(state: &AppState, outcome: &ReasonOutcome) {
    let Some(log) = state.upstream.as_ref().and_then(|u| u.trajectories.clone()) else {
        return;
    };
    let outcome = outcome.clone();
    match tokio::task::spawn_blocking(move || log.append(&outcome)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "could not append to the trajectory log"),
        Err(e) => tracing::error!(error = %e, "the trajectory log task failed"),
    }
}
