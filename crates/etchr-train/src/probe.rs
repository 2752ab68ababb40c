//! `etchr train probe`: which part of a question's visual cue a model's cue head has bound to
//! the image (`ModelConfig::cue_head`).
//!
//! "The brown triangle" names two attributes. A head that scores every object alike has
//! learnt objectness; one that prefers brown objects has bound the colour word; one that
//! prefers triangles, the shape. The probe scores each object of held-out fine-grained and
//! orientation images (the mean cue score over its patches; whole image, empty context),
//! groups the objects by what they share with the cue, and reports each group's mean score
//! above the background's and what the highest-scoring object shares, next to what picking
//! an object at random gives.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use etchr_data::{generate_sample, CueObject, Family, Sample};
use etchr_model::batch::cue_patches;
use etchr_model::encoder::text_ids;
use etchr_model::{EditingModel, Frame, ModelConfig, Prepared};
use etchr_ops::Rect;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// A model directory whose config has `cue_head`.
    #[arg(long)]
    pub model: PathBuf,
    /// Data seed of the held-out items (keep it off the training seed).
    #[arg(long)]
    pub seed: u64,
    /// Items per family.
    #[arg(long, default_value_t = 60)]
    pub items: usize,
}

/// How objects that share none, one or all of the cue's attributes score, per family.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CueBinding {
    pub items: usize,
    /// Mean object score above the mean background patch's, averaged over the items that have
    /// such objects: fitting the whole cue; the named colour without fitting (another kind, or
    /// outside the named area); the named kind in another colour; neither.
    pub score_fits_cue: f64,
    pub score_colour: f64,
    pub score_kind: f64,
    pub score_neither: f64,
    /// Share of items whose highest-scoring object fits the cue, has the named colour, has
    /// the named kind.
    pub top_fits_cue: f64,
    pub top_colour: f64,
    pub top_kind: f64,
    /// The same shares for an object picked uniformly at random.
    pub chance_fits_cue: f64,
    pub chance_colour: f64,
    pub chance_kind: f64,
}

/// Which of the cue's attributes an object has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    FitsCue,
    Colour,
    Kind,
    Neither,
}

fn group(o: &CueObject, cue: &CueObject) -> Group {
    match (o.fits_cue, o.colour == cue.colour, o.kind == cue.kind) {
        (true, _, _) => Group::FitsCue,
        (false, true, _) => Group::Colour,
        (false, false, true) => Group::Kind,
        _ => Group::Neither,
    }
}

/// The cue scores `[N]` of a sample's whole image with an empty context.
fn cue_scores(model: &EditingModel, sample: &Sample) -> Result<(Vec<f32>, Prepared)> {
    let cfg = model.config();
    let (w, h) = sample.image.dimensions();
    let prepared = Prepared::from_image(&sample.image, Frame::identity(w, h), cfg)?;
    let dev = model.device();
    let patches = Tensor::from_vec(
        prepared.patches.clone(),
        (1, cfg.num_patches(), cfg.patch_dim()),
        dev,
    )?;
    let text = Tensor::from_vec(
        text_ids(cfg, &sample.item.question, ""),
        (1, cfg.text_len()),
        dev,
    )?;
    let memory = model.encoder().forward(&patches, &text, true)?;
    let state = model.decoder().prepare(&memory)?;
    let Some(cue) = state.cue_logits else {
        bail!("the model has no cue head (`cue_head` in its config.json)");
    };
    Ok((cue.flatten_all()?.to_vec1()?, prepared))
}

