//! Fine-grained: a cluttered panel of coloured shapes, each with a small tag `KEY: CODE`.
//! The question names one tag's key (quoted) and its shape by colour, kind and position; the
//! gold edit crops the tag with a margin, zooms it and boxes it.

use super::{fill, paper, shapes, Built};
use crate::codes::{CodeBook, COLOURS, TAG_WORDS};
use crate::draw::{expand, Canvas, Face, TextBox};
use crate::plan::{self, canvas_size, fmt_box, legibility, position_name, zoom_factor};
use crate::rng::Rng;
use crate::{AnswerFormat, CueObject};
use etchr_ops::{Color, Op, Rect};
use serde_json::json;

const QUESTIONS: &[&str] = &[
    r#"What is the code on the tag "{key}" of the {colour} {shape}?"#,
    r#"Near the {pos} of the panel there is a {colour} {shape}. Read the code after "{key}" on its tag."#,
    r#"Which code is printed on the tag "{key}" attached to the {colour} {shape}?"#,
    r#"The {colour} {shape} in the {pos} area carries a tag "{key}". What code does the tag show?"#,
    r#"Find the {colour} {shape} whose tag begins with "{key}" and report the code written on it."#,
];

struct Placed {
    shape: &'static str,
    colour: &'static str,
    cx: f64,
    cy: f64,
    key: String,
    code: String,
    tag: Rect,
    text: TextBox,
}

