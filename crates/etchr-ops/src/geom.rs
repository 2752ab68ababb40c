//! Plain geometry: points, rectangles and 2-D affine maps in continuous pixel space.
//!
//! Pixel `(i, j)` covers the square `[i, i+1) × [j, j+1)`, so a box `[x0, y0, x1, y1]` is
//! half-open and a crop of `[10, 10, 20, 20]` is exactly 10 × 10 pixels.

use serde::{Deserialize, Serialize};

/// A point `[x, y]` in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 2]", into = "[f64; 2]")]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub const fn new(x: f64, y: f64) -> Self {
        Self { x, y }
    }

    pub fn is_finite(&self) -> bool {
        self.x.is_finite() && self.y.is_finite()
    }

    pub fn distance(&self, other: Point) -> f64 {
        (self.x - other.x).hypot(self.y - other.y)
    }
}

impl From<[f64; 2]> for Point {
    fn from(a: [f64; 2]) -> Self {
        Self::new(a[0], a[1])
    }
}

impl From<Point> for [f64; 2] {
    fn from(p: Point) -> Self {
        [p.x, p.y]
    }
}

/// An axis-aligned box `[x0, y0, x1, y1]` in pixels (`x1`, `y1` exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 4]", into = "[f64; 4]")]
pub struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    pub const fn new(x0: f64, y0: f64, x1: f64, y1: f64) -> Self {
        Self { x0, y0, x1, y1 }
    }

    /// The whole of a `width × height` image.
    pub fn full(width: u32, height: u32) -> Self {
        Self::new(0.0, 0.0, width as f64, height as f64)
    }

    pub fn width(&self) -> f64 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f64 {
        self.y1 - self.y0
    }

    pub fn area(&self) -> f64 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    pub fn center(&self) -> Point {
        Point::new((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)
    }

    pub fn is_finite(&self) -> bool {
        self.x0.is_finite() && self.y0.is_finite() && self.x1.is_finite() && self.y1.is_finite()
    }

    /// Corners with `x0 <= x1` and `y0 <= y1`.
    pub fn normalized(&self) -> Self {
        Self::new(
            self.x0.min(self.x1),
            self.y0.min(self.y1),
            self.x0.max(self.x1),
            self.y0.max(self.y1),
        )
    }

    pub fn intersect(&self, other: &Rect) -> Option<Rect> {
        let r = Rect::new(
            self.x0.max(other.x0),
            self.y0.max(other.y0),
            self.x1.min(other.x1),
            self.y1.min(other.y1),
        );
        (r.x0 < r.x1 && r.y0 < r.y1).then_some(r)
    }

    pub fn union(&self, other: &Rect) -> Rect {
        Rect::new(
            self.x0.min(other.x0),
            self.y0.min(other.y0),
            self.x1.max(other.x1),
            self.y1.max(other.y1),
        )
    }

    /// The same box with `by` added on every side (a negative `by` takes it off).
    pub fn padded(&self, by: f64) -> Rect {
        Rect::new(self.x0 - by, self.y0 - by, self.x1 + by, self.y1 + by)
    }

    /// The same box moved by `(dx, dy)`.
    pub fn translated(&self, dx: f64, dy: f64) -> Rect {
        Rect::new(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)
    }

    pub fn contains(&self, p: Point) -> bool {
        p.x >= self.x0 && p.x < self.x1 && p.y >= self.y0 && p.y < self.y1
    }

    /// Generalised IoU (Rezatofighi et al., 2019): the IoU less the share of the smallest
    /// enclosing box that the union leaves empty. In (−1, 1]; unlike the IoU it still ranks
    /// boxes that do not overlap, by how far apart they are (−1 when either box is empty).
    pub fn giou(&self, other: &Rect) -> f64 {
        let hull = self.union(other).area();
        let inter = self.intersect(other).map_or(0.0, |r| r.area());
        let union = self.area() + other.area() - inter;
        if hull <= 0.0 || union <= 0.0 || self.area() <= 0.0 || other.area() <= 0.0 {
            return -1.0;
        }
        inter / union - (hull - union) / hull
    }

    /// Intersection over union, 0 when either box is empty.
    pub fn iou(&self, other: &Rect) -> f64 {
        let inter = self.intersect(other).map_or(0.0, |r| r.area());
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    pub fn corners(&self) -> [Point; 4] {
        [
            Point::new(self.x0, self.y0),
            Point::new(self.x1, self.y0),
            Point::new(self.x1, self.y1),
            Point::new(self.x0, self.y1),
        ]
    }

    /// The smallest box holding every point.
    pub fn bounding(points: &[Point]) -> Rect {
        let mut r = Rect::new(
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        );
        for p in points {
            r.x0 = r.x0.min(p.x);
            r.y0 = r.y0.min(p.y);
            r.x1 = r.x1.max(p.x);
            r.y1 = r.y1.max(p.y);
        }
        r
    }

    /// Integer pixel bounds `(x, y, w, h)`, rounding the corners to the nearest pixel edge.
    pub fn to_pixel_bounds(&self) -> (u32, u32, u32, u32) {
        let x0 = self.x0.round().max(0.0) as u32;
        let y0 = self.y0.round().max(0.0) as u32;
        let x1 = self.x1.round().max(0.0) as u32;
        let y1 = self.y1.round().max(0.0) as u32;
        (x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
    }
}

impl From<[f64; 4]> for Rect {
    fn from(a: [f64; 4]) -> Self {
        Self::new(a[0], a[1], a[2], a[3])
    }
}

impl From<Rect> for [f64; 4] {
    fn from(r: Rect) -> Self {
        [r.x0, r.y0, r.x1, r.y1]
    }
}

/// `x' = a·x + b·y + c`, `y' = d·x + e·y + f`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 6]", into = "[f64; 6]")]
pub struct Affine {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub d: f64,
    pub e: f64,
    pub f: f64,
}

impl From<[f64; 6]> for Affine {
    fn from(m: [f64; 6]) -> Self {
        Self {
            a: m[0],
            b: m[1],
            c: m[2],
            d: m[3],
            e: m[4],
            f: m[5],
        }
    }
}

impl From<Affine> for [f64; 6] {
    fn from(m: Affine) -> Self {
        [m.a, m.b, m.c, m.d, m.e, m.f]
    }
}

impl Affine {
    pub const IDENTITY: Affine = Affine {
        a: 1.0,
        b: 0.0,
        c: 0.0,
        d: 0.0,
        e: 1.0,
        f: 0.0,
    };

    pub fn translate(dx: f64, dy: f64) -> Self {
        Self {
            c: dx,
            f: dy,
            ..Self::IDENTITY
        }
    }

    pub fn scale(sx: f64, sy: f64) -> Self {
        Self {
            a: sx,
            e: sy,
            ..Self::IDENTITY
        }
    }

    pub fn apply(&self, p: Point) -> Point {
        Point::new(
            self.a * p.x + self.b * p.y + self.c,
            self.d * p.x + self.e * p.y + self.f,
        )
    }

    /// `self ∘ inner`: first `inner`, then `self`.
    pub fn after(&self, inner: &Affine) -> Affine {
        Affine {
            a: self.a * inner.a + self.b * inner.d,
            b: self.a * inner.b + self.b * inner.e,
            c: self.a * inner.c + self.b * inner.f + self.c,
            d: self.d * inner.a + self.e * inner.d,
            e: self.d * inner.b + self.e * inner.e,
            f: self.d * inner.c + self.e * inner.f + self.f,
        }
    }

    pub fn inverse(&self) -> Option<Affine> {
        let det = self.a * self.e - self.b * self.d;
        if det.abs() < 1e-12 || !det.is_finite() {
            return None;
        }
        let a = self.e / det;
        let b = -self.b / det;
        let d = -self.d / det;
        let e = self.a / det;
        Some(Affine {
            a,
            b,
            c: -(a * self.c + b * self.f),
            d,
            e,
            f: -(d * self.c + e * self.f),
        })
    }

    /// Whether the map keeps axis-aligned boxes axis-aligned (no shear, rotations of 90° only).
    pub fn is_axis_aligned(&self) -> bool {
        (self.b.abs() < 1e-12 && self.d.abs() < 1e-12)
            || (self.a.abs() < 1e-12 && self.e.abs() < 1e-12)
    }

    /// The bounding box of the image of `r`.
    pub fn apply_rect(&self, r: &Rect) -> Rect {
        Rect::bounding(&r.corners().map(|p| self.apply(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_composes_to_identity() {
        let m = Affine {
            a: 0.0,
            b: -2.0,
            c: 10.0,
            d: 3.0,
            e: 0.0,
            f: -4.0,
        };
        let id = m.after(&m.inverse().unwrap());
        for (x, y) in [
            (id.a, 1.0),
            (id.b, 0.0),
            (id.c, 0.0),
            (id.d, 0.0),
            (id.e, 1.0),
            (id.f, 0.0),
        ] {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn iou_of_half_overlap() {
        let a = Rect::new(0.0, 0.0, 10.0, 10.0);
        let b = Rect::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-12);
        assert_eq!(a.iou(&Rect::new(20.0, 20.0, 30.0, 30.0)), 0.0);
    }

    #[test]
    fn giou_ranks_boxes_that_do_not_overlap_by_distance() {
        let a = Rect::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.giou(&a), 1.0);
        let b = Rect::new(5.0, 0.0, 15.0, 10.0);
        // Overlapping inside their hull: the IoU itself.
        assert!((a.giou(&b) - a.iou(&b)).abs() < 1e-12);
        let touching = Rect::new(10.0, 0.0, 20.0, 10.0);
        assert!(a.giou(&touching).abs() < 1e-12);
        let near = Rect::new(20.0, 0.0, 30.0, 10.0);
        let far = Rect::new(90.0, 90.0, 100.0, 100.0);
        assert!((a.giou(&near) - (0.0 - 100.0 / 300.0)).abs() < 1e-12);
        assert!(a.giou(&far) < a.giou(&near));
        assert!(a.giou(&far) > -1.0);
        assert_eq!(a.giou(&Rect::new(3.0, 3.0, 3.0, 9.0)), -1.0);
    }

    #[test]
    fn padding_adds_or_takes_off_every_side() {
        let a = Rect::new(10.0, 20.0, 30.0, 40.0);
        assert_eq!(a.padded(2.0), Rect::new(8.0, 18.0, 32.0, 42.0));
        assert_eq!(a.padded(2.0).padded(-2.0), a);
    }
}
