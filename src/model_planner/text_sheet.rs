//! A sheet of every text line: when the question names what to read by a quoted key ("the
//! number next to \"Bunting\""), the lines of small dark text on the image
//! (`etchr_ops::render::text_lines`) are gathered into one `collage` in reading order and
//! zoomed to the upstream's reading size. Forty labels scattered over a 3000 px chart take
//! a few hundred thousand pixels together; the upstream finds the key among them, at a size
//! it reads, in one look. The cue ("the tallest bar", "the brown triangle") is not needed to
//! find a quoted key, and the other candidates still follow it.

use super::{best_guess, collage_zoomed, quotes_a_key, reading, restores_a_jigsaw, READING_SIDE};
use etchr_model::glyphs::GlyphClassifier;
use etchr_ops::render::TextLines;
use etchr_ops::{Op, Piece, Point, Program, Rect};
use etchr_reason::planner::PlanRequest;

/// A line at least this tall (padding included, in pixels at the upstream's reading size)
/// reads; smaller sheets are not worth a look.
const MIN_LINE_PX: f64 = 24.0;
/// The most a sheet is enlarged.
const MAX_ZOOM: f64 = 3.0;
/// Fewer lines than this are not worth gathering.
const MIN_LINES: usize = 2;

/// The sheet for a first plan of a question with a quoted key, when the model's program
/// neither turns, mirrors, restores nor walks (a turned target's text is not found upright,
/// and a jigsaw's or maze's lines need the restore or the walk first).
pub(super) fn plan(
    request: &PlanRequest<'_>,
    model: &Program,
    pointer: &[(Point, f32)],
    reader: Option<&GlyphClassifier>,
) -> Option<Program> {
    let turns_or_walks = model.ops().iter().any(|op| {
        matches!(
            op,
            Op::Rotate { .. } | Op::Flip { .. } | Op::Path { .. } | Op::Flood { .. }
        )
    });
    if !request.avoid.is_empty()
        || !request.transform.is_identity()
        || turns_or_walks
        || restores_a_jigsaw(model)
        || !quotes_a_key(request.question)
    {
        return None;
    }
    let TextLines { lines, short } = TextLines::of(request.image);
    // The line the key is read in; else the tag of the thing the question names by colour
    // and shape, or the annotation of the chart mark it names by its cue, when one is found.
    // Keys are looked up among short lines too: "Bin:" is a line of its own.
    let read = reader.and_then(|r| {
        let line = reading::find_key(r, request.image, &short, request.question)?;
        let words = best_guess::with_its_words(short[line], &short);
        Some((words, best_guess::framed(request.image, words, &short)))
    });
    let sheet = match read {
        Some((words, label)) => sheet_of(&with_the_label(&lines, words, label))?,
        None => sheet_of(&lines)?,
    };
    let bet = read
        .map(|(_, label)| label)
        .or_else(|| best_guess::tag_of_the_named_thing(request, pointer, &lines))
        .or_else(|| best_guess::chart_annotation(request, pointer, &lines));
    Some(match bet {
        Some(mark) => best_guess::marked(sheet, mark),
        None => sheet,
    })
}

/// The sheet of `lines` (text lines of one image, in reading order), the words of a row kept
/// together; `None` with fewer than [`MIN_LINES`] lines, or when they would be too small to
/// read on it.
pub(super) fn sheet_of(lines: &[Rect]) -> Option<Program> {
    if lines.len() < MIN_LINES {
        return None;
    }
    sheet(&phrases(lines))
}

