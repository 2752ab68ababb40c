//! Teacher-forced training batches: for each example, the decoder's inputs (BOS then the gold
//! tokens, pointer slots carrying the gold patch and geometry), the targets, and the same
//! grammar and pointer masks the decoder applies, so the loss trains exactly the choices the
//! constrained decoder makes.

use crate::config::ModelConfig;
use crate::encoder::text_ids;
use crate::error::{ModelError, Result};
use crate::grammar::{Constraints, PointerGeometry, StepMask};
use crate::model::EditingModel;
use crate::nn::NEG;
use crate::pointer::encode_slot;
use crate::preprocess::Prepared;
use crate::tokens::Token;
use crate::vocab::Sym;
use candle_core::{Device, Tensor};
use etchr_ops::Rect;
use std::sync::Arc;

/// One training example. `tokens` is the gold program in the token form, as seen on
/// `prepared.frame`, ending with `End` (see [`crate::tokens::program_to_tokens_lossy`]).
#[derive(Debug, Clone)]
pub struct TrainExample {
    /// Shared so a cache of preprocessed images feeds many epochs without copies.
    pub prepared: Arc<Prepared>,
    pub question: String,
    pub context: String,
    pub tokens: Vec<Token>,
    /// The original image's size, which the program's coordinates refer to.
    pub original_size: (u32, u32),
    /// Regions (original pixels) of every object that fits the question's visual cue, the
    /// target among them, when the data knows them: the cue head's dense targets
    /// (`ModelConfig::cue_head`). Empty: no cue supervision for this example.
    pub cue_regions: Vec<Rect>,
}

/// Tensors for one teacher-forced pass. Shapes: `B` examples, `T` steps, `N` patches,
/// `V` vocabulary.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[B, N, patch_dim]` f32.
    pub patches: Tensor,
    /// `[B, L]` u32 byte ids.
    pub text: Tensor,
    pub input: crate::decoder::DecoderInput,
    /// `[B, T]` u32 target ids (0 where the target is a pointer or padding).
    pub target_ids: Tensor,
    /// `[B, T]` f32: 1 where the target is a vocabulary symbol.
    pub token_weight: Tensor,
    /// `[B, T, V]` additive grammar mask.
    pub sym_mask: Tensor,
    /// `[B, T]` u32 target patch (0 where none).
    pub ptr_target: Tensor,
    /// `[B, T]` u32 target patch as an index into the flattened `[B·N]` image tokens.
    pub ptr_target_flat: Tensor,
    /// `[B, T]` f32: 1 where the target is a pointer choice.
    pub ptr_weight: Tensor,
    /// `[B, T]` f32: 1 at each example's first pointer choice, the one that finds the target
    /// on the whole view (later ones mostly refine near it).
    pub first_ptr_weight: Tensor,
    /// `[B, T, N]` additive pointer mask.
    pub ptr_mask: Tensor,
    /// `[B, T, 4]` target offsets and log2 sizes, and their weights (sizes weigh 0 for points).
    pub geo_target: Tensor,
    pub geo_weight: Tensor,
    pub n_tokens: usize,
    pub n_pointers: usize,
    /// Examples with at least one pointer choice.
    pub n_first_pointers: usize,
    pub n_geo: usize,
    /// Gold choices that the masks would have forbidden (allowed for training, but a sign of
    /// data the decoder could never reproduce).
    pub forced: usize,
    /// `[B, N]` f32: 1 on patches that overlap a cue region ([`TrainExample::cue_regions`]);
    /// all 0 for examples without cue targets.
    pub cue_target: Tensor,
    /// `[B, 1]` f32 per-patch weights of the cue head's balanced binary cross-entropy: an
    /// example with cue targets weighs its positive patches ½ in all and its negative patches
    /// ½ in all (a few positives among hundreds of patches would otherwise teach "never");
    /// 0 for examples without.
    pub cue_pos_weight: Tensor,
    pub cue_neg_weight: Tensor,
    pub n_cue_examples: usize,
}

