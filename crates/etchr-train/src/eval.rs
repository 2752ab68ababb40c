//! Held-out validation: teacher-forced loss, and edit metrics of greedy decodes.

use crate::data::Trajectory;
use anyhow::Result;
use etchr_model::{refine_view, Batch, EditingModel, ImageInput, PlanInput, TrainExample};
use etchr_ops::{decode_image, DecodeLimits, Op, Program, RenderOptions, RgbImage, Transform};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The op kinds whose presence the metrics check.
pub const KINDS: [&str; 4] = ["rotate", "flip", "jigsaw_solve", "path"];

pub fn kinds(p: &Program) -> [bool; 4] {
    let mut k = [false; 4];
    for op in p.ops() {
        match op {
            Op::Rotate { .. } => k[0] = true,
            Op::Flip { .. } => k[1] = true,
            Op::Jigsaw { .. } | Op::JigsawSolve { .. } => k[2] = true,
            Op::Path { .. } => k[3] = true,
            _ => {}
        }
    }
    k
}

/// The share of `gold`'s area inside `pred`.
pub fn coverage(pred: &etchr_ops::Rect, gold: &etchr_ops::Rect) -> f64 {
    let a = gold.area();
    if a <= 0.0 {
        return 0.0;
    }
    pred.intersect(gold).map_or(0.0, |i| i.area() / a)
}

