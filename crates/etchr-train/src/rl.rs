//! Stage 2 (`etchr train rl`): group-relative policy optimisation (GRPO) of the editing model.
//!
//! Each step takes `items_per_step` generator items and samples `group_size` (k) programs per
//! item from the current policy (temperature / top-p). Each program is rewarded with
//! `w_edit · edit correctness + w_answer · downstream correctness` ([`crate::reward`]); the
//! advantage of a sample is its reward minus its group's mean, divided by the group's standard
//! deviation (a group whose rewards are all equal teaches nothing and gets zero advantages). The
//! objective, per discrete choice `t` of sample `i` (symbols and pointer patches; the offset
//! regression is deterministic given them), is PPO's clipped surrogate plus a KL penalty to the
//! frozen Stage 1 reference (Schulman's k3 estimator, as in the GRPO paper):
//!
//! ```text
//! ρ = exp(log π(a_t) − log π_old(a_t))
//! L = mean_i 1/|o_i| Σ_t [ −min(ρ·A_i, clip(ρ, 1−ε, 1+ε)·A_i) + β·(exp(r_t) − r_t − 1) ],
//!     r_t = log π_ref(a_t) − log π(a_t)
//! ```
//!
//! `π_old` is the policy that sampled the batch: with one update per batch (`--ppo-epochs 1`) the
//! ratio is 1 and the clip never binds; more epochs reuse the batch and the clip keeps the
//! policy near the sampler. With `--rollout progressive` an episode is the `progressive` loop
//! itself, the policy proposing each edit on the current view with the upstream's reasoning as
//! context; the episode's reward (at its end) is credited to every edit it made. With
//! `--rollout product` an episode is the sidecar's own `evr` run, its planner (handed in by the
//! `etchr` binary) calling the sampled policy; the reward is credited to every call.
//!
//! Checkpoints (`ckpt-STEP/`: policy weights, AdamW moments, `rl_state.json` with the RNG state)
//! every `--checkpoint-every` steps; `--resume` continues from the latest, with the reward cache
//! (`reward_cache.jsonl`) and the frozen reference (`reference/`) kept in the run directory.

use crate::data::SplitMix;
use crate::optim::{clip_scale, grad_norm, AdamW, AdamWParams};
use crate::reward::{edit_score, Downstream, EditScore, Judged, Overlap, Query, RewardCache};
use crate::rollout::{
    sample_groups, sample_seed, Recording, Sampled, SamplingNetwork, SamplingPlanner,
};
use crate::schedule::Schedule;
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use clap::{Args, ValueEnum};
use etchr_data::{generate, Family, Item};
use etchr_model::{
    Batch, DecodeOptions, EditingModel, ImageInput, ModelConfig, Network, PlanInput,
};
use etchr_model::{TrainExample, Vocab};
use etchr_ops::{encode_image_stable, DecodeLimits, OutputFormat, Program};
use etchr_reason::{Planner, Strategy};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How an episode runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Rollout {
    /// One edit per episode: the sampled program goes through the loop's `evr` strategy.
    Single,
    /// The `progressive` loop: reason → edit (sampled) → reason … up to `--max-steps` edits;
    /// the reward at the end is credited to every edit. Needs `--upstream`.
    Progressive,
    /// The product: the sidecar's own planner (its pixel searches, its reader and the tile
    /// search of alternatives) around the sampled policy, in the `evr` loop with up to
    /// `--max-steps` candidates, exactly as `etchr eval` runs the `etchr` condition. The reward
    /// at the end is credited to every call the planner made to the policy. Needs `--upstream`
    /// and the `etchr` binary (which owns that planner).
    Product,
}

/// Builds the sidecar's planner around a network (`Rollout::Product`); the `etchr` binary, which
/// owns that planner, passes it to [`run_rl`].
pub type ProductPlanner = Arc<dyn Fn(Arc<dyn Network>) -> Arc<dyn Planner> + Send + Sync>;

/// `etchr train rl`: Stage 2 training of the editing model.
#[derive(Debug, Clone, Args)]
pub struct RlArgs {
    /// Output directory: `ckpt-STEP/`, `reference/`, `final/`, `metrics.jsonl`,
    /// `reward_cache.jsonl`.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the latest checkpoint in `--out`.
    #[arg(long)]
    pub resume: bool,
    /// The Stage 1 weights to start from, which also become the frozen KL reference (a directory
    /// with config.json and model.safetensors, e.g. models/default or an sft run's final/).
    #[arg(long, conflicts_with = "tiny", required_unless_present_any = ["tiny", "resume"])]
    pub init_from: Option<PathBuf>,
    /// Start from fresh tiny test weights instead (smoke tests).
    #[arg(long)]
    pub tiny: bool,
    /// Families to train on (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    pub families: Vec<Family>,
    /// Generator seed of the training items (keep it off the benchmark set's seed and Stage 1's)
    /// and of sampling.
    #[arg(long, default_value_t = 21)]
    pub seed: u64,
    /// Generator seed of the held-out items evaluated every --eval-every steps (default:
    /// seed + 1000003).
    #[arg(long)]
    pub val_seed: Option<u64>,
    #[arg(long, default_value_t = 256)]
    pub train_items: usize,
    #[arg(long, default_value_t = 24)]
    pub val_items: usize,
    #[arg(long, default_value_t = 300)]
    pub steps: u64,
    /// Items per step (each gets --group-size samples).
    #[arg(long, default_value_t = 8)]
    pub items_per_step: usize,
    /// Samples per item (k): the group whose mean is the baseline.
    #[arg(long, default_value_t = 4)]
    pub group_size: usize,
    /// Sampling temperature of rollouts.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f32,
    /// Nucleus of rollouts (1: the full distribution).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f64,
    /// Final learning rate as a fraction of --lr.
    #[arg(long, default_value_t = 0.1)]
    pub min_lr_frac: f64,
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f64,
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f64,
    #[arg(long, default_value_t = 1e-8)]
    pub eps: f64,
    /// Global gradient-norm clip (0: off).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Updates per sampled batch (the ratio clip matters from the second on).
    #[arg(long, default_value_t = 1)]
    pub ppo_epochs: usize,
    /// ε of the clipped ratio.
    #[arg(long, default_value_t = 0.2)]
    pub clip_eps: f64,
    /// β of the KL penalty to the Stage 1 reference.
    #[arg(long, default_value_t = 0.04)]
    pub kl_coef: f64,
    /// Weight of edit correctness in the reward.
    #[arg(long, default_value_t = 0.5)]
    pub w_edit: f64,
    /// Weight of downstream correctness (0 without --upstream).
    #[arg(long, default_value_t = 1.0)]
    pub w_answer: f64,
    /// How the edit reward scores the program's region against the gold one: `iou`, `giou`
    /// (the generalised IoU, which still ranks misses by how near they land), or `shown` (how
    /// much of the gold region the program's view shows, at up to twice the gold view's side;
    /// see `reward::Overlap`). Held-out evaluations score the plain IoU either way.
    #[arg(long, value_enum, default_value = "iou")]
    pub overlap: Overlap,
    /// Standard deviation (in `log2` units) of the Gaussian noise added to each sampled box's
    /// width and height, so that a box's size is an action the reward can reach (a crop large
    /// enough to hold a target the pointer places roughly). 0 keeps sizes at the regression's
    /// output, which then learns only through the shared features.
    #[arg(long, default_value_t = 0.0)]
    pub size_std: f32,
    #[arg(long, value_enum, default_value = "single")]
    pub rollout: Rollout,
    /// Most edits per progressive episode.
    #[arg(long, default_value_t = 3)]
    pub max_steps: usize,
    /// Base URL of the OpenAI-compatible upstream that answers after the edit (the reader
    /// emulator offline, any real MLLM online). Without it only edit correctness is rewarded.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Upstream provider profile: vllm, qwen, gemini, kimi or openai.
    #[arg(long, default_value = "vllm")]
    pub provider: String,
    /// Upstream API key (prefer ETCHR_UPSTREAM_KEY or the provider's own variable).
    #[arg(long, hide_env_values = true)]
    pub upstream_key: Option<String>,
    /// Model sent upstream (default: a vLLM-style upstream's first listed model).
    #[arg(long)]
    pub upstream_model: Option<String>,
    /// `max_tokens` sent upstream.
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Loop runs in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Deadline of one loop run, in seconds.
    #[arg(long, default_value_t = 120.0)]
    pub deadline_secs: f64,
    #[arg(long, default_value_t = 25)]
    pub checkpoint_every: u64,
    /// Held-out evaluation (greedy decodes: edit metrics, and Pass@1 with an upstream).
    #[arg(long, default_value_t = 25)]
    pub eval_every: u64,
    #[arg(long, default_value_t = 3)]
    pub keep_checkpoints: usize,
    /// Train on the GPU when one is compiled in and present.
    #[arg(long)]
    pub gpu: bool,
    /// No progress bar (log lines instead).
    #[arg(long)]
    pub quiet: bool,
}

