//! Wire types of the HTTP API.
//!
//! The image travels as a `String` straight into a typed struct: no image payload ever passes
//! through `serde_json::Value`. Ops are kept as raw JSON values until [`crate::engine::parse_program`]
//! turns them into [`etchr_ops::Op`]s one by one, so a bad op is reported with its index.

use crate::config::FormatName;
use crate::schema::{binary_schema, coords_schema, OpSchema, TransformSchema};
use etchr_ops::{CoordSystem, Program, Transform};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/edit` as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    /// The image: a data URL (`data:image/png;base64,...`) or bare base64 of PNG, JPEG or WebP bytes;
    /// or an `http(s)` URL when the server's `[fetch]` policy allows it (off by default).
    #[schema(example = "data:image/png;base64,iVBORw0KGgo...")]
    pub image: String,
    /// The edit program, applied in order. When absent the program is planned from `question`
    /// by the editing model, in original-image pixels (422 `planner_unavailable` on a server
    /// started with `[model] enabled = false`; 503 `model_overloaded` with `Retry-After` while
    /// the model's queue is full). An empty array returns the image re-encoded.
    #[serde(default)]
    #[schema(value_type = Option<Vec<OpSchema>>)]
    pub ops: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    #[schema(schema_with = coords_schema)]
    pub coords: CoordSystem,
    /// For `coords: "qwen25"`: the model-input size `[width, height]` the boxes refer to.
    /// Defaults to Qwen2.5-VL's own resize of the image.
    #[serde(default)]
    pub resized: Option<[u32; 2]>,
    /// Output format for the JSON response (raw responses follow `Accept`). Default from config.
    #[serde(default)]
    pub format: Option<FormatName>,
    /// JPEG quality, 1-100. Default from config.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub quality: Option<u8>,
    /// The question the edit should help answer (used by the planner when `ops` is absent).
    #[serde(default)]
    pub question: Option<String>,
    /// Reasoning so far, for the planner.
    #[serde(default)]
    pub context: Option<String>,
}

/// `POST /v1/edit` as `multipart/form-data`: the same fields, with the image as a file part
/// and `ops` as a text part holding the JSON array.
#[derive(ToSchema)]
#[allow(dead_code)] // Documentation only: multipart bodies are read field by field.
pub struct EditMultipart {
    #[schema(schema_with = binary_schema)]
    image: Vec<u8>,
    /// The JSON array of ops, as text.
    // Multipart parts are present or absent, never null.
    #[schema(
        example = r#"[{"op":"crop","box":[0,0,100,100]},{"op":"zoom","factor":2}]"#,
        nullable = false
    )]
    ops: Option<String>,
    #[schema(schema_with = coords_schema)]
    coords: Option<String>,
    /// `W,H` or `[W,H]`.
    #[schema(nullable = false, pattern = r"^\[?\s*[0-9]+\s*,\s*[0-9]+\s*\]?$")]
    resized: Option<String>,
    #[schema(nullable = false)]
    format: Option<FormatName>,
    /// JPEG quality, 1-100.
    #[schema(nullable = false, minimum = 1, maximum = 100)]
    quality: Option<u8>,
    #[schema(nullable = false)]
    question: Option<String>,
    #[schema(nullable = false)]
    context: Option<String>,
}

/// The edited image and its provenance.
#[derive(Debug, Serialize, ToSchema)]
pub struct EditResponse {
    /// The (first) edited view as a data URL.
    pub image: String,
    pub width: u32,
    pub height: u32,
    /// The program as rendered: repaired (clamped, fixed, expanded) and in ORIGINAL-image pixels.
    #[schema(value_type = Vec<OpSchema>)]
    pub ops: Program,
    /// How the (first) view maps back to the original image.
    #[schema(value_type = TransformSchema)]
    pub transform: Transform,
    /// What validation changed, one line per repair.
    pub repairs: Vec<String>,
    /// Every view, present only when the program produced more than one (`tiles`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub views: Option<Vec<ViewOut>>,
    pub timings_ms: Timings,
}

/// One output view.
#[derive(Debug, Serialize, ToSchema)]
pub struct ViewOut {
    /// Data URL.
    pub image: String,
    pub width: u32,
    pub height: u32,
    #[schema(value_type = TransformSchema)]
    pub transform: Transform,
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct Timings {
    /// Base64 and image decoding.
    pub decode: f64,
    /// Planning with the editing model (absent when the request had `ops`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<f64>,
    /// Validation and rendering.
    pub render: f64,
    /// Image encoding and base64.
    pub encode: f64,
    /// The whole request as the handler saw it, including waiting for a render worker.
    pub total: f64,
}

/// `{"status": "ok"}` and friends.
#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    /// `ok`.
    pub status: &'static str,
}
