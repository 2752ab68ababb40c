//! Lines of dark text, found from the pixels without reading them: small dark blobs (letters,
//! and the outline of a tag around them) side by side on one baseline. A planner gathers them
//! into one sheet (`collage`) when the question names what to read by a quoted key: the
//! upstream can then find the key among all of them at a size it reads.

use super::pixels::{luma, run_pieces, DisjointSets, RunPieces};
use crate::geom::Rect;
use image::RgbImage;

/// Ink: pixels at most this bright.
const INK_LUMA: u8 = 110;
/// Fainter ink, when it stands out from its surroundings (see [`ink_of`]).
const FAINT_INK_LUMA: u8 = 170;
const FAINT_INK_CONTRAST: u16 = 60;
const FAINT_INK_REACH: usize = 2;
/// Letters are this tall, in pixels.
const MIN_HEIGHT: u32 = 4;
const MAX_HEIGHT: u32 = 48;
/// A line holds at least this many blobs (a key and a value).
const MIN_BLOBS: usize = 4;
/// A line to read a key in holds at least this many (see [`short_text_lines`]).
const MIN_READ_BLOBS: usize = 2;
/// How much of its box a round blob fills, at least, to be a dot rather than a letter.
const DOT_FILL_PERCENT: u32 = 75;
/// More lines than this is a page of text, not labels.
const MAX_LINES: usize = 400;

/// A connected piece of ink: its bounding box and pixel count.
#[derive(Debug, Clone, Copy)]
pub(super) struct Blob {
    pub(super) x0: u32,
    pub(super) y0: u32,
    pub(super) x1: u32,
    pub(super) y1: u32,
    pub(super) pixels: u32,
}

impl Blob {
    fn height(&self) -> u32 {
        self.y1 - self.y0
    }

    fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    /// Letter-sized, and not a solid dot (a chart's point marker). A disk fills 79 % of its
    /// box; a bold `a`, `o` or `g` fills up to about 70 %, so they stay letters.
    fn is_letter(&self) -> bool {
        let (w, h) = (self.width(), self.height());
        let dot = w.abs_diff(h) * 4 <= h && self.pixels * 100 >= w * h * DOT_FILL_PERCENT;
        (MIN_HEIGHT..=MAX_HEIGHT).contains(&h) && w <= 6 * h && !dot
    }
}

/// The text lines of `img`, in reading order (top to bottom, then left to right), each box
/// padded by a quarter of its height; empty when there are more than [`MAX_LINES`].
pub fn text_lines(img: &RgbImage) -> Vec<Rect> {
    TextLines::of(img).lines
}

/// [`text_lines`] with runs of as few as two letters (see [`TextLines::short`]).
pub fn short_text_lines(img: &RgbImage) -> Vec<Rect> {
    TextLines::of(img).short
}

/// Both kinds of text line of one image, from one search.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLines {
    /// Lines of at least [`MIN_BLOBS`] letters: what a sheet of lines shows.
    pub lines: Vec<Rect>,
    /// Lines of at least [`MIN_READ_BLOBS`]: the lines to look a quoted key up in, where a
    /// short key ("Bin:") stands a word space from its value and is a line of its own.
    /// Reading tells the key from chance marks; a sheet of lines to show has no such filter.
    pub short: Vec<Rect>,
}

impl TextLines {
    pub fn of(img: &RgbImage) -> Self {
        let (w, h) = img.dimensions();
        let ink = ink_of(img);
        let mut blobs: Vec<Blob> = blobs_of(&ink, w as usize, h as usize)
            .into_iter()
            .filter(Blob::is_letter)
            .collect();
        blobs.sort_by_key(|b| b.x0);
        let counted = lines_of(&blobs);
        let boxes = |min_blobs: usize| {
            let lines: Vec<&Blob> = counted
                .iter()
                .filter(|(_, n)| *n >= min_blobs)
                .map(|(l, _)| l)
                .collect();
            if lines.len() > MAX_LINES {
                return Vec::new();
            }
            let mut out: Vec<Rect> = lines
                .into_iter()
                .map(|b| {
                    let pad = (b.height() as f64 * 0.25).ceil();
                    Rect::new(
                        (b.x0 as f64 - pad).max(0.0),
                        (b.y0 as f64 - pad).max(0.0),
                        (b.x1 as f64 + pad).min(w as f64),
                        (b.y1 as f64 + pad).min(h as f64),
                    )
                })
                .collect();
            out.sort_by(|a, b| (a.y0, a.x0).partial_cmp(&(b.y0, b.x0)).expect("finite"));
            out
        };
        TextLines {
            lines: boxes(MIN_BLOBS),
            short: boxes(MIN_READ_BLOBS),
        }
    }
}

