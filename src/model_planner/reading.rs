//! Reading a quoted key on the image with the editing model's glyph classifier
//! (`etchr_model::glyphs`): which text line, or which table cell, holds it.
//!
//! The editor reads the image at full resolution, where the upstream's 1024 px view has
//! blurred the key away. A key read with confidence turns a plan that shows every line (a
//! sheet, bands of a table) into one that boxes, or shows, the line that holds the answer;
//! a key not found, or found in two places alike, leaves the plan as it was.

use etchr_model::glyphs::{find_text, Found, GlyphClassifier, ReadLine};
use etchr_ops::render::Cut;
use etchr_ops::{Rect, RgbImage};

/// The question's quoted key: the text between its first pair of double quotes (straight or
/// curly), trimmed; `None` when it quotes nothing.
pub(super) fn quoted_key(question: &str) -> Option<&str> {
    [('"', '"'), ('\u{201c}', '\u{201d}')]
        .iter()
        .filter_map(|&(open, close)| {
            let (_, rest) = question.split_once(open)?;
            let (key, _) = rest.split_once(close)?;
            Some(key.trim()).filter(|k| !k.is_empty())
        })
        .next()
}

/// Reads `boxes` of `image` with ink cut at `cut`; a classifier error is logged and reads as
/// nothing (the plan then falls back to showing every line).
pub(super) fn read_cut(
    reader: &GlyphClassifier,
    image: &RgbImage,
    boxes: &[Rect],
    cut: Cut,
) -> Vec<ReadLine> {
    reader.read_cut(image, boxes, cut).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the glyph classifier failed; reading nothing");
        Vec::new()
    })
}

/// Where `key` is read among `lines` (boxes of `image`): at the classifier's own ink cut, or,
/// when that finds no line alike, at the bolder one, which keeps the thin strokes of small
/// serif print whole (`etchr_ops::render::Cut`). Bold is only the second reading: it can merge
/// neighbouring glyphs of small sans print that the first keeps apart.
fn found_in(
    reader: &GlyphClassifier,
    image: &RgbImage,
    lines: &[Rect],
    key: &str,
) -> Option<Found> {
    READINGS.into_iter().find_map(|cut| {
        let read = read_cut(reader, image, lines, cut);
        let found = find_text(&read, key)?;
        let line = read[found.line].text();
        tracing::debug!(key, %line, cost = found.cost, ?cut, "read the key");
        Some(found)
    })
}

/// Which of `lines` (boxes of `image`) the question's quoted key is read in.
pub(super) fn find_key(
    reader: &GlyphClassifier,
    image: &RgbImage,
    lines: &[Rect],
    question: &str,
) -> Option<usize> {
    let key = quoted_key(question)?;
    found_in(reader, image, lines, key).map(|found| found.line)
}

/// How many edits from the question's quoted key the text lines of `view` (a small view: one
/// tag, turned one way) read (see `etchr_model::glyphs::find_text`); `None` when the key is
/// not read there.
pub(super) fn key_edits(reader: &GlyphClassifier, view: &RgbImage, question: &str) -> Option<f64> {
    let key = quoted_key(question)?;
    let lines = etchr_ops::render::short_text_lines(view);
    if lines.is_empty() {
        return None;
    }
    let found = found_in(reader, view, &lines, key)?;
    Some(found.cost * key.chars().filter(|c| c.is_alphanumeric()).count() as f64)
}

/// The box of the ink in `region` of `image` as read (its glyphs), if it holds any: at the
/// classifier's own cut, else at the bolder one, where thin serif strokes still count.
pub(super) fn ink_of(reader: &GlyphClassifier, image: &RgbImage, region: Rect) -> Option<Rect> {
    READINGS.into_iter().find_map(|cut| {
        let read = read_cut(reader, image, &[region], cut);
        let line = read.first()?;
        line.span(0, line.chars.len())
    })
}

/// The ink cuts text is read at, in order: the classifier's own, then the bolder second
/// reading (see [`found_in`]).
pub(super) const READINGS: [Cut; 2] = [Cut::Halfway, Cut::Bold];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quoted_key_is_the_first_quoted_text() {
        assert_eq!(
            quoted_key(r#"Look up "Juniper 51" in "the" table"#),
            Some("Juniper 51")
        );
        assert_eq!(
            quoted_key("the tag \u{201c} Shaft 54 \u{201d} here"),
            Some("Shaft 54")
        );
        assert_eq!(quoted_key(r#"no "" key, no "unclosed"#), None);
        assert_eq!(quoted_key("nothing quoted"), None);
    }
}
