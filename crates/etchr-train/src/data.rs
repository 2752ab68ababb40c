//! Stage 1 trajectories from the generator: (image, question, reasoning so far, gold program
//! as tokens), with each item's image preprocessed once and shared between its trajectories.

use anyhow::{Context, Result};
use etchr_data::{generate, Family};
use etchr_model::{program_to_tokens_lossy, EditingModel, Frame, Prepared, TrainExample};
use etchr_ops::{encode_image, OutputFormat, Program, Rect};
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
                Some(Arc::<[u8]>::from(encode_image(
                    &img,
                    OutputFormat::Jpeg(90),
                )?))
            } else {
                None
            };
            let mut rng = SplitMix(spec.seed ^ index.rotate_left(17) ^ ((family as u64) << 56));
            Ok((0..spec.contexts_per_item.max(1))
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
                        },
                        family,
                        item_id: item.id.clone(),
                        gold_program: item.gold_program.clone(),
                        gold_region: item.gold_region,
                        image_jpeg: image_jpeg.clone(),
                        dropped: dropped.len(),
                    }
                })
                .collect())
        })
        .collect();
    let mut out = Vec::new();
    for r in per_item {
        out.extend(r?);
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
