//! `etchr`: the ETCHR sidecar's command line.
//!
//! Subcommands: `serve` (the HTTP service), `edit` (one edit on files, no server), `openapi`
//! (print the API document). Later: `reason`, `eval`, `train`, `gen-data`.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use etchr_ops::CoordSystem;
use etchr_server::config::{Config, FormatName, LogFormat};
use etchr_server::engine::{execute, parse_program, EditJob, ImagePayload, ProgramSource};
use etchr_server::AppState;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

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
    /// Apply an edit program to an image file and write the result.
    Edit(EditArgs),
    /// Print the OpenAPI document (YAML) to stdout.
    Openapi,
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
    config: ConfigArgs,
}

#[derive(Args)]
struct EditArgs {
    /// Input image (PNG, JPEG or WebP).
    #[arg(long, value_name = "IN")]
    image: PathBuf,
    /// JSON file holding the edit program (an array of ops).
    #[arg(long, value_name = "OPS.json")]
    ops: PathBuf,
    /// Output file; .png, .jpg or .jpeg picks the format. With several views (a `tiles` op),
    /// view i > 0 is written next to it as NAME-i.EXT.
    #[arg(long, value_name = "OUT")]
    out: PathBuf,
    /// Coordinate convention of the program: pixel, norm1, norm1000, qwen25, gemini or xywh.
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

fn serve(args: ServeArgs) -> Result<()> {
    let mut flags = Vec::new();
    if let Some(listen) = args.listen {
        flags.push(("listen".to_string(), format!("{listen:?}")));
    }
    if let Some(f) = args.log_format {
        flags.push(("log_format".to_string(), format!("{f:?}")));
    }
    let config = load_config(&args.config, flags)?;
    init_logging(config.log_format, "info");
    tracing::info!(config = ?config, "starting etchr {}", env!("CARGO_PKG_VERSION"));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("could not listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        // Scripts and tests read the bound port (for port 0) from this line.
        println!("etchr listening on {addr}");
        std::io::stdout().flush()?;
        tracing::info!(%addr, "listening");
        etchr_server::serve(
            listener,
            AppState::new(config),
            etchr_server::shutdown_signal(),
        )
        .await?;
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
    let ops_text = std::fs::read_to_string(&args.ops)
        .with_context(|| format!("could not read {}", args.ops.display()))?;
    let ops: Vec<serde_json::Value> = serde_json::from_str(&ops_text)
        .with_context(|| format!("{} must hold a JSON array of ops", args.ops.display()))?;
    let program = parse_program(ops, config.limits.max_ops)?;
    let outcome = execute(EditJob {
        image: ImagePayload::Bytes(image.into()),
        program: ProgramSource::Ops(program),
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
        "ops": outcome.program,
        "repairs": outcome.repairs,
        "transform": first.transform,
        "timings_ms": {"decode": t.decode, "render": t.render, "encode": t.encode,
                        "total": t.decode + t.render + t.encode},
    });
    println!("{summary}");
    Ok(())
}
