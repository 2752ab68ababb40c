//! Grammar-constrained decoding: a state machine over the token form that says, at every step,
//! which symbols may come next (or that the pointer head must choose a box or a point), plus a
//! geometric tracker that follows the view the program produces, so the masks also rule out
//! zooms past the renderer's size limit, grids with tiles too small to solve, and boxes or
//! points outside what an earlier crop left visible. Every sequence it admits parses into a
//! program; the decoder still runs [`etchr_ops::validate`] on the result as a last repair.
//!
//! ```text
//! program := op* End          each op kind at most once; jigsaw_solve only first
//! op      := Crop <box> | Box <box> | Highlight <box> | Path <point> <point>
//!          | Zoom ZoomBin | Rotate Quarter | Flip FlipAxis | JigsawSolve Grid Grid
//! ```

use crate::preprocess::Letterbox;
use crate::tokens::{op_from_tokens, Frame, Token};
use crate::vocab::{Sym, Vocab, OPS};
use crate::ModelConfig;
use etchr_ops::{Op, Point, Rect, RenderOptions};

/// The longest token sequence the grammar admits (every op once, then `End`).
pub const LONGEST_PROGRAM: usize = 2 * 6 + 3 * 2 + 1;

/// What the next token must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// An op symbol or `End`.
    Op,
    /// A box, from the pointer head.
    Box,
    /// A point, from the pointer head.
    Point,
    ZoomBin,
    Quarter,
    Axis,
    GridRows,
    GridCols,
    /// `End` was emitted.
    Done,
}

/// The syntactic state.
#[derive(Debug, Clone)]
pub struct Grammar {
    expect: Expect,
    used: u16,
    ops: usize,
    max_ops: usize,
    points_left: u8,
    /// Tokens of the op being written.
    pending: usize,
}

fn op_bit(s: Sym) -> u16 {
    OPS.iter().position(|o| *o == s).map_or(0, |i| 1u16 << i)
}

impl Grammar {
    /// A grammar that ends programs after `max_ops` ops (and, regardless, after every op kind
    /// has been used once).
    pub fn new(max_ops: usize) -> Self {
        Self {
            expect: Expect::Op,
            used: 0,
            ops: 0,
            max_ops,
            points_left: 0,
            pending: 0,
        }
    }

    pub fn expect(&self) -> Expect {
        self.expect
    }

    pub fn is_done(&self) -> bool {
        self.expect == Expect::Done
    }

    /// Between ops (or done): no op is half-written.
    pub fn at_op_boundary(&self) -> bool {
        matches!(self.expect, Expect::Op | Expect::Done)
    }

    /// Whether symbol `s` may come next (slots and coordinates are not symbols).
    pub fn allows(&self, s: Sym, vocab: &Vocab) -> bool {
        match (self.expect, s) {
            (Expect::Op, Sym::End) => true,
            (Expect::Op, s) if OPS.contains(&s) => {
                self.ops < self.max_ops
                    && self.used & op_bit(s) == 0
                    && (s != Sym::JigsawSolve || self.ops == 0)
            }
            (Expect::ZoomBin, Sym::ZoomBin(b)) => b < vocab.zoom_bins(),
            (Expect::Quarter, Sym::Quarter(q)) => (1..=3).contains(&q),
            (Expect::Axis, Sym::FlipAxis(_)) => true,
            (Expect::GridRows | Expect::GridCols, Sym::Grid(n)) => {
                (1..=vocab.max_grid()).contains(&n)
            }
            _ => false,
        }
    }

    /// How many tokens of a half-written op have been pushed (0 at an op boundary).
    pub fn pending_len(&self) -> usize {
        if self.at_op_boundary() {
            0
        } else {
            self.pending
        }
    }

    /// Advances over `t`; `Ok(true)` when `t` completed an op.
    pub fn push(&mut self, t: &Token) -> Result<bool, String> {
        if self.at_op_boundary() {
            self.pending = 0;
        }
        let r = self.advance(t);
        if r.is_ok() {
            self.pending += 1;
        }
        r
    }

