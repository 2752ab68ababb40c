//! The one place where errors become HTTP responses.
//!
//! Every failure a client can see leaves as [`ApiError`], rendered in the OpenAI error shape
//! `{"error":{"message","type","param","code"}}` so OpenAI-compatible clients surface our
//! messages unchanged. Responses produced outside our handlers (tower-http's body limit and
//! timeout, axum's method router) are rewritten into the same shape by
//! [`crate::app::normalize_errors`], which uses [`ApiError::from_status`].

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use etchr_ops::OpsError;
use etchr_reason::ReasonError;
use etchr_upstream::{ErrorKind, UpstreamError};
use serde::Serialize;
use thiserror::Error;
use utoipa::ToSchema;

/// Everything that can go wrong in the server crate, by what the client should do about it.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The body is not syntactically valid JSON.
    #[error("{0}")]
    InvalidJson(String),
    /// The request is well-formed but a field is missing, mistyped or out of range.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    /// The image field is not a decodable PNG, JPEG or WebP (bad base64, wrong MIME, corrupt).
    #[error("{0}")]
    InvalidImage(String),
    /// Neither JSON nor multipart.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The request body is over the configured limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The image is over the configured pixel or side limit.
    #[error("{0}")]
    ImageTooLarge(String),
    /// The edit program cannot be rendered; the message names the op index.
    #[error("{message}")]
    InvalidProgram {
        message: String,
        param: Option<String>,
    },
    /// Planning from a question needs the editing model, which this server does not have.
    #[error("{0}")]
    PlannerUnavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The request ran past the configured deadline.
    #[error("{0}")]
    Timeout(String),
    /// Too much work queued; retry shortly.
    #[error("{0}")]
    Overloaded(String),
    /// The editing model's queue is full; retry shortly.
    #[error("{0}")]
    ModelOverloaded(String),
    /// The server is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// The upstream MLLM failed, after retries and fallbacks: 429 stays 429 (with
    /// `Retry-After`), deadlines are 504, the upstream's own 4xx keep their status, everything
    /// else (5xx, resets, garbage) is 502.
    #[error("{0}")]
    Upstream(UpstreamError),
    /// No client API key, or not a valid one.
    #[error("{0}")]
    Unauthorized(String),
    /// The client's key is over its rate limit.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    /// An `http(s)` image URL that may not be fetched: fetching is off, the host is not on the
    /// allowlist, or it is a private address.
    #[error("{0}")]
    ImageUrlNotAllowed(String),
    /// Fetching an allowed image URL failed (connection, HTTP status, timeout).
    #[error("{0}")]
    ImageFetchFailed(String),
    /// A route that needs an upstream was called on a server configured without one.
    #[error("{0}")]
    NoUpstream(String),
    /// A bug or an environmental failure; details go to the log.
    #[error("{0}")]
    Internal(String),
}

/// The OpenAI error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// One error, as OpenAI-compatible clients expect it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// What went wrong, in words a person can act on.
    pub message: String,
    /// `invalid_request_error` for client errors, `server_error` for ours.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The request field at fault, when there is one (e.g. `image`, `ops[2]`).
    pub param: Option<String>,
    /// A stable snake_case code, e.g. `invalid_json`, `image_too_large`, `invalid_program`.
    pub code: &'static str,
}