impl RlArgs {
    /// Defaults for everything but `out` (for tests and programmatic use).
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            resume: false,
            init_from: None,
            tiny: false,
            families: Vec::new(),
            seed: 21,
            val_seed: None,
            train_items: 256,
            val_items: 24,
            steps: 300,
            items_per_step: 8,
            group_size: 4,
            temperature: 1.0,
            top_p: 1.0,
            lr: 2e-5,
            min_lr_frac: 0.1,
            warmup: 10,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip: 1.0,
            ppo_epochs: 1,
            clip_eps: 0.2,
            kl_coef: 0.04,
            w_edit: 0.5,
            w_answer: 1.0,
            overlap: Overlap::Iou,
            size_std: 0.0,
            rollout: Rollout::Single,
            max_steps: 3,
            upstream: None,
            provider: "vllm".into(),
            upstream_key: None,
            upstream_model: None,
            max_tokens: None,
            concurrency: 4,
            deadline_secs: 120.0,
            checkpoint_every: 25,
            eval_every: 25,
            keep_checkpoints: 3,
            gpu: false,
            quiet: true,
        }
    }

    pub fn schedule(&self) -> Schedule {
        Schedule {
            base_lr: self.lr,
            min_lr: self.lr * self.min_lr_frac,
            warmup_steps: self.warmup,
            total_steps: self.steps,
        }
    }

    pub fn adamw(&self) -> AdamWParams {
        AdamWParams {
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
        }
    }

    pub fn grpo(&self) -> GrpoParams {
        GrpoParams {
            items_per_step: self.items_per_step,
            group_size: self.group_size,
            temperature: self.temperature,
            top_p: self.top_p,
            ppo_epochs: self.ppo_epochs,
            clip_eps: self.clip_eps,
            kl_coef: self.kl_coef,
            clip: self.clip,
            w_edit: self.w_edit,
            w_answer: self.w_answer,
            overlap: self.overlap,
            size_std: self.size_std,
            rollout: self.rollout,
            max_steps: self.max_steps,
        }
    }

    fn families(&self) -> Vec<Family> {
        if self.families.is_empty() {
            Family::ALL.to_vec()
        } else {
            self.families.clone()
        }
    }

    fn val_seed(&self) -> u64 {
        self.val_seed
            .unwrap_or_else(|| self.seed.wrapping_add(1_000_003))
    }
}

/// The algorithm's knobs, saved with every checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GrpoParams {
    pub items_per_step: usize,
    pub group_size: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub ppo_epochs: usize,
    pub clip_eps: f64,
    pub kl_coef: f64,
    /// Global gradient-norm clip.
    pub clip: f64,
    pub w_edit: f64,
    pub w_answer: f64,
    /// Absent in checkpoints written before it existed: the IoU.
    #[serde(default)]
    pub overlap: Overlap,
    /// Gaussian exploration of box sizes (`--size-std`); absent in older checkpoints: none.
    #[serde(default)]
    pub size_std: f32,
    pub rollout: Rollout,
    pub max_steps: usize,
}

/// What `rl_state.json` holds next to each checkpoint's weights and moments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlState {
    /// Updates made so far.
    pub step: u64,
    pub schedule: Schedule,
    pub adamw: AdamWParams,
    pub grpo: GrpoParams,
    /// Seeds the per-epoch item shuffles.
    pub data_seed: u64,
    /// Draws each step's sampling seed.
    pub rng: SplitMix,
    /// Running (EMA) reward shown on the progress bar.
    pub reward_ema: Option<f64>,
    pub train_items: usize,
}

pub const RL_STATE_FILE: &str = "rl_state.json";

/// One generator item with its encoded image (as `etchr gen-data` writes it: PNG for the
/// lossless families, JPEG q90 otherwise).
#[derive(Debug, Clone)]
pub struct RlItem {
    pub item: Item,
    pub image: Arc<[u8]>,
    pub image_sha: String,
}

impl RlItem {
    pub fn new(item: Item, image: Vec<u8>) -> Self {
        Self {
            image_sha: etchr_reason::sha256_hex(&image),
            image: image.into(),
            item,
        }
    }

    /// The question with the decoded image, as the loop's first planner call sees it.
    fn plan_input(&self) -> Result<PlanInput> {
        let rgb = etchr_ops::decode_image(&self.image, &DecodeLimits::default())
            .with_context(|| format!("decoding {}", self.item.id))?;
        Ok(PlanInput::new(
            ImageInput::Decoded(Arc::new(rgb)),
            self.item.question.clone(),
        ))
    }

    fn query(&self, program: Program) -> Query {
        Query {
            image: self.image.clone(),
            image_sha: self.image_sha.clone(),
            question: self.item.question.clone(),
            gold: self.item.answer.clone(),
            program,
        }
    }

    fn edit_score(&self, s: &Sampled, overlap: Overlap) -> EditScore {
        self.edit_score_of(&s.program, s.dropped, overlap)
    }

    /// Edit correctness of `program`, of which validation dropped `dropped` ops.
    fn edit_score_of(&self, program: &Program, dropped: usize, overlap: Overlap) -> EditScore {
        edit_score(
            program,
            dropped,
            &self.item.gold_program,
            &self.item.gold_region,
            (self.item.width, self.item.height),
            overlap,
        )
    }
}

/// Generates `n` items, family `k % F`, index `k / F` (in parallel).
pub fn build_items(families: &[Family], seed: u64, n: usize) -> Result<Vec<RlItem>> {
    anyhow::ensure!(!families.is_empty(), "no families");
    (0..n)
        .into_par_iter()
        .map(|k| {
            let family = families[k % families.len()];
            let (item, img) = generate(family, seed, (k / families.len()) as u64);
            let format = if family.lossless() {
                OutputFormat::Png
            } else {
                OutputFormat::Jpeg(90)
            };
            let bytes = encode_image_stable(&img, format)
                .with_context(|| format!("encoding {}", item.id))?;
            Ok(RlItem::new(item, bytes))
        })
        .collect()
}

