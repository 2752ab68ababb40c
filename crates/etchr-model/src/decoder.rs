//! The autoregressive decoder over the op vocabulary, with its three heads:
//! - the token head: logits over the vocabulary (ops, parameter bins, `End`);
//! - the pointer head: logits over the image tokens (`query · key`), for the patch that holds
//!   a box centre or a point;
//! - the regression head: from the decoder state and the chosen patch's feature, the
//!   sub-patch offset (sigmoid, in patch units) and `log2` of the box size in patch units.
//!
//! A pointer choice enters the next step's input as a slot token plus a projection of the
//! chosen patch's feature and of the regressed geometry, so later steps know where it pointed.

use crate::config::ModelConfig;
use crate::encoder::Memory;
use crate::init::{Init, Params};
use crate::nn::{causal_mask, AttnMask, DecoderBlock, KeyValues, LayerNorm, Linear};
use candle_core::{Result, Tensor, D};

/// Inputs of one teacher-forced or decoding pass, all `[B, T, ...]`.
#[derive(Debug, Clone)]
pub struct DecoderInput {
    /// Token ids (slots appear as `SlotBox` / `SlotPoint`).
    pub ids: Tensor,
    /// 1 where the input is a pointer slot, else 0 (f32).
    pub slot_mask: Tensor,
    /// Index into the flattened `[B·N]` image tokens of the slot's patch (any valid index
    /// where `slot_mask` is 0).
    pub slot_index: Tensor,
    /// `[B, T, 4]` the slot's geometry: offset x, offset y, log2 width, log2 height.
    pub slot_geo: Tensor,
}

/// What the decoder reuses across steps for one encoded batch.
#[derive(Debug, Clone)]
pub struct DecoderState {
    kvs: Vec<KeyValues>,
    mask: AttnMask,
    /// `[B·N, d]` image tokens, for slot features and the regression head.
    pub image_flat: Tensor,
    /// `[B, N, d]` pointer keys.
    ptr_keys: Tensor,
    /// `[B, N]` cue scores of the image tokens (`ModelConfig::cue_head`), added to every
    /// pointer choice's logits.
    pub cue_logits: Option<Tensor>,
    pub num_patches: usize,
}

#[derive(Debug, Clone)]
pub struct Decoder {
    tokens: Tensor,
    pos: Tensor,
    slot_feat: Linear,
    slot_geo: Linear,
    blocks: Vec<DecoderBlock>,
    ln_f: LayerNorm,
    head: Linear,
    ptr_q: Linear,
    ptr_k: Linear,
    reg_h: Linear,
    reg_f: Linear,
    reg_out: Linear,
    cue: Option<Linear>,
    /// The bilinear word part of the cue score (`ModelConfig::cue_words`): patch side, words
    /// side (zero-initialised).
    cue_img: Option<Linear>,
    cue_txt: Option<Linear>,
    /// The same over the pre-encoder image tokens (`ModelConfig::cue_direct`).
    cue_direct_img: Option<Linear>,
    cue_direct_txt: Option<Linear>,
}

impl Decoder {
    pub fn new(p: &mut Params, cfg: &ModelConfig, vocab_size: usize) -> crate::error::Result<Self> {
        let d = cfg.d_model;
        Ok(Self {
            tokens: p.get("dec.tokens", &[vocab_size, d], Init::Normal(1.0))?,
            pos: p.get("dec.pos", &[cfg.max_steps, d], Init::Normal(0.02))?,
            slot_feat: Linear::new(p, "dec.slot_feat", d, d, false, 1.0)?,
            slot_geo: Linear::new(p, "dec.slot_geo", 4, d, true, 1.0)?,
            blocks: (0..cfg.decoder_layers)
                .map(|i| DecoderBlock::new(p, &format!("dec.block{i}"), cfg))
                .collect::<crate::error::Result<Vec<_>>>()?,
            ln_f: LayerNorm::new(p, "dec.ln_f", d)?,
            head: Linear::new(p, "dec.head", d, vocab_size, true, 1.0)?,
            ptr_q: Linear::new(p, "dec.ptr_q", d, d, true, 1.0)?,
            ptr_k: Linear::new(p, "dec.ptr_k", d, d, true, 1.0)?,
            reg_h: Linear::new(p, "dec.reg_h", d, d, true, 1.0)?,
            reg_f: Linear::new(p, "dec.reg_f", d, d, false, 1.0)?,
            reg_out: Linear::new(p, "dec.reg_out", d, 4, true, 0.1)?,
            // Gain 0: zero weights (and bias), so a grown model starts as the one it grew from.
            cue: cfg
                .cue_head
                .then(|| Linear::new(p, "dec.cue", d, 1, true, 0.0))
                .transpose()?,
            cue_img: (cfg.cue_words > 0)
                .then(|| Linear::new(p, "dec.cue_img", d, d, false, 1.0))
                .transpose()?,
            cue_txt: (cfg.cue_words > 0)
                .then(|| Linear::new(p, "dec.cue_txt", d, d, false, 0.0))
                .transpose()?,
            cue_direct_img: cfg
                .cue_direct
                .then(|| Linear::new(p, "dec.cue_direct_img", d, d, false, 1.0))
                .transpose()?,
            cue_direct_txt: cfg
                .cue_direct
                .then(|| Linear::new(p, "dec.cue_direct_txt", d, d, false, 0.0))
                .transpose()?,
        })
    }

