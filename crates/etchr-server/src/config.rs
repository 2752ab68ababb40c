//! Service configuration: one typed struct, loaded in layers.
//!
//! Precedence, lowest first: built-in defaults, the TOML file (`--config` / `ETCHR_CONFIG`),
//! environment variables, command-line flags. Every layer is merged as TOML *before* the struct
//! is deserialised, so an unknown key from any layer is a startup error that names the key,
//! rather than a silently ignored typo.
//!
//! Environment variables are named after the key path: `ETCHR_` + the path in upper case with
//! sections separated by a double underscore, e.g. `ETCHR_LISTEN`, `ETCHR_LIMITS__MAX_PIXELS`,
//! `ETCHR_CORS__ALLOWED_ORIGINS`. Values are read as TOML values where they parse as one
//! (`1000`, `true`, `["a", "b"]`), otherwise as strings; a comma-separated string is accepted
//! where a list is expected.

use etchr_ops::{DecodeLimits, OutputFormat, RenderOptions};
use etchr_reason::{LoopConfig, Strategy};
use etchr_upstream::UpstreamConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// Errors while loading or checking the configuration. These stop the process at startup.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("could not read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("invalid override {0:?}: expected KEY=VALUE, e.g. limits.max_pixels=1000000")]
    Override(String),
    #[error("invalid config value: {0}")]
    Invalid(String),
}

/// The log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Image formats the service writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormatName {
    /// Lossless; the default because models read fine detail from it.
    #[default]
    Png,
    #[serde(alias = "jpg")]
    Jpeg,
}

impl FormatName {
    pub fn with_quality(self, quality: u8) -> OutputFormat {
        match self {
            FormatName::Png => OutputFormat::Png,
            FormatName::Jpeg => OutputFormat::Jpeg(quality),
        }
    }
}

/// Everything the service reads at startup. See `config/etchr.toml` for the documented file.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on, `HOST:PORT`. Port 0 picks a free port.
    pub listen: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Seconds between a shutdown signal and closing the listener, during which `/readyz`
    /// answers 503 so load balancers stop sending traffic. In-flight requests are always drained.
    pub shutdown_grace_secs: u64,
    /// Seconds in-flight requests get to finish once the listener has closed; requests still
    /// running after it are abandoned (their trajectory records, if any, are still flushed).
    pub shutdown_drain_secs: u64,
    pub limits: LimitsConfig,
    pub output: OutputConfig,
    pub cors: CorsConfig,
    pub security: SecurityConfig,
    pub fetch: FetchConfig,
    /// The upstream MLLM (`etchr_upstream::UpstreamConfig`); absent means no reasoning or
    /// proxying routes (they answer 503 `upstream_not_configured`). `etchr serve --upstream-url
    /// URL --provider NAME` fills it without a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamConfig>,
    pub reason: ReasonConfig,
    pub models: ModelsConfig,
    pub model: EditingModelConfig,
}

/// Where the editing model runs. The server crate only holds these settings: it knows the model
/// through the [`crate::planner::Planner`] trait, and the `etchr` binary loads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelDevice {
    /// CUDA device 0 when the binary was built with `--features cuda` and one is available,
    /// otherwise the CPU (the fallback is logged).
    #[default]
    Auto,
    Cpu,
    /// CUDA device 0, or a start-up error.
    Cuda,
}

/// Where the editing model's alternative plans come from (`[model] alternatives`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Alternatives {
    /// The unseen zoomed tile holding the most of the model's pointer distribution.
    Tiles,
    /// The model's own plan, its first pointer kept out of what was shown.
    Model,
}