/// `lines` (in reading order) with the key's label on them whole. `words` is the text of the
/// key's row as read (snug), `label` the label around it (its outline, snug). When a line
/// already holds the words, `lines` as they are. Else (line detection missed the label, or cut
/// it short where a chart's series line runs through it, and the reading that found the key
/// would box a label not on the sheet) the lines the label touches are replaced by one line
/// holding them and the label with a margin of a twelfth of its height (about what the snug cut
/// of `best_guess::framed` took off), where the first of them stood (else before the first line
/// below it).
fn with_the_label(lines: &[Rect], words: Rect, label: Rect) -> Vec<Rect> {
    let holds_the_words = |l: &Rect| {
        l.intersect(&words)
            .is_some_and(|i| i.area() >= 0.95 * words.area())
    };
    if lines.iter().any(holds_the_words) {
        return lines.to_vec();
    }
    let padded = label.padded(label.height() / 12.0);
    let first_touching = lines.iter().position(|l| l.intersect(&padded).is_some());
    let whole = lines
        .iter()
        .filter(|l| l.intersect(&padded).is_some())
        .fold(padded, |whole, l| whole.union(l));
    let at = first_touching.unwrap_or_else(|| {
        lines
            .iter()
            .position(|l| l.y0 > whole.center().y)
            .unwrap_or(lines.len())
    });
    // No line before `at` touches the label, so `at` stands in what is kept too.
    let mut out: Vec<Rect> = lines
        .iter()
        .filter(|l| l.intersect(&padded).is_none())
        .copied()
        .collect();
    out.insert(at, whole);
    out
}

/// `lines` with the lines that continue one another on a row (a key and its value split by a
/// wide space, see [`best_guess::continues_the_row`]) joined, in reading order. Packed
/// apart on the sheet, "Relay 89" and its code would be two line heights apart with other
/// lines' words as near: the upstream would have to guess which words go together, where the
/// image itself showed it.
fn phrases(lines: &[Rect]) -> Vec<Rect> {
    let mut joined: Vec<Rect> = Vec::with_capacity(lines.len());
    for line in lines {
        match joined
            .iter()
            .rposition(|p| best_guess::continues_the_row(line, p))
        {
            Some(k) => joined[k] = joined[k].union(line),
            None => joined.push(*line),
        }
    }
    joined
}

