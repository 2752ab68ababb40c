//! Jigsaw: a label on a textured background, cut into a grid of shuffled tiles. The question
//! quotes one line's key (`"Batch"`); the answer is the code after it.
//!
//! The answer line always straddles a vertical cut through its code, and the shuffle places
//! its two tiles side by side in swapped order: on the shuffled image the code is broken in
//! two (the reader finds the key but a fragment after it), and after the restore both halves
//! join. That placement is also what lets the gold crop work *after* the restore: a crop is
//! given in original (shuffled) pixels and mapped tile by tile, so it must cover tiles that
//! are contiguous in the shuffled image — here exactly the two tiles of the answer line. The
//! grid is fine enough (tiles about 28 cap heights wide) that those two tiles zoomed to the
//! reader's 1024 px leave the text legible.

use super::{fill, Built};
use crate::codes::{CodeBook, SIGN_KEYS, SIGN_TITLES};
use crate::draw::{gradient, overlaps, Canvas, Face};
use crate::plan::{self, fmt_box, legibility, zoom_factor};
use crate::rng::Rng;
use crate::AnswerFormat;
use etchr_ops::render::{jigsaw_inverse, jigsaw_permute};
use etchr_ops::{Op, Rect};
use serde_json::json;

const QUESTIONS: &[&str] = &[
    r#"This label was cut into tiles and shuffled. Restore the tiles and read the code after "{key}"."#,
    r#"The tiles of this sign are out of order. Put them back and give the code on the line "{key}"."#,
    r#"Reassemble the shuffled {rows}x{cols} tiles. What code follows "{key}"?"#,
    r#"Restore the tiles of this {rows} by {cols} jigsaw, then report the code printed after "{key}"."#,
];