/// The ink of `img`: pixels at most [`INK_LUMA`] bright, and the fainter strokes of small
/// print, at most [`FAINT_INK_LUMA`] and [`FAINT_INK_CONTRAST`] darker than the brightest pixel
/// within [`FAINT_INK_REACH`]. At a cap height under about 10 px, anti-aliasing leaves a thin
/// stroke lighter than any fixed ink level, and the letters break into specks; a flat tint is
/// never ink, however dark, because nothing near it is brighter.
fn ink_of(img: &RgbImage) -> Vec<bool> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let l: Vec<u8> = img.pixels().map(|p| luma(p.0)).collect();
    let brightest = max_filter(&l, w, h, FAINT_INK_REACH);
    l.iter()
        .zip(&brightest)
        .map(|(&v, &b)| {
            v <= INK_LUMA || (v <= FAINT_INK_LUMA && v as u16 + FAINT_INK_CONTRAST <= b as u16)
        })
        .collect()
}

/// The brightest value within `r` pixels (a square window) of each pixel: the maximum along
/// each row, then the elementwise maximum of the rows around (slices, which vectorise).
fn max_filter(v: &[u8], w: usize, h: usize, r: usize) -> Vec<u8> {
    let mut rows = v.to_vec();
    for (src, dst) in v.chunks_exact(w).zip(rows.chunks_exact_mut(w)) {
        for shift in 1..=r.min(w - 1) {
            let max_in =
                |d: &mut [u8], s: &[u8]| d.iter_mut().zip(s).for_each(|(d, &s)| *d = (*d).max(s));
            max_in(&mut dst[..w - shift], &src[shift..]);
            max_in(&mut dst[shift..], &src[..w - shift]);
        }
    }
    let mut out = vec![0u8; v.len()];
    for (y, dst) in out.chunks_exact_mut(w).enumerate() {
        for k in y.saturating_sub(r)..(y + r + 1).min(h) {
            let src = &rows[k * w..(k + 1) * w];
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d = (*d).max(s));
        }
    }
    out
}

/// 8-connected blobs of `ink`, in the raster order of their first pixels: each blob's bounding
/// box and pixel count only (from [`run_pieces`]: a flood fill from pixel to pixel took four
/// times as long on a 12 MP panel).
pub(super) fn blobs_of(ink: &[bool], w: usize, h: usize) -> Vec<Blob> {
    let RunPieces { runs, piece, count } = run_pieces(ink, w, h, true);
    let mut blobs = vec![
        Blob {
            x0: u32::MAX,
            y0: u32::MAX,
            x1: 0,
            y1: 0,
            pixels: 0,
        };
        count
    ];
    for (&(y, a, b), &p) in runs.iter().zip(&piece) {
        let (y, a, b) = (y as u32, a as u32, b as u32);
        let blob = &mut blobs[p];
        (blob.x0, blob.x1) = (blob.x0.min(a), blob.x1.max(b));
        (blob.y0, blob.y1) = (blob.y0.min(y), y + 1);
        blob.pixels += b - a;
    }
    blobs
}

