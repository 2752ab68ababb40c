//! The glyphs of one line of text, cut from the pixels and normalised for a classifier: each
//! glyph's ink on a small square (aspect kept) plus where it sits against the line's capital
//! height and baseline, which is what tells `o` from `O` and `,` from `'` once the shape is
//! scaled to fit. The editing model's glyph classifier (`etchr-model`) reads these; its
//! trainer cuts its examples with this same function, so training and reading see glyphs
//! the same way.

use super::pixels::luma;
use crate::geom::Rect;
use image::RgbImage;

/// The side of the square a glyph's ink is resampled onto.
pub const GLYPH_SIDE: usize = 16;
/// Placement features after the bitmap: height, width, top above the baseline and bottom
/// below it, each in capital heights.
pub const PLACEMENT_FEATURES: usize = 4;
/// The length of [`Glyph::features`].
pub const GLYPH_FEATURES: usize = GLYPH_SIDE * GLYPH_SIDE + PLACEMENT_FEATURES;

/// Ink must be at least this much darker than the paper for a line to be read.
const MIN_CONTRAST: f64 = 48.0;
/// A gap wider than this (in capital heights) is a word space.
const SPACE_GAP: f64 = 0.25;

/// One glyph of a line: where it is (in the image's pixels), whether a word space comes
/// before it, and its [`GLYPH_FEATURES`] features.
#[derive(Debug, Clone)]
pub struct Glyph {
    pub region: Rect,
    pub space_before: bool,
    pub features: Vec<f32>,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

impl Span {
    fn width(&self) -> usize {
        self.x1 - self.x0
    }

    fn height(&self) -> usize {
        self.y1 - self.y0
    }

    fn join(&mut self, o: &Span) {
        self.x0 = self.x0.min(o.x0);
        self.y0 = self.y0.min(o.y0);
        self.x1 = self.x1.max(o.x1);
        self.y1 = self.y1.max(o.y1);
    }
}

/// The glyphs in `line` of `img` (dark ink on lighter paper, or light on dark), left to
/// right; empty when the box holds no ink that stands out.
///
/// Ink is what is darker than halfway between the paper (the box's median) and the darkest
/// pixel; 8-connected pieces of it that overlap left to right (the dot of an `i`, a colon's
/// two dots) are one glyph. Pieces much taller than the line's letters (a tag's outline, a
/// table rule) are dropped.
pub fn line_glyphs(img: &RgbImage, line: Rect) -> Vec<Glyph> {
    line_glyphs_cut(img, line, Cut::Halfway)
}

/// Where ink begins, as a share of the way from the paper to the darkest pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Halfway: the cut the glyph classifier is trained on, which keeps glyphs of small sans
    /// print apart.
    Halfway,
    /// At 35 %: bolder glyphs. Thin strokes of small serif print that break apart at halfway
    /// ("Juniper" read as "Juimnper") stay whole, but neighbouring glyphs of small sans print
    /// may merge: a second reading, for a key the first did not find.
    Bold,
}

impl Cut {
    fn share(self) -> f64 {
        match self {
            Cut::Halfway => 0.5,
            Cut::Bold => 0.35,
        }
    }
}

/// [`line_glyphs`] with ink cut at `cut`.
pub fn line_glyphs_cut(img: &RgbImage, line: Rect, cut: Cut) -> Vec<Glyph> {
    let Some(line) = line.intersect(&Rect::full(img.width(), img.height())) else {
        return Vec::new();
    };
    let (x, y, w, h) = line.to_pixel_bounds();
    let (ox, oy, w, h) = (x as usize, y as usize, w as usize, h as usize);
    if w < 2 || h < 2 {
        return Vec::new();
    }
    let mut lum: Vec<f64> = (0..h)
        .flat_map(|r| (0..w).map(move |c| (c, r)))
        .map(|(c, r)| luma(img.get_pixel((ox + c) as u32, (oy + r) as u32).0) as f64)
        .collect();
    // Order statistics of whole brightness levels from their histogram, not a sort.
    let mut counts = [0usize; 256];
    lum.iter().for_each(|&l| counts[l as usize] += 1);
    let n = lum.len();
    let mut paper = nth_level(&counts, n / 2);
    let (darkest, lightest) = (nth_level(&counts, n / 100), nth_level(&counts, n - 1));
    // Light ink on dark paper reads as its negative.
    if paper - darkest < lightest - paper {
        lum.iter_mut().for_each(|l| *l = 255.0 - *l);
        paper = 255.0 - paper;
    }
    let darkest = lum.iter().copied().fold(f64::MAX, f64::min);
    if paper - darkest < MIN_CONTRAST {
        return Vec::new();
    }
    let cut = paper - cut.share() * (paper - darkest);
    let ink: Vec<bool> = lum.iter().map(|&l| l < cut).collect();
    let mut pieces = pieces_of(&ink, w, h);
    if pieces.is_empty() {
        return Vec::new();
    }
    // Drop what is far taller than the letters: outlines and rules.
    let mut heights: Vec<usize> = pieces.iter().map(Span::height).collect();
    heights.sort_unstable();
    let typical = heights[heights.len() / 2].max(2);
    pieces.retain(|p| p.height() <= typical * 2 && p.width() <= typical * 4);
    pieces.sort_by_key(|p| p.x0);
    let glyphs = grouped(pieces);
    if glyphs.is_empty() {
        return Vec::new();
    }
    let metrics = LineMetrics::of(&glyphs);
    let darkness =
        |c: usize, r: usize| ((paper - lum[r * w + c]) / (paper - darkest)).clamp(0.0, 1.0);
    let mut out = Vec::with_capacity(glyphs.len());
    let mut previous_end: Option<usize> = None;
    for g in &glyphs {
        let space_before =
            previous_end.is_some_and(|e| (g.x0.saturating_sub(e)) as f64 > SPACE_GAP * metrics.cap);
        previous_end = Some(g.x1);
        let mut features = bitmap(g, &darkness);
        features.extend(metrics.placement(g));
        out.push(Glyph {
            region: Rect::new(
                (ox + g.x0) as f64,
                (oy + g.y0) as f64,
                (ox + g.x1) as f64,
                (oy + g.y1) as f64,
            ),
            space_before,
            features,
        });
    }
    out
}