pub fn build(rng: &mut Rng, small: bool) -> Built {
    let long = rng.int(plan::min_long_side(small) as i64, 3960) as f64;
    let aspect = *rng.pick(&[0.75, 1.0, 4.0 / 3.0, 1.5]);
    let (w0, h0) = if aspect >= 1.0 {
        (long, long / aspect)
    } else {
        (long * aspect, long)
    };
    let face = *rng.pick(&Face::ALL);
    let cap = plan::answer_cap(rng, small, long);
    let size = face.size_for_cap(cap);
    // Tiles about 28 cap heights wide: two of them zoomed to 1024 px keep capitals ~18 px.
    let cols = ((w0 / (28.0 * cap)).ceil() as u32).clamp(2, 8);
    let tw = (w0 / cols as f64).ceil();
    let rows = ((h0 / (tw * rng.uniform(0.7, 1.2))).round() as u32).clamp(2, 4);
    let th = (h0 / rows as f64).ceil();
    let (w, h) = ((tw * cols as f64) as u32, (th * rows as f64) as u32);

    // A textured background with strong strokes across the cuts: edge continuity for the solver.
    let light = |rng: &mut Rng| {
        [
            rng.int(150, 235) as u8,
            rng.int(150, 235) as u8,
            rng.int(150, 235) as u8,
        ]
    };
    let corners = [light(rng), light(rng), light(rng), light(rng)];
    let mut c = Canvas::from_image(gradient(
        w,
        h,
        corners,
        rng.uniform(6.0, 14.0),
        rng.uniform(0.0, 6.0),
    ));
    for _ in 0..rng.int(6, 14) {
        let col = [
            rng.int(60, 230) as u8,
            rng.int(60, 230) as u8,
            rng.int(60, 230) as u8,
        ];
        let (x0, y0) = (rng.uniform(0.0, w as f64), rng.uniform(0.0, h as f64));
        let (x1, y1) = (rng.uniform(0.0, w as f64), rng.uniform(0.0, h as f64));
        c.line((x0, y0), (x1, y1), rng.uniform(0.004, 0.015) * long, col);
    }
    // No frame: a uniform frame makes the outer edges match each other perfectly, and an
    // edge-continuity solver then prefers a wrapped-around arrangement.
    let border = (long * 0.01).round();

    let ink = [
        rng.int(10, 40) as u8,
        rng.int(10, 40) as u8,
        rng.int(10, 50) as u8,
    ];
    let title = *rng.pick(SIGN_TITLES);
    let title_size = size * 1.8;
    let (ttw, tth) = (face.width(title_size, title), face.height(title_size));
    let title_box = Rect::new(
        border * 2.0,
        border * 2.0,
        border * 2.0 + ttw,
        border * 2.0 + tth,
    );
    c.fill_rect(
        plan::whole(Rect::new(
            title_box.x0 - 4.0,
            title_box.y0 - 2.0,
            title_box.x1 + 4.0,
            title_box.y1 + 2.0,
        )),
        [245, 245, 240],
    );
    c.text(title_box.x0, title_box.y0, title, face, title_size, ink);

    let lh = face.height(size);
    let m = (lh * 0.6).ceil();
    let n_lines = rng.int(4, 8) as usize;
    let keys = rng.sample(SIGN_KEYS, n_lines);
    let mut book = CodeBook::new();
    let mut boxes: Vec<Rect> = vec![title_box];
    // The answer line first: inside one tile row, its code cut by a vertical tile edge.
    let key = keys[0];
    let code = book.draw(rng);
    let (kw, cw) = (
        face.width(size, &format!("{key}: ")),
        face.width(size, &code),
    );
    let (line, cut_col, row) = loop {
        let k = rng.int(1, cols as i64 - 1) as f64;
        let r = rng.below(rows as u64) as f64;
        let x = k * tw - kw - cw * rng.uniform(0.3, 0.7);
        let y = rng.uniform(r * th + m + border, (r + 1.0) * th - m - lh - border);
        let b = Rect::new(
            x.round(),
            y.round(),
            (x + kw + cw).round(),
            (y + lh).round(),
        );
        if b.x0 > (k - 1.0) * tw + border && !overlaps(&b, &expand_y(&title_box, m)) {
            break (b, k as u32, r as u32);
        }
    };
    draw_line(&mut c, &line, &format!("{key}: {code}"), face, size, ink);
    boxes.push(line);
    for k2 in &keys[1..] {
        let text = format!("{k2}: {}", book.draw(rng));
        let lw = face.width(size, &text);
        for _ in 0..50 {
            let x = rng.uniform(border * 2.0, w as f64 - lw - border * 2.0);
            let y = rng.uniform(border * 2.0, h as f64 - lh - border * 2.0);
            let b = Rect::new(x.round(), y.round(), (x + lw).round(), (y + lh).round());
            if !boxes.iter().any(|o| overlaps(&expand_y(o, m * 2.0), &b)) {
                draw_line(&mut c, &b, &text, face, size, ink);
                boxes.push(b);
                break;
            }
        }
    }

    // The shuffle: the line's tiles A (left) and B (right) land side by side as [B, A].
    let n = (rows * cols) as usize;
    let a = row * cols + cut_col - 1;
    let b = a + 1;
    let order: Vec<u32> = loop {
        let pr = rng.below(rows as u64) as u32;
        let pc = rng.below(cols as u64 - 1) as u32;
        let p = (pr * cols + pc) as usize;
        let mut rest: Vec<u32> = (0..n as u32).filter(|&t| t != a && t != b).collect();
        rng.shuffle(&mut rest);
        let mut order = Vec::with_capacity(n);
        let mut it = rest.into_iter();
        for i in 0..n {
            order.push(if i == p {
                b
            } else if i == p + 1 {
                a
            } else {
                it.next().expect("n - 2 other tiles")
            });
        }
        let fixed = order
            .iter()
            .enumerate()
            .filter(|(i, &t)| *i as u32 == t)
            .count();
        if fixed <= n / 6 {
            break order;
        }
    };
    let p = order.iter().position(|&t| t == b).expect("b is placed") as u32;
    let (pr, pc) = (p / cols, p % cols);
    let sign = std::mem::take(&mut c.img);
    c.img = jigsaw_permute(&sign, rows, cols, &order);

    // The crop covers the two tiles' full height: a crop may not leave their tile row (its
    // pieces are mapped tile by tile), and a tall result keeps the OCR from splitting words.
    let crop_orig = Rect::new(
        pc as f64 * tw,
        pr as f64 * th,
        (pc as f64 + 2.0) * tw,
        (pr as f64 + 1.0) * th,
    );
    let restored = Rect::new(
        (cut_col - 1) as f64 * tw,
        row as f64 * th,
        (cut_col + 1) as f64 * tw,
        (row as f64 + 1.0) * th,
    );
    let f = zoom_factor(&restored, cap);
    let program = vec![
        Op::Jigsaw {
            rows,
            cols,
            order: jigsaw_inverse(&order),
        },
        plan::crop(crop_orig),
        plan::zoom(f),
    ];
    let question = fill(
        rng.pick_str(QUESTIONS),
        &[
            ("key", key),
            ("rows", &rows.to_string()),
            ("cols", &cols.to_string()),
        ],
    );
    let reasoning = format!(
        "The image is a {rows}x{cols} grid of shuffled tiles; the line \"{key}\" is cut in two, its code split between neighbouring tiles that sit swapped at {shuffled}. Restore the tiles (output tile i takes shuffled tile order[i]); the line then reads whole at {line} in the restored label. {legible} Crop the line's two tiles, {restored} after the restore, and zoom x{f} so the text is about {big:.0} px tall; the code follows \"{key}\".",
        shuffled = fmt_box(&crop_orig),
        line = fmt_box(&line),
        restored = fmt_box(&restored),
        legible = legibility(cap, w, h),
        big = cap * f,
    );
    let meta = json!({
        "rows": rows,
        "cols": cols,
        "order": order,
        "line_box_restored": line,
        "crop_restored": restored,
        "face": face,
        "lines": boxes.len() - 1,
    });
    Built {
        canvas: c,
        question,
        answer: code,
        format: AnswerFormat::Code,
        gold_region: crop_orig,
        gold_program: program,
        reasoning,
        answer_cap: cap,
        meta,
        objects: Vec::new(),
    }
}

fn expand_y(r: &Rect, m: f64) -> Rect {
    Rect::new(r.x0 - m, r.y0 - m, r.x1 + m, r.y1 + m)
}

/// A text line on a pale band, so it reads on any background.
fn draw_line(c: &mut Canvas, b: &Rect, text: &str, face: Face, size: f64, ink: [u8; 3]) {
    let pad = (size * 0.2).round().max(1.0);
    c.fill_rect(
        Rect::new(b.x0 - pad, b.y0, b.x1 + pad, b.y1),
        [246, 244, 236],
    );
    c.text(b.x0, b.y0, text, face, size, ink);
}
