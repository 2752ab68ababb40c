//! Things the question names by colour: where the planner looks when the model cannot tell
//! look-alikes apart.
//!
//! The model places a crop well but picks poorly among 30–60 tags or shapes of which a few
//! share the colour the question names; the pixels say exactly which those few are
//! (`etchr_ops::render::colour_regions`). These helpers turn them into crops: the model's own
//! crop moved onto one of them, then the others one by one, ranked by the place the question
//! names ("in the top left"), the model's pointer and size.

use super::{
    best_guess, collage_zoomed, colour_searches, reading, restores_a_jigsaw, words_outside_quotes,
    READING_SIDE,
};
use etchr_model::glyphs::GlyphClassifier;
use etchr_ops::program::Axis;
use etchr_ops::render::{NamedColour, MAX_COLOUR_REGIONS};
use etchr_ops::{Color, Op, Piece, Point, Program, Rect, RgbImage};
use etchr_reason::planner::{shown_as_closely, zoom_by, PlanRequest};

/// How many things of the named colour the alternatives visit one by one; with more, the
/// tiles holding most of them come first instead.
const FEW_THINGS: usize = 4;

/// The things of the colour the question names ("the grey tag", "the brown triangle";
/// `etchr_ops::render::colour_regions`), in original pixels, largest first. When the model's
/// program turns its crop a quarter (the target lies on its side), only things taller than
/// wide; when it turns it half or mirrors it, only things wider than tall. When the question
/// names a place ("in the top left", see [`Place`]) and some of them lie there, only those.
/// Empty unless the program was planned on the original and neither restores a jigsaw nor
/// walks a maze (a coloured maze marker is the start, not the target), and the question names
/// a colour.
pub(super) fn things_named(program: &Program, request: &PlanRequest<'_>) -> Vec<Rect> {
    let lies = program.ops().iter().find_map(|op| match op {
        Op::Rotate { angle, .. } => Some(quarter_turn(*angle)),
        Op::Flip { .. } => Some(false),
        _ => None,
    });
    let things: Vec<Rect> = things_of_the_named_colour(program, request, MAX_COLOUR_REGIONS)
        .into_iter()
        .filter(|b| lies.is_none_or(|on_side| (b.height() > b.width()) == on_side))
        .collect();
    in_the_named_place(things, request)
}

/// The boxes of the things of the colour the question names, largest first, at most `most`
/// of them (more say nothing: the colour is everywhere); empty unless the program was planned
/// on the original and neither restores a jigsaw nor walks a maze, and the question names a
/// colour (see [`things_named`]).
fn things_of_the_named_colour(
    program: &Program,
    request: &PlanRequest<'_>,
    most: usize,
) -> Vec<Rect> {
    let walks = matches!(program.ops().first(), Some(Op::Path { .. }));
    if !request.transform.is_identity() || restores_a_jigsaw(program) || walks {
        return Vec::new();
    }
    let Some(colour) = NamedColour::in_text(request.question) else {
        return Vec::new();
    };
    let everywhere = colour_searches::colour_regions_up_to(request.image, colour, most);
    if !everywhere.is_empty() {
        return everywhere.into_iter().map(|region| region.bounds).collect();
    }
    // None, or too many to say where to look ("the lilac tag in the top right" among forty
    // lilac tags): then the place the question names, searched alone, may hold a few.
    let (w, h) = request.image.dimensions();
    let Some(area) = Place::in_text(request.question).map(|p| p.area(w, h)) else {
        return Vec::new();
    };
    let (x, y, aw, ah) = area.to_pixel_bounds();
    let view = image::imageops::crop_imm(request.image.as_ref(), x, y, aw, ah).to_image();
    etchr_ops::render::colour_regions_up_to(&view, colour, most)
        .into_iter()
        .map(|region| region.bounds.translated(x as f64, y as f64))
        .collect()
}

