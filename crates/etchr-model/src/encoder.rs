//! The joint encoder: image patches and the bytes of the question and the reasoning context,
//! embedded into one sequence and mixed by a few pre-norm transformer layers. A joint encoder
//! (rather than cross-attention) lets every image token see the question from the first
//! layer, which is what the pointer head needs to pick question-dependent regions.

use crate::config::{ModelConfig, TextAlign};
use crate::init::{Init, Params};
use crate::nn::{AttnMask, EncoderBlock, LayerNorm, Linear, NEG};
use crate::stem::ConvStem;
use candle_core::{DType, Result, Tensor};
use std::sync::Arc;

/// The byte id for padding (bytes are 0..=255).
pub const BYTE_PAD: u32 = 256;

/// The text ids the model reads: the question's first bytes, then the context's *last* bytes
/// (the newest reasoning matters most in a progressive loop), each padded to its fixed length
/// and cut into tokens as `cfg.text_align` says.
pub fn text_ids(cfg: &ModelConfig, question: &str, context: &str) -> Vec<u32> {
    let mut ids = Vec::with_capacity(cfg.text_len());
    match cfg.text_align {
        TextAlign::Bytes => {
            let q = question.trim().as_bytes();
            ids.extend(q.iter().take(cfg.question_bytes).map(|&b| b as u32));
            ids.resize(cfg.question_bytes, BYTE_PAD);
            let c = context.trim().as_bytes();
            let tail = &c[c.len().saturating_sub(cfg.context_bytes)..];
            ids.extend(tail.iter().map(|&b| b as u32));
        }
        TextAlign::Words => {
            let k = cfg.text_patch;
            let q = word_tokens(question, k);
            let keep = (cfg.question_bytes / k).min(q.len());
            q[..keep].iter().for_each(|t| ids.extend_from_slice(t));
            ids.resize(cfg.question_bytes, BYTE_PAD);
            let c = word_tokens(context, k);
            let from = c.len().saturating_sub(cfg.context_bytes / k);
            c[from..].iter().for_each(|t| ids.extend_from_slice(t));
        }
    }
    ids.resize(cfg.text_bytes(), BYTE_PAD);
    if cfg.cue_words > 0 {
        ids.extend(
            question_words(question)
                .take(cfg.cue_words)
                .map(|w| word_bucket(&w, cfg.word_buckets)),
        );
        ids.resize(cfg.text_len(), cfg.word_buckets as u32);
    }
    ids
}

/// The question's words for the cue head: runs of ASCII letters, lowercased ("Brown" and
/// "brown" are one word; numbers and punctuation carry no visual cue).
fn question_words(question: &str) -> impl Iterator<Item = String> + '_ {
    question
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
}

/// A word's bucket: FNV-1a of its bytes, modulo `buckets` (the same on every machine).
fn word_bucket(word: &str, buckets: usize) -> u32 {
    let h = word.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (h % buckets as u64) as u32
}

/// Word-aligned tokens of `k` byte ids each ([`TextAlign::Words`]): a run of letters and digits
/// (non-ASCII bytes count as letters, so UTF-8 words stay whole) in `k`-byte pieces, the last
/// padded; any other non-space byte alone; whitespace dropped.
fn word_tokens(text: &str, k: usize) -> Vec<Vec<u32>> {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80;
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let end = if is_word(b) {
            i + bytes[i..].iter().take_while(|&&c| is_word(c)).count()
        } else {
            i + 1
        };
        if !b.is_ascii_whitespace() {
            for piece in bytes[i..end].chunks(k) {
                let mut t: Vec<u32> = piece.iter().map(|&c| c as u32).collect();
                t.resize(k, BYTE_PAD);
                tokens.push(t);
            }
        }
        i = end;
    }
    tokens
}

