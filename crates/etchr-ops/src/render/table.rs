//! Ruled tables: the rows and columns a table's rule lines draw, found from the pixels alone,
//! so a planner can lay a table out for a lookup (the key column beside the column asked for)
//! without reading a word of it.
//!
//! A rule is a thin line (at most 3 px) darker than the paper two pixels either side of it. A
//! table is at least four horizontal rules of one extent (a header and two rows), crossed by at
//! least three vertical rules that run its full height, the outer two at its ends, whose first
//! two columns hold text in most rows, and whose rows are of one height give or take: chart
//! gridlines have the geometry but empty cells, stacked chart panels have uneven rows.

use super::pixels::luma;
use crate::geom::Rect;
use image::RgbImage;

/// How much darker than the paper two pixels away a rule pixel is.
const CONTRAST: u8 = 16;
/// Rules are at least this long: the strokes of letters are shorter.
const MIN_RULE: usize = 40;
/// Gaps a crossing rule leaves in a run (there the paper either side is rule too).
const BRIDGE: usize = 3;
/// Runs whose ends agree within this many pixels belong to one table.
const ALIGN: usize = 3;
/// A vertical rule covers at least this share of the table's height.
const FULL_HEIGHT: f64 = 0.85;
/// A cell holds text when it has this many pixels at or below [`INK_LUMA`].
const INK_PIXELS: usize = 6;
const INK_LUMA: u8 = 128;
/// A table's first two columns hold text in at least this share of its rows.
const FILLED_ROWS: f64 = 0.6;

/// A ruled table. Rules are pixel spans `[start, end)`; row `i` lies between horizontal rules
/// `i` and `i + 1` (row 0 is the header), column `j` between vertical rules `j` and `j + 1`
/// (column 0 is the key column).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub row_rules: Vec<(u32, u32)>,
    pub col_rules: Vec<(u32, u32)>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.row_rules.len() - 1
    }

    pub fn cols(&self) -> usize {
        self.col_rules.len() - 1
    }

    /// Rows `first..end` with the rules that bound them: `(y0, y1)`.
    pub fn row_span(&self, first: usize, end: usize) -> (f64, f64) {
        (self.row_rules[first].0 as f64, self.row_rules[end].1 as f64)
    }

    /// Column `j` with the rules that bound it: `(x0, x1)`.
    pub fn col_span(&self, j: usize) -> (f64, f64) {
        (self.col_rules[j].0 as f64, self.col_rules[j + 1].1 as f64)
    }

    /// The whole table, outer rules included.
    pub fn bounds(&self) -> Rect {
        let (x0, x1) = (self.col_rules[0].0, self.col_rules[self.cols()].1);
        let (y0, y1) = (self.row_rules[0].0, self.row_rules[self.rows()].1);
        Rect::new(x0 as f64, y0 as f64, x1 as f64, y1 as f64)
    }

    /// The median row height, rules included.
    pub fn row_height(&self) -> f64 {
        let mut h: Vec<u32> = self.row_rules.windows(2).map(|w| w[1].1 - w[0].0).collect();
        h.sort_unstable();
        h[h.len() / 2] as f64
    }
}

/// The ruled tables of `img`, top to bottom, then left to right.
pub fn ruled_tables(img: &RgbImage) -> Vec<Table> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < 5 || h < 5 {
        return Vec::new();
    }
    let brightness: Vec<u8> = img.pixels().map(|p| luma(p.0)).collect();
    let l = Luma {
        px: &brightness,
        width: w,
    };
    let mut tables: Vec<Table> = horizontal_groups(&l, w, h)
        .into_iter()
        .filter_map(|(lo, hi, rules)| table_of(&l, lo, hi, rules))
        .collect();
    tables.sort_by_key(|t| (t.row_rules[0].0, t.col_rules[0].0));
    tables
}

struct Luma<'a> {
    px: &'a [u8],
    width: usize,
}