/// The editing model: the planner of `/v1/edit` without `ops` and of the loop's `evr` and
/// `progressive` strategies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EditingModelConfig {
    /// Load the model at start-up. Off: `/v1/edit` needs `ops` (422 `planner_unavailable`
    /// otherwise) and the loop plans with the question-blind `tile_search`.
    pub enabled: bool,
    /// A directory holding `config.json` and `model.safetensors`; empty means the default
    /// model built into the binary (`models/default`).
    pub path: String,
    /// `auto`, `cpu` or `cuda`.
    pub device: ModelDevice,
    /// Plan requests waiting beyond the ones being served; more get a fast 503
    /// `model_overloaded` with `Retry-After`.
    pub queue_capacity: usize,
    /// Most plan requests in one forward pass.
    pub max_batch: usize,
    /// Milliseconds the first request of a batch waits for company.
    pub batch_window_ms: u64,
    /// Coarse-to-fine: when the first plan crops a small part of the view, plan again on a
    /// view twice the crop's size and use that program. Costs a second call. Off by default:
    /// the shipped weights place programs better in one call (models/README.md has both IoUs).
    pub refine: bool,
    /// Where `evr`'s next candidate comes from once the upstream rejected an edit: `tiles`
    /// (the zoomed tile, 2×2 then 3×3, that holds the most of the model's pointer
    /// distribution among those not shown yet) or `model` (the model plans again with its
    /// first pointer kept out of the shown regions). bench/RESULTS.md compares them.
    pub alternatives: Alternatives,
    /// Compute threads for the model on the CPU (candle's pool; sets `RAYON_NUM_THREADS` at
    /// start-up unless the environment already does). 0: candle's default, one per physical
    /// core. The shipped model's matrices are too small to split: more threads mostly wait on
    /// each other (bench/RESULTS.md: 4× slower plans with 16 threads than with one).
    pub cpu_threads: usize,
}

impl Default for EditingModelConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: String::new(),
            device: ModelDevice::Auto,
            queue_capacity: 64,
            max_batch: 8,
            batch_window_ms: 2,
            refine: false,
            alternatives: Alternatives::Tiles,
            cpu_threads: 1,
        }
    }
}

/// The reasoning loop's defaults and budgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReasonConfig {
    /// `evr`, `progressive` or `tools`, when a request does not choose.
    pub strategy: Strategy,
    /// Edits per run when a request does not say.
    pub max_steps: usize,
    /// The most edits a request may ask for.
    pub max_steps_cap: usize,
    /// Most images in one upstream call (the original always stays).
    pub images_per_call: usize,
    /// Deadline of one loop, in seconds (keep it under `limits.request_timeout_secs`).
    pub deadline_secs: f64,
    /// Seconds between `: keep-alive` comments on a streamed chat completion while the loop runs.
    pub keepalive_secs: f64,
    /// Directory of the trajectory log (JSONL + images); empty means off.
    pub trajectory_dir: String,
    /// Loops (`/v1/reason`, chat completions with images) running at once; beyond this a
    /// request gets a fast 503 `overloaded` with `Retry-After` instead of queueing.
    pub max_concurrent_loops: usize,
    /// What `/v1/chat/completions` does with a request carrying images when the request does not
    /// choose: run the loop, or forward it to the upstream unchanged.
    pub chat_images: ChatImages,
    /// Passthrough chat requests with a declared length of at least this many bytes start going
    /// upstream while they are still arriving (the last chunk waits until the whole body has
    /// been checked). 0 turns this off.
    pub early_forward_bytes: u64,
}

/// The handling of chat completions with images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatImages {
    /// Run the think-with-images loop with `reason.strategy`.
    #[default]
    Loop,
    /// Forward the request byte for byte, as a text-only request is (no loop, no edits).
    Passthrough,
}

impl Default for ReasonConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::Evr,
            max_steps: 3,
            max_steps_cap: 16,
            images_per_call: 4,
            deadline_secs: 50.0,
            keepalive_secs: 5.0,
            trajectory_dir: String::new(),
            max_concurrent_loops: 256,
            chat_images: ChatImages::Loop,
            early_forward_bytes: 64 * 1024,
        }
    }
}

/// Model names the sidecar answers to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Alias → upstream model, e.g. `{ "etchr-vl" = "Qwen/Qwen3-VL-8B-Instruct" }`. Listed by
    /// `GET /v1/models`; requests naming an alias are sent with the real name.
    pub aliases: BTreeMap<String, String>,
}

/// Limits that keep one request from taking the service down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body, in bytes (base64 adds a third to an image's size).
    pub body_limit_bytes: usize,
    /// Whole-request deadline; a request still running after it gets a 504.
    pub request_timeout_secs: u64,
    /// Largest accepted input image, `width × height`, checked from the header before decoding.
    pub max_pixels: u64,
    /// Largest accepted side of an input image.
    pub max_side: u32,
    /// Longest accepted edit program.
    pub max_ops: usize,
    /// Largest image any op may produce (zoom, rotate), `width × height`.
    pub max_output_pixels: u64,
    /// Crops smaller than this many pixels per side are expanded around their centre.
    pub min_crop: u32,
    /// Renders running at once. 0 means one per CPU core.
    pub render_workers: usize,
    /// Renders waiting for a worker; beyond this a request gets a fast 503 with `Retry-After`.
    pub render_queue: usize,
}