/// The encoder's output.
#[derive(Debug, Clone)]
pub struct Memory {
    /// `[B, M, d]`: patches first, then text.
    pub all: Tensor,
    /// Additive key mask hiding text padding (`[B, 1, 1, M]`).
    pub mask: AttnMask,
    pub num_patches: usize,
    /// `[B, d]` mean embedding of the question's hashed words (`ModelConfig::cue_words`).
    pub question_words: Option<Tensor>,
    /// `[B, N, d]` the image tokens as they entered the encoder, before position embeddings
    /// (`ModelConfig::cue_direct`).
    pub image_embedding: Option<Tensor>,
}

impl Memory {
    /// `[B, N, d]`: the image tokens the pointer head points into.
    pub fn image(&self) -> Result<Tensor> {
        self.all.narrow(1, 0, self.num_patches)
    }
}

#[derive(Debug, Clone)]
pub struct Encoder {
    patch: Linear,
    /// `[9·d → d]` over each patch's 3 × 3 neighbourhood of patch embeddings
    /// (`ModelConfig::neighbour_mix`).
    neighbour: Option<Linear>,
    /// Convolutional features added to each patch token (`ModelConfig::conv_stem`).
    stem: Option<ConvStem>,
    grid: usize,
    image_pos: Tensor,
    bytes: Tensor,
    /// Mixes a text token's concatenated byte embeddings.
    text_mix: Linear,
    text_pos: Tensor,
    /// Segment (modality) embeddings: image, question, context.
    segment: Tensor,
    blocks: Vec<EncoderBlock>,
    ln_f: LayerNorm,
    question_len: usize,
    context_len: usize,
    text_patch: usize,
    /// `[word_buckets + 1, d]`, the last row for padding (`ModelConfig::cue_words`).
    words: Option<Tensor>,
    cue_words: usize,
    /// Keep the pre-encoder image tokens in [`Memory`] (`ModelConfig::cue_direct`).
    keep_embedding: bool,
}

impl Encoder {
    pub fn new(p: &mut Params, cfg: &ModelConfig) -> crate::error::Result<Self> {
        let d = cfg.d_model;
        let emb = Init::Normal(0.02);
        let patch = Linear::new(p, "enc.patch", cfg.patch_dim(), d, true, 1.0)?;
        // Gain 0: zero weights, so a grown model starts as the one it grew from.
        let neighbour = cfg
            .neighbour_mix
            .then(|| Linear::new(p, "enc.neighbour", 9 * d, d, false, 0.0))
            .transpose()?;
        let stem = (cfg.conv_stem > 0)
            .then(|| ConvStem::new(p, cfg))
            .transpose()?;
        let image_pos = p.get("enc.image_pos", &[cfg.num_patches(), d], emb)?;
        let k = cfg.text_patch;
        let bytes = p.get(
            "enc.bytes",
            &[BYTE_PAD as usize + 1, d / k],
            Init::Normal(1.0),
        )?;
        let text_mix = Linear::new(p, "enc.text_mix", d, d, true, 1.0)?;
        let text_pos = p.get(
            "enc.text_pos",
            &[cfg.question_bytes.max(cfg.context_bytes) / k, d],
            emb,
        )?;
        let segment = p.get("enc.segment", &[3, d], emb)?;
        let blocks = (0..cfg.encoder_layers)
            .map(|i| EncoderBlock::new(p, &format!("enc.block{i}"), cfg))
            .collect::<crate::error::Result<Vec<_>>>()?;
        Ok(Self {
            patch,
            neighbour,
            stem,
            grid: cfg.grid(),
            image_pos,
            bytes,
            text_mix,
            text_pos,
            segment,
            blocks,
            ln_f: LayerNorm::new(p, "enc.ln_f", d)?,
            question_len: cfg.question_bytes / k,
            context_len: cfg.context_bytes / k,
            text_patch: k,
            words: (cfg.cue_words > 0)
                .then(|| p.get("enc.words", &[cfg.word_buckets + 1, d], Init::Normal(1.0)))
                .transpose()?,
            cue_words: cfg.cue_words,
            keep_embedding: cfg.cue_direct,
        })
    }

