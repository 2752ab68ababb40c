//! The seam where edit programs come from.
//!
//! One trait, shared by the loop and the HTTP server (`etchr_server::planner` re-exports it): the
//! editing model (`etchr-model`, candle; wrapped by the `etchr` binary) implements [`Planner`];
//! without one, `evr` and `progressive` plan with the question-blind [`TileSearch`], and clients
//! may send explicit ops ([`ExplicitOps`]). In the `tools` strategy the upstream itself plans through tool calls, so no
//! `Planner` runs there; the trace names the planner either way.

use etchr_ops::{Op, Point, Program, Rect, RgbImage, Transform};
use std::sync::Arc;

/// What a planner is asked.
pub struct PlanRequest<'a> {
    /// The image the planner looks at: the current view (the original on the first step).
    /// Shared, so that a planner handing it to a model on another thread need not copy it.
    pub image: &'a Arc<RgbImage>,
    /// How `image` maps back to the original (identity for the original).
    pub transform: &'a Transform,
    /// Width and height of the original image.
    pub original_size: (u32, u32),
    /// The question the edit should help answer.
    pub question: &'a str,
    /// The upstream's reasoning so far (the progressive strategy conditions on it).
    pub context: Option<&'a str>,
    /// 0 for the first edit of a run, 1 for the second, ...
    pub step: usize,
    /// Regions of the original (pixels) that earlier edits of this run showed without helping:
    /// a planner that can propose alternatives should place this edit elsewhere (`evr` asks
    /// for its next candidate this way). Empty when nothing was rejected.
    pub avoid: &'a [Rect],
}

/// Produces an edit program for an image and a question.
///
/// Called on a blocking thread (model inference is CPU/GPU-bound), so implementations may block.
/// The program must be in ORIGINAL-image pixels: a model that reads the view should map its boxes
/// back through `request.transform` (`Transform::rect_to_original`).
pub trait Planner: Send + Sync {
    /// A short name for traces, logs and metrics, e.g. the model id.
    fn name(&self) -> &str;

    /// The program to render, in original-image pixels.
    fn plan(&self, request: &PlanRequest<'_>) -> Result<Program, PlanError>;
}

/// Why planning failed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The request cannot be planned (e.g. an empty question).
    #[error("{0}")]
    Invalid(String),
    /// The model failed.
    #[error("the editing model failed: {0}")]
    Model(String),
    /// The model's queue is full: retry shortly (the server answers 503 with `Retry-After`).
    #[error("{0}")]
    Overloaded(String),
    /// The planner has nothing more to propose; the loop stops editing.
    #[error("the planner has no further edit")]
    Exhausted,
}

/// A program the client sent (already converted to original pixels). Proposed once: a second
/// request for a plan is [`PlanError::Exhausted`]-free but returns the same program, which the
/// loop recognises as "nothing new" and stops editing.
#[derive(Debug, Clone)]
pub struct ExplicitOps {
    pub program: Program,
}

impl ExplicitOps {
    pub fn new(program: Program) -> Self {
        Self { program }
    }
}

impl ExplicitOps {
    /// The planner name traces show for client-sent programs.
    pub const NAME: &'static str = "explicit_ops";
}

impl Planner for ExplicitOps {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn plan(&self, _request: &PlanRequest<'_>) -> Result<Program, PlanError> {
        Ok(self.program.clone())
    }
}

/// The question-blind fallback planner: a zoom-in tile search.
///
/// Step k crops tile k of the original, scanning a 2×2 grid (steps 0–3, row-major) and then a 3×3
/// grid (steps 4–12); each tile is widened by an eighth of its size on every side (so an object on
/// a tile border is whole in at least one tile) and zoomed back towards the original's size
/// (factor = grid size, capped so the long side stays within `max_side`). After 13 steps it
/// reports [`PlanError::Exhausted`]. It ignores the question and the reasoning: it exists so that
/// `evr` and `progressive` work end to end without the editing model (`etchr reason --planner
/// tile-search`, `[model] enabled = false`), and the trace says `tile_search` whenever it ran.
#[derive(Debug, Clone)]
pub struct TileSearch {
    /// Longest side a zoomed tile may reach.
    pub max_side: u32,
}

