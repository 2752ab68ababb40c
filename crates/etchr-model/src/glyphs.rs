//! The editing model's reading: a glyph classifier over the glyphs `etchr_ops::render`
//! cuts from a text line ([`line_glyphs`]), and the search for a quoted key among the lines
//! it reads ([`find_text`]).
//!
//! The editor sees the image at full resolution, where a 10 px code is plain; the upstream
//! sees it shrunk to about 1024 px, where it is not. Reading the key lets the planner put the
//! one line that holds the answer in front of the upstream instead of every line. The
//! classifier is a small MLP (a glyph is a 16 × 16 bitmap plus four placement numbers), trained
//! by `etchr train glyphs` on lines the trainer renders; it shares nothing with the reader
//! emulator's OCR.

use crate::error::{ModelError, Result};
use crate::init::{Init, Params};
use crate::nn::log_softmax;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use etchr_ops::render::{line_glyphs_cut, Cut, Glyph, GLYPH_FEATURES};
use etchr_ops::{Rect, RgbImage};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A glyph classifier's directory holds the same two files as an editing model's.
pub use crate::model::{CONFIG_FILE as GLYPH_CONFIG_FILE, WEIGHTS_FILE as GLYPH_WEIGHTS_FILE};

/// The characters the shipped classifier tells apart.
pub const CHARSET: &str =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz:.,-%()/#&+";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlyphConfig {
    pub charset: String,
    pub hidden: usize,
}

impl Default for GlyphConfig {
    fn default() -> Self {
        Self {
            charset: CHARSET.into(),
            hidden: 256,
        }
    }
}

/// Two hidden ReLU layers over a glyph's features, logits over the charset.
pub struct GlyphClassifier {
    cfg: GlyphConfig,
    charset: Vec<char>,
    varmap: VarMap,
    layers: [(Tensor, Tensor); 3],
    device: Device,
}

impl GlyphClassifier {
    /// Freshly initialised weights; the same `seed` gives the same weights everywhere.
    pub fn new(cfg: GlyphConfig, seed: u64, device: &Device) -> Result<Self> {
        let charset: Vec<char> = cfg.charset.chars().collect();
        if charset.len() < 2 || cfg.hidden == 0 {
            return Err(ModelError::Weights(
                "a glyph classifier needs two characters and a hidden size".into(),
            ));
        }
        let varmap = VarMap::new();
        let mut p = Params::new(&varmap, seed, device);
        let dims = [GLYPH_FEATURES, cfg.hidden, cfg.hidden, charset.len()];
        let mut layer = |i: usize| -> Result<(Tensor, Tensor)> {
            let (d_in, d_out) = (dims[i], dims[i + 1]);
            let w = p.get(
                &format!("l{i}.weight"),
                &[d_in, d_out],
                Init::Normal((2.0 / d_in as f64).sqrt()),
            )?;
            let b = p.get(&format!("l{i}.bias"), &[d_out], Init::Zeros)?;
            Ok((w, b))
        };
        let layers = [layer(0)?, layer(1)?, layer(2)?];
        Ok(Self {
            cfg,
            charset,
            varmap,
            layers,
            device: device.clone(),
        })
    }

