//! Provenance: how a rendered view maps back to the original image.
//!
//! A [`Transform`] is a chain of invertible steps. Step `k` maps frame `k+1` to frame `k`;
//! frame 0 is the original image and the last frame is the view. Composition is concatenation,
//! so nested zooms compose exactly, and a box named on any view maps back to original pixels.

use crate::geom::{Affine, Point, Rect};
use serde::{Deserialize, Serialize};

/// One invertible step from a view back to the frame it was derived from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// `prev = matrix · view` (crop, zoom, rotate, flip).
    Affine { matrix: Affine },
    /// A `rows × cols` tile permutation of a `width × height` frame: view tile `i` shows
    /// previous-frame tile `order[i]`. Pixels outside the `cols·tile_w × rows·tile_h` area stay put.
    Jigsaw {
        width: u32,
        height: u32,
        rows: u32,
        cols: u32,
        order: Vec<u32>,
    },
    /// A collage: each piece shows the previous frame's `from` with its top-left corner at
    /// `to`. Later pieces lie on top; the background between pieces maps nowhere (points there
    /// stay put).
    Collage { pieces: Vec<Moved> },
}

/// One piece of a [`Step::Collage`]: `from` (previous-frame pixels) shown at `to` (view pixels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    pub from: Rect,
    pub to: Point,
}

impl Moved {
    /// Where the piece lies in the view.
    fn placed(&self) -> Rect {
        self.from
            .translated(self.to.x - self.from.x0, self.to.y - self.from.y0)
    }
}

/// `r` cut by every piece and each cut moved to the piece's other side (`forward`: from the
/// previous frame to the view), united; `r` itself when it meets no piece.
fn collage_rect(pieces: &[Moved], r: &Rect, forward: bool) -> Rect {
    let mut out: Option<Rect> = None;
    for m in pieces {
        let (here, there) = if forward {
            (m.from, m.placed())
        } else {
            (m.placed(), m.from)
        };
        if let Some(cut) = r.intersect(&here) {
            let moved = cut.translated(there.x0 - here.x0, there.y0 - here.y0);
            out = Some(out.map_or(moved, |o| o.union(&moved)));
        }
    }
    out.unwrap_or(*r)
}

impl Step {
    fn jigsaw_tile(width: u32, height: u32, rows: u32, cols: u32) -> (f64, f64) {
        ((width / cols) as f64, (height / rows) as f64)
    }

    /// Maps a point of this step's output frame to its input frame.
    pub fn to_prev(&self, p: Point) -> Point {
        match self {
            Step::Affine { matrix } => matrix.apply(p),
            Step::Jigsaw {
                width,
                height,
                rows,
                cols,
                order,
            } => {
                let (tw, th) = Self::jigsaw_tile(*width, *height, *rows, *cols);
                match tile_of(p, tw, th, *rows, *cols) {
                    Some((i, ox, oy)) => {
                        let src = order[i] as usize;
                        let (sc, sr) =
                            ((src % *cols as usize) as f64, (src / *cols as usize) as f64);
                        Point::new(sc * tw + ox, sr * th + oy)
                    }
                    None => p,
                }
            }
            Step::Collage { pieces } => pieces
                .iter()
                .rev()
                .map(|m| (m, m.placed()))
                .find(|(_, at)| at.contains(p))
                .map_or(p, |(m, at)| {
                    Point::new(p.x - at.x0 + m.from.x0, p.y - at.y0 + m.from.y0)
                }),
        }
    }