impl Default for TileSearch {
    fn default() -> Self {
        Self { max_side: 2048 }
    }
}

impl TileSearch {
    /// The grid size and tile index for step `k`, or `None` once all 13 tiles were shown.
    fn tile(step: usize) -> Option<(u32, u32)> {
        match step {
            0..=3 => Some((2, step as u32)),
            4..=12 => Some((3, step as u32 - 4)),
            _ => None,
        }
    }

    /// The region of tile `i` of an `n × n` grid over `width × height`, widened by an eighth
    /// of a tile on every side.
    fn region(width: u32, height: u32, n: u32, i: u32) -> Rect {
        let (w, h) = (width as f64, height as f64);
        let (tw, th) = (w / n as f64, h / n as f64);
        let (col, row) = ((i % n) as f64, (i / n) as f64);
        let (mx, my) = (tw / 8.0, th / 8.0);
        Rect::new(
            (col * tw - mx).max(0.0),
            (row * th - my).max(0.0),
            ((col + 1.0) * tw + mx).min(w),
            ((row + 1.0) * th + my).min(h),
        )
    }

    /// Whether `tile` was as good as shown already: some region of `shown` covers at least
    /// half of it without being much larger (at most 1.25× its area), so it was seen at about
    /// this zoom or closer. A quadrant seen whole does not hide the smaller 3×3 tiles inside
    /// it (they show it closer); a small rejected crop does not hide the tile around it.
    fn shown(tile: &Rect, shown: &[Rect]) -> bool {
        shown_as_closely(tile, shown, 1.25)
    }

    /// Crop `region`, zoomed by up to the grid size.
    fn crop_and_zoom(&self, region: Rect, n: u32) -> Program {
        let long = region.width().max(region.height()).max(1.0);
        crop_zoomed(region, (n as f64).min(self.max_side as f64 / long))
    }

    /// The program for step `step` on an original of `width × height`.
    pub fn program(&self, width: u32, height: u32, step: usize) -> Option<Program> {
        let (n, i) = Self::tile(step)?;
        Some(self.crop_and_zoom(Self::region(width, height, n, i), n))
    }

    /// The tile to show next when something has a guess where the target is: among the tiles
    /// not shown yet (see [`Self::shown`]; `avoid` holds the parts already shown), the one
    /// holding the most `weight` (points in original pixels, e.g. an editing model's pointer
    /// distribution), the 2×2 tiles before the 3×3 ones; ties go to the earlier tile. `None`
    /// once every tile was shown.
    pub fn ranked(
        &self,
        width: u32,
        height: u32,
        weight: &[(Point, f32)],
        avoid: &[Rect],
    ) -> Option<Program> {
        for n in [2u32, 3] {
            let best = (0..n * n)
                .map(|i| Self::region(width, height, n, i))
                .filter(|r| !Self::shown(r, avoid))
                .map(|r| {
                    let mass: f32 = weight
                        .iter()
                        .filter(|(p, _)| r.contains(*p))
                        .map(|(_, w)| w)
                        .sum();
                    (r, mass)
                })
                .fold(None::<(Rect, f32)>, |best, (r, m)| match best {
                    Some((_, bm)) if bm >= m => best,
                    _ => Some((r, m)),
                });
            if let Some((region, _)) = best {
                return Some(self.crop_and_zoom(region, n));
            }
        }
        None
    }
}

/// Whether some region of `shown` covers at least half of `region` while being at most
/// `larger` times its area: `region` was then seen at about its own zoom or closer.
pub fn shown_as_closely(region: &Rect, shown: &[Rect], larger: f64) -> bool {
    let area = region.area().max(1.0);
    shown.iter().any(|a| {
        let covered = a.intersect(region).map_or(0.0, |i| i.area());
        covered >= 0.5 * area && a.area() <= larger * area
    })
}

