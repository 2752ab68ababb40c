//! The state of one run, and the two things every strategy does: call the upstream and edit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use etchr_ops::{decode_image, render, Op, Program, Rect, RgbImage, Transform};
use etchr_upstream::{
    CallContext, ChatRequest, ChatResponse, Content, ContentPart, Message, Tool, ToolCall, Usage,
};
use serde_json::Value;

use crate::answer::AnswerSource;
use crate::error::ReasonError;
use crate::image::{sniff_mime, LoopImage};
use crate::messages::enforce_image_budget;
use crate::planner::{ExplicitOps, PlanError, PlanRequest, Planner};
use crate::reasoner::{ReasonOutcome, ReasonRequest, Reasoner, Strategy};
use crate::trace::{
    add_usage, CallTrace, EditTrace, LoopTimings, RequestSummary, SentImage, StepKind, StepTrace,
    ToolCallSummary, Trace,
};

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// What one rendered edit produced, before it joins the session.
struct Rendered {
    program: Program,
    repairs: Vec<String>,
    image: LoopImage,
    rgb: Arc<RgbImage>,
    plan_ms: f64,
    render_ms: f64,
}

pub(crate) struct Session<'a> {
    pub r: &'a Reasoner,
    pub req: ReasonRequest,
    original_rgb: Arc<RgbImage>,
    pub original: LoopImage,
    pub extras: Vec<LoopImage>,
    /// Edited views; `views[k - 1]` is view k.
    pub views: Vec<LoopImage>,
    /// The latest view (what a planner looks at next).
    current: (Arc<RgbImage>, Transform),
    /// `sent / real` per view, from the latest call that carried it.
    scales: HashMap<usize, (f64, f64)>,
    steps: Vec<StepTrace>,
    usage: Usage,
    timings: LoopTimings,
    ctx: CallContext,
    started: Instant,
    soft_deadline: Instant,
    pub max_steps: usize,
    /// The planner for evr / progressive.
    planner: Arc<dyn Planner>,
    planner_name: String,
    seen_programs: Vec<String>,
    answer: Option<(String, AnswerSource, String)>,
    forced_final: bool,
    stop_reason: String,
    client_tool_calls: Vec<ToolCall>,
}

