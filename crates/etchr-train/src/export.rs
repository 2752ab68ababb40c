//! `etchr train export`: writes a trained checkpoint as a shippable model directory, with the
//! weights stored in a smaller dtype (the default model under `models/` is F16: ~3 MB).

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use clap::{Args, ValueEnum};
use etchr_model::EditingModel;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreDtype {
    F32,
    F16,
    Bf16,
}

impl From<StoreDtype> for DType {
    fn from(d: StoreDtype) -> Self {
        match d {
            StoreDtype::F32 => DType::F32,
            StoreDtype::F16 => DType::F16,
            StoreDtype::Bf16 => DType::BF16,
        }
    }
}

/// `etchr train export`: copy a model directory (config.json + model.safetensors), converting
/// the stored weights.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// A model directory written by the trainer (`best/`, `final/` or `ckpt-STEP/`).
    #[arg(long)]
    pub from: PathBuf,
    /// Where to write config.json and model.safetensors.
    #[arg(long)]
    pub out: PathBuf,
    /// Storage dtype of the written weights (inference always computes in F32).
    #[arg(long, value_enum, default_value_t = StoreDtype::F16)]
    pub dtype: StoreDtype,
}

pub fn run_export(args: ExportArgs) -> Result<()> {
    let model = EditingModel::load(&args.from, &Device::Cpu)
        .with_context(|| format!("loading {}", args.from.display()))?;
    model
        .save_as(&args.out, args.dtype.into())
        .with_context(|| format!("writing {}", args.out.display()))?;
    let size = std::fs::metadata(args.out.join("model.safetensors"))?.len();
    eprintln!(
        "exported {} parameters as {:?} to {} ({:.1} MB)",
        model.num_params(),
        args.dtype,
        args.out.display(),
        size as f64 / 1e6
    );
    Ok(())
}

/// `etchr train metrics`: the held-out edit metrics of a model directory — validity, focus IoU
/// (coarse and coarse-to-fine), coverage and op-kind accuracy per family — on generator items of
/// a seed the model was not trained on, as JSON on stdout.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// A model directory (config.json + model.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// Data seed of the held-out items (keep it off the training seed).
    #[arg(long)]
    pub seed: u64,
    /// Generator items (spread over the families).
    #[arg(long, default_value_t = 120)]
    pub items: usize,
    /// Trajectories per item: one with an empty context, the rest with reasoning prefixes.
    #[arg(long, default_value_t = 2)]
    pub contexts_per_item: usize,
    /// Families (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    pub families: Vec<etchr_data::Family>,
}

pub fn run_metrics(args: MetricsArgs) -> Result<crate::eval::EvalReport> {
    let model = EditingModel::load(&args.model, &Device::Cpu)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let families = if args.families.is_empty() {
        etchr_data::Family::ALL.to_vec()
    } else {
        args.families.clone()
    };
    let val = crate::data::build_split(
        &crate::data::SplitSpec {
            families,
            seed: args.seed,
            first_index: 0,
            items: args.items,
            contexts_per_item: args.contexts_per_item,
            keep_images: true,
        },
        &model,
    )?;
    let report = crate::eval::evaluate(&model, &val, 16, 0)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(report)
}