    /// `patches`: `[B, N, patch_dim]` f32; `text`: `[B, L]` u32 ids from [`text_ids`].
    pub fn forward(&self, patches: &Tensor, text: &Tensor, fused: bool) -> Result<Memory> {
        let (b, n, _) = patches.dims3()?;
        let (_, all) = text.dims2()?;
        let lb = all - self.cue_words;
        let question_words = match &self.words {
            Some(table) => Some(mean_word(table, &text.narrow(1, lb, self.cue_words)?)?),
            None => None,
        };
        let text = &text.narrow(1, 0, lb)?;
        let k = self.text_patch;
        let l = lb / k;
        let d = self.image_pos.dim(1)?;
        let seg = |i: usize| self.segment.narrow(0, i, 1);
        let mut img = self.patch.forward(patches)?;
        if let Some(stem) = &self.stem {
            img = (&img + stem.forward(patches)?)?;
        }
        if let Some(mix) = &self.neighbour {
            img = (&img + mix.forward(&neighbourhoods(&img, self.grid)?)?)?;
        }
        let image_embedding = self.keep_embedding.then(|| img.clone());
        let img = img.broadcast_add(&self.image_pos.broadcast_add(&seg(0)?)?)?;
        let text_add = Tensor::cat(
            &[
                self.text_pos
                    .narrow(0, 0, self.question_len)?
                    .broadcast_add(&seg(1)?)?,
                self.text_pos
                    .narrow(0, 0, self.context_len)?
                    .broadcast_add(&seg(2)?)?,
            ],
            0,
        )?;
        // Byte embeddings of d/k values, k per token, concatenated by the reshape.
        let txt = self
            .bytes
            .index_select(&text.flatten_all()?, 0)?
            .reshape((b, l, d))?;
        let txt = self.text_mix.forward(&txt)?.broadcast_add(&text_add)?;
        let mut x = Tensor::cat(&[img, txt], 1)?;
        let mut keys = Vec::with_capacity(b * (n + l));
        for row in text.to_dtype(DType::U32)?.to_vec2::<u32>()? {
            keys.extend(std::iter::repeat_n(0f32, n));
            // A token is padding when all its bytes are.
            keys.extend(row.chunks(k).map(|c| {
                if c.iter().all(|&id| id == BYTE_PAD) {
                    NEG as f32
                } else {
                    0.0
                }
            }));
        }
        let mask = AttnMask {
            tensor: Tensor::from_vec(keys.clone(), (b, 1, 1, n + l), patches.device())?,
            keys: Some(Arc::new(keys)),
        };
        for block in &self.blocks {
            x = block.forward(&x, Some(&mask), fused)?;
        }
        Ok(Memory {
            all: self.ln_f.forward(&x, fused)?,
            mask,
            num_patches: n,
            question_words,
            image_embedding,
        })
    }
}

/// `[B, d]`: the mean embedding of each row's word ids `[B, W]`, padding (the table's last
/// row) left out; zeros for a question without words. Tensor ops only: no copy to the host.
fn mean_word(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (b, w) = ids.dims2()?;
    let pad = (table.dim(0)? - 1) as u32;
    let keep = ids.ne(pad)?.to_dtype(DType::F32)?;
    let count = keep.sum_keepdim(1)?.maximum(1f32)?;
    let emb = table
        .index_select(&ids.flatten_all()?, 0)?
        .reshape((b, w, ()))?
        .broadcast_mul(&keep.unsqueeze(2)?)?;
    emb.sum(1)?.broadcast_div(&count)
}