/// `lines` packed on shelves, in order, into a roughly square collage and zoomed to the
/// reading size; `None` when its lines would then be too small to read.
fn sheet(lines: &[Rect]) -> Option<Program> {
    let mut heights: Vec<f64> = lines.iter().map(Rect::height).collect();
    heights.sort_by(f64::total_cmp);
    let line_h = heights[heights.len() / 2];
    // Two line heights apart, so no two lines read as one; a little apart vertically.
    let (gap, lead) = ((2.0 * line_h).round(), (0.5 * line_h).round());
    let area: f64 = lines
        .iter()
        .map(|l| (l.width() + gap) * (l.height() + lead))
        .sum();
    let widest = lines.iter().map(Rect::width).fold(0.0, f64::max);
    let shelf_width = area.sqrt().max(widest);
    let mut pieces = Vec::with_capacity(lines.len());
    let (mut x, mut y, mut shelf_h, mut width) = (0.0_f64, 0.0_f64, 0.0_f64, 0.0_f64);
    for l in lines {
        let (w, h) = (l.width().round(), l.height().round());
        if x > 0.0 && x + w > shelf_width {
            y += shelf_h + lead;
            (x, shelf_h) = (0.0, 0.0);
        }
        pieces.push(Piece {
            region: *l,
            at: Point::new(x, y),
        });
        width = width.max(x + w);
        shelf_h = shelf_h.max(h);
        x += w + gap;
    }
    let height = y + shelf_h;
    let zoom = (READING_SIDE / width.max(height)).min(MAX_ZOOM);
    if line_h * zoom < MIN_LINE_PX {
        return None;
    }
    Some(collage_zoomed(pieces, None, zoom))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etchr_ops::Color;
    use std::sync::Arc;

    #[test]
    fn lines_are_packed_apart_in_order_and_zoomed_to_read() {
        let lines: Vec<Rect> = (0..12)
            .map(|k| {
                let (x, y) = (
                    100.0 + 300.0 * (k % 4) as f64,
                    80.0 + 400.0 * (k / 4) as f64,
                );
                Rect::new(x, y, x + 120.0, y + 16.0)
            })
            .collect();
        let program = sheet(&lines).unwrap();
        let Op::Collage { pieces, .. } = &program.ops()[0] else {
            panic!("{program:?}")
        };
        assert_eq!(pieces.len(), 12);
        assert!(pieces.iter().zip(&lines).all(|(p, l)| p.region == *l));
        // No two pieces overlap, and those on one shelf are two line heights apart.
        for (a, b) in pieces.iter().zip(pieces.iter().skip(1)) {
            if a.at.y == b.at.y {
                assert!(b.at.x >= a.at.x + 120.0 + 32.0, "{a:?} {b:?}");
            } else {
                assert!(b.at.y >= a.at.y + 16.0, "{a:?} {b:?}");
            }
        }
        let Some(Op::Zoom {
            factor: Some(f), ..
        }) = program.ops().get(1)
        else {
            panic!("{program:?}")
        };
        assert!(16.0 * f >= MIN_LINE_PX, "{f}");
        // Too many lines to read at once: no sheet.
        let crowd: Vec<Rect> = (0..4000)
            .map(|k| Rect::new(0.0, k as f64 * 20.0, 120.0, k as f64 * 20.0 + 16.0))
            .collect();
        assert!(sheet(&crowd).is_none());
    }

    #[test]
    fn the_tag_a_question_quotes_is_on_the_sheet_larger() {
        // "What is the code on the tag "Shaft 54" of the brown triangle?": 50 shapes, each
        // with a tag whose text is under 3 px tall at 1024 px.
        let (item, image) = etchr_data::generate(etchr_data::Family::FineGrained, 4, 0);
        let image = Arc::new(image);
        let request = super::super::first_plan(&image, &item.question);
        // The model points near the target (one of two brown triangles).
        let near = item.gold_region.center();
        let pointer = [(Point::new(near.x, near.y - 60.0), 1.0)];
        let program = plan(&request, &Program::default(), &pointer, None).expect("a sheet");
        // Its tag is boxed: the box is the program's focus.
        let focus = program.focus().expect("a mark");
        assert!(focus.iou(&item.gold_region) > 0.6, "{focus:?}");
        let rendered = etchr_ops::render(&image, &program, &Default::default()).unwrap();
        let view = &rendered.views[0];
        let tag = view.transform.rect_to_view(&item.gold_region);
        let (w, h) = view.image.dimensions();
        assert!(tag.x0 >= 0.0 && tag.y0 >= 0.0 && tag.x1 <= w as f64 && tag.y1 <= h as f64);
        assert!(tag.height() > 1.25 * item.gold_region.height(), "{tag:?}");
        assert!(w.max(h) as f64 <= READING_SIDE + 1.0, "{w}x{h}");
        // Not for alternatives, turned targets or questions without a key.
        let turned = Program(vec![Op::Rotate {
            angle: 90.0,
            fill: Color([255, 255, 255]),
        }]);
        assert!(plan(&request, &turned, &pointer, None).is_none());
        let no_key = PlanRequest {
            question: "which tag is brown?",
            ..request
        };
        assert!(plan(&no_key, &Program::default(), &pointer, None).is_none());
        let shown = [item.gold_region];
        let later = PlanRequest {
            avoid: &shown,
            ..request
        };
        assert!(plan(&later, &Program::default(), &pointer, None).is_none());
    }

    #[test]
    fn the_line_the_key_is_read_in_is_boxed_wherever_the_model_points() {
        let reader = super::super::built_in_reader().unwrap();
        for index in 0..3 {
            let (item, image) = etchr_data::generate(etchr_data::Family::FineGrained, 4, index);
            let image = Arc::new(image);
            let request = super::super::first_plan(&image, &item.question);
            // The model points at the far corner: reading, not pointing, finds the tag.
            let far = [(Point::new(0.0, 0.0), 1.0)];
            let program = plan(&request, &Program::default(), &far, Some(&reader)).unwrap();
            let focus = program.focus().expect("a mark");
            assert!(
                focus.iou(&item.gold_region) > 0.6,
                "{}: {focus:?}",
                item.question
            );
        }
    }

    #[test]
    fn words_a_wide_space_apart_on_one_row_are_one_phrase() {
        let key = Rect::new(100.0, 100.0, 380.0, 184.0);
        let value = Rect::new(411.0, 104.0, 639.0, 170.0);
        let far = Rect::new(900.0, 100.0, 1100.0, 184.0);
        let below = Rect::new(100.0, 200.0, 380.0, 284.0);
        assert_eq!(
            phrases(&[key, below, value, far]),
            vec![key.union(&value), below, far]
        );
    }

    #[test]
    fn a_key_and_its_value_stay_side_by_side_on_the_sheet() {
        // Seed 391147, item 3: "Relay 89:" and its code are two text lines a wide space
        // apart. Packed two line heights apart, the reader took the code under the key.
        let (item, image) = etchr_data::generate(etchr_data::Family::FineGrained, 391147, 3);
        let image = Arc::new(image);
        let request = super::super::first_plan(&image, &item.question);
        let program = plan(&request, &Program::default(), &[], None).expect("a sheet");
        let Op::Collage { pieces, .. } = &program.ops()[0] else {
            panic!("{program:?}")
        };
        let tag = item.gold_region;
        // One piece spans the tag's line from the key to the end of its value.
        let spanned = |p: &Piece| p.region.intersect(&tag).map_or(0.0, |i| i.width());
        assert!(
            pieces.iter().any(|p| spanned(p) > 0.8 * tag.width()),
            "{tag:?} {pieces:?}"
        );
    }

    #[test]
    fn the_label_a_key_is_read_in_joins_the_lines_it_touches_or_stands_in_reading_order_unless_held(
    ) {
        let line = |x: f64, y: f64, w: f64| Rect::new(x, y, x + w, y + 20.0);
        let lines = [
            line(0.0, 0.0, 100.0),
            line(50.0, 100.0, 60.0),
            line(0.0, 200.0, 80.0),
        ];
        // A label cut short: the line holds its key only.
        let label = Rect::new(55.0, 104.0, 180.0, 116.0);
        let words = label.padded(-1.0);
        let joined = with_the_label(&lines, words, label);
        assert_eq!(joined.len(), 3);
        assert_eq!(joined[0], lines[0]);
        assert_eq!(joined[1], lines[1].union(&label.padded(1.0)));
        assert_eq!(joined[2], lines[2]);
        // A label no line found: between the lines above and below it.
        let missed = Rect::new(300.0, 150.0, 380.0, 162.0);
        let joined = with_the_label(&lines, missed.padded(-1.0), missed);
        assert_eq!(joined.len(), 4);
        assert_eq!(joined[2], missed.padded(1.0));
        assert_eq!(joined[3], lines[2]);
        // Words a line already holds: the lines as they were, however the label is framed.
        let held = Rect::new(52.0, 103.0, 108.0, 117.0);
        assert_eq!(with_the_label(&lines, held, held.padded(4.0)), lines);
    }

    #[test]
    fn a_key_read_in_a_label_line_detection_missed_or_cut_short_is_on_the_sheet_whole() {
        // Charts 6 and 26 of seed 6061: a series line runs through "Shag: 61.7", which the
        // sheet of lines then left out; "Merlin:" was found without its value. The key is read
        // all the same, and its label was boxed where the sheet did not show it.
        let reader = super::super::built_in_reader().unwrap();
        for index in [6, 26] {
            let (item, image) = etchr_data::generate(etchr_data::Family::Chart, 6061, index);
            let image = Arc::new(image);
            let request = super::super::first_plan(&image, &item.question);
            let program = plan(&request, &Program::default(), &[], Some(&reader)).expect("a sheet");
            let Op::Collage { pieces, .. } = &program.ops()[0] else {
                panic!("{program:?}")
            };
            let label = item.gold_region;
            let holds = |p: &Piece| p.region.intersect(&label).map(|i| i.area());
            assert!(
                pieces.iter().any(|p| holds(p) == Some(label.area())),
                "{label:?} {pieces:?}"
            );
            let focus = program.focus().expect("the label boxed");
            assert!(focus.iou(&label) > 0.6, "{focus:?} vs {label:?}");
        }
    }

    #[test]
    fn only_questions_with_a_quoted_key() {
        assert!(quotes_a_key(r#"the number next to "Bunting"?"#));
        assert!(quotes_a_key("the number next to \u{201c}Bunting\u{201d}?"));
        assert!(!quotes_a_key("which exit do you reach?"));
        assert!(!quotes_a_key(r#"an empty "" key"#));
    }
}
