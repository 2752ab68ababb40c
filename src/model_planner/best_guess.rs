//! The one candidate the planner bets on, boxed in red.
//!
//! Several of the planner's views show every candidate at once: a sheet of every text line, a
//! turned sheet of look-alike tags, an exit's pocket. The upstream still sees them all; the box
//! says which one the cue and the model's pointer favour (as the generator's gold programs box
//! their target), and it is the region `Program::focus` scores.

use super::colour_searches;
use super::named_things::{crops_around, in_the_named_place, pointer_mass};
use super::table_lookup::ordinal_number;
use super::words_outside_quotes;
use etchr_ops::render::{luma, BarChart, ColourRegion, NamedColour};
use etchr_ops::{Color, Op, Point, Program, Rect, RgbImage};
use etchr_reason::planner::PlanRequest;

/// The mark's colour and stroke (output pixels): the generator's gold programs'.
const MARK: Color = Color([230, 25, 25]);
const MARK_WIDTH: f64 = 3.0;

/// The red box round `region` (original pixels).
pub(super) fn mark(region: Rect) -> Op {
    Op::DrawBox {
        region,
        color: MARK,
        width: MARK_WIDTH,
        label: None,
    }
}

/// `program` with `region` boxed at the end, so the stroke is [`MARK_WIDTH`] pixels of the view
/// whatever the zoom (boxes are given in original pixels and mapped through every op before).
pub(super) fn marked(program: Program, region: Rect) -> Program {
    let mut ops = program.0;
    ops.push(mark(region));
    Program(ops)
}

/// A shape a question names ("the brown triangle").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Circle,
    Square,
    Triangle,
    Diamond,
    Hexagon,
}

