//! The ETCHR editing model in candle.
//!
//! It reads an image (letterboxed to a square, cut into patches), the question and the
//! reasoning so far (bytes), and autoregressively emits an edit program of the `etchr-ops`
//! language through a small op vocabulary. Coordinates are not free bins: a **pointer head**
//! picks the image patch that holds a box centre or a point, and a small regression refines the
//! sub-patch offset and the box size (DESIGN.md, "The editing model on two cores").
//!
//! Module map:
//! - [`config`]: hyper-parameters, serialised as `config.json` beside the weights;
//! - [`vocab`], [`tokens`]: the op vocabulary and the token form ↔ [`etchr_ops::Program`];
//! - [`grammar`]: the state machine that masks logits so every output parses;
//! - [`preprocess`]: decoding, letterboxing, patches, and the coordinate maps back;
//! - [`nn`], [`encoder`], [`stem`], [`decoder`]: the network, written from differentiable
//!   primitives;
//! - [`model`]: [`EditingModel`] (load, save, plan), [`decode`]: constrained decoding;
//! - [`batch`], [`loss`]: teacher-forced training batches and the loss;
//! - [`refine`]: coarse-to-fine, the zoomed view for a second, refining call;
//! - [`worker`]: the inference thread behind a bounded queue, with micro-batching;
//! - [`glyphs`]: reading: a glyph classifier and the search for a quoted key;
//! - [`init`]: seeded initialisation (candle's CPU init is not seedable).

pub mod batch;
pub mod config;
pub mod decode;
pub mod decoder;
pub mod encoder;
pub mod error;
pub mod glyphs;
pub mod grammar;
pub mod init;
pub mod loss;
pub mod model;
pub mod nn;
pub mod ops;
pub mod pointer;
pub mod preprocess;
pub mod refine;
pub mod stem;
pub mod tokens;
pub mod vocab;
pub mod worker;

pub use batch::{Batch, TrainExample};
pub use config::{Activation, ModelConfig, TextAlign};
pub use decode::{DecodeOptions, Sampling, StepLogProb};
pub use error::ModelError;
pub use loss::LossParts;
pub use model::{select_device, EditingModel, ImageInput, PlanInput, PlanOutput, Timings};
pub use preprocess::{Letterbox, Prepared};
pub use refine::refine_view;
pub use tokens::{program_to_tokens, program_to_tokens_lossy, tokens_to_program, Frame, Token};
pub use vocab::{Sym, Vocab};
pub use worker::{ModelHandle, ModelWorker, Network, WorkerConfig};
