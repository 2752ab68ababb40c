//! Things of a named colour in a view: "the grey tag", "the brown triangle".
//!
//! A question that names a colour says where to look more plainly than anything a small model
//! learns from a 256 px view. [`NamedColour::in_text`] finds the colour word; [`regions_of`]
//! finds the flat patches of that colour that look like objects, largest first.
//!
//! Naming follows the usual hue wheel: a pixel whose channels differ by less than
//! [`ACHROMATIC`] is black, grey or white by its brightness; any other pixel is named by its hue,
//! with dark oranges and reds named brown. An object is a 4-connected patch of pixels of that
//! name that does not cross a sharp edge (a step of more than [`EDGE`] in some channel to a
//! neighbour): the dark outline of a tag, or the border of a shape, separates it from a
//! background of a similar colour, which smooth gradients never do.

use super::pixels::{chroma, run_pieces, RunPieces};
use crate::geom::Rect;
use image::RgbImage;

/// Channel spread (max − min) below which a pixel has no hue.
const ACHROMATIC: u8 = 16;
/// Neighbour step (in any channel) that separates two patches.
const EDGE: u8 = 24;
/// Share of a patch's edge that must be a sharp step (see [`Component::enclosed`]).
const MIN_ENCLOSED: f64 = 0.6;
/// Share of its box a patch with holes (a tag's text) must fill itself for the holes to count
/// as its own: a line that loops fills far less.
const MIN_SOLID: f64 = 0.2;
/// Most patches reported: more than this many of a colour is texture, not an object.
pub const MAX_REGIONS: usize = 12;

/// The colours a question can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedColour {
    Red,
    Orange,
    Yellow,
    Green,
    Teal,
    Blue,
    Purple,
    Pink,
    Brown,
    Black,
    Grey,
    White,
}

impl NamedColour {
    /// The colour a word names (English, with common synonyms), if any.
    pub fn from_word(word: &str) -> Option<Self> {
        use NamedColour::*;
        Some(match word.to_ascii_lowercase().as_str() {
            "red" | "crimson" | "scarlet" => Red,
            "orange" => Orange,
            "yellow" | "gold" | "golden" => Yellow,
            "green" | "lime" => Green,
            "teal" | "cyan" | "turquoise" => Teal,
            "blue" | "navy" => Blue,
            "purple" | "violet" | "lilac" | "lavender" => Purple,
            "pink" | "magenta" => Pink,
            "brown" => Brown,
            "black" => Black,
            "grey" | "gray" | "silver" => Grey,
            "white" => White,
            _ => return None,
        })
    }

    /// The first colour `text` names, outside quotes: a quoted key ("Red 4") is a label to
    /// read, not a colour to look for.
    pub fn in_text(text: &str) -> Option<Self> {
        text.split('"')
            .step_by(2)
            .flat_map(|part| part.split(|c: char| !c.is_ascii_alphabetic()))
            .find_map(Self::from_word)
    }

    /// The name of one pixel's colour.
    pub fn of_pixel([r, g, b]: [u8; 3]) -> Self {
        use NamedColour::*;
        let (max, spread) = (r.max(g).max(b), chroma([r, g, b]));
        if spread < ACHROMATIC {
            return match max {
                0..50 => Black,
                50..=240 => Grey,
                _ => White,
            };
        }
        let hue = hue_degrees([r, g, b], max, spread);
        if (10.0..45.0).contains(&hue) && max < 170 {
            return Brown;
        }
        match hue {
            h if !(15.0..345.0).contains(&h) => Red,
            h if h < 42.0 => Orange,
            h if h < 70.0 => Yellow,
            h if h < 160.0 => Green,
            h if h < 200.0 => Teal,
            h if h < 255.0 => Blue,
            h if h < 290.0 => Purple,
            _ => Pink,
        }
    }
}

/// [`NamedColour::of_pixel`] remembering the last pixel it named: flat paint repeats one pixel
/// along a row, which is then named once per run (a fifth of the colour search's time on the
/// 12 MP board of `cargo bench -p etchr-ops --bench find`).
#[derive(Default)]
pub(super) struct PixelNames(Option<([u8; 3], NamedColour)>);