    /// Loads `config.json` and `model.safetensors` from their bytes.
    pub fn load_bytes(config_json: &[u8], weights: &[u8], device: &Device) -> Result<Self> {
        let cfg: GlyphConfig = serde_json::from_slice(config_json)
            .map_err(|e| ModelError::Weights(format!("glyph config.json: {e}")))?;
        let model = Self::new(cfg, 0, device)?;
        let tensors = candle_core::safetensors::load_buffer(weights, device)
            .map_err(|e| ModelError::Weights(format!("glyph safetensors: {e}")))?;
        let vars = model.varmap.data().lock().expect("varmap lock poisoned");
        for (name, var) in vars.iter() {
            let t = tensors
                .get(name)
                .ok_or_else(|| ModelError::Weights(format!("the glyph weights lack {name:?}")))?;
            if t.dims() != var.dims() {
                return Err(ModelError::Weights(format!(
                    "glyph {name:?} is {:?} in the weights but {:?} in the config",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        drop(vars);
        Ok(model)
    }

    /// Loads a directory holding the two files.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg = std::fs::read(dir.join(GLYPH_CONFIG_FILE))?;
        let weights = std::fs::read(dir.join(GLYPH_WEIGHTS_FILE))?;
        Self::load_bytes(&cfg, &weights, device)
    }

    /// Writes the two files into `dir`, the weights as `dtype`.
    pub fn save(&self, dir: impl AsRef<Path>, dtype: DType) -> Result<()> {
        crate::model::save_dir(dir.as_ref(), &self.cfg, &self.varmap, dtype)
    }

    pub fn config(&self) -> &GlyphConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The trainable variables.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    pub fn classes(&self) -> usize {
        self.charset.len()
    }

    /// Log-probabilities `[n, classes]` for features `[n, GLYPH_FEATURES]`.
    pub fn log_probs(&self, features: &Tensor) -> Result<Tensor> {
        let mut x = features.clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            x = x.matmul(w)?.broadcast_add(b)?;
            if i + 1 < self.layers.len() {
                x = x.relu()?;
            }
        }
        Ok(log_softmax(&x)?)
    }

    /// The most likely character of each glyph and its probability.
    pub fn classify(&self, glyphs: &[Glyph]) -> Result<Vec<(char, f32)>> {
        if glyphs.is_empty() {
            return Ok(Vec::new());
        }
        let flat: Vec<f32> = glyphs
            .iter()
            .flat_map(|g| g.features.iter().copied())
            .collect();
        let x = Tensor::from_vec(flat, (glyphs.len(), GLYPH_FEATURES), &self.device)?;
        let lp = self.log_probs(&x)?;
        let best = lp.argmax(1)?.to_vec1::<u32>()?;
        let top = lp.max(1)?.to_vec1::<f32>()?;
        Ok(best
            .into_iter()
            .zip(top)
            .map(|(i, l)| (self.charset[i as usize], l.exp()))
            .collect())
    }

    /// Reads each of `lines` (boxes of `img`, e.g. from `etchr_ops::render::text_lines`),
    /// classifying all their glyphs in one batch.
    pub fn read(&self, img: &RgbImage, lines: &[Rect]) -> Result<Vec<ReadLine>> {
        self.read_cut(img, lines, Cut::Halfway)
    }

    /// [`Self::read`] with the glyphs' ink cut at `cut`.
    pub fn read_cut(&self, img: &RgbImage, lines: &[Rect], cut: Cut) -> Result<Vec<ReadLine>> {
        let per_line: Vec<Vec<Glyph>> = lines
            .iter()
            .map(|&l| line_glyphs_cut(img, l, cut))
            .collect();
        let all: Vec<Glyph> = per_line.iter().flatten().cloned().collect();
        let mut classes = self.classify(&all)?.into_iter();
        Ok(lines
            .iter()
            .zip(per_line)
            .map(|(&region, glyphs)| ReadLine {
                region,
                chars: glyphs
                    .into_iter()
                    .map(|g| {
                        let (ch, confidence) = classes.next().expect("one class per glyph");
                        ReadChar {
                            ch,
                            confidence,
                            region: g.region,
                            space_before: g.space_before,
                        }
                    })
                    .collect(),
            })
            .collect())
    }
}

/// A line as read: its box and its characters, left to right.
#[derive(Debug, Clone)]
pub struct ReadLine {
    pub region: Rect,
    pub chars: Vec<ReadChar>,
}

#[derive(Debug, Clone, Copy)]
pub struct ReadChar {
    pub ch: char,
    pub confidence: f32,
    pub region: Rect,
    pub space_before: bool,
}

impl ReadLine {
    /// The text, with a space where the glyphs stand a word apart.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(self.chars.len() * 2);
        for c in &self.chars {
            if c.space_before {
                s.push(' ');
            }
            s.push(c.ch);
        }
        s
    }

    /// The box of characters `first..end`.
    pub fn span(&self, first: usize, end: usize) -> Option<Rect> {
        self.chars[first..end]
            .iter()
            .map(|c| c.region)
            .reduce(|a, b| a.union(&b))
    }
}

/// Where a key was found: line `line`, characters `first..end`, at `cost` edits per key
/// character (0 is exact).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Found {
    pub line: usize,
    pub first: usize,
    pub end: usize,
    pub cost: f64,
}

/// The most a match may cost, in edits per key character.
pub const MAX_MATCH_COST: f64 = 0.25;
/// The runner-up line must cost at least this many more edits, or the match is ambiguous.
pub const MIN_MATCH_MARGIN: f64 = 1.0;

/// The one place among `lines` that reads as `key`, ignoring case, spaces and punctuation
/// and forgiving look-alikes (`0`/`O`, `1`/`l`/`I`, ...) at half an edit; `None` when no line
/// is close enough or two different lines are about as close.
pub fn find_text(lines: &[ReadLine], key: &str) -> Option<Found> {
    let key: Vec<char> = key
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    if key.is_empty() {
        return None;
    }
    let mut ranked: Vec<Found> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            best_in_line(&key, l).map(|(first, end, cost)| Found {
                line: i,
                first,
                end,
                cost,
            })
        })
        .collect();
    ranked.sort_by(|a, b| a.cost.total_cmp(&b.cost));
    let best = *ranked.first()?;
    if best.cost > MAX_MATCH_COST {
        return None;
    }
    let rival = ranked.get(1).map_or(f64::INFINITY, |r| r.cost);
    ((rival - best.cost) * key.len() as f64 >= MIN_MATCH_MARGIN).then_some(best)
}