/// A crop of `region`, then a zoom by `factor` (floored to hundredths) when it enlarges.
pub fn crop_zoomed(region: Rect, factor: f64) -> Program {
    Program(
        std::iter::once(Op::Crop { region })
            .chain(enlarging(factor))
            .collect(),
    )
}

/// A zoom by `factor` (floored to hundredths), if it enlarges.
pub fn enlarging(factor: f64) -> Option<Op> {
    (factor > 1.0).then(|| zoom_by(factor))
}

/// A zoom by `factor`, floored to hundredths (the planners' programs stay short in text form).
pub fn zoom_by(factor: f64) -> Op {
    Op::Zoom {
        factor: Some((factor * 100.0).floor() / 100.0),
        width: None,
        height: None,
        filter: Default::default(),
    }
}

impl Planner for TileSearch {
    fn name(&self) -> &str {
        "tile_search"
    }

    fn plan(&self, request: &PlanRequest<'_>) -> Result<Program, PlanError> {
        let (w, h) = request.original_size;
        self.program(w, h, request.step).ok_or(PlanError::Exhausted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_search_scans_2x2_then_3x3() {
        let t = TileSearch::default();
        let p = t.program(800, 400, 0).unwrap();
        match &p.0[0] {
            Op::Crop { region } => assert_eq!(*region, Rect::new(0.0, 0.0, 450.0, 225.0)),
            other => panic!("{other:?}"),
        }
        let p = t.program(800, 400, 3).unwrap();
        match &p.0[0] {
            Op::Crop { region } => assert_eq!(*region, Rect::new(350.0, 175.0, 800.0, 400.0)),
            other => panic!("{other:?}"),
        }
        assert!(t.program(800, 400, 12).is_some());
        assert!(t.program(800, 400, 13).is_none());
    }

    #[test]
    fn ranked_tiles_follow_the_weight_and_skip_what_was_shown() {
        let t = TileSearch::default();
        let crop = |p: Program| match p.0[0] {
            Op::Crop { region } => region,
            ref other => panic!("{other:?}"),
        };
        // Most weight at the bottom right, some at the top left.
        let weight = [
            (Point::new(700.0, 350.0), 0.6),
            (Point::new(50.0, 50.0), 0.3),
            (Point::new(420.0, 210.0), 0.1),
        ];
        let first = crop(t.ranked(800, 400, &weight, &[]).unwrap());
        assert_eq!(first, Rect::new(350.0, 175.0, 800.0, 400.0));
        let second = crop(t.ranked(800, 400, &weight, &[first]).unwrap());
        assert_eq!(second, Rect::new(0.0, 0.0, 450.0, 225.0));
        // A small rejected crop inside a tile does not hide the tile.
        let small = Rect::new(640.0, 320.0, 760.0, 380.0);
        assert_eq!(crop(t.ranked(800, 400, &weight, &[small]).unwrap()), first);
        // The four quadrants shown: the 3×3 tiles still show closer, the bottom-right one
        // (most weight) first; once they were shown too, nothing is left.
        let mut tiles: Vec<Rect> = (0..4)
            .map(|k| crop(t.program(800, 400, k).unwrap()))
            .collect();
        let nine = crop(t.ranked(800, 400, &weight, &tiles).unwrap());
        assert!(
            (nine.x0 - 500.0).abs() < 1e-6 && (nine.y0 - 250.0).abs() < 1e-6,
            "{nine:?}"
        );
        assert_eq!((nine.x1, nine.y1), (800.0, 400.0));
        tiles.extend((4..13).map(|k| crop(t.program(800, 400, k).unwrap())));
        assert!(t.ranked(800, 400, &weight, &tiles).is_none());
        // The whole image seen hides no tile.
        assert_eq!(
            t.ranked(800, 400, &weight, &[Rect::full(800, 400)]),
            t.ranked(800, 400, &weight, &[])
        );
        // Without any weight the order is the plain scan's.
        assert_eq!(
            t.ranked(800, 400, &[], &[]).unwrap(),
            t.program(800, 400, 0).unwrap()
        );
    }
}
