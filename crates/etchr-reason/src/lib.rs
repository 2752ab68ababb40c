//! ETCHR's reasoning loop: the sidecar edits the image while the upstream MLLM thinks.
//!
//! The loop knows upstreams only through [`etchr_upstream::ChatBackend`] and editing models only
//! through [`Planner`], so it builds and tests without candle or HTTP servers. Three strategies
//! ([`Strategy`]) share one [`Reasoner`]:
//!
//! - `evr`: edit → the upstream verifies the edit (`\boxed{1}` / `\boxed{0}`) → it reasons over
//!   `[original, edited]` if the edit helps, else over `[original]`; a rejected edit makes the
//!   planner propose the next candidate away from it, up to `max_steps` candidates;
//! - `progressive`: reason → edit conditioned on the reasoning so far → reason → ... until the
//!   upstream answers or a budget ends;
//! - `tools`: the upstream calls `edit_image` with an edit program in its own box convention.
//!
//! Every run yields a [`Trace`]; a [`TrajectoryLog`] appends traces crash-safely as the editing
//! model's training data.

pub mod answer;
pub mod error;
pub mod image;
pub mod messages;
pub mod planner;
pub mod prompt;
pub mod reasoner;
mod session;
mod strategy;
pub mod tools;
pub mod trace;
pub mod trajlog;

pub use answer::{extract_answer, final_answer, parse_verdict, AnswerSource};
pub use error::ReasonError;
pub use image::{sha256_hex, LoopImage};
pub use planner::{ExplicitOps, PlanError, PlanRequest, Planner, TileSearch};
pub use reasoner::{ClientTools, LoopConfig, ReasonOutcome, ReasonRequest, Reasoner, Strategy};
pub use trace::{CallTrace, EditTrace, ImageInfo, StepKind, StepTrace, Trace};
pub use trajlog::{TrajectoryLog, TrajectoryRecord};
