//! HTTP handlers, one module per area.

pub mod chat;
pub mod common;
pub mod edit;
pub mod health;
pub mod models;
pub mod playground;
pub mod reason;

use crate::error::ApiError;
use axum::http::{Method, Uri};

/// Fallback for unknown routes: a JSON 404 instead of axum's empty one.
pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

/// Fallback for a known route with the wrong method.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