/// Of `things`, those in the place the question names ("in the top left", see [`Place`]) when
/// some lie there; else all of them.
pub(super) fn in_the_named_place(things: Vec<Rect>, request: &PlanRequest<'_>) -> Vec<Rect> {
    let (w, h) = request.image.dimensions();
    match Place::in_text(request.question) {
        Some(place) if things.iter().any(|t| place.holds(t.center(), w, h)) => things
            .into_iter()
            .filter(|t| place.holds(t.center(), w, h))
            .collect(),
        _ => things,
    }
}

/// The centre of the thing of the colour the question names that lies nearest `to` (any
/// distance), if the question names a colour and the image shows such a thing.
pub(super) fn named_thing_nearest(request: &PlanRequest<'_>, to: Point) -> Option<Point> {
    let colour = NamedColour::in_text(request.question)?;
    colour_searches::colour_regions(request.image, colour)
        .into_iter()
        .map(|region| region.bounds.center())
        .min_by(|a, b| a.distance(to).total_cmp(&b.distance(to)))
}

/// Where along one axis: the first half (top, left), the middle half, the second half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Band {
    First,
    Middle,
    Second,
}

impl Band {
    fn holds(self, at: f64, extent: f64) -> bool {
        let t = at / extent.max(1.0);
        match self {
            Band::First => t < 0.5,
            Band::Middle => (0.25..=0.75).contains(&t),
            Band::Second => t > 0.5,
        }
    }

    /// The band as fractions of its axis.
    fn span(self) -> (f64, f64) {
        match self {
            Band::First => (0.0, 0.5),
            Band::Middle => (0.25, 0.75),
            Band::Second => (0.5, 1.0),
        }
    }
}

/// A part of the image a question names: "in the top left", "near the bottom", "centre".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Place {
    vertical: Option<Band>,
    horizontal: Option<Band>,
}

impl Place {
    /// The place named outside quotes, if any: top / upper, bottom / lower, left, right, and
    /// centre / center / middle / central for an axis the others leave open.
    pub(super) fn in_text(text: &str) -> Option<Place> {
        let (mut vertical, mut horizontal, mut centre) = (None, None, false);
        for word in words_outside_quotes(text) {
            match word.to_ascii_lowercase().as_str() {
                "top" | "upper" => vertical = Some(Band::First),
                "bottom" | "lower" => vertical = Some(Band::Second),
                "left" => horizontal = Some(Band::First),
                "right" => horizontal = Some(Band::Second),
                "centre" | "center" | "middle" | "central" => centre = true,
                _ => {}
            }
        }
        if centre {
            vertical = vertical.or(Some(Band::Middle));
            horizontal = horizontal.or(Some(Band::Middle));
        }
        (vertical.is_some() || horizontal.is_some()).then_some(Place {
            vertical,
            horizontal,
        })
    }

    /// Whether `p` lies in this place of a `w × h` image.
    pub(super) fn holds(&self, p: Point, w: u32, h: u32) -> bool {
        self.vertical.is_none_or(|b| b.holds(p.y, h as f64))
            && self.horizontal.is_none_or(|b| b.holds(p.x, w as f64))
    }

    /// The part of a `w × h` image this place covers (the whole extent of an axis it leaves
    /// open).
    fn area(&self, w: u32, h: u32) -> Rect {
        let span = |band: Option<Band>, extent: f64| {
            let (from, to) = band.map_or((0.0, 1.0), Band::span);
            (from * extent, to * extent)
        };
        let ((x0, x1), (y0, y1)) = (
            span(self.horizontal, w as f64),
            span(self.vertical, h as f64),
        );
        Rect::new(x0, y0, x1, y1)
    }
}

/// Crops around `things` (see [`square_around`]: room for a label beside each), each with its
/// thing, the ones the model's pointer weighs most first; equal weight keeps the larger thing
/// first.
pub(super) fn crops_around(
    things: &[Rect],
    request: &PlanRequest<'_>,
    pointer: &[(Point, f32)],
) -> Vec<(Rect, Rect)> {
    let (w, h) = request.image.dimensions();
    let mut crops: Vec<(Rect, Rect, f32)> = things
        .iter()
        .map(|&thing| {
            let crop = square_around(thing, 2.2, w, h);
            (thing, crop, pointer_mass(crop, pointer))
        })
        .collect();
    crops.sort_by(|a, b| b.2.total_cmp(&a.2));
    crops
        .into_iter()
        .map(|(thing, crop, _)| (thing, crop))
        .collect()
}

