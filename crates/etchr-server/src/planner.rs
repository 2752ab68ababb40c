//! The seam where the editing model plugs in.
//!
//! The trait lives in `etchr-reason` so that the reasoning loop and `/v1/edit` share ONE
//! [`Planner`]; it is re-exported here. The server knows the model only through it, so it builds
//! and tests without candle (the `etchr` binary wraps `etchr-model` in a `ModelPlanner` and
//! attaches it with [`crate::AppState::with_planner`]). `POST /v1/edit` without `ops` asks the
//! planner for a program; with no planner attached it answers 422 `planner_unavailable`; a full
//! model queue ([`PlanError::Overloaded`]) is a fast 503 `model_overloaded` with `Retry-After`.

pub use etchr_reason::planner::{PlanError, PlanRequest, Planner};

impl From<PlanError> for crate::error::ApiError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::Invalid(m) => crate::error::ApiError::invalid_request(m, Some("question")),
            PlanError::Overloaded(m) => crate::error::ApiError::ModelOverloaded(m),
            e @ (PlanError::Model(_) | PlanError::Exhausted) => {
                crate::error::ApiError::Internal(e.to_string())
            }
        }
    }
}