    /// Maps a point of this step's input frame to its output frame.
    pub fn to_next(&self, p: Point) -> Point {
        match self {
            Step::Affine { matrix } => matrix.inverse().map_or(p, |inv| inv.apply(p)),
            Step::Jigsaw {
                width,
                height,
                rows,
                cols,
                order,
            } => {
                let (tw, th) = Self::jigsaw_tile(*width, *height, *rows, *cols);
                match tile_of(p, tw, th, *rows, *cols) {
                    Some((src, ox, oy)) => {
                        let dst = order.iter().position(|&o| o as usize == src).unwrap_or(src);
                        let (dc, dr) =
                            ((dst % *cols as usize) as f64, (dst / *cols as usize) as f64);
                        Point::new(dc * tw + ox, dr * th + oy)
                    }
                    None => p,
                }
            }
            Step::Collage { pieces } => {
                pieces
                    .iter()
                    .rev()
                    .find(|m| m.from.contains(p))
                    .map_or(p, |m| {
                        let at = m.placed();
                        Point::new(p.x - m.from.x0 + at.x0, p.y - m.from.y0 + at.y0)
                    })
            }
        }
    }

    /// The bounding box in the input frame of a box in the output frame. Boxes spanning
    /// several jigsaw tiles are split per tile and the pieces united.
    pub fn rect_to_prev(&self, r: &Rect) -> Rect {
        match self {
            Step::Affine { matrix } => matrix.apply_rect(r),
            Step::Jigsaw { .. } => self.map_rect_piecewise(r, |p| self.to_prev(p)),
            Step::Collage { pieces } => collage_rect(pieces, r, false),
        }
    }

    pub fn rect_to_next(&self, r: &Rect) -> Rect {
        match self {
            Step::Affine { matrix } => matrix.inverse().map_or(*r, |inv| inv.apply_rect(r)),
            Step::Jigsaw { .. } => self.map_rect_piecewise(r, |p| self.to_next(p)),
            Step::Collage { pieces } => collage_rect(pieces, r, true),
        }
    }

    fn map_rect_piecewise(&self, r: &Rect, map: impl Fn(Point) -> Point) -> Rect {
        let Step::Jigsaw {
            width,
            height,
            rows,
            cols,
            ..
        } = self
        else {
            unreachable!("piecewise mapping is only for jigsaw steps")
        };
        let (tw, th) = Self::jigsaw_tile(*width, *height, *rows, *cols);
        // Cut lines: tile edges plus the remainder strip's edge.
        let xs = cuts(r.x0, r.x1, tw, *cols);
        let ys = cuts(r.y0, r.y1, th, *rows);
        let mut out: Option<Rect> = None;
        for wx in xs.windows(2) {
            for wy in ys.windows(2) {
                let piece = Rect::new(wx[0], wy[0], wx[1], wy[1]);
                // Map the piece through its own tile: use its centre to pick the tile, then
                // translate the corners by the same offset.
                let c = piece.center();
                let mc = map(c);
                let (dx, dy) = (mc.x - c.x, mc.y - c.y);
                let moved = Rect::new(piece.x0 + dx, piece.y0 + dy, piece.x1 + dx, piece.y1 + dy);
                out = Some(out.map_or(moved, |o| o.union(&moved)));
            }
        }
        out.unwrap_or(*r)
    }
}

fn cuts(lo: f64, hi: f64, tile: f64, n: u32) -> Vec<f64> {
    let mut v = vec![lo];
    for k in 1..=n {
        let edge = k as f64 * tile;
        if edge > lo && edge < hi {
            v.push(edge);
        }
    }
    v.push(hi);
    v
}

/// The tile index holding `p` and the offset inside it, or `None` outside the tiled area.
fn tile_of(p: Point, tw: f64, th: f64, rows: u32, cols: u32) -> Option<(usize, f64, f64)> {
    if tw <= 0.0 || th <= 0.0 || p.x < 0.0 || p.y < 0.0 {
        return None;
    }
    let c = (p.x / tw).floor();
    let r = (p.y / th).floor();
    // The far edge of the tiled area belongs to the last tile, so closed boxes map cleanly.
    let c = if c == cols as f64 && p.x == cols as f64 * tw {
        c - 1.0
    } else {
        c
    };
    let r = if r == rows as f64 && p.y == rows as f64 * th {
        r - 1.0
    } else {
        r
    };
    if c >= cols as f64 || r >= rows as f64 {
        return None;
    }
    Some((
        (r as u32 * cols + c as u32) as usize,
        p.x - c * tw,
        p.y - r * th,
    ))
}