impl<'a> Session<'a> {
    pub async fn start(
        r: &'a Reasoner,
        mut req: ReasonRequest,
    ) -> Result<Session<'a>, ReasonError> {
        let started = Instant::now();
        let cfg = &r.config;
        let deadline = started + cfg.deadline;
        let soft_deadline = started
            + cfg
                .deadline
                .mul_f64(cfg.soft_deadline_fraction.clamp(0.0, 1.0));
        let bytes = std::mem::take(&mut req.image);
        let limits = cfg.decode;
        let (rgb, original) = tokio::task::spawn_blocking(move || {
            let rgb = decode_image(&bytes, &limits)?;
            let (w, h) = rgb.dimensions();
            let mime = sniff_mime(&bytes);
            let img = LoopImage::from_encoded(0, bytes, mime, w, h, Transform::identity());
            Ok::<_, ReasonError>((Arc::new(rgb), img))
        })
        .await
        .map_err(|e| ReasonError::Internal(format!("image decoding task failed: {e}")))??;
        let extras = std::mem::take(&mut req.extra_images)
            .into_iter()
            .map(|b| {
                let mime = sniff_mime(&b);
                LoopImage::from_encoded(usize::MAX, b, mime, 0, 0, Transform::identity())
            })
            .collect();
        let mut ctx = CallContext::new(deadline);
        if let Some(a) = &req.authorization {
            ctx = ctx.with_client_authorization(a);
        }
        if let Some(id) = &req.request_id {
            ctx = ctx.with_request_id(id.clone());
        }
        let (planner, planner_name): (Arc<dyn Planner>, String) = match (&req.ops, req.strategy) {
            (_, Strategy::Tools) => (r.fallback.clone(), "upstream_tools".to_string()),
            (Some(ops), _) => {
                let p = ExplicitOps::new(ops.clone());
                (Arc::new(p), ExplicitOps::NAME.to_string())
            }
            (None, _) => {
                let p = r.model.clone().unwrap_or_else(|| r.fallback.clone());
                let name = p.name().to_string();
                (p, name)
            }
        };
        let max_steps = req
            .max_steps
            .unwrap_or(cfg.max_steps)
            .min(cfg.max_steps_cap);
        Ok(Session {
            r,
            current: (rgb.clone(), Transform::identity()),
            original_rgb: rgb,
            original,
            extras,
            views: Vec::new(),
            scales: HashMap::new(),
            steps: Vec::new(),
            usage: Usage::default(),
            timings: LoopTimings::default(),
            ctx,
            started,
            soft_deadline,
            max_steps,
            planner,
            planner_name,
            seen_programs: Vec::new(),
            answer: None,
            forced_final: false,
            stop_reason: String::new(),
            client_tool_calls: Vec::new(),
            req,
        })
    }

    pub fn strategy(&self) -> Strategy {
        self.req.strategy
    }

    pub fn question(&self) -> String {
        self.req.question.clone()
    }

    /// The original and the client's extra images, as the first message carries them.
    pub fn base_images(&self) -> Vec<&LoopImage> {
        std::iter::once(&self.original)
            .chain(self.extras.iter())
            .collect()
    }

    /// View `k` (0 = the original).
    pub fn view(&self, k: usize) -> Option<&LoopImage> {
        match k {
            0 => Some(&self.original),
            k => self.views.get(k - 1),
        }
    }

    /// `sent / real` for view `k` in the latest call that carried it.
    pub fn scale_of(&self, k: usize) -> (f64, f64) {
        self.scales.get(&k).copied().unwrap_or((1.0, 1.0))
    }

    /// Whether the soft deadline has passed: start no new edit.
    pub fn past_soft_deadline(&self) -> bool {
        Instant::now() >= self.soft_deadline
    }

    pub fn set_answer(&mut self, answer: String, source: AnswerSource, text: String, stop: &str) {
        self.answer = Some((answer, source, text));
        self.stop_reason = stop.to_string();
    }

    /// The tools for a call that may answer: `own` (the loop's `edit_image`, with `own_choice`)
    /// plus the client's tools, whose `tool_choice` wins when they are present.
    pub fn answer_tools(&self, own: Option<(Tool, &str)>) -> Option<(Vec<Tool>, Value)> {
        let client = self
            .req
            .client_tools
            .as_ref()
            .filter(|c| !c.tools.is_empty());
        let mut tools: Vec<Tool> = own.iter().map(|(t, _)| t.clone()).collect();
        let mut choice = own.map(|(_, c)| Value::String(c.to_string()));
        if let Some(c) = client {
            tools.extend(c.tools.iter().cloned());
            choice = Some(
                c.choice
                    .clone()
                    .unwrap_or_else(|| Value::String("auto".into())),
            );
        }
        choice.map(|c| (tools, c))
    }

    /// When `resp` calls any of the client's tools, ends the run with those calls (they go back
    /// to the client) and returns true. Calls to the loop's own tools in the same reply are
    /// dropped: the client cannot run them.
    pub fn take_client_calls(&mut self, resp: &ChatResponse) -> bool {
        let Some(client) = &self.req.client_tools else {
            return false;
        };
        let Some(msg) = resp.message() else {
            return false;
        };
        let calls: Vec<ToolCall> = msg
            .tool_calls
            .iter()
            .flatten()
            .filter(|c| client.has(&c.function.name))
            .cloned()
            .collect();
        if calls.is_empty() {
            return false;
        }
        self.client_tool_calls = calls;
        self.set_answer(
            String::new(),
            AnswerSource::default(),
            msg.text_content(),
            "tool_calls",
        );
        true
    }

    pub fn set_forced(&mut self) {
        self.forced_final = true;
    }

    pub fn mark_helps(&mut self, step: usize, helps: bool) {
        if let Some(s) = self.steps.get_mut(step) {
            s.helps = Some(helps);
        }
    }

    fn push_step(
        &mut self,
        kind: StepKind,
        call: Option<CallTrace>,
        edit: Option<EditTrace>,
        error: Option<String>,
    ) -> usize {
        let index = self.steps.len();
        self.steps.push(StepTrace {
            index,
            kind,
            call,
            edit,
            helps: None,
            error,
        });
        index
    }

    /// Records a step that failed without ending the run.
    pub fn note_error(&mut self, kind: StepKind, error: String) {
        self.push_step(kind, None, None, Some(error));
    }

    /// One upstream call: history first, the image budget applied, everything traced. Returns
    /// the response and the index of its step.
    pub async fn call(
        &mut self,
        kind: StepKind,
        messages: Vec<Message>,
        tools: Option<(Vec<Tool>, Value)>,
    ) -> Result<(ChatResponse, usize), ReasonError> {
        if Instant::now() >= self.ctx.deadline {
            return Err(ReasonError::Deadline(self.r.config.deadline));
        }
        let mut all = self.req.history.clone();
        all.extend(messages);
        enforce_image_budget(&mut all, self.r.config.images_per_call);
        let sent_views = self.image_views(&all);
        let model = self.req.model.clone().unwrap_or_default();
        let mut request = ChatRequest::new(model.clone(), all);
        request.extra = self.req.params.clone();
        let mut summary = RequestSummary {
            model,
            messages: request.messages.len(),
            images: Vec::new(),
            tools: Vec::new(),
            tool_choice: None,
        };
        if let Some((tools, choice)) = tools {
            summary.tools = tools.iter().map(|t| t.function.name.clone()).collect();
            summary.tool_choice = Some(match &choice {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            request.tools = Some(tools);
            request.tool_choice = Some(choice);
            // With tools offered, the client's own are among them (`answer_tools`).
            if let Some(p) = self.req.client_tools.as_ref().and_then(|c| c.parallel) {
                request.extra.insert("parallel_tool_calls".into(), p.into());
            }
        }
        let t = Instant::now();
        let outcome = self.r.upstream.chat(request, self.ctx.clone()).await?;
        let call_ms = ms(t);
        self.timings.upstream += call_ms;
        let served = &outcome.served_by;
        for (i, view) in sent_views.iter().enumerate() {
            let fit = served.images.get(i);
            let (w, h) = match view.and_then(|v| self.view(v)) {
                Some(img) => (Some(img.info.width), Some(img.info.height)),
                None => (None, None),
            };
            if let (Some(v), Some(f)) = (view, fit) {
                self.scales.insert(*v, f.scale());
            }
            summary.images.push(SentImage {
                view: *view,
                width: w,
                height: h,
                sent_width: fit.and_then(|f| f.sent.map(|s| s.0)).or(w),
                sent_height: fit.and_then(|f| f.sent.map(|s| s.1)).or(h),
            });
        }
        let response = outcome.response;
        let usage = response.usage.clone().unwrap_or_default();
        add_usage(&mut self.usage, &usage);
        let message = response.message();
        let trace = CallTrace {
            request: summary,
            upstream: served.upstream.clone(),
            served_model: served.model.clone(),
            attempts: served.attempts,
            reply: response.text(),
            reasoning: message.and_then(|m| m.reasoning_content.clone()),
            tool_calls: message
                .and_then(|m| m.tool_calls.as_ref())
                .map(|calls| {
                    calls
                        .iter()
                        .map(|c| ToolCallSummary {
                            id: c.id.clone(),
                            name: c.function.name.clone(),
                            arguments: c.function.arguments.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            finish_reason: response
                .choices
                .first()
                .and_then(|c| c.finish_reason.clone()),
            usage,
            ms: call_ms,
        };
        let index = self.push_step(kind, Some(trace), None, None);
        Ok((response, index))
    }

    /// Which view each image part of `messages` is, in order.
    fn image_views(&self, messages: &[Message]) -> Vec<Option<usize>> {
        let mut out = Vec::new();
        for m in messages {
            if let Some(Content::Parts(parts)) = &m.content {
                for p in parts {
                    if let ContentPart::ImageUrl { image_url } = p {
                        let url = image_url.url.as_str();
                        let view = std::iter::once(&self.original)
                            .chain(self.views.iter())
                            .find(|v| v.data_url.len() == url.len() && &*v.data_url == url)
                            .map(|v| v.view);
                        out.push(view);
                    }
                }
            }
        }
        out
    }

    /// Asks the planner for the next edit of the latest view (progressive use) and renders
    /// it. `Ok(None)` means no new edit: the planner is exhausted, failed (recorded in the
    /// trace), or repeated a program.
    pub async fn plan_edit(
        &mut self,
        context: Option<String>,
    ) -> Result<Option<usize>, ReasonError> {
        let current = self.current.clone();
        self.plan_on(current, context, Vec::new()).await
    }

    /// Asks the planner for another edit of the ORIGINAL that avoids `avoid` (original pixels;
    /// the regions earlier candidates showed), and renders it; `Ok(None)` as for
    /// [`Self::plan_edit`].
    pub async fn plan_alternative(
        &mut self,
        avoid: Vec<Rect>,
    ) -> Result<Option<usize>, ReasonError> {
        let original = (self.original_rgb.clone(), Transform::identity());
        self.plan_on(original, None, avoid).await
    }

    async fn plan_on(
        &mut self,
        (rgb, transform): (Arc<RgbImage>, Transform),
        context: Option<String>,
        avoid: Vec<Rect>,
    ) -> Result<Option<usize>, ReasonError> {
        let planner = self.planner.clone();
        let original = self.original_rgb.clone();
        let question = self.req.question.clone();
        let step = self.views.len();
        let ctx = context.clone();
        let job = move || -> Result<(Program, f64), PlanError> {
            let t = Instant::now();
            let program = planner.plan(&PlanRequest {
                image: &rgb,
                transform: &transform,
                original_size: original.dimensions(),
                question: &question,
                context: ctx.as_deref(),
                step,
                avoid: &avoid,
            })?;
            Ok((program, ms(t)))
        };
        let planned = tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| ReasonError::Internal(format!("the planner task failed: {e}")))?;
        let (program, plan_ms) = match planned {
            Ok(p) => p,
            Err(PlanError::Exhausted) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "planner failed; continuing without an edit");
                self.note_error(StepKind::Edit, e.to_string());
                return Ok(None);
            }
        };
        let key = program.to_json();
        if self.seen_programs.contains(&key) {
            return Ok(None);
        }
        self.seen_programs.push(key);
        let name = self.planner_name.clone();
        let rendered = match self.render(program, plan_ms).await {
            Ok(r) => r,
            // A program the client sent is the client's to fix (422); one a planner proposed
            // that cannot be rendered (say, a `path` with no free route, which only the
            // renderer finds out) costs this edit, not the whole run.
            Err(ReasonError::Ops(e)) if name != ExplicitOps::NAME => {
                tracing::warn!(error = %e, planner = %name, "planned program does not render; continuing without an edit");
                self.note_error(
                    StepKind::Edit,
                    format!("the planned program does not render: {e}"),
                );
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        Ok(Some(self.add_view(rendered, StepKind::Edit, name, context)))
    }

    /// The part of the original that view `k` singled out, for asking a planner to look
    /// elsewhere: the view's extent when it is a crop (under 90 % of the original's area), else
    /// the region its program marks (a box on the whole image), else `None` (a rotation of the
    /// whole image shows everything). A program that `reframe`s names its regions in the
    /// reframed view (say, a tile of a restored jigsaw, whose extent in the shuffled original
    /// is scattered), so its region is the one it names.
    pub fn shown_region(&self, k: usize) -> Option<Rect> {
        let view = self.views.get(k.checked_sub(1)?)?;
        let program = self
            .steps
            .iter()
            .filter_map(|st| st.edit.as_ref())
            .find(|e| e.view == k)
            .map(|e| &e.program);
        let reframed = program.is_some_and(|p| p.ops().contains(&Op::Reframe));
        let (w, h) = self.original_rgb.dimensions();
        let extent = view
            .transform
            .rect_to_original(&Rect::full(view.info.width, view.info.height));
        if !reframed && extent.area() < 0.9 * Rect::full(w, h).area() {
            return Some(extent);
        }
        program.and_then(Program::focus)
    }

    /// Renders a program (original pixels) for the tools strategy; errors are the program's fault
    /// and go back to the upstream as text.
    pub async fn tool_edit(&mut self, program: Program) -> Result<usize, String> {
        match self.render(program, 0.0).await {
            Ok(r) => Ok(self.add_view(r, StepKind::Tool, "upstream_tools".into(), None)),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn render(&mut self, program: Program, plan_ms: f64) -> Result<Rendered, ReasonError> {
        let original = self.original_rgb.clone();
        let opts = self.r.config.render;
        let format = self.r.config.format;
        let view = self.views.len() + 1;
        let rendered = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let out = render(&original, &program, &opts)?;
            let first = out
                .views
                .into_iter()
                .next()
                .ok_or_else(|| ReasonError::Internal("the renderer returned no view".into()))?;
            let image = LoopImage::encode(view, &first.image, format, first.transform)?;
            Ok::<_, ReasonError>(Rendered {
                program: out.program,
                repairs: out.repairs,
                image,
                rgb: Arc::new(first.image),
                plan_ms,
                render_ms: ms(t),
            })
        })
        .await
        .map_err(|e| ReasonError::Internal(format!("the render task failed: {e}")))??;
        self.timings.plan += rendered.plan_ms;
        self.timings.render += rendered.render_ms;
        Ok(rendered)
    }

    fn add_view(
        &mut self,
        r: Rendered,
        kind: StepKind,
        planner: String,
        context: Option<String>,
    ) -> usize {
        let view = r.image.view;
        let edit = EditTrace {
            view,
            planner,
            program_text: etchr_ops::text::to_text(&r.program),
            program: r.program,
            context,
            repairs: r.repairs,
            image: r.image.info.clone(),
            transform: r.image.transform.clone(),
            plan_ms: r.plan_ms,
            render_ms: r.render_ms,
        };
        self.current = (r.rgb, r.image.transform.clone());
        self.views.push(r.image);
        self.push_step(kind, None, Some(edit), None);
        view
    }

    /// The finished run.
    pub fn finish(self) -> ReasonOutcome {
        let (answer, answer_source, final_text) = self.answer.unwrap_or_default();
        let mut timings = self.timings;
        timings.total = ms(self.started);
        timings.overhead = (timings.total - timings.upstream).max(0.0);
        let trace = Trace {
            id: self.req.request_id.clone().unwrap_or_default(),
            strategy: self.req.strategy,
            planner: self.planner_name,
            model: self.req.model.clone().unwrap_or_default(),
            question: self.req.question.clone(),
            original: self.original.info.clone(),
            steps: self.steps,
            answer,
            answer_source,
            final_text,
            client_tool_calls: self.client_tool_calls,
            forced_final: self.forced_final,
            stop_reason: self.stop_reason,
            usage: self.usage,
            timings_ms: timings,
        };
        ReasonOutcome {
            trace,
            original: self.original,
            views: self.views,
        }
    }
}
