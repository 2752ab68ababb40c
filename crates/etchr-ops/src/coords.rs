//! Coordinate adapters between the conventions models and clients use and the internal form
//! (pixel `[x0, y0, x1, y1]` on the original image).

use crate::geom::{Point, Rect};
use crate::program::Program;
use serde::{Deserialize, Serialize};

/// A box and point convention. Points follow the box convention's axes and scale
/// (Gemini points are `[y, x]` over 1000; `xywh` points are plain pixels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordSystem {
    /// Pixels on the original image, `[x0, y0, x1, y1]`. The internal form.
    #[default]
    Pixel,
    /// Fractions of the width and height, `[x0, y0, x1, y1]` in 0–1.
    Norm1,
    /// `[x0, y0, x1, y1]` in 0–1000 (Qwen3-VL's native grounding output).
    Norm1000,
    /// Pixels on the Qwen2.5-VL resized input (multiples of 28, see [`qwen25_resize`]).
    Qwen25,
    /// `[ymin, xmin, ymax, xmax]` in 0–1000 (Gemini).
    Gemini,
    /// Pixels as `[x, y, width, height]`.
    Xywh,
}

impl CoordSystem {
    pub const ALL: [CoordSystem; 6] = [
        CoordSystem::Pixel,
        CoordSystem::Norm1,
        CoordSystem::Norm1000,
        CoordSystem::Qwen25,
        CoordSystem::Gemini,
        CoordSystem::Xywh,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CoordSystem::Pixel => "pixel",
            CoordSystem::Norm1 => "norm1",
            CoordSystem::Norm1000 => "norm1000",
            CoordSystem::Qwen25 => "qwen25",
            CoordSystem::Gemini => "gemini",
            CoordSystem::Xywh => "xywh",
        }
    }
}

/// Qwen2.5-VL's `smart_resize`: both sides rounded to multiples of `factor` (28), the area kept
/// within `[min_pixels, max_pixels]`, aspect preserved as closely as the rounding allows.
/// Returns `(width, height)`.
pub fn qwen25_resize(width: u32, height: u32) -> (u32, u32) {
    const FACTOR: f64 = 28.0;
    const MIN_PIXELS: f64 = 56.0 * 56.0;
    const MAX_PIXELS: f64 = 16384.0 * 28.0 * 28.0;
    let (w, h) = (width.max(1) as f64, height.max(1) as f64);
    let mut hb = ((h / FACTOR).round() * FACTOR).max(FACTOR);
    let mut wb = ((w / FACTOR).round() * FACTOR).max(FACTOR);
    if hb * wb > MAX_PIXELS {
        let beta = (h * w / MAX_PIXELS).sqrt();
        hb = ((h / beta / FACTOR).floor() * FACTOR).max(FACTOR);
        wb = ((w / beta / FACTOR).floor() * FACTOR).max(FACTOR);
    } else if hb * wb < MIN_PIXELS {
        let beta = (MIN_PIXELS / (h * w)).sqrt();
        hb = (h * beta / FACTOR).ceil() * FACTOR;
        wb = (w * beta / FACTOR).ceil() * FACTOR;
    }
    (wb as u32, hb as u32)
}

/// Converts coordinates of one convention on a `width × height` image to and from pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adapter {
    pub system: CoordSystem,
    pub width: u32,
    pub height: u32,
    /// The model-input size for [`CoordSystem::Qwen25`].
    pub resized: (u32, u32),
}

impl Adapter {
    /// An adapter for `system` on an image of `width × height`. For `qwen25`, `resized` is the
    /// model-input size when the caller knows it, else Qwen2.5-VL's default resize is assumed.
    pub fn new(system: CoordSystem, width: u32, height: u32, resized: Option<(u32, u32)>) -> Self {
        Self {
            system,
            width,
            height,
            resized: resized.unwrap_or_else(|| qwen25_resize(width, height)),
        }
    }

    /// Per-axis scale from this convention's units to pixels.
    fn scale(&self) -> (f64, f64) {
        let (w, h) = (self.width as f64, self.height as f64);
        match self.system {
            CoordSystem::Pixel | CoordSystem::Xywh => (1.0, 1.0),
            CoordSystem::Norm1 => (w, h),
            CoordSystem::Norm1000 | CoordSystem::Gemini => (w / 1000.0, h / 1000.0),
            CoordSystem::Qwen25 => (
                w / self.resized.0.max(1) as f64,
                h / self.resized.1.max(1) as f64,
            ),
        }
    }