impl Luma<'_> {
    fn at(&self, x: usize, y: usize) -> u8 {
        self.px[y * self.width + x]
    }

    /// A pixel of a horizontal rule: darker than the paper two rows above and below.
    fn on_horizontal(&self, x: usize, y: usize) -> bool {
        let v = self.at(x, y).saturating_add(CONTRAST);
        v <= self.at(x, y - 2) && v <= self.at(x, y + 2)
    }

    fn on_vertical(&self, x: usize, y: usize) -> bool {
        let v = self.at(x, y).saturating_add(CONTRAST);
        v <= self.at(x - 2, y) && v <= self.at(x + 2, y)
    }

    fn inked(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> usize {
        (y0..y1)
            .map(|y| (x0..x1).filter(|&x| self.at(x, y) <= INK_LUMA).count())
            .sum()
    }
}

/// A rule's `[start, end)` pixel span across its line.
type Span = (u32, u32);

/// Horizontal rules of one extent: `(x0, x1, rules)`.
type RuleGroup = (usize, usize, Vec<Span>);

/// Horizontal rules grouped by extent, split where the gap between rules is far over the
/// group's usual one (two tables stacked).
fn horizontal_groups(l: &Luma<'_>, w: usize, h: usize) -> Vec<RuleGroup> {
    // (x0, x1, rows holding a run of that extent)
    let mut groups: Vec<(usize, usize, Vec<u32>)> = Vec::new();
    for y in 2..h - 2 {
        let mut flush = |(start, last): (usize, usize)| {
            if last + 1 - start >= MIN_RULE {
                add_run(&mut groups, start, last + 1, y as u32);
            }
        };
        let mut run: Option<(usize, usize)> = None;
        for x in (0..w).filter(|&x| l.on_horizontal(x, y)) {
            run = match run {
                Some((start, last)) if x - last <= BRIDGE + 1 => Some((start, x)),
                Some(done) => {
                    flush(done);
                    Some((x, x))
                }
                None => Some((x, x)),
            };
        }
        if let Some(done) = run {
            flush(done);
        }
    }
    let mut out = Vec::new();
    for (x0, x1, ys) in groups {
        let rules = merge_adjacent(&ys);
        for part in split_at_wide_gaps(rules) {
            if part.len() >= 4 {
                out.push((x0, x1, part));
            }
        }
    }
    out
}

fn add_run(groups: &mut Vec<(usize, usize, Vec<u32>)>, x0: usize, x1: usize, y: u32) {
    let near = |a: usize, b: usize| a.abs_diff(b) <= ALIGN;
    match groups
        .iter_mut()
        .find(|(g0, g1, _)| near(*g0, x0) && near(*g1, x1))
    {
        Some(g) => g.2.push(y),
        None => groups.push((x0, x1, vec![y])),
    }
}

/// Consecutive coordinates (`ys` sorted) merged into `[start, end)` spans of at most 3 px;
/// thicker spans are bars, not rules.
fn merge_adjacent(ys: &[u32]) -> Vec<(u32, u32)> {
    let mut spans: Vec<(u32, u32)> = Vec::new();
    for &y in ys {
        match spans.last_mut() {
            Some(s) if s.1 == y => s.1 = y + 1,
            _ => spans.push((y, y + 1)),
        }
    }
    spans.retain(|s| s.1 - s.0 <= 3);
    spans
}

fn split_at_wide_gaps(rules: Vec<(u32, u32)>) -> Vec<Vec<(u32, u32)>> {
    if rules.len() < 2 {
        return vec![rules];
    }
    let mut gaps: Vec<u32> = rules.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    let usual = gaps[gaps.len() / 2] as f64;
    let mut parts = vec![vec![rules[0]]];
    for w in rules.windows(2) {
        if (w[1].0 - w[0].0) as f64 > 2.5 * usual {
            parts.push(Vec::new());
        }
        parts.last_mut().expect("never empty").push(w[1]);
    }
    parts
}