/// Defaults for the edited image when the request does not choose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// `png` or `jpeg`.
    pub format: FormatName,
    /// JPEG quality, 1–100.
    pub jpeg_quality: u8,
}

/// Cross-origin access for browser clients. Closed by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to call the API (`"https://app.example.com"`), or `["*"]` for any.
    pub allowed_origins: Vec<String>,
}

/// Client authentication and per-key rate limits.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Keys clients must send as `Authorization: Bearer KEY` (or `x-api-key: KEY`) on every
    /// API route (`/healthz`, `/readyz`, `/metrics` unless `metrics_token` is set, and the
    /// playground's static files stay open). Empty means no client authentication, which is
    /// logged at start-up. Also read, comma-separated, from `ETCHR_API_KEYS`.
    pub api_keys: Vec<String>,
    /// Requests per minute allowed per key (a token bucket); 0 means unlimited.
    pub rate_limit_per_minute: u32,
    /// Requests a key may send in a burst above its steady rate; 0 means the per-minute
    /// rate itself.
    pub rate_limit_burst: u32,
    /// A bearer token `GET /metrics` requires (`Authorization: Bearer TOKEN`, what a
    /// Prometheus scrape config's `authorization` sends); empty means `/metrics` is open, like
    /// the probes. Independent of `api_keys`: a client key does not read the metrics, and the
    /// token opens no API route.
    pub metrics_token: String,
}

/// Never prints the keys.
impl fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("api_keys", &format!("<{} redacted>", self.api_keys.len()))
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("rate_limit_burst", &self.rate_limit_burst)
            .field(
                "metrics_token",
                &if self.metrics_token.is_empty() {
                    "<none>"
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

/// Fetching `http(s)` image URLs on a client's behalf. Off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// Fetch `http(s)` image URLs in requests (and inline them for upstreams that need it).
    /// Off: such requests get a 400 naming this setting.
    pub enabled: bool,
    /// Hosts images may come from: `images.example.com` or `*.example.com`; `*` for any host.
    /// Must be non-empty when `enabled`.
    pub allowed_hosts: Vec<String>,
    /// Largest image fetched, in bytes.
    pub max_bytes: u64,
    /// Time limit of one fetch (connect, redirects and body), in seconds.
    pub timeout_secs: f64,
    /// Most redirects followed (each target is checked like the original URL).
    pub max_redirects: usize,
    /// Fetch from private, loopback and link-local addresses too. Leave off unless every
    /// client is trusted: on, a client can make the server read internal services.
    pub allow_private_addresses: bool,
}

impl Default for FetchConfig {
    fn default() -> Self {
        let p = etchr_upstream::FetchPolicy::default();
        Self {
            enabled: false,
            allowed_hosts: Vec::new(),
            max_bytes: p.max_bytes,
            timeout_secs: p.timeout.as_secs_f64(),
            max_redirects: p.max_redirects,
            allow_private_addresses: false,
        }
    }
}

impl FetchConfig {
    /// The fetch policy, when fetching is on.
    pub fn policy(&self) -> Option<etchr_upstream::FetchPolicy> {
        self.enabled.then(|| etchr_upstream::FetchPolicy {
            allowed_hosts: self.allowed_hosts.clone(),
            max_bytes: self.max_bytes,
            timeout: Duration::from_secs_f64(self.timeout_secs),
            max_redirects: self.max_redirects,
            allow_private_addresses: self.allow_private_addresses,
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_string(),
            log_format: LogFormat::Text,
            shutdown_grace_secs: 0,
            shutdown_drain_secs: 30,
            limits: LimitsConfig::default(),
            output: OutputConfig::default(),
            cors: CorsConfig::default(),
            security: SecurityConfig::default(),
            fetch: FetchConfig::default(),
            upstream: None,
            reason: ReasonConfig::default(),
            models: ModelsConfig::default(),
            model: EditingModelConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let decode = DecodeLimits::default();
        let render = RenderOptions::default();
        Self {
            body_limit_bytes: 32 * 1024 * 1024,
            request_timeout_secs: 60,
            max_pixels: decode.max_pixels,
            max_side: decode.max_side,
            max_ops: render.max_ops,
            max_output_pixels: render.max_output_pixels,
            min_crop: render.min_crop,
            render_workers: 0,
            render_queue: 64,
        }
    }
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            format: FormatName::Png,
            jpeg_quality: 90,
        }
    }
}

/// Comma-separated client API keys (an alias of `ETCHR_SECURITY__API_KEYS`).
pub const API_KEYS_ENV: &str = "ETCHR_API_KEYS";

/// Key fragments whose values are never printed.
const SECRET_MARKERS: [&str; 4] = ["key", "secret", "token", "password"];

/// `Debug` prints the configuration with secret-looking values redacted, so logging the
/// effective configuration at startup is always safe.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match toml::Value::try_from(self) {
            Ok(mut v) => {
                redact(&mut v);
                write!(f, "Config {v}")
            }
            Err(_) => f.write_str("Config { <unprintable> }"),
        }
    }
}

