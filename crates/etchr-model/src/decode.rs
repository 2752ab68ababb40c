//! Grammar-constrained decoding, batched: every sequence of a batch advances one step per
//! decoder pass; the grammar (and the geometric tracker) masks each sequence's logits, greedy
//! or sampled (temperature, top-p) per request, and the log-probability of each choice is kept
//! for Stage 2.

use crate::error::Result;
use crate::grammar::{Constraints, PointerGeometry, StepMask};
use crate::init::XorShift;
use crate::model::EditingModel;
use crate::pointer::{decode_slot, encode_slot};
use crate::preprocess::Prepared;
use crate::tokens::Token;
use crate::vocab::Sym;
use candle_core::Tensor;
use etchr_ops::{Point, Rect};
use std::time::Instant;

/// How each step's choice is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely allowed choice (the default: reproducible plans).
    Greedy,
    /// Sample from the allowed choices at `temperature`, keeping the smallest set whose
    /// probability reaches `top_p`; `seed` makes it reproducible.
    Sample {
        temperature: f32,
        top_p: f32,
        seed: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeOptions {
    pub sampling: Sampling,
    /// Most ops in one program (the grammar also allows each op kind once).
    pub max_ops: usize,
    /// When sampling: the standard deviation of Gaussian noise added to a box's regressed
    /// `log2` width and height, so that a box's size is explored as its place is (Stage 2's
    /// `--size-std`). 0, the default, keeps sizes at the regression's mean.
    pub size_std: f32,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            sampling: Sampling::Greedy,
            max_ops: 8,
            size_std: 0.0,
        }
    }
}

impl DecodeOptions {
    pub fn sample(temperature: f32, top_p: f32, seed: u64) -> Self {
        Self {
            sampling: Sampling::Sample {
                temperature,
                top_p,
                seed,
            },
            ..Self::default()
        }
    }

    /// The same, with box sizes sampled around the regression's mean (see `size_std`).
    pub fn with_size_std(mut self, size_std: f32) -> Self {
        self.size_std = size_std;
        self
    }
}

/// One discrete choice and its log-probability (temperature 1, over the allowed choices).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLogProb {
    pub token: Token,
    pub logprob: f32,
    /// The patch chosen, for coordinate tokens.
    pub patch: Option<usize>,
}

pub(crate) struct DecodeItem<'a> {
    pub prepared: &'a Prepared,
    pub text: Vec<u32>,
    pub original: (u32, u32),
    pub options: DecodeOptions,
    /// Regions (original pixels) the program's first pointer choice must not fall in.
    pub avoid: &'a [Rect],
}

pub(crate) struct Decoded {
    pub tokens: Vec<Token>,
    pub steps: Vec<StepLogProb>,
    pub first_pointer: Vec<(Point, f32)>,
}

/// The allowed patches' probabilities (temperature 1) with their centres in original pixels.
fn pointer_map(logits: &[f32], allowed: &[bool], geometry: &PointerGeometry) -> Vec<(Point, f32)> {
    let max = logits
        .iter()
        .zip(allowed)
        .filter(|(l, &a)| a && l.is_finite())
        .map(|(l, _)| *l)
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return Vec::new();
    }
    let weights: Vec<f32> = logits
        .iter()
        .zip(allowed)
        .map(|(l, &a)| {
            if a && l.is_finite() {
                (l - max).exp()
            } else {
                0.0
            }
        })
        .collect();
    let z: f32 = weights.iter().sum();
    weights
        .iter()
        .enumerate()
        .filter(|(_, &w)| w > 0.0)
        .filter_map(|(k, w)| geometry.centre(k).map(|c| (c, w / z)))
        .collect()
}