/// The cheapest substring of `line` matching `key`, as `(first, end, cost per key
/// character)` over the line's characters.
fn best_in_line(key: &[char], line: &ReadLine) -> Option<(usize, usize, f64)> {
    // The line's alphanumerics, each with its index among the line's characters.
    let (at, text): (Vec<usize>, Vec<char>) = line
        .chars
        .iter()
        .enumerate()
        .filter(|(_, c)| c.ch.is_alphanumeric())
        .map(|(i, c)| (i, c.ch.to_ascii_lowercase()))
        .unzip();
    let (first, end, cost) = semi_global(key, &text)?;
    let (first, end) = (at[first], at[end - 1] + 1);
    // A key that runs on into the same word ("Sensor 3" in "Sensor 36") is a different key.
    let runs_on = line
        .chars
        .get(end)
        .zip(key.last())
        .is_some_and(|(next, last)| !next.space_before && same_kind(next.ch, *last));
    let penalty = if runs_on { RUN_ON_EDITS } else { 0.0 };
    Some((first, end, cost + penalty / key.len() as f64))
}

/// What a match costs, in edits, when the word goes on past the key in the same kind of
/// character (a digit after a key ending in a digit, a letter after a letter).
const RUN_ON_EDITS: f64 = 1.0;

fn same_kind(a: char, b: char) -> bool {
    (a.is_ascii_digit() && b.is_ascii_digit()) || (a.is_alphabetic() && b.is_alphabetic())
}

/// How well `key` reads somewhere inside `text` (both compared as lower-case alphanumerics):
/// edits per key character, look-alikes at half an edit; `None` when either is empty.
pub fn cost_within(key: &str, text: &str) -> Option<f64> {
    let norm = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    semi_global(&norm(key), &norm(text)).map(|(_, _, cost)| cost)
}