impl PixelNames {
    pub(super) fn of(&mut self, pixel: [u8; 3]) -> NamedColour {
        match self.0 {
            Some((last, name)) if last == pixel => name,
            _ => {
                let name = NamedColour::of_pixel(pixel);
                self.0 = Some((pixel, name));
                name
            }
        }
    }
}

/// Hue in degrees [0, 360) of a pixel whose largest channel is `max` and spread `spread` > 0.
fn hue_degrees([r, g, b]: [u8; 3], max: u8, spread: u8) -> f64 {
    let (r, g, b, d) = (r as f64, g as f64, b as f64, spread as f64);
    let sextant = if max as f64 == r {
        ((g - b) / d).rem_euclid(6.0)
    } else if max as f64 == g {
        (b - r) / d + 2.0
    } else {
        (r - g) / d + 4.0
    };
    sextant * 60.0
}

/// One patch of a colour: its bounding box (pixels) and how many pixels it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColourRegion {
    pub bounds: Rect,
    pub area: u32,
}

/// The object-like patches of `colour` in `img`, largest first.
///
/// A patch counts when it is at least 40 px and a 50 000th of the image, at most a hundredth
/// of it, fills at least 45 % of its box with the holes in it filled (a triangle fills half;
/// a tag whole, however much of it its text covers), is no more than 8 times
/// longer than wide, and is enclosed by sharp steps (an outline, a border against a different
/// colour) along at least 60 % of its edge; of those, only patches at least a quarter the size of the largest are kept
/// (smaller ones are specks: corners cut off by text, compression blocks), at most
/// [`MAX_REGIONS`]. Empty when nothing qualifies, or when more than [`MAX_REGIONS`] patches
/// remain: then the colour is everywhere and says little about where to look.
pub fn regions_of(img: &RgbImage, colour: NamedColour) -> Vec<ColourRegion> {
    regions_up_to(img, colour, MAX_REGIONS)
}

/// [`regions_of`] with room for `most` patches: for a caller that tells the patches apart by
/// other means (reading each one's text), so that many of the colour still say something.
pub fn regions_up_to(img: &RgbImage, colour: NamedColour, most: usize) -> Vec<ColourRegion> {
    at_most(all_regions_of(img, colour), most)
}

/// `found` (the patches of [`all_regions_of`]) when there are at most `most` of them, else
/// none: many patches of one colour say nothing about where to look.
pub fn at_most(mut found: Vec<ColourRegion>, most: usize) -> Vec<ColourRegion> {
    if found.len() > most {
        found.clear();
    }
    found
}

/// Every patch of [`regions_of`], however many there are: the search behind [`regions_up_to`],
/// for a caller that keeps it for several limits ([`at_most`]).
pub fn all_regions_of(img: &RgbImage, colour: NamedColour) -> Vec<ColourRegion> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let masks = flat_patches_of(img, colour);
    let total = (w * h) as f64;
    let min_area = (total / 50_000.0).max(40.0);
    let max_area = total / 100.0;
    let mut found: Vec<ColourRegion> = components(&masks, w, h)
        .into_iter()
        .filter(|c| {
            let area = c.region.area as f64;
            let (bw, bh) = (c.region.bounds.width(), c.region.bounds.height());
            let fills = |share: f64, a: f64| a >= share * bw * bh;
            // Holes count only in a patch that is solid itself: a line's loops are not holes.
            area >= min_area
                && area <= max_area
                && bw.max(bh) <= 8.0 * bw.min(bh)
                && c.enclosed >= MIN_ENCLOSED
                && (fills(0.45, area)
                    || (fills(MIN_SOLID, area) && fills(0.45, c.filled_area() as f64)))
        })
        .map(|c| c.region)
        .collect();
    found.sort_by_key(|r| std::cmp::Reverse(r.area));
    let Some(largest) = found.first().map(|r| r.area) else {
        return found;
    };
    found.retain(|r| r.area * 4 >= largest);
    found
}

/// Pixels of `colour` that step smoothly to each of their neighbours (`patch`), and pixels on
/// either side of a sharp step (`sharp`).
struct Masks {
    patch: Vec<bool>,
    sharp: Vec<bool>,
}

