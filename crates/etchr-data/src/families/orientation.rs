//! Orientation: a board of tags `KEY: CODE`, some rotated by 90/180/270 degrees or mirrored.
//! The question quotes the target tag's key and describes it (colour, position, how it lies);
//! the target is never upright, so an OCR reader cannot find its key until the edit turns it.
//! The gold edit crops the tag, rotates or flips it upright, and zooms.

use super::{fill, Built};
use crate::codes::{CodeBook, TAG_WORDS};
use crate::draw::{gradient, Canvas, Face};
use crate::plan::{self, canvas_size, fmt_box, legibility, position_name, zoom_factor};
use crate::rng::Rng;
use crate::{AnswerFormat, CueObject};
use etchr_ops::program::Axis;
use etchr_ops::{Color, Op, Rect, RgbImage};
use image::imageops;
use serde_json::json;

const QUESTIONS: &[&str] = &[
    r#"The {colour} tag in the {pos} is {lies}. What is the code after "{key}" on it?"#,
    r#"One tag is {lies}: the {colour} one. Read the code that follows "{key}"."#,
    r#"What code is printed on the {colour} tag "{key}"? The tag is {lies}."#,
    r#"Turn the {colour} tag ({lies}, {pos}) upright and give the code after "{key}"."#,
];

const TAG_COLOURS: &[(&str, [u8; 3])] = &[
    ("yellow", [250, 228, 120]),
    ("pink", [246, 190, 212]),
    ("green", [186, 232, 186]),
    ("blue", [186, 212, 246]),
    ("orange", [250, 200, 146]),
    ("white", [252, 252, 252]),
    ("lilac", [218, 198, 240]),
    ("grey", [205, 205, 205]),
];

/// How a tag lies on the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    Upright,
    /// Turned 90° counter-clockwise.
    Rot90,
    Rot180,
    /// Turned 270° counter-clockwise (90° clockwise).
    Rot270,
    /// Mirrored left–right.
    FlipH,
    /// Mirrored top–bottom.
    FlipV,
}

impl Orientation {
    const TURNED: [Orientation; 5] = [
        Orientation::Rot90,
        Orientation::Rot180,
        Orientation::Rot270,
        Orientation::FlipH,
        Orientation::FlipV,
    ];

    fn name(self) -> &'static str {
        match self {
            Orientation::Upright => "upright",
            Orientation::Rot90 => "rot90",
            Orientation::Rot180 => "rot180",
            Orientation::Rot270 => "rot270",
            Orientation::FlipH => "flip_h",
            Orientation::FlipV => "flip_v",
        }
    }

    /// What a person would say about the tag (not the exact transform).
    fn describe(self) -> &'static str {
        match self {
            Orientation::Upright => "upright",
            Orientation::Rot90 | Orientation::Rot270 => "lying on its side",
            Orientation::Rot180 => "upside down",
            Orientation::FlipH | Orientation::FlipV => "mirrored",
        }
    }

    /// The tag as it appears on the board.
    pub fn apply(self, upright: &RgbImage) -> RgbImage {
        match self {
            Orientation::Upright => upright.clone(),
            Orientation::Rot90 => imageops::rotate270(upright),
            Orientation::Rot180 => imageops::rotate180(upright),
            Orientation::Rot270 => imageops::rotate90(upright),
            Orientation::FlipH => imageops::flip_horizontal(upright),
            Orientation::FlipV => imageops::flip_vertical(upright),
        }
    }

    /// The op that turns the tag upright again (`rotate` is counter-clockwise).
    pub fn undo(self) -> Option<Op> {
        let rotate = |angle: f64| Op::Rotate {
            angle,
            fill: Color::WHITE,
        };
        match self {
            Orientation::Upright => None,
            Orientation::Rot90 => Some(rotate(270.0)),
            Orientation::Rot180 => Some(rotate(180.0)),
            Orientation::Rot270 => Some(rotate(90.0)),
            Orientation::FlipH => Some(Op::Flip {
                axis: Axis::Horizontal,
            }),
            Orientation::FlipV => Some(Op::Flip {
                axis: Axis::Vertical,
            }),
        }
    }
}

