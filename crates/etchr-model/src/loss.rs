//! The teacher-forced loss: cross-entropy over vocabulary symbols (grammar-masked), pointer
//! cross-entropy over image tokens (masked like decoding), and a pseudo-Huber regression of
//! the sub-patch offset and `log2` box size, taken at the *gold* patch's feature.
//! Every piece is built from differentiable primitives.

use crate::batch::Batch;
use crate::error::Result;
use crate::model::EditingModel;
use crate::nn::{log_softmax, sigmoid, softplus};
use candle_core::{Tensor, D};

/// Loss terms (scalar tensors, differentiable) and per-step log-probabilities.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// `token_nll + pointer_nll + regression_weight · regression`.
    pub total: Tensor,
    pub token_nll: Tensor,
    pub pointer_nll: Tensor,
    pub regression: Tensor,
    /// Share of pointer choices whose most likely patch is the gold one (a metric, not
    /// differentiated): it shows localisation improving long before a box's IoU does.
    pub pointer_top1: Tensor,
    /// The same, and the NLL, for each program's *first* pointer choice only: whether the
    /// model finds the target on the whole view. Later choices mostly sit next to the first
    /// (a box inside the crop just chosen), so they flatter `pointer_top1`. Metrics.
    pub first_pointer_top1: Tensor,
    pub first_pointer_nll: Tensor,
    /// The cue head's balanced binary cross-entropy (0 without a cue head or cue targets),
    /// already in `total` with weight [`CUE_WEIGHT`].
    pub cue_bce: Tensor,
    /// Share of examples with cue targets whose highest cue score lies on a cue patch (a
    /// metric; 0 without a cue head).
    pub cue_top1: Tensor,
    /// `[B, T]` log-probability of each gold choice (symbol or patch), 0 at padding and where
    /// nothing is chosen: Stage 2 sums these over a sampled program for its policy gradient.
    pub logprobs: Tensor,
    /// `[B, T]` squared distance of each box's `log2` width and height from the regression's
    /// output (0 elsewhere): when Stage 2 samples sizes with Gaussian noise of deviation σ,
    /// `−size_sq / 2σ²` is the sampled size's log-density up to a constant.
    pub size_sq: Tensor,
}

impl LossParts {
    /// `(total, token, pointer, regression)` as numbers, for logs.
    pub fn values(&self) -> Result<(f32, f32, f32, f32)> {
        Ok((
            self.total.to_scalar()?,
            self.token_nll.to_scalar()?,
            self.pointer_nll.to_scalar()?,
            self.regression.to_scalar()?,
        ))
    }
}

/// Weight of the regression term (offsets are in [0, 1], log-sizes in a few units).
pub const REGRESSION_WEIGHT: f64 = 1.0;

/// Weight of the cue head's term: a balanced BCE starts near `ln 2 ≈ 0.69`, of the order of the
/// token NLL, so it steers the shared features without drowning the program.
pub const CUE_WEIGHT: f64 = 1.0;

/// `√(d² + δ²) − δ`: quadratic near 0, linear far out, smooth everywhere.
fn pseudo_huber(d: &Tensor, delta: f64) -> candle_core::Result<Tensor> {
    (d.sqr()? + delta * delta)?.sqrt()? - delta
}

