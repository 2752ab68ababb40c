//! Rasterisation primitives in view pixels: spans, thick lines with round caps, convex
//! polygons, ellipses and text. Everything clips to the image, so callers never check bounds.

use crate::geom::Point;
use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};
use std::sync::OnceLock;

/// DejaVu Sans (Bitstream Vera licence, see assets/fonts/LICENSE-DejaVu.txt).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

pub fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        FontRef::try_from_slice(FONT_BYTES).expect("the embedded font is a valid TTF")
    })
}

/// Fills the half-open span `[x0, x1)` of row `y`, clipped.
fn fill_span(img: &mut RgbImage, y: i64, x0: f64, x1: f64, c: Rgb<u8>) {
    if y < 0 || y >= img.height() as i64 {
        return;
    }
    // Pixel x is covered when its centre x + 0.5 lies in [x0, x1].
    let a = (x0 - 0.5).ceil().max(0.0);
    let b = (x1 - 0.5).floor().min(img.width() as f64 - 1.0);
    if b < a {
        return;
    }
    let w = img.width() as usize;
    let row = &mut img.as_mut()[(y as usize * w) * 3..(y as usize * w + w) * 3];
    for px in row[(a as usize) * 3..(b as usize + 1) * 3].chunks_exact_mut(3) {
        px.copy_from_slice(&c.0);
    }
}

/// Rows whose pixel centres can fall in `[lo, hi]`, clipped to the image.
fn rows(img: &RgbImage, lo: f64, hi: f64) -> std::ops::RangeInclusive<i64> {
    let a = (lo - 0.5).ceil().max(0.0) as i64;
    let b = ((hi - 0.5).floor()).min(img.height() as f64 - 1.0) as i64;
    a..=b
}

/// Fills the axis-aligned rectangle `[x0, x1) × [y0, y1)`.
pub fn fill_rect(img: &mut RgbImage, x0: f64, y0: f64, x1: f64, y1: f64, c: Rgb<u8>) {
    for y in rows(img, y0, y1) {
        fill_span(img, y, x0, x1, c);
    }
}

/// An axis-aligned outline drawn *outside* the box, so it never covers what it points at.
pub fn outline_rect(
    img: &mut RgbImage,
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
    width: f64,
    c: Rgb<u8>,
) {
    fill_rect(img, x0 - width, y0 - width, x1 + width, y0, c);
    fill_rect(img, x0 - width, y1, x1 + width, y1 + width, c);
    fill_rect(img, x0 - width, y0, x0, y1, c);
    fill_rect(img, x1, y0, x1 + width, y1, c);
}

/// Fills a convex polygon by intersecting each row's centre line with its edges.
pub fn fill_convex(img: &mut RgbImage, pts: &[Point], c: Rgb<u8>) {
    if pts.len() < 3 {
        return;
    }
    let lo = pts.iter().map(|p| p.y).fold(f64::INFINITY, f64::min);
    let hi = pts.iter().map(|p| p.y).fold(f64::NEG_INFINITY, f64::max);
    for y in rows(img, lo, hi) {
        let yc = y as f64 + 0.5;
        let (mut xmin, mut xmax) = (f64::INFINITY, f64::NEG_INFINITY);
        for i in 0..pts.len() {
            let (a, b) = (pts[i], pts[(i + 1) % pts.len()]);
            if (a.y <= yc && b.y >= yc) || (b.y <= yc && a.y >= yc) {
                let x = if (b.y - a.y).abs() < 1e-12 {
                    xmin = xmin.min(a.x.min(b.x));
                    a.x.max(b.x)
                } else {
                    a.x + (yc - a.y) * (b.x - a.x) / (b.y - a.y)
                };
                xmin = xmin.min(x);
                xmax = xmax.max(x);
            }
        }
        if xmin <= xmax {
            fill_span(img, y, xmin, xmax, c);
        }
    }
}

pub fn fill_circle(img: &mut RgbImage, center: Point, r: f64, c: Rgb<u8>) {
    fill_ellipse_ring(img, center, r, r, 0.0, c);
}

/// A thick segment with round caps: the set of points within `width / 2` of the segment.
pub fn thick_line(img: &mut RgbImage, a: Point, b: Point, width: f64, c: Rgb<u8>) {
    let r = (width / 2.0).max(0.5);
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len = dx.hypot(dy);
    if len < 1e-9 {
        fill_circle(img, a, r, c);
        return;
    }
    let (nx, ny) = (-dy / len * r, dx / len * r);
    fill_convex(
        img,
        &[
            Point::new(a.x + nx, a.y + ny),
            Point::new(b.x + nx, b.y + ny),
            Point::new(b.x - nx, b.y - ny),
            Point::new(a.x - nx, a.y - ny),
        ],
        c,
    );
    fill_circle(img, a, r, c);
    fill_circle(img, b, r, c);
}

pub fn polyline(img: &mut RgbImage, pts: &[Point], closed: bool, width: f64, c: Rgb<u8>) {
    for w in pts.windows(2) {
        thick_line(img, w[0], w[1], width, c);
    }
    if closed && pts.len() > 2 {
        thick_line(img, pts[pts.len() - 1], pts[0], width, c);
    }
    if pts.len() == 1 {
        fill_circle(img, pts[0], width / 2.0, c);
    }
}