struct Tag {
    key: String,
    code: String,
    colour: &'static str,
    orient: Orientation,
    rect: Rect,
}

pub fn build(rng: &mut Rng, small: bool) -> Built {
    let (w, h) = canvas_size(
        rng,
        plan::min_long_side(small),
        4000,
        &[4.0 / 3.0, 1.5, 1.0, 0.75],
    );
    let long = w.max(h) as f64;
    let pale = |rng: &mut Rng| {
        [
            rng.int(200, 240) as u8,
            rng.int(200, 240) as u8,
            rng.int(195, 235) as u8,
        ]
    };
    let corners = [pale(rng), pale(rng), pale(rng), pale(rng)];
    let mut c = Canvas::from_image(gradient(
        w,
        h,
        corners,
        rng.uniform(3.0, 8.0),
        rng.uniform(0.0, 6.0),
    ));
    let face = *rng.pick(&Face::ALL);
    let cap = plan::answer_cap(rng, small, long);
    let size = face.size_for_cap(cap);
    let pad = (size * 0.4).round().max(2.0);
    let max_tw = face.width(size, "Nozzle 88: WWWWWW") + 2.0 * pad;
    let th = (face.height(size) + 2.0 * pad).ceil();
    let gap = (long * 0.012).max(pad * 3.0).max(cap * 2.0);
    let cell = max_tw + 2.0 * gap;
    let cols = ((w as f64 / cell).floor() as usize).max(1);
    let rows = ((h as f64 / cell).floor() as usize).max(1);
    let mut cells: Vec<(usize, usize)> = (0..rows)
        .flat_map(|y| (0..cols).map(move |x| (x, y)))
        .collect();
    rng.shuffle(&mut cells);
    let keep = ((cells.len() as f64 * rng.uniform(0.5, 0.8)).round() as usize).clamp(1, 60);
    cells.truncate(keep);
    cells.sort();

    let mut used = Vec::new();
    let mut book = CodeBook::new();
    let mut tags = Vec::new();
    let (ox, oy) = (
        (w as f64 - cols as f64 * cell) / 2.0,
        (h as f64 - rows as f64 * cell) / 2.0,
    );
    let target_slot = rng.below(cells.len() as u64) as usize;
    for (i, (cx, cy)) in cells.into_iter().enumerate() {
        let key = loop {
            let k = (rng.below(TAG_WORDS.len() as u64) as usize, rng.int(1, 99));
            if !used.contains(&k) {
                used.push(k);
                break format!("{} {}", TAG_WORDS[k.0], k.1);
            }
        };
        let code = book.draw(rng);
        let text = format!("{key}: {code}");
        let (colour, fill_c) = *rng.pick(TAG_COLOURS);
        let tw = (face.width_tight(size, &text) + 2.0 * pad).ceil();
        let mut patch = Canvas::new(tw as u32, th as u32, fill_c);
        patch.stroke_rect(
            Rect::new(0.0, 0.0, tw, th),
            (size / 14.0).round().max(1.0),
            [70, 70, 70],
        );
        patch.text_tight(pad, pad, &text, face, size, [20, 20, 24]);
        let orient = if i == target_slot {
            *rng.pick(&Orientation::TURNED)
        } else if rng.chance(0.4) {
            Orientation::Upright
        } else {
            *rng.pick(&Orientation::TURNED)
        };
        let shown = orient.apply(&patch.img);
        let (sw, sh) = (shown.width() as f64, shown.height() as f64);
        let centre_x =
            ox + (cx as f64 + 0.5) * cell + rng.uniform(-1.0, 1.0) * (cell - sw).max(0.0) * 0.3;
        let centre_y =
            oy + (cy as f64 + 0.5) * cell + rng.uniform(-1.0, 1.0) * (cell - sh).max(0.0) * 0.3;
        let (x, y) = ((centre_x - sw / 2.0).round(), (centre_y - sh / 2.0).round());
        c.paste(&shown, x as i64, y as i64);
        c.texts.extend(patch.texts);
        tags.push(Tag {
            key,
            code,
            colour,
            orient,
            rect: Rect::new(x, y, x + sw, y + sh),
        });
    }

    let t = &tags[target_slot];
    let pos = position_name(t.rect.center().x, t.rect.center().y, w, h);
    let lies = t.orient.describe();
    let template = rng.pick_str(QUESTIONS);
    // What the cue pins down without reading: the colour, whether the tag stands on its side
    // (mirrored and upside-down tags look upright until their text can be read), the area.
    let kind = |o: Orientation| match o {
        Orientation::Rot90 | Orientation::Rot270 => "on its side",
        _ => "upright",
    };
    let objects: Vec<CueObject> = tags
        .iter()
        .map(|g| CueObject {
            region: g.rect,
            colour: g.colour,
            kind: kind(g.orient),
            fits_cue: g.colour == t.colour
                && kind(g.orient) == kind(t.orient)
                && (!template.contains("{pos}")
                    || position_name(g.rect.center().x, g.rect.center().y, w, h) == pos),
        })
        .collect();
    let question = fill(
        template,
        &[
            ("key", &t.key),
            ("colour", t.colour),
            ("pos", pos),
            ("lies", lies),
        ],
    );
    let crop = plan::context_crop(&t.rect, cap, w, h);
    let f = zoom_factor(&crop, cap);
    let mut program = vec![plan::crop(crop), plan::mark(&t.rect, w, h)];
    program.extend(t.orient.undo());
    program.push(plan::zoom(f));
    let turn = match t.orient {
        Orientation::Rot90 => "rotate it 270 degrees counter-clockwise",
        Orientation::Rot270 => "rotate it 90 degrees counter-clockwise",
        Orientation::Rot180 => "rotate it 180 degrees",
        Orientation::FlipH => "mirror it left to right",
        _ => "mirror it top to bottom",
    };
    let reasoning = format!(
        "The question names the {colour} tag \"{key}\", {lies}, in the {pos} of the board, at {rect}. Its text cannot be read as it lies. {legible} Crop the tag, box it, {turn} so the text is upright, and zoom x{f} so the capitals are about {big:.0} px tall; the code follows the key.",
        colour = t.colour,
        key = t.key,
        rect = fmt_box(&t.rect),
        legible = legibility(cap, w, h),
        big = cap * f,
    );
    let meta = json!({
        "orientation": t.orient.name(),
        "colour": t.colour,
        "position": pos,
        "tags": tags.len(),
        "face": face,
    });
    Built {
        canvas: c,
        question,
        answer: t.code.clone(),
        format: AnswerFormat::Code,
        gold_region: t.rect,
        gold_program: program,
        reasoning,
        answer_cap: cap,
        meta,
        objects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etchr_ops::{render, Program, RenderOptions};

    /// Every orientation's undo op, applied to the pasted tag, gives back the upright tag.
    #[test]
    fn undo_restores_the_upright_tag_exactly() {
        let upright = RgbImage::from_fn(37, 21, |x, y| {
            image::Rgb([(x * 7) as u8, (y * 20) as u8, ((x * y) % 251) as u8])
        });
        for o in Orientation::TURNED {
            let shown = o.apply(&upright);
            let mut board = RgbImage::from_pixel(100, 80, image::Rgb([1, 2, 3]));
            imageops::replace(&mut board, &shown, 20, 30);
            let rect = Rect::new(
                20.0,
                30.0,
                20.0 + shown.width() as f64,
                30.0 + shown.height() as f64,
            );
            let mut ops = vec![plan::crop(rect)];
            ops.extend(o.undo());
            let out = render(&board, &Program(ops), &RenderOptions::default()).unwrap();
            assert_eq!(out.views[0].image, upright, "{o:?}");
        }
    }
}
