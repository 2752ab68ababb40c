//! Free space in a view (the maze helpers): flood fill and shortest paths.
//!
//! A pixel is a *wall* when it is dark and unsaturated (luma below `wall_luma`, chroma below
//! 64); everything else — background, corridors, coloured start and exit markers — is free.

use super::pixels::{chroma, luma, neighbours};
use crate::geom::{Point, Rect};
use image::RgbImage;
use std::collections::VecDeque;

const SNAP_RADIUS: i64 = 12;

pub fn free_mask(img: &RgbImage, wall_luma: u8) -> Vec<bool> {
    img.pixels()
        .map(|p| luma(p.0) >= wall_luma || chroma(p.0) >= 64)
        .collect()
}

/// The free pixel nearest to `(x, y)` within a small radius, so a point placed on a wall's
/// antialiased edge still starts in the corridor.
pub fn snap(free: &[bool], w: u32, h: u32, x: f64, y: f64) -> Option<(u32, u32)> {
    let (cx, cy) = (x.floor() as i64, y.floor() as i64);
    let mut best: Option<(i64, (u32, u32))> = None;
    for dy in -SNAP_RADIUS..=SNAP_RADIUS {
        for dx in -SNAP_RADIUS..=SNAP_RADIUS {
            let (px, py) = (cx + dx, cy + dy);
            if px < 0 || py < 0 || px >= w as i64 || py >= h as i64 {
                continue;
            }
            let d = dx * dx + dy * dy;
            if free[(py * w as i64 + px) as usize] && best.is_none_or(|b| d < b.0) {
                best = Some((d, (px as u32, py as u32)));
            }
        }
    }
    best.map(|b| b.1)
}

/// Pixels reachable from `start` through free space (4-connected).
pub fn flood(free: &[bool], w: u32, h: u32, start: (u32, u32)) -> Vec<bool> {
    let mut seen = vec![false; free.len()];
    let mut queue = VecDeque::new();
    let s = (start.1 * w + start.0) as usize;
    seen[s] = true;
    queue.push_back(s);
    while let Some(i) = queue.pop_front() {
        for j in neighbours(i, w as usize, h as usize) {
            if free[j] && !seen[j] {
                seen[j] = true;
                queue.push_back(j);
            }
        }
    }
    seen
}

/// The shortest 4-connected path through free space from `from` to `to`, as pixel centres
/// with collinear runs merged. When `to` is `None` or unreachable, the path runs to the pixel
/// reachable from `from` that lies nearest to `(x, y)` (ties: the first in raster order). One
/// breadth-first search serves both cases: a search that never reaches `to` has already visited
/// everything reachable, and its parent tree gives the path to any of it.
pub fn path_toward(
    free: &[bool],
    w: u32,
    h: u32,
    from: (u32, u32),
    to: Option<(u32, u32)>,
    (x, y): (f64, f64),
) -> Vec<(f64, f64)> {
    const UNSEEN: u32 = u32::MAX;
    let (w_us, h_us) = (w as usize, h as usize);
    let mut parent = vec![UNSEEN; free.len()];
    let s = (from.1 * w + from.0) as usize;
    let t = to.map(|t| (t.1 * w + t.0) as usize);
    parent[s] = s as u32;
    let mut queue = VecDeque::from([s]);
    while let Some(i) = queue.pop_front() {
        if Some(i) == t {
            break;
        }
        for j in neighbours(i, w_us, h_us) {
            if free[j] && parent[j] == UNSEEN {
                parent[j] = i as u32;
                queue.push_back(j);
            }
        }
    }
    let end = match t {
        Some(t) if parent[t] != UNSEEN => t,
        _ => {
            let mut best = (f64::INFINITY, s);
            for (i, _) in parent.iter().enumerate().filter(|(_, &p)| p != UNSEEN) {
                let (px, py) = ((i % w_us) as f64 + 0.5, (i / w_us) as f64 + 0.5);
                let d = (px - x).powi(2) + (py - y).powi(2);
                if d < best.0 {
                    best = (d, i);
                }
            }
            best.1
        }
    };
    let mut cells = vec![end];
    let mut i = end;
    while i != s {
        i = parent[i] as usize;
        cells.push(i);
    }
    cells.reverse();
    let centre = |i: usize| ((i % w_us) as f64 + 0.5, (i / w_us) as f64 + 0.5);
    let mut pts: Vec<(f64, f64)> = Vec::new();
    for k in 0..cells.len() {
        let p = centre(cells[k]);
        if k > 0 && k + 1 < cells.len() {
            let (a, b) = (centre(cells[k - 1]), centre(cells[k + 1]));
            // Keep only corners: the middle of a straight run adds nothing to the drawing.
            if (p.0 - a.0 == b.0 - p.0) && (p.1 - a.1 == b.1 - p.1) {
                continue;
            }
        }
        pts.push(p);
    }
    pts
}