/// The cheapest substring `text[first..end]` matching all of `key` (semi-global edit
/// distance), with its cost per key character.
fn semi_global(key: &[char], text: &[char]) -> Option<(usize, usize, f64)> {
    let (n, m) = (key.len(), text.len());
    if n == 0 || m == 0 {
        return None;
    }
    // cost[i][j]: key[..i] against a substring of text ending at j; start[i][j]: where it starts.
    let mut cost = vec![vec![0.0_f64; m + 1]; n + 1];
    let mut start = vec![vec![0_usize; m + 1]; n + 1];
    for (j, s) in start[0].iter_mut().enumerate() {
        *s = j;
    }
    for i in 1..=n {
        cost[i][0] = i as f64;
        for j in 1..=m {
            let sub = cost[i - 1][j - 1] + substitution(key[i - 1], text[j - 1]);
            let del = cost[i - 1][j] + 1.0;
            let ins = cost[i][j - 1] + 1.0;
            let (mut c, mut s) = if sub <= del && sub <= ins {
                (sub, start[i - 1][j - 1])
            } else if del <= ins {
                (del, start[i - 1][j])
            } else {
                (ins, start[i][j - 1])
            };
            // Two key letters read as the one they run together into, or one read as two.
            if i >= 2 && merges_into(key[i - 2], key[i - 1], text[j - 1]) {
                let merged = cost[i - 2][j - 1] + MERGE_EDITS;
                if merged < c {
                    (c, s) = (merged, start[i - 2][j - 1]);
                }
            }
            if j >= 2 && merges_into(text[j - 2], text[j - 1], key[i - 1]) {
                let split = cost[i - 1][j - 2] + MERGE_EDITS;
                if split < c {
                    (c, s) = (split, start[i - 1][j - 2]);
                }
            }
            cost[i][j] = c;
            start[i][j] = s;
        }
    }
    let (end, c) = (1..=m)
        .map(|j| (j, cost[n][j]))
        .min_by(|a, b| a.1.total_cmp(&b.1))?;
    let first = start[n][end].min(end - 1);
    Some((first, end, c / n as f64))
}

/// What reading a pair of letters as the one they look like run together costs ("ri" as
/// "n"), or one as such a pair: small print set tight joins the pair's ink, and the glyph cut
/// takes pieces that overlap for one glyph.
const MERGE_EDITS: f64 = 0.5;

/// Whether `a` then `b` set tight look like `one` (lower case).
fn merges_into(a: char, b: char, one: char) -> bool {
    const MERGED: [(char, char, char); 4] = [
        ('r', 'i', 'n'),
        ('r', 'n', 'm'),
        ('v', 'v', 'w'),
        ('c', 'l', 'd'),
    ];
    MERGED.contains(&(a, b, one))
}

