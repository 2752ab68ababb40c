//! ETCHR trainers. Stage 1 (`etchr train sft`): teacher-forced imitation of the generator's
//! gold programs, with AdamW, warmup + cosine, global-norm clipping, checkpoints and resume,
//! and held-out loss and edit metrics. Stage 2 (`etchr train rl`, [`rl`]): group-relative policy
//! optimisation against edit and downstream rewards ([`reward`], [`rollout`]).

pub mod data;
pub mod eval;
pub mod export;
pub mod glyphs;
pub mod optim;
pub mod probe;
pub mod reward;
pub mod rl;
pub mod rollout;
pub mod schedule;
pub mod trajlog;

pub use glyphs::{run_glyphs, GlyphArgs};
pub use rl::{run_rl, ProductPlanner, RlArgs};

pub use export::{run_export, run_metrics, ExportArgs, MetricsArgs};
pub use probe::{run_probe, ProbeArgs};

use anyhow::{Context, Result};
use candle_core::Device;
use clap::Args;
use data::{build_split, build_split_with_views, SplitMix, SplitSpec, Trajectory};
use etchr_data::Family;
use etchr_model::{Batch, EditingModel, ModelConfig, TrainExample};
use eval::{evaluate, EvalReport};
use indicatif::{ProgressBar, ProgressStyle};
use optim::{clip_scale, grad_norm, AdamW, AdamWParams};
use schedule::Schedule;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `etchr train sft`: Stage 1 training of the editing model.
#[derive(Debug, Clone, Args)]
pub struct SftArgs {
    /// Output directory: checkpoints (`ckpt-STEP/`), `best/`, `final/`, `metrics.jsonl`.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue from the latest checkpoint in `--out`.
    #[arg(long)]
    pub resume: bool,
    /// Model config JSON (default: the shipped architecture). With `--init-from`: grow those
    /// weights into this architecture (new variables start at their initialisation, e.g. the
    /// zero-initialised `neighbour_mix`; nothing may be dropped or reshaped).
    #[arg(long, conflicts_with = "tiny")]
    pub config: Option<PathBuf>,
    /// Use the tiny test architecture.
    #[arg(long)]
    pub tiny: bool,
    /// Start from these weights (a directory with config.json and model.safetensors).
    #[arg(long, conflicts_with = "tiny")]
    pub init_from: Option<PathBuf>,
    /// Families to train on (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    pub families: Vec<Family>,
    /// Data seed of the training split (also seeds initialisation and shuffling).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Data seed of the validation split (default: seed + 1000003); must differ from --seed.
    #[arg(long)]
    pub val_seed: Option<u64>,
    /// Generator items in the training split (generation runs at ~8 items/s).
    #[arg(long, default_value_t = 512)]
    pub train_items: usize,
    /// Generator items in the validation split.
    #[arg(long, default_value_t = 48)]
    pub val_items: usize,
    /// Trajectories per item: one with an empty context, the rest with reasoning prefixes.
    #[arg(long, default_value_t = 2)]
    pub contexts_per_item: usize,
    /// Extra trajectories per item on a zoomed view around the gold edit (coarse-to-fine: the
    /// planner refines a first plan on its crop). Items with a path or a jigsaw get none.
    #[arg(long, default_value_t = 1)]
    pub views_per_item: usize,
    /// Replace the training split with freshly generated items every this many steps (0:
    /// never). Round r trains on items r × --train-items onwards of the same seed, so no item
    /// is seen in two rounds and a resumed run regenerates the round it stopped in. The next
    /// round is generated on a background thread while the current one trains. A fixed split
    /// is memorised within a few passes (models/README.md).
    #[arg(long, default_value_t = 0)]
    pub refresh_every: u64,
    #[arg(long, default_value_t = 20_000)]
    pub steps: u64,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Final learning rate as a fraction of --lr.
    #[arg(long, default_value_t = 0.05)]
    pub min_lr_frac: f64,
    #[arg(long, default_value_t = 500)]
    pub warmup: u64,
    #[arg(long, default_value_t = 0.01)]
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
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    #[arg(long, default_value_t = 500)]
    pub eval_every: u64,
    /// Checkpoints kept (older ones are deleted; `best/` is kept apart).
    #[arg(long, default_value_t = 3)]
    pub keep_checkpoints: usize,
    /// Train on the GPU when one is compiled in and present.
    #[arg(long)]
    pub gpu: bool,
    /// Extra training trajectories from trajectory-log directories (repeatable; see
    /// `trajlog`).
    #[arg(long)]
    pub trajectory_log: Vec<PathBuf>,
    /// No progress bar (logs instead).
    #[arg(long)]
    pub quiet: bool,
}