impl Shape {
    /// Each shape's word and what a patch of it looks like: how much of its box it fills, and
    /// its box's width over its height (a triangle standing on its base and a hexagon with a
    /// flat top are wider than tall; the fills are the polygons' own).
    const ALL: [(Shape, &'static str, f64, f64); 5] = [
        (Shape::Circle, "circle", std::f64::consts::FRAC_PI_4, 1.0),
        (Shape::Square, "square", 1.0, 1.0),
        (Shape::Triangle, "triangle", 0.5, 1.155),
        (Shape::Diamond, "diamond", 0.5, 1.0),
        (Shape::Hexagon, "hexagon", 0.75, 1.155),
    ];

    /// The first shape `text` names outside quotes, if any.
    pub(super) fn in_text(text: &str) -> Option<Shape> {
        words_outside_quotes(text).find_map(|word| {
            let word = word.to_ascii_lowercase();
            Self::ALL
                .iter()
                .find(|(_, name, ..)| word == *name || word == format!("{name}s"))
                .map(|&(shape, ..)| shape)
        })
    }

    /// The shape a patch of colour looks most like, by its fill and its box's proportions.
    pub(super) fn of(region: &ColourRegion) -> Shape {
        let (w, h) = (region.bounds.width(), region.bounds.height());
        let fill = region.area as f64 / (w * h).max(1.0);
        let aspect = w / h.max(1.0);
        // A tenth of fill weighs as much as a twentieth of proportion.
        let distance = |&(_, _, f, a): &(Shape, &str, f64, f64)| {
            ((fill - f) / 0.1).powi(2) + ((aspect - a) / 0.05).powi(2)
        };
        Self::ALL
            .iter()
            .min_by(|a, b| distance(a).total_cmp(&distance(b)))
            .map_or(Shape::Circle, |&(shape, ..)| shape)
    }
}

/// For a question that names a thing by colour and shape ("the tag of the brown triangle"), the
/// line of `lines` that is that thing's tag: the things of that colour and shape (in the place
/// the question names, when some lie there), the one the model's `pointer` weighs most, and the
/// line just under it that spans its centre. `None` when the question names no colour or no
/// shape, or no such thing has a line under it.
pub(super) fn tag_of_the_named_thing(
    request: &PlanRequest<'_>,
    pointer: &[(Point, f32)],
    lines: &[Rect],
) -> Option<Rect> {
    let colour = NamedColour::in_text(request.question)?;
    let shape = Shape::in_text(request.question)?;
    let things: Vec<Rect> = colour_searches::colour_regions(request.image, colour)
        .iter()
        .filter(|r| Shape::of(r) == shape)
        .map(|r| r.bounds)
        .collect();
    crops_around(&in_the_named_place(things, request), request, pointer)
        .into_iter()
        .find_map(|(thing, _)| line_under(thing, lines))
        .map(|line| framed(request.image, line, lines))
}

/// For a chart question that names its mark by a cue, the annotation of that mark: the bar
/// named by its place or height ("the third bar from the left", "the tallest pink bar", in the
/// bar chart of the named colour, else the one the model's pointer weighs most) and the line
/// just above it; or the highest or lowest point of the named colour's series (its round
/// markers) and the line nearest it. `None` for other cues ("a point of the blue group"), which
/// fit several marks.
pub(super) fn chart_annotation(
    request: &PlanRequest<'_>,
    pointer: &[(Point, f32)],
    lines: &[Rect],
) -> Option<Rect> {
    let words: Vec<String> = words_outside_quotes(request.question)
        .map(str::to_ascii_lowercase)
        .collect();
    let has = |w: &str| words.iter().any(|x| x == w);
    let colour = NamedColour::in_text(request.question);
    let (highest, lowest) = (
        has("tallest") || has("highest"),
        has("shortest") || has("lowest"),
    );
    let image = request.image;
    if has("bar") {
        let mut charts = etchr_ops::render::bar_charts(image);
        if let Some(colour) = colour {
            charts.retain(|c| c.colour == colour);
        }
        let weight = |c: &BarChart| pointer_mass(c.bounds(), pointer);
        // The first (most bars) among equals.
        let chart = charts
            .iter()
            .rev()
            .max_by(|a, b| weight(a).total_cmp(&weight(b)))?;
        let bar = if highest {
            *chart.bars.iter().min_by(|a, b| a.y0.total_cmp(&b.y0))?
        } else if lowest {
            *chart.bars.iter().max_by(|a, b| a.y0.total_cmp(&b.y0))?
        } else {
            let k = words.iter().find_map(|w| ordinal_number(w))?;
            let from_the_left = k.checked_sub(1)?;
            if has("right") {
                *chart.bars.iter().rev().nth(from_the_left)?
            } else {
                *chart.bars.get(from_the_left)?
            }
        };
        return line_above(bar, lines).map(|line| framed(image, line, lines));
    }
    if has("point") && (highest || lowest) {
        let markers: Vec<Rect> = colour_searches::colour_regions(image, colour?)
            .iter()
            .filter(|r| Shape::of(r) == Shape::Circle)
            .map(|r| r.bounds)
            .collect();
        let marker = if highest {
            markers.iter().min_by(|a, b| a.y0.total_cmp(&b.y0))?
        } else {
            markers.iter().max_by(|a, b| a.y1.total_cmp(&b.y1))?
        };
        let c = marker.center();
        let gap = |l: &Rect| {
            let dx = (l.x0 - c.x).max(c.x - l.x1).max(0.0);
            let dy = (l.y0 - c.y).max(c.y - l.y1).max(0.0);
            dx.hypot(dy)
        };
        let line = lines
            .iter()
            .filter(|l| gap(l) <= 2.0 * l.height())
            .min_by(|a, b| gap(a).total_cmp(&gap(b)))?;
        return Some(framed(image, *line, lines));
    }
    None
}

/// The line of `lines` nearest above `bar` (within four of its own heights) that lies across
/// the bar's middle half: its annotation.
fn line_above(bar: Rect, lines: &[Rect]) -> Option<Rect> {
    let c = bar.center();
    let quarter = bar.width() / 4.0;
    lines
        .iter()
        .filter(|l| l.center().y < bar.y0 && l.y1 >= bar.y0 - 4.0 * l.height())
        .filter(|l| l.x0 < c.x + quarter && l.x1 > c.x - quarter)
        .max_by(|a, b| a.y1.total_cmp(&b.y1))
        .copied()
}

/// The line of `lines` nearest below `thing` (starting under its centre, within two of the
/// thing's heights) that lies across its middle half (a large tag's key and value can be two
/// lines, with the thing's centre above the space between them).
fn line_under(thing: Rect, lines: &[Rect]) -> Option<Rect> {
    let c = thing.center();
    let quarter = thing.width() / 4.0;
    lines
        .iter()
        .filter(|l| l.y0 >= c.y && l.y0 <= thing.y1 + 2.0 * thing.height())
        .filter(|l| l.x0 < c.x + quarter && l.x1 > c.x - quarter)
        .min_by(|a, b| a.y0.total_cmp(&b.y0))
        .copied()
}

/// The label of a maze's exit: of the text `lines` inside `pocket`, the one nearest `exit`,
/// with the words beside it on its baseline (a wide space can split "Exit" from its code).
pub(super) fn exit_label(lines: &[Rect], exit: Point, pocket: Rect) -> Option<Rect> {
    let nearest = *lines
        .iter()
        .filter(|l| pocket.contains(l.center()))
        .min_by(|a, b| {
            a.center()
                .distance(exit)
                .total_cmp(&b.center().distance(exit))
        })?;
    Some(with_its_words(nearest, lines))
}

/// `line` united with the lines beside it on its baseline, at most one and a half line heights
/// apart (a wide space splits a key from its value into two lines), snug (see [`unpadded`]).
pub(super) fn with_its_words(line: Rect, lines: &[Rect]) -> Rect {
    unpadded(
        lines
            .iter()
            .filter(|l| continues_the_row(&line, l))
            .fold(line, |label, l| label.union(l)),
    )
}

/// Whether `other` lies on `line`'s row (centres within half `line`'s height) and at most
/// one and a half of its heights from it either side: a word of the same line that text
/// detection split off at a wide space.
pub(super) fn continues_the_row(line: &Rect, other: &Rect) -> bool {
    let h = line.height();
    (other.center().y - line.center().y).abs() < h / 2.0
        && other.x0 < line.x1 + 1.5 * h
        && other.x1 > line.x0 - 1.5 * h
}

/// The tag `line` is printed on: the line itself, snug, when its own edges hold the tag's
/// outline (a small tag's outline is one of the line's blobs); else the outline around the line
/// and the words beside it ([`outline_around`]; a large tag's outline is too tall to count as a
/// letter, and a wide space can split its key from its value).
pub(super) fn framed(image: &RgbImage, line: Rect, lines: &[Rect]) -> Rect {
    let snug = unpadded(line);
    if holds_its_frame(image, snug, FRAME_LUMA) {
        snug
    } else {
        outline_around(image, with_its_words(line, lines), FRAME_LUMA)
    }
}

/// Outlines: at most this bright. A thin grey outline on a white tag blurs to about this in a
/// JPEG, while the paper and its faint clutter stay brighter.
const FRAME_LUMA: u8 = 160;

/// Whether rows near both the top and the bottom of `r` are mostly (60 %) dark across its
/// middle: an outline drawn inside it.
fn holds_its_frame(image: &RgbImage, r: Rect, dark: u8) -> bool {
    let (w, h) = image.dimensions();
    let x0 = (r.x0 + 0.1 * r.width()).max(0.0) as u32;
    let x1 = ((r.x1 - 0.1 * r.width()).max(0.0) as u32).min(w);
    let dark_row = |y: u32| {
        let n = (x0..x1)
            .filter(|&x| luma(image.get_pixel(x, y).0) <= dark)
            .count();
        x1 > x0 && n * 10 >= (x1 - x0) as usize * 6
    };
    let band = (r.height() / 3.0).ceil() as u32;
    let top = r.y0.max(0.0) as u32;
    let bottom = (r.y1.max(0.0) as u32).min(h);
    let near_top = (top..(top + band).min(bottom)).any(dark_row);
    let near_bottom = (bottom.saturating_sub(band).max(top)..bottom).any(dark_row);
    near_top && near_bottom
}

/// The light pocket `label` is printed in: `label` grown a pixel at a time on each side while
/// the strip it would add is light (at most 2 % of it darker than `dark`), at most `label`'s
/// height on each side. A pocket's opening (a strip part wall, part passage) stops it too.
pub(super) fn panel_around(image: &RgbImage, label: Rect, dark: u8) -> Rect {
    let reach = label.height().ceil() as u32;
    grown(image, label, dark, (reach, reach), |share| share > 0.02)
}

/// The outline around `label`: `label` grown a pixel at a time on each side until the strip it
/// would add is an outline (at least 85 % of it darker than `dark`; a letter's stroke covers
/// less of a line's height), which is then included; at most `label`'s height above and below
/// and four times that to each side (a value too short to count as a line, "42.7", can follow
/// the key). A side that meets no outline stays where it was.
fn outline_around(image: &RgbImage, label: Rect, dark: u8) -> Rect {
    let reach = label.height().ceil() as u32;
    let (across, up_down) = (4 * reach, reach);
    let inside = grown(image, label, dark, (across, up_down), |share| share >= 0.85);
    // A side that stopped short of its reach met an outline (or the image's edge): take the
    // outline in. A side that ran its whole reach met none: it stays.
    let side = |grown_to: f64, from: f64, reach: u32, out: f64| {
        if (grown_to - from).abs() < reach as f64 {
            grown_to + out
        } else {
            from
        }
    };
    let (w, h) = image.dimensions();
    Rect::new(
        side(inside.x0, label.x0, across, -1.0).max(0.0),
        side(inside.y0, label.y0, up_down, -1.0).max(0.0),
        side(inside.x1, label.x1, across, 1.0).min(w as f64),
        side(inside.y1, label.y1, up_down, 1.0).min(h as f64),
    )
}

/// `label` grown a pixel at a time on each side, at most `(across, up_down)` pixels, until the
/// strip it would add `stops` (given the share of it darker than `dark`).
fn grown(
    image: &RgbImage,
    label: Rect,
    dark: u8,
    (across, up_down): (u32, u32),
    stops: impl Fn(f64) -> bool,
) -> Rect {
    let (w, h) = image.dimensions();
    let open = |x0: u32, y0: u32, x1: u32, y1: u32| {
        let mut dark_px = 0;
        for y in y0..y1 {
            for x in x0..x1 {
                dark_px += usize::from(luma(image.get_pixel(x, y).0) <= dark);
            }
        }
        !stops(dark_px as f64 / ((x1 - x0) * (y1 - y0)).max(1) as f64)
    };
    let [mut x0, mut y0] = [label.x0, label.y0].map(|v| v.max(0.0).floor() as u32);
    let mut x1 = (label.x1.ceil() as u32).min(w);
    let mut y1 = (label.y1.ceil() as u32).min(h);
    let (ox0, oy0, ox1, oy1) = (x0, y0, x1, y1);
    while x0 > 0 && ox0 - x0 < across && open(x0 - 1, y0, x0, y1) {
        x0 -= 1;
    }
    while x1 < w && x1 - ox1 < across && open(x1, y0, x1 + 1, y1) {
        x1 += 1;
    }
    while y0 > 0 && oy0 - y0 < up_down && open(x0, y0 - 1, x1, y0) {
        y0 -= 1;
    }
    while y1 < h && y1 - oy1 < up_down && open(x0, y1, x1, y1 + 1) {
        y1 += 1;
    }
    Rect::new(x0 as f64, y0 as f64, x1 as f64, y1 as f64)
}

/// A line of `etchr_ops::render::text_lines` (padded by a quarter of its height) with half that
/// padding left: snug around the text (or the tag's outline) without touching it.
fn unpadded(line: Rect) -> Rect {
    let pad = line.height() / 12.0;
    line.padded(-pad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etchr_data::{generate_sample, Family};
    use std::sync::Arc;

    #[test]
    fn a_named_shape_is_read_outside_quotes_only() {
        assert_eq!(
            Shape::in_text(r#"What is the code on the tag "Circle 4" of the brown triangle?"#),
            Some(Shape::Triangle)
        );
        assert_eq!(Shape::in_text("two hexagons"), Some(Shape::Hexagon));
        assert_eq!(Shape::in_text("the tallest bar"), None);
    }

    #[test]
    fn patches_of_colour_are_told_apart_by_shape() {
        // Every shape the generator drew that a colour patch was found for: the patch's shape
        // must be the drawn one (stars fill too little of their box to be found as things).
        let (mut right, mut all) = (0, 0);
        for index in 0..6 {
            let s = generate_sample(Family::FineGrained, 7, index);
            for colour in ["red", "blue", "green", "orange", "purple", "brown"] {
                let named = NamedColour::from_word(colour).unwrap();
                for region in etchr_ops::render::colour_regions(&s.image, named) {
                    let Some(o) = s
                        .objects
                        .iter()
                        .find(|o| o.colour == colour && o.region.contains(region.bounds.center()))
                    else {
                        continue;
                    };
                    let drawn = Shape::in_text(o.kind);
                    if drawn.is_none() {
                        continue;
                    }
                    all += 1;
                    if drawn == Some(Shape::of(&region)) {
                        right += 1;
                    } else {
                        eprintln!(
                            "{} {colour}: {:?} as {:?}",
                            o.kind,
                            region,
                            Shape::of(&region)
                        );
                    }
                }
            }
        }
        assert!(all >= 30, "{all}");
        assert!(right * 10 >= all * 9, "{right} of {all}");
    }

    #[test]
    fn a_bar_named_by_its_place_or_height_gives_its_annotation() {
        // Generated charts: "the shortest pink bar" (8), "the fourth bar from the left" (13),
        // "the lowest point of the teal Evening series" (19).
        for index in [8, 13, 19] {
            let (item, image) = etchr_data::generate(Family::Chart, 4, index);
            let image = Arc::new(image);
            let lines = etchr_ops::render::text_lines(&image);
            let request = super::super::first_plan(&image, &item.question);
            let mark = chart_annotation(&request, &[], &lines).expect(&item.question);
            assert!(mark.iou(&item.gold_region) > 0.8, "{mark:?} {item:?}");
        }
        // A cue that fits several marks: no bet.
        let (item, image) = etchr_data::generate(Family::Chart, 4, 0);
        let image = Arc::new(image);
        assert!(item.question.contains("a point of"), "{}", item.question);
        let lines = etchr_ops::render::text_lines(&image);
        let request = super::super::first_plan(&image, &item.question);
        assert_eq!(chart_annotation(&request, &[], &lines), None);
    }

    #[test]
    fn a_label_grows_to_its_outline_and_a_side_without_one_stays() {
        // A white card outlined in grey on the left, top and bottom (x 10..=110, y 10..=40),
        // open to the right; the label's text box inside it.
        let mut image = RgbImage::from_pixel(300, 60, image::Rgb([255, 255, 255]));
        for x in 10..=110 {
            image.put_pixel(x, 10, image::Rgb([90, 90, 90]));
            image.put_pixel(x, 40, image::Rgb([90, 90, 90]));
        }
        for y in 10..=40 {
            image.put_pixel(10, y, image::Rgb([90, 90, 90]));
        }
        let label = Rect::new(20.0, 18.0, 60.0, 32.0);
        assert_eq!(
            outline_around(&image, label, FRAME_LUMA),
            Rect::new(10.0, 10.0, 60.0, 41.0)
        );
    }

    #[test]
    fn the_line_under_a_thing_is_its_tag() {
        let thing = Rect::new(100.0, 100.0, 160.0, 160.0);
        let lines = [
            Rect::new(80.0, 40.0, 180.0, 60.0),    // above
            Rect::new(300.0, 175.0, 400.0, 195.0), // beside
            Rect::new(90.0, 175.0, 170.0, 195.0),  // its tag
            Rect::new(90.0, 215.0, 170.0, 235.0),  // further down
        ];
        assert_eq!(line_under(thing, &lines), Some(lines[2]));
        assert_eq!(line_under(thing, &lines[..2]), None);
        let pocket = Rect::new(0.0, 150.0, 500.0, 250.0);
        // The nearest line with the words on its baseline (not the tag far to its left), snug.
        let code = Rect::new(410.0, 176.0, 470.0, 194.0);
        let with_code = [lines[0], lines[1], lines[2], code];
        let label = exit_label(&with_code, Point::new(380.0, 185.0), pocket).unwrap();
        assert_eq!(label, unpadded(lines[1].union(&code)));
        assert_eq!(exit_label(&lines[..1], Point::new(0.0, 0.0), pocket), None);
    }
}