/// The table whose horizontal rules span `x0..x1`, if vertical rules cross it and its first
/// two columns hold text.
fn table_of(l: &Luma<'_>, x0: usize, x1: usize, row_rules: Vec<(u32, u32)>) -> Option<Table> {
    let (y0, y1) = (row_rules[0].0 as usize, row_rules.last()?.1 as usize);
    let need = ((y1 - y0) as f64 * FULL_HEIGHT) as usize;
    let xs: Vec<u32> = (x0.saturating_sub(1).max(2)..(x1 + 1).min(l.width - 2))
        .filter(|&x| (y0..y1).filter(|&y| l.on_vertical(x, y)).count() >= need)
        .map(|x| x as u32)
        .collect();
    let col_rules = merge_adjacent(&xs);
    // Boxed: the outer vertical rules are where the horizontal ones end.
    let boxed = |rules: &[(u32, u32)]| {
        let (first, last) = (rules.first()?, rules.last()?);
        let near = |a: u32, b: usize| a.abs_diff(b as u32) as usize <= ALIGN + 1;
        Some(near(first.0, x0) && near(last.1, x1))
    };
    if col_rules.len() < 3 || boxed(&col_rules) != Some(true) {
        return None;
    }
    let table = Table {
        row_rules,
        col_rules,
    };
    let cell = |row: usize, col: usize| {
        let (cx0, cx1) = (table.col_rules[col].1, table.col_rules[col + 1].0);
        let (cy0, cy1) = (table.row_rules[row].1, table.row_rules[row + 1].0);
        l.inked(cx0 as usize, cy0 as usize, cx1 as usize, cy1 as usize) >= INK_PIXELS
    };
    // Rows of one height, give or take: a lookup table's rows are lines of text (panels of
    // charts stacked with a gap between them are not).
    let usual = table.row_height();
    let odd = table
        .row_rules
        .windows(2)
        .filter(|w| {
            let h = (w[1].1 - w[0].0) as f64;
            !(0.5 * usual..=2.0 * usual).contains(&h)
        })
        .count();
    if odd * 10 > table.rows() {
        return None;
    }
    let data_rows = table.rows() - 1;
    let filled = (1..=data_rows)
        .filter(|&r| cell(r, 0) && cell(r, 1))
        .count();
    (filled as f64 >= FILLED_ROWS * data_rows as f64).then_some(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A `rows × cols` ruled grid of `cell` px cells at (40, 30) on a white page, each cell
    /// with a dark blob of "text" unless `empty`.
    fn ruled(rows: u32, cols: u32, cell: (u32, u32), empty: bool) -> RgbImage {
        let (cw, ch) = cell;
        let mut img = RgbImage::from_pixel(40 + cols * cw + 60, 30 + rows * ch + 50, Rgb([250; 3]));
        for r in 0..=rows {
            for x in 40..=40 + cols * cw {
                img.put_pixel(x, 30 + r * ch, Rgb([185; 3]));
            }
        }
        for c in 0..=cols {
            for y in 30..=30 + rows * ch {
                img.put_pixel(40 + c * cw, y, Rgb([185; 3]));
            }
        }
        if !empty {
            for r in 0..rows {
                for c in 0..cols {
                    for dy in 0..6 {
                        for dx in 0..20 {
                            let (x, y) = (40 + c * cw + 8 + dx, 30 + r * ch + 7 + dy);
                            if (dx + dy) % 3 != 0 {
                                img.put_pixel(x, y, Rgb([30; 3]));
                            }
                        }
                    }
                }
            }
        }
        img
    }

    #[test]
    fn finds_the_rows_and_columns_of_a_ruled_table() {
        let img = ruled(6, 4, (60, 20), false);
        let tables = ruled_tables(&img);
        assert_eq!(tables.len(), 1, "{tables:?}");
        let t = &tables[0];
        assert_eq!((t.rows(), t.cols()), (6, 4));
        assert_eq!(t.bounds(), Rect::new(40.0, 30.0, 281.0, 151.0));
        assert_eq!(t.col_span(1), (100.0, 161.0));
        assert_eq!(t.row_span(1, 3), (50.0, 91.0));
        assert_eq!(t.row_height(), 21.0);
    }

    #[test]
    fn empty_grids_and_short_grids_are_not_tables() {
        // Chart gridlines: the geometry of a table, no text in the cells.
        assert!(ruled_tables(&ruled(6, 4, (60, 20), true)).is_empty());
        // A header and one row are not a table to look anything up in.
        assert!(ruled_tables(&ruled(2, 4, (60, 20), false)).is_empty());
        // A single column has no key beside a value.
        assert!(ruled_tables(&ruled(6, 1, (60, 20), false)).is_empty());
        assert!(ruled_tables(&RgbImage::new(3, 3)).is_empty());
    }
}
