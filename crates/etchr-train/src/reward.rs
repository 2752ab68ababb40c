//! Stage 2 rewards.
//!
//! - **Edit correctness** ([`edit_score`]), computed locally: is the program valid, does its
//!   focus region ([`Program::focus`]) overlap the item's gold region (IoU, or as [`Overlap`]
//!   says: the generalised IoU, or how much of the gold region the program's view shows), and
//!   does it hold the op kinds the gold program needs (rotate, flip, jigsaw_solve, path).
//! - **Downstream correctness** ([`Downstream`]): the program rendered on the item's image and
//!   the question asked through the real loop code (`etchr_reason::Reasoner`, the same code
//!   `etchr reason`, the server and `etchr eval`'s `etchr` condition run), the answer judged with
//!   the benchmark's strict matcher (`etchr_eval::results::matches_strict`). Results are cached
//!   by (SHA-256 of the image bytes, program text) in a JSONL file ([`RewardCache`]), and a
//!   step's distinct misses go upstream concurrently.
//!
//! Multi-step (`progressive`) episodes cannot be looked up before they run (each edit depends on
//! the upstream's reasoning), so their upstream calls go through [`MemoBackend`] instead: an
//! in-memory cache of whole chat requests, which serves the first reasoning call of the k
//! episodes of a group (identical: no edit yet) and any repeated history once.

use crate::eval::{kinds, KINDS};
use anyhow::{Context, Result};
use etchr_ops::{Program, Rect, RenderOptions};
use etchr_reason::{Planner, ReasonError, ReasonOutcome, ReasonRequest, Reasoner, Strategy};
use etchr_upstream::{
    BoxFuture, CallContext, ChatBackend, ChatOutcome, ChatRequest, ChatStream, Profile,
    UpstreamError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the edit reward scores where a program looks against the gold region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    /// The IoU: 0 for every box that misses the gold region, however near.
    #[default]
    Iou,
    /// The generalised IoU mapped to [0, 1] (`(giou + 1) / 2`): equal to the IoU's ranking
    /// where boxes overlap, and still higher the nearer a miss lands. A policy whose samples
    /// rarely touch the target gets a gradient from every group instead of almost none.
    Giou,
    /// How much of the gold region the program's *view* shows (its first crop, else the whole
    /// image), discounted steeply (`(2 · gold side / side)⁴`) when that view's side is more
    /// than twice the gold view's (the gold program's first crop): a view that holds the target
    /// with some context scores fully wherever its box lands. What a reader needs is the target
    /// in view at a legible scale; the IoU of the marked box asks for more than that, and
    /// scores a view that holds the target but marks it loosely 0.
    Shown,
}

impl Overlap {
    /// The overlap score of `pred` (validated, original pixels) against the gold program and
    /// region of a `size` image, in [0, 1].
    pub fn score(
        self,
        pred: &Program,
        gold: &Program,
        gold_region: &Rect,
        size: (u32, u32),
    ) -> f64 {
        let focus = || pred.focus();
        match self {
            Overlap::Iou => focus().map_or(0.0, |p| p.iou(gold_region)),
            Overlap::Giou => focus().map_or(0.0, |p| (p.giou(gold_region) + 1.0) / 2.0),
            Overlap::Shown => {
                let full = Rect::full(size.0, size.1);
                let (view, gold_view) = (
                    pred.first_crop().unwrap_or(full),
                    gold.first_crop().unwrap_or(full),
                );
                let shown = view.intersect(gold_region).map_or(0.0, |r| r.area());
                let side = |r: &Rect| r.area().max(1e-9).sqrt();
                // Past twice the gold view's side the target's print shrinks below what a
                // reader can read: a hard limit, smoothed (the fourth power), so that showing
                // more of the image is not a way around finding the target.
                let scale = (2.0 * side(&gold_view) / side(&view)).min(1.0).powi(4);
                shown / gold_region.area().max(1e-9) * scale
            }
        }
    }
}

