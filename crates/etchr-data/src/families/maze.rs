//! Maze: a perfect maze on a dark board, one coloured start disk and several exits on the
//! border. Each exit opens into a small white pocket holding its label `Exit CODE`; the dark
//! board keeps the pockets apart, so free space (the renderer's rule: anything but dark,
//! unsaturated pixels) never links exits around the outside. Walls are cut so that exactly one
//! exit is reachable from the start.
//!
//! The question names only the start's colour (no quoted key), so the reader falls back to
//! "the first code in the last image": the gold edit draws the path, then crops the reached
//! exit's pocket alone and zooms it, leaving exactly one code in view.

use super::{fill, Built};
use crate::codes::{CodeBook, COLOURS};
use crate::draw::{expand, Canvas, Face};
use crate::plan::{self, canvas_size, fmt_box, legibility, zoom_factor};
use crate::rng::Rng;
use crate::AnswerFormat;
use etchr_ops::{Color, Op, Point, Rect};
use serde_json::json;
use std::collections::VecDeque;

const QUESTIONS: &[&str] = &[
    "Start at the {colour} disk and follow the white corridors. Which exit can you reach? Give its code.",
    "The {colour} dot marks the start of the maze; only one exit can be reached from it. What is that exit's code?",
    "Trace a path from the {colour} start marker through the maze. What code labels the exit where it leads?",
    "From the {colour} circle, walk the maze without crossing walls. Which exit code do you arrive at?",
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Side {
    Top,
    Bottom,
    Left,
    Right,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Top => "top",
            Side::Bottom => "bottom",
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

/// A perfect maze as open passages between grid cells.
struct Grid {
    rows: usize,
    cols: usize,
    /// `right[r][c]`: passage from (r, c) to (r, c+1).
    right: Vec<Vec<bool>>,
    /// `down[r][c]`: passage from (r, c) to (r+1, c).
    down: Vec<Vec<bool>>,
}

impl Grid {
    /// Randomised depth-first search: a spanning tree with long winding corridors.
    fn carve(rng: &mut Rng, rows: usize, cols: usize) -> Grid {
        let mut g = Grid {
            rows,
            cols,
            right: vec![vec![false; cols]; rows],
            down: vec![vec![false; cols]; rows],
        };
        let mut seen = vec![vec![false; cols]; rows];
        let start = (
            rng.below(rows as u64) as usize,
            rng.below(cols as u64) as usize,
        );
        seen[start.0][start.1] = true;
        let mut stack = vec![start];
        while let Some(&(r, c)) = stack.last() {
            let mut next = Vec::with_capacity(4);
            if r > 0 && !seen[r - 1][c] {
                next.push((r - 1, c));
            }
            if r + 1 < rows && !seen[r + 1][c] {
                next.push((r + 1, c));
            }
            if c > 0 && !seen[r][c - 1] {
                next.push((r, c - 1));
            }
            if c + 1 < cols && !seen[r][c + 1] {
                next.push((r, c + 1));
            }
            if next.is_empty() {
                stack.pop();
                continue;
            }
            let n = *rng.pick(&next);
            g.set((r, c), n, true);
            seen[n.0][n.1] = true;
            stack.push(n);
        }
        g
    }

    fn set(&mut self, a: (usize, usize), b: (usize, usize), open: bool) {
        let (a, b) = if (a.0, a.1) <= (b.0, b.1) {
            (a, b)
        } else {
            (b, a)
        };
        if a.0 == b.0 {
            self.right[a.0][a.1] = open;
        } else {
            self.down[a.0][a.1] = open;
        }
    }

    fn neighbours(&self, (r, c): (usize, usize)) -> Vec<(usize, usize)> {
        let mut v = Vec::with_capacity(4);
        if r > 0 && self.down[r - 1][c] {
            v.push((r - 1, c));
        }
        if r + 1 < self.rows && self.down[r][c] {
            v.push((r + 1, c));
        }
        if c > 0 && self.right[r][c - 1] {
            v.push((r, c - 1));
        }
        if c + 1 < self.cols && self.right[r][c] {
            v.push((r, c + 1));
        }
        v
    }

    /// BFS parents from `s` (`None` for unreachable cells).
    fn parents(&self, s: (usize, usize)) -> Vec<Vec<Option<(usize, usize)>>> {
        let mut p = vec![vec![None; self.cols]; self.rows];
        p[s.0][s.1] = Some(s);
        let mut q = VecDeque::from([s]);
        while let Some(a) = q.pop_front() {
            for b in self.neighbours(a) {
                if p[b.0][b.1].is_none() {
                    p[b.0][b.1] = Some(a);
                    q.push_back(b);
                }
            }
        }
        p
    }

    /// Cells from `t` back to the BFS root.
    fn path_to(p: &[Vec<Option<(usize, usize)>>], t: (usize, usize)) -> Vec<(usize, usize)> {
        let mut v = vec![t];
        let mut cur = t;
        while let Some(n) = p[cur.0][cur.1] {
            if n == cur {
                break;
            }
            v.push(n);
            cur = n;
        }
        v
    }
}

struct Exit {
    side: Side,
    cell: (usize, usize),
    code: String,
    pocket: Rect,
    gap: Point,
}

pub fn build(rng: &mut Rng, small: bool) -> Built {
    let (w, h) = canvas_size(
        rng,
        plan::min_long_side(small),
        4000,
        &[4.0 / 3.0, 1.5, 1.0, 0.75],
    );
    let long = w.max(h) as f64;
    let tone = rng.int(38, 62) as u8;
    let board = [tone, tone.saturating_add(4), tone.saturating_add(10)];
    let mut c = Canvas::new(w, h, board);
    let face = *rng.pick(&Face::ALL);
    let cap = plan::answer_cap(rng, small, long);
    let size = face.size_for_cap(cap);
    let pp = (size * 0.6).round().max(3.0);
    let (lw, lh) = (face.width(size, "Exit: WWWWWW"), face.height(size));
    let (pw, ph) = ((lw + 2.0 * pp).ceil(), (lh + 2.0 * pp).ceil());
    let m0 = (long * 0.03).round();
    let (mx, my) = (pw + m0, ph + m0);
    let n_long = rng.int(14, 34) as f64;
    let cs = ((w as f64 - 2.0 * mx).max(h as f64 - 2.0 * my) / n_long)
        .floor()
        .max(20.0);
    let cols = (((w as f64 - 2.0 * mx) / cs).floor() as usize).max(4);
    let rows = (((h as f64 - 2.0 * my) / cs).floor() as usize).max(4);
    let t = (cs * rng.uniform(0.12, 0.22)).round().clamp(2.0, m0 / 2.0);
    let (ox, oy) = (
        ((w as f64 - cols as f64 * cs) / 2.0).round(),
        ((h as f64 - rows as f64 * cs) / 2.0).round(),
    );

    let mut grid = Grid::carve(rng, rows, cols);

    // Exits on the border, spaced so their pockets (and crops) never touch.
    let span_x = (pw / cs).ceil() as usize + 1;
    let span_y = (ph / cs).ceil() as usize + 1;
    let k = rng.int(3, 6) as usize;
    let mut exits: Vec<(Side, (usize, usize))> = Vec::new();
    for _ in 0..200 {
        if exits.len() == k {
            break;
        }
        let side = *rng.pick(&[Side::Top, Side::Bottom, Side::Left, Side::Right]);
        let (cell, along, span, len) = match side {
            Side::Top | Side::Bottom => {
                let cc = rng.below(cols as u64) as usize;
                (
                    (if side == Side::Top { 0 } else { rows - 1 }, cc),
                    cc,
                    span_x,
                    cols,
                )
            }
            _ => {
                let rr = rng.below(rows as u64) as usize;
                (
                    (rr, if side == Side::Left { 0 } else { cols - 1 }),
                    rr,
                    span_y,
                    rows,
                )
            }
        };
        // The pocket must stay within the maze's extent along its side.
        let half = span / 2;
        if along < half || along + half >= len {
            continue;
        }
        let clash = exits.iter().any(|(s, e)| {
            *s == side && {
                let other = if matches!(side, Side::Top | Side::Bottom) {
                    e.1
                } else {
                    e.0
                };
                other.abs_diff(along) < span + 1
            }
        });
        if !clash {
            exits.push((side, cell));
        }
    }
    assert!(exits.len() >= 2, "a maze always fits two exits");

    // A start and a target such that no other exit lies on the path between them, then cut
    // one passage on each other exit's branch: that exit is sealed off, the target is not.
    let (start, target) = loop {
        let s = (
            rng.int(1, rows as i64 - 2) as usize,
            rng.int(1, cols as i64 - 2) as usize,
        );
        let ti = rng.below(exits.len() as u64) as usize;
        let p = grid.parents(s);
        let path = Grid::path_to(&p, exits[ti].1);
        let others_on_path = exits
            .iter()
            .enumerate()
            .any(|(i, e)| i != ti && path.contains(&e.1));
        if !others_on_path && path.len() >= 4 {
            break (s, ti);
        }
    };
    let p = grid.parents(start);
    let main: Vec<(usize, usize)> = Grid::path_to(&p, exits[target].1);
    for (i, e) in exits.iter().enumerate() {
        if i == target {
            continue;
        }
        let branch = Grid::path_to(&p, e.1);
        // Edges of the branch before it joins the start-target path.
        let mut edges = Vec::new();
        for w2 in branch.windows(2) {
            if main.contains(&w2[0]) {
                break;
            }
            edges.push((w2[0], w2[1]));
        }
        if !edges.is_empty() {
            let (a, b) = edges[rng.below(edges.len() as u64) as usize];
            grid.set(a, b, false);
        }
    }
    let reach = grid.parents(start);
    for (i, e) in exits.iter().enumerate() {
        assert_eq!(
            reach[e.1 .0][e.1 .1].is_some(),
            i == target,
            "exactly the target exit is reachable"
        );
    }

    // Draw: the maze floor, the walls, openings and pockets, the labels, the start.
    let floor = Rect::new(ox, oy, ox + cols as f64 * cs, oy + rows as f64 * cs);
    let wall = [20, 20, 22];
    c.fill_rect(expand(floor, t / 2.0, w, h), [255, 255, 255]);
    let half = t / 2.0;
    let hseg = |c: &mut Canvas, x0: f64, x1: f64, y: f64| {
        c.fill_rect(Rect::new(x0 - half, y - half, x1 + half, y + half), wall)
    };
    let vseg = |c: &mut Canvas, x: f64, y0: f64, y1: f64| {
        c.fill_rect(Rect::new(x - half, y0 - half, x + half, y1 + half), wall)
    };
    hseg(&mut c, floor.x0, floor.x1, floor.y0);
    hseg(&mut c, floor.x0, floor.x1, floor.y1);
    vseg(&mut c, floor.x0, floor.y0, floor.y1);
    vseg(&mut c, floor.x1, floor.y0, floor.y1);
    for r in 0..rows {
        for cc in 0..cols {
            let (x0, y0) = (ox + cc as f64 * cs, oy + r as f64 * cs);
            if cc + 1 < cols && !grid.right[r][cc] {
                vseg(&mut c, x0 + cs, y0, y0 + cs);
            }
            if r + 1 < rows && !grid.down[r][cc] {
                hseg(&mut c, x0, x0 + cs, y0 + cs);
            }
        }
    }
    let mut book = CodeBook::new();
    let mut placed = Vec::new();
    for &(side, (r, cc)) in &exits {
        let (x0, y0) = (ox + cc as f64 * cs, oy + r as f64 * cs);
        let (cx, cy) = (x0 + cs / 2.0, y0 + cs / 2.0);
        let (opening, pocket, gap) = match side {
            Side::Top => (
                Rect::new(
                    x0 + half,
                    floor.y0 - half - 1.0,
                    x0 + cs - half,
                    floor.y0 + half,
                ),
                Rect::new(
                    cx - pw / 2.0,
                    floor.y0 - half - ph,
                    cx + pw / 2.0,
                    floor.y0 - half,
                ),
                Point::new(cx, floor.y0),
            ),
            Side::Bottom => (
                Rect::new(
                    x0 + half,
                    floor.y1 - half,
                    x0 + cs - half,
                    floor.y1 + half + 1.0,
                ),
                Rect::new(
                    cx - pw / 2.0,
                    floor.y1 + half,
                    cx + pw / 2.0,
                    floor.y1 + half + ph,
                ),
                Point::new(cx, floor.y1),
            ),
            Side::Left => (
                Rect::new(
                    floor.x0 - half - 1.0,
                    y0 + half,
                    floor.x0 + half,
                    y0 + cs - half,
                ),
                Rect::new(
                    floor.x0 - half - pw,
                    cy - ph / 2.0,
                    floor.x0 - half,
                    cy + ph / 2.0,
                ),
                Point::new(floor.x0, cy),
            ),
            Side::Right => (
                Rect::new(
                    floor.x1 - half,
                    y0 + half,
                    floor.x1 + half + 1.0,
                    y0 + cs - half,
                ),
                Rect::new(
                    floor.x1 + half,
                    cy - ph / 2.0,
                    floor.x1 + half + pw,
                    cy + ph / 2.0,
                ),
                Point::new(floor.x1, cy),
            ),
        };
        let pocket = plan::whole(pocket);
        c.fill_rect(pocket, [255, 255, 255]);
        c.fill_rect(opening, [255, 255, 255]);
        let code = book.draw(rng);
        let text = format!("Exit: {code}");
        let tw = face.width(size, &text);
        c.text(
            pocket.center().x - tw / 2.0,
            pocket.center().y - lh / 2.0,
            &text,
            face,
            size,
            [30, 30, 34],
        );
        placed.push(Exit {
            side,
            cell: (r, cc),
            code,
            pocket,
            gap,
        });
    }
    let (colour, rgb) = *rng.pick(COLOURS);
    let from = Point::new(
        ox + (start.1 as f64 + 0.5) * cs,
        oy + (start.0 as f64 + 0.5) * cs,
    );
    let radius = ((cs - t) * 0.35).max(4.0);
    c.fill_circle(from.x, from.y, radius, rgb);

    let e = &placed[target];
    // Context around the reached exit, but never another exit's label: rule 2 reads the first
    // code in view, so the crop must hold exactly one.
    let ctx = plan::context_crop(&e.pocket, cap, w, h);
    let clear = |r: &Rect| {
        placed
            .iter()
            .enumerate()
            .all(|(i, o)| i == target || !crate::draw::overlaps(r, &o.pocket))
    };
    let crop = [1.0, 0.8, 0.6, 0.45, 0.3, 0.2, 0.1]
        .into_iter()
        .map(|k| {
            let p = e.pocket;
            plan::whole(Rect::new(
                p.x0 - (p.x0 - ctx.x0) * k,
                p.y0 - (p.y0 - ctx.y0) * k,
                p.x1 + (ctx.x1 - p.x1) * k,
                p.y1 + (ctx.y1 - p.y1) * k,
            ))
        })
        .find(|r| clear(r))
        .unwrap_or_else(|| expand(e.pocket, 2.0, w, h));
    let f = zoom_factor(&crop, cap);
    let stroke = ((cs - t) * 0.3).clamp(3.0, 50.0).round();
    let program = vec![
        Op::Path {
            from,
            to: e.gap,
            color: Color::MAGENTA,
            width: stroke,
            wall_luma: 96,
        },
        plan::crop(crop),
        plan::zoom(f),
        plan::mark(&e.pocket, w, h),
    ];
    let question = fill(rng.pick_str(QUESTIONS), &[("colour", colour)]);
    let reasoning = format!(
        "The start is the {colour} disk at ({x:.0}, {y:.0}), in row {r}, column {cc} of a {rows}x{cols} maze. Of its {k} exits only the one on the {side} side, at ({gx:.0}, {gy:.0}), connects to the start; walls seal the others off. Draw the path from the start to that exit, then crop its label pocket {pocket}, zoom x{f} and box the label. {legible} The code on the reached exit's label is the answer.",
        x = from.x,
        y = from.y,
        r = start.0 + 1,
        cc = start.1 + 1,
        k = placed.len(),
        side = e.side.name(),
        gx = e.gap.x,
        gy = e.gap.y,
        pocket = fmt_box(&e.pocket),
        legible = legibility(cap, w, h),
    );
    let meta = json!({
        "start_colour": colour,
        "start": from,
        "rows": rows,
        "cols": cols,
        "cell_px": cs,
        "wall_px": t,
        "face": face,
        "target_exit": target,
        "exits": placed.iter().map(|e| json!({"side": e.side.name(), "cell": [e.cell.0, e.cell.1], "code": e.code, "label_box": e.pocket, "gap": e.gap})).collect::<Vec<_>>(),
    });
    Built {
        canvas: c,
        question,
        answer: e.code.clone(),
        format: AnswerFormat::Code,
        gold_region: e.pocket,
        gold_program: program,
        reasoning,
        answer_cap: cap,
        meta,
        objects: Vec::new(),
    }
}
