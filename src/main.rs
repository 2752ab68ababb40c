//! `etchr`: the ETCHR sidecar's command line.
//!
//! Subcommands: `serve` (the HTTP service), `edit` (one edit on files, no server), `reason` (one
//! question through the loop), `gen-data` (benchmark items), `eval` (the offline benchmark),
//! `train` (the editing model's trainer) and `openapi` (print the API document).
//!
//! The editing model (`etchr-model`) is wired in here, as [`model_planner::ModelPlanner`]: the
//! server and the loop see it only through the `Planner` trait.

mod model_planner;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use etchr_ops::CoordSystem;
use etchr_reason::Planner;
use etchr_server::config::{Config, FormatName, LogFormat};
use etchr_server::engine::{execute, parse_program, EditJob, ImagePayload, ProgramSource};
use etchr_server::AppState;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "etchr",
    version,
    about = "Edits images while a multimodal LLM reasons about them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve(ServeArgs),
    /// Edit an image file and write the result: an explicit program (--ops), or one the editing
    /// model plans from a question (--question).
    Edit(EditArgs),
    /// Ask the upstream MLLM a question about an image, editing it along the way (no server).
    Reason(ReasonArgs),
    /// Generate benchmark items / training trajectories (seeded, reproducible).
    GenData(etchr_data::GenArgs),
    /// Run the offline benchmark: items through the upstream under several conditions.
    Eval(EvalCmd),
    /// Compare two `etchr eval` runs item by item: Pass@1 per family and an exact McNemar test
    /// (the Stage 1 vs Stage 1 + 2 ablation, or any two models or strategies).
    Compare(etchr_eval::compare::CompareArgs),
    /// Train the editing model.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Print the OpenAPI document (YAML) to stdout.
    Openapi,
}

#[derive(Subcommand)]
enum TrainCommand {
    /// Stage 1: imitation of generated edit trajectories (checkpoints; `--resume` continues).
    Sft(etchr_train::SftArgs),
    /// Stage 2: GRPO against edit and downstream rewards, from Stage 1 weights (checkpoints;
    /// `--resume` continues).
    Rl(etchr_train::RlArgs),
    /// The glyph classifier the planner reads quoted keys with (rendered lines; a few minutes).
    Glyphs(etchr_train::GlyphArgs),
    /// Write a trained model directory with its weights in a smaller dtype (for `models/`).
    Export(etchr_train::ExportArgs),
    /// Held-out edit metrics of a model directory (JSON on stdout).
    Metrics(etchr_train::MetricsArgs),
    /// Which of a question's visual cue (colour, shape or orientation) a model's cue head has
    /// bound to the image, on held-out fine-grained and orientation items (JSON on stdout).
    Probe(etchr_train::ProbeArgs),
}

/// The one-upstream setup that needs no file.
#[derive(Args)]
struct UpstreamArgs {
    /// Base URL of an OpenAI-compatible upstream, e.g. http://gpu:8000/v1 (sets [upstream]).
    #[arg(long, env = "ETCHR_UPSTREAM_URL", value_name = "URL")]
    upstream_url: Option<String>,
    /// Upstream provider profile: vllm, qwen, gemini, kimi or openai.
    #[arg(long, env = "ETCHR_PROVIDER", value_name = "NAME")]
    provider: Option<String>,
    /// Upstream API key (prefer the ETCHR_UPSTREAM_KEY variable, read when this is unset).
    #[arg(long, value_name = "KEY", hide_env_values = true)]
    upstream_key: Option<String>,
    /// Model sent upstream when a request names none.
    #[arg(long, value_name = "MODEL")]
    upstream_model: Option<String>,
}

impl UpstreamArgs {
    /// Puts the flags' upstream into `config` (flags beat the file's `[upstream]`).
    fn apply(&self, config: &mut Config) -> Result<()> {
        if self.upstream_url.is_none() && self.provider.is_none() {
            if let (Some(m), Some(u)) = (&self.upstream_model, config.upstream.as_mut()) {
                u.model = Some(m.clone());
            }
            return Ok(());
        }
        let provider = self.provider.as_deref().unwrap_or("vllm");
        let url = self.upstream_url.as_deref().unwrap_or("");
        let mut up =
            etchr_upstream::UpstreamConfig::from_url(url, provider, self.upstream_key.as_deref())
                .map_err(|e| anyhow::anyhow!("--upstream-url/--provider: {}", e.message))?;
        up.model = self
            .upstream_model
            .clone()
            .or_else(|| config.upstream.as_ref().and_then(|u| u.model.clone()));
        config.upstream = Some(up);
        Ok(())
    }
}

