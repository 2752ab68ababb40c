//! One module per task family. Each builds a scene on a [`Canvas`] and returns it with its
//! ground truth; `lib.rs` turns that into an [`crate::Item`].

mod chart;
mod document;
mod fine_grained;
mod jigsaw;
mod maze;
mod orientation;
mod shapes;

use crate::draw::Canvas;
use crate::rng::Rng;
use crate::{AnswerFormat, Family};
use etchr_ops::{Op, Rect};

/// A scene and its truth, before ids and file names are attached.
pub(crate) struct Built {
    pub canvas: Canvas,
    pub question: String,
    pub answer: String,
    pub format: AnswerFormat,
    pub gold_region: Rect,
    pub gold_program: Vec<Op>,
    pub reasoning: String,
    /// Cap height of the answer text, original pixels.
    pub answer_cap: f64,
    pub meta: serde_json::Value,
    /// Every object the question's visual cue chooses among (cue families only).
    pub objects: Vec<crate::CueObject>,
}

pub(crate) fn build(family: Family, rng: &mut Rng, small: bool) -> Built {
    match family {
        Family::FineGrained => fine_grained::build(rng, small),
        Family::Chart => chart::build(rng, small),
        Family::Document => document::build(rng, small),
        Family::Maze => maze::build(rng, small),
        Family::Jigsaw => jigsaw::build(rng, small),
        Family::Orientation => orientation::build(rng, small),
    }
}

/// Fills `{name}` placeholders of a question or reasoning template.
pub(crate) fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    let mut s = template.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// A light background tint.
pub(crate) fn paper(rng: &mut Rng) -> [u8; 3] {
    [
        rng.int(236, 252) as u8,
        rng.int(236, 252) as u8,
        rng.int(232, 250) as u8,
    ]
}