fn flat_patches_of(img: &RgbImage, colour: NamedColour) -> Masks {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let steps = |a: &[u8], b: &[u8]| {
        a[0].abs_diff(b[0]) > EDGE || a[1].abs_diff(b[1]) > EDGE || a[2].abs_diff(b[2]) > EDGE
    };
    let mut sharp = vec![false; w * h];
    // Both pixels of a sharp step are marked, so an outline one pixel wide still splits.
    let rows: Vec<&[u8]> = raw.chunks_exact(3 * w).collect();
    for y in 0..h {
        let row = rows[y];
        for (x, (a, b)) in row
            .chunks_exact(3)
            .zip(row[3..].chunks_exact(3))
            .enumerate()
        {
            if steps(a, b) {
                sharp[y * w + x] = true;
                sharp[y * w + x + 1] = true;
            }
        }
        if let Some(next) = rows.get(y + 1) {
            for (x, (a, b)) in row.chunks_exact(3).zip(next.chunks_exact(3)).enumerate() {
                if steps(a, b) {
                    sharp[y * w + x] = true;
                    sharp[(y + 1) * w + x] = true;
                }
            }
        }
    }
    let mut names = PixelNames::default();
    let patch = raw
        .chunks_exact(3)
        .zip(&sharp)
        .map(|(p, &sharp)| !sharp && names.of([p[0], p[1], p[2]]) == colour)
        .collect();
    Masks { patch, sharp }
}

/// One 4-connected component of the patch mask.
struct Component {
    region: ColourRegion,
    /// Of the component's contacts with pixels outside it (the image border not counted), the
    /// share that are sharp steps: an outlined object is enclosed by them (≈ 1); a stretch of
    /// a gradient that happens to have the colour ends where the colour fades (≈ 0).
    enclosed: f64,
    /// Its runs of pixels: row, first column, one past the last.
    runs: Vec<(usize, usize, usize)>,
}

impl Component {
    /// Its pixel count with the holes inside it filled (what of its box cannot be reached
    /// from the box's edge without crossing it), so a tag counts whole however much of it is
    /// text, while a triangle or a bent line keeps its notches.
    fn filled_area(&self) -> u32 {
        let b = self.region.bounds;
        let (x0, y0) = (b.x0 as usize, b.y0 as usize);
        let (w, h) = (b.width() as usize, b.height() as usize);
        let mut blocked = vec![false; w * h];
        for &(y, a, end) in &self.runs {
            let row = (y - y0) * w;
            blocked[row + a - x0..row + end - x0].fill(true);
        }
        // Flood the outside in from every free pixel of the box's edge.
        let mut stack: Vec<usize> = (0..w)
            .flat_map(|x| [x, (h - 1) * w + x])
            .chain((0..h).flat_map(|y| [y * w, y * w + w - 1]))
            .collect();
        let mut outside = 0u32;
        while let Some(i) = stack.pop() {
            if blocked[i] {
                continue;
            }
            blocked[i] = true;
            outside += 1;
            let (x, y) = (i % w, i / w);
            if x > 0 {
                stack.push(i - 1);
            }
            if x + 1 < w {
                stack.push(i + 1);
            }
            if y > 0 {
                stack.push(i - w);
            }
            if y + 1 < h {
                stack.push(i + w);
            }
        }
        (w * h) as u32 - outside
    }
}