/// Which planner proposes the loop's edits (`evr`, `progressive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PlannerChoice {
    /// The editing model (built in, or `--model DIR`).
    Model,
    /// The editing model's own programs, without the sidecar's pixel searches, reader or tile
    /// search: the network alone, as `etchr train rl --rollout single` and `progressive` train
    /// it.
    Network,
    /// The question-blind zoom-in over a 2x2 then 3x3 grid.
    #[value(alias = "tile_search")]
    TileSearch,
}

/// Where `evr`'s next candidate comes from after a rejected edit (`[model] alternatives`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AlternativesChoice {
    /// The unseen zoomed tile holding the most of the model's pointer distribution.
    Tiles,
    /// The model plans again, away from the regions already shown.
    Model,
}

impl From<AlternativesChoice> for etchr_server::config::Alternatives {
    fn from(c: AlternativesChoice) -> Self {
        match c {
            AlternativesChoice::Tiles => Self::Tiles,
            AlternativesChoice::Model => Self::Model,
        }
    }
}

/// `--model DIR`: an editing model other than the built-in one.
#[derive(Args)]
struct ModelArgs {
    /// Editing-model directory (config.json + model.safetensors, as `etchr train sft` writes);
    /// beats `[model] path`. Default: the model built into the binary.
    #[arg(long = "model", visible_alias = "model-dir", value_name = "DIR")]
    model: Option<PathBuf>,
}

#[derive(Args)]
struct EvalCmd {
    #[command(flatten)]
    args: etchr_eval::EvalArgs,
    /// Planner of the `etchr` condition: model (the editing model the binary ships, or
    /// --model-dir, inside the sidecar's planner), network (that model's own programs alone)
    /// or tile-search (the question-blind fallback).
    #[arg(long, value_enum, default_value = "model")]
    planner: PlannerChoice,
    /// Editing-model directory for `--planner model` or `network` (default: the built-in
    /// model).
    #[arg(long, value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// With `--planner model`: where `evr`'s candidates after a rejected edit come from.
    #[arg(long, value_enum, default_value = "tiles")]
    alternatives: AlternativesChoice,
}

#[derive(Args)]
struct ReasonArgs {
    /// Input image (PNG, JPEG or WebP).
    #[arg(long, value_name = "IN")]
    image: PathBuf,
    /// The question about the image.
    #[arg(long, value_name = "Q")]
    question: String,
    /// evr, progressive or tools (default from [reason] strategy).
    #[arg(long, value_name = "S")]
    strategy: Option<String>,
    /// Most edits (default from [reason] max_steps).
    #[arg(long, value_name = "N")]
    max_steps: Option<usize>,
    /// Who plans the edits of evr / progressive: model, network (the model's own programs
    /// alone) or tile-search (default: model, or tile-search when [model] enabled = false).
    #[arg(long, value_enum)]
    planner: Option<PlannerChoice>,
    #[command(flatten)]
    model: ModelArgs,
    /// Write the full trace (JSON) here.
    #[arg(long, value_name = "OUT.json")]
    trace: Option<PathBuf>,
    #[command(flatten)]
    upstream: UpstreamArgs,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Where configuration comes from; shared by every subcommand that reads it.
#[derive(Args)]
struct ConfigArgs {
    /// TOML configuration file (see config/etchr.toml).
    #[arg(long, env = "ETCHR_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override any setting, e.g. `--set limits.max_ops=64` (repeatable; beats file and env).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on, HOST:PORT (port 0 picks a free port).
    #[arg(long, env = "ETCHR_LISTEN", value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Log format: text or json.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    #[command(flatten)]
    upstream: UpstreamArgs,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Args)]