/// `[N]` 1/0: the patches of `prepared`'s input grid that overlap any of `regions` (original
/// pixels) with positive area.
pub fn cue_patches(regions: &[Rect], prepared: &Prepared, cfg: &ModelConfig) -> Vec<f32> {
    let (grid, p) = (cfg.grid(), cfg.patch_size as f64);
    let mut out = vec![0f32; grid * grid];
    let frame = &prepared.frame;
    let shown = Rect::full(frame.view_width, frame.view_height);
    let cells = |lo: f64, hi: f64| (lo / p).floor() as usize..((hi / p).ceil() as usize).min(grid);
    for r in regions {
        // Only what the view shows: a region beyond it must not light the letterbox padding.
        let Some(view) = frame
            .transform
            .rect_to_view(&r.normalized())
            .intersect(&shown)
        else {
            continue;
        };
        let r = prepared.letterbox.rect_to_input(&view);
        for row in cells(r.y0, r.y1) {
            for col in cells(r.x0, r.x1) {
                out[row * grid + col] = 1.0;
            }
        }
    }
    out
}

impl Batch {
    pub fn new(examples: &[TrainExample], model: &EditingModel) -> Result<Self> {
        Self::build(examples, model, model.device())
    }

    fn build(examples: &[TrainExample], model: &EditingModel, device: &Device) -> Result<Self> {
        let cfg = model.config();
        let vocab = model.vocab();
        if examples.is_empty() {
            return Err(ModelError::Input("an empty batch".into()));
        }
        let (b, n, v, pd) = (
            examples.len(),
            cfg.num_patches(),
            vocab.size(),
            cfg.patch_dim(),
        );
        let t = examples.iter().map(|e| e.tokens.len()).max().unwrap_or(1);
        if t + 1 > cfg.max_steps || t == 0 {
            return Err(ModelError::Tokens(format!(
                "a target of {t} tokens does not fit max_steps {}",
                cfg.max_steps
            )));
        }
        let mut patches = Vec::with_capacity(b * n * pd);
        let mut text = Vec::with_capacity(b * cfg.text_len());
        let mut ids = vec![vocab.id(Sym::Pad); b * t];
        let mut slot_mask = vec![0f32; b * t];
        let mut slot_index = vec![0u32; b * t];
        let mut slot_geo = vec![0f32; b * t * 4];
        let mut target_ids = vec![0u32; b * t];
        let mut token_weight = vec![0f32; b * t];
        let mut sym_mask = vec![0f32; b * t * v];
        let mut ptr_target = vec![0u32; b * t];
        let mut ptr_flat = vec![0u32; b * t];
        let mut ptr_weight = vec![0f32; b * t];
        let mut first_ptr_weight = vec![0f32; b * t];
        let mut ptr_mask = vec![0f32; b * t * n];
        let mut geo_target = vec![0f32; b * t * 4];
        let mut geo_weight = vec![0f32; b * t * 4];
        let (mut n_tokens, mut n_pointers, mut n_geo, mut forced) = (0, 0, 0, 0);
        let mut n_first_pointers = 0;
        let mut cue_target = vec![0f32; b * n];
        let (mut cue_pos, mut cue_neg) = (vec![0f32; b], vec![0f32; b]);
        let mut n_cue_examples = 0;
        for (bi, ex) in examples.iter().enumerate() {
            let mut pointed = false;
            let pr = &ex.prepared;
            if pr.patches.len() != n * pd {
                return Err(ModelError::Input(format!(
                    "example {bi}: prepared for another input size"
                )));
            }
            patches.extend_from_slice(&pr.patches);
            text.extend(text_ids(cfg, &ex.question, &ex.context));
            let cue = cue_patches(&ex.cue_regions, pr, cfg);
            let pos = cue.iter().filter(|&&y| y > 0.0).count();
            if pos > 0 && pos < n {
                cue_target[bi * n..(bi + 1) * n].copy_from_slice(&cue);
                cue_pos[bi] = 0.5 / pos as f32;
                cue_neg[bi] = 0.5 / (n - pos) as f32;
                n_cue_examples += 1;
            }
            let geometry = PointerGeometry::new(cfg, &pr.letterbox, &pr.frame);
            let mut cons = Constraints::new(ex.original_size.0, ex.original_size.1, usize::MAX);
            let row = |i: usize| bi * t + i;
            ids[row(0)] = vocab.id(Sym::Bos);
            for (i, tok) in ex.tokens.iter().enumerate() {
                let r = row(i);
                let err = |m: String| ModelError::Tokens(format!("example {bi}, token {i}: {m}"));
                match (cons.step(vocab, &geometry), tok) {
                    (StepMask::Syms(mask), Token::Sym(s)) => {
                        let id = vocab.id(*s) as usize;
                        target_ids[r] = id as u32;
                        token_weight[r] = 1.0;
                        n_tokens += 1;
                        if !mask[id] {
                            forced += 1;
                        }
                        for (j, ok) in mask.iter().enumerate() {
                            if !ok && j != id {
                                sym_mask[r * v + j] = NEG as f32;
                            }
                        }
                    }
                    (
                        StepMask::Pointer {
                            point,
                            patches: allowed,
                        },
                        Token::Box(_) | Token::Point(_),
                    ) => {
                        if point != matches!(tok, Token::Point(_)) {
                            return Err(err("a box where a point is due, or the reverse".into()));
                        }
                        let (k, geo) = encode_slot(tok, &pr.letterbox, &pr.frame, cfg)
                            .expect("coordinate tokens have a slot");
                        ptr_target[r] = k as u32;
                        ptr_flat[r] = (bi * n + k) as u32;
                        ptr_weight[r] = 1.0;
                        n_pointers += 1;
                        if !pointed {
                            pointed = true;
                            first_ptr_weight[r] = 1.0;
                            n_first_pointers += 1;
                        }
                        if !allowed[k] {
                            forced += 1;
                        }
                        for (j, ok) in allowed.iter().enumerate() {
                            if !ok && j != k {
                                ptr_mask[r * n + j] = NEG as f32;
                            }
                        }
                        let dims = if point { 2 } else { 4 };
                        for c in 0..4 {
                            geo_target[r * 4 + c] = geo[c];
                            geo_weight[r * 4 + c] = if c < dims { 1.0 } else { 0.0 };
                        }
                        n_geo += dims;
                        // The next input is this slot.
                        if i + 1 < t {
                            let nr = row(i + 1);
                            ids[nr] = vocab.id(if point { Sym::SlotPoint } else { Sym::SlotBox });
                            slot_mask[nr] = 1.0;
                            slot_index[nr] = (bi * n + k) as u32;
                            slot_geo[nr * 4..nr * 4 + 4].copy_from_slice(&geo);
                        }
                    }
                    (StepMask::Done, _) => return Err(err("tokens after End".into())),
                    (_, tok) => {
                        return Err(err(format!("{tok:?} is not what the grammar expects")))
                    }
                }
                if let Token::Sym(s) = tok {
                    if i + 1 < t {
                        ids[row(i + 1)] = vocab.id(*s);
                    }
                }
                cons.push(*tok, &pr.frame, vocab).map_err(err)?;
            }
            // Slot inputs of other rows point at this example's first patch (masked anyway).
            for i in 0..t {
                if slot_mask[row(i)] == 0.0 {
                    slot_index[row(i)] = (bi * n) as u32;
                    ptr_flat[row(i)] = (bi * n) as u32;
                }
            }
        }
        let f = |data: Vec<f32>, shape: &[usize]| Tensor::from_vec(data, shape, device);
        let u = |data: Vec<u32>, shape: &[usize]| Tensor::from_vec(data, shape, device);
        Ok(Self {
            patches: f(patches, &[b, n, pd])?,
            text: u(text, &[b, cfg.text_len()])?,
            input: crate::decoder::DecoderInput {
                ids: u(ids, &[b, t])?,
                slot_mask: f(slot_mask, &[b, t])?,
                slot_index: u(slot_index, &[b, t])?,
                slot_geo: f(slot_geo, &[b, t, 4])?,
            },
            target_ids: u(target_ids, &[b, t])?,
            token_weight: f(token_weight, &[b, t])?,
            sym_mask: f(sym_mask, &[b, t, v])?,
            ptr_target: u(ptr_target, &[b, t])?,
            ptr_target_flat: u(ptr_flat, &[b, t])?,
            ptr_weight: f(ptr_weight, &[b, t])?,
            first_ptr_weight: f(first_ptr_weight, &[b, t])?,
            ptr_mask: f(ptr_mask, &[b, t, n])?,
            geo_target: f(geo_target, &[b, t, 4])?,
            geo_weight: f(geo_weight, &[b, t, 4])?,
            n_tokens,
            n_pointers,
            n_first_pointers,
            n_geo,
            forced,
            cue_target: f(cue_target, &[b, n])?,
            cue_pos_weight: f(cue_pos, &[b, 1])?,
            cue_neg_weight: f(cue_neg, &[b, 1])?,
            n_cue_examples,
        })
    }
}