/// How much of the model's `pointer` weight lies in `region`.
pub(super) fn pointer_mass(region: Rect, pointer: &[(Point, f32)]) -> f32 {
    pointer
        .iter()
        .filter(|(p, _)| region.contains(*p))
        .map(|(_, m)| m)
        .sum()
}

/// The view of one thing: `crop`, the thing boxed in red (as the generator's gold programs mark
/// their target), `turn` if any, and a zoom at the scale of the `model`'s own zoom (see
/// [`model_scale`]), or to about 1024 px when the model does not zoom or its scale would not
/// fit that.
fn thing_view(thing: Rect, crop: Rect, turn: Option<Op>, model: &Program) -> Program {
    let fit = (READING_SIDE / crop.width().max(crop.height()).max(1.0)).min(4.0);
    let factor = model_scale(model).map_or(fit, |scale| scale.min(fit));
    let mut ops = vec![Op::Crop { region: crop }];
    ops.extend(scaled(factor));
    let boxed = best_guess::mark(thing.padded(3.0).intersect(&crop).unwrap_or(thing));
    ops.splice(1..1, std::iter::once(boxed).chain(turn));
    Program(ops)
}

/// The scale the model chose for what it crops: the factor of its program's zoom, if it has one.
/// The model learned it from the gold edits, which zoom until the answer's capitals are about
/// 24 px tall; the upstream then reads letters at a size it reads well, where filling the
/// 1024 px reading size can blow small print up past it. Stage 2 training samples this factor
/// (a vocabulary choice of the policy) and so tunes it to what the upstream actually reads.
fn model_scale(model: &Program) -> Option<f64> {
    model.ops().iter().find_map(|op| match op {
        Op::Zoom {
            factor: Some(f), ..
        } if f.is_finite() && *f > 0.0 => Some(*f),
        _ => None,
    })
}

/// A zoom by `factor` (floored to hundredths), unless it is within 1 % of no zoom at all.
fn scaled(factor: f64) -> Option<Op> {
    ((factor - 1.0).abs() > 0.01).then(|| zoom_by(factor))
}

/// The next alternative when the question names a colour: the next of a few things of that
/// colour, cropped, in each of the turns that could set it upright (see [`turns_to_try`]), the
/// model's own first — both quarter turns of a thing before the next thing; the model's half
/// turn or mirror of every thing before the others of any. `None` with many things (the tiles
/// then rank by where the things are, see [`tile_weight`]) or when all were shown.
///
/// How many turns of a crop were shown is counted from `request.avoid`: every try of the same
/// crop adds the same region. A crop the model's own view already showed closely counts as
/// shown in the model's turn.
pub(super) fn next_thing(
    things: &[Rect],
    request: &PlanRequest<'_>,
    pointer: &[(Point, f32)],
    model: &Program,
) -> Option<Program> {
    if things.len() > FEW_THINGS {
        return None;
    }
    let turns = turns_to_try(model);
    let crops: Vec<(Rect, Rect, usize)> = crops_around(things, request, pointer)
        .into_iter()
        .map(|(thing, crop)| {
            let same = request.avoid.iter().filter(|a| a.iou(&crop) > 0.9).count();
            // Up to four times the crop's area still counts: text twice as small is still
            // legible, a whole quadrant is not.
            let shown = same == 0 && shown_as_closely(&crop, request.avoid, 4.0);
            (thing, crop, if shown { 1 } else { same })
        })
        .collect();
    // A thing on its side is one of two quarter turns: both before the next thing. Upside
    // down and mirrored are three look-alikes: every thing in the model's turn first.
    let (thing, crop, tried) = if turns.len() == 2 {
        crops
            .into_iter()
            .find(|&(_, _, tried)| tried < turns.len())?
    } else {
        (0..turns.len()).find_map(|round| crops.iter().copied().find(|&(_, _, t)| t == round))?
    };
    Some(thing_view(thing, crop, turns[tried].clone(), model))
}