impl SftArgs {
    /// Defaults for everything but `out` (for tests and programmatic use).
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            resume: false,
            config: None,
            tiny: false,
            init_from: None,
            families: Vec::new(),
            seed: 1,
            val_seed: None,
            train_items: 512,
            val_items: 48,
            contexts_per_item: 2,
            views_per_item: 1,
            refresh_every: 0,
            steps: 20_000,
            batch_size: 32,
            lr: 1e-3,
            min_lr_frac: 0.05,
            warmup: 500,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            clip: 1.0,
            checkpoint_every: 500,
            eval_every: 500,
            keep_checkpoints: 3,
            gpu: false,
            trajectory_log: Vec::new(),
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

/// What `trainer_state.json` holds next to each checkpoint's weights and moments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Updates made so far.
    pub step: u64,
    pub schedule: Schedule,
    pub adamw: AdamWParams,
    pub clip: f64,
    pub batch_size: usize,
    /// Seeds the per-epoch shuffles (the batch at any step follows from it and the step).
    pub data_seed: u64,
    /// Spare generator state (kept for Stage 2 sampling; the shuffles don't consume it).
    pub rng: SplitMix,
    pub best_val_loss: Option<f64>,
    pub train_examples: usize,
}

pub const STATE_FILE: &str = "trainer_state.json";
pub const MOMENTS_FILE: &str = "optimizer.safetensors";

/// Numbers from one update.
#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    pub step: u64,
    pub loss: f32,
    pub grad_norm: f64,
    pub lr: f64,
}

/// The model, its optimiser, and where training stands.
pub struct Trainer {
    pub model: EditingModel,
    pub opt: AdamW,
    pub state: TrainerState,
    train: Vec<TrainExample>,
    epoch: Option<(u64, Vec<usize>)>,
}

impl Trainer {
    pub fn new(
        model: EditingModel,
        train: Vec<TrainExample>,
        schedule: Schedule,
        adamw: AdamWParams,
        clip: f64,
        batch_size: usize,
        data_seed: u64,
    ) -> Result<Self> {
        anyhow::ensure!(!train.is_empty(), "no training examples");
        anyhow::ensure!(batch_size > 0, "batch size 0");
        let opt = AdamW::new(model.varmap(), adamw)?;
        let state = TrainerState {
            step: 0,
            schedule,
            adamw,
            clip,
            batch_size,
            data_seed,
            rng: SplitMix(data_seed ^ 0x5EED),
            best_val_loss: None,
            train_examples: train.len(),
        };
        Ok(Self {
            model,
            opt,
            state,
            train,
            epoch: None,
        })
    }

    /// The training examples of the batch at `step`: consecutive slices of a fresh shuffle of
    /// the data per epoch, so the sequence depends only on the data seed.
    pub fn batch_at(&mut self, step: u64) -> Vec<TrainExample> {
        let n = self.train.len() as u64;
        let bs = self.state.batch_size as u64;
        (step * bs..(step + 1) * bs)
            .map(|pos| {
                let epoch = pos / n;
                if self.epoch.as_ref().map(|e| e.0) != Some(epoch) {
                    let mut rng = SplitMix(self.state.data_seed ^ epoch.wrapping_mul(0xA24B_AED4));
                    self.epoch = Some((epoch, rng.permutation(n as usize)));
                }
                let perm = &self.epoch.as_ref().expect("set above").1;
                self.train[perm[(pos % n) as usize]].clone()
            })
            .collect()
    }

    /// Replaces the training examples (a refreshed split); the shuffle of the current epoch is
    /// redrawn over the new ones.
    pub fn replace_train(&mut self, train: Vec<TrainExample>) -> Result<()> {
        anyhow::ensure!(!train.is_empty(), "no training examples");
        self.state.train_examples = train.len();
        self.train = train;
        self.epoch = None;
        Ok(())
    }

    /// One update: forward, backward, clip, AdamW.
    pub fn step(&mut self) -> Result<StepStats> {
        let step = self.state.step;
        let examples = self.batch_at(step);
        let batch = Batch::new(&examples, &self.model)?;
        let parts = self.model.loss(&batch)?;
        let loss: f32 = parts.total.to_scalar()?;
        anyhow::ensure!(loss.is_finite(), "non-finite loss {loss} at step {step}");
        let grads = parts.total.backward()?;
        let norm = grad_norm(&grads, self.opt.vars().map(|(_, v)| v))?;
        let scale = clip_scale(norm, self.state.clip);
        let lr = self.state.schedule.lr(step);
        self.opt.step(&grads, lr, scale)?;
        self.state.step += 1;
        Ok(StepStats {
            step,
            loss,
            grad_norm: norm,
            lr,
        })
    }

