//! Probes and metrics: cheap, never touch the renderer.

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::types::Status;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

/// Liveness: the process is up and serving.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is alive", body = Status))
)]
pub async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: 503 once shutdown has begun, so load balancers stop routing here while
/// in-flight requests drain.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready for traffic", body = Status),
        (status = 503, description = "Shutting down", body = ErrorBody)
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    if state.is_draining() {
        return Err(ApiError::Unavailable("the server is shutting down".into()));
    }
    Ok(Json(Status { status: "ok" }))
}

/// Prometheus metrics in the text exposition format.
///
/// Open unless `security.metrics_token` is set; then it needs `Authorization: Bearer TOKEN`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "`security.metrics_token` is set and the request does not send it", body = crate::error::ErrorBody)
    )
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