/// Look-alikes cost half an edit: a small font blurs them, and keys may contain them.
fn substitution(a: char, b: char) -> f64 {
    const ALIKE: [&str; 6] = ["0o", "1il", "5s", "8b", "2z", "6g"];
    if a == b {
        0.0
    } else if ALIKE.iter().any(|s| s.contains(a) && s.contains(b)) {
        0.5
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, y: f64) -> ReadLine {
        let mut x = 0.0;
        let mut chars = Vec::new();
        let mut space = false;
        for ch in text.chars() {
            if ch == ' ' {
                space = true;
                x += 6.0;
                continue;
            }
            chars.push(ReadChar {
                ch,
                confidence: 1.0,
                region: Rect::new(x, y, x + 8.0, y + 12.0),
                space_before: space,
            });
            space = false;
            x += 10.0;
        }
        ReadLine {
            region: Rect::new(0.0, y, x, y + 12.0),
            chars,
        }
    }

    #[test]
    fn letters_run_together_read_as_one_cost_half_an_edit() {
        // "Serial" in small tight print: the glyph cut takes "ri" for one glyph, read "n".
        let lines = [line("Senal: WPVM7", 0.0), line("Seal PDN6T", 20.0)];
        let found = find_text(&lines, "Serial").expect("found");
        assert_eq!((found.line, found.first, found.end), (0, 0, 5));
        assert!((found.cost - 0.5 / 6.0).abs() < 1e-9, "{found:?}");
        // And the other way: one letter read as the pair it looks like.
        assert_eq!(cost_within("Wharf", "vvharf"), Some(0.1));
        assert_eq!(cost_within("Modem", "rnodern"), Some(0.2));
        // A pair that does not run together is two edits, as before.
        assert_eq!(cost_within("Serial", "Sefal"), Some(2.0 / 6.0));
    }

    #[test]
    fn a_key_is_found_in_its_line_despite_case_spaces_and_look_alikes() {
        let lines = [
            line("Juniper 43 KDX7C", 0.0),
            line("Junlper 5l FHT4G", 20.0),
            line("Aspen 11 HF4VVH", 40.0),
        ];
        let found = find_text(&lines, "Juniper 51").expect("found");
        assert_eq!(found.line, 1);
        assert_eq!((found.first, found.end), (0, 9));
        assert!(found.cost > 0.0 && found.cost <= MAX_MATCH_COST);
        assert_eq!(lines[1].text(), "Junlper 5l FHT4G");
        assert_eq!(lines[1].span(0, 2), Some(Rect::new(0.0, 20.0, 18.0, 32.0)));
    }

    #[test]
    fn a_key_is_not_found_inside_a_longer_word() {
        let lines = [line("Sensor 36: KDX7C", 0.0), line("Sensor 3: FHT4G", 20.0)];
        assert_eq!(find_text(&lines, "Sensor 3").map(|f| f.line), Some(1));
        // A letter runs a key ending in a letter on; a digit glued to it (a misread colon) does not.
        let lines = [line("Slots KDX7C", 0.0), line("Slot1 FHT4G", 20.0)];
        assert_eq!(find_text(&lines, "Slot").map(|f| f.line), Some(1));
    }

    #[test]
    fn a_header_is_found_in_a_question_by_its_cost_within() {
        let q = "What code appears in the fourth data column (Docket) of the row";
        assert_eq!(cost_within("Docket", q), Some(0.0));
        assert!(cost_within("D0cket", q).unwrap() <= 0.1);
        assert!(cost_within("Voucher", q).unwrap() > MAX_MATCH_COST);
        assert_eq!(cost_within("", q), None);
    }

    #[test]
    fn an_absent_or_ambiguous_key_is_not_found() {
        let lines = [
            line("Juniper 43 KDX7C", 0.0),
            line("Juniper 48 FHT4G", 20.0),
        ];
        assert_eq!(find_text(&lines, "Willow 12"), None);
        // "Juniper 4?" fits both lines about equally.
        assert_eq!(find_text(&lines, "Juniper 4"), None);
        assert_eq!(find_text(&lines, "\"\""), None);
    }

    #[test]
    fn the_classifier_round_trips_its_weights_and_reads_every_glyph() {
        let dir = tempfile_dir();
        let model = GlyphClassifier::new(GlyphConfig::default(), 3, &Device::Cpu).unwrap();
        model.save(&dir, DType::F32).unwrap();
        let loaded = GlyphClassifier::load(&dir, &Device::Cpu).unwrap();
        let mut img = RgbImage::from_pixel(80, 30, image::Rgb([240, 240, 240]));
        for k in 0..4u32 {
            for y in 8..20 {
                for x in 0..4 {
                    img.put_pixel(10 + k * 8 + x, y, image::Rgb([20, 20, 20]));
                }
            }
        }
        let full = Rect::new(0.0, 0.0, 80.0, 30.0);
        let (a, b) = (
            model.read(&img, &[full]).unwrap(),
            loaded.read(&img, &[full]).unwrap(),
        );
        assert_eq!(a[0].chars.len(), 4);
        assert_eq!(a[0].text(), b[0].text());
        assert!(a[0]
            .chars
            .iter()
            .all(|c| c.confidence > 0.0 && c.confidence <= 1.0));
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("etchr-glyphs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