impl ApiError {
    pub fn invalid_request(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            param: param.map(str::to_string),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidRequest { .. }
            | ApiError::InvalidImage(_)
            | ApiError::ImageUrlNotAllowed(_)
            | ApiError::ImageFetchFailed(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) | ApiError::ImageTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::InvalidProgram { .. } | ApiError::PlannerUnavailable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Overloaded(_) | ApiError::ModelOverloaded(_) | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Upstream(e) => upstream_status(e),
            ApiError::NoUpstream(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidRequest { .. } => "invalid_request",
            ApiError::InvalidImage(_) => "invalid_image",
            ApiError::Unauthorized(_) => "invalid_api_key",
            ApiError::RateLimited { .. } => "rate_limit_exceeded",
            ApiError::ImageUrlNotAllowed(_) => "image_url_not_allowed",
            ApiError::ImageFetchFailed(_) => "image_fetch_failed",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::ImageTooLarge(_) => "image_too_large",
            ApiError::InvalidProgram { .. } => "invalid_program",
            ApiError::PlannerUnavailable(_) => "planner_unavailable",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Timeout(_) => "timeout",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::ModelOverloaded(_) => "model_overloaded",
            ApiError::Unavailable(_) => "shutting_down",
            ApiError::Upstream(e) => match e.kind {
                ErrorKind::RateLimited => "upstream_rate_limited",
                ErrorKind::DeadlineExceeded | ErrorKind::Timeout => "upstream_timeout",
                ErrorKind::InvalidRequest => "invalid_request",
                ErrorKind::ImageTooLarge => "image_too_large",
                ErrorKind::Config => "upstream_misconfigured",
                ErrorKind::Auth => "upstream_auth_failed",
                ErrorKind::Api if e.status.is_some_and(|s| (400..500).contains(&s)) => {
                    "upstream_rejected"
                }
                _ => "upstream_error",
            },
            ApiError::NoUpstream(_) => "upstream_not_configured",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn param(&self) -> Option<String> {
        match self {
            ApiError::InvalidRequest { param, .. } | ApiError::InvalidProgram { param, .. } => {
                param.clone()
            }
            ApiError::InvalidImage(_)
            | ApiError::ImageTooLarge(_)
            | ApiError::ImageUrlNotAllowed(_)
            | ApiError::ImageFetchFailed(_) => Some("image".into()),
            ApiError::Upstream(e) if e.kind == ErrorKind::ImageTooLarge => Some("image".into()),
            ApiError::PlannerUnavailable(_) => Some("ops".into()),
            _ => None,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let status = self.status();
        ErrorBody {
            error: ErrorDetail {
                message: self.to_string(),
                kind: if status.is_server_error() {
                    "server_error"
                } else {
                    "invalid_request_error"
                },
                param: self.param(),
                code: self.code(),
            },
        }
    }

    /// The error for a bare status produced by middleware that knows nothing of our shape.
    /// `body_limit` fills in the 413 message.
    pub fn from_status(status: StatusCode, body_limit: usize) -> ApiError {
        match status {
            StatusCode::NOT_FOUND => ApiError::NotFound("no such route".into()),
            StatusCode::METHOD_NOT_ALLOWED => {
                ApiError::MethodNotAllowed("method not allowed on this route".into())
            }
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(format!(
                "request body is larger than the limit of {body_limit} bytes"
            )),
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ApiError::Timeout(
                "the request did not complete within the configured timeout".into(),
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::UnsupportedMediaType("unsupported content type".into())
            }
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Overloaded("service unavailable".into()),
            s if s.is_client_error() => ApiError::InvalidRequest {
                message: s.canonical_reason().unwrap_or("bad request").to_lowercase(),
                param: None,
            },
            s => ApiError::Internal(
                s.canonical_reason()
                    .unwrap_or("internal error")
                    .to_lowercase(),
            ),
        }
    }
}

/// The status a client sees for an upstream failure.
fn upstream_status(e: &UpstreamError) -> StatusCode {
    match e.kind {
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::DeadlineExceeded | ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorKind::ImageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Config => StatusCode::INTERNAL_SERVER_ERROR,
        // The upstream refused the request itself (400, 404 model not found, 413, 422): the
        // client can act on that status.
        ErrorKind::Api => match e.status.and_then(|s| StatusCode::from_u16(s).ok()) {
            Some(s) if s.is_client_error() && s != StatusCode::REQUEST_TIMEOUT => s,
            _ => StatusCode::BAD_GATEWAY,
        },
        ErrorKind::Auth | ErrorKind::Connect | ErrorKind::Decode | ErrorKind::Stream => {
            StatusCode::BAD_GATEWAY
        }
    }
}

impl From<etchr_upstream::FetchError> for ApiError {
    fn from(e: etchr_upstream::FetchError) -> Self {
        use etchr_upstream::FetchError as F;
        let message = e.to_string();
        match e {
            F::InvalidUrl(_) => ApiError::InvalidImage(message),
            F::HostNotAllowed(_) | F::AddressNotAllowed(_) => ApiError::ImageUrlNotAllowed(message),
            F::TooLarge(_) => ApiError::ImageTooLarge(message),
            F::Timeout(_) | F::Failed(_) => ApiError::ImageFetchFailed(message),
        }
    }
}

impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> Self {
        ApiError::Upstream(e)
    }
}

impl From<ReasonError> for ApiError {
    fn from(e: ReasonError) -> Self {
        match e {
            ReasonError::InvalidRequest(m) => ApiError::invalid_request(m, None),
            ReasonError::Ops(e) => e.into(),
            ReasonError::Plan(e) => e.into(),
            ReasonError::Upstream(e) => ApiError::Upstream(e),
            e @ ReasonError::Deadline(_) => ApiError::Timeout(e.to_string()),
            ReasonError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> Self {
        let message = e.to_string();
        match e {
            OpsError::Decode(_) | OpsError::Empty { .. } => ApiError::InvalidImage(message),
            OpsError::TooLarge { .. } => ApiError::ImageTooLarge(message),
            OpsError::InvalidOp { index, .. } => ApiError::InvalidProgram {
                message,
                param: Some(format!("ops[{index}]")),
            },
            OpsError::InvalidProgram(_) => ApiError::InvalidProgram {
                message,
                param: Some("ops".into()),
            },
            OpsError::Parse { .. } => ApiError::invalid_request(message, Some("ops")),
            OpsError::Encode(_) => ApiError::Internal(message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(code = self.code(), "{self}");
        } else {
            tracing::debug!(code = self.code(), "{self}");
        }
        let mut res = (status, axum::Json(self.body())).into_response();
        if matches!(
            self,
            ApiError::Overloaded(_) | ApiError::ModelOverloaded(_) | ApiError::Unavailable(_)
        ) {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::RateLimited { retry_after, .. } = &self {
            let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, ApiError::Unauthorized(_)) {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"etchr\""),
            );
        }
        if let ApiError::Upstream(e) = &self {
            if e.kind == ErrorKind::RateLimited {
                let secs = e
                    .retry_after
                    .map_or(1, |d| d.as_secs_f64().ceil().max(1.0) as u64);
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_errors_map_to_statuses() {
        let e: ApiError = OpsError::InvalidOp {
            index: 2,
            op: "crop",
            reason: "empty".into(),
        }
        .into();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.param().as_deref(), Some("ops[2]"));
        let e: ApiError = OpsError::TooLarge {
            width: 1,
            height: 1,
            pixels: 1,
            limit: 0,
        }
        .into();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            ApiError::from(OpsError::Decode("x".into())).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ApiError::from(OpsError::Encode("x".into())).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn an_image_too_large_to_fit_an_upstream_is_a_413_on_the_image() {
        let e = ApiError::from(UpstreamError::new(
            ErrorKind::ImageTooLarge,
            "the image is 30000x30000",
        ));
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.code(), "image_too_large");
        assert_eq!(e.param().as_deref(), Some("image"));
        assert_eq!(e.body().error.kind, "invalid_request_error");
    }

    #[test]
    fn body_has_the_openai_shape() {
        let v = serde_json::to_value(ApiError::Timeout("slow".into()).body()).unwrap();
        assert_eq!(v["error"]["message"], "slow");
        assert_eq!(v["error"]["type"], "server_error");
        assert_eq!(v["error"]["code"], "timeout");
        assert!(v["error"]["param"].is_null());
    }

    #[test]
    fn model_overload_is_a_503_with_retry_after() {
        let res = ApiError::ModelOverloaded("queue full".into()).into_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        let e = ApiError::ModelOverloaded("queue full".into());
        assert_eq!(e.code(), "model_overloaded");
        assert_eq!(e.body().error.kind, "server_error");
    }
}
