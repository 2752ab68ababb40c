//! Report thumbnails: small JPEGs next to `report.html`, so the report stays a plain file that
//! opens anywhere without embedding megabytes of base64.

use std::path::PathBuf;
use std::sync::Arc;

use etchr_ops::program::Filter;
use etchr_ops::{encode_image, OutputFormat, RgbImage};

/// Where thumbnails go (`<out>/thumbs/<item>/<name>.jpg`) and how big; `side == 0` writes none.
#[derive(Debug, Clone)]
pub struct Thumbs {
    pub out_dir: PathBuf,
    pub side: u32,
}

impl Thumbs {
    /// Writes a thumbnail of `img`; its path relative to the output directory, or `None` when
    /// thumbnails are off or writing failed (the report then shows no picture, the run goes on).
    pub async fn write(&self, item_id: &str, name: &str, img: Arc<RgbImage>) -> Option<String> {
        if self.side == 0 {
            return None;
        }
        let rel = format!("thumbs/{}/{}.jpg", sanitize(item_id), sanitize(name));
        let path = self.out_dir.join(&rel);
        let side = self.side;
        let ok = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let (w, h) = img.dimensions();
            let s = (side as f64 / w.max(h) as f64).min(1.0);
            let (tw, th) = (
                ((w as f64 * s).round() as u32).max(1),
                ((h as f64 * s).round() as u32).max(1),
            );
            // Bilinear convolution widens with the scale, so it averages like a thumbnail, and
            // it is several times faster than `image::imageops::thumbnail` on large views.
            let small = etchr_ops::resize(img.as_ref(), tw, th, Filter::Bilinear);
            let bytes = encode_image(&small, OutputFormat::Jpeg(82)).map_err(|e| e.to_string())?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            std::fs::write(&path, bytes).map_err(|e| e.to_string())
        })
        .await;
        match ok {
            Ok(Ok(())) => Some(rel),
            Ok(Err(e)) => {
                tracing::warn!(item = item_id, error = %e, "could not write a thumbnail");
                None
            }
            Err(_) => None,
        }
    }
}

/// File-name-safe: ids and labels become `[A-Za-z0-9._-]`.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
