//! Per-item work done before any upstream call: decoding the original and rendering the
//! oracle, random and tiles edits. CPU-bound: runs on a blocking thread.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use etchr_data::Item;
use etchr_ops::{
    decode_image, render, DecodeLimits, OutputFormat, Program, RenderOptions, RgbImage,
};
use etchr_reason::image::{sniff_mime, LoopImage};

use crate::condition::Condition;
use crate::edits::{random_program, tile_programs, without_pixel_bound_ops};

/// How many translated offsets the random condition tries before dropping maze ops.
const RANDOM_ATTEMPTS: u32 = 24;

/// One edited image ready to send.
#[derive(Debug, Clone)]
pub struct PreparedView {
    pub label: String,
    /// The program as rendered (repaired, original pixels), compact text form.
    pub program: String,
    pub image: LoopImage,
    pub rgb: Arc<RgbImage>,
}

/// A condition's edits, or why they could not be made.
#[derive(Debug, Clone, Default)]
pub struct PreparedEdit {
    pub views: Vec<PreparedView>,
    /// Rendering and encoding time: part of the latency the sidecar adds.
    pub ms: f64,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

/// Everything a condition needs besides the upstream.
pub struct Prepared {
    pub original: LoopImage,
    pub rgb: Arc<RgbImage>,
    pub oracle: PreparedEdit,
    pub random: PreparedEdit,
    pub tiles: PreparedEdit,
}

/// Knobs of the edits.
#[derive(Debug, Clone, Copy)]
pub struct EditKnobs {
    pub tile_grid: u32,
    pub max_side: u32,
    pub seed: u64,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Renders `program` on `rgb` into one view (the first, for programs without `tiles`).
fn render_view(rgb: &RgbImage, program: &Program, label: &str) -> Result<PreparedView, String> {
    let r = render(rgb, program, &RenderOptions::default()).map_err(|e| e.to_string())?;
    let rendered_program = etchr_ops::text::to_text(&r.program);
    let view = r
        .views
        .into_iter()
        .next()
        .ok_or("the program made no view")?;
    let image = LoopImage::encode(1, &view.image, OutputFormat::Png, view.transform)
        .map_err(|e| e.to_string())?;
    Ok(PreparedView {
        label: label.to_string(),
        program: rendered_program,
        image,
        rgb: Arc::new(view.image),
    })
}

fn oracle(item: &Item, rgb: &RgbImage) -> PreparedEdit {
    let t = Instant::now();
    match render_view(rgb, &item.gold_program, "gold") {
        Ok(v) => PreparedEdit {
            views: vec![v],
            ms: ms(t),
            ..Default::default()
        },
        Err(e) => PreparedEdit {
            error: Some(format!("gold program: {e}")),
            ..Default::default()
        },
    }
}

fn random(item: &Item, rgb: &RgbImage, seed: u64) -> PreparedEdit {
    let t = Instant::now();
    let (w, h) = rgb.dimensions();
    let mut last_err = String::new();
    for attempt in 0..RANDOM_ATTEMPTS {
        let p = random_program(&item.gold_program, w, h, seed, &item.id, attempt);
        match render_view(rgb, &p, "random") {
            Ok(v) => {
                let notes = if attempt > 0 {
                    vec![format!("placed on attempt {}", attempt + 1)]
                } else {
                    Vec::new()
                };
                return PreparedEdit {
                    views: vec![v],
                    ms: ms(t),
                    notes,
                    error: None,
                };
            }
            Err(e) => last_err = e,
        }
    }
    // A maze path rarely fits anywhere else: keep the crop and zoom, drop the path.
    let p = without_pixel_bound_ops(&random_program(&item.gold_program, w, h, seed, &item.id, 0));
    match render_view(rgb, &p, "random") {
        Ok(v) => PreparedEdit {
            views: vec![v],
            ms: ms(t),
            notes: vec![format!(
                "no translated program rendered in {RANDOM_ATTEMPTS} tries ({last_err}); \
                 path/flood ops dropped"
            )],
            error: None,
        },
        Err(e) => PreparedEdit {
            error: Some(format!("random program: {e}")),
            ..Default::default()
        },
    }
}

fn tiles(rgb: &RgbImage, knobs: EditKnobs) -> PreparedEdit {
    let t = Instant::now();
    let (w, h) = rgb.dimensions();
    let mut views = Vec::new();
    for (i, p) in tile_programs(w, h, knobs.tile_grid, knobs.max_side)
        .iter()
        .enumerate()
    {
        match render_view(rgb, p, &format!("tile {}", i + 1)) {
            Ok(v) => views.push(v),
            Err(e) => {
                return PreparedEdit {
                    error: Some(format!("tile {}: {e}", i + 1)),
                    ..Default::default()
                }
            }
        }
    }
    PreparedEdit {
        views,
        ms: ms(t),
        ..Default::default()
    }
}

/// Reads and decodes the item's original and renders the edits `conditions` need.
pub fn prepare(
    item: &Item,
    items_dir: &Path,
    conditions: &[Condition],
    knobs: EditKnobs,
) -> Result<Prepared, String> {
    let path = items_dir.join(&item.image);
    let bytes =
        std::fs::read(&path).map_err(|e| format!("could not read {}: {e}", path.display()))?;
    let rgb = decode_image(&bytes, &DecodeLimits::default())
        .map_err(|e| format!("could not decode {}: {e}", path.display()))?;
    let (w, h) = rgb.dimensions();
    let mime = sniff_mime(&bytes);
    let original = LoopImage::from_encoded(0, bytes, mime, w, h, etchr_ops::Transform::identity());
    let wants = |c| conditions.contains(&c);
    Ok(Prepared {
        oracle: if wants(Condition::Oracle) {
            oracle(item, &rgb)
        } else {
            PreparedEdit::default()
        },
        random: if wants(Condition::Random) {
            random(item, &rgb, knobs.seed)
        } else {
            PreparedEdit::default()
        },
        tiles: if wants(Condition::Tiles) {
            tiles(&rgb, knobs)
        } else {
            PreparedEdit::default()
        },
        original,
        rgb: Arc::new(rgb),
    })
}
