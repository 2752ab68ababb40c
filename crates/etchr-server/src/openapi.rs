//! The OpenAPI document, generated from the handlers' annotations. `openapi.yaml` at the
//! repository root is this document, committed; a test fails when it is stale.

use crate::error::{ErrorBody, ErrorDetail};
use crate::schema::{OpSchema, TransformSchema};
use crate::types::{EditMultipart, EditRequest, EditResponse, Status, Timings, ViewOut};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ETCHR sidecar",
        description = "Edits images for multimodal LLMs: crop, zoom, highlight, draw, enhance, grid, jigsaw and more, with exact provenance back to the original image. Errors use the OpenAI shape {\"error\":{\"message\",\"type\",\"param\",\"code\"}}.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    modifiers(&ClientAuthDoc),
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

/// Client API keys (`[security] api_keys`): a bearer scheme on every `/v1/` operation, which is
/// optional (an empty key list means open access), and the 401 and 429 answers they can give;
/// and the 415 every operation with a body gives for a body it cannot read.
struct ClientAuthDoc;

impl Modify for ClientAuthDoc {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        if let Some(c) = doc.components.as_mut() {
            c.add_security_scheme(
                "client_key",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "A client API key from [security] api_keys / ETCHR_API_KEYS, also \
                             accepted as `x-api-key`. Not needed when no keys are configured.",
                        ))
                        .build(),
                ),
            );
        }
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build()
        };
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let ops: [&mut Option<Operation>; 2] = [&mut item.get, &mut item.post];
            for op in ops.into_iter().flatten() {
                op.security = Some(vec![
                    SecurityRequirement::default(),
                    SecurityRequirement::new("client_key", Vec::<String>::new()),
                ]);
                let r = &mut op.responses.responses;
                r.entry("401".into()).or_insert_with(|| {
                    error("Client keys are configured and the request has none, or a wrong one")
                        .into()
                });
                r.entry("429".into()).or_insert_with(|| {
                    error("The client key is over its rate limit (Retry-After says when to retry)")
                        .into()
                });
                if op.request_body.is_some() {
                    r.entry("415".into()).or_insert_with(|| {
                        error("The body's Content-Type is not one this operation reads").into()
                    });
                }
            }
        }
    }
}

/// The document as YAML, as committed in `openapi.yaml`.
pub fn yaml() -> String {
    ApiDoc::openapi()
        .to_yaml()
        .expect("the OpenAPI document always serialises")
}
