//! The OpenAPI document, generated from the handlers' annotations. `openapi.yaml` at the
//! repository root is this document, committed; a test fails when it is stale.

use crate::error::{ErrorBody, ErrorDetail};
use crate::schema::{OpSchema, TransformSchema};
use crate::types::{EditMultipart, EditRequest, EditResponse, Status, Timings, ViewOut};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ETCHR sidecar",
        description = "Edits images for multimodal LLMs: crop, zoom, highlight, draw, enhance, grid, jigsaw and more, with exact provenance back to the original image. Errors use the OpenAI shape {\"error\":{\"message\",\"type\",\"param\",\"code\"}}.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        crate::routes::edit::edit,
        crate::routes::reason::reason,
        crate::routes::chat::chat_completions,
        crate::routes::models::models,
        crate::routes::health::healthz,
        crate::routes::health::readyz,
        crate::routes::health::metrics
    ),
    components(schemas(
        EditRequest,
        EditMultipart,
        EditResponse,
        ViewOut,
        Timings,
        Status,
        ErrorBody,
        ErrorDetail,
        crate::routes::reason::ReasonBody,
        crate::routes::reason::ReasonResponse,
        crate::routes::chat::ChatCompletionRequest,
        crate::routes::chat::EtchrOptions,
        OpSchema,
        TransformSchema
    )),
    tags(
        (name = "edit", description = "Image editing"),
        (name = "reason", description = "The reasoning loop: edit while the upstream MLLM thinks"),
        (name = "chat", description = "OpenAI-compatible drop-in: chat completions and models"),
        (name = "operations", description = "Health, readiness and metrics")
    )
)]
pub struct ApiDoc;

/// The document as YAML, as committed in `openapi.yaml`.
pub fn yaml() -> String {
    ApiDoc::openapi()
        .to_yaml()
        .expect("the OpenAPI document always serialises")
}
