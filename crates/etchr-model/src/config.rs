//! Hyper-parameters, stored as `config.json` beside `model.safetensors`.

use crate::error::{ModelError, Result};
use serde::{Deserialize, Serialize};

/// The MLP non-linearity. ReLU is the default because its backward pass is three cheap
/// element-wise ops, while candle's GELU backward is about ten (it dominates a CPU step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Relu,
    Gelu,
}

/// Where text tokens start. Both read the same bytes through the same byte embeddings; they
/// differ only in where one `text_patch`-byte token ends and the next begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TextAlign {
    /// Fixed chunks of `text_patch` bytes wherever they fall: a word lands in a different
    /// chunk layout at every offset, so the encoder must learn each word several times over.
    #[default]
    Bytes,
    /// Word-aligned: every word (a run of letters and digits) starts a token and is cut into
    /// `text_patch`-byte pieces, the last one padded; every other non-space byte is a token
    /// of its own; whitespace is dropped. "red" is then always the same token, which is what
    /// binding a question's colour or shape to the image needs.
    Words,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Bumped when the architecture changes incompatibly.
    pub format_version: u32,
    /// Side of the square, letterboxed model input, in pixels.
    pub image_size: usize,
    /// Side of one square patch; `image_size / patch_size` patches per side.
    pub patch_size: usize,
    pub d_model: usize,
    pub heads: usize,
    /// MLP hidden width as a multiple of `d_model`.
    pub mlp_ratio: usize,
    /// Joint encoder layers over [image patches; question bytes; context bytes].
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    /// The question's first bytes that the model reads.
    pub question_bytes: usize,
    /// The reasoning context's *last* bytes that the model reads (the newest reasoning).
    pub context_bytes: usize,
    /// Bytes per text token: `text_patch` byte embeddings of `d_model / text_patch` values are
    /// concatenated and mixed by one matmul (a patch embedding for text), so the encoder reads
    /// 4× more text for the same sequence length. Attention cost grows with the square of the
    /// sequence, so this is what lets the model read the reasoning's coordinates at all.
    pub text_patch: usize,
    /// Decoder positions, BOS included; the grammar ends every program before this.
    pub max_steps: usize,
    /// Zoom factors are log-spaced bins over `[zoom_min, zoom_max]`.
    pub zoom_bins: usize,
    pub zoom_min: f64,
    pub zoom_max: f64,
    /// Largest `jigsaw_solve` rows or cols.
    pub max_grid: u32,
    #[serde(default)]
    pub activation: Activation,
    /// How the question and the context are cut into tokens (`bytes` when absent, the layout
    /// of the first shipped weights).
    #[serde(default)]
    pub text_align: TextAlign,
    /// Each patch token also gets a learned linear map of its 3 × 3 neighbourhood's patch
    /// embeddings (a convolution over the patch grid, before the first layer). A ViT's tokens
    /// otherwise learn what surrounds them only through attention, which a small model trained
    /// on little data is slow to discover: a tag's token cannot tell that a brown triangle sits
    /// just above it. Zero-initialised, so switching it on for trained weights
    /// ([`crate::EditingModel::load_grown`]) starts from the same function. `false` when absent
    /// (the layout of the first shipped weights).
    #[serde(default)]
    pub neighbour_mix: bool,
    /// A per-patch *cue score* read from the encoder's image tokens (which have seen the
    /// question): how well the patch fits what the question describes ("the brown triangle").
    /// It is added to every pointer choice's logits, and training supervises it densely with
    /// the objects that fit the question's visual cue, where the generator knows them
    /// (`TrainExample::cue_regions`): hundreds of labelled patches per example instead of the
    /// pointer's one. Zero-initialised, so growing trained weights into it starts from the same
    /// function. `false` when absent.
    #[serde(default)]
    pub cue_head: bool,
    /// The cue head also reads this many of the question's words (0: none), each one token
    /// hashed into `word_buckets` learned embeddings, and scores every patch by a bilinear form
    /// of the patch's token and the words' mean: "brown" meets brown patches in one product
    /// instead of through layers of attention over byte chunks that cut "brown" differently at
    /// every offset. Needs `cue_head`; the word part is zero-initialised too.
    #[serde(default)]
    pub cue_words: usize,
    /// The cue head's word part also scores the image *before* the encoder (the patch
    /// embedding, plus the `conv_stem` features): a bilinear form of those and the question
    /// words, so a colour word can meet the pixels that carry the colour directly, not only
    /// after four layers of attention have mixed them. Needs `cue_words`; zero-initialised
    /// word side. `false` when absent.
    #[serde(default)]
    pub cue_direct: bool,
    /// Hash buckets of the cue head's word embeddings.
    #[serde(default = "default_word_buckets")]
    pub word_buckets: usize,
    /// Channels of a small convolutional stem beside the linear patch embedding (0: none;
    /// [`crate::stem`]): 4 px cells, a ReLU, one 3 × 3 convolution over the cell grid, each
    /// patch's cells mapped to one token and added to its patch embedding. Colour and shape
    /// are then features a patch token has, not ones the encoder must assemble from a linear
    /// mix of 768 pixel values. Zero-initialised output; 0 when absent.
    #[serde(default)]
    pub conv_stem: usize,
}