impl EditingModel {
    /// The teacher-forced loss of `batch` (training path: no fused ops).
    pub fn loss(&self, batch: &Batch) -> Result<LossParts> {
        let memory = self.encoder().forward(&batch.patches, &batch.text, false)?;
        let st = self.decoder().prepare(&memory)?;
        let h = self.decoder().hidden(&batch.input, &st, false)?;
        let (b, t, d) = h.dims3()?;

        let tok_lp = log_softmax(
            &self
                .decoder()
                .token_logits(&h)?
                .broadcast_add(&batch.sym_mask)?,
        )?
        .gather(&batch.target_ids.unsqueeze(2)?, 2)?
        .squeeze(2)?;
        let tok_lp = (tok_lp * &batch.token_weight)?;
        let ptr_logits = self
            .decoder()
            .pointer_logits(&h, &st)?
            .broadcast_add(&batch.ptr_mask)?;
        let ptr_hits = (ptr_logits
            .detach()
            .argmax(D::Minus1)?
            .eq(&batch.ptr_target)?
            .to_dtype(candle_core::DType::F32)?
            * &batch.ptr_weight)?;
        let ptr_lp = log_softmax(&ptr_logits)?
            .gather(&batch.ptr_target.unsqueeze(2)?, 2)?
            .squeeze(2)?;
        let first_lp = (ptr_lp.detach() * &batch.first_ptr_weight)?;
        let first_hits = (&ptr_hits * &batch.first_ptr_weight)?;
        let ptr_lp = (ptr_lp * &batch.ptr_weight)?;

        let feat = st
            .image_flat
            .index_select(&batch.ptr_target_flat.flatten_all()?, 0)?
            .reshape((b, t, d))?;
        let raw = self.decoder().regress(&h, &feat)?;
        let pred = Tensor::cat(
            &[
                sigmoid(&raw.narrow(D::Minus1, 0, 2)?)?,
                raw.narrow(D::Minus1, 2, 2)?,
            ],
            D::Minus1,
        )?;
        let diff = (pred - &batch.geo_target)?;
        let size_sq = (diff.narrow(D::Minus1, 2, 2)?.sqr()?
            * batch.geo_weight.narrow(D::Minus1, 2, 2)?)?
        .sum(D::Minus1)?;
        let reg = (pseudo_huber(&diff, 0.1)? * &batch.geo_weight)?;

        let token_nll = (tok_lp.sum_all()?.neg()? / batch.n_tokens.max(1) as f64)?;
        let pointer_nll = (ptr_lp.sum_all()?.neg()? / batch.n_pointers.max(1) as f64)?;
        let regression = (reg.sum_all()? / batch.n_geo.max(1) as f64)?;
        let pointer_top1 = (ptr_hits.sum_all()? / batch.n_pointers.max(1) as f64)?;
        let n_first = batch.n_first_pointers.max(1) as f64;
        let first_pointer_top1 = (first_hits.sum_all()? / n_first)?;
        let first_pointer_nll = (first_lp.sum_all()?.neg()? / n_first)?;
        let (cue_bce, cue_top1) = self.cue_loss(batch, st.cue_logits.as_ref())?;
        let total = (((&token_nll + &pointer_nll)? + (&regression * REGRESSION_WEIGHT)?)?
            + (&cue_bce * CUE_WEIGHT)?)?;
        Ok(LossParts {
            total,
            token_nll,
            pointer_nll,
            regression,
            pointer_top1,
            first_pointer_top1,
            first_pointer_nll,
            cue_bce,
            cue_top1,
            logprobs: (tok_lp + ptr_lp)?,
            size_sq,
        })
    }

    /// `(balanced BCE, top-1)` of the cue scores `[B, N]` against the batch's cue patches,
    /// averaged over the examples that have cue targets; zeros when there are none.
    fn cue_loss(&self, batch: &Batch, cue: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let zero = || Tensor::new(0f32, self.device());
        let Some(z) = cue.filter(|_| batch.n_cue_examples > 0) else {
            return Ok((zero()?, zero()?));
        };
        let n = batch.n_cue_examples as f64;
        let y = &batch.cue_target;
        let pos = (softplus(&z.neg()?)? * y)?.broadcast_mul(&batch.cue_pos_weight)?;
        let neg = (softplus(z)? * (1.0 - y)?)?.broadcast_mul(&batch.cue_neg_weight)?;
        let bce = ((pos + neg)?.sum_all()? / n)?;
        // Examples without cue targets have no positive patch, so they never count as hits.
        let best = z.detach().argmax_keepdim(D::Minus1)?;
        let hits = y.gather(&best, 1)?;
        Ok((bce, (hits.sum_all()? / n)?))
    }
}
