//! The model's token form and its conversion to and from [`Program`]s.
//!
//! A program is a sequence of [`Token`]s: op symbols, parameter symbols, and coordinates as
//! 0–999 bins of the view the model saw (`bin = ⌊1000·x / width⌋`, read back as the bin's
//! centre). Programs are always in *original* pixels; [`Frame`] carries the view's size and
//! its transform back to the original, so a model called on a zoomed view still names
//! original coordinates.
//!
//! The model emits a subset of the op language, enough for the six task families:
//! `crop`, `zoom` (factor bins), `rotate` (quarter turns), `flip`, `box`, `highlight`,
//! `jigsaw_solve` (rows, cols) and `path` (from, to). Styling (colours, widths, highlight
//! amount) takes the ops' defaults.

use crate::error::{ModelError, Result};
use crate::grammar::Grammar;
use crate::vocab::{Sym, Vocab};
use etchr_ops::program::{Axis, Filter, HighlightMode};
use etchr_ops::{Color, Op, Point, Program, Rect, Transform};

/// The view the model reads and how it maps back to the original image.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub view_width: u32,
    pub view_height: u32,
    /// View → original.
    pub transform: Transform,
}

/// Number of coordinate bins per axis.
pub const BINS: u16 = 1000;

impl Frame {
    pub fn new(view_width: u32, view_height: u32, transform: Transform) -> Self {
        Self {
            view_width,
            view_height,
            transform,
        }
    }

    /// The original image itself.
    pub fn identity(width: u32, height: u32) -> Self {
        Self::new(width, height, Transform::identity())
    }

    fn bin(v: f64, len: u32) -> u16 {
        ((v * BINS as f64 / len.max(1) as f64).floor()).clamp(0.0, (BINS - 1) as f64) as u16
    }

    fn unbin(b: u16, len: u32) -> f64 {
        (b.min(BINS - 1) as f64 + 0.5) * len as f64 / BINS as f64
    }

    /// A view-pixel point as bins.
    pub fn point_bins(&self, p: Point) -> [u16; 2] {
        [
            Self::bin(p.x, self.view_width),
            Self::bin(p.y, self.view_height),
        ]
    }

    /// Bins as a view-pixel point.
    pub fn bins_point(&self, b: [u16; 2]) -> Point {
        Point::new(
            Self::unbin(b[0], self.view_width),
            Self::unbin(b[1], self.view_height),
        )
    }

    pub fn rect_bins(&self, r: &Rect) -> [u16; 4] {
        let [x0, y0] = self.point_bins(Point::new(r.x0, r.y0));
        let [x1, y1] = self.point_bins(Point::new(r.x1, r.y1));
        [x0, y0, x1, y1]
    }

    pub fn bins_rect(&self, b: [u16; 4]) -> Rect {
        let p = self.bins_point([b[0], b[1]]);
        let q = self.bins_point([b[2], b[3]]);
        Rect::new(p.x, p.y, q.x, q.y)
    }

    /// Original pixels → bins of this view.
    pub fn original_rect_bins(&self, r: &Rect) -> [u16; 4] {
        self.rect_bins(&self.transform.rect_to_view(r))
    }

    pub fn original_point_bins(&self, p: Point) -> [u16; 2] {
        self.point_bins(self.transform.to_view(p))
    }

    /// Bins of this view → original pixels.
    pub fn bins_original_rect(&self, b: [u16; 4]) -> Rect {
        self.transform.rect_to_original(&self.bins_rect(b))
    }

    pub fn bins_original_point(&self, b: [u16; 2]) -> Point {
        self.transform.to_original(self.bins_point(b))
    }
}

/// One token of the model's program form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    Sym(Sym),
    /// `[x0, y0, x1, y1]` in 0–999 bins of the view.
    Box([u16; 4]),
    /// `[x, y]` in 0–999 bins of the view.
    Point([u16; 2]),
}