/// Mean of `scores` where `mask` is set (`None` when nothing is).
fn masked_mean(scores: &[f32], mask: &[f32]) -> Option<f64> {
    let (sum, n) = scores
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m > 0.0)
        .fold((0.0, 0usize), |(s, n), (&v, _)| (s + v as f64, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Per-group sums over items, turned into a [`CueBinding`] at the end.
#[derive(Debug, Default)]
struct Tally {
    items: usize,
    /// Sum over items of the group's mean score above background, and how many items had
    /// the group.
    sums: [f64; 4],
    counts: [usize; 4],
    top: [f64; 3],
    chance: [f64; 3],
}

impl Tally {
    /// Adds one image: its objects, its cue scores `[N]` and the view the scores are over.
    fn add(
        &mut self,
        objects: &[CueObject],
        scores: &[f32],
        prepared: &Prepared,
        cfg: &ModelConfig,
    ) {
        let Some(cue) = objects.iter().find(|o| o.fits_cue) else {
            return;
        };
        self.items += 1;
        let regions: Vec<Rect> = objects.iter().map(|o| o.region).collect();
        let covered = cue_patches(&regions, prepared, cfg);
        let frame = &prepared.frame;
        let content = cue_patches(
            &[Rect::full(frame.view_width, frame.view_height)],
            prepared,
            cfg,
        );
        let background: Vec<f32> = content
            .iter()
            .zip(&covered)
            .map(|(c, o)| c * (1.0 - o))
            .collect();
        let base = masked_mean(scores, &background).unwrap_or(0.0);
        let mut best: Option<(f64, Group)> = None;
        let mut sums = [0.0f64; 4];
        let mut counts = [0usize; 4];
        for o in objects {
            let mask = cue_patches(&[o.region], prepared, cfg);
            // The mean over the object's patches: a neighbour sharing one patch with a lit
            // object does not inherit its score.
            let Some(score) = masked_mean(scores, &mask) else {
                continue;
            };
            let g = group(o, cue);
            sums[g as usize] += score - base;
            counts[g as usize] += 1;
            if !matches!(best, Some((b, _)) if b >= score) {
                best = Some((score, g));
            }
        }
        for k in 0..4 {
            if counts[k] > 0 {
                self.sums[k] += sums[k] / counts[k] as f64;
                self.counts[k] += 1;
            }
        }
        let n = objects.len() as f64;
        let share =
            |f: &dyn Fn(&CueObject) -> bool| objects.iter().filter(|o| f(o)).count() as f64 / n;
        self.chance[0] += share(&|o| o.fits_cue);
        self.chance[1] += share(&|o| o.colour == cue.colour);
        self.chance[2] += share(&|o| o.kind == cue.kind);
        if let Some((_, g)) = best {
            // The fitting objects have both attributes.
            self.top[0] += f64::from(g == Group::FitsCue);
            self.top[1] += f64::from(matches!(g, Group::FitsCue | Group::Colour));
            self.top[2] += f64::from(matches!(g, Group::FitsCue | Group::Kind));
        }
    }

    fn finish(self) -> CueBinding {
        let mean = |g: Group| {
            let k = g as usize;
            if self.counts[k] > 0 {
                self.sums[k] / self.counts[k] as f64
            } else {
                0.0
            }
        };
        let n = self.items.max(1) as f64;
        CueBinding {
            items: self.items,
            score_fits_cue: mean(Group::FitsCue),
            score_colour: mean(Group::Colour),
            score_kind: mean(Group::Kind),
            score_neither: mean(Group::Neither),
            top_fits_cue: self.top[0] / n,
            top_colour: self.top[1] / n,
            top_kind: self.top[2] / n,
            chance_fits_cue: self.chance[0] / n,
            chance_colour: self.chance[1] / n,
            chance_kind: self.chance[2] / n,
        }
    }
}

/// The probe of one family: `items` samples of `seed`.
pub fn probe_family(
    model: &EditingModel,
    family: Family,
    seed: u64,
    items: usize,
) -> Result<CueBinding> {
    let mut tally = Tally::default();
    for index in 0..items as u64 {
        let sample = generate_sample(family, seed, index);
        if !sample.objects.iter().any(|o| o.fits_cue) {
            bail!("{family} item {index} lists no object fitting its cue");
        }
        let (scores, prepared) = cue_scores(model, &sample)?;
        tally.add(&sample.objects, &scores, &prepared, model.config());
    }
    Ok(tally.finish())
}

/// Runs the probe on both cue families; JSON on stdout, a table on stderr.
pub fn run_probe(args: ProbeArgs) -> Result<BTreeMap<String, CueBinding>> {
    let model = EditingModel::load(&args.model, &Device::Cpu)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let mut report = BTreeMap::new();
    eprintln!(
        "{:<13} {:>6} {:>8} {:>8} {:>8} {:>8}   top object: fits / colour / kind (chance)",
        "family", "items", "fits", "colour", "kind", "neither"
    );
    for family in [Family::FineGrained, Family::Orientation] {
        let b = probe_family(&model, family, args.seed, args.items)?;
        eprintln!(
            "{:<13} {:>6} {:>8.3} {:>8.3} {:>8.3} {:>8.3}   {:.2} ({:.2}) / {:.2} ({:.2}) / {:.2} ({:.2})",
            family.name(),
            b.items,
            b.score_fits_cue,
            b.score_colour,
            b.score_kind,
            b.score_neither,
            b.top_fits_cue,
            b.chance_fits_cue,
            b.top_colour,
            b.chance_colour,
            b.top_kind,
            b.chance_kind
        );
        report.insert(family.name().to_string(), b);
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores 1 on the patches of the objects `lit` picks, 0 elsewhere.
    fn lit_scores(
        objects: &[CueObject],
        prepared: &Prepared,
        cfg: &ModelConfig,
        lit: impl Fn(&CueObject) -> bool,
    ) -> Vec<f32> {
        let regions: Vec<Rect> = objects
            .iter()
            .filter(|o| lit(o))
            .map(|o| o.region)
            .collect();
        cue_patches(&regions, prepared, cfg)
    }

    #[test]
    fn the_tally_tells_colour_binding_from_shape_binding() {
        // Synthetic cue maps over real fine-grained images: one that lights every object of
        // the named colour, one that lights every object of the named shape.
        let cfg = ModelConfig::default();
        let (mut by_colour, mut by_kind) = (Tally::default(), Tally::default());
        for i in 0..12 {
            let s = generate_sample(Family::FineGrained, 5, i);
            let (w, h) = s.image.dimensions();
            let prepared = Prepared::from_image(&s.image, Frame::identity(w, h), &cfg).unwrap();
            let cue = s.objects.iter().find(|o| o.fits_cue).unwrap().clone();
            let colour = lit_scores(&s.objects, &prepared, &cfg, |o| o.colour == cue.colour);
            let kind = lit_scores(&s.objects, &prepared, &cfg, |o| o.kind == cue.kind);
            by_colour.add(&s.objects, &colour, &prepared, &cfg);
            by_kind.add(&s.objects, &kind, &prepared, &cfg);
        }
        let (c, k) = (by_colour.finish(), by_kind.finish());
        assert_eq!((c.items, k.items), (12, 12));
        // Colour: the top object always has the colour, the fitting and same-colour groups
        // score ~1 above the background and the others far less (a patch can be shared).
        assert_eq!(c.top_colour, 1.0);
        assert!(c.score_fits_cue > 0.99 && c.score_colour > 0.99, "{c:?}");
        assert!(c.score_kind < 0.5 && c.score_neither < 0.5, "{c:?}");
        assert_eq!(k.top_kind, 1.0);
        assert!(k.score_fits_cue > 0.99 && k.score_kind > 0.99, "{k:?}");
        assert!(k.score_colour < 0.5 && k.score_neither < 0.5, "{k:?}");
        // Chance: the fitting objects are a subset of each attribute's.
        assert!(c.chance_fits_cue > 0.0 && c.chance_fits_cue <= c.chance_colour.min(c.chance_kind));
        assert!(c.chance_colour < 0.5 && c.chance_kind < 0.5, "{c:?}");
    }

    #[test]
    fn a_model_without_a_cue_head_is_refused_and_one_with_it_is_probed() {
        let plain = EditingModel::tiny(1).unwrap();
        let err = probe_family(&plain, Family::Orientation, 3, 1).unwrap_err();
        assert!(err.to_string().contains("cue head"), "{err}");
        let cfg = ModelConfig {
            cue_head: true,
            cue_words: 8,
            word_buckets: 64,
            ..ModelConfig::tiny()
        };
        let model = EditingModel::new(cfg, 2, &Device::Cpu).unwrap();
        let b = probe_family(&model, Family::Orientation, 3, 2).unwrap();
        assert_eq!(b.items, 2);
        // A zero-initialised head scores everything alike.
        assert_eq!(b.score_fits_cue, 0.0);
        assert!(b.chance_fits_cue > 0.0 && b.chance_colour > 0.0);
    }
}