/// The most things one turned sheet holds.
const SHEET_THINGS: usize = 12;

/// All the things of the named colour on one sheet, turned: when the model turns its target
/// (a tag on its side, upside down or mirrored) and 2 to [`SHEET_THINGS`] things fit that
/// turn, they are cut out with a small margin and set in a row (things on their side) or a
/// column (the others), a short side apart, and the whole sheet is turned, which turns each
/// thing in place, then zoomed to about 1024 px. One view then shows every candidate upright
/// when the turn is right; the next tries turn the same sheet the other ways that could set
/// them upright ([`turns_to_try`], counted from `request.avoid`: each try of the sheet adds the
/// same region). `None` once every turn was shown, with too few or too many things, or when
/// the model does not turn.
pub(super) fn turned_sheet(
    things: &[Rect],
    request: &PlanRequest<'_>,
    model: &Program,
    pointer: &[(Point, f32)],
) -> Option<Program> {
    let turns = turns_to_try(model);
    if turns[0].is_none() || !(2..=SHEET_THINGS).contains(&things.len()) {
        return None;
    }
    let (w, h) = request.image.dimensions();
    let on_side = things.iter().all(|t| t.height() > t.width());
    let mut pieces = Vec::with_capacity(things.len());
    let (mut at, mut extent) = (0.0_f64, 0.0_f64);
    let mut source: Option<Rect> = None;
    for t in things {
        let pad = 4.0;
        let cut = Rect::new(
            (t.x0 - pad).floor().max(0.0),
            (t.y0 - pad).floor().max(0.0),
            (t.x1 + pad).ceil().min(w as f64),
            (t.y1 + pad).ceil().min(h as f64),
        );
        let (along, across) = if on_side {
            (cut.width(), cut.height())
        } else {
            (cut.height(), cut.width())
        };
        let place = if on_side {
            Point::new(at, 0.0)
        } else {
            Point::new(0.0, at)
        };
        pieces.push(Piece {
            region: cut,
            at: place,
        });
        at += along + along.min(across);
        extent = extent.max(across);
        source = Some(source.map_or(cut, |s| s.union(&cut)));
    }
    let source = source?;
    let tried = request
        .avoid
        .iter()
        .filter(|a| a.iou(&source) > 0.9)
        .count();
    let turn = turns.get(tried)?.clone()?;
    let zoom = (READING_SIDE / at.max(extent).max(1.0)).min(4.0);
    let sheet = collage_zoomed(pieces, Some(turn), zoom);
    // The thing the model's pointer weighs most is the bet.
    let (best, _) = crops_around(things, request, pointer)[0];
    Some(best_guess::marked(sheet, best.padded(2.0)))
}

/// The turns a tag may need to read upright: none, the three rotations, the two mirrors.
fn every_turn() -> [Option<Op>; 6] {
    let rotate = |angle: f64| {
        Some(Op::Rotate {
            angle,
            fill: Color([255, 255, 255]),
        })
    };
    let flip = |axis: Axis| Some(Op::Flip { axis });
    [
        None,
        rotate(90.0),
        rotate(180.0),
        rotate(270.0),
        flip(Axis::Horizontal),
        flip(Axis::Vertical),
    ]
}