    fn advance(&mut self, t: &Token) -> Result<bool, String> {
        let bad = |e: Expect| Err(format!("expected {e:?}"));
        let e = self.expect;
        match (e, t) {
            (Expect::Op, Token::Sym(Sym::End)) => {
                self.expect = Expect::Done;
                Ok(false)
            }
            (Expect::Op, Token::Sym(s)) if OPS.contains(s) => {
                if self.ops >= self.max_ops {
                    return Err(format!("at most {} ops", self.max_ops));
                }
                if self.used & op_bit(*s) != 0 {
                    return Err(format!("{s:?} may appear only once"));
                }
                if *s == Sym::JigsawSolve && self.ops > 0 {
                    return Err("jigsaw_solve must be the first op".into());
                }
                self.used |= op_bit(*s);
                self.ops += 1;
                self.expect = match s {
                    Sym::Crop | Sym::Box | Sym::Highlight => Expect::Box,
                    Sym::Path => {
                        self.points_left = 2;
                        Expect::Point
                    }
                    Sym::Zoom => Expect::ZoomBin,
                    Sym::Rotate => Expect::Quarter,
                    Sym::Flip => Expect::Axis,
                    Sym::JigsawSolve => Expect::GridRows,
                    _ => unreachable!("OPS holds only these"),
                };
                Ok(false)
            }
            (Expect::Box, Token::Box(_)) => {
                self.expect = Expect::Op;
                Ok(true)
            }
            (Expect::Point, Token::Point(_)) => {
                self.points_left -= 1;
                if self.points_left == 0 {
                    self.expect = Expect::Op;
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            (Expect::ZoomBin, Token::Sym(Sym::ZoomBin(_)))
            | (Expect::Quarter, Token::Sym(Sym::Quarter(1..=3)))
            | (Expect::Axis, Token::Sym(Sym::FlipAxis(_)))
            | (Expect::GridCols, Token::Sym(Sym::Grid(_))) => {
                self.expect = Expect::Op;
                Ok(true)
            }
            (Expect::GridRows, Token::Sym(Sym::Grid(_))) => {
                self.expect = Expect::GridCols;
                Ok(false)
            }
            (e, _) => bad(e),
        }
    }
}

/// Follows the geometry of the program so far, in original pixels, mirroring the renderer.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// What the current view shows, in original pixels.
    visible: Rect,
    /// View pixels per original pixel.
    scale: f64,
    /// An odd number of quarter turns so far (view width ↔ original height).
    swapped: bool,
    opts: RenderOptions,
}

impl Tracker {
    pub fn new(original_width: u32, original_height: u32) -> Self {
        Self {
            visible: Rect::full(original_width.max(1), original_height.max(1)),
            scale: 1.0,
            swapped: false,
            opts: RenderOptions::default(),
        }
    }

    pub fn visible(&self) -> Rect {
        self.visible
    }

    /// The current view's size in pixels.
    pub fn view_size(&self) -> (f64, f64) {
        let (w, h) = (
            (self.visible.width() * self.scale).round().max(1.0),
            (self.visible.height() * self.scale).round().max(1.0),
        );
        if self.swapped {
            (h, w)
        } else {
            (w, h)
        }
    }

    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Crop { region } => {
                let mut r = region
                    .normalized()
                    .intersect(&self.visible)
                    .unwrap_or(self.visible);
                // The renderer expands crops under `min_crop` view pixels around their centre.
                let min = self.opts.min_crop as f64 / self.scale;
                let grow = |lo: f64, hi: f64, vlo: f64, vhi: f64| {
                    let want = (hi - lo).max(min.min(vhi - vlo));
                    let c = ((lo + hi) / 2.0 - want / 2.0).clamp(vlo, vhi - want);
                    (c, c + want)
                };
                (r.x0, r.x1) = grow(r.x0, r.x1, self.visible.x0, self.visible.x1);
                (r.y0, r.y1) = grow(r.y0, r.y1, self.visible.y0, self.visible.y1);
                self.visible = r;
            }
            Op::Zoom {
                factor: Some(f), ..
            } => self.scale *= f,
            Op::Rotate { angle, .. } if ((angle / 90.0).round() as i64).rem_euclid(2) == 1 => {
                self.swapped = !self.swapped;
            }
            _ => {}
        }
    }

    /// Whether zooming the current view by `f` stays within the renderer's output limit.
    pub fn zoom_ok(&self, f: f64) -> bool {
        let (w, h) = self.view_size();
        let (nw, nh) = ((w * f).round().max(1.0), (h * f).round().max(1.0));
        nw * nh <= self.opts.max_output_pixels as f64
    }

    /// Whether `jigsaw_solve` of `rows × cols` is allowed on the current view (64 cells, tiles
    /// of at least 2 px, as the renderer checks).
    pub fn grid_ok(&self, rows: u32, cols: u32) -> bool {
        let (w, h) = self.view_size();
        rows >= 1
            && cols >= 1
            && rows * cols <= 64
            && (w as u32 / cols) >= 2
            && (h as u32 / rows) >= 2
    }
}