/// The edit half of the reward, and its parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EditScore {
    /// Planned, non-empty, no op dropped by validation, and `etchr_ops::validate` accepts it.
    pub valid: bool,
    /// IoU of the program's focus with the gold region, when the gold program has a focus.
    pub iou: Option<f64>,
    /// Share of the gold program's op kinds (of [`KINDS`]) the program holds, when it has any.
    pub kinds: Option<f64>,
    /// `0` if invalid, else `0.2 + 0.8 · mean(overlap, kinds)` (the mean of those that apply;
    /// `1` when neither does), the overlap scored as [`Overlap`] says.
    pub score: f64,
}

/// Scores `pred` (validated, in original pixels) against the gold program and region of an
/// `size` image. `dropped` counts the ops validation had to drop from the decoded program.
pub fn edit_score(
    pred: &Program,
    dropped: usize,
    gold: &Program,
    gold_region: &Rect,
    size: (u32, u32),
    overlap: Overlap,
) -> EditScore {
    let valid = !pred.is_empty()
        && dropped == 0
        && etchr_ops::validate(size.0, size.1, pred, &RenderOptions::default()).is_ok();
    let focus = gold.focus().map(|_| pred.focus());
    let iou = focus.map(|f| f.map_or(0.0, |p| p.iou(gold_region)));
    let overlap = focus.map(|_| overlap.score(pred, gold, gold_region, size));
    let (g, p) = (kinds(gold), kinds(pred));
    let wanted = g.iter().filter(|&&x| x).count();
    let kinds = (wanted > 0)
        .then(|| (0..KINDS.len()).filter(|&k| g[k] && p[k]).count() as f64 / wanted as f64);
    let parts: Vec<f64> = [overlap, kinds].into_iter().flatten().collect();
    let matched = if parts.is_empty() {
        1.0
    } else {
        parts.iter().sum::<f64>() / parts.len() as f64
    };
    EditScore {
        valid,
        iou,
        kinds,
        score: if valid { 0.2 + 0.8 * matched } else { 0.0 },
    }
}

/// What the upstream answered after an edit, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub correct: bool,
    pub answer: String,
    /// Upstream calls the loop made (0 for a cache hit).
    #[serde(default)]
    pub calls: usize,
    /// The loop could not run this program (e.g. a `path` op the renderer finds no free path
    /// for): the answer counts as wrong and the edit as invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program_error: Option<String>,
}

/// One line of the reward cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheLine {
    /// Which loop and upstream produced it (lines of another setting are ignored).
    setting: String,
    image: String,
    program: String,
    correct: bool,
    answer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    program_error: Option<String>,
}

/// Downstream results by (setting, image SHA-256, program text), persisted as JSONL so a resumed
/// run keeps them.
#[derive(Debug, Default)]
pub struct RewardCache {
    path: Option<PathBuf>,
    setting: String,
    map: HashMap<(String, String), Judged>,
    pub hits: u64,
    pub misses: u64,
}