pub fn build(rng: &mut Rng, small: bool) -> Built {
    let (w, h) = canvas_size(
        rng,
        plan::min_long_side(small),
        4000,
        &[4.0 / 3.0, 1.5, 16.0 / 9.0, 1.0, 0.75],
    );
    let long = w.max(h) as f64;
    let mut c = Canvas::new(w, h, paper(rng));
    clutter(&mut c, rng);

    let face = *rng.pick(&Face::ALL);
    let cap = plan::answer_cap(rng, small, long);
    let size = face.size_for_cap(cap);
    let pad = (size * 0.35).round().max(2.0);
    let tag_w = face.width(size, "Nozzle 88: WWWWWW") + 2.0 * pad;
    let tag_h = face.height(size) + 2.0 * pad;
    let r = long * rng.uniform(0.014, 0.03);
    let gap = (long * 0.01).max(pad * 2.0).max(cap * 2.5);
    let cell_w = (2.0 * r).max(tag_w) + 2.0 * gap;
    let cell_h = 2.0 * r + tag_h + 3.0 * gap;
    let cols = ((w as f64 / cell_w).floor() as usize).max(1);
    let rows = ((h as f64 / cell_h).floor() as usize).max(1);
    let mut cells: Vec<(usize, usize)> = (0..rows)
        .flat_map(|y| (0..cols).map(move |x| (x, y)))
        .collect();
    rng.shuffle(&mut cells);
    let keep = ((cells.len() as f64 * rng.uniform(0.55, 0.85)).round() as usize)
        .clamp(1.min(cells.len()), 90);
    cells.truncate(keep);
    cells.sort();

    let mut keys: Vec<(usize, u32)> = Vec::new();
    let mut book = CodeBook::new();
    let mut placed = Vec::new();
    let (ox, oy) = (
        (w as f64 - cols as f64 * cell_w) / 2.0,
        (h as f64 - rows as f64 * cell_h) / 2.0,
    );
    for (cx_i, cy_i) in cells {
        let (x0, y0) = (ox + cx_i as f64 * cell_w, oy + cy_i as f64 * cell_h);
        let slack = cell_w - 2.0 * gap - (2.0 * r).max(tag_w);
        let jx = rng.uniform(0.0, slack.max(0.0));
        let jy = rng.uniform(0.0, gap);
        let cx = x0 + gap + jx + (2.0 * r).max(tag_w) / 2.0;
        let cy = y0 + gap + jy + r;
        let (shape, (colour, rgb)) = (*rng.pick(shapes::SHAPES), *rng.pick(COLOURS));
        let rr = r * rng.uniform(0.75, 1.0);
        shapes::draw(&mut c, shape, cx, cy, rr, rgb);
        let key = loop {
            let k = (
                rng.below(TAG_WORDS.len() as u64) as usize,
                rng.int(1, 99) as u32,
            );
            if !keys.contains(&k) {
                keys.push(k);
                break format!("{} {}", TAG_WORDS[k.0], k.1);
            }
        };
        let code = book.draw(rng);
        let text = format!("{key}: {code}");
        let tw = face.width_tight(size, &text) + 2.0 * pad;
        let tx = (cx - tw / 2.0).round();
        let ty = (cy + r + gap * 0.6).round();
        let tag = Rect::new(tx, ty, tx + tw, ty + tag_h);
        c.fill_rect(tag, [255, 255, 255]);
        c.stroke_rect(tag, (size / 14.0).round().max(1.0), [90, 90, 90]);
        let tb = c.text_tight(tx + pad, ty + pad, &text, face, size, [20, 20, 20]);
        placed.push(Placed {
            shape,
            colour,
            cx,
            cy,
            key,
            code,
            tag,
            text: tb,
        });
    }

    let t = &placed[rng.below(placed.len() as u64) as usize];
    let pos = position_name(t.cx, t.cy, w, h);
    let template = rng.pick_str(QUESTIONS);
    // The shapes the question's visual cue fits, each with its tag: what an editor that cannot
    // read the keys can narrow the question down to (the target is one of them).
    let objects: Vec<CueObject> = placed
        .iter()
        .map(|p| CueObject {
            region: plan::whole(Rect::new(p.cx - r, p.cy - r, p.cx + r, p.cy + r).union(&p.tag)),
            colour: p.colour,
            kind: p.shape,
            fits_cue: p.colour == t.colour
                && p.shape == t.shape
                && (!template.contains("{pos}") || position_name(p.cx, p.cy, w, h) == pos),
        })
        .collect();
    let question = fill(
        template,
        &[
            ("key", &t.key),
            ("colour", t.colour),
            ("shape", t.shape),
            ("pos", pos),
        ],
    );
    let crop = plan::context_crop(&t.tag, cap, w, h);
    let f = zoom_factor(&crop, cap);
    let ring = expand(t.tag, (pad * 0.5).max(2.0), w, h);
    let program = vec![
        plan::crop(crop),
        plan::zoom(f),
        Op::DrawBox {
            region: ring,
            color: Color::RED,
            width: 3.0,
            label: None,
        },
    ];
    let reasoning = format!(
        "The question names the tag \"{key}\" on the {colour} {shape}. That {shape} is in the {pos} of the panel, centred near ({cx:.0}, {cy:.0}), and its tag sits just below it at {tag}. {legible} Crop the tag with its surroundings ({crop}), zoom x{f} so its capitals are about {big:.0} px tall, and box it: the code follows the key on the tag.",
        key = t.key,
        colour = t.colour,
        shape = t.shape,
        cx = t.cx,
        cy = t.cy,
        tag = fmt_box(&t.tag),
        legible = legibility(cap, w, h),
        crop = fmt_box(&crop),
        big = cap * f,
    );
    let meta = json!({
        "shape": t.shape,
        "colour": t.colour,
        "position": pos,
        "face": face,
        "shapes": placed.len(),
        "answer_box": t.text.caps,
    });
    Built {
        canvas: c,
        question,
        answer: t.code.clone(),
        format: AnswerFormat::Code,
        gold_region: t.tag,
        gold_program: program,
        reasoning,
        answer_cap: cap,
        meta,
        objects,
    }
}

/// Faint grid lines, scribbles and dots: the clutter that makes a naive downscale lose tags.
fn clutter(c: &mut Canvas, rng: &mut Rng) {
    let (w, h) = (c.width() as f64, c.height() as f64);
    let step = w.max(h) / rng.uniform(12.0, 30.0);
    let grey = [215, 215, 218];
    let mut x = step;
    while x < w {
        c.line((x, 0.0), (x, h), 1.0, grey);
        x += step;
    }
    let mut y = step;
    while y < h {
        c.line((0.0, y), (w, y), 1.0, grey);
        y += step;
    }
    for _ in 0..rng.int(40, 120) {
        let (x, y) = (rng.uniform(0.0, w), rng.uniform(0.0, h));
        let tone = rng.int(150, 225) as u8;
        if rng.chance(0.5) {
            c.fill_circle(
                x,
                y,
                rng.uniform(1.0, 4.0),
                [tone, tone, tone.saturating_add(10)],
            );
        } else {
            let (dx, dy) = (rng.uniform(-60.0, 60.0), rng.uniform(-60.0, 60.0));
            c.line(
                (x, y),
                (x + dx, y + dy),
                rng.uniform(1.0, 3.0),
                [tone, tone, tone],
            );
        }
    }
}
