//! Drawing helpers for the scenes: fonts and text metrics, text that records what it wrote
//! (so tests can check key uniqueness against everything in the image), and filled shapes.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use etchr_ops::Rect;
use image::{Rgb, RgbImage};
use imageproc::point::Point as IPoint;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The typefaces a scene may use; variety keeps a trained editor from keying on one font.
/// All DejaVu (Bitstream Vera licence; see assets/fonts/LICENSE-DejaVu.txt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Face {
    Sans,
    Mono,
    Serif,
    MonoBold,
}

static SANS: &[u8] = include_bytes!("../../etchr-ops/assets/fonts/DejaVuSans.ttf");
static MONO: &[u8] = include_bytes!("../assets/fonts/DejaVuSansMono.ttf");
static SERIF: &[u8] = include_bytes!("../assets/fonts/DejaVuSerif.ttf");
static MONO_BOLD: &[u8] = include_bytes!("../assets/fonts/DejaVuSansMono-Bold.ttf");

/// A face drawing all text in place of the four, for the rest of the process (`etchr gen-data
/// --face-file`): sets in another type family, to measure how far reading carries beyond the
/// faces the planner's glyph reader was trained on. Unset, the generator draws DejaVu as always.
static REPLACEMENT: OnceLock<FontRef<'static>> = OnceLock::new();

/// Draws all later text in the TrueType / OpenType face `bytes` instead of [`Face::ALL`]
/// (each item still picks one of the four, which then all draw in this face). Once per
/// process: for command-line runs, never in a process that also generates the usual sets.
pub fn replace_faces(bytes: Vec<u8>) -> Result<(), String> {
    // Leaked once per process, like the embedded faces it stands in for.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let font = FontRef::try_from_slice(bytes)
        .map_err(|e| format!("not a TrueType or OpenType face: {e}"))?;
    if font.glyph_id('H').0 == 0 {
        return Err("the face has no Latin capitals".into());
    }
    REPLACEMENT
        .set(font)
        .map_err(|_| "the faces were replaced already".to_string())
}

impl Face {
    pub const ALL: [Face; 4] = [Face::Sans, Face::Mono, Face::Serif, Face::MonoBold];

    pub fn font(self) -> &'static FontRef<'static> {
        if let Some(font) = REPLACEMENT.get() {
            return font;
        }
        static FONTS: [OnceLock<FontRef<'static>>; 4] = [
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
            OnceLock::new(),
        ];
        let (i, bytes) = match self {
            Face::Sans => (0, SANS),
            Face::Mono => (1, MONO),
            Face::Serif => (2, SERIF),
            Face::MonoBold => (3, MONO_BOLD),
        };
        FONTS[i]
            .get_or_init(|| FontRef::try_from_slice(bytes).expect("embedded fonts are valid TTFs"))
    }

    /// Cap height (the height of `H`, and of the digits and capitals codes are made of) per
    /// pixel of font size.
    pub fn cap_ratio(self) -> f64 {
        let font = self.font();
        let g = font.glyph_id('H').with_scale(PxScale::from(100.0));
        let b = font.outline_glyph(g).expect("H has an outline").px_bounds();
        (b.max.y - b.min.y) as f64 / 100.0
    }

    /// The font size whose capitals are `cap` pixels tall.
    pub fn size_for_cap(self, cap: f64) -> f64 {
        cap / self.cap_ratio()
    }

    pub fn ascent(self, size: f64) -> f64 {
        self.font().as_scaled(PxScale::from(size as f32)).ascent() as f64
    }

    /// Line height (ascent − descent).
    pub fn height(self, size: f64) -> f64 {
        self.font().as_scaled(PxScale::from(size as f32)).height() as f64
    }

    /// Advance width of `text`, kerning included — the same layout imageproc draws.
    pub fn width(self, size: f64, text: &str) -> f64 {
        let f = self.font().as_scaled(PxScale::from(size as f32));
        let mut w = 0.0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = f.glyph_id(c);
            if let Some(p) = prev {
                w += f.kern(p, id);
            }
            w += f.h_advance(id);
            prev = Some(id);
        }
        w as f64
    }

    /// Width of `text` drawn by [`Canvas::text_tight`].
    pub fn width_tight(self, size: f64, text: &str) -> f64 {
        let words: Vec<&str> = text.split(' ').collect();
        let gaps = words.len().saturating_sub(1) as f64;
        words.iter().map(|w| self.width(size, w)).sum::<f64>() + gaps * TIGHT_SPACE * size
    }
}

/// Word gap of [`Canvas::text_tight`], per pixel of font size (DejaVu's own space is 0.32 em,
/// the monospaced faces' 0.6 em).
pub const TIGHT_SPACE: f64 = 0.22;