/// Advantages of one group: `(r − mean) / std` over the rewards that exist (`None`: a sample
/// whose reward could not be measured, e.g. an upstream error; it gets 0). A group with fewer
/// than two rewards, or with (near-)equal rewards, gets all zeros.
pub fn normalise_group(rewards: &[Option<f64>]) -> Vec<f64> {
    let have: Vec<f64> = rewards.iter().flatten().copied().collect();
    if have.len() < 2 {
        return vec![0.0; rewards.len()];
    }
    let mean = have.iter().sum::<f64>() / have.len() as f64;
    let var = have.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / have.len() as f64;
    let std = var.sqrt();
    if std < 1e-6 {
        return vec![0.0; rewards.len()];
    }
    rewards
        .iter()
        .map(|r| r.map_or(0.0, |r| (r - mean) / std))
        .collect()
}

/// [`normalise_group`] over consecutive groups of `k`.
pub fn group_advantages(rewards: &[Option<f64>], k: usize) -> Vec<f64> {
    rewards.chunks(k.max(1)).flat_map(normalise_group).collect()
}

/// The GRPO objective of one pass and its diagnostics.
#[derive(Debug, Clone)]
pub struct GrpoTerms {
    /// Scalar, differentiable in `logprobs`.
    pub loss: Tensor,
    /// Mean surrogate term per choice.
    pub pg: f64,
    /// Mean k3 KL estimate per choice (policy ‖ reference).
    pub kl: f64,
    /// Share of choices whose ratio left `[1 − ε, 1 + ε]`.
    pub clip_frac: f64,
}

/// The clipped surrogate with a k3 KL penalty (see the module docs). `lp`, `old_lp`, `ref_lp`
/// and `mask` are `[B, T]` (log-probabilities of the taken choices; `mask` 1 where a choice was
/// made), `adv` is `[B]`. Each sequence's terms are averaged over its choices, then over the
/// batch.
pub fn grpo_objective(
    lp: &Tensor,
    old_lp: &Tensor,
    ref_lp: &Tensor,
    adv: &Tensor,
    mask: &Tensor,
    clip_eps: f64,
    kl_coef: f64,
) -> Result<GrpoTerms> {
    let ratio = (lp - old_lp)?.exp()?;
    let adv = adv.unsqueeze(1)?.broadcast_as(lp.shape())?;
    let unclipped = (&ratio * &adv)?;
    let clipped = (ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)? * &adv)?;
    let pg = unclipped.minimum(&clipped)?.neg()?;
    let r = (ref_lp - lp)?;
    let k3 = ((r.exp()? - &r)? - 1.0)?;
    let per = ((&pg + (&k3 * kl_coef)?)? * mask)?;
    let len = mask.sum(1)?.maximum(1.0)?;
    let loss = (per.sum(1)? / &len)?.mean_all()?;
    let n = mask.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64;
    let pg_mean = (&pg * mask)?.sum_all()?.to_scalar::<f32>()? as f64 / n;
    let kl = (&k3 * mask)?.sum_all()?.to_scalar::<f32>()? as f64 / n;
    let outside = ((ratio
        .gt(1.0 + clip_eps)?
        .to_dtype(candle_core::DType::F32)?
        + ratio
            .lt(1.0 - clip_eps)?
            .to_dtype(candle_core::DType::F32)?)?
        * mask)?
        .sum_all()?
        .to_scalar::<f32>()? as f64;
    Ok(GrpoTerms {
        loss,
        pg: pg_mean,
        kl,
        clip_frac: outside / n,
    })
}

/// Numbers from one optimisation of a sampled batch.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct UpdateStats {
    pub loss: f64,
    pub pg: f64,
    /// KL to the reference before the update.
    pub kl: f64,
    /// Ratio clipping in the last epoch.
    pub clip_frac: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub sequences: usize,
}

/// One episode: the calls the policy made, their reward and its parts.
#[derive(Debug, Clone)]
pub struct Episode {
    pub item: usize,
    pub calls: Vec<Sampled>,
    pub edit: EditScore,
    /// Downstream result (`None` without an upstream; `Err` if the loop failed).
    pub judged: Option<std::result::Result<Judged, String>>,
    /// A planning failure (no call made).
    pub error: Option<String>,
}

impl Episode {
    /// Records the downstream result; a program the loop could not run makes the edit invalid.
    pub fn set_judged(&mut self, j: std::result::Result<Judged, String>) {
        if matches!(
            &j,
            Ok(Judged {
                program_error: Some(_),
                ..
            })
        ) {
            self.edit = invalid_edit();
        }
        self.judged = Some(j);
    }

    /// The reward, or `None` when it could not be measured (planning or upstream failure).
    pub fn reward(&self, g: &GrpoParams, with_answer: bool) -> Option<f64> {
        if self.error.is_some() {
            return None;
        }
        let answer = match (&self.judged, with_answer) {
            (_, false) | (None, _) => 0.0,
            (Some(Ok(j)), true) => f64::from(u8::from(j.correct)),
            (Some(Err(_)), true) => return None,
        };
        Some(g.w_edit * self.edit.score + g.w_answer * answer)
    }
}

/// How [`RlTrainer::rollout_episodes`] runs its episodes.
#[derive(Debug, Clone, Copy)]
pub struct EpisodeSpec {
    /// Episodes per item.
    pub k: usize,
    /// `(temperature, top_p)`, or `None` to plan greedily (evaluation).
    pub sampling: Option<(f32, f32)>,
    /// Most edits per episode.
    pub max_steps: usize,
    /// Seeds the planners' sampling.
    pub seed: u64,
    /// How the edit reward scores the region shown.
    pub overlap: Overlap,
    /// Gaussian exploration of box sizes (see [`GrpoParams::size_std`]).
    pub size_std: f32,
}

/// The upstream side of the reward: the loop, the cache, and the runtime they run on.
pub struct Env {
    pub downstream: Downstream,
    pub cache: Mutex<RewardCache>,
    pub handle: tokio::runtime::Handle,
}

/// What a step's `metrics.jsonl` line says.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RlStepStats {
    pub kind: &'static str,
    pub step: u64,
    /// Mean reward over the samples that have one.
    pub reward: f64,
    /// Mean edit correctness (before its weight).
    pub reward_edit: f64,
    /// Mean downstream correctness (`None` without an upstream).
    pub reward_answer: Option<f64>,
    /// Share of planned programs that are valid (non-empty, nothing dropped).
    pub validity: f64,
    /// Mean focus IoU with the gold region, over samples whose gold has a focus.
    pub iou: Option<f64>,
    /// Mean side of the programs' first crop relative to the image (`√(crop area / image
    /// area)`), over the calls that crop: how much of the image the policy shows, the quantity
    /// `--size-std` lets the reward move.
    pub crop_side: Option<f64>,
    pub update: UpdateStats,
    pub samples: usize,
    pub groups: usize,
    /// Groups whose rewards were all equal (no learning signal).
    pub zero_variance_groups: usize,
    pub planner_calls: usize,
    pub upstream_calls: usize,
    pub upstream_errors: usize,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub seconds: f64,
}

/// The policy, its frozen reference, the optimiser and where training stands.
pub struct RlTrainer {
    pub policy: Arc<EditingModel>,
    pub reference: EditingModel,
    pub opt: AdamW,
    pub state: RlState,
    items: Vec<RlItem>,
    epoch: Option<(u64, Vec<usize>)>,
    /// The sidecar's planner, for `Rollout::Product`.
    product: Option<ProductPlanner>,
}

fn same_architecture(a: &ModelConfig, b: &ModelConfig) -> bool {
    a == b
}