    pub fn box_to_pixels(&self, b: [f64; 4]) -> Rect {
        let (sx, sy) = self.scale();
        match self.system {
            CoordSystem::Gemini => Rect::new(b[1] * sx, b[0] * sy, b[3] * sx, b[2] * sy),
            CoordSystem::Xywh => Rect::new(b[0], b[1], b[0] + b[2], b[1] + b[3]),
            _ => Rect::new(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy),
        }
    }

    pub fn box_from_pixels(&self, r: Rect) -> [f64; 4] {
        let (sx, sy) = self.scale();
        match self.system {
            CoordSystem::Gemini => [r.y0 / sy, r.x0 / sx, r.y1 / sy, r.x1 / sx],
            CoordSystem::Xywh => [r.x0, r.y0, r.x1 - r.x0, r.y1 - r.y0],
            _ => [r.x0 / sx, r.y0 / sy, r.x1 / sx, r.y1 / sy],
        }
    }

    pub fn point_to_pixels(&self, p: [f64; 2]) -> Point {
        let (sx, sy) = self.scale();
        match self.system {
            CoordSystem::Gemini => Point::new(p[1] * sx, p[0] * sy),
            _ => Point::new(p[0] * sx, p[1] * sy),
        }
    }

    pub fn point_from_pixels(&self, p: Point) -> [f64; 2] {
        let (sx, sy) = self.scale();
        match self.system {
            CoordSystem::Gemini => [p.y / sy, p.x / sx],
            _ => [p.x / sx, p.y / sy],
        }
    }

    /// A program written in this convention, rewritten in pixels. (Programs deserialise their
    /// boxes as `[a, b, c, d]` whatever the convention; this gives those numbers their meaning.)
    pub fn program_to_pixels(&self, program: &Program) -> Program {
        program.map_geometry(&|r| self.box_to_pixels(r.into()), &|p| {
            self.point_to_pixels(p.into())
        })
    }

    /// A pixel program rewritten in this convention.
    pub fn program_from_pixels(&self, program: &Program) -> Program {
        program.map_geometry(&|r| self.box_from_pixels(r).into(), &|p| {
            self.point_from_pixels(p).into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_conversions() {
        let a = Adapter::new(CoordSystem::Norm1000, 2000, 1000, None);
        assert_eq!(
            a.box_to_pixels([100.0, 200.0, 500.0, 600.0]),
            Rect::new(200.0, 200.0, 1000.0, 600.0)
        );
        let g = Adapter::new(CoordSystem::Gemini, 2000, 1000, None);
        assert_eq!(
            g.box_to_pixels([200.0, 100.0, 600.0, 500.0]),
            Rect::new(200.0, 200.0, 1000.0, 600.0)
        );
        assert_eq!(g.point_to_pixels([500.0, 250.0]), Point::new(500.0, 500.0));
        let x = Adapter::new(CoordSystem::Xywh, 10, 10, None);
        assert_eq!(
            x.box_to_pixels([1.0, 2.0, 3.0, 4.0]),
            Rect::new(1.0, 2.0, 4.0, 6.0)
        );
        let q = Adapter::new(CoordSystem::Qwen25, 1000, 500, Some((500, 250)));
        assert_eq!(
            q.box_to_pixels([10.0, 10.0, 20.0, 20.0]),
            Rect::new(20.0, 20.0, 40.0, 40.0)
        );
    }

    #[test]
    fn qwen25_resize_matches_reference_values() {
        // Values from Qwen2.5-VL's smart_resize with its default limits.
        assert_eq!(qwen25_resize(1920, 1080), (1932, 1092));
        assert_eq!(qwen25_resize(28, 28), (56, 56));
        let (w, h) = qwen25_resize(8000, 8000);
        assert!(w % 28 == 0 && h % 28 == 0 && (w * h) as f64 <= 16384.0 * 784.0);
    }

    proptest! {
        #[test]
        fn boxes_and_points_round_trip(
            sys in prop::sample::select(CoordSystem::ALL.to_vec()),
            w in 1u32..5000, h in 1u32..5000,
            x0 in 0.0f64..1.0, y0 in 0.0f64..1.0, x1 in 0.0f64..1.0, y1 in 0.0f64..1.0,
        ) {
            let a = Adapter::new(sys, w, h, None);
            let r = Rect::new(x0 * w as f64, y0 * h as f64, x1 * w as f64, y1 * h as f64);
            let back = a.box_to_pixels(a.box_from_pixels(r));
            for (u, v) in [(back.x0, r.x0), (back.y0, r.y0), (back.x1, r.x1), (back.y1, r.y1)] {
                prop_assert!((u - v).abs() < 1e-6);
            }
            let p = r.center();
            let q = a.point_to_pixels(a.point_from_pixels(p));
            prop_assert!((p.x - q.x).abs() < 1e-6 && (p.y - q.y).abs() < 1e-6);
        }
    }
}
