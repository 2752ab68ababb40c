//! Running items through the upstream: the one-shot conditions (direct, oracle, random, tiles)
//! call the upstream client themselves with the loop's own prompts and answer extraction; the
//! `etchr` condition runs the loop (`Reasoner`) unchanged.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etchr_data::Item;
use etchr_ops::{decode_image, DecodeLimits};
use etchr_reason::image::LoopImage;
use etchr_reason::{final_answer, messages, prompt, ReasonRequest, Reasoner, Strategy};
use etchr_upstream::{CallContext, ChatBackend, ChatRequest, UpstreamError};
use serde_json::{Map, Value};

use crate::condition::Condition;
use crate::prepare::{prepare, EditKnobs, Prepared, PreparedEdit};
use crate::results::{matches_loose, matches_strict, ConditionResult, ItemRecord, ViewRecord};
use crate::thumbs::Thumbs;

/// What every item of a run shares.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    pub items_dir: PathBuf,
    pub conditions: Vec<Condition>,
    pub strategy: Strategy,
    pub max_steps: Option<usize>,
    /// Sent as the request's model; `None` leaves it to the upstream's configured model.
    pub model: Option<String>,
    /// Extra request fields on every call (`temperature`, `max_tokens`).
    pub params: Map<String, Value>,
    pub knobs: EditKnobs,
    pub images_per_call: usize,
    /// One condition's whole budget for one item.
    pub deadline: Duration,
}

/// Runs items. Cheap to clone (everything heavy is behind `Arc`).
#[derive(Clone)]
pub struct Harness {
    backend: Arc<dyn ChatBackend>,
    reasoner: Reasoner,
    opts: Arc<HarnessOptions>,
    thumbs: Thumbs,
}

/// One upstream call's result.
struct Asked {
    reply: String,
    ms: f64,
    images: usize,
    pixels: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
}

/// The `tiles` condition's words: like the loop's `with_edit`, for several crops. It names no
/// answer format (code/number/value) so the question's own words decide it.
fn tiles_prompt(question: &str, tiles: usize) -> String {
    format!(
        "{}\n\nThe {} images after the first are crops of the first image, covering it in a \
         grid from top left to bottom right, enlarged for a closer look.\n{}",
        question.trim(),
        tiles,
        prompt::ANSWER_FORMAT
    )
}

/// The most frequent non-empty answer (ties go to the earliest); empty if all are empty.
fn vote(answers: &[String]) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for a in answers.iter().filter(|a| !a.trim().is_empty()) {
        *counts.entry(a.as_str()).or_default() += 1;
    }
    let best = counts.values().copied().max().unwrap_or(0);
    answers
        .iter()
        .find(|a| !a.trim().is_empty() && counts.get(a.as_str()) == Some(&best))
        .cloned()
        .unwrap_or_default()
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

impl Harness {
    pub fn new(
        backend: Arc<dyn ChatBackend>,
        reasoner: Reasoner,
        opts: HarnessOptions,
        thumbs: Thumbs,
    ) -> Self {
        Self {
            backend,
            reasoner,
            opts: Arc::new(opts),
            thumbs,
        }
    }

