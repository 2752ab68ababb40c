//! `etchr eval` flags.

use std::path::PathBuf;

use crate::condition::Condition;

/// `etchr eval` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// Item set directory (holding items.jsonl and images/), as written by `etchr gen-data`.
    #[arg(long, value_name = "DIR")]
    pub items: PathBuf,
    /// Base URL of an OpenAI-compatible upstream, e.g. http://127.0.0.1:8901/v1.
    #[arg(long, env = "ETCHR_UPSTREAM_URL", value_name = "URL")]
    pub upstream: String,
    /// Upstream provider profile: vllm, qwen, gemini, kimi or openai.
    #[arg(long, default_value = "vllm", value_name = "NAME")]
    pub provider: String,
    /// Upstream API key (prefer ETCHR_UPSTREAM_KEY or the provider's own variable, read when
    /// this is unset).
    #[arg(long, value_name = "KEY", hide_env_values = true)]
    pub upstream_key: Option<String>,
    /// Model sent upstream (empty: the upstream's default).
    #[arg(long, value_name = "M")]
    pub model: Option<String>,
    /// Comma-separated: direct, etchr, oracle, random, tiles.
    #[arg(
        long,
        default_value = "direct,oracle,random,tiles",
        value_delimiter = ','
    )]
    pub conditions: Vec<Condition>,
    /// The loop strategy of the `etchr` condition: evr, progressive or tools.
    #[arg(long, default_value = "evr", value_name = "S")]
    pub strategy: String,
    /// Most edits per `etchr` run (default: the loop's default).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,
    /// Per-image budget of the `tiles` condition: each tile is resized to this longest side
    /// (the reader's R; gold views are made to fit 1024).
    #[arg(long, default_value_t = 1024, value_name = "PX")]
    pub max_side: u32,
    /// The `tiles` condition's grid (N × N tiles).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub tile_grid: u32,
    /// Most images in one upstream call. The `tiles` condition sends [original, tiles...] in as
    /// few calls as this allows; the loop keeps its own limit from its config.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub images_per_call: usize,
    /// At most this many items per family (the first ones in items.jsonl order).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Comma-separated families to run (default: all in the set).
    #[arg(long, value_name = "F,...")]
    pub families: Option<String>,
    /// Items in flight at once (each item's conditions run one after another).
    #[arg(long, default_value_t = 2, value_name = "C")]
    pub concurrency: usize,
    /// Seed of the `random` condition's placements.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sampling temperature sent upstream (the reader ignores it; real MLLMs should be greedy
    /// for a reproducible Pass@1).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// `max_tokens` sent upstream (unset: the upstream's default).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,
    /// Deadline of one item's condition (every call and edit in it), in seconds.
    #[arg(long, default_value_t = 300.0, value_name = "S")]
    pub deadline_secs: f64,
    /// Output directory: results.json, results.md, report.html and thumbs/.
    #[arg(long, default_value = "bench/out/eval", value_name = "DIR")]
    pub out: PathBuf,
    /// Longest side of the report's thumbnails (0: write none).
    #[arg(long, default_value_t = 480, value_name = "PX")]
    pub thumb_side: u32,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
}
