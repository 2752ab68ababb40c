//! The one error type of the model crate.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    /// The inference queue is full: callers should back off (the server maps this to 503 with
    /// `Retry-After`) rather than wait without bound.
    #[error("the editing model is overloaded: its queue of {capacity} requests is full")]
    Overloaded { capacity: usize },
    /// The inference thread has stopped (it panicked or the model was dropped).
    #[error("the editing model worker has stopped")]
    WorkerGone,
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Ops(#[from] etchr_ops::OpsError),
    /// Weights or `config.json` that do not describe this architecture.
    #[error("invalid model weights or config: {0}")]
    Weights(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A token sequence outside the model's grammar, or a program outside its op subset.
    #[error("token form: {0}")]
    Tokens(String),
    /// A request the model cannot plan for (empty image, bad options).
    #[error("invalid input: {0}")]
    Input(String),
    /// A failure inside the model (a tensor error during a batch, a panic on the worker).
    #[error("internal model error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, ModelError>;