    /// The teacher-forced loss of the batch the next step would take (no update).
    pub fn peek_loss(&mut self) -> Result<f32> {
        let examples = self.batch_at(self.state.step);
        let batch = Batch::new(&examples, &self.model)?;
        Ok(self.model.loss(&batch)?.total.to_scalar()?)
    }

    /// Writes weights, optimiser moments and state into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        self.model.save(dir)?;
        self.opt.save_moments(&dir.join(MOMENTS_FILE))?;
        let json = serde_json::to_string_pretty(&self.state)?;
        std::fs::write(dir.join(STATE_FILE), json + "\n")?;
        Ok(())
    }

    /// Restores a trainer saved by [`Trainer::save`] with its training examples.
    pub fn load(dir: &Path, train: Vec<TrainExample>, device: &Device) -> Result<Self> {
        let state: TrainerState = serde_json::from_slice(
            &std::fs::read(dir.join(STATE_FILE))
                .with_context(|| format!("reading {}", dir.join(STATE_FILE).display()))?,
        )?;
        let model = EditingModel::load(dir, device)
            .with_context(|| format!("loading weights from {}", dir.display()))?;
        let mut t = Self::new(
            model,
            train,
            state.schedule,
            state.adamw,
            state.clip,
            state.batch_size,
            state.data_seed,
        )?;
        t.opt
            .load_moments(&dir.join(MOMENTS_FILE), state.step, device)?;
        if t.state.train_examples != state.train_examples {
            tracing::warn!(
                saved = state.train_examples,
                now = t.state.train_examples,
                "the training set differs from the checkpoint's: batches will differ"
            );
        }
        t.state = TrainerState {
            train_examples: t.state.train_examples,
            ..state
        };
        Ok(t)
    }
}

/// The checkpoint directories in `out`, oldest first.
pub fn checkpoints(out: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("ckpt-")?.parse().ok()?;
            e.path()
                .join(STATE_FILE)
                .is_file()
                .then(|| (step, e.path()))
        })
        .collect();
    v.sort();
    v
}

fn checkpoint_dir(out: &Path, step: u64) -> PathBuf {
    out.join(format!("ckpt-{step:08}"))
}

fn fresh_model(args: &SftArgs, device: &Device) -> Result<EditingModel> {
    if let Some(dir) = &args.init_from {
        let Some(p) = &args.config else {
            return EditingModel::load(dir, device)
                .with_context(|| format!("loading {}", dir.display()));
        };
        // Both: grow the weights into the (larger) architecture of `--config`.
        let (model, new) = EditingModel::load_grown(dir, read_config(p)?, args.seed, device)
            .with_context(|| format!("growing {} into {}", dir.display(), p.display()))?;
        eprintln!(
            "grew {} into {}: {} new variables ({})",
            dir.display(),
            p.display(),
            new.len(),
            new.join(", ")
        );
        return Ok(model);
    }
    let cfg = if args.tiny {
        ModelConfig::tiny()
    } else if let Some(p) = &args.config {
        read_config(p)?
    } else {
        ModelConfig::default()
    };
    Ok(EditingModel::new(cfg, args.seed, device)?)
}

fn read_config(path: &Path) -> Result<ModelConfig> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

fn log_metrics(out: &Path, report: &EvalReport) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("metrics.jsonl"))?;
    writeln!(f, "{}", serde_json::to_string(report)?)?;
    Ok(())
}

/// Which training split (round) step `step` trains on with `--refresh-every every`.
pub fn training_round(step: u64, every: u64) -> u64 {
    step.checked_div(every).unwrap_or(0)
}

/// A training split being generated on a background thread while training goes on.
struct Prefetch {
    round: u64,
    handle: std::thread::JoinHandle<Result<Vec<Trajectory>>>,
}

/// Starts generating round `round`'s split, if `--refresh-every` will reach it before `--steps`.
fn prefetch(args: &SftArgs, cfg: &ModelConfig, round: u64) -> Result<Option<Prefetch>> {
    if args.refresh_every == 0 || round.saturating_mul(args.refresh_every) >= args.steps {
        return Ok(None);
    }
    let (args, cfg) = (args.clone(), cfg.clone());
    let handle = std::thread::Builder::new()
        .name("etchr-sft-data".into())
        .spawn(move || {
            // Generation needs only the model's config and vocabulary: a CPU model of the same
            // shape, so the trainer's own model (perhaps on a GPU) stays on its thread.
            let shape = EditingModel::new(cfg, 0, &Device::Cpu)?;
            training_split(&args, &args.families(), round, &shape)
        })?;
    Ok(Some(Prefetch { round, handle }))
}