/// A line from `a` to `b` with a filled arrowhead at `b`.
pub fn arrow(img: &mut RgbImage, a: Point, b: Point, width: f64, c: Rgb<u8>) {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len = dx.hypot(dy);
    if len < 1e-9 {
        fill_circle(img, b, width, c);
        return;
    }
    let head = (width * 4.0).max(10.0).min(len);
    let (ux, uy) = (dx / len, dy / len);
    let base = Point::new(b.x - ux * head, b.y - uy * head);
    thick_line(img, a, base, width, c);
    let half = head * 0.5;
    fill_convex(
        img,
        &[
            b,
            Point::new(base.x - uy * half, base.y + ux * half),
            Point::new(base.x + uy * half, base.y - ux * half),
        ],
        c,
    );
}

/// The ring between the axis-aligned ellipse with radii `(rx, ry)` and the one `width` inside
/// it; `width == 0` fills the whole ellipse.
pub fn fill_ellipse_ring(
    img: &mut RgbImage,
    center: Point,
    rx: f64,
    ry: f64,
    width: f64,
    c: Rgb<u8>,
) {
    if rx <= 0.0 || ry <= 0.0 {
        return;
    }
    let (irx, iry) = (rx - width, ry - width);
    let hollow = width > 0.0 && irx > 0.0 && iry > 0.0;
    for y in rows(img, center.y - ry, center.y + ry) {
        let t = (y as f64 + 0.5 - center.y) / ry;
        if t.abs() > 1.0 {
            continue;
        }
        let half = rx * (1.0 - t * t).sqrt();
        let ti = (y as f64 + 0.5 - center.y) / iry;
        if hollow && ti.abs() < 1.0 {
            let inner = irx * (1.0 - ti * ti).sqrt();
            fill_span(img, y, center.x - half, center.x - inner, c);
            fill_span(img, y, center.x + inner, center.x + half, c);
        } else {
            fill_span(img, y, center.x - half, center.x + half, c);
        }
    }
}

/// Width and height of `text` at `size` pixels.
pub fn text_size(text: &str, size: f64) -> (u32, u32) {
    imageproc::drawing::text_size(PxScale::from(size as f32), font(), text)
}

/// Draws `text` with its top-left at `at`, optionally on a padded background.
pub fn text(
    img: &mut RgbImage,
    at: Point,
    text: &str,
    size: f64,
    c: Rgb<u8>,
    background: Option<Rgb<u8>>,
) {
    let scale = PxScale::from(size as f32);
    if let Some(bg) = background {
        let (w, h) = text_size(text, size);
        let pad = (size * 0.2).max(2.0);
        fill_rect(
            img,
            at.x - pad,
            at.y - pad,
            at.x + w as f64 + pad,
            at.y + h.max(size as u32) as f64 + pad,
            bg,
        );
    }
    imageproc::drawing::draw_text_mut(
        img,
        c,
        at.x.round() as i32,
        at.y.round() as i32,
        scale,
        font(),
        text,
    );
}

/// Black or white, whichever reads better on `bg`.
pub fn contrasting(bg: Rgb<u8>) -> Rgb<u8> {
    let luma = 0.299 * bg[0] as f64 + 0.587 * bg[1] as f64 + 0.114 * bg[2] as f64;
    if luma > 140.0 {
        Rgb([0, 0, 0])
    } else {
        Rgb([255, 255, 255])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outline_sits_outside_the_box() {
        let mut img = RgbImage::new(20, 20);
        outline_rect(&mut img, 5.0, 5.0, 15.0, 15.0, 2.0, Rgb([255, 0, 0]));
        assert_eq!(img.get_pixel(4, 10).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(3, 10).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(2, 10).0, [0, 0, 0]);
        assert_eq!(
            img.get_pixel(5, 10).0,
            [0, 0, 0],
            "the box's own pixels stay untouched"
        );
        assert_eq!(img.get_pixel(15, 15).0, [255, 0, 0]);
    }

    #[test]
    fn horizontal_thick_line_covers_its_width() {
        let mut img = RgbImage::new(30, 30);
        thick_line(
            &mut img,
            Point::new(5.0, 15.0),
            Point::new(25.0, 15.0),
            4.0,
            Rgb([1, 2, 3]),
        );
        for y in 13..17 {
            assert_eq!(img.get_pixel(15, y).0, [1, 2, 3], "row {y}");
        }
        assert_eq!(img.get_pixel(15, 12).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(15, 17).0, [0, 0, 0]);
    }

    #[test]
    fn drawing_far_outside_is_clipped() {
        let mut img = RgbImage::new(10, 10);
        thick_line(
            &mut img,
            Point::new(-1e6, -5.0),
            Point::new(1e6, 5.0),
            3.0,
            Rgb([9, 9, 9]),
        );
        fill_ellipse_ring(
            &mut img,
            Point::new(-50.0, -50.0),
            10.0,
            10.0,
            2.0,
            Rgb([9, 9, 9]),
        );
        text(
            &mut img,
            Point::new(500.0, 500.0),
            "hi",
            12.0,
            Rgb([9, 9, 9]),
            Some(Rgb([1, 1, 1])),
        );
    }
}