/// Where each patch of the input lies in the original image, for pointer masks.
#[derive(Debug, Clone)]
pub struct PointerGeometry {
    /// Per patch: its centre in original pixels, when the centre is on the image (not padding).
    centres: Vec<Option<Point>>,
    /// Per patch: whether any of it is on the image.
    touches: Vec<bool>,
}

impl PointerGeometry {
    pub fn new(cfg: &ModelConfig, lb: &Letterbox, frame: &Frame) -> Self {
        let (g, p) = (cfg.grid(), cfg.patch_size as f64);
        let content = lb.content();
        let mut centres = Vec::with_capacity(g * g);
        let mut touches = Vec::with_capacity(g * g);
        for row in 0..g {
            for col in 0..g {
                let c = Point::new((col as f64 + 0.5) * p, (row as f64 + 0.5) * p);
                let cell = Rect::new(
                    col as f64 * p,
                    row as f64 * p,
                    (col as f64 + 1.0) * p,
                    (row as f64 + 1.0) * p,
                );
                touches.push(cell.intersect(&content).is_some());
                centres.push(
                    content
                        .contains(c)
                        .then(|| frame.transform.to_original(lb.to_view(c))),
                );
            }
        }
        Self { centres, touches }
    }

    /// Patches the pointer may choose now: centre on the image and inside the visible region;
    /// failing that (a thin strip of an image, a crop smaller than a patch), any patch on the
    /// image; failing that, any patch.
    pub fn mask(&self, tracker: &Tracker) -> Vec<bool> {
        let v = tracker.visible();
        let inside = |p: &Point| holds(&v, p);
        let m: Vec<bool> = self
            .centres
            .iter()
            .map(|c| c.as_ref().is_some_and(inside))
            .collect();
        if m.iter().any(|&b| b) {
            return m;
        }
        if self.touches.iter().any(|&b| b) {
            return self.touches.clone();
        }
        vec![true; self.touches.len()]
    }

    /// Patch `k`'s centre in original pixels, when it is on the image.
    pub fn centre(&self, k: usize) -> Option<Point> {
        self.centres.get(k).copied().flatten()
    }

    /// Removes from `mask` every patch whose centre lies in one of `avoid` (original pixels),
    /// unless that would leave no patch: a region already shown and rejected is not proposed
    /// again while anything else is allowed.
    pub fn exclude(&self, mask: &mut [bool], avoid: &[Rect]) {
        if avoid.is_empty() {
            return;
        }
        let inside = |p: &Point| avoid.iter().any(|r| holds(r, p));
        let kept: Vec<bool> = mask
            .iter()
            .zip(&self.centres)
            .map(|(&m, c)| m && !c.as_ref().is_some_and(inside))
            .collect();
        if kept.iter().any(|&b| b) {
            mask.copy_from_slice(&kept);
        }
    }
}

/// Whether `r` holds `p`, closed on the far edges too: a crop's last row of pixels still counts.
fn holds(r: &Rect, p: &Point) -> bool {
    p.x >= r.x0 && p.x <= r.x1 && p.y >= r.y0 && p.y <= r.y1
}

/// What the decoder must produce at one step.
#[derive(Debug, Clone, PartialEq)]
pub enum StepMask {
    /// A symbol from the token head; `true` where allowed (indexed by vocabulary id).
    Syms(Vec<bool>),
    /// A box (`point == false`) or a point from the pointer head; `true` where a patch is allowed.
    Pointer {
        point: bool,
        patches: Vec<bool>,
    },
    Done,
}