impl RlTrainer {
    pub fn new(
        policy: EditingModel,
        reference: EditingModel,
        items: Vec<RlItem>,
        schedule: Schedule,
        adamw: AdamWParams,
        grpo: GrpoParams,
        data_seed: u64,
    ) -> Result<Self> {
        anyhow::ensure!(!items.is_empty(), "no training items");
        anyhow::ensure!(grpo.items_per_step > 0, "--items-per-step must be positive");
        anyhow::ensure!(grpo.group_size >= 2, "--group-size must be at least 2");
        anyhow::ensure!(
            same_architecture(policy.config(), reference.config()),
            "the reference model's architecture differs from the policy's"
        );
        let opt = AdamW::new(policy.varmap(), adamw)?;
        let state = RlState {
            step: 0,
            schedule,
            adamw,
            grpo,
            data_seed,
            rng: SplitMix(data_seed ^ 0x5EED_0002),
            reward_ema: None,
            train_items: items.len(),
        };
        Ok(Self {
            policy: Arc::new(policy),
            reference,
            opt,
            state,
            items,
            epoch: None,
            product: None,
        })
    }

    /// Runs `Rollout::Product` episodes with the planner `make` builds.
    pub fn with_product(mut self, make: Option<ProductPlanner>) -> Self {
        self.product = make;
        self
    }

    pub fn items(&self) -> &[RlItem] {
        &self.items
    }

    pub fn vocab(&self) -> &Vocab {
        self.policy.vocab()
    }

    /// The items of the step `step`: consecutive slices of a fresh shuffle per epoch.
    pub fn items_at(&mut self, step: u64) -> Vec<usize> {
        let n = self.items.len() as u64;
        let per = self.state.grpo.items_per_step as u64;
        (step * per..(step + 1) * per)
            .map(|pos| {
                let epoch = pos / n;
                if self.epoch.as_ref().map(|e| e.0) != Some(epoch) {
                    let mut rng = SplitMix(self.state.data_seed ^ epoch.wrapping_mul(0xA24B_AED4));
                    self.epoch = Some((epoch, rng.permutation(n as usize)));
                }
                self.epoch.as_ref().expect("set above").1[(pos % n) as usize]
            })
            .collect()
    }

    /// Single-step episodes: `k` programs per item from one batched decode each, rewarded
    /// through `env` when given.
    pub fn rollout_single(
        &self,
        idx: &[usize],
        step_seed: u64,
        env: Option<&Env>,
    ) -> Result<Vec<Episode>> {
        let g = self.state.grpo;
        let k = g.group_size;
        let mut inputs = Vec::with_capacity(idx.len());
        for &i in idx {
            inputs.push(self.items[i].plan_input()?);
        }
        let seeds: Vec<u64> = (0..idx.len())
            .map(|n| sample_seed(step_seed, 1_000 + n))
            .collect();
        let groups = sample_groups(
            &self.policy,
            &inputs,
            &seeds,
            k,
            (g.temperature, g.top_p),
            g.size_std,
        );
        let mut episodes = Vec::with_capacity(idx.len() * k);
        for (&i, group) in idx.iter().zip(groups) {
            for s in group {
                episodes.push(match s {
                    Ok(s) => Episode {
                        item: i,
                        edit: self.items[i].edit_score(&s, g.overlap),
                        calls: vec![s],
                        judged: None,
                        error: None,
                    },
                    Err(e) => Episode {
                        item: i,
                        calls: Vec::new(),
                        edit: invalid_edit(),
                        judged: None,
                        error: Some(e),
                    },
                });
            }
        }
        if let Some(env) = env {
            let which: Vec<usize> = (0..episodes.len())
                .filter(|&e| episodes[e].error.is_none())
                .collect();
            let queries: Vec<Query> = which
                .iter()
                .map(|&e| {
                    let ep = &episodes[e];
                    self.items[ep.item].query(ep.calls[0].program.clone())
                })
                .collect();
            let judged = env
                .handle
                .block_on(env.downstream.judge_all(&queries, &env.cache));
            for (e, j) in which.into_iter().zip(judged) {
                episodes[e].set_judged(j);
            }
        }
        Ok(episodes)
    }

    /// Loop episodes (`progressive` or `product`): each runs the loop with its own
    /// [`SamplingNetwork`] inside the planner `make` builds around it (the bare
    /// [`SamplingPlanner`] when `make` is `None`), `run.k` per item, `env.downstream.concurrency`
    /// at a time.
    pub fn rollout_episodes(
        policy: &Arc<EditingModel>,
        items: &[RlItem],
        idx: &[usize],
        run: EpisodeSpec,
        env: &Env,
        make: Option<&ProductPlanner>,
    ) -> Vec<Episode> {
        let EpisodeSpec {
            k,
            sampling,
            max_steps,
            seed: step_seed,
            overlap,
            size_std,
        } = run;
        // The sidecar's planner runs in `evr`, as `etchr eval` runs it; the bare policy in
        // `progressive`.
        let strategy = if make.is_some() {
            Strategy::Evr
        } else {
            Strategy::Progressive
        };
        let mut jobs = Vec::new();
        for (n, &i) in idx.iter().enumerate() {
            for j in 0..k {
                let seed = sample_seed(step_seed, 1_000 + n * k + j);
                let network = Arc::new(
                    SamplingNetwork::new(policy.clone(), sampling, seed).with_size_std(size_std),
                );
                let planner: Arc<dyn Planner> = match make {
                    Some(make) => make(network.clone()),
                    None => Arc::new(SamplingPlanner::new(network.clone())),
                };
                jobs.push((i, network, Arc::new(Recording::new(planner))));
            }
        }
        let ds = &env.downstream;
        let results = env.handle.block_on(async {
            let sem = Arc::new(tokio::sync::Semaphore::new(ds.concurrency));
            let mut set = tokio::task::JoinSet::new();
            for (slot, (i, _, planner)) in jobs.iter().enumerate() {
                let (ds, sem, planner, it) =
                    (ds.clone(), sem.clone(), planner.clone(), items[*i].clone());
                set.spawn(async move {
                    let _permit = sem.acquire_owned().await.expect("never closed");
                    let r = ds
                        .episode(
                            planner,
                            &it.image,
                            &it.item.question,
                            &it.item.answer,
                            strategy,
                            max_steps,
                        )
                        .await;
                    (slot, r)
                });
            }
            let mut out: Vec<Option<std::result::Result<Judged, String>>> = vec![None; jobs.len()];
            while let Some(done) = set.join_next().await {
                match done {
                    Ok((slot, r)) => out[slot] = Some(r),
                    Err(e) => tracing::error!(error = %e, "an episode task failed"),
                }
            }
            out
        });
        jobs.into_iter()
            .zip(results)
            .map(|((i, network, planner), r)| {
                let calls = network.take_calls();
                let shown = planner.take_programs();
                // Progressive: the last edit is the most refined one (coarse-to-fine). The
                // product: the first candidate is the plan's bet (later ones are alternatives).
                let scored = if make.is_some() {
                    shown.first()
                } else {
                    shown.last()
                };
                let edit =
                    scored.map_or_else(invalid_edit, |p| items[i].edit_score_of(p, 0, overlap));
                let mut e = Episode {
                    item: i,
                    calls,
                    edit,
                    judged: None,
                    error: None,
                };
                e.set_judged(r.unwrap_or_else(|| Err("the episode task was lost".into())));
                e
            })
            .collect()
    }