/// A first plan for a question that quotes a key and names the colour of the thing that holds
/// it ("the grey tag ... "Sensor 26""): each thing of that colour (in the place the question
/// names, at most [`READ_THINGS`]) is read at full resolution in each of [`every_turn`], and
/// the one the key is read in, clearly better than in any other, is shown like an alternative
/// thing ([`thing_view`]) in the turn it was read in. A tag lying on its side, upside down or
/// mirrored is not found among the upright lines the sheet of text lines gathers, and the model
/// guesses the turn from a 256 px view; reading each turn settles both which tag and which
/// turn. `None` when nothing reads as the key, or two things read alike.
pub(super) fn the_thing_read(
    request: &PlanRequest<'_>,
    model: &Program,
    reader: &GlyphClassifier,
) -> Option<Program> {
    if !request.avoid.is_empty() || reading::quoted_key(request.question).is_none() {
        return None;
    }
    let things = in_the_named_place(
        things_of_the_named_colour(model, request, READ_THINGS),
        request,
    );
    let (w, h) = request.image.dimensions();
    let render = |image: &RgbImage, ops: Vec<Op>| {
        let rendered = etchr_ops::render(image, &Program(ops), &Default::default()).ok()?;
        rendered.views.into_iter().next().map(|view| view.image)
    };
    // Each thing's cheapest read of the key, over the turns, and that turn.
    let mut reads: Vec<(f64, Rect, Option<Op>)> = things
        .iter()
        .filter_map(|&thing| {
            let cut = thing
                .padded(4.0)
                .intersect(&Rect::new(0.0, 0.0, w as f64, h as f64))?;
            // Large print is shrunk to the letter sizes the lines and glyphs are cut at.
            let shrink = READ_TAG_SIDE / thing.width().min(thing.height()).max(1.0);
            let shrink = (shrink < 1.0).then(|| Op::Zoom {
                factor: Some(shrink),
                width: None,
                height: None,
                filter: Default::default(),
            });
            let cut_out = render(
                request.image,
                std::iter::once(Op::Crop { region: cut })
                    .chain(shrink)
                    .collect(),
            )?;
            every_turn()
                .into_iter()
                .filter_map(|turn| {
                    let turned = match &turn {
                        Some(op) => render(&cut_out, vec![op.clone()])?,
                        None => cut_out.clone(),
                    };
                    let cost = reading::key_edits(reader, &turned, request.question)?;
                    Some((cost, thing, turn))
                })
                .min_by(|a, b| a.0.total_cmp(&b.0))
        })
        .collect();
    reads.sort_by(|a, b| a.0.total_cmp(&b.0));
    let edits: Vec<f64> = reads.iter().map(|r| r.0).collect();
    tracing::debug!(things = things.len(), ?edits, "read the named things");
    let (edits, thing, turn) = reads.first()?.clone();
    if reads
        .get(1)
        .is_some_and(|other| other.0 < edits + MIN_READ_MARGIN)
    {
        return None;
    }
    Some(thing_view(
        thing,
        square_around(thing, 2.2, w, h),
        turn,
        model,
    ))
}

/// The most things of the named colour [`the_thing_read`] reads: more than a sheet or a colour
/// search otherwise take (reading each one's key tells them apart), few enough to read at full
/// resolution in every turn within a plan.
const READ_THINGS: usize = 32;
/// How much better, in edits, the thing read as the key must read than any other.
const MIN_READ_MARGIN: f64 = 1.0;
/// A tag's short side, in pixels, above which it is shrunk to it for reading: a line of
/// letters about half as tall.
const READ_TAG_SIDE: f64 = 40.0;

/// The turns that could set the model's target upright, the model's own first: a quarter turn
/// either way for a thing on its side; a half turn or a mirror either way for one upside down
/// or mirrored (which look alike until read); none when the model does not turn it.
fn turns_to_try(model: &Program) -> Vec<Option<Op>> {
    let own = model
        .ops()
        .iter()
        .find(|op| matches!(op, Op::Rotate { .. } | Op::Flip { .. }))
        .cloned();
    let rotate = |angle: f64| Op::Rotate {
        angle,
        fill: Color([255, 255, 255]),
    };
    let others = match &own {
        None => return vec![None],
        Some(Op::Rotate { angle, .. }) if quarter_turn(*angle) => {
            vec![rotate((angle + 180.0).rem_euclid(360.0))]
        }
        Some(_) => vec![
            rotate(180.0),
            Op::Flip {
                axis: Axis::Vertical,
            },
            Op::Flip {
                axis: Axis::Horizontal,
            },
        ],
    };
    let mut turns = vec![own.clone()];
    turns.extend(
        others
            .into_iter()
            .filter(|t| Some(t) != own.as_ref())
            .map(Some),
    );
    turns
}

