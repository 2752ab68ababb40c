//! Provider profiles: what each kind of upstream accepts and how it speaks about boxes.
//!
//! The chat-completions wire format is shared, but the details that break real deployments are not:
//! image size and format limits, whether an `http` image URL is fetched by the provider or
//! rejected, the coordinate convention of boxes in the model's answers, and a few message-shape
//! quirks. Those facts live here, in one table, so that the client and the server consult the same
//! source.

use std::fmt;
use std::str::FromStr;

use image::ImageFormat;
use serde::{Deserialize, Serialize};

use crate::error::UpstreamError;

/// The kinds of upstream this crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Any OpenAI-compatible server (vLLM, SGLang, llama.cpp, LM Studio...), typically serving Qwen3-VL.
    Vllm,
    /// Alibaba Cloud Model Studio (DashScope) compatible mode.
    Qwen,
    /// Google's OpenAI-compatible Gemini endpoint.
    Gemini,
    /// Moonshot's Kimi API.
    Kimi,
    /// api.openai.com.
    Openai,
}

impl Provider {
    pub const ALL: [Provider; 5] = [
        Provider::Vllm,
        Provider::Qwen,
        Provider::Gemini,
        Provider::Kimi,
        Provider::Openai,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Vllm => "vllm",
            Provider::Qwen => "qwen",
            Provider::Gemini => "gemini",
            Provider::Kimi => "kimi",
            Provider::Openai => "openai",
        }
    }

    /// The base URL used when the config names none (`None` for `vllm`, which has no public home).
    pub fn default_base_url(self, region: QwenRegion) -> Option<&'static str> {
        match self {
            Provider::Vllm => None,
            Provider::Qwen => Some(region.base_url()),
            Provider::Gemini => Some("https://generativelanguage.googleapis.com/v1beta/openai/"),
            Provider::Kimi => Some("https://api.moonshot.ai/v1"),
            Provider::Openai => Some("https://api.openai.com/v1"),
        }
    }

    /// The provider's conventional key variable, read after `ETCHR_UPSTREAM_KEY`.
    pub fn key_env(self) -> Option<&'static str> {
        match self {
            Provider::Vllm => None,
            Provider::Qwen => Some("DASHSCOPE_API_KEY"),
            Provider::Gemini => Some("GEMINI_API_KEY"),
            Provider::Kimi => Some("MOONSHOT_API_KEY"),
            Provider::Openai => Some("OPENAI_API_KEY"),
        }
    }

    /// The coordinate convention the provider's usual vision models answer in.
    pub fn default_box_convention(self) -> BoxConvention {
        match self {
            // Qwen3-VL (vLLM's and DashScope's usual vision model) answers 0–1000 xyxy.
            Provider::Vllm | Provider::Qwen => BoxConvention::Norm1000,
            Provider::Gemini => BoxConvention::Gemini,
            // Kimi K2.5 vision follows the 0–1000 convention when prompted for boxes; configurable.
            Provider::Kimi => BoxConvention::Norm1000,
            // GPT models have no trained grounding format; pixels of the image sent is the least
            // surprising thing to ask them for.
            Provider::Openai => BoxConvention::Pixel,
        }
    }

    /// Image limits of the provider (see each value's comment for the source of the number).
    pub fn image_limits(self) -> ImageLimits {
        use ImageFormat::*;
        match self {
            // vLLM: no hard byte limit beyond the server's request size; Qwen3-VL's processor caps
            // input at 16384 patches of 32 px (~16.7 Mpx), so more pixels are wasted bandwidth.
            Provider::Vllm => ImageLimits {
                max_bytes: 20 << 20,
                max_pixels: 16_777_216,
                max_side: 8192,
                formats: vec![Png, Jpeg, WebP, Gif, Bmp],
                accepts_urls: true,
            },
            // DashScope: image files up to 10 MB, and a base64 string counts against that, so
            // ~7.5 MB of raw bytes; at most 16384 × 28 × 28 pixels for the high-resolution mode.
            Provider::Qwen => ImageLimits {
                max_bytes: 7_500_000,
                max_pixels: 12_845_056,
                max_side: 8192,
                formats: vec![Png, Jpeg, WebP, Bmp],
                accepts_urls: true,
            },
            // Gemini's compatibility layer takes inline base64 only; inline data shares a 20 MB
            // request limit, and images are tiled at up to 3072 px.
            Provider::Gemini => ImageLimits {
                max_bytes: 7 << 20,
                max_pixels: 3072 * 3072,
                max_side: 3072,
                formats: vec![Png, Jpeg, WebP],
                accepts_urls: false,
            },
            // Moonshot documents images as base64 data URLs in an array content.
            Provider::Kimi => ImageLimits {
                max_bytes: 7 << 20,
                max_pixels: 4096 * 4096,
                max_side: 4096,
                formats: vec![Png, Jpeg, WebP, Gif],
                accepts_urls: false,
            },
            // OpenAI: 20 MB per image; images are scaled to fit 2048 × 2048 before tiling anyway.
            Provider::Openai => ImageLimits {
                max_bytes: 20 << 20,
                max_pixels: 2048 * 2048,
                max_side: 2048,
                formats: vec![Png, Jpeg, WebP, Gif],
                accepts_urls: true,
            },
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = UpstreamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let p = match s.as_str() {
            "vllm" | "openai-compatible" | "openai_compatible" | "sglang" => Provider::Vllm,
            "qwen" | "dashscope" => Provider::Qwen,
            "gemini" | "google" => Provider::Gemini,
            "kimi" | "moonshot" => Provider::Kimi,
            "openai" => Provider::Openai,
            other => {
                return Err(UpstreamError::config(format!(
                    "unknown provider `{other}`; expected one of vllm, qwen, gemini, kimi, openai"
                )))
            }
        };
        Ok(p)
    }
}