    /// One GRPO optimisation of the sampled `examples` with their `advantages`
    /// (`--ppo-epochs` passes; the first pass's log-probabilities are `π_old`).
    pub fn update(&mut self, examples: &[TrainExample], advantages: &[f32]) -> Result<UpdateStats> {
        anyhow::ensure!(
            examples.len() == advantages.len(),
            "one advantage per example"
        );
        let g = self.state.grpo;
        let (examples, advantages) = replayable(examples, advantages, &self.policy);
        anyhow::ensure!(!examples.is_empty(), "no replayable examples");
        let batch = Batch::new(&examples, &self.policy)?;
        let dev = self.policy.device().clone();
        let mask = (&batch.token_weight + &batch.ptr_weight)?;
        let ref_lp = policy_logprobs(self.reference.loss(&batch)?, g.size_std)?.detach();
        let adv = Tensor::from_vec(advantages.clone(), advantages.len(), &dev)?;
        let lr = self.state.schedule.lr(self.state.step);
        let mut old: Option<Tensor> = None;
        let mut stats = UpdateStats {
            lr,
            sequences: examples.len(),
            ..Default::default()
        };
        for epoch in 0..g.ppo_epochs.max(1) {
            let lp = policy_logprobs(self.policy.loss(&batch)?, g.size_std)?;
            let old_lp = match &old {
                Some(o) => o.clone(),
                None => lp.detach(),
            };
            let terms = grpo_objective(&lp, &old_lp, &ref_lp, &adv, &mask, g.clip_eps, g.kl_coef)?;
            let loss: f32 = terms.loss.to_scalar()?;
            anyhow::ensure!(loss.is_finite(), "non-finite GRPO loss {loss}");
            if old.is_none() {
                old = Some(lp.detach());
            }
            let grads = terms.loss.backward()?;
            let norm = grad_norm(&grads, self.opt.vars().map(|(_, v)| v))?;
            self.opt.step(&grads, lr, clip_scale(norm, g.clip))?;
            if epoch == 0 {
                stats.loss = loss as f64;
                stats.pg = terms.pg;
                stats.kl = terms.kl;
                stats.grad_norm = norm;
            }
            stats.clip_frac = terms.clip_frac;
        }
        Ok(stats)
    }

    /// One step: sample, reward, advantages, update.
    pub fn step(&mut self, env: Option<&Env>) -> Result<RlStepStats> {
        let t0 = Instant::now();
        let step = self.state.step;
        let g = self.state.grpo;
        let idx = self.items_at(step);
        let step_seed = self.state.rng.next_u64();
        let (hits0, misses0) = env.map_or((0, 0), |e| {
            let c = e.cache.lock().expect("cache lock");
            (c.hits, c.misses)
        });
        let episodes = match g.rollout {
            Rollout::Single => self.rollout_single(&idx, step_seed, env)?,
            Rollout::Progressive | Rollout::Product => {
                let env = env.context("loop rollouts need --upstream")?;
                let make = match g.rollout {
                    Rollout::Product => Some(
                        self.product
                            .as_ref()
                            .context("--rollout product needs the sidecar's planner")?,
                    ),
                    _ => None,
                };
                let run = EpisodeSpec {
                    k: g.group_size,
                    sampling: Some((g.temperature, g.top_p)),
                    max_steps: g.max_steps,
                    seed: step_seed,
                    overlap: g.overlap,
                    size_std: g.size_std,
                };
                Self::rollout_episodes(&self.policy, &self.items, &idx, run, env, make)
            }
        };
        let with_answer = env.is_some();
        let rewards: Vec<Option<f64>> =
            episodes.iter().map(|e| e.reward(&g, with_answer)).collect();
        let adv = group_advantages(&rewards, g.group_size);
        let mut examples = Vec::new();
        let mut advs = Vec::new();
        for (e, a) in episodes.iter().zip(&adv) {
            for c in &e.calls {
                if let Some(x) = &c.example {
                    examples.push(x.clone());
                    advs.push(*a as f32);
                }
            }
        }
        let update = if examples.is_empty() {
            UpdateStats {
                lr: self.state.schedule.lr(step),
                ..Default::default()
            }
        } else {
            self.update(&examples, &advs)?
        };
        self.state.step += 1;

        let mut s = summarise(&episodes, &rewards, g.group_size, with_answer);
        s.kind = "train";
        s.step = self.state.step;
        s.update = update;
        if let Some(e) = env {
            let c = e.cache.lock().expect("cache lock");
            s.cache_hits = c.hits - hits0;
            s.cache_misses = c.misses - misses0;
        }
        let r = s.reward;
        self.state.reward_ema = Some(self.state.reward_ema.map_or(r, |e| 0.9 * e + 0.1 * r));
        s.seconds = t0.elapsed().as_secs_f64();
        Ok(s)
    }

    /// Writes the policy's weights, the optimiser moments and the state into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        self.policy.save(dir)?;
        self.opt.save_moments(&dir.join(crate::MOMENTS_FILE))?;
        let json = serde_json::to_string_pretty(&self.state)?;
        std::fs::write(dir.join(RL_STATE_FILE), json + "\n")?;
        Ok(())
    }

    /// Restores a trainer saved by [`RlTrainer::save`], with its reference and items.
    pub fn load(
        dir: &Path,
        reference: EditingModel,
        items: Vec<RlItem>,
        device: &Device,
    ) -> Result<Self> {
        let state: RlState = serde_json::from_slice(
            &std::fs::read(dir.join(RL_STATE_FILE))
                .with_context(|| format!("reading {}", dir.join(RL_STATE_FILE).display()))?,
        )?;
        let policy = EditingModel::load(dir, device)
            .with_context(|| format!("loading weights from {}", dir.display()))?;
        let mut t = Self::new(
            policy,
            reference,
            items,
            state.schedule,
            state.adamw,
            state.grpo,
            state.data_seed,
        )?;
        t.opt
            .load_moments(&dir.join(crate::MOMENTS_FILE), state.step, device)?;
        if t.state.train_items != state.train_items {
            tracing::warn!(
                saved = state.train_items,
                now = t.state.train_items,
                "the training items differ from the checkpoint's: batches will differ"
            );
        }
        t.state = RlState {
            train_items: t.state.train_items,
            ..state
        };
        Ok(t)
    }
}

/// `[B, T]` log-probabilities of a replayed program's choices: the symbols and patches, plus,
/// when sizes were sampled with deviation `size_std`, each box size's Gaussian log-density (its
/// constant dropped: it cancels in the ratio and the KL).
fn policy_logprobs(parts: etchr_model::LossParts, size_std: f32) -> Result<Tensor> {
    if size_std <= 0.0 {
        return Ok(parts.logprobs);
    }
    let var2 = 2.0 * (size_std as f64).powi(2);
    Ok((parts.logprobs - (parts.size_sq / var2)?)?)
}

fn invalid_edit() -> EditScore {
    EditScore {
        valid: false,
        iou: None,
        kinds: None,
        score: 0.0,
    }
}

/// The examples a teacher-forced batch accepts (a sampled sequence the batch builder rejects is
/// dropped with a warning rather than failing the step).
fn replayable(
    examples: &[TrainExample],
    advantages: &[f32],
    model: &EditingModel,
) -> (Vec<TrainExample>, Vec<f32>) {
    if Batch::new(examples, model).is_ok() {
        return (examples.to_vec(), advantages.to_vec());
    }
    let mut ex = Vec::new();
    let mut adv = Vec::new();
    for (e, a) in examples.iter().zip(advantages) {
        match Batch::new(std::slice::from_ref(e), model) {
            Ok(_) => {
                ex.push(e.clone());
                adv.push(*a);
            }
            Err(err) => tracing::warn!(error = %err, "a sampled program cannot be replayed"),
        }
    }
    (ex, adv)
}