/// Whether a rotation by `angle` degrees is an odd number of quarter turns.
fn quarter_turn(angle: f64) -> bool {
    ((angle / 90.0).round() as i64).rem_euclid(2) == 1
}

/// What the tiles are ranked by: each thing of the named colour weighs 1 (the target is one of
/// them), the model's pointer, scaled to 1 in all, breaks ties (a steered pointer, with the
/// model's chosen point on top of its distribution, weighs 2 before the scaling).
pub(super) fn tile_weight(things: &[Rect], pointer: &[(Point, f32)]) -> Vec<(Point, f32)> {
    let total: f32 = pointer.iter().map(|(_, w)| w).sum();
    let scale = if total > 0.0 { 1.0 / total } else { 0.0 };
    things
        .iter()
        .map(|t| (t.center(), 1.0))
        .chain(pointer.iter().map(|&(p, w)| (p, w * scale)))
        .collect()
}

/// A square `scale` times `thing`'s long side (at least 64 px), centred on it and shifted to lie
/// inside the `w × h` image (cut only where the image is smaller).
fn square_around(thing: Rect, scale: f64, w: u32, h: u32) -> Rect {
    let side = (thing.width().max(thing.height()) * scale).max(64.0);
    let Point { x: cx, y: cy } = thing.center();
    let place = |centre: f64, limit: f64| {
        let lo = (centre - side / 2.0).clamp(0.0, (limit - side).max(0.0));
        (lo, (lo + side).min(limit))
    };
    let ((x0, x1), (y0, y1)) = (place(cx, w as f64), place(cy, h as f64));
    Rect::new(x0, y0, x1, y1)
}