/// The grammar and the tracker together, advanced token by token, used identically when
/// decoding and when building training batches so training sees the decoder's masks.
#[derive(Debug, Clone)]
pub struct Constraints {
    grammar: Grammar,
    tracker: Tracker,
    pending: Vec<Token>,
}

impl Constraints {
    pub fn new(original_width: u32, original_height: u32, max_ops: usize) -> Self {
        Self {
            grammar: Grammar::new(max_ops),
            tracker: Tracker::new(original_width, original_height),
            pending: Vec::new(),
        }
    }

    pub fn grammar(&self) -> &Grammar {
        &self.grammar
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    pub fn is_done(&self) -> bool {
        self.grammar.is_done()
    }

    fn sym_ok(&self, s: Sym, vocab: &Vocab) -> bool {
        if !self.grammar.allows(s, vocab) {
            return false;
        }
        let t = &self.tracker;
        let m = vocab.max_grid() as u32;
        match (self.grammar.expect(), s) {
            (Expect::Op, Sym::JigsawSolve) => t.grid_ok(1, 2) || t.grid_ok(2, 1),
            (Expect::ZoomBin, Sym::ZoomBin(b)) => t.zoom_ok(vocab.zoom_factor(b)),
            (Expect::GridRows, Sym::Grid(r)) => {
                (1..=m).any(|c| t.grid_ok(r as u32, c) && r as u32 * c >= 2)
            }
            (Expect::GridCols, Sym::Grid(c)) => {
                let r = match self.pending.last() {
                    Some(Token::Sym(Sym::Grid(r))) => *r as u32,
                    _ => return false,
                };
                t.grid_ok(r, c as u32) && r * c as u32 >= 2
            }
            _ => true,
        }
    }

    /// The mask for the next step.
    pub fn step(&self, vocab: &Vocab, geometry: &PointerGeometry) -> StepMask {
        match self.grammar.expect() {
            Expect::Done => StepMask::Done,
            Expect::Box | Expect::Point => StepMask::Pointer {
                point: self.grammar.expect() == Expect::Point,
                patches: geometry.mask(&self.tracker),
            },
            _ => {
                let mut m: Vec<bool> = (0..vocab.size() as u32)
                    .map(|id| vocab.sym(id).is_some_and(|s| self.sym_ok(s, vocab)))
                    .collect();
                if !m.iter().any(|&b| b) {
                    // Only reachable inside an op whose every parameter the tracker rules out;
                    // let the grammar decide and leave the repair to `validate`.
                    m = (0..vocab.size() as u32)
                        .map(|id| vocab.sym(id).is_some_and(|s| self.grammar.allows(s, vocab)))
                        .collect();
                }
                StepMask::Syms(m)
            }
        }
    }

    /// Advances over `t`. `frame` maps the token's bins back to original pixels.
    pub fn push(&mut self, t: Token, frame: &Frame, vocab: &Vocab) -> Result<(), String> {
        let boundary = self.grammar.at_op_boundary();
        let done = self.grammar.push(&t)?;
        if boundary {
            self.pending.clear();
        }
        self.pending.push(t);
        if done {
            if let Some(op) = op_from_tokens(&self.pending, frame, vocab) {
                self.tracker.apply(&op);
            }
            self.pending.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etchr_ops::Transform;

    #[test]
    fn grammar_forbids_repeats_and_late_jigsaw() {
        let v = Vocab::new(&ModelConfig::default());
        let mut g = Grammar::new(usize::MAX);
        assert!(g.allows(Sym::JigsawSolve, &v));
        g.push(&Token::Sym(Sym::Crop)).unwrap();
        assert_eq!(g.expect(), Expect::Box);
        assert!(!g.allows(Sym::End, &v));
        assert!(g.push(&Token::Box([0, 0, 1, 1])).unwrap());
        assert!(!g.allows(Sym::Crop, &v));
        assert!(!g.allows(Sym::JigsawSolve, &v));
        assert!(g.allows(Sym::Zoom, &v));
        assert!(g.push(&Token::Sym(Sym::Crop)).is_err());
    }

    #[test]
    fn longest_program_is_what_the_grammar_allows() {
        let v = Vocab::new(&ModelConfig::default());
        let mut g = Grammar::new(usize::MAX);
        let mut n = 0;
        // Greedily take every op once.
        for s in [
            Sym::JigsawSolve,
            Sym::Path,
            Sym::Highlight,
            Sym::Crop,
            Sym::Rotate,
            Sym::Flip,
            Sym::Zoom,
            Sym::Box,
        ] {
            assert!(g.allows(s, &v));
            g.push(&Token::Sym(s)).unwrap();
            n += 1;
            loop {
                let t = match g.expect() {
                    Expect::Box => Token::Box([0, 0, 9, 9]),
                    Expect::Point => Token::Point([1, 1]),
                    Expect::ZoomBin => Token::Sym(Sym::ZoomBin(1)),
                    Expect::Quarter => Token::Sym(Sym::Quarter(1)),
                    Expect::Axis => Token::Sym(Sym::FlipAxis(etchr_ops::program::Axis::Horizontal)),
                    Expect::GridRows | Expect::GridCols => Token::Sym(Sym::Grid(2)),
                    Expect::Op | Expect::Done => break,
                };
                g.push(&t).unwrap();
                n += 1;
            }
        }
        assert!(OPS.iter().all(|s| !g.allows(*s, &v)));
        g.push(&Token::Sym(Sym::End)).unwrap();
        assert_eq!(n + 1, LONGEST_PROGRAM);
    }

    #[test]
    fn excluded_regions_remove_the_patches_they_centre() {
        let cfg = ModelConfig::tiny(); // 4x4 patches of 16 px over 64 px: 1000 px per patch
        let frame = Frame::new(4000, 4000, Transform::identity());
        let geo = PointerGeometry::new(&cfg, &Letterbox::new(4000, 4000, 64), &frame);
        let mut mask = vec![true; 16];
        mask[15] = false;
        // Covers the centres (500, 500) and (1500, 500): patches 0 and 1.
        geo.exclude(&mut mask, &[Rect::new(0.0, 0.0, 1600.0, 900.0)]);
        let allowed: Vec<usize> = (0..16).filter(|&k| mask[k]).collect();
        assert_eq!(allowed, (2..15).collect::<Vec<_>>());
        // Excluding everything that is left keeps the mask as it was.
        let before = mask.clone();
        geo.exclude(&mut mask, &[Rect::full(4000, 4000)]);
        assert_eq!(mask, before);
    }

    #[test]
    fn tracker_limits_zoom_and_pointer_follows_crops() {
        let cfg = ModelConfig::tiny(); // 4x4 patches of 16 px over 64 px
        let v = Vocab::new(&cfg);
        let frame = Frame::new(4000, 4000, Transform::identity());
        let lb = Letterbox::new(4000, 4000, 64);
        let geo = PointerGeometry::new(&cfg, &lb, &frame);
        let mut c = Constraints::new(4000, 4000, usize::MAX);
        c.push(Token::Sym(Sym::Zoom), &frame, &v).unwrap();
        let StepMask::Syms(m) = c.step(&v, &geo) else {
            panic!()
        };
        // 4000² × 16² is far over 50 Mpx: the biggest bins are masked, the small ones allowed.
        assert!(!m[v.id(Sym::ZoomBin(v.zoom_bins() - 1)) as usize]);
        assert!(m[v.id(Sym::ZoomBin(0)) as usize]);
        let mut c = Constraints::new(4000, 4000, usize::MAX);
        c.push(Token::Sym(Sym::Crop), &frame, &v).unwrap();
        // Crop the top-left quarter: afterwards only the top-left patches' centres are visible.
        c.push(Token::Box([0, 0, 499, 499]), &frame, &v).unwrap();
        c.push(Token::Sym(Sym::Box), &frame, &v).unwrap();
        let StepMask::Pointer {
            point: false,
            patches,
        } = c.step(&v, &geo)
        else {
            panic!()
        };
        let allowed: Vec<usize> = (0..16).filter(|&k| patches[k]).collect();
        assert_eq!(allowed, vec![0, 1, 4, 5]);
    }
}