fn default_word_buckets() -> usize {
    4096
}

impl Default for ModelConfig {
    /// The shipped size: 256 px input in 16 px patches (256 image tokens), 96 + 192 text bytes
    /// in 4-byte tokens (72 tokens), d = 128, four joint encoder layers and two decoder layers
    /// (about 1.6 M parameters), sized for the 50 ms plan budget on two CPU cores.
    fn default() -> Self {
        Self {
            format_version: 1,
            image_size: 256,
            patch_size: 16,
            d_model: 128,
            heads: 4,
            mlp_ratio: 4,
            encoder_layers: 4,
            decoder_layers: 2,
            question_bytes: 96,
            context_bytes: 192,
            text_patch: 4,
            max_steps: 24,
            zoom_bins: 48,
            zoom_min: 0.25,
            zoom_max: 16.0,
            max_grid: 8,
            activation: Activation::Relu,
            text_align: TextAlign::Bytes,
            neighbour_mix: false,
            cue_head: false,
            cue_words: 0,
            word_buckets: default_word_buckets(),
            cue_direct: false,
            conv_stem: 0,
        }
    }
}

impl ModelConfig {
    /// A tiny model for tests: 64 px input (16 patches), d = 32, one layer each.
    pub fn tiny() -> Self {
        Self {
            image_size: 64,
            patch_size: 16,
            d_model: 32,
            heads: 2,
            mlp_ratio: 2,
            encoder_layers: 1,
            decoder_layers: 1,
            question_bytes: 24,
            context_bytes: 16,
            ..Self::default()
        }
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    pub fn num_patches(&self) -> usize {
        self.grid() * self.grid()
    }

    /// Values per patch (RGB).
    pub fn patch_dim(&self) -> usize {
        self.patch_size * self.patch_size * 3
    }

    /// Text bytes the encoder reads (question then context).
    pub fn text_bytes(&self) -> usize {
        self.question_bytes + self.context_bytes
    }

    /// Text ids per example ([`crate::encoder::text_ids`]): the text bytes, then the cue
    /// head's hashed question words.
    pub fn text_len(&self) -> usize {
        self.text_bytes() + self.cue_words
    }

    /// Text tokens in the encoder.
    pub fn text_tokens(&self) -> usize {
        self.text_bytes() / self.text_patch
    }

    /// Encoder tokens: patches then text.
    pub fn memory_len(&self) -> usize {
        self.num_patches() + self.text_tokens()
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(ModelError::Weights(m));
        if self.format_version != 1 {
            return bad(format!(
                "format_version {} is not supported (expected 1)",
                self.format_version
            ));
        }
        if self.patch_size == 0
            || !self.image_size.is_multiple_of(self.patch_size)
            || self.grid() == 0
        {
            return bad(format!(
                "image_size {} must be a positive multiple of patch_size {}",
                self.image_size, self.patch_size
            ));
        }
        if self.heads == 0 || !self.d_model.is_multiple_of(self.heads) {
            return bad(format!(
                "d_model {} must be a multiple of heads {}",
                self.d_model, self.heads
            ));
        }
        if self.mlp_ratio == 0 || self.encoder_layers == 0 || self.decoder_layers == 0 {
            return bad("mlp_ratio and layer counts must be positive".into());
        }
        if self.question_bytes == 0 || self.context_bytes == 0 {
            return bad("question_bytes and context_bytes must be positive".into());
        }
        if self.text_patch == 0
            || !self.question_bytes.is_multiple_of(self.text_patch)
            || !self.context_bytes.is_multiple_of(self.text_patch)
            || !self.d_model.is_multiple_of(self.text_patch)
        {
            return bad(format!(
                "text_patch {} must divide question_bytes, context_bytes and d_model",
                self.text_patch
            ));
        }
        if self.cue_words > 0 && (!self.cue_head || self.word_buckets == 0) {
            return bad("cue_words needs cue_head and a positive word_buckets".into());
        }
        if self.cue_direct && self.cue_words == 0 {
            return bad("cue_direct needs cue_words".into());
        }
        if self.conv_stem > 0 && !self.patch_size.is_multiple_of(crate::stem::STEM_CELL) {
            return bad(format!(
                "conv_stem needs a patch_size that is a multiple of {} (got {})",
                crate::stem::STEM_CELL,
                self.patch_size
            ));
        }
        if self.max_steps < crate::grammar::LONGEST_PROGRAM + 1 {
            return bad(format!(
                "max_steps {} is under the longest program the grammar allows ({} tokens + BOS)",
                self.max_steps,
                crate::grammar::LONGEST_PROGRAM
            ));
        }
        if self.zoom_bins < 2
            || !(self.zoom_min > 0.0 && self.zoom_max > self.zoom_min && self.zoom_max.is_finite())
        {
            return bad("zoom bins need zoom_bins >= 2 and 0 < zoom_min < zoom_max".into());
        }
        if !(1..=8).contains(&self.max_grid) {
            return bad("max_grid must be in 1..=8 (jigsaw_solve allows 64 cells)".into());
        }
        Ok(())
    }
}