fn tokens_of(op: &Op, frame: &Frame, vocab: &Vocab) -> std::result::Result<Vec<Token>, String> {
    use Token::Sym as S;
    let boxed = |r: &Rect| Token::Box(frame.original_rect_bins(r));
    let pt = |p: &Point| Token::Point(frame.original_point_bins(*p));
    Ok(match op {
        Op::Crop { region } => vec![S(Sym::Crop), boxed(region)],
        Op::Zoom {
            factor: Some(f),
            width: None,
            height: None,
            ..
        } => vec![S(Sym::Zoom), S(Sym::ZoomBin(vocab.zoom_bin(*f)))],
        Op::Zoom { .. } => return Err("zoom must be given as a factor".into()),
        Op::Rotate { angle, .. } => {
            let a = angle.rem_euclid(360.0);
            let q = (a / 90.0).round();
            if (a - q * 90.0).abs() > 1e-6 || (q as u32) & 3 == 0 {
                return Err(format!("rotate by {angle}° is not a quarter turn"));
            }
            vec![S(Sym::Rotate), S(Sym::Quarter(q as u8 % 4))]
        }
        Op::Flip { axis } => vec![S(Sym::Flip), S(Sym::FlipAxis(*axis))],
        Op::DrawBox { region, .. } => vec![S(Sym::Box), boxed(region)],
        Op::Highlight { region, .. } => vec![S(Sym::Highlight), boxed(region)],
        Op::JigsawSolve { rows, cols, .. } | Op::Jigsaw { rows, cols, .. } => {
            if matches!(op, Op::Jigsaw { .. }) {
                return Err("jigsaw with an order is not in the model's vocabulary".into());
            }
            let m = vocab.max_grid() as u32;
            if !(1..=m).contains(rows) || !(1..=m).contains(cols) {
                return Err(format!("a {rows}x{cols} grid is over the vocabulary's {m}"));
            }
            vec![
                S(Sym::JigsawSolve),
                S(Sym::Grid(*rows as u8)),
                S(Sym::Grid(*cols as u8)),
            ]
        }
        Op::Path { from, to, .. } => vec![S(Sym::Path), pt(from), pt(to)],
        other => return Err(format!("{} is not in the model's vocabulary", other.name())),
    })
}

/// The token form of `program` (original pixels) as seen on `frame`, ending with `End`.
/// Strict: any op outside the subset, or a sequence the grammar forbids, is an error.
pub fn program_to_tokens(program: &Program, frame: &Frame, vocab: &Vocab) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    for (i, op) in program.ops().iter().enumerate() {
        out.extend(
            tokens_of(op, frame, vocab).map_err(|e| ModelError::Tokens(format!("op {i}: {e}")))?,
        );
    }
    out.push(Token::Sym(Sym::End));
    let mut g = Grammar::new(usize::MAX);
    for (i, t) in out.iter().enumerate() {
        g.push(t)
            .map_err(|e| ModelError::Tokens(format!("token {i} ({t:?}): {e}")))?;
    }
    Ok(out)
}

/// Like [`program_to_tokens`], for gold programs written in the full op language: a `jigsaw`
/// with a known order becomes `jigsaw_solve` of the same grid, and ops the model cannot emit
/// (or that the grammar forbids at that point) are dropped. Returns the tokens and one line
/// per dropped op.
pub fn program_to_tokens_lossy(
    program: &Program,
    frame: &Frame,
    vocab: &Vocab,
) -> (Vec<Token>, Vec<String>) {
    let mut out = Vec::new();
    let mut dropped = Vec::new();
    let mut g = Grammar::new(usize::MAX);
    for (i, op) in program.ops().iter().enumerate() {
        let op = match op {
            Op::Jigsaw { rows, cols, .. } => Op::JigsawSolve {
                rows: *rows,
                cols: *cols,
                order: None,
            },
            other => other.clone(),
        };
        let toks = match tokens_of(&op, frame, vocab) {
            Ok(t) => t,
            Err(e) => {
                dropped.push(format!("op {i} ({}): {e}", op.name()));
                continue;
            }
        };
        let mut trial = g.clone();
        match toks.iter().try_for_each(|t| trial.push(t).map(|_| ())) {
            Ok(()) => {
                g = trial;
                out.extend(toks);
            }
            Err(e) => dropped.push(format!("op {i} ({}): {e}", op.name())),
        }
    }
    out.push(Token::Sym(Sym::End));
    (out, dropped)
}