/// 4-connected components of `masks.patch` ([`run_pieces`]), with their boxes, pixel counts and
/// enclosure, in the raster order of their first pixels.
fn components(masks: &Masks, w: usize, h: usize) -> Vec<Component> {
    let mask = &masks.patch;
    let RunPieces { runs, piece, count } = run_pieces(mask, w, h, false);
    /// One component as its runs are added up: its box (inclusive), pixels and contacts.
    struct Tally {
        x0: usize,
        y0: usize,
        x1: usize,
        y1: usize,
        area: u32,
        sharp_contacts: u32,
        contacts: u32,
        runs: Vec<(usize, usize, usize)>,
    }
    let mut out: Vec<Tally> = (0..count)
        .map(|_| Tally {
            x0: w,
            y0: h,
            x1: 0,
            y1: 0,
            area: 0,
            sharp_contacts: 0,
            contacts: 0,
            runs: Vec::new(),
        })
        .collect();
    for (&(y, a, b), &c) in runs.iter().zip(&piece) {
        let t = &mut out[c];
        (t.x0, t.y0, t.x1, t.y1) = (t.x0.min(a), t.y0.min(y), t.x1.max(b - 1), t.y1.max(y));
        t.area += (b - a) as u32;
        t.runs.push((y, a, b));
        // Contacts with pixels outside the patch: beside the run, and above and below it.
        let mut touch = |j: usize| {
            if !mask[j] {
                t.contacts += 1;
                t.sharp_contacts += masks.sharp[j] as u32;
            }
        };
        if a > 0 {
            touch(y * w + a - 1);
        }
        if b < w {
            touch(y * w + b);
        }
        for x in a..b {
            if y > 0 {
                touch((y - 1) * w + x);
            }
            if y + 1 < h {
                touch((y + 1) * w + x);
            }
        }
    }
    out.into_iter()
        .map(|t| Component {
            region: ColourRegion {
                bounds: Rect::new(
                    t.x0 as f64,
                    t.y0 as f64,
                    (t.x1 + 1) as f64,
                    (t.y1 + 1) as f64,
                ),
                area: t.area,
            },
            enclosed: t.sharp_contacts as f64 / t.contacts.max(1) as f64,
            runs: t.runs,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn a_remembered_name_is_the_pixels_own() {
        let mut names = PixelNames::default();
        let row = [
            [246, 190, 212],
            [246, 190, 212],
            [31, 90, 200],
            [246, 190, 212],
            [0, 0, 0],
        ];
        for p in row.into_iter().chain(row.into_iter().rev()) {
            assert_eq!(names.of(p), NamedColour::of_pixel(p), "{p:?}");
        }
    }

    #[test]
    fn pixels_are_named_by_hue_and_brightness() {
        use NamedColour::*;
        let cases = [
            ([214, 39, 40], Red),
            ([245, 130, 20], Orange),
            ([250, 228, 120], Yellow),
            ([34, 150, 60], Green),
            ([186, 232, 186], Green),
            ([0, 150, 150], Teal),
            ([31, 90, 200], Blue),
            ([186, 212, 246], Blue),
            ([128, 60, 180], Purple),
            ([218, 198, 240], Purple),
            ([230, 90, 170], Pink),
            ([246, 190, 212], Pink),
            ([150, 90, 40], Brown),
            ([205, 205, 205], Grey),
            ([252, 252, 252], White),
            ([20, 20, 24], Black),
        ];
        for (rgb, name) in cases {
            assert_eq!(NamedColour::of_pixel(rgb), name, "{rgb:?}");
        }
    }

    #[test]
    fn the_colour_is_read_from_the_question_not_from_a_quoted_key() {
        assert_eq!(
            NamedColour::in_text("What is the code on the tag \"Red 4\" of the brown triangle?"),
            Some(NamedColour::Brown)
        );
        assert_eq!(
            NamedColour::in_text("One tag is mirrored: the GRAY one."),
            Some(NamedColour::Grey)
        );
        assert_eq!(NamedColour::in_text("What is the total?"), None);
    }

    /// A light grey-green gradient with outlined tags: two grey, one pink, all 60 × 20.
    fn board() -> RgbImage {
        let mut img = RgbImage::from_fn(400, 300, |x, y| {
            let t = (x + y) as f32 / 700.0;
            Rgb([(226.0 - 12.0 * t) as u8, (228.0 - 4.0 * t) as u8, 222])
        });
        let tag = |img: &mut RgbImage, x0: u32, y0: u32, fill: [u8; 3]| {
            for y in y0..y0 + 20 {
                for x in x0..x0 + 60 {
                    let edge = x == x0 || y == y0 || x == x0 + 59 || y == y0 + 19;
                    img.put_pixel(x, y, Rgb(if edge { [60, 60, 60] } else { fill }));
                }
            }
        };
        tag(&mut img, 40, 40, [205, 205, 205]);
        tag(&mut img, 300, 220, [205, 205, 205]);
        tag(&mut img, 200, 100, [246, 190, 212]);
        img
    }

    #[test]
    fn outlined_tags_of_the_named_colour_are_found_on_a_background_of_that_colour() {
        let img = board();
        // The background is grey too (its channels differ by < 16), but it is one smooth patch
        // larger than a hundredth of the image; the outlines split the tags from it.
        let grey = regions_of(&img, NamedColour::Grey);
        let boxes: Vec<Rect> = grey.iter().map(|r| r.bounds).collect();
        assert_eq!(boxes.len(), 2, "{grey:?}");
        for (x, y) in [(40.0, 40.0), (300.0, 220.0)] {
            assert!(
                boxes
                    .iter()
                    .any(|b| (b.x0 - x - 2.0).abs() < 1.5 && (b.y0 - y - 2.0).abs() < 1.5),
                "{boxes:?}"
            );
        }
        let pink = regions_of(&img, NamedColour::Pink);
        assert_eq!(pink.len(), 1);
        assert!(pink[0]
            .bounds
            .contains(crate::geom::Point::new(230.0, 110.0)));
        assert!(regions_of(&img, NamedColour::Blue).is_empty());
    }

    #[test]
    fn a_tint_that_fades_into_the_background_is_not_an_object() {
        // A soft pink glow (no outline) next to an outlined pink tag of the same size.
        let mut img = board();
        for y in 200..240u32 {
            for x in 60..140u32 {
                let d = ((x as f64 - 100.0).powi(2) / 1296.0 + (y as f64 - 220.0).powi(2) / 196.0)
                    .sqrt();
                let t = (1.0 - d).max(0.0);
                let p = img.get_pixel(x, y).0;
                let tint = |c: u8, to: u8| (c as f64 + (to as f64 - c as f64) * t) as u8;
                img.put_pixel(
                    x,
                    y,
                    Rgb([tint(p[0], 246), tint(p[1], 190), tint(p[2], 212)]),
                );
            }
        }
        let pink = regions_of(&img, NamedColour::Pink);
        assert_eq!(pink.len(), 1, "{pink:?}");
        assert!(pink[0]
            .bounds
            .contains(crate::geom::Point::new(230.0, 110.0)));
    }

    #[test]
    fn a_tag_counts_whole_however_much_of_it_is_text() {
        // A yellow tag whose "text" (dark strokes every 3 px, a margin around them) leaves
        // under a third of its box flat yellow: the strokes are holes in the tag, not its
        // shape.
        let mut img = board();
        let (x0, y0) = (100, 200);
        for y in y0..y0 + 20 {
            for x in x0..x0 + 60 {
                let edge = x == x0 || y == y0 || x == x0 + 59 || y == y0 + 19;
                let stroke = (6..=54).contains(&(x - x0))
                    && (x - x0) % 3 == 0
                    && (y0 + 4..y0 + 16).contains(&y);
                let c = if edge || stroke {
                    [40, 40, 40]
                } else {
                    [250, 226, 110]
                };
                img.put_pixel(x, y, Rgb(c));
            }
        }
        let yellow = regions_of(&img, NamedColour::Yellow);
        assert_eq!(yellow.len(), 1, "{yellow:?}");
        let r = yellow[0];
        assert!((r.area as f64) < 0.4 * r.bounds.area(), "{r:?}");
        assert!(r.bounds.contains(crate::geom::Point::new(130.0, 210.0)));
    }

    #[test]
    fn a_colour_that_is_everywhere_names_no_region() {
        // 16 × 12 small outlined squares: more patches than an object search should offer.
        let mut img = RgbImage::from_pixel(320, 240, Rgb([255, 255, 255]));
        for i in 0..16 {
            for j in 0..12 {
                for y in 0..20 {
                    for x in 0..20 {
                        let edge = x < 2 || y < 2;
                        let c = if edge { [0, 0, 0] } else { [31, 90, 200] };
                        img.put_pixel(i * 20 + x, j * 20 + y, Rgb(c));
                    }
                }
            }
        }
        assert!(regions_of(&img, NamedColour::Blue).is_empty());
    }
}
