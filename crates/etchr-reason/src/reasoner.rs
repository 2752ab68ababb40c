//! The public face of the loop: configuration, request, outcome, and [`Reasoner::run`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use etchr_ops::{DecodeLimits, OutputFormat, Program, RenderOptions};
use etchr_upstream::{ChatBackend, Message, Tool};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ReasonError;
use crate::image::LoopImage;
use crate::planner::{Planner, TileSearch};
use crate::trace::Trace;

/// How the loop interleaves edits with upstream calls (see the crate docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Edit, verify, reason.
    #[default]
    Evr,
    /// Reason and edit in turns.
    Progressive,
    /// The upstream edits through `edit_image` tool calls.
    Tools,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Strategy::Evr, Strategy::Progressive, Strategy::Tools];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Evr => "evr",
            Strategy::Progressive => "progressive",
            Strategy::Tools => "tools",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = ReasonError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                ReasonError::InvalidRequest(format!(
                    "unknown strategy {s:?}: use evr, progressive or tools"
                ))
            })
    }
}

/// Budgets and limits of every run.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Most edits per run (a request may ask for fewer, never more than `max_steps_cap`).
    pub max_steps: usize,
    /// The most a request may ask for.
    pub max_steps_cap: usize,
    /// Most images in one upstream call (the original always stays; older edits go first).
    pub images_per_call: usize,
    /// The whole run's deadline.
    pub deadline: Duration,
    /// Once this fraction of the deadline is spent, no new edit starts: the loop asks for the
    /// answer with the time that is left.
    pub soft_deadline_fraction: f64,
    pub decode: DecodeLimits,
    pub render: RenderOptions,
    /// Encoding of edited views sent upstream.
    pub format: OutputFormat,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            max_steps: 3,
            max_steps_cap: 16,
            images_per_call: 4,
            deadline: Duration::from_secs(50),
            soft_deadline_fraction: 0.75,
            decode: DecodeLimits::default(),
            render: RenderOptions::default(),
            format: OutputFormat::Png,
        }
    }
}

/// One run's inputs.
#[derive(Debug, Clone, Default)]
pub struct ReasonRequest {
    /// The image to reason about and edit, encoded (PNG, JPEG or WebP).
    pub image: Vec<u8>,
    /// Further images the client sent; passed to the upstream with the first message, not edited.
    pub extra_images: Vec<Vec<u8>>,
    pub question: String,
    /// Messages before the question (system prompts, earlier text turns), sent first on every call.
    pub history: Vec<Message>,
    pub strategy: Strategy,
    /// Overrides [`LoopConfig::max_steps`] (capped).
    pub max_steps: Option<usize>,
    /// The upstream model; `None` uses the upstream's configured model.
    pub model: Option<String>,
    /// Explicit ops (original pixels): used as the edit instead of asking a planner.
    pub ops: Option<Program>,
    /// Sent upstream as `x-request-id` and used as the trace id.
    pub request_id: Option<String>,
    /// The client's `Authorization` header, for upstreams that pass it through.
    pub authorization: Option<String>,
    /// Extra request fields for every upstream call (`temperature`, `max_tokens`, ...).
    pub params: Map<String, Value>,
    /// The client's own tools (a drop-in chat request may carry them). They are offered on every
    /// call that may answer (never on verification calls); when the upstream calls one, the loop
    /// stops and the calls go back to the client, who runs them and continues the conversation.
    pub client_tools: Option<ClientTools>,
}

/// The client's tools and its `tool_choice` (absent: `auto`).
#[derive(Debug, Clone, Default)]
pub struct ClientTools {
    pub tools: Vec<Tool>,
    pub choice: Option<Value>,
    /// The client's `parallel_tool_calls`, sent only on calls that offer its tools (OpenAI
    /// rejects the field on a request without tools).
    pub parallel: Option<bool>,
}

impl ClientTools {
    pub fn has(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t.function.name == name)
    }
}

/// One run's result.
#[derive(Debug, Clone)]
pub struct ReasonOutcome {
    pub trace: Trace,
    pub original: LoopImage,
    /// Every edited view, in order (view 1 first).
    pub views: Vec<LoopImage>,
}

impl ReasonOutcome {
    pub fn answer(&self) -> &str {
        &self.trace.answer
    }
}

/// The loop orchestrator. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Reasoner {
    pub(crate) upstream: Arc<dyn ChatBackend>,
    /// The editing model, when loaded; else `fallback` plans.
    pub(crate) model: Option<Arc<dyn Planner>>,
    pub(crate) fallback: Arc<dyn Planner>,
    pub(crate) config: LoopConfig,
}

impl fmt::Debug for Reasoner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reasoner")
            .field("upstream", &self.upstream.profile().name)
            .field("model", &self.model.as_ref().map(|m| m.name().to_string()))
            .field("fallback", &self.fallback.name())
            .field("config", &self.config)
            .finish()
    }
}

impl Reasoner {
    /// A reasoner over `upstream`, planning with [`TileSearch`] until a model is attached.
    pub fn new(upstream: Arc<dyn ChatBackend>, config: LoopConfig) -> Self {
        Self {
            upstream,
            model: None,
            fallback: Arc::new(TileSearch::default()),
            config,
        }
    }

    /// Plans with the editing model (evr and progressive).
    pub fn with_planner(mut self, planner: Arc<dyn Planner>) -> Self {
        self.model = Some(planner);
        self
    }

    pub fn config(&self) -> &LoopConfig {
        &self.config
    }

    pub fn upstream(&self) -> &Arc<dyn ChatBackend> {
        &self.upstream
    }

    /// Runs the loop to an answer (or a budget's forced answer) or an error.
    pub async fn run(&self, request: ReasonRequest) -> Result<ReasonOutcome, ReasonError> {
        if request.question.trim().is_empty() {
            return Err(ReasonError::InvalidRequest("the question is empty".into()));
        }
        let mut session = crate::session::Session::start(self, request).await?;
        let result = match session.strategy() {
            crate::reasoner::Strategy::Evr => crate::strategy::evr(&mut session).await,
            crate::reasoner::Strategy::Progressive => {
                crate::strategy::progressive(&mut session).await
            }
            crate::reasoner::Strategy::Tools => crate::strategy::tools(&mut session).await,
        };
        result?;
        Ok(session.finish())
    }
}