/// Replaces every value whose key names a secret with `"<redacted>"`.
pub(crate) fn redact(value: &mut toml::Value) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                let lower = k.to_ascii_lowercase();
                if SECRET_MARKERS.iter().any(|m| lower.contains(m)) {
                    *v = toml::Value::String("<redacted>".into());
                } else {
                    redact(v);
                }
            }
        }
        toml::Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

impl Config {
    /// Parses a TOML document (unknown keys are errors).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: String::new(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Loads the layered configuration: `file` (if any), then the `ETCHR_*` variables in
    /// `env`, then `overrides` (`KEY=VALUE` pairs with dotted keys, from flags).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::Parse {
                    origin: format!(" in {}", path.display()),
                    message: e.to_string(),
                })?
            }
            None => toml::Table::new(),
        };
        let mut env: std::collections::HashMap<String, String> = env.into_iter().collect();
        // The documented short name for the client keys.
        if let Some(keys) = env.remove(API_KEYS_ENV) {
            // As a TOML list, so a key that looks like a number stays a string.
            let list = toml::Value::Array(
                keys.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| toml::Value::String(k.to_string()))
                    .collect(),
            );
            env.entry("ETCHR_SECURITY__API_KEYS".into())
                .or_insert(list.to_string());
        }
        for path in leaf_paths() {
            let var = env_var_name(&path);
            if let Some(raw) = env.get(&var) {
                set_path(&mut table, &path, parse_value(raw, &path))?;
            }
        }
        for (key, raw) in overrides {
            let path: Vec<String> = key.split('.').map(str::to_string).collect();
            if path.iter().any(|p| p.is_empty()) {
                return Err(ConfigError::Override(format!("{key}={raw}")));
            }
            set_path(&mut table, &path, parse_value(raw, &path))?;
        }
        let origin = file
            .map(|p| format!(" (file {}, environment and flags)", p.display()))
            .unwrap_or_else(|| " (environment and flags)".to_string());
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                origin,
                message: e.to_string(),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        let l = &self.limits;
        if self.listen.trim().is_empty() {
            return bad("listen must be HOST:PORT");
        }
        if l.body_limit_bytes == 0 {
            return bad("limits.body_limit_bytes must be positive");
        }
        if l.request_timeout_secs == 0 {
            return bad("limits.request_timeout_secs must be positive");
        }
        if l.max_pixels == 0 || l.max_side == 0 || l.max_output_pixels == 0 {
            return bad("limits.max_pixels, max_side and max_output_pixels must be positive");
        }
        if !(1..=100).contains(&self.output.jpeg_quality) {
            return bad("output.jpeg_quality must be within 1-100");
        }
        let r = &self.reason;
        if r.max_steps > r.max_steps_cap {
            return bad("reason.max_steps must not exceed reason.max_steps_cap");
        }
        if r.images_per_call == 0 {
            return bad("reason.images_per_call must be at least 1");
        }
        if !(r.deadline_secs.is_finite() && r.deadline_secs > 0.0) {
            return bad("reason.deadline_secs must be a positive number");
        }
        if !(r.keepalive_secs.is_finite() && r.keepalive_secs > 0.0) {
            return bad("reason.keepalive_secs must be a positive number");
        }
        let m = &self.model;
        if m.queue_capacity == 0 || m.max_batch == 0 {
            return bad("model.queue_capacity and model.max_batch must be at least 1");
        }
        if m.batch_window_ms > 1000 {
            return bad("model.batch_window_ms must be at most 1000");
        }
        if let Some(u) = &self.upstream {
            u.validate()
                .map_err(|e| ConfigError::Invalid(format!("upstream: {}", e.message)))?;
        }
        if r.max_concurrent_loops == 0 {
            return bad("reason.max_concurrent_loops must be at least 1");
        }
        let sec = &self.security;
        if sec
            .api_keys
            .iter()
            .any(|k| k.trim().is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return bad("security.api_keys: keys must be non-empty and contain no whitespace");
        }
        if sec
            .metrics_token
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return bad("security.metrics_token must contain no whitespace");
        }
        if sec.rate_limit_burst > 0 && sec.rate_limit_per_minute == 0 {
            return bad("security.rate_limit_burst needs security.rate_limit_per_minute");
        }
        if !sec.api_keys.is_empty() && self.upstream.as_ref().is_some_and(|u| u.pass_through_auth) {
            return bad(
                "security.api_keys and upstream.pass_through_auth both use the client's \
                 Authorization header: clients cannot send an ETCHR key and an upstream key in it",
            );
        }
        let f = &self.fetch;
        if f.enabled && f.allowed_hosts.iter().all(|h| h.trim().is_empty()) {
            return bad("fetch.enabled needs fetch.allowed_hosts (e.g. [\"images.example.com\"])");
        }
        if !(f.timeout_secs.is_finite() && f.timeout_secs > 0.0) || f.max_bytes == 0 {
            return bad("fetch.timeout_secs and fetch.max_bytes must be positive");
        }
        for origin in &self.cors.allowed_origins {
            if origin != "*" && axum::http::HeaderValue::from_str(origin).is_err() {
                return Err(ConfigError::Invalid(format!(
                    "cors.allowed_origins: {origin:?} is not a valid origin"
                )));
            }
        }
        Ok(())
    }

    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_pixels: self.limits.max_pixels,
            max_side: self.limits.max_side,
        }
    }

    pub fn render_options(&self) -> RenderOptions {
        RenderOptions {
            max_ops: self.limits.max_ops,
            max_output_pixels: self.limits.max_output_pixels,
            min_crop: self.limits.min_crop,
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.request_timeout_secs)
    }

    /// The default output format with the configured quality.
    pub fn output_format(&self) -> OutputFormat {
        self.output.format.with_quality(self.output.jpeg_quality)
    }

    /// The loop's budgets and limits.
    pub fn loop_config(&self) -> LoopConfig {
        LoopConfig {
            max_steps: self.reason.max_steps,
            max_steps_cap: self.reason.max_steps_cap,
            images_per_call: self.reason.images_per_call,
            deadline: Duration::from_secs_f64(self.reason.deadline_secs),
            decode: self.decode_limits(),
            render: self.render_options(),
            ..LoopConfig::default()
        }
    }

    /// Render workers, resolving 0 to the number of CPU cores.
    pub fn render_workers(&self) -> usize {
        match self.limits.render_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Every leaf key path of the configuration, from the defaults.
fn leaf_paths() -> Vec<Vec<String>> {
    fn walk(prefix: &[String], t: &toml::Table, out: &mut Vec<Vec<String>>) {
        for (k, v) in t {
            let mut p = prefix.to_vec();
            p.push(k.clone());
            match v {
                toml::Value::Table(sub) => walk(&p, sub, out),
                _ => out.push(p),
            }
        }
    }
    let defaults = toml::Table::try_from(Config::default()).expect("defaults serialise");
    let mut out = Vec::new();
    walk(&[], &defaults, &mut out);
    out
}

/// `["limits", "max_pixels"]` → `ETCHR_LIMITS__MAX_PIXELS`.
pub fn env_var_name(path: &[String]) -> String {
    format!("ETCHR_{}", path.join("__").to_ascii_uppercase())
}

/// A flag or environment value as TOML, falling back to a string; a comma-separated string
/// becomes a list for keys whose default is a list.
fn parse_value(raw: &str, path: &[String]) -> toml::Value {
    if let Ok(t) = toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        if let Some(v) = t.get("v") {
            return v.clone();
        }
    }
    if default_is_list(path) {
        return toml::Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        );
    }
    toml::Value::String(raw.to_string())
}