/// Picks an index among `allowed` from `logits`; returns it and its log-probability under the
/// untempered, masked distribution.
fn choose(
    logits: &[f32],
    allowed: &[bool],
    sampling: Sampling,
    rng: &mut XorShift,
) -> (usize, f32) {
    let idx: Vec<usize> = (0..logits.len()).filter(|&i| allowed[i]).collect();
    let idx = if idx.is_empty() {
        (0..logits.len()).collect()
    } else {
        idx
    };
    let val = |i: usize| {
        if logits[i].is_finite() {
            logits[i]
        } else {
            -1e30
        }
    };
    let max = idx
        .iter()
        .map(|&i| val(i))
        .fold(f32::NEG_INFINITY, f32::max);
    let lse = max + idx.iter().map(|&i| (val(i) - max).exp()).sum::<f32>().ln();
    let pick = match sampling {
        Sampling::Greedy => *idx
            .iter()
            .max_by(|&&a, &&b| val(a).total_cmp(&val(b)).then(b.cmp(&a)))
            .expect("non-empty"),
        Sampling::Sample {
            temperature, top_p, ..
        } => {
            let t = temperature.max(1e-4);
            let mut probs: Vec<(usize, f32)> = idx
                .iter()
                .map(|&i| (i, ((val(i) - max) / t).exp()))
                .collect();
            let z: f32 = probs.iter().map(|p| p.1).sum();
            probs.iter_mut().for_each(|p| p.1 /= z);
            probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut keep = 0;
            let mut cum = 0.0;
            for p in &probs {
                keep += 1;
                cum += p.1;
                if cum >= top_p.clamp(1e-6, 1.0) {
                    break;
                }
            }
            let kept = &probs[..keep];
            let mut u = rng.uniform() as f32 * kept.iter().map(|p| p.1).sum::<f32>();
            let mut chosen = kept[keep - 1].0;
            for p in kept {
                if u < p.1 {
                    chosen = p.0;
                    break;
                }
                u -= p.1;
            }
            chosen
        }
    };
    (pick, val(pick) - lse)
}

struct Seq<'a> {
    item: &'a DecodeItem<'a>,
    cons: Constraints,
    geometry: PointerGeometry,
    rng: XorShift,
    ids: Vec<u32>,
    slot_mask: Vec<f32>,
    slot_index: Vec<u32>,
    slot_geo: Vec<[f32; 4]>,
    tokens: Vec<Token>,
    steps: Vec<StepLogProb>,
    first_pointer: Vec<(Point, f32)>,
}

enum Choice {
    Sym(Sym, f32),
    Pointer {
        patch: usize,
        point: bool,
        logprob: f32,
    },
}