/// The model's `program`, or, when the question names a colour that marks a few things (see
/// [`things_named`]) and the model's crop shows none of them, a crop of the one its pointer
/// weighs most, with the model's own rotations and flips: the model places a crop well but
/// picks among look-alikes poorly.
pub(super) fn with_the_cue_in_view(
    program: Program,
    request: &PlanRequest<'_>,
    pointer: &[(Point, f32)],
) -> Program {
    let things = things_named(&program, request);
    if let Some(sheet) = turned_sheet(&things, request, &program, pointer) {
        return sheet;
    }
    if things.is_empty() || things.len() > FEW_THINGS {
        return program;
    }
    let model_crop = program.first_crop();
    if model_crop.is_some_and(|r| things.iter().any(|t| r.intersect(t).is_some())) {
        return program;
    }
    let (thing, crop) = crops_around(&things, request, pointer)[0];
    tracing::debug!(?crop, "the crop moved to a thing of the named colour");
    let own_turn = turns_to_try(&program).swap_remove(0);
    thing_view(thing, crop, own_turn, &program)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn parse(text: &str) -> Program {
        etchr_ops::text::parse(text).unwrap()
    }

    #[test]
    fn the_named_tag_the_key_is_read_on_is_shown_in_the_turn_it_reads_in() {
        let reader = super::super::built_in_reader().unwrap();
        let model = parse("crop box=0,0,300,300; zoom factor=2");
        // Generated items: grey "Sensor 26", mirrored top to bottom among grey look-alikes;
        // blue "Duct 36" in large print on its side.
        for index in [21, 9] {
            let (item, image) = etchr_data::generate(etchr_data::Family::Orientation, 4, index);
            let image = Arc::new(image);
            let request = super::super::first_plan(&image, &item.question);
            let shown = the_thing_read(&request, &model, &reader).expect(&item.question);
            let turn = |p: &Program| {
                p.ops()
                    .iter()
                    .find(|op| matches!(op, Op::Rotate { .. } | Op::Flip { .. }))
                    .cloned()
            };
            let names: Vec<&str> = shown.ops().iter().map(|op| op.name()).collect();
            assert_eq!(names[..2], ["crop", "box"], "{shown:?}");
            // The turn reads the tag, so it sets it upright as the gold edit does (a quarter
            // turn either way reads a tag on its side).
            match (turn(&shown), turn(&item.gold_program)) {
                (Some(Op::Rotate { angle, .. }), Some(Op::Rotate { .. })) => {
                    assert!(quarter_turn(angle), "{angle}")
                }
                (ours, gold) => assert_eq!(ours, gold),
            }
            let focus = shown.focus().unwrap();
            assert!(
                focus.iou(&item.gold_region) > 0.8,
                "{focus:?} vs {:?}",
                item.gold_region
            );
            // Not for alternatives, nor a key on no tag of that colour.
            let seen = [focus];
            let later = PlanRequest {
                avoid: &seen,
                ..request
            };
            assert_eq!(the_thing_read(&later, &model, &reader), None);
            let other = item
                .question
                .replace(reading::quoted_key(&item.question).unwrap(), "Qwxz 88");
            assert_eq!(
                the_thing_read(&super::super::first_plan(&image, &other), &model, &reader),
                None
            );
        }
    }

    #[test]
    fn the_tag_read_as_the_key_is_found_among_more_than_a_colour_search_keeps() {
        // Item 17 of seed 391147: thirteen green tags, one mirrored with "Hopper 50". A colour
        // search says nothing past twelve things, so no tag was read and the model's own crop,
        // on another tag, was shown.
        let reader = super::super::built_in_reader().unwrap();
        let (item, image) = etchr_data::generate(etchr_data::Family::Orientation, 391147, 17);
        let image = Arc::new(image);
        let request = super::super::first_plan(&image, &item.question);
        let colour = NamedColour::in_text(&item.question).unwrap();
        assert!(etchr_ops::render::colour_regions(&image, colour).is_empty());
        let model = parse("crop box=858,209,1155,496; flip axis=vertical; zoom factor=2.73");
        let shown = the_thing_read(&request, &model, &reader).expect("the tag read");
        let focus = shown.focus().unwrap();
        assert!(
            focus.iou(&item.gold_region) > 0.8,
            "{focus:?} vs {:?}",
            item.gold_region
        );
    }

    #[test]
    fn the_pointer_only_breaks_ties_between_tiles_of_things() {
        let things = [
            Rect::new(0.0, 0.0, 10.0, 10.0),
            Rect::new(50.0, 0.0, 60.0, 10.0),
        ];
        // A steered pointer: the model's chosen point (1) on top of its distribution (1).
        let pointer = [
            (Point::new(100.0, 100.0), 1.0),
            (Point::new(100.0, 100.0), 0.75),
            (Point::new(5.0, 5.0), 0.25),
        ];
        let weights = tile_weight(&things, &pointer);
        let of_things: f32 = weights[..2].iter().map(|(_, w)| w).sum();
        let of_pointer: f32 = weights[2..].iter().map(|(_, w)| w).sum();
        assert_eq!(of_things, 2.0);
        assert!((of_pointer - 1.0).abs() < 1e-6, "{weights:?}");
        assert_eq!(tile_weight(&things, &[]).len(), 2);
    }

    #[test]
    fn the_turns_tried_are_the_models_then_those_that_look_alike_before_reading() {
        let text = |turns: Vec<Option<Op>>| -> Vec<String> {
            turns
                .into_iter()
                .map(|t| {
                    t.map_or("none".into(), |op| {
                        etchr_ops::text::to_text(&Program(vec![op]))
                    })
                })
                .collect()
        };
        assert_eq!(
            text(turns_to_try(&parse("crop box=0,0,9,9; rotate angle=90"))),
            [
                "rotate angle=90.0 fill=#ffffff",
                "rotate angle=270.0 fill=#ffffff"
            ]
        );
        assert_eq!(
            text(turns_to_try(&parse("flip axis=vertical; zoom factor=2"))),
            [
                "flip axis=vertical",
                "rotate angle=180.0 fill=#ffffff",
                "flip axis=horizontal"
            ]
        );
        assert_eq!(
            text(turns_to_try(&parse("rotate angle=180"))).len(),
            3,
            "a half turn, then the two mirrors"
        );
        assert_eq!(text(turns_to_try(&parse("crop box=0,0,9,9"))), ["none"]);
    }
}