/// Where a drawn line of text sits: its layout box (ascent to descent) and the box of its
/// capitals (baseline up to cap height), which is what "glyph height" measures.
#[derive(Debug, Clone, Copy)]
pub struct TextBox {
    pub layout: Rect,
    pub caps: Rect,
}

/// An image plus every string written on it.
pub struct Canvas {
    pub img: RgbImage,
    pub texts: Vec<String>,
}

pub fn rgb(c: [u8; 3]) -> Rgb<u8> {
    Rgb(c)
}

impl Canvas {
    pub fn new(w: u32, h: u32, bg: [u8; 3]) -> Self {
        Self {
            img: RgbImage::from_pixel(w, h, Rgb(bg)),
            texts: Vec::new(),
        }
    }

    pub fn from_image(img: RgbImage) -> Self {
        Self {
            img,
            texts: Vec::new(),
        }
    }

    pub fn width(&self) -> u32 {
        self.img.width()
    }

    pub fn height(&self) -> u32 {
        self.img.height()
    }

    /// Draws `text` with narrow word gaps. Keys like `Harbor 80` are drawn this way: the
    /// reader's OCR splits a line at wide gaps (a monospaced space is a full cell) into separate
    /// detections, and a key split over two detections is never found; the reader ignores
    /// spaces when it matches a key, so a gap read as none costs nothing.
    pub fn text_tight(
        &mut self,
        x: f64,
        y: f64,
        text: &str,
        face: Face,
        size: f64,
        color: [u8; 3],
    ) -> TextBox {
        let mut cx = x;
        for (i, word) in text.split(' ').enumerate() {
            if i > 0 {
                cx += TIGHT_SPACE * size;
            }
            let (px, py) = (cx.round(), y.round());
            imageproc::drawing::draw_text_mut(
                &mut self.img,
                Rgb(color),
                px as i32,
                py as i32,
                PxScale::from(size as f32),
                face.font(),
                word,
            );
            cx += face.width(size, word);
        }
        self.texts.push(text.to_string());
        let mut b = text_box(x.round(), y.round(), text, face, size);
        b.layout.x1 = x.round() + face.width_tight(size, text);
        b.caps.x1 = b.layout.x1;
        b
    }

    /// Draws `text` with the top of its layout box at `(x, y)` (rounded to whole pixels).
    pub fn text(
        &mut self,
        x: f64,
        y: f64,
        text: &str,
        face: Face,
        size: f64,
        color: [u8; 3],
    ) -> TextBox {
        let (x, y) = (x.round(), y.round());
        imageproc::drawing::draw_text_mut(
            &mut self.img,
            Rgb(color),
            x as i32,
            y as i32,
            PxScale::from(size as f32),
            face.font(),
            text,
        );
        self.texts.push(text.to_string());
        text_box(x, y, text, face, size)
    }

    pub fn fill_rect(&mut self, r: Rect, c: [u8; 3]) {
        let (w, h) = (self.img.width() as i64, self.img.height() as i64);
        let x0 = (r.x0.round() as i64).clamp(0, w) as usize;
        let x1 = (r.x1.round() as i64).clamp(0, w) as usize;
        let y0 = (r.y0.round() as i64).clamp(0, h) as usize;
        let y1 = (r.y1.round() as i64).clamp(0, h) as usize;
        if x1 <= x0 {
            return;
        }
        let stride = w as usize * 3;
        let buf: &mut [u8] = &mut self.img;
        for y in y0..y1 {
            for px in buf[y * stride + x0 * 3..y * stride + x1 * 3].chunks_exact_mut(3) {
                px.copy_from_slice(&c);
            }
        }
    }

    /// An outline of `width` pixels drawn inside `r`.
    pub fn stroke_rect(&mut self, r: Rect, width: f64, c: [u8; 3]) {
        self.fill_rect(Rect::new(r.x0, r.y0, r.x1, r.y0 + width), c);
        self.fill_rect(Rect::new(r.x0, r.y1 - width, r.x1, r.y1), c);
        self.fill_rect(Rect::new(r.x0, r.y0, r.x0 + width, r.y1), c);
        self.fill_rect(Rect::new(r.x1 - width, r.y0, r.x1, r.y1), c);
    }

    pub fn fill_circle(&mut self, cx: f64, cy: f64, r: f64, c: [u8; 3]) {
        imageproc::drawing::draw_filled_circle_mut(
            &mut self.img,
            (cx.round() as i32, cy.round() as i32),
            r.round().max(1.0) as i32,
            Rgb(c),
        );
    }

    /// A filled polygon (no antialiasing: crisp edges keep the maze and jigsaw logic exact).
    pub fn fill_polygon(&mut self, pts: &[(f64, f64)], c: [u8; 3]) {
        let mut p: Vec<IPoint<i32>> = pts
            .iter()
            .map(|&(x, y)| IPoint::new(x.round() as i32, y.round() as i32))
            .collect();
        p.dedup();
        while p.len() > 1 && p.first() == p.last() {
            p.pop();
        }
        if p.len() >= 3 {
            imageproc::drawing::draw_polygon_mut(&mut self.img, &p, Rgb(c));
        }
    }

