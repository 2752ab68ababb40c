//! Typed upstream configuration (one `[upstream]` table of `etchr.toml`, or flags).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::UpstreamError;
use crate::profile::{BoxConvention, Profile, Provider, QwenRegion};
use crate::retry::RetryPolicy;

/// The variable read for a key when the config names neither a key nor a variable.
pub const KEY_ENV: &str = "ETCHR_UPSTREAM_KEY";

/// A secret (API key or bearer token). Debug, Display and Serialize never show it, so configs,
/// backends and errors can be logged freely.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself; call only to build the header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A key from an `Authorization` header value (`Bearer xyz` → `xyz`), if it holds one.
    pub fn from_authorization(header: &str) -> Option<Self> {
        let header = header.trim();
        let token = match header.get(..6) {
            Some(scheme) if scheme.eq_ignore_ascii_case("bearer") => {
                let rest = &header[6..];
                if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
                    return Some(Self(header.to_string()));
                }
                rest.trim()
            }
            _ => header,
        };
        (!token.is_empty()).then(|| Self(token.to_string()))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl Serialize for ApiKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// One upstream, as written in config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The name used in logs, traces and errors; defaults to the provider name.
    #[serde(default)]
    pub name: Option<String>,
    pub provider: Provider,
    /// Defaults to the provider's public endpoint (required for `vllm`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The model sent when a request names none.
    #[serde(default)]
    pub model: Option<String>,
    /// The key itself. Prefer `api_key_env` in files.
    #[serde(default)]
    pub api_key: Option<ApiKey>,
    /// The variable holding the key; when unset, `ETCHR_UPSTREAM_KEY`, then the provider's own
    /// variable (`DASHSCOPE_API_KEY`, `GEMINI_API_KEY`, `MOONSHOT_API_KEY`, `OPENAI_API_KEY`).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Per-attempt timeout (the request's deadline still bounds everything).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: f64,
    /// Retries after the first attempt on 429, 5xx and connection failures.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// DashScope region (`intl`, `cn`, `us`, `hk`); only for `qwen`.
    #[serde(default)]
    pub region: Option<QwenRegion>,
    /// Forward the calling client's `Authorization` header instead of the configured key (for
    /// deployments where each client has its own upstream key).
    #[serde(default)]
    pub pass_through_auth: bool,
    /// Override the provider's box convention (e.g. `pixel` for a Qwen2.5-VL on vLLM).
    #[serde(default)]
    pub box_convention: Option<BoxConvention>,
    /// For providers that take no image URLs (gemini, kimi): fetch `http(s)` images and inline
    /// them, when the server's `[fetch]` policy allows fetching at all (it is off by default;
    /// its allowlist and address rules apply). Off means such requests are refused.
    #[serde(default = "yes")]
    pub fetch_remote_images: bool,
    /// Upstreams tried in order when this one fails (see `FallbackChain`).
    #[serde(default)]
    pub fallback: Vec<UpstreamConfig>,
}

fn default_timeout_secs() -> f64 {
    120.0
}

fn default_max_retries() -> u32 {
    RetryPolicy::default().max_retries
}

fn yes() -> bool {
    true
}

impl UpstreamConfig {
    /// A config for `provider` with every other field at its default.
    pub fn new(provider: Provider) -> Self {
        Self {
            name: None,
            provider,
            base_url: None,
            model: None,
            api_key: None,
            api_key_env: None,
            timeout_secs: default_timeout_secs(),
            max_retries: default_max_retries(),
            region: None,
            pass_through_auth: false,
            box_convention: None,
            fetch_remote_images: true,
            fallback: Vec::new(),
        }
    }

    /// The simplest setup: `--upstream-url URL --provider NAME [--upstream-key KEY]`.
    pub fn from_url(url: &str, provider: &str, key: Option<&str>) -> Result<Self, UpstreamError> {
        let mut c = Self::new(provider.parse()?);
        if !url.trim().is_empty() {
            c.base_url = Some(url.trim().to_string());
        }
        c.api_key = key.filter(|k| !k.is_empty()).map(ApiKey::new);
        c.validate()?;
        Ok(c)
    }