/// See [`RlStepStats::crop_side`].
fn mean_crop_side(calls: &[&Sampled]) -> Option<f64> {
    let sides: Vec<f64> = calls
        .iter()
        .filter_map(|c| {
            let (w, h) = c.example.as_ref()?.original_size;
            let crop = c.program.first_crop()?;
            Some((crop.area() / (w as f64 * h as f64).max(1.0)).sqrt())
        })
        .collect();
    (!sides.is_empty()).then(|| sides.iter().sum::<f64>() / sides.len() as f64)
}

/// Means over episodes for the metrics line.
fn summarise(
    episodes: &[Episode],
    rewards: &[Option<f64>],
    k: usize,
    with_answer: bool,
) -> RlStepStats {
    let have: Vec<f64> = rewards.iter().flatten().copied().collect();
    let n = episodes.len().max(1) as f64;
    let ious: Vec<f64> = episodes.iter().filter_map(|e| e.edit.iou).collect();
    let calls: Vec<&Sampled> = episodes.iter().flat_map(|e| &e.calls).collect();
    let judged: Vec<&Judged> = episodes
        .iter()
        .filter_map(|e| e.judged.as_ref().and_then(|j| j.as_ref().ok()))
        .collect();
    let zero = rewards
        .chunks(k.max(1))
        .filter(|g| normalise_group(g).iter().all(|a| *a == 0.0))
        .count();
    RlStepStats {
        reward: have.iter().sum::<f64>() / have.len().max(1) as f64,
        reward_edit: episodes.iter().map(|e| e.edit.score).sum::<f64>() / n,
        reward_answer: with_answer.then(|| {
            judged.iter().filter(|j| j.correct).count() as f64 / judged.len().max(1) as f64
        }),
        validity: calls
            .iter()
            .filter(|c| c.dropped == 0 && !c.program.is_empty())
            .count() as f64
            / calls.len().max(1) as f64,
        iou: (!ious.is_empty()).then(|| ious.iter().sum::<f64>() / ious.len() as f64),
        crop_side: mean_crop_side(&calls),
        samples: episodes.len(),
        groups: rewards.len().div_ceil(k.max(1)),
        zero_variance_groups: zero,
        planner_calls: calls.len(),
        upstream_calls: judged.iter().map(|j| j.calls).sum(),
        upstream_errors: episodes
            .iter()
            .filter(|e| matches!(e.judged, Some(Err(_))))
            .count(),
        ..Default::default()
    }
}

/// Held-out numbers of greedy decodes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RlEvalReport {
    pub kind: &'static str,
    pub step: u64,
    pub n: usize,
    /// Share of valid programs (non-empty, nothing dropped, `validate` accepts).
    pub validity: f64,
    pub edit: f64,
    pub iou: Option<f64>,
    /// See [`RlStepStats::crop_side`] (the greedy programs' first crops).
    pub crop_side: Option<f64>,
    /// Share answered right by the upstream after the edit (with an upstream).
    pub pass1: Option<f64>,
    pub upstream_errors: usize,
    pub per_family: BTreeMap<String, FamilyEval>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FamilyEval {
    pub n: usize,
    pub validity: f64,
    pub edit: f64,
    pub pass1: Option<f64>,
}

/// Greedy decodes of `items` (the loop's first planner call: no reasoning yet), edit metrics,
/// and Pass@1 through `env` (single-step: `evr` with the decoded program; progressive: the
/// progressive loop with a greedy planner; product: the sidecar's planner around the greedy
/// policy, `make`).
pub fn evaluate_rl(
    policy: &Arc<EditingModel>,
    items: &[RlItem],
    rollout: Rollout,
    max_steps: usize,
    env: Option<&Env>,
    step: u64,
    make: Option<&ProductPlanner>,
) -> Result<RlEvalReport> {
    let idx: Vec<usize> = (0..items.len()).collect();
    let loop_run = EpisodeSpec {
        k: 1,
        sampling: None,
        max_steps,
        seed: 0,
        overlap: Overlap::Iou,
        size_std: 0.0,
    };
    let episodes = match (rollout, env) {
        (Rollout::Progressive, Some(env)) => {
            RlTrainer::rollout_episodes(policy, items, &idx, loop_run, env, None)
        }
        (Rollout::Product, Some(env)) => {
            let make = make.context("--rollout product needs the sidecar's planner")?;
            RlTrainer::rollout_episodes(policy, items, &idx, loop_run, env, Some(make))
        }
        _ => {
            let mut eps = Vec::new();
            for chunk in idx.chunks(8) {
                let inputs = chunk
                    .iter()
                    .map(|&i| {
                        Ok(items[i]
                            .plan_input()?
                            .with_options(DecodeOptions::default()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let prepared = inputs
                    .iter()
                    .map(|i| policy.prepare(i).map(Arc::new))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                for ((&i, out), (input, p)) in chunk
                    .iter()
                    .zip(policy.plan_batch_prepared(&inputs, &prepared))
                    .zip(inputs.iter().zip(prepared.iter().cloned()))
                {
                    eps.push(match out {
                        Ok(o) => {
                            let s = Sampled {
                                dropped: crate::rollout::dropped_ops(&o),
                                example: crate::rollout::replay_example(policy, p, input, &o),
                                program: o.program,
                                logprob: o.logprob,
                            };
                            Episode {
                                item: i,
                                edit: items[i].edit_score(&s, Overlap::Iou),
                                calls: vec![s],
                                judged: None,
                                error: None,
                            }
                        }
                        Err(e) => Episode {
                            item: i,
                            calls: Vec::new(),
                            edit: invalid_edit(),
                            judged: None,
                            error: Some(e.to_string()),
                        },
                    });
                }
            }
            if let Some(env) = env {
                let which: Vec<usize> =
                    (0..eps.len()).filter(|&e| eps[e].error.is_none()).collect();
                let queries: Vec<Query> = which
                    .iter()
                    .map(|&e| items[eps[e].item].query(eps[e].calls[0].program.clone()))
                    .collect();
                let judged = env
                    .handle
                    .block_on(env.downstream.judge_all(&queries, &env.cache));
                for (e, j) in which.into_iter().zip(judged) {
                    eps[e].set_judged(j);
                }
            }
            eps
        }
    };
    let mut r = RlEvalReport {
        kind: "eval",
        step,
        n: episodes.len(),
        ..Default::default()
    };
    let mut fam: BTreeMap<String, (usize, usize, f64, usize, usize)> = BTreeMap::new();
    let (mut valid, mut edit, mut ious, mut right, mut judged) =
        (0usize, 0.0f64, Vec::new(), 0usize, 0usize);
    for e in &episodes {
        let f = fam
            .entry(items[e.item].item.family.name().to_string())
            .or_default();
        f.0 += 1;
        if e.edit.valid {
            valid += 1;
            f.1 += 1;
        }
        edit += e.edit.score;
        f.2 += e.edit.score;
        if let Some(i) = e.edit.iou {
            ious.push(i);
        }
        match &e.judged {
            Some(Ok(j)) => {
                judged += 1;
                f.3 += 1;
                if j.correct {
                    right += 1;
                    f.4 += 1;
                }
            }
            Some(Err(_)) => r.upstream_errors += 1,
            None => {}
        }
    }
    let n = episodes.len().max(1) as f64;
    r.validity = valid as f64 / n;
    r.edit = edit / n;
    r.iou = (!ious.is_empty()).then(|| ious.iter().sum::<f64>() / ious.len() as f64);
    r.crop_side = mean_crop_side(&episodes.iter().flat_map(|e| &e.calls).collect::<Vec<_>>());
    r.pass1 = env.map(|_| right as f64 / judged.max(1) as f64);
    r.per_family = fam
        .into_iter()
        .map(|(k, (n, v, e, j, c))| {
            (
                k,
                FamilyEval {
                    n,
                    validity: v as f64 / n.max(1) as f64,
                    edit: e / n.max(1) as f64,
                    pass1: env.map(|_| c as f64 / j.max(1) as f64),
                },
            )
        })
        .collect();
    Ok(r)
}

/// The RL checkpoint directories in `out`, oldest first.
pub fn rl_checkpoints(out: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("ckpt-")?.parse().ok()?;
            e.path()
                .join(RL_STATE_FILE)
                .is_file()
                .then(|| (step, e.path()))
        })
        .collect();
    v.sort();
    v
}

fn append_jsonl(out: &Path, value: &impl Serialize) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("metrics.jsonl"))?;
    writeln!(f, "{}", serde_json::to_string(value)?)?;
    Ok(())
}

