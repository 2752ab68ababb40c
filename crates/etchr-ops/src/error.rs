//! The one error type of the ops crate. Each variant says what went wrong in words a client can
//! act on; the server maps variants to HTTP statuses.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum OpsError {
    /// The bytes are not an image we can read (truncated, corrupt, unknown or unsupported format).
    #[error("could not decode the image: {0}")]
    Decode(String),
    /// The image is larger than the configured limit.
    #[error("image is {width}x{height} = {pixels} pixels, over the limit of {limit} pixels")]
    TooLarge {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    /// The image has no pixels.
    #[error("image is empty ({width}x{height})")]
    Empty { width: u32, height: u32 },
    /// An op cannot be repaired into something renderable.
    #[error("op {index} ({op}): {reason}")]
    InvalidOp {
        index: usize,
        op: &'static str,
        reason: String,
    },
    /// The program as a whole is not acceptable (too many ops, ...).
    #[error("invalid program: {0}")]
    InvalidProgram(String),
    /// The compact text form could not be parsed.
    #[error("could not parse the program text at byte {offset}: {reason}")]
    Parse { offset: usize, reason: String },
    /// Encoding the output failed (out of memory or an internal codec error).
    #[error("could not encode the image: {0}")]
    Encode(String),
}

impl OpsError {
    pub(crate) fn op(index: usize, op: &'static str, reason: impl Into<String>) -> Self {
        OpsError::InvalidOp {
            index,
            op,
            reason: reason.into(),
        }
    }
}