/// The step a checkpoint directory was saved at (0 for a fresh run).
fn resume_step(dir: &Option<PathBuf>) -> Result<u64> {
    let Some(dir) = dir else { return Ok(0) };
    let state: TrainerState = serde_json::from_slice(
        &std::fs::read(dir.join(STATE_FILE))
            .with_context(|| format!("reading {}", dir.join(STATE_FILE).display()))?,
    )?;
    Ok(state.step)
}

/// Round `round` of the training split: items `round × train_items` onwards of `--seed`.
fn training_split(
    args: &SftArgs,
    families: &[Family],
    round: u64,
    model: &EditingModel,
) -> Result<Vec<Trajectory>> {
    build_split_with_views(
        &SplitSpec {
            families: families.to_vec(),
            seed: args.seed,
            first_index: round * args.train_items as u64,
            items: args.train_items,
            contexts_per_item: args.contexts_per_item,
            keep_images: false,
        },
        args.views_per_item,
        model,
    )
}

/// Runs Stage 1 training as `args` describe.
pub fn run_sft(args: SftArgs) -> Result<()> {
    anyhow::ensure!(
        args.val_seed() != args.seed,
        "--val-seed must differ from --seed (the splits must not overlap)"
    );
    anyhow::ensure!(args.train_items > 0, "--train-items must be positive");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let device = etchr_model::select_device(args.gpu);
    let latest = checkpoints(&args.out).pop();
    if args.resume && latest.is_none() {
        tracing::warn!(out = %args.out.display(), "--resume: no checkpoint yet, starting fresh");
    }
    if !args.resume && latest.is_some() {
        anyhow::bail!(
            "{} already holds checkpoints: pass --resume, or choose another --out",
            args.out.display()
        );
    }
    // The model first: its config decides how images are prepared.
    let resume_dir = if args.resume {
        latest.map(|l| l.1)
    } else {
        None
    };
    let shape_model = match &resume_dir {
        Some(d) => EditingModel::load(d, &device)?,
        None => fresh_model(&args, &device)?,
    };
    let families = args.families();
    let t0 = Instant::now();
    eprintln!(
        "generating {} training and {} validation items ({} families)…",
        args.train_items,
        args.val_items,
        families.len()
    );
    let round = training_round(resume_step(&resume_dir)?, args.refresh_every);
    let train = training_split(&args, &families, round, &shape_model)?;
    let val: Vec<Trajectory> = build_split(
        &SplitSpec {
            families,
            seed: args.val_seed(),
            first_index: 0,
            items: args.val_items,
            contexts_per_item: args.contexts_per_item,
            keep_images: true,
        },
        &shape_model,
    )?;
    let dropped: usize = train.iter().map(|t| t.dropped).sum();
    eprintln!(
        "data: {} training and {} validation trajectories in {:.1} s ({dropped} gold ops dropped by the token form)",
        train.len(),
        val.len(),
        t0.elapsed().as_secs_f64()
    );
    let mut logged = Vec::new();
    for dir in &args.trajectory_log {
        let (extra, stats) = trajlog::read_log(dir, &shape_model)?;
        eprintln!(
            "trajectory log {}: {} of {} records used",
            dir.display(),
            stats.used,
            stats.records
        );
        logged.extend(extra);
    }
    let examples: Vec<TrainExample> = train
        .into_iter()
        .map(|t| t.example)
        .chain(logged.iter().cloned())
        .collect();
    let mut trainer = match &resume_dir {
        Some(d) => {
            drop(shape_model);
            let mut t = Trainer::load(d, examples, &device)?;
            // The schedule may be extended on resume (a longer --steps).
            t.state.schedule.total_steps = args.steps;
            eprintln!("resumed from {} at step {}", d.display(), t.state.step);
            t
        }
        None => Trainer::new(
            shape_model,
            examples,
            args.schedule(),
            args.adamw(),
            args.clip,
            args.batch_size,
            args.seed,
        )?,
    };
    eprintln!("model: {} parameters", trainer.model.num_params());

    let start = trainer.state.step;
    let t_train = Instant::now();
    let pb = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.steps)
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} eta {eta_precise} {per_sec} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    pb.set_position(start);
    pb.reset_eta();
    let mut ema: Option<f64> = None;
    let mut round = round;
    let mut pending = prefetch(&args, trainer.model.config(), round + 1)?;
    while trainer.state.step < args.steps {
        let due = training_round(trainer.state.step, args.refresh_every);
        if due != round {
            let t = Instant::now();
            let fresh = match pending.take() {
                Some(p) if p.round == due => p
                    .handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("the training-data thread panicked"))??,
                _ => training_split(&args, &args.families(), due, &trainer.model)?,
            };
            pending = prefetch(&args, trainer.model.config(), due + 1)?;
            let n = fresh.len();
            trainer.replace_train(
                fresh
                    .into_iter()
                    .map(|t| t.example)
                    .chain(logged.iter().cloned())
                    .collect(),
            )?;
            round = due;
            pb.suspend(|| {
                eprintln!(
                    "step {}: fresh training split (round {due}, {n} trajectories; waited {:.1} s)",
                    trainer.state.step,
                    t.elapsed().as_secs_f64()
                )
            });
        }
        let s = trainer.step()?;
        let l = s.loss as f64;
        let e = ema.map_or(l, |e| 0.98 * e + 0.02 * l);
        ema = Some(e);
        pb.set_message(format!(
            "loss {e:.4} (last {l:.4}) |g| {:.2} lr {:.2e}",
            s.grad_norm, s.lr
        ));
        pb.inc(1);
        let step = trainer.state.step;
        if args.quiet && step % 50 == 0 {
            tracing::info!(step, loss = e, grad_norm = s.grad_norm, lr = s.lr, "train");
        }
        let done = step == args.steps;
        if args.eval_every > 0 && (step % args.eval_every == 0 || done) && !val.is_empty() {
            let report = pb.suspend(|| evaluate(&trainer.model, &val, args.batch_size, step))?;
            let best = match trainer.state.best_val_loss {
                None => true,
                Some(b) => report.val_loss < b,
            };
            if best {
                trainer.state.best_val_loss = Some(report.val_loss);
                trainer.model.save(args.out.join("best"))?;
            }
            let line = format!(
                "step {step}: val loss {:.4}{} pointer top-1 {:.1}% (first {:.1}%, NLL {:.2}){} valid {:.1}% IoU {} (coarse {}, gold programs {}) coverage {} kinds {}",
                report.val_loss,
                if best { " (best)" } else { "" },
                100.0 * report.val_pointer_top1,
                100.0 * report.val_first_pointer_top1,
                report.val_first_pointer_nll,
                match (report.val_cue_top1, report.val_cue_bce) {
                    (Some(t), Some(b)) => format!(" cue top-1 {:.1}% (BCE {b:.3})", 100.0 * t),
                    _ => String::new(),
                },
                100.0 * report.validity,
                report.mean_iou.map_or("-".into(), |v| format!("{v:.3}")),
                report
                    .coarse_mean_iou
                    .map_or("-".into(), |v| format!("{v:.3}")),
                report
                    .gold_program_iou
                    .map_or("-".into(), |v| format!("{v:.3}")),
                report
                    .mean_coverage
                    .map_or("-".into(), |v| format!("{v:.3}")),
                report
                    .op_kind_accuracy
                    .iter()
                    .map(|(k, (a, n))| format!("{k} {:.0}%/{n}", 100.0 * a))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            // A hidden bar (quiet, or not a terminal) swallows `println`.
            if pb.is_hidden() {
                eprintln!("{line}");
            } else {
                pb.println(line);
            }
            log_metrics(&args.out, &report)?;
        }
        if args.checkpoint_every > 0 && (step % args.checkpoint_every == 0 || done) {
            trainer.save(&checkpoint_dir(&args.out, step))?;
            let all = checkpoints(&args.out);
            let excess = all.len().saturating_sub(args.keep_checkpoints.max(1));
            for (_, old) in all.into_iter().take(excess) {
                std::fs::remove_dir_all(&old)
                    .with_context(|| format!("removing {}", old.display()))?;
            }
        }
    }
    pb.finish();
    trainer.model.save(args.out.join("final"))?;
    let ran = trainer.state.step - start;
    let train_s = t_train.elapsed().as_secs_f64();
    eprintln!(
        "done: {} steps ({ran} this run) in {:.1} s ({:.1} s training, {:.3} s/step incl. evaluation and checkpoints); weights in {}",
        trainer.state.step,
        t0.elapsed().as_secs_f64(),
        train_s,
        train_s / ran.max(1) as f64,
        args.out.join("final").display()
    );
    Ok(())
}
