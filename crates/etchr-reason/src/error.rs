//! The loop's one error type.

use etchr_ops::OpsError;
use etchr_upstream::{ErrorKind, UpstreamError};

use crate::planner::PlanError;

/// Why a reasoning run failed. The server maps each case to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ReasonError {
    /// The request itself cannot run (no question, an undecodable image, a bad program).
    #[error("{0}")]
    InvalidRequest(String),
    /// The image could not be decoded or a program could not be rendered.
    #[error("{0}")]
    Ops(#[from] OpsError),
    /// The planner failed.
    #[error("{0}")]
    Plan(#[from] PlanError),
    /// An upstream call failed after its retries (and fallbacks).
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    /// The run's deadline passed before the upstream answered.
    #[error("the reasoning deadline of {0:?} passed before an answer")]
    Deadline(std::time::Duration),
    /// A blocking task panicked or was cancelled: a bug.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ReasonError {
    /// Whether this is a deadline, however it surfaced (our own check or the upstream client's).
    pub fn is_deadline(&self) -> bool {
        match self {
            ReasonError::Deadline(_) => true,
            ReasonError::Upstream(e) => e.kind == ErrorKind::DeadlineExceeded,
            _ => false,
        }
    }
}