/// Builds the upstream side of the reward from the flags (`None` without `--upstream`).
fn build_env(args: &RlArgs, runtime: &tokio::runtime::Runtime) -> Result<Option<Env>> {
    let Some(url) = &args.upstream else {
        return Ok(None);
    };
    let mut upstream =
        etchr_upstream::UpstreamConfig::from_url(url, &args.provider, args.upstream_key.as_deref())
            .map_err(|e| anyhow::anyhow!("--upstream/--provider: {}", e.message))?;
    upstream.model = args.upstream_model.clone();
    if upstream.model.is_none() && upstream.provider == etchr_upstream::Provider::Vllm {
        let m = runtime
            .block_on(etchr_eval::discover_model(&upstream))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        eprintln!("no --upstream-model: using the upstream's first listed model, {m}");
        upstream.model = Some(m);
    }
    let backend = etchr_upstream::build(&upstream).map_err(|e| anyhow::anyhow!("upstream: {e}"))?;
    let mut downstream = Downstream::new(
        backend,
        Duration::from_secs_f64(args.deadline_secs),
        args.concurrency,
    );
    downstream.model = upstream.model.clone();
    if let Some(m) = args.max_tokens {
        downstream.params.insert("max_tokens".into(), m.into());
    }
    let strategy = match args.rollout {
        Rollout::Single => "evr",
        Rollout::Progressive => "progressive",
        Rollout::Product => "product",
    };
    let setting = format!(
        "{strategy}|{url}|{}",
        upstream.model.clone().unwrap_or_default()
    );
    let cache = RewardCache::open(&args.out.join("reward_cache.jsonl"), setting)?;
    eprintln!(
        "downstream reward: {url} ({}) through the loop's {strategy} strategy; reward cache holds {} results",
        upstream.model.as_deref().unwrap_or("default model"),
        cache.len()
    );
    Ok(Some(Env {
        downstream,
        cache: Mutex::new(cache),
        handle: runtime.handle().clone(),
    }))
}