impl EditingModel {
    /// Decodes a batch; returns the sequences and the encoder and decoder times in ms.
    pub(crate) fn decode_items(&self, items: &[DecodeItem]) -> Result<(Vec<Decoded>, f64, f64)> {
        let cfg = self.config();
        let vocab = self.vocab();
        let dev = self.device();
        let (b, n, pd) = (items.len(), cfg.num_patches(), cfg.patch_dim());
        let t0 = Instant::now();
        let mut patches = Vec::with_capacity(b * n * pd);
        let mut text = Vec::with_capacity(b * cfg.text_len());
        for it in items {
            patches.extend_from_slice(&it.prepared.patches);
            text.extend_from_slice(&it.text);
        }
        let patches = Tensor::from_vec(patches, (b, n, pd), dev)?;
        let text = Tensor::from_vec(text, (b, cfg.text_len()), dev)?;
        let memory = self.encoder().forward(&patches, &text, true)?;
        let st = self.decoder().prepare(&memory)?;
        // Make the encoder's time its own (candle is eager on the CPU; this also syncs GPUs).
        let _ = st
            .image_flat
            .narrow(0, 0, 1)?
            .sum_all()?
            .to_scalar::<f32>()?;
        let encode_ms = t0.elapsed().as_secs_f64() * 1e3;

        let t1 = Instant::now();
        let mut seqs: Vec<Seq> = items
            .iter()
            .map(|it| {
                let seed = match it.options.sampling {
                    Sampling::Sample { seed, .. } => seed,
                    Sampling::Greedy => 0,
                };
                Seq {
                    item: it,
                    cons: Constraints::new(it.original.0, it.original.1, it.options.max_ops),
                    geometry: PointerGeometry::new(cfg, &it.prepared.letterbox, &it.prepared.frame),
                    rng: XorShift::new(seed),
                    ids: vec![vocab.id(Sym::Bos)],
                    slot_mask: vec![0.0],
                    slot_index: vec![0],
                    slot_geo: vec![[0.0; 4]],
                    tokens: Vec::new(),
                    steps: Vec::new(),
                    first_pointer: Vec::new(),
                }
            })
            .collect();
        for (bi, s) in seqs.iter_mut().enumerate() {
            s.slot_index[0] = (bi * n) as u32;
        }
        let pad = vocab.id(Sym::Pad);
        for _ in 1..cfg.max_steps {
            if seqs.iter().all(|s| s.cons.is_done()) {
                break;
            }
            let t = seqs[0].ids.len();
            let (mut ids, mut sm, mut si, mut sg) = (
                Vec::<u32>::new(),
                Vec::<f32>::new(),
                Vec::<u32>::new(),
                Vec::<f32>::new(),
            );
            for s in &seqs {
                ids.extend_from_slice(&s.ids);
                sm.extend_from_slice(&s.slot_mask);
                si.extend_from_slice(&s.slot_index);
                sg.extend(s.slot_geo.iter().flatten());
            }
            let inp = crate::decoder::DecoderInput {
                ids: Tensor::from_vec(ids, (b, t), dev)?,
                slot_mask: Tensor::from_vec(sm, (b, t), dev)?,
                slot_index: Tensor::from_vec(si, (b, t), dev)?,
                slot_geo: Tensor::from_vec(sg, (b, t, 4), dev)?,
            };
            let h = self
                .decoder()
                .hidden(&inp, &st, true)?
                .narrow(1, t - 1, 1)?;
            let tok = self
                .decoder()
                .token_logits(&h)?
                .squeeze(1)?
                .to_vec2::<f32>()?;
            let ptr = self
                .decoder()
                .pointer_logits(&h, &st)?
                .squeeze(1)?
                .to_vec2::<f32>()?;
            let mut choices: Vec<Option<Choice>> = Vec::with_capacity(b);
            for (bi, s) in seqs.iter_mut().enumerate() {
                let sampling = s.item.options.sampling;
                choices.push(match s.cons.step(vocab, &s.geometry) {
                    StepMask::Done => None,
                    StepMask::Syms(mask) => {
                        let (id, lp) = choose(&tok[bi], &mask, sampling, &mut s.rng);
                        Some(Choice::Sym(
                            vocab.sym(id as u32).expect("masked to the vocabulary"),
                            lp,
                        ))
                    }
                    StepMask::Pointer { point, mut patches } => {
                        // The first pointer places the program (a crop's centre, a path's
                        // start): that is the choice an alternative plan must move.
                        if s.steps.iter().all(|st| st.patch.is_none()) {
                            s.geometry.exclude(&mut patches, s.item.avoid);
                            s.first_pointer = pointer_map(&ptr[bi], &patches, &s.geometry);
                        }
                        let (k, lp) = choose(&ptr[bi], &patches, sampling, &mut s.rng);
                        Some(Choice::Pointer {
                            patch: k,
                            point,
                            logprob: lp,
                        })
                    }
                });
            }
            let raw = if choices
                .iter()
                .any(|c| matches!(c, Some(Choice::Pointer { .. })))
            {
                let idx: Vec<u32> = choices
                    .iter()
                    .enumerate()
                    .map(|(bi, c)| match c {
                        Some(Choice::Pointer { patch, .. }) => (bi * n + patch) as u32,
                        _ => (bi * n) as u32,
                    })
                    .collect();
                let feat = st
                    .image_flat
                    .index_select(&Tensor::from_vec(idx, b, dev)?, 0)?
                    .unsqueeze(1)?;
                self.decoder()
                    .regress(&h, &feat)?
                    .squeeze(1)?
                    .to_vec2::<f32>()?
            } else {
                Vec::new()
            };
            for (bi, (s, c)) in seqs.iter_mut().zip(choices).enumerate() {
                let pr = s.item.prepared;
                let (token, lp, patch) = match c {
                    None => {
                        s.ids.push(pad);
                        s.slot_mask.push(0.0);
                        s.slot_index.push((bi * n) as u32);
                        s.slot_geo.push([0.0; 4]);
                        continue;
                    }
                    Some(Choice::Sym(sym, lp)) => (Token::Sym(sym), lp, None),
                    Some(Choice::Pointer {
                        patch,
                        point,
                        logprob,
                    }) => {
                        let r = &raw[bi];
                        let (mut lw, mut lh) = (r[2], r[3]);
                        let std = s.item.options.size_std;
                        let sampled = matches!(s.item.options.sampling, Sampling::Sample { .. });
                        if sampled && std > 0.0 && !point {
                            lw += std * s.rng.normal() as f32;
                            lh += std * s.rng.normal() as f32;
                        }
                        let clip = pr.frame.transform.rect_to_view(&s.cons.tracker().visible());
                        let tok = decode_slot(
                            patch,
                            [r[0], r[1], lw, lh],
                            point,
                            &pr.letterbox,
                            &pr.frame,
                            cfg,
                            &clip,
                        );
                        (tok, logprob, Some(patch))
                    }
                };
                // The next input: the symbol, or the slot re-derived from the final token so
                // decoding feeds back exactly what training's teacher forcing feeds.
                match token {
                    Token::Sym(sym) => {
                        s.ids.push(vocab.id(sym));
                        s.slot_mask.push(0.0);
                        s.slot_index.push((bi * n) as u32);
                        s.slot_geo.push([0.0; 4]);
                    }
                    Token::Box(_) | Token::Point(_) => {
                        let (k, geo) = encode_slot(&token, &pr.letterbox, &pr.frame, cfg)
                            .expect("coordinate tokens have a slot");
                        let slot = if matches!(token, Token::Point(_)) {
                            Sym::SlotPoint
                        } else {
                            Sym::SlotBox
                        };
                        s.ids.push(vocab.id(slot));
                        s.slot_mask.push(1.0);
                        s.slot_index.push((bi * n + k) as u32);
                        s.slot_geo.push(geo);
                    }
                }
                s.cons
                    .push(token, &pr.frame, vocab)
                    .expect("the mask only allows what the grammar accepts");
                s.tokens.push(token);
                s.steps.push(StepLogProb {
                    token,
                    logprob: lp,
                    patch,
                });
            }
        }
        let decode_ms = t1.elapsed().as_secs_f64() * 1e3;
        let out = seqs
            .into_iter()
            .map(|mut s| {
                if !s.cons.is_done() {
                    // Unreachable with a valid config (max_steps covers the longest program);
                    // end the program cleanly rather than fail.
                    s.tokens
                        .truncate(s.tokens.len() - s.cons.grammar().pending_len());
                    s.tokens.push(Token::Sym(Sym::End));
                }
                Decoded {
                    tokens: s.tokens,
                    steps: s.steps,
                    first_pointer: s.first_pointer,
                }
            })
            .collect();
        Ok((out, encode_ms, decode_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_respects_masks_and_top_p() {
        let logits = [5.0, 1.0, 0.0, 4.0];
        let mut rng = XorShift::new(1);
        let (i, lp) = choose(
            &logits,
            &[false, true, true, true],
            Sampling::Greedy,
            &mut rng,
        );
        assert_eq!(i, 3);
        assert!(lp < 0.0 && lp > -1.0);
        for _ in 0..200 {
            let (i, _) = choose(
                &logits,
                &[false, true, true, true],
                Sampling::Sample {
                    temperature: 1.0,
                    top_p: 0.5,
                    seed: 0,
                },
                &mut rng,
            );
            assert_eq!(i, 3, "top-p 0.5 keeps only the dominant choice");
            let (i, _) = choose(
                &logits,
                &[false, true, true, true],
                Sampling::Sample {
                    temperature: 5.0,
                    top_p: 1.0,
                    seed: 0,
                },
                &mut rng,
            );
            assert!(i != 0);
        }
    }
}
