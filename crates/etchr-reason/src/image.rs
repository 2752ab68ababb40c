//! Images as the loop holds them: encoded once, hashed once, with their map to the original.

use std::sync::Arc;

use base64::Engine as _;
use etchr_ops::{encode_image, OutputFormat, RgbImage, Transform};
use sha2::{Digest, Sha256};

use crate::trace::ImageInfo;

/// Lower-case hex SHA-256 of `bytes` (names images in traces and in the trajectory log).
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// One image of a run: the original (view 0) or an edited view. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LoopImage {
    /// 0 for the original, k for the k-th edit.
    pub view: usize,
    pub bytes: Arc<Vec<u8>>,
    /// The same bytes as a `data:` URL, built once and shared by every upstream call.
    pub data_url: Arc<str>,
    pub info: ImageInfo,
    /// How this view maps back to the original (identity for the original).
    pub transform: Transform,
}

impl LoopImage {
    /// Wraps already-encoded bytes (the client's original, kept byte-for-byte).
    pub fn from_encoded(
        view: usize,
        bytes: Vec<u8>,
        mime: &str,
        width: u32,
        height: u32,
        transform: Transform,
    ) -> Self {
        let mut url = String::with_capacity(bytes.len() * 4 / 3 + 32);
        url.push_str("data:");
        url.push_str(mime);
        url.push_str(";base64,");
        base64::engine::general_purpose::STANDARD.encode_string(&bytes, &mut url);
        let info = ImageInfo {
            sha256: sha256_hex(&bytes),
            width,
            height,
            bytes: bytes.len(),
            mime: mime.to_string(),
            path: None,
        };
        Self {
            view,
            bytes: Arc::new(bytes),
            data_url: url.into(),
            info,
            transform,
        }
    }

    /// Encodes a rendered view (CPU-heavy: call off the async runtime).
    pub fn encode(
        view: usize,
        image: &RgbImage,
        format: OutputFormat,
        transform: Transform,
    ) -> Result<Self, etchr_ops::OpsError> {
        let bytes = encode_image(image, format)?;
        Ok(Self::from_encoded(
            view,
            bytes,
            format.mime(),
            image.width(),
            image.height(),
            transform,
        ))
    }

    /// The file extension for the trajectory log.
    pub fn extension(&self) -> &'static str {
        match self.info.mime.as_str() {
            "image/jpeg" => "jpg",
            "image/webp" => "webp",
            _ => "png",
        }
    }
}

/// The MIME type of encoded image bytes, from their magic number (PNG when unsure).
pub fn sniff_mime(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        "image/webp"
    } else {
        "image/png"
    }
}