/// Runs Stage 2 training as `args` describe; `product` is the sidecar's planner, which
/// `--rollout product` needs (the `etchr` binary passes it).
pub fn run_rl(args: RlArgs, product: Option<ProductPlanner>) -> Result<()> {
    anyhow::ensure!(
        args.val_seed() != args.seed,
        "--val-seed must differ from --seed (the splits must not overlap)"
    );
    anyhow::ensure!(args.train_items > 0, "--train-items must be positive");
    anyhow::ensure!(args.group_size >= 2, "--group-size must be at least 2");
    anyhow::ensure!(args.ppo_epochs >= 1, "--ppo-epochs must be at least 1");
    anyhow::ensure!(
        args.w_edit >= 0.0 && args.w_answer >= 0.0,
        "--w-edit and --w-answer must not be negative"
    );
    anyhow::ensure!(
        args.temperature > 0.0 && args.top_p > 0.0 && args.top_p <= 1.0,
        "--temperature must be positive and --top-p in (0, 1]"
    );
    anyhow::ensure!(
        args.deadline_secs.is_finite() && args.deadline_secs > 0.0,
        "--deadline-secs must be positive"
    );
    if args.rollout == Rollout::Progressive && args.upstream.is_none() {
        anyhow::bail!(
            "--rollout progressive needs --upstream: the episode is the progressive loop, whose \
             edits follow the upstream's reasoning"
        );
    }
    if args.rollout == Rollout::Product {
        anyhow::ensure!(
            args.upstream.is_some(),
            "--rollout product needs --upstream: the episode is the sidecar's evr loop"
        );
        anyhow::ensure!(
            product.is_some(),
            "--rollout product needs the sidecar's planner: run it through the `etchr` binary"
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let device = etchr_model::select_device(args.gpu);
    let latest = rl_checkpoints(&args.out).pop();
    if args.resume && latest.is_none() {
        eprintln!(
            "--resume: no checkpoint in {} yet, starting fresh",
            args.out.display()
        );
    }
    if !args.resume && latest.is_some() {
        anyhow::bail!(
            "{} already holds checkpoints: pass --resume, or choose another --out",
            args.out.display()
        );
    }
    let resume_dir = if args.resume {
        latest.map(|l| l.1)
    } else {
        None
    };
    let ref_dir = args.out.join("reference");
    if resume_dir.is_none() {
        // The starting weights, frozen: the KL reference of this run (and of its resumes).
        let init = match (&args.init_from, args.tiny) {
            (Some(dir), _) => EditingModel::load(dir, &device)
                .with_context(|| format!("loading {}", dir.display()))?,
            (None, true) => EditingModel::new(ModelConfig::tiny(), args.seed, &device)?,
            (None, false) => anyhow::bail!(
                "pass --init-from DIR (the Stage 1 weights, e.g. models/default or an `etchr \
                 train sft` run's final/) or --tiny"
            ),
        };
        init.save(&ref_dir)?;
    }
    let reference = EditingModel::load(&ref_dir, &device)
        .with_context(|| format!("loading the reference from {}", ref_dir.display()))?;

    let families = args.families();
    let t0 = Instant::now();
    eprintln!(
        "generating {} training and {} held-out items ({} families)…",
        args.train_items,
        args.val_items,
        families.len()
    );
    let train = build_items(&families, args.seed, args.train_items)?;
    let val = build_items(&families, args.val_seed(), args.val_items)?;
    eprintln!("items ready in {:.1} s", t0.elapsed().as_secs_f64());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let env = build_env(&args, &runtime)?;
    if env.is_none() {
        eprintln!(
            "no --upstream: the reward is edit correctness only (w_edit {} · validity / {:?} / \
             op kinds); w_answer is 0 for this run",
            args.w_edit, args.overlap
        );
    }

    let mut trainer = match &resume_dir {
        Some(d) => {
            let mut t = RlTrainer::load(d, reference, train, &device)?;
            t.state.schedule.total_steps = args.steps;
            eprintln!("resumed from {} at step {}", d.display(), t.state.step);
            t
        }
        None => {
            let policy = EditingModel::load(&ref_dir, &device)?;
            RlTrainer::new(
                policy,
                reference,
                train,
                args.schedule(),
                args.adamw(),
                args.grpo(),
                args.seed,
            )?
        }
    }
    .with_product(product);
    let g = trainer.state.grpo;
    eprintln!(
        "model: {} parameters; GRPO: {} items × {} samples per step, {} rollouts, ε {}, β {}, {} epoch(s) per batch",
        trainer.policy.num_params(),
        g.items_per_step,
        g.group_size,
        match g.rollout {
            Rollout::Single => "single-step".to_string(),
            Rollout::Progressive => format!("progressive (≤ {} edits)", g.max_steps),
            Rollout::Product => format!("product (evr, ≤ {} candidates)", g.max_steps),
        },
        g.clip_eps,
        g.kl_coef,
        g.ppo_epochs
    );

    let start = trainer.state.step;
    let pb = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.steps)
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} eta {eta_precise} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    pb.set_position(start);
    pb.reset_eta();
    let say = |line: String| {
        if pb.is_hidden() {
            eprintln!("{line}");
        } else {
            pb.println(line);
        }
    };
    while trainer.state.step < args.steps {
        let s = trainer.step(env.as_ref())?;
        append_jsonl(&args.out, &s)?;
        let ema = trainer.state.reward_ema.unwrap_or(s.reward);
        pb.set_message(format!(
            "reward {ema:.3} (last {:.3}) edit {:.3}{} valid {:.0}% crop {} kl {:.4}",
            s.reward,
            s.reward_edit,
            s.reward_answer
                .map_or(String::new(), |a| format!(" answer {a:.3}")),
            100.0 * s.validity,
            s.crop_side.map_or("-".into(), |c| format!("{c:.3}")),
            s.update.kl
        ));
        pb.inc(1);
        let step = trainer.state.step;
        if args.quiet && (step % 10 == 0 || step == args.steps) {
            say(format!(
                "step {step}: reward {ema:.3} (last {:.3}) edit {:.3} answer {} valid {:.0}% kl {:.4} |g| {:.3} lr {:.2e} ({:.1} s)",
                s.reward,
                s.reward_edit,
                s.reward_answer.map_or("-".into(), |a| format!("{a:.3}")),
                100.0 * s.validity,
                s.update.kl,
                s.update.grad_norm,
                s.update.lr,
                s.seconds
            ));
        }
        let done = step == args.steps;
        if args.eval_every > 0 && (step % args.eval_every == 0 || done) && !val.is_empty() {
            let rep = pb.suspend(|| {
                evaluate_rl(
                    &trainer.policy,
                    &val,
                    g.rollout,
                    g.max_steps,
                    env.as_ref(),
                    step,
                    trainer.product.as_ref(),
                )
            })?;
            say(format!(
                "step {step}: held-out valid {:.1}% edit {:.3} IoU {} Pass@1 {} (n {})",
                100.0 * rep.validity,
                rep.edit,
                rep.iou.map_or("-".into(), |v| format!("{v:.3}")),
                rep.pass1.map_or("-".into(), |v| format!("{v:.3}")),
                rep.n
            ));
            append_jsonl(&args.out, &rep)?;
        }
        if args.checkpoint_every > 0 && (step % args.checkpoint_every == 0 || done) {
            trainer.save(&args.out.join(format!("ckpt-{step:08}")))?;
            let all = rl_checkpoints(&args.out);
            let excess = all.len().saturating_sub(args.keep_checkpoints.max(1));
            for (_, old) in all.into_iter().take(excess) {
                std::fs::remove_dir_all(&old)
                    .with_context(|| format!("removing {}", old.display()))?;
            }
        }
    }
    pb.finish();
    trainer.policy.save(args.out.join("final"))?;
    drop(env);
    runtime.shutdown_timeout(Duration::from_secs(5));
    eprintln!(
        "done: {} steps ({} this run) in {:.1} s; weights in {}",
        trainer.state.step,
        trainer.state.step - start,
        t0.elapsed().as_secs_f64(),
        args.out.join("final").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantages_are_normalised_per_group() {
        let r = [
            Some(1.0),
            Some(0.0),
            Some(0.0),
            Some(1.0),
            Some(0.5),
            Some(0.5),
        ];
        let a = group_advantages(&r, 2);
        assert!(
            (a[0] - 1.0).abs() < 1e-9 && (a[1] + 1.0).abs() < 1e-9,
            "{a:?}"
        );
        assert!((a[2] + 1.0).abs() < 1e-9 && (a[3] - 1.0).abs() < 1e-9);
        assert_eq!(
            &a[4..],
            &[0.0, 0.0],
            "a zero-variance group teaches nothing"
        );
        let a = normalise_group(&[Some(3.0), Some(1.0), Some(2.0), None]);
        let sum: f64 = a.iter().sum();
        assert!(sum.abs() < 1e-9);
        let var = a[..3].iter().map(|x| x * x).sum::<f64>() / 3.0;
        assert!((var - 1.0).abs() < 1e-9, "unit variance: {a:?}");
        assert_eq!(a[3], 0.0);
        assert_eq!(normalise_group(&[Some(1.0), None]), vec![0.0, 0.0]);
    }

    #[test]
    fn crop_side_is_the_mean_side_of_first_crops_relative_to_their_images() {
        let model = EditingModel::tiny(1).unwrap();
        let image = Arc::new(etchr_ops::RgbImage::new(400, 100));
        let input = PlanInput::new(ImageInput::Decoded(image), "q");
        let prepared = Arc::new(model.prepare(&input).unwrap());
        let sampled = |text: &str, original_size: Option<(u32, u32)>| Sampled {
            program: etchr_ops::text::parse(text).unwrap(),
            dropped: 0,
            example: original_size.map(|original_size| TrainExample {
                prepared: prepared.clone(),
                question: String::new(),
                context: String::new(),
                tokens: Vec::new(),
                original_size,
                cue_regions: Vec::new(),
            }),
            logprob: 0.0,
        };
        // A quarter of the image's area is half its side; a later crop does not count.
        let quarter = sampled("crop box=0,0,200,50; crop box=0,0,10,10", Some((400, 100)));
        let whole = sampled("crop box=0,0,800,200", Some((800, 200)));
        let uncropped = sampled("box box=0,0,10,10", Some((400, 100)));
        let unreplayable = sampled("crop box=0,0,40,10", None);
        let side = mean_crop_side(&[&quarter, &whole, &uncropped, &unreplayable]).unwrap();
        assert!((side - 0.75).abs() < 1e-12, "{side}");
        assert_eq!(mean_crop_side(&[&uncropped, &unreplayable]), None);
    }

    #[test]
    fn objective_ratio_clip_and_kl() {
        let dev = Device::Cpu;
        let t = |v: &[f32]| Tensor::from_vec(v.to_vec(), (1, v.len()), &dev).unwrap();
        let mask = t(&[1.0, 1.0, 0.0]);
        let lp = t(&[-1.0, -2.0, 0.0]);
        let adv = Tensor::new(&[2.0f32], &dev).unwrap();
        // Same policy, reference and sampler: ratio 1, KL 0, loss −A.
        let o = grpo_objective(&lp, &lp, &lp, &adv, &mask, 0.2, 0.5).unwrap();
        assert!((o.loss.to_scalar::<f32>().unwrap() + 2.0).abs() < 1e-6);
        assert!(o.kl.abs() < 1e-9 && o.clip_frac == 0.0);
        // The policy moved up by 0.5 nats on a positive advantage: the clip binds at 1.2.
        let up = t(&[-0.5, -1.5, 0.0]);
        let o = grpo_objective(&up, &lp, &lp, &adv, &mask, 0.2, 0.0).unwrap();
        assert!((o.loss.to_scalar::<f32>().unwrap() + 2.0 * 1.2).abs() < 1e-5);
        assert!((o.clip_frac - 1.0).abs() < 1e-9);
        // k3 with r = ref − lp = −0.5: e^−0.5 + 0.5 − 1.
        let o = grpo_objective(&up, &up, &lp, &adv, &mask, 0.2, 1.0).unwrap();
        let k3 = (-0.5f64).exp() + 0.5 - 1.0;
        assert!((o.kl - k3).abs() < 1e-6, "{} vs {k3}", o.kl);
        assert!((o.loss.to_scalar::<f32>().unwrap() as f64 - (-2.0 + k3)).abs() < 1e-5);
    }
}