/// The `k`-th smallest (from 0) of the brightness levels counted in `counts`; `k` must be
/// under their total.
fn nth_level(counts: &[usize; 256], k: usize) -> f64 {
    let mut seen = 0;
    let level = counts.iter().position(|&c| {
        seen += c;
        seen > k
    });
    level.expect("k is under the count") as f64
}

/// The 8-connected pieces of `ink` (a `w × h` raster), with single stray pixels dropped.
fn pieces_of(ink: &[bool], w: usize, h: usize) -> Vec<Span> {
    super::text_lines::blobs_of(ink, w, h)
        .into_iter()
        .filter(|b| b.pixels > 1)
        .map(|b| Span {
            x0: b.x0 as usize,
            y0: b.y0 as usize,
            x1: b.x1 as usize,
            y1: b.y1 as usize,
        })
        .collect()
}

/// Pieces (sorted by `x0`) joined into glyphs where they overlap left to right by at least
/// half the narrower one.
fn grouped(pieces: Vec<Span>) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for p in pieces {
        if let Some(last) = out.last_mut() {
            let overlap = last.x1.min(p.x1) as i64 - last.x0.max(p.x0) as i64;
            if overlap * 2 >= last.width().min(p.width()) as i64 {
                last.join(&p);
                continue;
            }
        }
        out.push(p);
    }
    out
}

/// A line's capital height and baseline, from its glyphs.
struct LineMetrics {
    cap: f64,
    baseline: f64,
}

impl LineMetrics {
    fn of(glyphs: &[Span]) -> Self {
        let mut heights: Vec<usize> = glyphs.iter().map(Span::height).collect();
        heights.sort_unstable();
        let cap = heights[(heights.len() * 3 / 4).min(heights.len() - 1)].max(1) as f64;
        let mut bottoms: Vec<usize> = glyphs.iter().map(|g| g.y1).collect();
        bottoms.sort_unstable();
        let baseline = bottoms[bottoms.len() / 2] as f64;
        Self { cap, baseline }
    }

    fn placement(&self, g: &Span) -> [f32; PLACEMENT_FEATURES] {
        let c = self.cap;
        [
            (g.height() as f64 / c) as f32,
            (g.width() as f64 / c) as f32,
            ((self.baseline - g.y0 as f64) / c) as f32,
            ((g.y1 as f64 - self.baseline) / c) as f32,
        ]
    }
}

