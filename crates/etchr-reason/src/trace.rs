//! What a run did, step by step: the response body of `/v1/reason`, the `etchr` field of a
//! chat completion, and the payload of the trajectory log. Never holds image payloads: images are
//! named by hash and size (and by file path once logged).

use etchr_ops::{Program, Transform};
use etchr_upstream::{ToolCall, Usage};
use serde::{Deserialize, Serialize};

use crate::answer::AnswerSource;
use crate::reasoner::Strategy;

/// An image by hash and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Hex SHA-256 of the encoded bytes.
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    /// Encoded size in bytes.
    pub bytes: usize,
    pub mime: String,
    /// Where the trajectory log stored it (relative to the log directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// What a step was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The planner produced an edit and it was rendered.
    Edit,
    /// The upstream judged whether the edit helps (`evr`).
    Verify,
    /// The upstream reasoned (and possibly answered).
    Reason,
    /// The upstream called `edit_image` and the sidecar rendered it (`tools`).
    Tool,
    /// The budget ended: one last call asking for the answer.
    Final,
}

/// One image part of an upstream request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentImage {
    /// Which view (0 = the original; `None` for extra client images).
    pub view: Option<usize>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// The size the upstream received after fitting to its limits.
    pub sent_width: Option<u32>,
    pub sent_height: Option<u32>,
}

/// An upstream request, summarised (no payloads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestSummary {
    pub model: String,
    pub messages: usize,
    pub images: Vec<SentImage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<String>,
}

/// A tool call the upstream made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallSummary {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// One upstream call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallTrace {
    pub request: RequestSummary,
    /// The upstream that answered (its configured name) and the model it ran.
    pub upstream: String,
    pub served_model: String,
    pub attempts: u32,
    /// The reply's text.
    pub reply: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    pub usage: Usage,
    pub ms: f64,
}

/// One edit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EditTrace {
    /// The view this edit produced (1 for the first edit).
    pub view: usize,
    /// Which planner proposed it (`tile_search`, `explicit_ops`, `upstream_tools`, a model id).
    pub planner: String,
    /// The program as rendered: repaired, in original-image pixels.
    pub program: Program,
    /// The same program in the compact token form.
    pub program_text: String,
    /// The reasoning the planner was given (the training target's context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repairs: Vec<String>,
    pub image: ImageInfo,
    pub transform: Transform,
    pub plan_ms: f64,
    pub render_ms: f64,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTrace {
    pub index: usize,
    pub kind: StepKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallTrace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit: Option<EditTrace>,
    /// `evr`'s verdict: whether the edited image is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helps: Option<bool>,
    /// A step that failed without ending the run (a bad tool call, a planner error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where the time went, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopTimings {
    pub total: f64,
    /// Summed over every upstream call.
    pub upstream: f64,
    pub plan: f64,
    pub render: f64,
    /// `total - upstream`: what the sidecar itself cost.
    pub overhead: f64,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// The request id (`x-request-id`).
    pub id: String,
    pub strategy: Strategy,
    /// The planner that proposed edits (`upstream_tools` for the tools strategy).
    pub planner: String,
    /// The model asked for (empty: the upstream's configured model).
    pub model: String,
    pub question: String,
    pub original: ImageInfo,
    pub steps: Vec<StepTrace>,
    pub answer: String,
    pub answer_source: AnswerSource,
    /// The text of the reply the answer came from.
    pub final_text: String,
    /// When the upstream called one of the client's own tools (drop-in chat with `tools`): those
    /// calls, returned to the client instead of an answer (`stop_reason` = `tool_calls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_tool_calls: Vec<ToolCall>,
    /// Whether a budget ended the loop and a forced-answer call was made.
    pub forced_final: bool,
    /// Why the loop stopped: `answered`, `max_steps`, `deadline`, `planner_exhausted`, ...
    pub stop_reason: String,
    /// Summed over every upstream call.
    pub usage: Usage,
    pub timings_ms: LoopTimings,
}

impl Trace {
    /// The edits, in order.
    pub fn edits(&self) -> impl Iterator<Item = &EditTrace> {
        self.steps.iter().filter_map(|s| s.edit.as_ref())
    }

    /// How many upstream calls were made.
    pub fn calls(&self) -> usize {
        self.steps.iter().filter(|s| s.call.is_some()).count()
    }
}

/// Adds `b` into `a`, field by field.
pub fn add_usage(a: &mut Usage, b: &Usage) {
    a.prompt_tokens += b.prompt_tokens;
    a.completion_tokens += b.completion_tokens;
    a.total_tokens += b.total_tokens;
}