/// The strongly coloured pixel (chroma at least 96: a start marker, not a grey wall, white floor
/// or dark text) nearest to `at` within `radius`, as a pixel centre; `None` if there is none.
pub fn nearest_marker(img: &RgbImage, at: Point, radius: f64) -> Option<Point> {
    let (w, h) = img.dimensions();
    let lo = |v: f64| (v - radius).max(0.0) as u32;
    let hi = |v: f64, max: u32| ((v + radius).max(0.0) as u32).min(max.saturating_sub(1));
    let mut best: Option<(f64, Point)> = None;
    for py in lo(at.y)..=hi(at.y, h) {
        for px in lo(at.x)..=hi(at.x, w) {
            if chroma(img.get_pixel(px, py).0) < 96 {
                continue;
            }
            let c = Point::new(px as f64 + 0.5, py as f64 + 0.5);
            let d = c.distance(at);
            if d <= radius && best.is_none_or(|(bd, _)| d < bd) {
                best = Some((d, c));
            }
        }
    }
    best.map(|(_, c)| c)
}

/// `free` eroded by one pixel: a pixel stays free only when its whole 3 × 3 neighbourhood (within
/// the image) is free, so passages one or two pixels wide close and wider corridors narrow by
/// one pixel on each side.
fn wide_only(free: &[bool], w: usize, h: usize) -> Vec<bool> {
    // Rows first, then columns: a pixel with a blocked horizontal neighbour, then one whose
    // vertical neighbours are not all open in that first pass.
    let mut rows = vec![false; free.len()];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            rows[i] = free[i] && (x == 0 || free[i - 1]) && (x + 1 == w || free[i + 1]);
        }
    }
    let mut out = vec![false; free.len()];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            out[i] = rows[i] && (y == 0 || rows[i - w]) && (y + 1 == h || rows[i + w]);
        }
    }
    out
}

/// Where a maze walked from `from` leads: the reachable free pixel that lies furthest out
/// past the maze's floor (a maze's exit opens outwards through its border wall, into a pocket
/// or off the image, where a dead end stops inside the wall), and the box of the reachable
/// pixels in front of it: up to `depth` inwards from that side and a third of that to either
/// side (the exit's pocket, its label and the corridor leading in; narrow sideways, so a
/// neighbouring exit's pocket stays out). `None` when the point lies inside a wall.
///
/// The floor is measured, not assumed to fill the image: a board set off-centre leaves a dead
/// end by its near border closer to the image's edge than the open exit on its far side. Its
/// extent is the [`FLOOR_QUANTILE`] quantiles of the free pixels' columns and rows, so that the
/// few pixels of exit pockets and labels outside it do not stretch it. Ties (on a board that
/// fills the image) go to the pixel nearest the image's edge.
///
/// Whether the walk starts at the true start matters less than it seems: any point in the
/// start's corridors leads to the same exit. The walk keeps to free space at least 3 px wide
/// (see [`wide_only`]): a hairline, such as the light frame drawn round a maze, would otherwise
/// join every exit to every other.
pub fn exit_from(img: &RgbImage, from: Point, wall_luma: u8, depth: f64) -> Option<(Point, Rect)> {
    let (w, h) = img.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    let free = wide_only(&free_mask(img, wall_luma), wu, hu);
    let start = snap(&free, w, h, from.x, from.y)?;
    let reached = flood(&free, w, h, start);
    let floor = floor_extent(&free, wu, hu);
    // How far pixel (px, py) lies out past each side of the floor (negative: inside it), and
    // how far it is from that side's image edge: left, right, top, bottom.
    let sides = |px: usize, py: usize| {
        let (x, y) = (px as f64, py as f64);
        [
            (floor.x0 - x, px),
            (x - floor.x1, wu - 1 - px),
            (floor.y0 - y, py),
            (y - floor.y1, hu - 1 - py),
        ]
    };
    // Further out past the floor, then nearer the image's edge: the order of sides and pixels.
    let further = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1));
    // The side a pixel leaves the floor by, and how far.
    let outmost = |px: usize, py: usize| {
        let s = sides(px, py);
        let side = (0..4)
            .max_by(|&a, &b| further(&s[a], &s[b]))
            .expect("four sides");
        (side, s[side])
    };
    let (exit, side) = (0..reached.len())
        .filter(|&i| reached[i])
        .map(|i| (i, outmost(i % wu, i / wu)))
        .max_by(|(_, (_, a)), (_, (_, b))| further(a, b))
        .map(|(i, (side, _))| (i, side))?;
    let (px, py) = (exit % wu, exit / wu);
    let e = Point::new(px as f64 + 0.5, py as f64 + 0.5);
    // The window in front of the exit, deep along the axis of the side it leaves by.
    let across = depth / 3.0;
    let (dx, dy) = if side < 2 {
        (depth, across)
    } else {
        (across, depth)
    };
    let clampx = |v: f64| v.clamp(0.0, (wu - 1) as f64) as usize;
    let clampy = |v: f64| v.clamp(0.0, (hu - 1) as f64) as usize;
    let mut pocket = Rect::new(e.x, e.y, e.x, e.y);
    for qy in clampy(e.y - dy)..=clampy(e.y + dy) {
        for qx in clampx(e.x - dx)..=clampx(e.x + dx) {
            if reached[qy * wu + qx] {
                let (fx, fy) = (qx as f64, qy as f64);
                pocket = pocket.union(&Rect::new(fx, fy, fx + 1.0, fy + 1.0));
            }
        }
    }
    Some((e, pocket))
}