    /// Projects the memory once for every decoding step.
    pub fn prepare(&self, memory: &Memory) -> Result<DecoderState> {
        let image = memory.image()?;
        let (b, n, d) = image.dims3()?;
        Ok(DecoderState {
            kvs: self
                .blocks
                .iter()
                .map(|blk| blk.key_values(&memory.all))
                .collect::<Result<_>>()?,
            mask: memory.mask.clone(),
            image_flat: image.reshape((b * n, d))?,
            ptr_keys: self.ptr_k.forward(&image)?,
            cue_logits: self.cue_logits(&image, memory)?,
            num_patches: n,
        })
    }

    /// `[B, N]` cue scores: a linear read of each image token, plus (with `cue_words`) the
    /// scaled product of the token's and the question words' projections, plus (with
    /// `cue_direct`) the same product over the pre-encoder image tokens.
    fn cue_logits(&self, image: &Tensor, memory: &Memory) -> Result<Option<Tensor>> {
        let Some(cue) = &self.cue else {
            return Ok(None);
        };
        let mut z = cue.forward(image)?.squeeze(2)?;
        let Some(words) = memory.question_words.as_ref() else {
            return Ok(Some(z));
        };
        let bilinear = |img_side: &Linear, txt_side: &Linear, x: &Tensor| -> Result<Tensor> {
            let d = x.dim(2)?;
            let t = (txt_side.forward(words)? * (1.0 / (d as f64).sqrt()))?.unsqueeze(2)?;
            img_side.forward(x)?.matmul(&t)?.squeeze(2)
        };
        if let (Some(vi), Some(vt)) = (&self.cue_img, &self.cue_txt) {
            z = (z + bilinear(vi, vt, image)?)?;
        }
        if let (Some(vi), Some(vt), Some(e)) = (
            &self.cue_direct_img,
            &self.cue_direct_txt,
            memory.image_embedding.as_ref(),
        ) {
            z = (z + bilinear(vi, vt, e)?)?;
        }
        Ok(Some(z))
    }

    /// Final hidden states `[B, T, d]`.
    pub fn hidden(&self, inp: &DecoderInput, st: &DecoderState, fused: bool) -> Result<Tensor> {
        let (b, t) = inp.ids.dims2()?;
        let d = self.pos.dim(1)?;
        let tok = self
            .tokens
            .index_select(&inp.ids.flatten_all()?, 0)?
            .reshape((b, t, d))?;
        let feat = st
            .image_flat
            .index_select(&inp.slot_index.flatten_all()?, 0)?
            .reshape((b, t, d))?;
        let slot = (self.slot_feat.forward(&feat)? + self.slot_geo.forward(&inp.slot_geo)?)?
            .broadcast_mul(&inp.slot_mask.unsqueeze(2)?)?;
        let mut x = (tok + slot)?.broadcast_add(&self.pos.narrow(0, 0, t)?)?;
        let causal = causal_mask(t, x.device())?;
        for (blk, kv) in self.blocks.iter().zip(&st.kvs) {
            x = blk.forward(&x, &causal, kv, &st.mask, fused)?;
        }
        self.ln_f.forward(&x, fused)
    }

    /// `[B, T, V]`.
    pub fn token_logits(&self, h: &Tensor) -> Result<Tensor> {
        self.head.forward(h)
    }

    /// `[B, T, N]`: scaled dot products of the step's query with every image token's key,
    /// plus each patch's cue score when the model has a cue head.
    pub fn pointer_logits(&self, h: &Tensor, st: &DecoderState) -> Result<Tensor> {
        let d = h.dim(D::Minus1)?;
        let q = (self.ptr_q.forward(h)? * (1.0 / (d as f64).sqrt()))?;
        let logits = q.matmul(&st.ptr_keys.t()?)?;
        match &st.cue_logits {
            Some(cue) => logits.broadcast_add(&cue.unsqueeze(1)?),
            None => Ok(logits),
        }
    }

    /// Raw `[.., 4]` geometry from states `h` and the chosen patches' features `feat` (same
    /// leading dims): apply a sigmoid to the first two for the offsets; the last two are
    /// `log2` sizes in patch units.
    pub fn regress(&self, h: &Tensor, feat: &Tensor) -> Result<Tensor> {
        let z = (self.reg_h.forward(h)? + self.reg_f.forward(feat)?)?.relu()?;
        self.reg_out.forward(&z)
    }
}