/// The op that one op's worth of tokens stands for (coordinates in original pixels).
pub(crate) fn op_from_tokens(toks: &[Token], frame: &Frame, vocab: &Vocab) -> Option<Op> {
    use Token::Sym as S;
    Some(match toks {
        [S(Sym::Crop), Token::Box(b)] => Op::Crop {
            region: frame.bins_original_rect(*b),
        },
        [S(Sym::Zoom), S(Sym::ZoomBin(b))] => Op::Zoom {
            factor: Some(vocab.zoom_factor(*b)),
            width: None,
            height: None,
            filter: Filter::default(),
        },
        [S(Sym::Rotate), S(Sym::Quarter(q))] => Op::Rotate {
            angle: *q as f64 * 90.0,
            fill: Color::WHITE,
        },
        [S(Sym::Flip), S(Sym::FlipAxis(a))] => Op::Flip { axis: *a },
        [S(Sym::Box), Token::Box(b)] => Op::DrawBox {
            region: frame.bins_original_rect(*b),
            color: Color::RED,
            width: 3.0,
            label: None,
        },
        [S(Sym::Highlight), Token::Box(b)] => Op::Highlight {
            region: frame.bins_original_rect(*b),
            mode: HighlightMode::Dim,
            amount: None,
        },
        [S(Sym::JigsawSolve), S(Sym::Grid(r)), S(Sym::Grid(c))] => Op::JigsawSolve {
            rows: *r as u32,
            cols: *c as u32,
            order: None,
        },
        [S(Sym::Path), Token::Point(a), Token::Point(b)] => Op::Path {
            from: frame.bins_original_point(*a),
            to: frame.bins_original_point(*b),
            color: Color::MAGENTA,
            width: 3.0,
            wall_luma: 96,
        },
        _ => return None,
    })
}

/// The program a token sequence stands for, in original pixels. The sequence must follow the
/// grammar; a missing final `End` is accepted (the program so far).
pub fn tokens_to_program(tokens: &[Token], frame: &Frame, vocab: &Vocab) -> Result<Program> {
    let mut g = Grammar::new(usize::MAX);
    let mut ops = Vec::new();
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        let done = g
            .push(t)
            .map_err(|e| ModelError::Tokens(format!("token {i} ({t:?}): {e}")))?;
        if done {
            let op = op_from_tokens(&tokens[start..=i], frame, vocab).ok_or_else(|| {
                ModelError::Tokens(format!("tokens {start}..={i} do not form an op"))
            })?;
            ops.push(op);
        }
        if g.at_op_boundary() {
            start = i + 1;
        }
        if g.is_done() {
            break;
        }
    }
    if !g.at_op_boundary() && !g.is_done() {
        return Err(ModelError::Tokens("the sequence ends inside an op".into()));
    }
    Ok(Program(ops))
}

