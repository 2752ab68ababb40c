//! `GET /v1/models`: the upstream's models plus the configured aliases.

use crate::error::{ApiError, ErrorBody};
use crate::routes::common::client_auth;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

/// List models.
///
/// The upstream's `GET /models`, with one entry added per alias in `[models.aliases]`
/// (`owned_by: "etchr"`, `etchr_alias_of` naming the real model).
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "chat",
    responses(
        (status = 200, description = "An OpenAI-style model list", body = Object),
        (status = 502, description = "The upstream could not be reached or answered badly", body = ErrorBody),
        (status = 503, description = "No upstream is configured", body = ErrorBody)
    )
)]
pub async fn models(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let up = state.upstream()?;
    let auth = client_auth(&headers);
    let mut list = up.proxy.models(auth.as_ref()).await?;
    if !list.is_object() {
        list = json!({"object": "list", "data": list});
    }
    let data = list
        .as_object_mut()
        .expect("made an object above")
        .entry("data")
        .or_insert_with(|| json!([]));
    if !data.is_array() {
        *data = json!([]);
    }
    let arr = data.as_array_mut().expect("made an array above");
    for (alias, target) in &state.config.models.aliases {
        arr.push(json!({
            "id": alias,
            "object": "model",
            "created": 0,
            "owned_by": "etchr",
            "etchr_alias_of": target,
        }));
    }
    Ok(Json(list))
}
