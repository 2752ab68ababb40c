//! Stage 1 trajectories from the generator: (image, question, reasoning so far, gold program
//! as tokens), with each item's image preprocessed once and shared between its trajectories.

use anyhow::{Context, Result};
use etchr_data::{generate, Family};
use etchr_model::{program_to_tokens_lossy, EditingModel, Frame, Prepared, TrainExample};
use etchr_ops::{encode_image_stable, render, Op, OutputFormat, Program, Rect, RenderOptions};
use rayon::prelude::*;
use std::sync::Arc;

/// Which generator items a split holds: item `k` is `generate(families[k % F], seed,
/// first_index + k / F)`.
#[derive(Debug, Clone)]
pub struct SplitSpec {
    pub families: Vec<Family>,
    pub seed: u64,
    pub first_index: u64,
    pub items: usize,
    /// Trajectories per item: the first has an empty context, the others a prefix of the
    /// item's reasoning.
    pub contexts_per_item: usize,
    /// Keep a JPEG of each original for decoding metrics (validation splits).
    pub keep_images: bool,
}

/// One teacher-forced trajectory and what the edit metrics compare against.
#[derive(Debug, Clone)]
pub struct Trajectory {
    pub example: TrainExample,
    pub family: Family,
    pub item_id: String,
    pub gold_program: Program,
    pub gold_region: Rect,
    /// The original as JPEG (q90), when the split keeps images.
    pub image_jpeg: Option<Arc<[u8]>>,
    /// Gold ops the token form had to drop.
    pub dropped: usize,
}

/// The generator's SplitMix64: its state is one number, so checkpoints can carry it.
pub use etchr_data::rng::Rng as SplitMix;

/// A prefix of `reasoning` cut at a word boundary, between 30 % and all of it.
pub fn reasoning_prefix(reasoning: &str, rng: &mut SplitMix) -> String {
    let frac = 0.3 + 0.7 * rng.unit();
    let want = ((reasoning.len() as f64) * frac).round() as usize;
    if want >= reasoning.len() {
        return reasoning.to_string();
    }
    let cut = reasoning[..=want.min(reasoning.len() - 1)]
        .rfind(char::is_whitespace)
        .unwrap_or(0);
    let mut end = cut;
    while !reasoning.is_char_boundary(end) {
        end -= 1;
    }
    reasoning[..end].trim_end().to_string()
}

/// Generates and prepares a split (in parallel over items).
pub fn build_split(spec: &SplitSpec, model: &EditingModel) -> Result<Vec<Trajectory>> {
    build_split_with_views(spec, 0, model)
}

/// The box every coordinate of `program` lies in, or `None` when the program has a path or a
/// jigsaw (their points and tiles span the whole image, so a zoomed view cannot hold them).
fn program_extent(program: &Program) -> Option<Rect> {
    let mut extent: Option<Rect> = None;
    for op in program.ops() {
        match op {
            Op::Path { .. } | Op::Jigsaw { .. } | Op::JigsawSolve { .. } => return None,
            _ => {
                if let Some(r) = op.focus_region() {
                    extent = Some(extent.map_or(r, |e| e.union(&r)));
                }
            }
        }
    }
    extent
}

/// A zoomed view for coarse-to-fine training: a box 1.3–3.5× the gold program's extent on each
/// side, placed at random so the extent stays inside it, clamped to the image. The model sees
/// what a first, coarse plan's crop would show, and learns to refine the program on it.
fn view_rect(extent: &Rect, w: u32, h: u32, rng: &mut SplitMix) -> Rect {
    let scale = 1.3 + 2.2 * rng.unit();
    let (ew, eh) = (extent.width().max(8.0), extent.height().max(8.0));
    let side = ew.max(eh) * scale;
    let (vw, vh) = (side.max(ew).min(w as f64), side.max(eh).min(h as f64));
    let x0 = (extent.x0 - (vw - ew) * rng.unit()).clamp(0.0, w as f64 - vw);
    let y0 = (extent.y0 - (vh - eh) * rng.unit()).clamp(0.0, h as f64 - vh);
    Rect::new(
        x0.floor(),
        y0.floor(),
        (x0 + vw).ceil().min(w as f64),
        (y0 + vh).ceil().min(h as f64),
    )
}