struct EditArgs {
    /// Input image (PNG, JPEG or WebP).
    #[arg(long, value_name = "IN")]
    image: PathBuf,
    /// JSON file holding the edit program (an array of ops).
    #[arg(
        long,
        value_name = "OPS.json",
        required_unless_present = "question",
        conflicts_with = "question"
    )]
    ops: Option<PathBuf>,
    /// Instead of --ops: the question the edit should help answer; the editing model plans the
    /// program (offline, on this machine).
    #[arg(long, value_name = "Q")]
    question: Option<String>,
    /// With --question: the reasoning so far, which the model also reads.
    #[arg(long, value_name = "C", requires = "question")]
    context: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Output file; .png, .jpg or .jpeg picks the format. With several views (a `tiles` op),
    /// view i > 0 is written next to it as NAME-i.EXT.
    #[arg(long, value_name = "OUT")]
    out: PathBuf,
    /// Coordinate convention of --ops: pixel, norm1, norm1000, qwen25, gemini or xywh.
    #[arg(long, default_value = "pixel", value_parser = parse_coords)]
    coords: CoordSystem,
    /// For --coords qwen25: the model-input size W,H the boxes refer to.
    #[arg(long, value_name = "W,H", value_parser = parse_size)]
    resized: Option<(u32, u32)>,
    #[command(flatten)]
    config: ConfigArgs,
}

fn parse_coords(s: &str) -> Result<CoordSystem, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        let names: Vec<&str> = CoordSystem::ALL.iter().map(|c| c.name()).collect();
        format!("expected one of {}", names.join(", "))
    })
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once([',', 'x']).ok_or("expected W,H")?;
    match (w.trim().parse(), h.trim().parse()) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err("expected two positive integers W,H".into()),
    }
}