    /// A straight stroke of `width` pixels (a filled quadrilateral).
    pub fn line(&mut self, a: (f64, f64), b: (f64, f64), width: f64, c: [u8; 3]) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len = dx.hypot(dy).max(1e-9);
        let (nx, ny) = (-dy / len * width / 2.0, dx / len * width / 2.0);
        self.fill_polygon(
            &[
                (a.0 + nx, a.1 + ny),
                (b.0 + nx, b.1 + ny),
                (b.0 - nx, b.1 - ny),
                (a.0 - nx, a.1 - ny),
            ],
            c,
        );
        if width >= 3.0 {
            self.fill_circle(a.0, a.1, width / 2.0, c);
            self.fill_circle(b.0, b.1, width / 2.0, c);
        }
    }

    /// Copies `patch` with its top-left at `(x, y)`, clipped.
    pub fn paste(&mut self, patch: &RgbImage, x: i64, y: i64) {
        image::imageops::replace(&mut self.img, patch, x, y);
    }
}

/// The boxes `Canvas::text` would report for text drawn at `(x, y)`.
pub fn text_box(x: f64, y: f64, text: &str, face: Face, size: f64) -> TextBox {
    let w = face.width(size, text);
    let asc = face.ascent(size);
    let cap = face.cap_ratio() * size;
    TextBox {
        layout: Rect::new(x, y, x + w, y + face.height(size)),
        caps: Rect::new(x, y + asc - cap, x + w, y + asc),
    }
}

/// A smooth background: a bilinear blend of four corner colours plus a faint texture, so
/// large flat areas are not perfectly uniform (which would be unlike real photos and scans).
pub fn gradient(w: u32, h: u32, corners: [[u8; 3]; 4], texture: f64, phase: f64) -> RgbImage {
    // Separable: the texture is sin(x)·cos(y) and the blend is linear along each row, so the
    // per-pixel work is a few multiply-adds (this also keeps unoptimised test builds quick).
    let sx: Vec<f64> = (0..w).map(|x| (x as f64 * 0.021 + phase).sin()).collect();
    let (wf, hf) = (w.max(1) as f64, h.max(1) as f64);
    let mut img = RgbImage::new(w, h);
    for (y, row) in img.chunks_exact_mut((w as usize * 3).max(1)).enumerate() {
        let v = y as f64 / hf;
        let cy = texture * (y as f64 * 0.017 - phase).cos();
        let mut left = [0.0; 3];
        let mut step = [0.0; 3];
        for c in 0..3 {
            left[c] = corners[0][c] as f64 * (1.0 - v) + corners[2][c] as f64 * v;
            let right = corners[1][c] as f64 * (1.0 - v) + corners[3][c] as f64 * v;
            step[c] = (right - left[c]) / wf;
        }
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let t = cy * sx[x];
            for c in 0..3 {
                px[c] = (left[c] + step[c] * x as f64 + t).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    img
}

/// Grows `r` by `m` on every side, rounds outwards to whole pixels and clips to the image.
pub fn expand(r: Rect, m: f64, w: u32, h: u32) -> Rect {
    Rect::new(
        (r.x0 - m).floor().max(0.0),
        (r.y0 - m).floor().max(0.0),
        (r.x1 + m).ceil().min(w as f64),
        (r.y1 + m).ceil().min(h as f64),
    )
}

pub fn overlaps(a: &Rect, b: &Rect) -> bool {
    a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_box_matches_the_ink() {
        for face in Face::ALL {
            let mut c = Canvas::new(400, 120, [255, 255, 255]);
            let size = 40.0;
            let tb = c.text(20.0, 30.0, "K7XQ4H", face, size, [0, 0, 0]);
            let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
            for (x, y, p) in c.img.enumerate_pixels() {
                if p.0[0] < 128 {
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x + 1);
                    y1 = y1.max(y + 1);
                }
            }
            // Q's tail dips below the baseline; everything else sits on it.
            assert!(
                (y0 as f64 - tb.caps.y0).abs() <= 2.0,
                "{face:?}: ink top {y0}, caps {:?}",
                tb.caps
            );
            assert!(
                y1 as f64 >= tb.caps.y1 - 1.0 && (y1 as f64) <= tb.layout.y1 + 1.0,
                "{face:?}"
            );
            assert!(
                x0 as f64 >= tb.layout.x0 - 1.0 && (x1 as f64) <= tb.layout.x1 + 2.0,
                "{face:?}: {x0}..{x1} vs {:?}",
                tb.layout
            );
        }
    }
}