/// `[B, g·g, d]` patch features → `[B, g·g, 9·d]`: each patch's 3 × 3 neighbourhood on the
/// grid (row-major offsets, the patch itself in the middle), zeros beyond the border. Built
/// from padding and slicing, which have backward passes.
pub(crate) fn neighbourhoods(x: &Tensor, g: usize) -> Result<Tensor> {
    let (b, n, d) = x.dims3()?;
    let grid = x.reshape((b, g, g, d))?;
    let padded = grid.pad_with_zeros(1, 1, 1)?.pad_with_zeros(2, 1, 1)?;
    let mut parts = Vec::with_capacity(9);
    for dy in 0..3 {
        for dx in 0..3 {
            parts.push(padded.narrow(1, dy, g)?.narrow(2, dx, g)?);
        }
    }
    Tensor::cat(&parts, 3)?.reshape((b, n, 9 * d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbourhoods_hold_the_3x3_patches_around_each_patch() {
        // A 3 × 3 grid whose patch k has the single feature k + 1.
        let x = Tensor::arange(1f32, 10.0, &candle_core::Device::Cpu)
            .unwrap()
            .reshape((1, 9, 1))
            .unwrap();
        let n = neighbourhoods(&x, 3).unwrap().to_vec3::<f32>().unwrap();
        // The centre patch sees the whole grid; the top-left corner sees zeros above and left.
        assert_eq!(n[0][4], [1., 2., 3., 4., 5., 6., 7., 8., 9.]);
        assert_eq!(n[0][0], [0., 0., 0., 0., 1., 2., 0., 4., 5.]);
        assert_eq!(n[0][8], [5., 6., 0., 8., 9., 0., 0., 0., 0.]);
    }

    #[test]
    fn text_ids_keep_the_question_head_and_the_context_tail() {
        let cfg = ModelConfig::tiny(); // 24 + 16
        let ids = text_ids(
            &cfg,
            "  what is here?  ",
            &"x".repeat(100).replace("xxxx", "ab"),
        );
        assert_eq!(ids.len(), 40);
        assert_eq!(ids[0], b'w' as u32);
        assert_eq!(ids[14], BYTE_PAD);
        assert_eq!(ids[24..26], [b'a' as u32, b'b' as u32]);
        let short = text_ids(&cfg, "", "");
        assert!(short.iter().all(|&i| i == BYTE_PAD));
    }

    #[test]
    fn cue_words_are_hashed_lowercase_letter_runs_after_the_text() {
        let cfg = ModelConfig {
            cue_head: true,
            cue_words: 4,
            word_buckets: 1000,
            ..ModelConfig::tiny()
        };
        let bytes = cfg.text_bytes();
        let a = text_ids(&cfg, "The BROWN triangle's tag \"Shaft 54\"?", "");
        assert_eq!(a.len(), bytes + 4);
        let b = text_ids(&cfg, "the brown triangle", "");
        // Case and punctuation do not matter; numbers are not words; the first four words.
        assert_eq!(a[bytes..bytes + 3], b[bytes..bytes + 3]);
        assert_eq!(a[bytes + 3], word_bucket("s", 1000));
        assert!(a[bytes..].iter().all(|&id| id < 1000));
        // Fewer words than slots: padded with the pad row (`word_buckets`).
        assert_eq!(b[bytes + 3], 1000);
        assert!(text_ids(&cfg, "", "")[bytes..].iter().all(|&id| id == 1000));
        assert_ne!(word_bucket("brown", 4096), word_bucket("green", 4096));
    }

    fn ids(s: &str) -> Vec<u32> {
        s.bytes()
            .map(|b| if b == b'_' { BYTE_PAD } else { b as u32 })
            .collect()
    }

    #[test]
    fn word_aligned_tokens_start_at_words_wherever_they_fall() {
        let cfg = ModelConfig {
            text_align: TextAlign::Words,
            ..ModelConfig::tiny() // 24 question bytes (6 tokens) + 16 context bytes (4)
        };
        // The same word is the same token at any offset; long words split into 4-byte pieces.
        let a = text_ids(&cfg, "the red star?", "");
        assert_eq!(a[..24], ids("the_red_star?___________"));
        let b = text_ids(&cfg, "  a red  triangle", "");
        assert_eq!(b[..24], ids("a___red_triangle________"));
        // Questions keep their head, contexts their tail, both by whole tokens.
        let c = text_ids(
            &cfg,
            "one two three four five six seven",
            "(1200, 34) then 56789.",
        );
        assert_eq!(c, ids("one_two_three___fourfivethen56789___.___"));
        let empty = text_ids(&cfg, "", "  ");
        assert!(empty.iter().all(|&i| i == BYTE_PAD));
    }
}