/// Blobs (sorted by `x0`) joined into lines: two join when they share most of their height
/// and the gap between them is at most the taller one's height. Each line comes with how many
/// blobs it holds; lines no wider than tall are dropped.
fn lines_of(blobs: &[Blob]) -> Vec<(Blob, usize)> {
    let mut sets = DisjointSets::new(blobs.len());
    for (i, a) in blobs.iter().enumerate() {
        for (j, b) in blobs.iter().enumerate().skip(i + 1) {
            if b.x0 > a.x1 + MAX_HEIGHT {
                break;
            }
            let overlap = a.y1.min(b.y1) as i64 - a.y0.max(b.y0) as i64;
            let shorter = a.height().min(b.height()) as i64;
            let gap = b.x0 as i64 - a.x1 as i64;
            if overlap * 2 >= shorter && gap <= a.height().max(b.height()) as i64 {
                sets.union(i, j);
            }
        }
    }
    let mut lines: Vec<(Blob, usize)> = Vec::new();
    let mut index = vec![usize::MAX; blobs.len()];
    for (i, &b) in blobs.iter().enumerate() {
        let r = sets.root(i);
        if index[r] == usize::MAX {
            index[r] = lines.len();
            lines.push((b, 0));
        }
        let (line, n) = &mut lines[index[r]];
        line.x0 = line.x0.min(b.x0);
        line.y0 = line.y0.min(b.y0);
        line.x1 = line.x1.max(b.x1);
        line.y1 = line.y1.max(b.y1);
        *n += 1;
    }
    lines.retain(|(l, _)| l.width() > l.height());
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// Dark "letters" (3 × 8 bars, 2 px apart) in words at `(x, y)`.
    fn write(img: &mut RgbImage, x: u32, y: u32, letters: u32) {
        write_in(img, x, y, letters, 30);
    }

    fn write_in(img: &mut RgbImage, x: u32, y: u32, letters: u32, ink: u8) {
        for k in 0..letters {
            for dy in 0..8 {
                for dx in 0..3 {
                    img.put_pixel(x + k * 5 + dx, y + dy, Rgb([ink, ink, ink]));
                }
            }
        }
    }

    fn key(b: &Blob) -> (u32, u32, u32, u32, u32) {
        (b.x0, b.y0, b.x1, b.y1, b.pixels)
    }

    #[test]
    fn blobs_touching_only_at_a_corner_are_one() {
        // A diagonal staircase; a run whose last pixel touches the next row's first at a
        // corner, and back; and two pixels a row apart, which do not touch.
        let (w, h) = (10, 3);
        let mut ink = vec![false; w * h];
        for (x, y) in [
            (0, 0),
            (1, 1),
            (2, 2),
            (4, 0),
            (5, 0),
            (6, 1),
            (5, 2),
            (9, 0),
            (9, 2),
        ] {
            ink[y * w + x] = true;
        }
        let blobs: Vec<_> = blobs_of(&ink, w, h).iter().map(key).collect();
        assert_eq!(
            blobs,
            vec![
                (0, 0, 3, 3, 3),
                (4, 0, 7, 3, 4),
                (9, 0, 10, 1, 1),
                (9, 2, 10, 3, 1)
            ]
        );
    }

    #[test]
    fn faint_small_print_is_ink_and_a_flat_tint_is_not() {
        // Letters only as dark as anti-aliasing leaves thin strokes, on white; and dark
        // letters on a flat grey tint as dark as that faint ink.
        let mut img = RgbImage::from_pixel(400, 200, Rgb([245, 245, 240]));
        write_in(&mut img, 20, 20, 6, 150);
        for y in 80..160 {
            for x in 150..350 {
                img.put_pixel(x, y, Rgb([150, 150, 150]));
            }
        }
        write(&mut img, 200, 110, 8);
        assert_eq!(
            text_lines(&img),
            vec![
                Rect::new(18.0, 18.0, 50.0, 30.0),
                Rect::new(198.0, 108.0, 240.0, 120.0)
            ]
        );
    }

    #[test]
    fn lines_of_letters_are_found_and_shapes_and_dots_are_not() {
        let mut img = RgbImage::from_pixel(400, 200, Rgb([245, 245, 240]));
        write(&mut img, 20, 20, 6);
        write(&mut img, 54, 20, 5); // a word-gap on: the same line
        write(&mut img, 200, 100, 8);
        write(&mut img, 300, 150, 2); // too short to be a key and a value
        write(&mut img, 300, 60, 3); // a short key ("Bin:"): only a line to read in

        // A dark square shape and a dot.
        for y in 120..190 {
            for x in 20..90 {
                img.put_pixel(x, y, Rgb([40, 40, 120]));
            }
        }
        for y in 50..58 {
            for x in 300..308 {
                img.put_pixel(x, y, Rgb([20, 20, 20]));
            }
        }
        let lines = text_lines(&img);
        assert_eq!(
            lines,
            vec![
                Rect::new(18.0, 18.0, 79.0, 30.0),
                Rect::new(198.0, 98.0, 240.0, 110.0)
            ]
        );
        // The three-letter word is a line to look a key up in, from the same search.
        let both = TextLines::of(&img);
        assert_eq!(both.lines, lines);
        assert_eq!(
            both.short,
            vec![
                Rect::new(18.0, 18.0, 79.0, 30.0),
                Rect::new(298.0, 58.0, 315.0, 70.0),
                Rect::new(198.0, 98.0, 240.0, 110.0)
            ]
        );
    }

    #[test]
    fn bold_round_letters_are_letters_not_dots() {
        // Four 10 × 10 rings with 2 px strokes (64 % of their box, like a bold `o`).
        let mut img = RgbImage::from_pixel(200, 60, Rgb([245, 245, 240]));
        for k in 0..4u32 {
            for dy in 0..10u32 {
                for dx in 0..10u32 {
                    if !(2..8).contains(&dx) || !(2..8).contains(&dy) {
                        img.put_pixel(20 + k * 12 + dx, 20 + dy, Rgb([30, 30, 30]));
                    }
                }
            }
        }
        assert_eq!(text_lines(&img), vec![Rect::new(17.0, 17.0, 69.0, 33.0)]);
    }
}