fn load_config(args: &ConfigArgs, mut flags: Vec<(String, String)>) -> Result<Config> {
    let mut overrides = Vec::new();
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
        overrides.push((k.trim().to_string(), v.trim().to_string()));
    }
    overrides.append(&mut flags);
    Ok(Config::load(
        args.config.as_deref(),
        std::env::vars(),
        &overrides,
    )?)
}

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Edit(args) => edit(args),
        Command::Reason(args) => reason(args),
        Command::GenData(args) => etchr_data::run_gen_data(args),
        Command::Eval(args) => eval(args),
        Command::Compare(args) => etchr_eval::compare::run_compare(args)
            .map(|_| ())
            .map_err(Into::into),
        Command::Train(TrainCommand::Sft(args)) => etchr_train::run_sft(args),
        Command::Train(TrainCommand::Rl(args)) => model_planner::for_training()
            .and_then(|planner| etchr_train::run_rl(args, Some(planner))),
        Command::Train(TrainCommand::Glyphs(args)) => etchr_train::run_glyphs(args),
        Command::Train(TrainCommand::Export(args)) => etchr_train::run_export(args),
        Command::Train(TrainCommand::Metrics(args)) => etchr_train::run_metrics(args).map(|_| ()),
        Command::Train(TrainCommand::Probe(args)) => etchr_train::run_probe(args).map(|_| ()),
        Command::Openapi => {
            print!("{}", etchr_server::openapi::yaml());
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with causes), not a debug dump with a backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Makes glibc keep and reuse the multi-megabyte buffers every edit allocates and frees (decoded
/// pixels, renders, encodings, response bodies). By default it maps the largest afresh and
/// returns freed memory to the kernel, so each request pays page faults again:
/// bench/RESULTS.md, "`/v1/edit` over HTTP" (single-request latency 12–21 % lower with this, for
/// memory held after use). Left alone when the operator tunes malloc through `GLIBC_TUNABLES`.
fn keep_freed_memory() {
    let tunables = std::env::var("GLIBC_TUNABLES").ok();
    if malloc_tuned_by_operator(tunables.as_deref()) {
        tracing::info!("malloc tuned through GLIBC_TUNABLES; its thresholds are left alone");
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // The largest allocation served from the arenas rather than a fresh mapping, and how
        // much free memory an arena keeps before returning it to the kernel.
        const MMAP_THRESHOLD: i32 = 64 << 20;
        const TRIM_THRESHOLD: i32 = 256 << 20;
        // SAFETY: mallopt only sets allocator parameters (it takes its own locks) and is given
        // no pointers.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}

fn malloc_tuned_by_operator(tunables: Option<&str>) -> bool {
    tunables.is_some_and(|t| t.contains("glibc.malloc."))
}

fn serve(args: ServeArgs) -> Result<()> {
    let mut flags = Vec::new();
    if let Some(listen) = args.listen {
        flags.push(("listen".to_string(), format!("{listen:?}")));
    }
    if let Some(f) = args.log_format {
        flags.push(("log_format".to_string(), format!("{f:?}")));
    }
    let mut config = load_config(&args.config, flags)?;
    args.upstream.apply(&mut config)?;
    config.validate()?;
    init_logging(config.log_format, "info");
    keep_freed_memory();
    tracing::info!(config = ?config, "starting etchr {}", env!("CARGO_PKG_VERSION"));
    if config.security.api_keys.is_empty() {
        tracing::warn!(
            "no client API keys are configured: every client may call the API \
             (set ETCHR_API_KEYS or [security] api_keys)"
        );
    } else {
        tracing::info!(
            keys = config.security.api_keys.len(),
            rate_limit_per_minute = config.security.rate_limit_per_minute,
            "client authentication is on"
        );
    }
    if config.fetch.enabled {
        tracing::info!(allowed_hosts = ?config.fetch.allowed_hosts, "image URL fetching is on");
    }
    // Load the model before listening: a bad [model] path stops start-up here, with a message.
    let planner = if config.model.enabled {
        Some(model_planner::load(&config.model, None)?)
    } else {
        tracing::info!("the editing model is disabled ([model] enabled = false)");
        None
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("could not listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        // Install the signal handlers before announcing the port, so an early SIGTERM drains.
        let shutdown = etchr_server::shutdown_signal();
        // Scripts and tests read the bound port (for port 0) from this line.
        println!("etchr listening on {addr}");
        std::io::stdout().flush()?;
        tracing::info!(%addr, "listening");
        let mut state = AppState::try_new(config).map_err(|e| anyhow::anyhow!(e))?;
        if let Some(p) = planner {
            state = state.with_planner(Arc::new(p));
        }
        etchr_server::serve(listener, state, shutdown).await?;
        tracing::info!("stopped");
        Ok(())
    });
    // Renders abandoned by timed-out requests may still hold blocking threads; do not wait
    // for them forever on the way out.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}

fn format_for(path: &Path, quality: u8) -> Result<etchr_ops::OutputFormat> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    Ok(match ext.as_str() {
        "png" => FormatName::Png.with_quality(quality),
        "jpg" | "jpeg" => FormatName::Jpeg.with_quality(quality),
        _ => bail!(
            "--out {}: use a .png, .jpg or .jpeg file name",
            path.display()
        ),
    })
}

/// `NAME.EXT` → `NAME-i.EXT` for extra views.
fn view_path(out: &Path, index: usize) -> PathBuf {
    if index == 0 {
        return out.to_path_buf();
    }
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("view");
    let ext = out.extension().and_then(|s| s.to_str()).unwrap_or("png");
    out.with_file_name(format!("{stem}-{index}.{ext}"))
}

fn edit(args: EditArgs) -> Result<()> {
    let config = load_config(&args.config, Vec::new())?;
    init_logging(config.log_format, "warn");
    let format = format_for(&args.out, config.output.jpeg_quality)?;
    let image = std::fs::read(&args.image)
        .with_context(|| format!("could not read {}", args.image.display()))?;
    let (program, planner) = match (&args.ops, &args.question) {
        (Some(path), _) => {
            let ops_text = std::fs::read_to_string(path)
                .with_context(|| format!("could not read {}", path.display()))?;
            let ops: Vec<serde_json::Value> = serde_json::from_str(&ops_text)
                .with_context(|| format!("{} must hold a JSON array of ops", path.display()))?;
            let program = parse_program(ops, config.limits.max_ops)?;
            (ProgramSource::Ops(program), "explicit_ops".to_string())
        }
        (None, Some(question)) => {
            if question.trim().is_empty() {
                bail!("--question is empty");
            }
            let planner = model_planner::load(&config.model, args.model.model.as_deref())?;
            let name = planner.name().to_string();
            let source = ProgramSource::Plan {
                planner: Arc::new(planner),
                question: question.clone(),
                context: args.context.clone(),
            };
            (source, name)
        }
        (None, None) => bail!("give --ops OPS.json, or --question Q for the editing model"),
    };
    let outcome = execute(EditJob {
        image: ImagePayload::Bytes(image.into()),
        program,
        coords: args.coords,
        resized: args.resized,
        format,
        all_views: true,
        limits: config.decode_limits(),
        render: config.render_options(),
    })?;
    let mut written = Vec::new();
    for (i, view) in outcome.views.iter().enumerate() {
        let path = view_path(&args.out, i);
        std::fs::write(&path, &view.bytes)
            .with_context(|| format!("could not write {}", path.display()))?;
        written.push(path.display().to_string());
    }
    let first = &outcome.views[0];
    let t = outcome.timings;
    let summary = serde_json::json!({
        "out": written,
        "width": first.width,
        "height": first.height,
        "planner": planner,
        "program": etchr_ops::text::to_text(&outcome.program),
        "ops": outcome.program,
        "repairs": outcome.repairs,
        "transform": first.transform,
        "timings_ms": {"decode": t.decode, "plan": t.plan, "render": t.render,
                        "encode": t.encode,
                        "total": t.decode + t.plan.unwrap_or(0.0) + t.render + t.encode},
    });
    println!("{summary}");
    Ok(())
}

fn reason(args: ReasonArgs) -> Result<()> {
    let mut config = load_config(&args.config, Vec::new())?;
    args.upstream.apply(&mut config)?;
    config.validate()?;
    init_logging(config.log_format, "warn");
    let upstream = config.upstream.clone().context(
        "no upstream: pass --upstream-url URL --provider NAME (or set ETCHR_UPSTREAM_URL), \
         or give a config file with an [upstream] section",
    )?;
    let strategy = match &args.strategy {
        Some(s) => s.parse().map_err(|e| anyhow::anyhow!("--strategy: {e}"))?,
        None => config.reason.strategy,
    };
    let image = std::fs::read(&args.image)
        .with_context(|| format!("could not read {}", args.image.display()))?;
    let choice = args.planner.unwrap_or(if config.model.enabled {
        PlannerChoice::Model
    } else {
        PlannerChoice::TileSearch
    });
    let planner = planner_for(choice, &config.model, args.model.model.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let outcome = runtime.block_on(async {
        let backend =
            etchr_upstream::build(&upstream).map_err(|e| anyhow::anyhow!("upstream: {e}"))?;
        let mut reasoner = etchr_reason::Reasoner::new(backend, config.loop_config());
        if let Some(p) = planner {
            reasoner = reasoner.with_planner(p);
        }
        let outcome = reasoner
            .run(etchr_reason::ReasonRequest {
                image,
                question: args.question.clone(),
                strategy,
                max_steps: args.max_steps,
                ..Default::default()
            })
            .await?;
        if !config.reason.trajectory_dir.is_empty() {
            let log = etchr_reason::TrajectoryLog::open(&config.reason.trajectory_dir)?;
            log.append(&outcome)?;
        }
        Ok::<_, anyhow::Error>(outcome)
    })?;
    if let Some(path) = &args.trace {
        let json = serde_json::to_vec_pretty(&outcome.trace)?;
        std::fs::write(path, json)
            .with_context(|| format!("could not write {}", path.display()))?;
    }
    println!("{}", outcome.trace.answer);
    Ok(())
}

/// The planner `choice` names, with the editing model `settings` and `dir` name; `None` for
/// the loop's own question-blind tile search.
fn planner_for(
    choice: PlannerChoice,
    settings: &etchr_server::config::EditingModelConfig,
    dir: Option<&std::path::Path>,
) -> Result<Option<Arc<dyn Planner>>> {
    Ok(match choice {
        PlannerChoice::TileSearch => None,
        PlannerChoice::Model => Some(Arc::new(model_planner::load(settings, dir)?)),
        PlannerChoice::Network => Some(Arc::new(model_planner::load(settings, dir)?.bare())),
    })
}

/// `etchr eval`: the `etchr` condition plans with the shipped editing model unless
/// `--planner tile-search`, so the benchmark measures what the binary ships.
fn eval(cmd: EvalCmd) -> Result<()> {
    let wants_planner = cmd.args.conditions.contains(&etchr_eval::Condition::Etchr)
        && cmd.args.strategy.trim() != "tools";
    let planner = if wants_planner {
        let settings = etchr_server::config::EditingModelConfig {
            alternatives: cmd.alternatives.into(),
            ..Default::default()
        };
        planner_for(cmd.planner, &settings, cmd.model_dir.as_deref())?
    } else {
        None
    };
    etchr_eval::run_eval_with_planner(cmd.args, planner)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::malloc_tuned_by_operator;

    #[test]
    fn malloc_is_left_to_an_operator_who_tunes_it() {
        assert!(!malloc_tuned_by_operator(None));
        assert!(!malloc_tuned_by_operator(Some("glibc.pthread.rseq=0")));
        assert!(malloc_tuned_by_operator(Some(
            "glibc.pthread.rseq=0:glibc.malloc.arena_max=2"
        )));
    }
}