/// [`build_split`] plus `views_per_item` trajectories per item on zoomed views (see
/// [`view_rect`]; items whose gold program has a path or a jigsaw get none). View trajectories
/// carry the item's full reasoning as context half of the time.
pub fn build_split_with_views(
    spec: &SplitSpec,
    views_per_item: usize,
    model: &EditingModel,
) -> Result<Vec<Trajectory>> {
    anyhow::ensure!(!spec.families.is_empty(), "no families");
    let nf = spec.families.len();
    let per_item: Vec<Result<Vec<Trajectory>>> = (0..spec.items)
        .into_par_iter()
        .map(|k| {
            let family = spec.families[k % nf];
            let index = spec.first_index + (k / nf) as u64;
            let (item, img) = generate(family, spec.seed, index);
            let (w, h) = (img.width(), img.height());
            let frame = Frame::identity(w, h);
            let prepared = Arc::new(
                Prepared::from_image(&img, frame.clone(), model.config())
                    .with_context(|| format!("preparing {}", item.id))?,
            );
            let (tokens, dropped) =
                program_to_tokens_lossy(&item.gold_program, &frame, model.vocab());
            let image_jpeg = if spec.keep_images {
                Some(Arc::<[u8]>::from(encode_image_stable(
                    &img,
                    OutputFormat::Jpeg(90),
                )?))
            } else {
                None
            };
            let mut rng = SplitMix(spec.seed ^ index.rotate_left(17) ^ ((family as u64) << 56));
            let cue_regions = item.cue_regions();
            let mut trajectories: Vec<Trajectory> = (0..spec.contexts_per_item.max(1))
                .map(|c| {
                    let context = if c == 0 {
                        String::new()
                    } else {
                        reasoning_prefix(&item.reasoning, &mut rng)
                    };
                    Trajectory {
                        example: TrainExample {
                            prepared: prepared.clone(),
                            question: item.question.clone(),
                            context,
                            tokens: tokens.clone(),
                            original_size: (w, h),
                            cue_regions: cue_regions.clone(),
                        },
                        family,
                        item_id: item.id.clone(),
                        gold_program: item.gold_program.clone(),
                        gold_region: item.gold_region,
                        image_jpeg: image_jpeg.clone(),
                        dropped: dropped.len(),
                    }
                })
                .collect();
            trajectories.extend(view_trajectories(
                &item,
                &cue_regions,
                &img,
                family,
                views_per_item,
                &mut rng,
                model,
            )?);
            Ok(trajectories)
        })
        .collect();
    let mut out = Vec::new();
    for r in per_item {
        out.extend(r?);
    }
    Ok(out)
}

fn view_trajectories(
    item: &etchr_data::Item,
    cue_regions: &[Rect],
    img: &etchr_ops::RgbImage,
    family: Family,
    views: usize,
    rng: &mut SplitMix,
    model: &EditingModel,
) -> Result<Vec<Trajectory>> {
    let Some(extent) = program_extent(&item.gold_program).filter(|_| views > 0) else {
        return Ok(Vec::new());
    };
    let (w, h) = (img.width(), img.height());
    let mut out = Vec::with_capacity(views);
    for _ in 0..views {
        let rect = view_rect(&extent, w, h, rng);
        let rendered = render(
            img,
            &Program(vec![Op::Crop { region: rect }]),
            &RenderOptions::default(),
        )
        .with_context(|| format!("cropping a view of {}", item.id))?;
        let view = rendered
            .views
            .into_iter()
            .next()
            .context("a crop has one view")?;
        let frame = Frame::new(view.image.width(), view.image.height(), view.transform);
        let prepared = Arc::new(
            Prepared::from_image(&view.image, frame.clone(), model.config())
                .with_context(|| format!("preparing a view of {}", item.id))?,
        );
        let (tokens, dropped) = program_to_tokens_lossy(&item.gold_program, &frame, model.vocab());
        let context = if rng.unit() < 0.5 {
            String::new()
        } else {
            item.reasoning.clone()
        };
        out.push(Trajectory {
            example: TrainExample {
                prepared,
                question: item.question.clone(),
                context,
                tokens,
                original_size: (w, h),
                cue_regions: cue_regions.to_vec(),
            },
            family,
            item_id: item.id.clone(),
            gold_program: item.gold_program.clone(),
            gold_region: item.gold_region,
            image_jpeg: None,
            dropped: dropped.len(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_cut_at_words() {
        let mut rng = SplitMix(3);
        let r = "the label sits in the lower left corner; zoom in to read it";
        for _ in 0..50 {
            let p = reasoning_prefix(r, &mut rng);
            assert!(r.starts_with(&p));
            assert!(p.len() >= r.len() * 3 / 10 - 8, "{p:?}");
        }
        let p = rng.permutation(10);
        let mut s = p.clone();
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
    }
}