/// DashScope regions; each has its own base URL and its own keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QwenRegion {
    /// Singapore.
    #[default]
    Intl,
    /// China (Beijing).
    Cn,
    /// US (Virginia).
    Us,
    /// Hong Kong (China).
    Hk,
}

impl QwenRegion {
    pub fn base_url(self) -> &'static str {
        match self {
            QwenRegion::Intl => "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            QwenRegion::Cn => "https://dashscope.aliyuncs.com/compatible-mode/v1",
            QwenRegion::Us => "https://dashscope-us.aliyuncs.com/compatible-mode/v1",
            QwenRegion::Hk => "https://cn-hongkong.dashscope.aliyuncs.com/compatible-mode/v1",
        }
    }
}

/// How a model writes boxes. The server maps this onto etchr-ops' coordinate systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoxConvention {
    /// `[x1, y1, x2, y2]` in 0–1000 of the image (Qwen3-VL).
    Norm1000,
    /// `[ymin, xmin, ymax, xmax]` in 0–1000 (Gemini).
    Gemini,
    /// `[x1, y1, x2, y2]` in pixels of the image as sent (after any resizing by this crate).
    Pixel,
    /// `[x1, y1, x2, y2]` in 0–1.
    Norm1,
}

impl BoxConvention {
    pub fn as_str(self) -> &'static str {
        match self {
            BoxConvention::Norm1000 => "norm1000",
            BoxConvention::Gemini => "gemini",
            BoxConvention::Pixel => "pixel",
            BoxConvention::Norm1 => "norm1",
        }
    }
}

impl fmt::Display for BoxConvention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What images an upstream accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest encoded image, in bytes (before base64).
    pub max_bytes: usize,
    /// Largest width × height.
    pub max_pixels: u64,
    /// Largest width or height.
    pub max_side: u32,
    /// Encodings accepted; others are re-encoded.
    pub formats: Vec<ImageFormat>,
    /// Whether `http(s)` image URLs may be sent (the provider fetches them); if not, images are
    /// sent as base64 data URLs.
    pub accepts_urls: bool,
}

impl ImageLimits {
    pub fn accepts(&self, format: ImageFormat) -> bool {
        self.formats.contains(&format)
    }
}

/// Everything the client and the loop need to know about one configured upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The upstream's name in config and logs (defaults to the provider name).
    pub name: String,
    pub provider: Provider,
    /// Base URL without the `/chat/completions` suffix.
    pub base_url: String,
    /// The model sent when the request names none.
    pub model: String,
    pub box_convention: BoxConvention,
    pub image_limits: ImageLimits,
}

impl Profile {
    /// The provider's defaults for `base_url` and `model`.
    pub fn new(provider: Provider, base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            name: provider.as_str().to_string(),
            provider,
            base_url: base_url.into(),
            model: model.into(),
            box_convention: provider.default_box_convention(),
            image_limits: provider.image_limits(),
        }
    }

    /// The chat-completions endpoint.
    pub fn chat_url(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_parse() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>().unwrap(), p);
        }
        assert_eq!("DashScope".parse::<Provider>().unwrap(), Provider::Qwen);
        assert!("claude".parse::<Provider>().is_err());
    }

    #[test]
    fn chat_urls_join_cleanly() {
        let g = Profile::new(
            Provider::Gemini,
            Provider::Gemini.default_base_url(QwenRegion::Intl).unwrap(),
            "gemini-2.5-flash",
        );
        assert_eq!(
            g.chat_url(),
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
        );
        let q = Profile::new(Provider::Qwen, QwenRegion::Us.base_url(), "qwen3-vl-plus");
        assert_eq!(
            q.chat_url(),
            "https://dashscope-us.aliyuncs.com/compatible-mode/v1/chat/completions"
        );
        assert_eq!(g.box_convention, BoxConvention::Gemini);
        assert!(!g.image_limits.accepts_urls);
    }
}
