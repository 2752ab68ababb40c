//! The seam where the editing model plugs in.
//!
//! The server knows the model only through [`Planner`], so it builds and tests without candle.
//! `POST /v1/edit` without `ops` asks the planner for a program; with no planner configured it
//! answers 422 `planner_unavailable`.

use etchr_ops::{Program, RgbImage};

/// What the planner is asked.
pub struct PlanRequest<'a> {
    /// The decoded original image.
    pub image: &'a RgbImage,
    /// The question the edit should help answer.
    pub question: &'a str,
    /// Reasoning so far, if any (the progressive strategy conditions on it).
    pub context: Option<&'a str>,
}

/// Produces an edit program for an image and a question.
///
/// Called on a blocking thread (model inference is CPU/GPU-bound), so implementations may block.
pub trait Planner: Send + Sync {
    /// A short name for logs and metrics, e.g. the model id.
    fn name(&self) -> &str;

    /// The program to render, in original-image pixels.
    fn plan(&self, request: &PlanRequest<'_>) -> Result<Program, PlanError>;
}

/// Why planning failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The request cannot be planned (e.g. an empty question).
    #[error("{0}")]
    Invalid(String),
    /// The model failed.
    #[error("the editing model failed: {0}")]
    Model(String),
}

impl From<PlanError> for crate::error::ApiError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Invalid(m) => crate::error::ApiError::invalid_request(m, Some("question")),
            e @ PlanError::Model(_) => crate::error::ApiError::Internal(e.to_string()),
        }
    }
}