/// Flip axes as symbols, for tests and tools.
pub const AXES: [Axis; 2] = [Axis::Horizontal, Axis::Vertical];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use etchr_ops::{Affine, Step};

    fn vocab() -> Vocab {
        Vocab::new(&ModelConfig::default())
    }

    fn family_tokens() -> Vec<Vec<Token>> {
        use Token::Sym as S;
        vec![
            // fine-grained: crop, zoom, box
            vec![
                S(Sym::Crop),
                Token::Box([100, 200, 300, 420]),
                S(Sym::Zoom),
                S(Sym::ZoomBin(30)),
                S(Sym::Box),
                Token::Box([150, 250, 250, 400]),
                S(Sym::End),
            ],
            // chart: highlight, crop, zoom
            vec![
                S(Sym::Highlight),
                Token::Box([10, 20, 30, 999]),
                S(Sym::Crop),
                Token::Box([0, 0, 500, 999]),
                S(Sym::Zoom),
                S(Sym::ZoomBin(12)),
                S(Sym::End),
            ],
            // orientation: crop, rotate, zoom / crop, flip, zoom
            vec![
                S(Sym::Crop),
                Token::Box([400, 400, 600, 500]),
                S(Sym::Rotate),
                S(Sym::Quarter(3)),
                S(Sym::Zoom),
                S(Sym::ZoomBin(47)),
                S(Sym::End),
            ],
            vec![
                S(Sym::Crop),
                Token::Box([1, 2, 3, 4]),
                S(Sym::Flip),
                S(Sym::FlipAxis(Axis::Vertical)),
                S(Sym::End),
            ],
            // jigsaw: solve, crop, zoom
            vec![
                S(Sym::JigsawSolve),
                S(Sym::Grid(3)),
                S(Sym::Grid(5)),
                S(Sym::Crop),
                Token::Box([0, 500, 400, 600]),
                S(Sym::Zoom),
                S(Sym::ZoomBin(0)),
                S(Sym::End),
            ],
            // maze: path, crop, zoom
            vec![
                S(Sym::Path),
                Token::Point([5, 995]),
                Token::Point([999, 0]),
                S(Sym::Crop),
                Token::Box([900, 0, 999, 80]),
                S(Sym::Zoom),
                S(Sym::ZoomBin(20)),
                S(Sym::End),
            ],
            vec![S(Sym::End)],
        ]
    }

    #[test]
    fn token_form_round_trips_for_every_family() {
        let v = vocab();
        let frames = [
            Frame::identity(2048, 1536),
            Frame::identity(777, 3001),
            // A zoomed crop of a larger original: coordinates go through the transform.
            Frame::new(
                1200,
                800,
                Transform::identity()
                    .then(Step::Affine {
                        matrix: Affine::translate(300.0, 100.0),
                    })
                    .then(Step::Affine {
                        matrix: Affine::scale(0.5, 0.5),
                    }),
            ),
        ];
        for frame in &frames {
            for toks in family_tokens() {
                let p = tokens_to_program(&toks, frame, &v).unwrap();
                let again = program_to_tokens(&p, frame, &v).unwrap();
                assert_eq!(again, toks, "{frame:?}");
                assert_eq!(tokens_to_program(&again, frame, &v).unwrap(), p);
                // The programs it makes are valid for the original image.
                etchr_ops::validate(4000, 4000, &p, &Default::default()).unwrap();
            }
        }
    }

    #[test]
    fn text_form_of_decoded_programs_parses() {
        let v = vocab();
        let f = Frame::identity(1000, 1000);
        for toks in family_tokens() {
            let p = tokens_to_program(&toks, &f, &v).unwrap();
            let text = etchr_ops::text::to_text(&p);
            assert_eq!(etchr_ops::text::parse(&text).unwrap(), p);
        }
    }

    #[test]
    fn strict_rejects_and_lossy_drops_what_the_model_cannot_say() {
        let v = vocab();
        let f = Frame::identity(1000, 1000);
        let p = Program::from_json(
            r#"[{"op":"jigsaw","rows":2,"cols":2,"order":[1,0,3,2]},{"op":"crop","box":[0,0,10,10]},
                {"op":"mask","box":[0,0,5,5]},{"op":"crop","box":[1,1,4,4]},{"op":"zoom","factor":2}]"#,
        )
        .unwrap();
        assert!(program_to_tokens(&p, &f, &v).is_err());
        let (toks, dropped) = program_to_tokens_lossy(&p, &f, &v);
        assert_eq!(dropped.len(), 2, "{dropped:?}"); // the mask, and the second crop
        let back = tokens_to_program(&toks, &f, &v).unwrap();
        let names: Vec<_> = back.ops().iter().map(|o| o.name()).collect();
        assert_eq!(names, ["jigsaw_solve", "crop", "zoom"]);
    }

    #[test]
    fn bins_are_stable() {
        let f = Frame::identity(2048, 999);
        for b in [0u16, 1, 499, 998, 999] {
            assert_eq!(f.point_bins(f.bins_point([b, b])), [b, b]);
        }
        assert_eq!(f.point_bins(Point::new(2048.0, 999.0)), [999, 999]);
        assert_eq!(f.point_bins(Point::new(-5.0, 0.0)), [0, 0]);
    }
}