/// The share of free pixels on each side left out of the floor's extent ([`floor_extent`]):
/// an exit's pocket and label are well under it, a maze's outermost row of cells well over it.
const FLOOR_QUANTILE: f64 = 0.005;

/// The extent of the free pixels, less the outermost [`FLOOR_QUANTILE`] of them on each side:
/// the columns and rows between which the floor of a maze lies. The whole image when nothing
/// is free.
fn floor_extent(free: &[bool], w: usize, h: usize) -> Rect {
    let (mut columns, mut rows) = (vec![0usize; w], vec![0usize; h]);
    for (i, _) in free.iter().enumerate().filter(|(_, &f)| f) {
        columns[i % w] += 1;
        rows[i / w] += 1;
    }
    let total: usize = rows.iter().sum();
    let cut = (total as f64 * FLOOR_QUANTILE) as usize;
    // The first index at which more than `cut` pixels have been counted, from either end.
    fn first<'a>(mut counts: impl Iterator<Item = (usize, &'a usize)>, cut: usize) -> Option<f64> {
        let mut seen = 0;
        counts
            .find(|(_, &c)| {
                seen += c;
                seen > cut
            })
            .map(|(i, _)| i as f64)
    }
    Rect::new(
        first(columns.iter().enumerate(), cut).unwrap_or(0.0),
        first(rows.iter().enumerate(), cut).unwrap_or(0.0),
        first(columns.iter().enumerate().rev(), cut).unwrap_or((w - 1) as f64),
        first(rows.iter().enumerate().rev(), cut).unwrap_or((h - 1) as f64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A dark `w` × `h` board with white rectangles `[x0, x1) × [y0, y1)` opened in it.
    fn board(w: u32, h: u32, open: &[(u32, u32, u32, u32)]) -> RgbImage {
        let mut img = RgbImage::from_pixel(w, h, Rgb([20, 20, 20]));
        for &(x0, x1, y0, y1) in open {
            for y in y0..y1 {
                for x in x0..x1 {
                    img.put_pixel(x, y, Rgb([255, 255, 255]));
                }
            }
        }
        img
    }

    /// A 9 × 9 room with a wall across the middle row, open at the far right.
    fn room() -> RgbImage {
        let mut img = RgbImage::from_pixel(9, 9, Rgb([255, 255, 255]));
        for x in 0..8 {
            img.put_pixel(x, 4, Rgb([0, 0, 0]));
        }
        img
    }

    #[test]
    fn a_hairline_does_not_join_sealed_exits() {
        // A corridor from (10, 20) ends 2 px short of the right edge; a sealed pocket on the
        // left edge, nearer the border, is joined to it only by a one-pixel light line (a frame
        // drawn round the board), which the walk must not take.
        let img = board(
            60,
            40,
            &[
                (10, 58, 18, 23),
                (0, 6, 2, 10),
                (0, 60, 36, 37),
                (57, 58, 23, 36),
                (3, 4, 10, 36),
            ],
        );
        let (exit, _) = exit_from(&img, Point::new(12.0, 20.0), 96, 20.0).unwrap();
        // The corridor's end, less the pixel the walk keeps off its wall.
        assert_eq!(exit.x, 56.5, "{exit:?}");
        assert!((18.0..23.0).contains(&exit.y), "{exit:?}");
    }

    #[test]
    fn the_exit_is_where_the_reachable_space_meets_the_edge() {
        // A dark board with a corridor from (10, 20) to (40, 20), open to the right edge
        // through a pocket at x 40..50; a sealed corridor reaches the left edge elsewhere.
        let mut img = board(50, 40, &[(10, 50, 18, 23), (0, 8, 4, 7)]);
        let (exit, pocket) = exit_from(&img, Point::new(12.0, 20.0), 96, 15.0).unwrap();
        assert_eq!(exit.x, 49.5);
        assert!((18.0..23.0).contains(&exit.y), "{exit:?}");
        // Reachable pixels up to 15 px in from the right edge: x 34..50 of the corridor, whose
        // rows the walk keeps one pixel off the walls (19..22 of 18..23).
        assert_eq!(pocket, Rect::new(34.0, 19.0, 50.0, 22.0));
        // From the sealed corridor, its own end on the left edge.
        let sealed = exit_from(&img, Point::new(3.0, 5.0), 96, 15.0).unwrap();
        assert_eq!(sealed.0, Point::new(0.5, 5.5));
        // Deep inside a wall: no walk.
        assert!(exit_from(&img, Point::new(25.0, 35.0), 96, 15.0).is_none());
        // A coloured start disk near the guess is where the walk should begin.
        img.put_pixel(20, 20, Rgb([30, 160, 60]));
        let near = nearest_marker(&img, Point::new(26.0, 26.0), 10.0);
        assert_eq!(near, Some(Point::new(20.5, 20.5)));
        assert_eq!(nearest_marker(&img, Point::new(40.0, 30.0), 10.0), None);
    }

    #[test]
    fn the_exit_opens_past_the_floor_however_near_the_image_edge_a_dead_end_lies() {
        // A board set low on the image: its floor's bottom row is 9 px from the image's
        // bottom edge, while its one exit, on the right, opens into a pocket 78 px from the
        // right edge. The exit is where the walk leaves the floor, not the point nearest an edge.
        let img = board(
            600,
            300,
            &[
                (40, 500, 10, 290),
                (500, 510, 100, 110),
                (510, 522, 98, 112),
            ],
        );
        let (exit, pocket) = exit_from(&img, Point::new(100.0, 200.0), 96, 60.0).unwrap();
        // The pocket's far column, less the pixel the walk keeps off its wall.
        assert_eq!(exit.x, 520.5, "{exit:?}");
        assert!((98.0..112.0).contains(&exit.y), "{exit:?}");
        // The window runs inwards from the right, 60 px deep and 20 px to either side.
        assert_eq!(pocket.x1, 521.0, "{pocket:?}");
        assert!(pocket.x0 >= 460.0 && pocket.height() <= 41.0, "{pocket:?}");
    }

    #[test]
    fn path_goes_around_the_wall() {
        let img = room();
        let free = free_mask(&img, 96);
        let path = path_toward(&free, 9, 9, (0, 0), Some((0, 8)), (0.5, 8.5));
        assert_eq!(path.first(), Some(&(0.5, 0.5)));
        assert_eq!(path.last(), Some(&(0.5, 8.5)));
        assert!(
            path.iter().any(|p| p.0 == 8.5),
            "must pass through the gap: {path:?}"
        );
        for p in &path {
            assert!(free[(p.1 as usize) * 9 + p.0 as usize]);
        }
    }

    #[test]
    fn sealed_rooms_have_no_path_and_floods_stop_at_walls() {
        let mut img = room();
        img.put_pixel(8, 4, Rgb([0, 0, 0]));
        let free = free_mask(&img, 96);
        let reach = flood(&free, 9, 9, (0, 0));
        assert_eq!(reach.iter().filter(|&&r| r).count(), 36);
        // The far side is unreachable: the path ends at the reachable pixel nearest the target
        // (the row above the wall, straight up from it), also without a target at all; like
        // every path it is a shortest one (BFS tries horizontal moves first).
        let path = path_toward(&free, 9, 9, (0, 0), Some((0, 8)), (6.5, 8.5));
        assert_eq!(path, [(0.5, 0.5), (6.5, 0.5), (6.5, 3.5)]);
        let path = path_toward(&free, 9, 9, (0, 0), None, (6.5, 8.5));
        assert_eq!(path.last(), Some(&(6.5, 3.5)));
        assert_eq!(
            path_toward(&free, 9, 9, (0, 0), None, (0.5, 0.5)),
            [(0.5, 0.5)]
        );
    }

    #[test]
    fn coloured_markers_are_free() {
        let img = RgbImage::from_pixel(2, 1, Rgb([230, 25, 25]));
        assert!(free_mask(&img, 96).iter().all(|&f| f));
    }
}
