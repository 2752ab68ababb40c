//! `POST /v1/reason`: run the reasoning loop on an image and a question.

use crate::engine::parse_program;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::routes::common::{
    authorization, image_bytes, log_trajectory, record_loop, record_overhead, request_id,
    resolve_model,
};
use crate::schema::{coords_schema, OpSchema};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use etchr_ops::{decode_image, Adapter, CoordSystem};
use etchr_reason::trace::LoopTimings;
use etchr_reason::{AnswerSource, ReasonRequest, StepTrace, Strategy};
use etchr_upstream::Usage;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// `POST /v1/reason`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// The image (data URL or bare base64; an `http(s)` URL when `[fetch]` allows it). Or use
    /// `images`, whose first entry is edited.
    #[serde(default)]
    pub image: Option<String>,
    /// Several images; the first is the one edited, the others are passed along as context.
    #[serde(default)]
    pub images: Option<Vec<String>>,
    pub question: String,
    /// `evr`, `progressive` or `tools`; default from `[reason] strategy`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "evr")]
    pub strategy: Option<Strategy>,
    /// Most edits; default from `[reason] max_steps`, capped by `max_steps_cap`.
    #[serde(default)]
    pub max_steps: Option<usize>,
    /// The upstream model (or an alias); default: the upstream's configured model.
    #[serde(default)]
    pub model: Option<String>,
    /// Explicit ops: the edit to use instead of asking a planner (`evr`, `progressive`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<OpSchema>>)]
    pub ops: Option<Vec<serde_json::Value>>,
    /// Coordinate convention of `ops`.
    #[serde(default)]
    #[schema(schema_with = coords_schema)]
    pub coords: CoordSystem,
    /// Return the edited images as data URLs.
    #[serde(default)]
    pub return_images: bool,
}

/// The answer and the trace of the run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReasonResponse {
    /// The request id.
    pub id: String,
    pub answer: String,
    /// `boxed`, `answer_tag` or `text`.
    #[schema(value_type = String)]
    pub answer_source: AnswerSource,
    /// The reply the answer came from.
    pub final_text: String,
    #[schema(value_type = String)]
    pub strategy: Strategy,
    /// Which planner proposed the edits: `tile_search` (the question-blind fallback),
    /// `explicit_ops`, `upstream_tools` or the editing model's name.
    pub planner: String,
    /// Each step: upstream calls (summarised, never payloads) and edits (program JSON and text
    /// form, image hash and size, transform, timings).
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<StepTrace>,
    /// Summed over every upstream call.
    #[schema(value_type = Object)]
    pub usage: Usage,
    #[schema(value_type = Object)]
    pub timings_ms: LoopTimings,
    /// Whether a budget ended the loop and the answer was forced.
    pub forced_final: bool,
    pub stop_reason: String,
    /// The edited images as data URLs, when `return_images` was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
}

/// Reason about an image with the upstream MLLM, editing it along the way.
#[utoipa::path(
    post,
    path = "/v1/reason",
    tag = "reason",
    request_body(content = ReasonBody, content_type = "application/json", example = json!({
        "image": "data:image/png;base64,iVBORw0KGgo...",
        "question": "What is written on the small sign?",
        "strategy": "evr",
        "max_steps": 2
    })),
    responses(
        (status = 200, description = "The answer and the trace", body = ReasonResponse),
        (status = 400, description = "Malformed JSON, no image, an undecodable image", body = ErrorBody),
        (status = 422, description = "Explicit ops that cannot be rendered", body = ErrorBody),
        (status = 429, description = "The upstream is rate limiting; see Retry-After", body = ErrorBody),
        (status = 502, description = "The upstream failed after retries", body = ErrorBody),
        (status = 503, description = "No upstream is configured", body = ErrorBody),
        (status = 504, description = "The loop's deadline passed", body = ErrorBody)
    )
)]
pub async fn reason(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ReasonBody>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let up = state.upstream()?.clone();
    let _slot = state
        .loops
        .try_enter()
        .inspect_err(|_| state.metrics.record_rejected_loop())?;
    let mut texts = body.images.unwrap_or_default();
    if let Some(i) = body.image {
        texts.insert(0, i);
    }
    if texts.is_empty() {
        return Err(ApiError::invalid_request(
            "send `image` or `images`",
            Some("image"),
        ));
    }
    let mut images = Vec::with_capacity(texts.len());
    for t in texts {
        images.push(image_bytes(&state, t).await?);
    }
    let ops = match body.ops {
        None => None,
        Some(ops) => {
            let program = parse_program(ops, state.config.limits.max_ops)?;
            if body.coords == CoordSystem::Pixel {
                Some(program)
            } else {
                // Normalised conventions need the image size.
                let bytes = images[0].clone();
                let limits = state.config.decode_limits();
                let (w, h) = tokio::task::spawn_blocking(move || {
                    decode_image(&bytes, &limits).map(|i| i.dimensions())
                })
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))??;
                Some(Adapter::new(body.coords, w, h, None).program_to_pixels(&program))
            }
        }
    };
    let image = images.remove(0);
    let req = ReasonRequest {
        image,
        extra_images: images,
        question: body.question,
        history: Vec::new(),
        strategy: body.strategy.unwrap_or(state.config.reason.strategy),
        max_steps: body.max_steps,
        model: resolve_model(&state, body.model),
        ops,
        request_id: request_id(&headers),
        authorization: authorization(&headers),
        params: Default::default(),
        client_tools: None,
    };
    let strategy = req.strategy;
    let outcome = up.reasoner.run(req).await;
    record_loop(&state, strategy, &outcome);
    let outcome = outcome?;
    log_trajectory(&state, &outcome).await;
    let images = body.return_images.then(|| {
        outcome
            .views
            .iter()
            .map(|v| v.data_url.to_string())
            .collect()
    });
    let t = outcome.trace;
    let upstream = Duration::from_secs_f64(t.timings_ms.upstream / 1000.0);
    let resp = ReasonResponse {
        id: t.id,
        answer: t.answer,
        answer_source: t.answer_source,
        final_text: t.final_text,
        strategy: t.strategy,
        planner: t.planner,
        steps: t.steps,
        usage: t.usage,
        timings_ms: t.timings_ms,
        forced_final: t.forced_final,
        stop_reason: t.stop_reason,
        images,
    };
    let mut res = (StatusCode::OK, axum::Json(resp)).into_response();
    record_overhead(&state, &mut res, "/v1/reason", started.elapsed(), upstream);
    Ok(res)
}