impl RewardCache {
    /// An in-memory cache (nothing written).
    pub fn in_memory(setting: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            ..Default::default()
        }
    }

    /// Opens (and loads) the cache file at `path`, keeping the lines of `setting`.
    pub fn open(path: &Path, setting: impl Into<String>) -> Result<Self> {
        let mut c = Self {
            path: Some(path.to_path_buf()),
            setting: setting.into(),
            ..Default::default()
        };
        if let Ok(f) = std::fs::File::open(path) {
            for line in std::io::BufReader::new(f).lines() {
                let line = line.with_context(|| format!("reading {}", path.display()))?;
                // A torn last line (a crash mid-write) is skipped, not fatal.
                let Ok(l) = serde_json::from_str::<CacheLine>(&line) else {
                    continue;
                };
                if l.setting == c.setting {
                    c.map.insert(
                        (l.image, l.program),
                        Judged {
                            correct: l.correct,
                            answer: l.answer,
                            calls: 0,
                            program_error: l.program_error,
                        },
                    );
                }
            }
        }
        Ok(c)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Looks `(image, program)` up, counting the hit or miss.
    pub fn get(&mut self, image: &str, program: &str) -> Option<Judged> {
        let r = self
            .map
            .get(&(image.to_string(), program.to_string()))
            .cloned();
        match r {
            Some(mut j) => {
                self.hits += 1;
                j.calls = 0;
                Some(j)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Stores a result (and appends it to the file).
    pub fn insert(&mut self, image: &str, program: &str, judged: &Judged) -> Result<()> {
        if let Some(path) = &self.path {
            let line = CacheLine {
                setting: self.setting.clone(),
                image: image.to_string(),
                program: program.to_string(),
                correct: judged.correct,
                answer: judged.answer.clone(),
                program_error: judged.program_error.clone(),
            };
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(f, "{}", serde_json::to_string(&line)?)?;
        }
        self.map
            .insert((image.to_string(), program.to_string()), judged.clone());
        Ok(())
    }
}

/// One "does this edit make the upstream answer right?" question.
#[derive(Debug, Clone)]
pub struct Query {
    /// The item's encoded image (as the loop receives it).
    pub image: Arc<[u8]>,
    /// Its SHA-256 (hex): the cache key's first half.
    pub image_sha: String,
    pub question: String,
    pub gold: String,
    pub program: Program,
}

/// The upstream behind the real loop, for rewards.
#[derive(Clone)]
pub struct Downstream {
    reasoner: Reasoner,
    /// Sent as the request's model (`None`: the upstream's configured one).
    pub model: Option<String>,
    /// Extra request fields of every call (`temperature`, `max_tokens`).
    pub params: Map<String, Value>,
    /// Loop runs in flight at once.
    pub concurrency: usize,
    /// The loop strategy of single-step rewards (`evr`: the paper's inference).
    pub strategy: Strategy,
}

impl Downstream {
    /// A downstream over `backend` (wrapped in a [`MemoBackend`]); each loop run gets `deadline`.
    pub fn new(backend: Arc<dyn ChatBackend>, deadline: Duration, concurrency: usize) -> Self {
        let config = etchr_reason::LoopConfig {
            deadline,
            ..Default::default()
        };
        let memo: Arc<dyn ChatBackend> = Arc::new(MemoBackend::new(backend));
        let mut params = Map::new();
        params.insert("temperature".into(), Value::from(0.0));
        Self {
            reasoner: Reasoner::new(memo, config),
            model: None,
            params,
            concurrency: concurrency.max(1),
            strategy: Strategy::Evr,
        }
    }

    /// Runs the loop once with `program` as its edit (explicit ops: exactly what the loop does
    /// when a planner proposes that program) and judges the answer.
    pub async fn judge(&self, q: &Query) -> Result<Judged, String> {
        let request = ReasonRequest {
            image: q.image.to_vec(),
            question: q.question.clone(),
            strategy: self.strategy,
            max_steps: Some(1),
            ops: Some(q.program.clone()),
            model: self.model.clone(),
            params: self.params.clone(),
            request_id: Some(format!("rl-{}", &q.image_sha[..12.min(q.image_sha.len())])),
            ..Default::default()
        };
        judge_run(self.reasoner.run(request).await, &q.gold)
    }

    /// [`Downstream::judge`] for many queries: cached ones from `cache`, the distinct misses
    /// `concurrency` at a time (new results go into the cache). One result per query, in order.
    pub async fn judge_all(
        &self,
        queries: &[Query],
        cache: &Mutex<RewardCache>,
    ) -> Vec<Result<Judged, String>> {
        let mut out: Vec<Option<Result<Judged, String>>> = vec![None; queries.len()];
        let mut pending: HashMap<(String, String), Vec<usize>> = HashMap::new();
        let mut order = Vec::new();
        {
            let mut c = cache.lock().expect("cache lock");
            for (i, q) in queries.iter().enumerate() {
                let text = etchr_ops::text::to_text(&q.program);
                let key = (q.image_sha.clone(), text);
                if let Some(list) = pending.get_mut(&key) {
                    // A repeat of a miss in this batch: one upstream run serves both.
                    c.hits += 1;
                    list.push(i);
                    continue;
                }
                match c.get(&key.0, &key.1) {
                    Some(j) => out[i] = Some(Ok(j)),
                    None => {
                        order.push(key.clone());
                        pending.insert(key, vec![i]);
                    }
                }
            }
        }
        let sem = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
        let mut set = tokio::task::JoinSet::new();
        for key in order {
            let first = pending[&key][0];
            let (me, q, sem) = (self.clone(), queries[first].clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await.expect("never closed");
                (key, me.judge(&q).await)
            });
        }
        while let Some(done) = set.join_next().await {
            let (key, r) = match done {
                Ok(x) => x,
                Err(e) => {
                    tracing::error!(error = %e, "a downstream task failed");
                    continue;
                }
            };
            if let Ok(j) = &r {
                let mut c = cache.lock().expect("cache lock");
                if let Err(e) = c.insert(&key.0, &key.1, j) {
                    tracing::warn!(error = %e, "could not write the reward cache");
                }
            }
            for (n, &i) in pending[&key].iter().enumerate() {
                out[i] = Some(match &r {
                    // Only the first query of a key made the calls.
                    Ok(j) if n > 0 => Ok(Judged {
                        calls: 0,
                        ..j.clone()
                    }),
                    other => other.clone(),
                });
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err("the downstream task was lost".into())))
            .collect()
    }

    /// One multi-step episode: the loop runs `strategy` (progressive) with `planner` proposing
    /// every edit, and the final answer is judged.
    pub async fn episode(
        &self,
        planner: Arc<dyn Planner>,
        image: &[u8],
        question: &str,
        gold: &str,
        strategy: Strategy,
        max_steps: usize,
    ) -> Result<Judged, String> {
        let reasoner = self.reasoner.clone().with_planner(planner);
        let request = ReasonRequest {
            image: image.to_vec(),
            question: question.to_string(),
            strategy,
            max_steps: Some(max_steps),
            model: self.model.clone(),
            params: self.params.clone(),
            ..Default::default()
        };
        judge_run(reasoner.run(request).await, gold)
    }
}

/// A loop run's answer judged against `gold`. A run the program broke (it could not be rendered
/// or planned) is a wrong answer; one the upstream or the deadline broke is `Err`: not the
/// policy's doing, so not rewarded either way.
fn judge_run(
    run: std::result::Result<ReasonOutcome, ReasonError>,
    gold: &str,
) -> std::result::Result<Judged, String> {
    match run {
        Ok(outcome) => {
            let answer = outcome.trace.answer.clone();
            Ok(Judged {
                correct: etchr_eval::results::matches_strict(&answer, gold),
                answer,
                calls: outcome.trace.calls(),
                program_error: None,
            })
        }
        Err(e @ (ReasonError::Ops(_) | ReasonError::Plan(_) | ReasonError::InvalidRequest(_))) => {
            Ok(Judged {
                correct: false,
                answer: String::new(),
                calls: 0,
                program_error: Some(e.to_string()),
            })
        }
        Err(e) => Err(e.to_string()),
    }
}

type Memo = Arc<tokio::sync::OnceCell<ChatOutcome>>;

/// A [`ChatBackend`] that answers a request it has already seen (same model, messages, images
/// and options) from memory, and sends concurrent identical requests upstream once. Only
/// successes are kept. Meant for deterministic upstreams (temperature 0, the reader emulator).
pub struct MemoBackend {
    inner: Arc<dyn ChatBackend>,
    memo: Mutex<HashMap<String, Memo>>,
    /// Requests answered from memory, and sent upstream.
    pub stats: Mutex<(u64, u64)>,
}

/// Entries kept before the memo is cleared (each holds one reply's text).
const MEMO_CAP: usize = 50_000;

impl MemoBackend {
    pub fn new(inner: Arc<dyn ChatBackend>) -> Self {
        Self {
            inner,
            memo: Mutex::new(HashMap::new()),
            stats: Mutex::new((0, 0)),
        }
    }

    fn cell(&self, req: &ChatRequest) -> Option<Memo> {
        let bytes = serde_json::to_vec(req).ok()?;
        let key = etchr_reason::sha256_hex(&bytes);
        let mut m = self.memo.lock().expect("memo lock");
        if m.len() >= MEMO_CAP {
            m.clear();
        }
        Some(m.entry(key).or_default().clone())
    }
}

impl ChatBackend for MemoBackend {
    fn chat<'a>(
        &'a self,
        req: ChatRequest,
        ctx: CallContext,
    ) -> BoxFuture<'a, Result<ChatOutcome, UpstreamError>> {
        Box::pin(async move {
            let Some(cell) = self.cell(&req) else {
                return self.inner.chat(req, ctx).await;
            };
            let mut sent = false;
            let out = cell
                .get_or_try_init(|| {
                    sent = true;
                    self.inner.chat(req, ctx)
                })
                .await?
                .clone();
            let mut s = self.stats.lock().expect("stats lock");
            if sent {
                s.1 += 1;
            } else {
                s.0 += 1;
            }
            Ok(out)
        })
    }

    fn chat_stream<'a>(
        &'a self,
        req: ChatRequest,
        ctx: CallContext,
    ) -> BoxFuture<'a, Result<ChatStream, UpstreamError>> {
        self.inner.chat_stream(req, ctx)
    }

    fn profile(&self) -> &Profile {
        self.inner.profile()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_scores() {
        let gold = Program::from_json(
            r#"[{"op":"crop","box":[0,0,50,50]},{"op":"box","box":[10,10,20,20]}]"#,
        )
        .unwrap();
        let region = Rect::new(10.0, 10.0, 20.0, 20.0);
        let exact = edit_score(&gold, 0, &gold, &region, (100, 100), Overlap::Iou);
        assert!(exact.valid);
        assert_eq!(exact.iou, Some(1.0));
        assert_eq!(exact.kinds, None);
        assert!((exact.score - 1.0).abs() < 1e-12);
        let far = Program::from_json(r#"[{"op":"crop","box":[60,60,90,90]}]"#).unwrap();
        let s = edit_score(&far, 0, &gold, &region, (100, 100), Overlap::Iou);
        assert_eq!(s.iou, Some(0.0));
        assert!((s.score - 0.2).abs() < 1e-12);
        let dropped = edit_score(&gold, 1, &gold, &region, (100, 100), Overlap::Iou);
        assert!(!dropped.valid);
        assert_eq!(dropped.score, 0.0);
        assert_eq!(
            edit_score(
                &Program::default(),
                0,
                &gold,
                &region,
                (100, 100),
                Overlap::Iou
            )
            .score,
            0.0
        );
        let rot = Program::from_json(r#"[{"op":"rotate","angle":90}]"#).unwrap();
        let s = edit_score(
            &rot,
            0,
            &rot,
            &Rect::new(0.0, 0.0, 100.0, 100.0),
            (100, 100),
            Overlap::Iou,
        );
        assert_eq!(s.kinds, Some(1.0));
        assert_eq!(s.iou, None);
        let s = edit_score(
            &far,
            0,
            &rot,
            &Rect::new(0.0, 0.0, 100.0, 100.0),
            (100, 100),
            Overlap::Iou,
        );
        assert_eq!(s.kinds, Some(0.0));
        assert!((s.score - 0.2).abs() < 1e-12);
    }

    #[test]
    fn the_giou_reward_ranks_misses_by_how_near_they_land() {
        let gold = Program::from_json(r#"[{"op":"box","box":[10,10,20,20]}]"#).unwrap();
        let region = Rect::new(10.0, 10.0, 20.0, 20.0);
        let near = Program::from_json(r#"[{"op":"box","box":[22,10,32,20]}]"#).unwrap();
        let far = Program::from_json(r#"[{"op":"box","box":[80,80,90,90]}]"#).unwrap();
        let score = |p: &Program, o| edit_score(p, 0, &gold, &region, (100, 100), o);
        // The IoU scores both misses alike, the generalised IoU the near one higher.
        assert_eq!(
            score(&near, Overlap::Iou).score,
            score(&far, Overlap::Iou).score
        );
        assert!(score(&near, Overlap::Giou).score > score(&far, Overlap::Giou).score + 0.1);
        // Either way the reported IoU is the plain one, and an exact hit scores 1.
        assert_eq!(score(&near, Overlap::Giou).iou, Some(0.0));
        assert!((score(&gold, Overlap::Giou).score - 1.0).abs() < 1e-12);
    }

    #[test]
    fn the_shown_reward_scores_the_target_in_view_at_a_legible_scale() {
        let gold = Program::from_json(
            r#"[{"op":"crop","box":[0,0,40,40]},{"op":"box","box":[10,10,20,20]}]"#,
        )
        .unwrap();
        let region = Rect::new(10.0, 10.0, 20.0, 20.0);
        let score = |p: &str| {
            let p = Program::from_json(p).unwrap();
            edit_score(&p, 0, &gold, &region, (400, 400), Overlap::Shown)
        };
        // A view twice the gold view's side that holds the target scores fully, wherever its
        // box is marked (the IoU of that box is 0).
        let loose = score(r#"[{"op":"crop","box":[0,0,80,80]},{"op":"box","box":[50,50,60,60]}]"#);
        assert!((loose.score - 1.0).abs() < 1e-12, "{loose:?}");
        assert_eq!(loose.iou, Some(0.0));
        // Half the target in view: half the overlap.
        let half = score(r#"[{"op":"crop","box":[15,0,80,80]}]"#);
        assert!((half.score - (0.2 + 0.8 * 0.5)).abs() < 1e-9, "{half:?}");
        // A view four times the gold's side shows it at half the scale allowed: a sixteenth.
        let wide = score(r#"[{"op":"crop","box":[0,0,160,160]}]"#);
        assert!((wide.score - (0.2 + 0.8 / 16.0)).abs() < 1e-9, "{wide:?}");
        // No crop: the whole image is the view (ten times the gold's side), nearly nothing.
        let whole = score(r#"[{"op":"box","box":[10,10,20,20]}]"#);
        assert!(
            (whole.score - (0.2 + 0.8 * 0.2f64.powi(4))).abs() < 1e-9,
            "{whole:?}"
        );
        // A view that misses the target scores the valid floor only.
        let miss = score(r#"[{"op":"crop","box":[200,200,280,280]}]"#);
        assert!((miss.score - 0.2).abs() < 1e-12, "{miss:?}");
    }

    #[test]
    fn cache_persists_per_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.jsonl");
        let mut c = RewardCache::open(&path, "evr|a").unwrap();
        assert!(c.get("img", "crop box=1,2,3,4").is_none());
        let j = Judged {
            correct: true,
            answer: "X".into(),
            calls: 2,
            program_error: None,
        };
        c.insert("img", "crop box=1,2,3,4", &j).unwrap();
        assert_eq!(c.get("img", "crop box=1,2,3,4").unwrap().answer, "X");
        assert_eq!((c.hits, c.misses), (1, 1));
        // A torn line is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"setting\":")
            .unwrap();
        let mut again = RewardCache::open(&path, "evr|a").unwrap();
        assert_eq!(again.len(), 1);
        assert!(again.get("img", "crop box=1,2,3,4").unwrap().correct);
        let other = RewardCache::open(&path, "evr|b").unwrap();
        assert!(other.is_empty());
    }
}
