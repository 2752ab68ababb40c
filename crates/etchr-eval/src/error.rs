//! The harness's one error type. Per-item upstream failures are *results* (recorded and counted
//! as wrong), not errors: only what stops the whole run is an [`EvalError`].

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A flag or flag combination that cannot run.
    #[error("{0}")]
    Args(String),
    /// The item set could not be read.
    #[error("reading the items: {0:#}")]
    Items(anyhow::Error),
    /// An output file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The upstream could not be configured (bad URL, unknown provider).
    #[error("upstream: {0}")]
    Upstream(#[from] etchr_upstream::UpstreamError),
    /// Serialising the results failed (a bug).
    #[error("serialising results: {0}")]
    Json(#[from] serde_json::Error),
    /// Earlier results could not be read, or two runs cannot be compared.
    #[error("{0}")]
    Results(String),
    /// The async runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl EvalError {
    pub(crate) fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Write {
            path: path.into(),
            source,
        }
    }
}
