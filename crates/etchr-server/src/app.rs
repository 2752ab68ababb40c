//! The router and its middleware stack.

use crate::config::CorsConfig;
use crate::error::ApiError;
use crate::routes;
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::any::Any;
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The API routes, before middleware. Extra routes (tests, future modules) can be merged in
/// before [`build`] wraps them.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/edit", post(routes::edit::edit))
        .route("/v1/reason", post(routes::reason::reason))
        .route("/v1/chat/completions", post(routes::chat::chat_completions))
        .route("/v1/models", get(routes::models::models))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        // The playground and trace viewer (static, embedded): `/` and `/playground/*`.
        .merge(routes::playground::routes())
}

/// The complete service.
pub fn router(state: AppState) -> Router {
    build(state, api_routes())
}

/// Wraps `routes` in the middleware stack. Outermost first, a request meets: request id,
/// tracing, request-id propagation, metrics, compression, panic catching, error
/// normalisation, CORS, timeout, client authentication and rate limits, body limits, then the
/// handler.
pub fn build(state: AppState, routes: Router<AppState>) -> Router {
    let cfg = state.config.clone();
    let limit = cfg.limits.body_limit_bytes;
    routes
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        // One limit, enforced by tower-http (refusing a declared Content-Length up front, and
        // counting bytes otherwise). axum's own default limit is switched off so the two do
        // not nest, which would hide the length-limit error from the extractors.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limit))
        // Before the body is read and any work is done; inside CORS, so preflights and the
        // refusals themselves carry CORS headers.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_key,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            cfg.request_timeout(),
        ))
        .layer(cors_layer(&cfg.cors))
        .layer(middleware::from_fn_with_state(state.clone(), normalize_errors))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(CompressionLayer::new().compress_when(compression_predicate()))
        .layer(middleware::from_fn_with_state(state.clone(), track_metrics))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Compress JSON and text, never images (already compressed), gRPC or server-sent events
/// (compression buffers, which would hold back streamed events).
pub fn compression_predicate() -> impl Predicate {
    SizeAbove::new(1024)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE)
}

fn cors_layer(cfg: &CorsConfig) -> CorsLayer {
    let origins = if cfg.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            cfg.allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::AUTHORIZATION,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-etchr-strategy"),
        ])
        .expose_headers([
            HeaderName::from_static("x-etchr-overhead-ms"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-etchr-width"),
            HeaderName::from_static("x-etchr-height"),
            HeaderName::from_static("x-etchr-transform"),
            HeaderName::from_static("x-etchr-repairs"),
            HeaderName::from_static("x-etchr-timings-ms"),
        ])
}

/// Rewrites error responses that did not come from [`ApiError`] (tower-http's 413 and timeout,
/// axum's own rejections) into the OpenAI error shape, keeping their other headers.
async fn normalize_errors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return res;
    }
    let (parts, _) = res.into_parts();
    let mut out =
        ApiError::from_status(status, state.config.limits.body_limit_bytes).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut()
                .entry(name)
                .or_insert_with(|| value.clone());
        }
    }
    out
}

/// Counts requests and their latency by matched route (bounded cardinality), method and status.
async fn track_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = match *req.method() {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::PATCH
        | Method::HEAD
        | Method::OPTIONS => req.method().as_str().to_string(),
        _ => "other".to_string(),
    };
    let res = next.run(req).await;
    state.metrics.record_request(
        &route,
        &method,
        res.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    res
}

/// A panicking handler becomes a 500 in the OpenAI shape; the process keeps serving.
fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "request handler panicked");
    ApiError::Internal(
        "internal error: the request handler panicked; this is a bug, please report it".into(),
    )
    .into_response()
}
