//! A seeded, reproducible generator for the six task families of the offline benchmark
//! (`shared/BENCHMARK.md`): fine-grained, chart, document, maze, jigsaw and orientation.
//!
//! Every item is an *editing trajectory*: the original image, a question, a short reasoning
//! chain, the gold edit program (the op language of `etchr-ops`, in original pixels) and the
//! result of rendering it, with the ground truth (answer, answer format, gold region) and
//! difficulty flags. The same `(family, seed, index)` always gives identical bytes: the RNG is
//! hand-written ([`rng`]) and nothing depends on time, threads or hash-map order.
//!
//! Questions follow the reader emulator's generic rule: the key is the first `"…"` substring
//! and the format the first of the words *code*/*number*/*value*. Keys are unique in their
//! image, so the answer can only be found through the right tag, row, annotation or line.

pub mod codes;
pub mod draw;
mod families;
mod io;
pub mod plan;
pub mod rng;

pub use io::{
    encode_for_path, read_set, render_gold, run_gen_data, write_set, GenArgs, SetSummary,
};

use etchr_ops::{Program, Rect, RgbImage};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The task families of BENCHMARK.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    FineGrained,
    Chart,
    Document,
    Maze,
    Jigsaw,
    Orientation,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::FineGrained,
        Family::Chart,
        Family::Document,
        Family::Maze,
        Family::Jigsaw,
        Family::Orientation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::FineGrained => "fine_grained",
            Family::Chart => "chart",
            Family::Document => "document",
            Family::Maze => "maze",
            Family::Jigsaw => "jigsaw",
            Family::Orientation => "orientation",
        }
    }

    /// Originals are JPEG (q90) except where compression artefacts would break the edit:
    /// the maze's free-space rule and the jigsaw solver's edge continuity want exact pixels.
    pub fn lossless(self) -> bool {
        matches!(self, Family::Maze | Family::Jigsaw)
    }

    fn tag(self) -> u64 {
        self as u64 + 1
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase().replace('-', "_");
        Family::ALL
            .into_iter()
            .find(|f| f.name() == t || (t == "finegrained" && *f == Family::FineGrained))
            .ok_or_else(|| {
                format!(
                    "unknown family {s:?}: expected one of {}",
                    Family::ALL.map(|f| f.name()).join(", ")
                )
            })
    }
}

/// The answer format the question names (and the reader's rule matches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerFormat {
    Code,
    Number,
}

/// One benchmark item and training trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// `<family>-<seed>-<index>`, also the image file stem.
    pub id: String,
    pub family: Family,
    pub seed: u64,
    pub index: u64,
    pub question: String,
    /// The quoted key the reader will look for, if the question has one.
    pub key: Option<String>,
    pub answer: String,
    pub answer_format: AnswerFormat,
    /// The box, in original pixels, that the ideal edit focuses on.
    pub gold_region: Rect,
    /// The ideal edit, in original pixels (JSON array of ops).
    pub gold_program: Program,
    /// The same program in the compact text form (the editing model's vocabulary).
    pub gold_program_text: String,
    /// What to look for, where, and what the edit does.
    pub reasoning: String,
    pub width: u32,
    pub height: u32,
    /// True when the answer's capitals are under 7 px once the longest side is scaled to 1024.
    pub small_text: bool,
    /// Cap height of the answer text in original pixels.
    pub answer_text_px: f64,
    /// The same at the reader's 1024 px resolution.
    pub answer_text_px_at_1024: f64,
    /// The original image, relative to the set directory.
    pub image: String,
    /// The gold program's result, relative to the set directory.
    pub gold_image: String,
    /// Family-specific details (cue, shape, chart kind, rotation, grid, ...).
    pub meta: serde_json::Value,
}

impl Item {
    /// The regions (original pixels) of every object that fits the question's visual cue,
    /// the target's among them (`meta.cue_regions`; fine-grained and orientation items): what
    /// an editor that cannot read narrows the question down to. Empty where the family does not
    /// say.
    pub fn cue_regions(&self) -> Vec<Rect> {
        self.meta
            .get("cue_regions")
            .and_then(|v| Vec::<[f64; 4]>::deserialize(v).ok())
            .unwrap_or_default()
            .into_iter()
            .map(|[x0, y0, x1, y1]| Rect::new(x0, y0, x1, y1))
            .collect()
    }
}

/// An item with its image and every string drawn on it (for rule checks).
pub struct Sample {
    pub item: Item,
    pub image: RgbImage,
    pub texts: Vec<String>,
    /// Every object a cue-family image shows, with the attributes its question's visual cue
    /// names (fine-grained and orientation; empty elsewhere). Too bulky for the item's meta;
    /// for diagnostics of how a model binds the cue's words to the image.
    pub objects: Vec<CueObject>,
}

/// One object of a cue-family image.
#[derive(Debug, Clone, PartialEq)]
pub struct CueObject {
    /// The object with its tag, original pixels (the same box as its `cue_regions` entry).
    pub region: Rect,
    pub colour: &'static str,
    /// The cue's other attribute: the shape (fine-grained), or `on its side` / `upright` for a
    /// tag (orientation: mirrored and upside-down tags look upright until read).
    pub kind: &'static str,
    /// Whether the question's whole cue fits it (colour, kind and, when named, the area):
    /// exactly the objects of `meta.cue_regions`.
    pub fits_cue: bool,
}

/// Generates item `index` of `family` for set seed `seed`.
pub fn generate(family: Family, seed: u64, index: u64) -> (Item, RgbImage) {
    let s = generate_sample(family, seed, index);
    (s.item, s.image)
}

/// [`generate`], keeping the list of drawn strings.
pub fn generate_sample(family: Family, seed: u64, index: u64) -> Sample {
    let mut rng = rng::Rng::for_item(family.tag(), seed, index);
    let small = plan::wants_small(index);
    let built = families::build(family, &mut rng, small);
    let (w, h) = (built.canvas.width(), built.canvas.height());
    let mut meta = built.meta;
    if !built.objects.is_empty() {
        // What the cue narrows the question down to, for an editor that cannot read.
        let regions: Vec<[f64; 4]> = built
            .objects
            .iter()
            .filter(|o| o.fits_cue)
            .map(|o| [o.region.x0, o.region.y0, o.region.x1, o.region.y1])
            .collect();
        meta["cue_matches"] = regions.len().into();
        meta["cue_regions"] = serde_json::json!(regions);
    }
    let id = format!("{}-{}-{:05}", family.name(), seed, index);
    let program = Program(built.gold_program);
    let at = plan::cap_at_reader(built.answer_cap, w, h);
    let item = Item {
        key: codes::quoted_key(&built.question),
        question: built.question,
        answer: built.answer,
        answer_format: built.format,
        gold_region: plan::whole(built.gold_region),
        gold_program_text: etchr_ops::text::to_text(&program),
        gold_program: program,
        reasoning: built.reasoning,
        width: w,
        height: h,
        small_text: at < plan::SMALL_CAP_PX,
        answer_text_px: (built.answer_cap * 100.0).round() / 100.0,
        answer_text_px_at_1024: (at * 100.0).round() / 100.0,
        image: format!(
            "images/{id}.{}",
            if family.lossless() { "png" } else { "jpg" }
        ),
        gold_image: format!("images/{id}.gold.png"),
        meta,
        id,
        family,
        seed,
        index,
    };
    Sample {
        item,
        image: built.canvas.img,
        texts: built.canvas.texts,
        objects: built.objects,
    }
}