fn focus(p: &Program) -> Option<etchr_ops::Rect> {
    p.focus()
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FamilyMetrics {
    pub n: usize,
    /// IoU of the first, one-call plan (the planner's default).
    pub coarse_mean_iou: Option<f64>,
    /// Mean IoU after the coarse-to-fine second call, over trajectories whose gold program has
    /// a focus region (`None` if none).
    pub mean_iou: Option<f64>,
    /// The gold programs' own IoU (the imitation ceiling).
    pub gold_program_iou: Option<f64>,
    pub mean_coverage: Option<f64>,
    pub iou_n: usize,
    /// Teacher-forced share of the family's first pointer choices on the gold patch.
    pub first_pointer_top1: f64,
    pub first_pointer_nll: f64,
    /// The cue head's top-1 on the family's examples with cue targets (`None`: no cue head,
    /// or the family has no cue targets).
    pub cue_top1: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EvalReport {
    pub step: u64,
    pub val_loss: f64,
    pub val_token_nll: f64,
    pub val_pointer_nll: f64,
    pub val_regression: f64,
    /// Teacher-forced share of pointer choices (box centres, crop centres, points) whose
    /// most likely patch is the gold one.
    pub val_pointer_top1: f64,
    /// The same for each program's first pointer choice only, and its NLL (uniform over 256
    /// patches is 5.55): whether the model finds the target at all. See
    /// `etchr_model::LossParts::first_pointer_top1`.
    pub val_first_pointer_top1: f64,
    pub val_first_pointer_nll: f64,
    /// The cue head's balanced BCE and top-1 (its best patch lies on an object that fits the
    /// question's visual cue) over validation examples with cue targets; `None` without a cue
    /// head or such examples. See `etchr_model::LossParts::cue_top1`.
    pub val_cue_bce: Option<f64>,
    pub val_cue_top1: Option<f64>,
    /// Decoded trajectories.
    pub decoded: usize,
    /// Share of decodes that plan without error and pass `etchr_ops::validate`.
    pub validity: f64,
    /// IoU of the predicted focus region (`Program::focus`) with the gold region, after the
    /// coarse-to-fine second call (as the planner runs it).
    pub mean_iou: Option<f64>,
    /// The same for the first, coarse call alone.
    pub coarse_mean_iou: Option<f64>,
    /// The same IoU for the gold programs themselves: the ceiling that imitation can reach
    /// (gold crops keep margin around the gold region).
    pub gold_program_iou: Option<f64>,
    /// Mean share of the gold region's area inside the predicted focus region (a crop with
    /// margin scores 1 here but a low IoU).
    pub mean_coverage: Option<f64>,
    pub gold_program_coverage: Option<f64>,
    /// Per kind: accuracy (predicted has it | gold has it), and how many golds had it — gold as
    /// the model's token form expresses it.
    pub op_kind_accuracy: BTreeMap<String, (f64, usize)>,
    pub per_family: BTreeMap<String, FamilyMetrics>,
}

/// Mean teacher-forced loss parts over a validation split.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValLoss {
    pub total: f64,
    pub token_nll: f64,
    pub pointer_nll: f64,
    pub regression: f64,
    pub pointer_top1: f64,
    pub first_pointer_top1: f64,
    pub first_pointer_nll: f64,
    /// Examples with a first pointer choice (what the two first-pointer means average over).
    pub first_pointers: usize,
    pub cue_bce: f64,
    pub cue_top1: f64,
    /// Examples with cue targets (what the two cue means average over; 0 without a cue head).
    pub cue_examples: usize,
}

impl ValLoss {
    fn cue(&self) -> (Option<f64>, Option<f64>) {
        let has = self.cue_examples > 0;
        (has.then_some(self.cue_bce), has.then_some(self.cue_top1))
    }
}

/// Mean teacher-forced loss parts over `examples` in batches of `batch_size` (each batch's
/// means weighted by its examples; the first-pointer ones by its pointing examples).
pub fn val_loss(
    model: &EditingModel,
    examples: &[TrainExample],
    batch_size: usize,
) -> Result<ValLoss> {
    let mut acc = [0.0f64; 9];
    let (mut n, mut firsts, mut cues) = (0usize, 0usize, 0usize);
    let cue_head = model.config().cue_head;
    for chunk in examples.chunks(batch_size.max(1)) {
        let batch = Batch::new(chunk, model)?;
        let parts = model.loss(&batch)?;
        let (t, a, b, c) = parts.values()?;
        let scalar = |x: &candle_core::Tensor| x.to_scalar::<f32>();
        let top1 = scalar(&parts.pointer_top1)?;
        let first_top1 = scalar(&parts.first_pointer_top1)?;
        let first_nll = scalar(&parts.first_pointer_nll)?;
        let n_cue = if cue_head { batch.n_cue_examples } else { 0 };
        let (w, wf, wc) = (
            chunk.len() as f64,
            batch.n_first_pointers as f64,
            n_cue as f64,
        );
        for (s, (v, w)) in acc.iter_mut().zip([
            (t, w),
            (a, w),
            (b, w),
            (c, w),
            (top1, w),
            (first_top1, wf),
            (first_nll, wf),
            (scalar(&parts.cue_bce)?, wc),
            (scalar(&parts.cue_top1)?, wc),
        ]) {
            *s += v as f64 * w;
        }
        n += chunk.len();
        firsts += batch.n_first_pointers;
        cues += n_cue;
    }
    let (n, nf, nc) = (n.max(1) as f64, firsts.max(1) as f64, cues.max(1) as f64);
    Ok(ValLoss {
        total: acc[0] / n,
        token_nll: acc[1] / n,
        pointer_nll: acc[2] / n,
        regression: acc[3] / n,
        pointer_top1: acc[4] / n,
        first_pointer_top1: acc[5] / nf,
        first_pointer_nll: acc[6] / nf,
        first_pointers: firsts,
        cue_bce: acc[7] / nc,
        cue_top1: acc[8] / nc,
        cue_examples: cues,
    })
}

/// [`val_loss`] per family (batches never mix families), and over all of them.
fn val_loss_by_family(
    model: &EditingModel,
    val: &[Trajectory],
    batch_size: usize,
) -> Result<(ValLoss, BTreeMap<String, ValLoss>)> {
    let mut groups: BTreeMap<String, Vec<TrainExample>> = BTreeMap::new();
    for t in val {
        groups
            .entry(t.family.name().to_string())
            .or_default()
            .push(t.example.clone());
    }
    let mut per = BTreeMap::new();
    let mut all = ValLoss::default();
    let mut weights = Vec::with_capacity(groups.len());
    for (family, examples) in groups {
        let l = val_loss(model, &examples, batch_size)?;
        all.first_pointers += l.first_pointers;
        all.cue_examples += l.cue_examples;
        weights.push((examples.len() as f64 / val.len().max(1) as f64, l));
        per.insert(family, l);
    }
    for (w, l) in weights {
        let wf = l.first_pointers as f64 / all.first_pointers.max(1) as f64;
        let wc = l.cue_examples as f64 / all.cue_examples.max(1) as f64;
        all.cue_bce += wc * l.cue_bce;
        all.cue_top1 += wc * l.cue_top1;
        all.total += w * l.total;
        all.token_nll += w * l.token_nll;
        all.pointer_nll += w * l.pointer_nll;
        all.regression += w * l.regression;
        all.pointer_top1 += w * l.pointer_top1;
        all.first_pointer_top1 += wf * l.first_pointer_top1;
        all.first_pointer_nll += wf * l.first_pointer_nll;
    }
    Ok((all, per))
}

/// Loss and greedy-decode metrics on `val` (decodes the trajectories that keep an image).
pub fn evaluate(
    model: &EditingModel,
    val: &[Trajectory],
    batch_size: usize,
    step: u64,
) -> Result<EvalReport> {
    let (loss, family_loss) = val_loss_by_family(model, val, batch_size)?;
    let mut r = EvalReport {
        step,
        val_loss: loss.total,
        val_token_nll: loss.token_nll,
        val_pointer_nll: loss.pointer_nll,
        val_regression: loss.regression,
        val_pointer_top1: loss.pointer_top1,
        val_first_pointer_top1: loss.first_pointer_top1,
        val_first_pointer_nll: loss.first_pointer_nll,
        ..Default::default()
    };
    (r.val_cue_bce, r.val_cue_top1) = loss.cue();
    let with_images: Vec<&Trajectory> = val.iter().filter(|t| t.image_jpeg.is_some()).collect();
    let (mut valid, mut iou_sum, mut iou_n, mut gold_sum) = (0usize, 0.0f64, 0usize, 0.0f64);
    let mut kind_hits = [(0usize, 0usize); 4];
    let mut fam: BTreeMap<String, (usize, f64, usize, f64, f64, f64)> = BTreeMap::new();
    let (mut cov_sum, mut gold_cov_sum) = (0.0f64, 0.0f64);
    let mut coarse_iou_sum = 0.0f64;
    for chunk in with_images.chunks(batch_size.clamp(1, 16)) {
        let images: Vec<Option<Arc<RgbImage>>> = chunk
            .iter()
            .map(|t| {
                let bytes = t.image_jpeg.as_deref().expect("filtered");
                decode_image(bytes, &DecodeLimits::default())
                    .ok()
                    .map(Arc::new)
            })
            .collect();
        let inputs: Vec<PlanInput> = chunk
            .iter()
            .zip(&images)
            .map(|(t, img)| {
                let image = match img {
                    Some(img) => ImageInput::Decoded(img.clone()),
                    None => ImageInput::Encoded(t.image_jpeg.clone().expect("filtered")),
                };
                PlanInput::new(image, t.example.question.clone())
                    .with_context(t.example.context.clone())
            })
            .collect();
        let first: Vec<Program> = model
            .plan_batch(inputs)
            .into_iter()
            .zip(chunk)
            .map(|(out, t)| match out {
                Ok(o) => o.program,
                Err(e) => {
                    tracing::warn!(item = %t.item_id, error = %e, "plan failed");
                    Program::default()
                }
            })
            .collect();
        // Coarse-to-fine, as the planner runs it: a second call on the first crop's view.
        let mut refined: Vec<Option<Program>> = vec![None; chunk.len()];
        let mut second_inputs = Vec::new();
        let mut second_at = Vec::new();
        for (i, (t, img)) in chunk.iter().zip(&images).enumerate() {
            let Some(img) = img else { continue };
            if let Some((view, tf)) = refine_view(img, &Transform::identity(), &first[i]) {
                let (w, h) = t.example.original_size;
                second_inputs.push(
                    PlanInput::new(
                        ImageInput::Decoded(Arc::new(view)),
                        t.example.question.clone(),
                    )
                    .with_context(t.example.context.clone())
                    .on_view(tf, (w, h)),
                );
                second_at.push(i);
            }
        }
        for (i, out) in second_at.into_iter().zip(model.plan_batch(second_inputs)) {
            if let Ok(o) = out {
                if !o.program.is_empty() {
                    refined[i] = Some(o.program);
                }
            }
        }
        for ((t, coarse), refined) in chunk.iter().zip(first).zip(refined) {
            r.decoded += 1;
            let f = fam.entry(t.family.name().to_string()).or_default();
            f.0 += 1;
            if focus(&t.gold_program).is_some() {
                let iou = focus(&coarse).map_or(0.0, |p| p.iou(&t.gold_region));
                coarse_iou_sum += iou;
                f.5 += iou;
            }
            let predicted = refined.unwrap_or(coarse);
            let (w, h) = t.example.original_size;
            if etchr_ops::validate(w, h, &predicted, &RenderOptions::default()).is_ok() {
                valid += 1;
            }
            if let Some(g) = focus(&t.gold_program) {
                gold_sum += g.iou(&t.gold_region);
                f.3 += g.iou(&t.gold_region);
                gold_cov_sum += coverage(&g, &t.gold_region);
                let c = focus(&predicted).map_or(0.0, |p| coverage(&p, &t.gold_region));
                cov_sum += c;
                f.4 += c;
                let iou = focus(&predicted).map_or(0.0, |p| p.iou(&t.gold_region));
                iou_sum += iou;
                iou_n += 1;
                f.1 += iou;
                f.2 += 1;
            }
            // Kinds the model can express: the gold program as its token form keeps it (a
            // document's deliberate 1×n permutation is a `jigsaw` with an order, which the
            // vocabulary lacks, so it does not count against the model).
            let expressible = etchr_model::tokens_to_program(
                &t.example.tokens,
                &t.example.prepared.frame,
                model.vocab(),
            )
            .unwrap_or_else(|_| t.gold_program.clone());
            let (g, p) = (kinds(&expressible), kinds(&predicted));
            for k in 0..4 {
                if g[k] {
                    kind_hits[k].1 += 1;
                    if p[k] {
                        kind_hits[k].0 += 1;
                    }
                }
            }
        }
    }
    r.validity = valid as f64 / r.decoded.max(1) as f64;
    r.mean_iou = (iou_n > 0).then(|| iou_sum / iou_n as f64);
    r.coarse_mean_iou = (iou_n > 0).then(|| coarse_iou_sum / iou_n as f64);
    r.gold_program_iou = (iou_n > 0).then(|| gold_sum / iou_n as f64);
    r.mean_coverage = (iou_n > 0).then(|| cov_sum / iou_n as f64);
    r.gold_program_coverage = (iou_n > 0).then(|| gold_cov_sum / iou_n as f64);
    for (k, (hit, n)) in KINDS.iter().zip(kind_hits) {
        if n > 0 {
            r.op_kind_accuracy
                .insert(k.to_string(), (hit as f64 / n as f64, n));
        }
    }
    r.per_family = fam
        .into_iter()
        .map(|(k, (n, s, m, g, c, cs))| {
            let tf = family_loss.get(&k).copied().unwrap_or_default();
            (
                k,
                FamilyMetrics {
                    first_pointer_top1: tf.first_pointer_top1,
                    first_pointer_nll: tf.first_pointer_nll,
                    cue_top1: tf.cue().1,
                    n,
                    mean_iou: (m > 0).then(|| s / m as f64),
                    coarse_mean_iou: (m > 0).then(|| cs / m as f64),
                    gold_program_iou: (m > 0).then(|| g / m as f64),
                    mean_coverage: (m > 0).then(|| c / m as f64),
                    iou_n: m,
                },
            )
        })
        .collect();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etchr_ops::Rect;

    #[test]
    fn coverage_and_kinds() {
        let gold = Rect::new(10.0, 10.0, 20.0, 20.0);
        assert_eq!(coverage(&Rect::new(0.0, 0.0, 100.0, 100.0), &gold), 1.0);
        assert!((coverage(&Rect::new(15.0, 0.0, 100.0, 100.0), &gold) - 0.5).abs() < 1e-12);
        assert_eq!(coverage(&Rect::new(50.0, 50.0, 60.0, 60.0), &gold), 0.0);
        let p = Program::from_json(
            r#"[{"op":"jigsaw","rows":2,"cols":2,"order":[1,0,3,2]},{"op":"crop","box":[1,2,3,4]},{"op":"rotate","angle":90}]"#,
        )
        .unwrap();
        assert_eq!(kinds(&p), [true, false, true, false]);
        assert_eq!(focus(&p), Some(Rect::new(1.0, 2.0, 3.0, 4.0)));
    }
}