    /// The configured name, or the provider's.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.provider.to_string())
    }

    /// Checks what can be checked without the network.
    pub fn validate(&self) -> Result<(), UpstreamError> {
        let name = self.display_name();
        let url = self.resolved_base_url()?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(UpstreamError::config(format!(
                "upstream `{name}`: base_url must start with http:// or https://"
            )));
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            return Err(UpstreamError::config(format!(
                "upstream `{name}`: timeout_secs must be a positive number"
            )));
        }
        if self.region.is_some() && self.provider != Provider::Qwen {
            return Err(UpstreamError::config(format!(
                "upstream `{name}`: region applies only to provider qwen"
            )));
        }
        self.fallback.iter().try_for_each(Self::validate)
    }

    /// The base URL after provider and region defaults.
    pub fn resolved_base_url(&self) -> Result<String, UpstreamError> {
        if let Some(url) = &self.base_url {
            return Ok(url.trim().to_string());
        }
        self.provider
            .default_base_url(self.region.unwrap_or_default())
            .map(str::to_string)
            .ok_or_else(|| {
                UpstreamError::config(format!(
                    "upstream `{}`: provider {} needs a base_url",
                    self.display_name(),
                    self.provider
                ))
            })
    }

    /// The key from config, else the named variable, else `ETCHR_UPSTREAM_KEY`, else the
    /// provider's own variable. `None` is fine for local vLLM.
    pub fn resolved_key(&self) -> Option<ApiKey> {
        if let Some(k) = &self.api_key {
            return Some(k.clone());
        }
        let from_env = |var: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| ApiKey::new(v.trim()))
        };
        if let Some(var) = &self.api_key_env {
            return from_env(var);
        }
        from_env(KEY_ENV).or_else(|| self.provider.key_env().and_then(from_env))
    }

    /// The profile this config describes.
    pub fn profile(&self) -> Result<Profile, UpstreamError> {
        let mut p = Profile::new(
            self.provider,
            self.resolved_base_url()?,
            self.model.clone().unwrap_or_default(),
        );
        p.name = self.display_name();
        if let Some(b) = self.box_convention {
            p.box_convention = b;
        }
        Ok(p)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_secs)
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            ..RetryPolicy::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_with_defaults_and_rejects_unknown_keys() {
        let c: UpstreamConfig = serde_json::from_str(
            r#"{"provider":"qwen","region":"us","model":"qwen3-vl-plus","api_key":"sk-secret",
                "fallback":[{"provider":"vllm","base_url":"http://gpu:8000/v1"}]}"#,
        )
        .unwrap();
        assert_eq!(c.timeout_secs, 120.0);
        assert!(c.fetch_remote_images);
        assert_eq!(c.resolved_base_url().unwrap(), QwenRegion::Us.base_url());
        c.validate().unwrap();
        let bad = serde_json::from_str::<UpstreamConfig>(r#"{"provider":"qwen","modle":"x"}"#);
        assert!(bad.unwrap_err().to_string().contains("modle"));
    }

    #[test]
    fn secrets_never_show() {
        let c =
            UpstreamConfig::from_url("http://127.0.0.1:1/v1", "vllm", Some("sk-secret")).unwrap();
        assert!(!format!("{c:?}").contains("sk-secret"));
        assert!(!serde_json::to_string(&c).unwrap().contains("sk-secret"));
        assert_eq!(c.resolved_key().unwrap().expose(), "sk-secret");
    }

    #[test]
    fn simple_setup_needs_a_url_for_vllm() {
        assert!(UpstreamConfig::from_url("", "vllm", None).is_err());
        let g = UpstreamConfig::from_url("", "gemini", None).unwrap();
        assert!(g
            .resolved_base_url()
            .unwrap()
            .starts_with("https://generativelanguage"));
        assert!(UpstreamConfig::from_url("ftp://x", "openai", None).is_err());
    }

    #[test]
    fn bearer_tokens_parse() {
        assert_eq!(
            ApiKey::from_authorization("Bearer abc").unwrap().expose(),
            "abc"
        );
        assert!(ApiKey::from_authorization("Bearer ").is_none());
        assert_eq!(
            ApiKey::from_authorization("bearer  xyz ").unwrap().expose(),
            "xyz"
        );
        assert_eq!(
            ApiKey::from_authorization("sk-raw").unwrap().expose(),
            "sk-raw"
        );
    }
}