fn default_is_list(path: &[String]) -> bool {
    let defaults = toml::Value::try_from(Config::default()).expect("defaults serialise");
    let mut v = &defaults;
    for p in path {
        match v.get(p) {
            Some(next) => v = next,
            None => return false,
        }
    }
    v.is_array()
}

fn set_path(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
) -> Result<(), ConfigError> {
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut t = table;
    for p in parents {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry.as_table_mut().ok_or_else(|| {
            ConfigError::Invalid(format!("{} is a value, not a section", path.join(".")))
        })?;
    }
    t.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../config/etchr.toml");

    fn keys(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in t {
            let name = format!("{prefix}{k}");
            match v {
                toml::Value::Table(sub) => keys(&format!("{name}."), sub, out),
                _ => out.push(name),
            }
        }
    }

    #[test]
    fn shipped_file_documents_every_setting_with_its_default() {
        let cfg = Config::from_toml_str(SHIPPED).expect("config/etchr.toml parses");
        assert_eq!(
            cfg,
            Config::default(),
            "config/etchr.toml must list the defaults"
        );
        let (mut shipped, mut defaults) = (Vec::new(), Vec::new());
        keys("", &toml::from_str(SHIPPED).unwrap(), &mut shipped);
        keys(
            "",
            &toml::Table::try_from(Config::default()).unwrap(),
            &mut defaults,
        );
        shipped.sort();
        defaults.sort();
        assert_eq!(shipped, defaults, "config/etchr.toml must set every key");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = Config::from_toml_str("[limits]\nmax_pixelz = 3\n").unwrap_err();
        assert!(err.to_string().contains("max_pixelz"), "{err}");
        let err = Config::load(None, [], &[("bogus".into(), "1".into())]).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn layers_apply_in_order_flags_env_file_defaults() {
        let dir = std::env::temp_dir().join(format!("etchr-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("etchr.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:1\"\n[limits]\nmax_ops = 5\nmax_side = 77\n",
        )
        .unwrap();
        let env = [
            ("ETCHR_LIMITS__MAX_OPS".to_string(), "6".to_string()),
            ("ETCHR_LIMITS__MAX_PIXELS".to_string(), "1234".to_string()),
            (
                "ETCHR_CORS__ALLOWED_ORIGINS".to_string(),
                "https://a.example, https://b.example".to_string(),
            ),
            ("ETCHR_UNRELATED".to_string(), "x".to_string()),
        ];
        let flags = [("limits.max_pixels".to_string(), "999".to_string())];
        let cfg = Config::load(Some(&file), env, &flags).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert_eq!(cfg.listen, "0.0.0.0:1"); // file
        assert_eq!(cfg.limits.max_side, 77); // file
        assert_eq!(cfg.limits.max_ops, 6); // env over file
        assert_eq!(cfg.limits.max_pixels, 999); // flag over env
        assert_eq!(cfg.limits.request_timeout_secs, 60); // default
        assert_eq!(
            cfg.cors.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn model_section_reads_from_file_and_env() {
        let env = [
            (
                "ETCHR_MODEL__PATH".to_string(),
                "/opt/etchr/model".to_string(),
            ),
            ("ETCHR_MODEL__DEVICE".to_string(), "cpu".to_string()),
            ("ETCHR_MODEL__MAX_BATCH".to_string(), "4".to_string()),
        ];
        let flags = [("model.enabled".to_string(), "false".to_string())];
        let cfg = Config::load(None, env, &flags).unwrap();
        assert_eq!(
            cfg.model,
            EditingModelConfig {
                enabled: false,
                path: "/opt/etchr/model".into(),
                device: ModelDevice::Cpu,
                max_batch: 4,
                ..EditingModelConfig::default()
            }
        );
        assert!(Config::from_toml_str("[model]\ndevice = \"tpu\"\n").is_err());
        assert!(Config::from_toml_str("[model]\nqueue_capacity = 0\n").is_err());
        let err = Config::from_toml_str("[model]\nweights = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("weights"), "{err}");
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(Config::from_toml_str("[output]\njpeg_quality = 0\n").is_err());
        assert!(Config::from_toml_str("[limits]\nbody_limit_bytes = 0\n").is_err());
        assert!(Config::from_toml_str("log_format = \"xml\"\n").is_err());
    }

    #[test]
    fn debug_redacts_secrets() {
        let mut v: toml::Value = toml::from_str::<toml::Table>(
            "api_key = \"sk-123\"\n[upstream]\nToken = \"t\"\nname = \"qwen\"\n",
        )
        .unwrap()
        .into();
        redact(&mut v);
        let s = v.to_string();
        assert!(!s.contains("sk-123") && !s.contains("\"t\""), "{s}");
        assert!(s.contains("qwen"));
        assert!(format!("{:?}", Config::default()).contains("127.0.0.1:8080"));
    }
}