/// `g`'s darkness resampled onto a [`GLYPH_SIDE`] square, centred, its longer side filling
/// the square less a pixel of margin; each cell averages a 3 × 3 grid of samples.
fn bitmap(g: &Span, darkness: &impl Fn(usize, usize) -> f64) -> Vec<f32> {
    const SUB: usize = 3;
    let side = GLYPH_SIDE as f64;
    let scale = (side - 2.0) / g.width().max(g.height()) as f64;
    let (dw, dh) = (g.width() as f64 * scale, g.height() as f64 * scale);
    let (left, top) = ((side - dw) / 2.0, (side - dh) / 2.0);
    let mut out = vec![0.0_f32; GLYPH_SIDE * GLYPH_SIDE];
    for (cell, value) in out.iter_mut().enumerate() {
        let (cx, cy) = ((cell % GLYPH_SIDE) as f64, (cell / GLYPH_SIDE) as f64);
        let mut sum = 0.0;
        for s in 0..SUB * SUB {
            let px = cx + ((s % SUB) as f64 + 0.5) / SUB as f64;
            let py = cy + ((s / SUB) as f64 + 0.5) / SUB as f64;
            let (sx, sy) = ((px - left) / scale, (py - top) / scale);
            if sx < 0.0 || sy < 0.0 || sx >= g.width() as f64 || sy >= g.height() as f64 {
                continue;
            }
            sum += darkness(g.x0 + sx as usize, g.y0 + sy as usize);
        }
        *value = (sum / (SUB * SUB) as f64) as f32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    proptest::proptest! {
        #[test]
        fn levels_counted_give_the_order_statistics_of_sorting(
            levels in proptest::collection::vec(0u8..=255, 1..300),
            pick in 0usize..1000,
        ) {
            let mut counts = [0usize; 256];
            levels.iter().for_each(|&l| counts[l as usize] += 1);
            let mut sorted = levels.clone();
            sorted.sort_unstable();
            let k = pick % levels.len();
            proptest::prop_assert_eq!(nth_level(&counts, k), sorted[k] as f64);
        }
    }

    fn bar(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, v: u8) {
        for yy in y..y + h {
            for xx in x..x + w {
                img.put_pixel(xx, yy, Rgb([v, v, v]));
            }
        }
    }

    #[test]
    fn glyphs_are_cut_left_to_right_with_dots_joined_and_spaces_seen() {
        let mut img = RgbImage::from_pixel(200, 40, Rgb([240, 240, 235]));
        bar(&mut img, 10, 10, 3, 14, 20); // an "l"
        bar(&mut img, 15, 14, 3, 10, 20); // an "i": stem ...
        bar(&mut img, 15, 10, 3, 2, 20); // ... and dot
        bar(&mut img, 40, 10, 8, 14, 20); // a block after a word space
        let glyphs = line_glyphs(&img, Rect::new(0.0, 0.0, 200.0, 40.0));
        assert_eq!(glyphs.len(), 3);
        assert_eq!(glyphs[1].region, Rect::new(15.0, 10.0, 18.0, 24.0));
        assert!(!glyphs[1].space_before);
        assert!(glyphs[2].space_before);
        assert!(glyphs.iter().all(|g| g.features.len() == GLYPH_FEATURES));
        // The block fills its square's middle; the bar is thin.
        let centre = GLYPH_SIDE / 2 * GLYPH_SIDE + GLYPH_SIDE / 2;
        assert!(glyphs[2].features[centre] > 0.9);
        assert!(glyphs[0].features[GLYPH_SIDE / 2 * GLYPH_SIDE + 1] < 0.1);
    }

    #[test]
    fn a_bold_cut_keeps_a_faint_stroke_whole() {
        // A glyph whose middle stroke is faint (35-50 % of the way to the darkest ink).
        let mut img = RgbImage::from_pixel(60, 30, Rgb([240, 240, 240]));
        bar(&mut img, 10, 8, 3, 14, 20);
        bar(&mut img, 13, 14, 6, 2, 150);
        bar(&mut img, 19, 8, 3, 14, 20);
        let full = Rect::new(0.0, 0.0, 60.0, 30.0);
        assert_eq!(line_glyphs(&img, full).len(), 2, "broken at halfway");
        assert_eq!(
            line_glyphs_cut(&img, full, Cut::Bold).len(),
            1,
            "whole when bold"
        );
    }

    #[test]
    fn light_ink_on_dark_paper_reads_like_dark_on_light() {
        let mut dark = RgbImage::from_pixel(60, 30, Rgb([30, 30, 60]));
        bar(&mut dark, 10, 8, 4, 12, 230);
        bar(&mut dark, 20, 8, 6, 12, 230);
        let mut light = RgbImage::from_pixel(60, 30, Rgb([230, 230, 230]));
        bar(&mut light, 10, 8, 4, 12, 30);
        bar(&mut light, 20, 8, 6, 12, 30);
        let full = Rect::new(0.0, 0.0, 60.0, 30.0);
        let (a, b) = (line_glyphs(&dark, full), line_glyphs(&light, full));
        assert_eq!(a.len(), 2);
        assert_eq!(
            a.iter().map(|g| g.region).collect::<Vec<_>>(),
            b.iter().map(|g| g.region).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_blank_or_faint_box_has_no_glyphs_and_an_outline_is_not_one() {
        let blank = RgbImage::from_pixel(50, 20, Rgb([200, 200, 200]));
        assert!(line_glyphs(&blank, Rect::new(0.0, 0.0, 50.0, 20.0)).is_empty());
        assert!(line_glyphs(&blank, Rect::new(80.0, 80.0, 90.0, 90.0)).is_empty());
        let mut tag = RgbImage::from_pixel(120, 60, Rgb([240, 240, 240]));
        // An outline around three letters.
        bar(&mut tag, 2, 2, 116, 2, 40);
        bar(&mut tag, 2, 56, 116, 2, 40);
        bar(&mut tag, 2, 2, 2, 56, 40);
        bar(&mut tag, 116, 2, 2, 56, 40);
        for k in 0..3 {
            bar(&mut tag, 20 + k * 12, 22, 6, 14, 20);
        }
        assert_eq!(line_glyphs(&tag, Rect::new(0.0, 0.0, 120.0, 60.0)).len(), 3);
    }
}