    /// Runs every condition on one item; `on_condition` is called after each (progress).
    pub async fn run_item(&self, item: Item, on_condition: impl Fn(Condition)) -> ItemRecord {
        let opts = self.opts.clone();
        let it = item.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            prepare(&it, &opts.items_dir, &opts.conditions, opts.knobs)
        })
        .await
        .unwrap_or_else(|e| Err(format!("preparing the item panicked: {e}")));
        let mut record = ItemRecord {
            id: item.id.clone(),
            family: item.family,
            question: item.question.clone(),
            gold: item.answer.clone(),
            answer_format: item.answer_format,
            small_text: item.small_text,
            answer_text_px_at_1024: item.answer_text_px_at_1024,
            width: item.width,
            height: item.height,
            gold_program: item.gold_program_text.clone(),
            thumb: None,
            results: Vec::new(),
        };
        let prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                for &c in &self.opts.conditions {
                    record
                        .results
                        .push(ConditionResult::failed(c, e.clone(), 0.0));
                    on_condition(c);
                }
                return record;
            }
        };
        record.thumb = self
            .thumbs
            .write(&item.id, "original", prepared.rgb.clone())
            .await;
        for &c in &self.opts.conditions {
            let mut r = self.run_condition(&item, &prepared, c).await;
            r.correct = r.error.is_none() && matches_strict(&r.answer, &item.answer);
            r.correct_loose = r.error.is_none() && matches_loose(&r.answer, &item.answer);
            record.results.push(r);
            on_condition(c);
        }
        record
    }

    async fn run_condition(&self, item: &Item, p: &Prepared, c: Condition) -> ConditionResult {
        let q = &item.question;
        match c {
            Condition::Direct => {
                self.one_shot(item, c, prompt::question(q), p, &PreparedEdit::default())
                    .await
            }
            Condition::Oracle => {
                self.one_shot(item, c, prompt::with_edit(q), p, &p.oracle)
                    .await
            }
            Condition::Random => {
                self.one_shot(item, c, prompt::with_edit(q), p, &p.random)
                    .await
            }
            Condition::Tiles => self.tiles(item, p).await,
            Condition::Etchr => self.etchr(item, p).await,
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.opts.deadline
    }

    async fn ask(
        &self,
        text: String,
        images: &[&LoopImage],
        request_id: String,
        deadline: Instant,
    ) -> Result<Asked, UpstreamError> {
        let mut req = ChatRequest::new(
            self.opts.model.clone().unwrap_or_default(),
            vec![messages::user(text, images)],
        );
        req.extra = self.opts.params.clone();
        let t = Instant::now();
        let out = self
            .backend
            .chat(req, CallContext::new(deadline).with_request_id(request_id))
            .await?;
        let usage = out.response.usage.clone().unwrap_or_default();
        Ok(Asked {
            reply: out.response.text(),
            ms: ms(t),
            images: out.served_by.images.len(),
            pixels: out
                .served_by
                .images
                .iter()
                .filter_map(|f| f.sent.or(f.original))
                .map(|(w, h)| w as u64 * h as u64)
                .sum(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        })
    }

    /// Thumbnails and records of the views an edit made.
    async fn view_records(&self, id: &str, c: Condition, edit: &PreparedEdit) -> Vec<ViewRecord> {
        let mut out = Vec::new();
        for (k, v) in edit.views.iter().enumerate() {
            let thumb = self
                .thumbs
                .write(id, &format!("{c}-{}", k + 1), v.rgb.clone())
                .await;
            out.push(ViewRecord {
                label: v.label.clone(),
                program: v.program.clone(),
                width: v.image.info.width,
                height: v.image.info.height,
                thumb,
            });
        }
        out
    }

    /// `[original]` (direct) or `[original, edited]` (oracle, random) in one call.
    async fn one_shot(
        &self,
        item: &Item,
        c: Condition,
        text: String,
        p: &Prepared,
        edit: &PreparedEdit,
    ) -> ConditionResult {
        if let Some(e) = &edit.error {
            return ConditionResult::failed(c, e.clone(), edit.ms);
        }
        let t = Instant::now();
        let mut images = vec![&p.original];
        images.extend(edit.views.iter().map(|v| &v.image));
        let asked = self
            .ask(
                text,
                &images,
                format!("eval-{}-{c}", item.id),
                self.deadline(),
            )
            .await;
        let total = ms(t) + edit.ms;
        let mut r = match asked {
            Ok(a) => {
                let (answer, _) = final_answer(&a.reply);
                ConditionResult {
                    answer,
                    calls: 1,
                    images_sent: a.images,
                    pixels_sent: a.pixels,
                    prompt_tokens: a.prompt_tokens,
                    completion_tokens: a.completion_tokens,
                    upstream_ms: a.ms,
                    total_ms: total,
                    added_ms: (total - a.ms).max(0.0),
                    reply: a.reply,
                    ..ConditionResult::new(c)
                }
            }
            Err(e) => ConditionResult::failed(c, format!("upstream: {e}"), total),
        };
        r.notes = edit.notes.clone();
        r.views = self.view_records(&item.id, c, edit).await;
        r
    }

    /// `[original, tile_1..k]`, split over as few calls as `images_per_call` allows; with
    /// several calls the answer is the most frequent non-empty one.
    async fn tiles(&self, item: &Item, p: &Prepared) -> ConditionResult {
        let c = Condition::Tiles;
        let edit = &p.tiles;
        if let Some(e) = &edit.error {
            return ConditionResult::failed(c, e.clone(), edit.ms);
        }
        let t = Instant::now();
        let deadline = self.deadline();
        let per_call = self.opts.images_per_call.saturating_sub(1).max(1);
        let mut r = ConditionResult::new(c);
        let mut answers = Vec::new();
        let mut replies = Vec::new();
        for (k, chunk) in edit.views.chunks(per_call).enumerate() {
            let mut images = vec![&p.original];
            images.extend(chunk.iter().map(|v| &v.image));
            let text = tiles_prompt(&item.question, chunk.len());
            match self
                .ask(
                    text,
                    &images,
                    format!("eval-{}-tiles-{k}", item.id),
                    deadline,
                )
                .await
            {
                Ok(a) => {
                    r.calls += 1;
                    r.images_sent += a.images;
                    r.pixels_sent += a.pixels;
                    r.prompt_tokens += a.prompt_tokens;
                    r.completion_tokens += a.completion_tokens;
                    r.upstream_ms += a.ms;
                    answers.push(final_answer(&a.reply).0);
                    replies.push(a.reply);
                }
                Err(e) => {
                    r.error = Some(format!("upstream: {e}"));
                    break;
                }
            }
        }
        r.answer = vote(&answers);
        r.reply = replies.join("\n---\n");
        r.total_ms = ms(t) + edit.ms;
        r.added_ms = (r.total_ms - r.upstream_ms).max(0.0);
        r.views = self.view_records(&item.id, c, edit).await;
        r
    }

    /// Through the loop, exactly as `etchr reason` and the server run it.
    async fn etchr(&self, item: &Item, p: &Prepared) -> ConditionResult {
        let c = Condition::Etchr;
        let t = Instant::now();
        let request = ReasonRequest {
            image: p.original.bytes.as_ref().clone(),
            question: item.question.clone(),
            strategy: self.opts.strategy,
            max_steps: self.opts.max_steps,
            model: self.opts.model.clone(),
            request_id: Some(format!("eval-{}-etchr", item.id)),
            params: self.opts.params.clone(),
            ..Default::default()
        };
        let outcome = match self.reasoner.run(request).await {
            Ok(o) => o,
            Err(e) => return ConditionResult::failed(c, e.to_string(), ms(t)),
        };
        let trace = &outcome.trace;
        let mut r = ConditionResult::new(c);
        r.answer = trace.answer.clone();
        r.reply = trace.final_text.clone();
        r.calls = trace.calls();
        for call in trace.steps.iter().filter_map(|s| s.call.as_ref()) {
            r.images_sent += call.request.images.len();
            r.pixels_sent += call
                .request
                .images
                .iter()
                .map(|i| {
                    let w = i.sent_width.or(i.width).unwrap_or(0) as u64;
                    let h = i.sent_height.or(i.height).unwrap_or(0) as u64;
                    w * h
                })
                .sum::<u64>();
        }
        r.prompt_tokens = trace.usage.prompt_tokens;
        r.completion_tokens = trace.usage.completion_tokens;
        r.upstream_ms = trace.timings_ms.upstream;
        r.total_ms = trace.timings_ms.total;
        r.added_ms = trace.timings_ms.overhead;
        r.edit_helps = trace.steps.iter().rev().find_map(|s| s.helps);
        r.stop_reason = Some(trace.stop_reason.clone());
        let edits: Vec<_> = trace.edits().collect();
        r.first_focus_iou = edits.first().map(|e| {
            e.program
                .focus()
                .map_or(0.0, |focus| focus.iou(&item.gold_region))
        });
        for (k, view) in outcome.views.iter().enumerate() {
            let bytes = view.bytes.clone();
            let rgb = tokio::task::spawn_blocking(move || {
                decode_image(&bytes, &DecodeLimits::default()).ok()
            })
            .await
            .ok()
            .flatten();
            let thumb = match rgb {
                Some(rgb) => {
                    self.thumbs
                        .write(&item.id, &format!("etchr-{}", k + 1), Arc::new(rgb))
                        .await
                }
                None => None,
            };
            let e = edits.iter().find(|e| e.view == view.view);
            r.views.push(ViewRecord {
                label: format!(
                    "step {} ({})",
                    view.view,
                    e.map_or(trace.planner.as_str(), |e| e.planner.as_str())
                ),
                program: e.map(|e| e.program_text.clone()).unwrap_or_default(),
                width: view.info.width,
                height: view.info.height,
                thumb,
            });
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_prefers_frequent_then_early_non_empty() {
        let v = |xs: &[&str]| vote(&xs.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["", "A", "B", "B"]), "B");
        assert_eq!(v(&["A", "B"]), "A");
        assert_eq!(v(&["", ""]), "");
        assert_eq!(v(&[]), "");
    }

    #[test]
    fn tiles_prompt_names_no_format() {
        let p = tiles_prompt("What code follows \"Ref\"?", 4);
        let rest = &p[p.find('?').unwrap()..];
        for w in ["code", "number", "value"] {
            assert!(!rest.to_lowercase().contains(w), "{p}");
        }
    }
}