/// The map from a view back to the original image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transform {
    /// Oldest first: `steps[0]` maps frame 1 to the original.
    pub steps: Vec<Step>,
}

impl Transform {
    pub fn identity() -> Self {
        Self::default()
    }

    /// Whether this is the original itself (no steps).
    pub fn is_identity(&self) -> bool {
        self.steps.is_empty()
    }

    /// This transform followed by `step` (the new view is derived from this one's view).
    pub fn then(&self, step: Step) -> Self {
        let mut steps = self.steps.clone();
        steps.push(step);
        Self { steps }
    }

    /// This transform followed by all of `later`'s steps: `later` was computed on this one's view.
    pub fn compose(&self, later: &Transform) -> Self {
        let mut steps = self.steps.clone();
        steps.extend(later.steps.iter().cloned());
        Self { steps }
    }

    pub fn to_original(&self, p: Point) -> Point {
        self.steps.iter().rev().fold(p, |p, s| s.to_prev(p))
    }

    pub fn to_view(&self, p: Point) -> Point {
        self.steps.iter().fold(p, |p, s| s.to_next(p))
    }

    pub fn rect_to_original(&self, r: &Rect) -> Rect {
        self.steps.iter().rev().fold(*r, |r, s| s.rect_to_prev(&r))
    }

    pub fn rect_to_view(&self, r: &Rect) -> Rect {
        self.steps.iter().fold(*r, |r, s| s.rect_to_next(&r))
    }

    /// The whole chain as one matrix (view → original), when every step is affine.
    pub fn as_affine(&self) -> Option<Affine> {
        let mut m = Affine::IDENTITY;
        for s in &self.steps {
            match s {
                // m maps frame k to original; s maps frame k+1 to frame k.
                Step::Affine { matrix } => m = m.after(matrix),
                Step::Jigsaw { .. } | Step::Collage { .. } => return None,
            }
        }
        Some(m)
    }

    /// Whether every step is axis-aligned, so boxes map to boxes without growing.
    pub fn is_axis_aligned(&self) -> bool {
        self.steps.iter().all(|s| match s {
            Step::Affine { matrix } => matrix.is_axis_aligned(),
            Step::Jigsaw { .. } | Step::Collage { .. } => true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Point, b: Point) -> bool {
        (a.x - b.x).abs() < 1e-9 && (a.y - b.y).abs() < 1e-9
    }

    #[test]
    fn crop_then_zoom_maps_back() {
        let t = Transform::identity()
            .then(Step::Affine {
                matrix: Affine::translate(100.0, 50.0),
            })
            .then(Step::Affine {
                matrix: Affine::scale(0.5, 0.5),
            });
        assert!(close(
            t.to_original(Point::new(20.0, 10.0)),
            Point::new(110.0, 55.0)
        ));
        assert!(close(
            t.to_view(Point::new(110.0, 55.0)),
            Point::new(20.0, 10.0)
        ));
        let m = t.as_affine().unwrap();
        assert!(close(
            m.apply(Point::new(20.0, 10.0)),
            Point::new(110.0, 55.0)
        ));
    }

    #[test]
    fn jigsaw_step_round_trips() {
        let s = Step::Jigsaw {
            width: 100,
            height: 100,
            rows: 2,
            cols: 2,
            order: vec![3, 2, 1, 0],
        };
        let p = Point::new(10.0, 20.0); // view tile 0 shows source tile 3
        assert!(close(s.to_prev(p), Point::new(60.0, 70.0)));
        assert!(close(s.to_next(s.to_prev(p)), p));
        let r = s.rect_to_prev(&Rect::new(10.0, 10.0, 40.0, 40.0));
        assert_eq!(r, Rect::new(60.0, 60.0, 90.0, 90.0));
    }
}
