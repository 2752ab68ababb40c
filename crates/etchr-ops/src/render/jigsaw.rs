//! Tile permutations and the edge-continuity solver that undoes them.

use image::{imageops, RgbImage};

/// Output tile `i` (row-major) shows input tile `order[i]`. Tiles are `width / cols` by
/// `height / rows`; the remainder strip on the right and bottom stays in place.
pub fn permute(img: &RgbImage, rows: u32, cols: u32, order: &[u32]) -> RgbImage {
    let (tw, th) = (img.width() / cols, img.height() / rows);
    let mut out = img.clone();
    for (dst, &src) in order.iter().enumerate() {
        let (dst, src) = (dst as u32, src);
        let tile = imageops::crop_imm(img, (src % cols) * tw, (src / cols) * th, tw, th);
        imageops::replace(
            &mut out,
            &*tile,
            ((dst % cols) * tw) as i64,
            ((dst / cols) * th) as i64,
        );
    }
    out
}

/// The inverse permutation: `inverse(order)[order[i]] == i`.
pub fn inverse(order: &[u32]) -> Vec<u32> {
    let mut inv = vec![0; order.len()];
    for (i, &o) in order.iter().enumerate() {
        inv[o as usize] = i as u32;
    }
    inv
}

/// The grid a shuffled image was cut into, read from its seams: `(rows, cols)`, each up to
/// `max`, or `None` when no cut shows (an image that was never shuffled). A cut between two
/// tiles that were not neighbours is a line where neighbouring pixels differ far more than
/// they do just beside it. A grid of `n` tiles `len / n` wide (the tile size `jigsaw` and
/// `jigsaw_solve` use) fits when at least two thirds of its `n − 1` cuts show, so a cut that
/// happens to join two true neighbours, or runs through a plain background, is forgiven; the
/// finest fitting grid wins, because every coarser grid whose cuts are a subset of the true
/// ones fits too, while a finer one puts a third or more of its cuts inside tiles.
pub fn detect_grid(img: &RgbImage, max: u32) -> Option<(u32, u32)> {
    let (w, h) = img.dimensions();
    let (across_x, across_y) = seam_profiles(img);
    let rows = finest_fit(&across_y, h, max);
    let cols = finest_fit(&across_x, w, max);
    (rows > 1 || cols > 1).then_some((rows, cols))
}

/// The mean absolute difference (summed over channels) between neighbouring pixel lines:
/// `.0[i]` between columns `i` and `i + 1`, `.1[i]` between rows `i` and `i + 1`. One pass in
/// raster order over the raw buffer, so a 12-megapixel image costs one sweep of memory.
fn seam_profiles(img: &RgbImage) -> (Vec<f64>, Vec<f64>) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let stride = 3 * w;
    let mut cols = vec![0u64; w.saturating_sub(1)];
    let mut rows = vec![0u64; h.saturating_sub(1)];
    let diff =
        |a: &[u8], b: &[u8]| -> u64 { a.iter().zip(b).map(|(p, q)| p.abs_diff(*q) as u64).sum() };
    for y in 0..h {
        let line = &raw[y * stride..(y + 1) * stride];
        for (x, slot) in cols.iter_mut().enumerate() {
            *slot += diff(&line[3 * x..3 * x + 3], &line[3 * x + 3..3 * x + 6]);
        }
        if let Some(slot) = rows.get_mut(y) {
            *slot += diff(line, &raw[(y + 1) * stride..(y + 2) * stride]);
        }
    }
    let mean = |v: Vec<u64>, n: usize| v.into_iter().map(|s| s as f64 / n.max(1) as f64).collect();
    (mean(cols, h), mean(rows, w))
}

/// The largest `n ≤ max` whose cuts mostly show in `d` (1 when none does).
fn finest_fit(d: &[f64], len: u32, max: u32) -> u32 {
    // How much a cut stands out: its difference over the median of the lines near it.
    const SHOWS: f64 = 3.0;
    let stands_out = |at: usize| -> bool {
        let mut near: Vec<f64> = (at.saturating_sub(6)..at.saturating_sub(1))
            .chain(at + 2..(at + 7).min(d.len()))
            .map(|k| d[k])
            .collect();
        if near.is_empty() {
            return false;
        }
        near.sort_by(f64::total_cmp);
        d[at] > SHOWS * (near[near.len() / 2] + 1e-3)
    };
    (2..=max)
        .rev()
        .find(|&n| {
            let tile = len / n;
            if tile < 8 {
                return false;
            }
            let cuts = (1..n)
                .filter(|k| stands_out((k * tile - 1) as usize))
                .count();
            3 * cuts >= 2 * (n as usize - 1)
        })
        .unwrap_or(1)
}

/// Dissimilarities between tile edges: `right[a][b]` is the cost of tile `b` sitting right of
/// tile `a`, `below[a][b]` of `b` sitting below `a`. Each side predicts the other's first line
/// from its last two (a linear continuation), which tolerates gradients that plain differences
/// punish.
/// A tile side's boundary line and the line next to it, for linear prediction.
type EdgeLines = (Vec<[f64; 3]>, Vec<[f64; 3]>);

struct EdgeCosts {
    right: Vec<Vec<f64>>,
    below: Vec<Vec<f64>>,
}

fn edge_costs(img: &RgbImage, rows: u32, cols: u32) -> EdgeCosts {
    let (tw, th) = (img.width() / cols, img.height() / rows);
    let n = (rows * cols) as usize;
    let px = |x: u32, y: u32| img.get_pixel(x, y).0.map(|v| v as f64);
    let origin = |t: usize| ((t as u32 % cols) * tw, (t as u32 / cols) * th);
    // Lines of pixels: (last, second last) on one side, (first, second) on the other.
    let column = |t: usize, dx: u32| -> Vec<[f64; 3]> {
        let (x, y) = origin(t);
        (0..th).map(|k| px(x + dx, y + k)).collect()
    };
    let row = |t: usize, dy: u32| -> Vec<[f64; 3]> {
        let (x, y) = origin(t);
        (0..tw).map(|k| px(x + k, y + dy)).collect()
    };
    let cost =
        |a_last: &[[f64; 3]], a_prev: &[[f64; 3]], b_first: &[[f64; 3]], b_next: &[[f64; 3]]| {
            let mut s = 0.0;
            for k in 0..a_last.len() {
                for c in 0..3 {
                    let pred_b = 2.0 * a_last[k][c] - a_prev[k][c];
                    let pred_a = 2.0 * b_first[k][c] - b_next[k][c];
                    s += (pred_b - b_first[k][c]).abs() + (pred_a - a_last[k][c]).abs();
                }
            }
            s / a_last.len().max(1) as f64
        };
    let two = |len: u32| if len >= 2 { 1 } else { 0 };
    let (lx, ly) = (tw - 1, th - 1);
    let cols_last: Vec<_> = (0..n)
        .map(|t| (column(t, lx), column(t, lx - two(tw))))
        .collect();
    let cols_first: Vec<_> = (0..n).map(|t| (column(t, 0), column(t, two(tw)))).collect();
    let rows_last: Vec<_> = (0..n).map(|t| (row(t, ly), row(t, ly - two(th)))).collect();
    let rows_first: Vec<_> = (0..n).map(|t| (row(t, 0), row(t, two(th)))).collect();
    let table = |last: &[EdgeLines], first: &[EdgeLines]| {
        (0..n)
            .map(|a| {
                (0..n)
                    .map(|b| {
                        if a == b {
                            f64::INFINITY
                        } else {
                            cost(&last[a].0, &last[a].1, &first[b].0, &first[b].1)
                        }
                    })
                    .collect()
            })
            .collect()
    };
    EdgeCosts {
        right: table(&cols_last, &cols_first),
        below: table(&rows_last, &rows_first),
    }
}

/// Finds `order` (output tile `i` shows input tile `order[i]`) minimising the total edge cost
/// of the restored grid. Exact branch and bound up to 9 tiles; beyond that, the best greedy
/// placement over every starting tile, refined by pairwise swaps.
pub fn solve(img: &RgbImage, rows: u32, cols: u32) -> Vec<u32> {
    let n = (rows * cols) as usize;
    if n <= 1 || img.width() / cols < 1 || img.height() / rows < 1 {
        return (0..n as u32).collect();
    }
    let costs = edge_costs(img, rows, cols);
    let placed_cost = |placed: &[usize], pos: usize, tile: usize| {
        let (r, c) = (pos / cols as usize, pos % cols as usize);
        let mut s = 0.0;
        if c > 0 {
            s += costs.right[placed[pos - 1]][tile];
        }
        if r > 0 {
            s += costs.below[placed[pos - cols as usize]][tile];
        }
        s
    };
    let best = if n <= 9 {
        let mut best = (f64::INFINITY, Vec::new());
        let mut placed = Vec::with_capacity(n);
        let mut used = vec![false; n];
        branch(&mut placed, &mut used, 0.0, &mut best, &placed_cost);
        best.1
    } else {
        let total = |order: &[usize]| (0..n).map(|p| placed_cost(order, p, order[p])).sum::<f64>();
        let mut best: Option<(f64, Vec<usize>)> = None;
        for start in 0..n {
            let mut placed = vec![start];
            let mut used = vec![false; n];
            used[start] = true;
            for pos in 1..n {
                let next = (0..n)
                    .filter(|&t| !used[t])
                    .min_by(|&a, &b| {
                        placed_cost(&placed, pos, a).total_cmp(&placed_cost(&placed, pos, b))
                    })
                    .expect("a tile is left for every position");
                used[next] = true;
                placed.push(next);
            }
            let cost = total(&placed);
            if best.as_ref().is_none_or(|b| cost < b.0) {
                best = Some((cost, placed));
            }
        }
        let (mut cost, mut order) = best.expect("n > 0");
        let mut improved = true;
        while improved {
            improved = false;
            for i in 0..n {
                for j in i + 1..n {
                    order.swap(i, j);
                    let c = total(&order);
                    if c + 1e-9 < cost {
                        cost = c;
                        improved = true;
                    } else {
                        order.swap(i, j);
                    }
                }
            }
        }
        order
    };
    best.into_iter().map(|t| t as u32).collect()
}

fn branch(
    placed: &mut Vec<usize>,
    used: &mut [bool],
    cost: f64,
    best: &mut (f64, Vec<usize>),
    placed_cost: &dyn Fn(&[usize], usize, usize) -> f64,
) {
    let n = used.len();
    if placed.len() == n {
        if cost < best.0 {
            *best = (cost, placed.clone());
        }
        return;
    }
    let pos = placed.len();
    for t in 0..n {
        if used[t] {
            continue;
        }
        let c = cost + placed_cost(placed, pos, t);
        if c >= best.0 {
            continue;
        }
        used[t] = true;
        placed.push(t);
        branch(placed, used, c, best, placed_cost);
        placed.pop();
        used[t] = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A smooth two-way gradient with a diagonal stripe: every tile edge is distinctive.
    fn scene(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let stripe = if (x + y) % 40 < 6 { 90 } else { 0 };
            Rgb([
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x * y) % 97 + stripe) as u8,
            ])
        })
    }

    #[test]
    fn permute_then_inverse_restores() {
        let img = scene(90, 60);
        let order = [4, 2, 0, 5, 1, 3];
        let shuffled = permute(&img, 2, 3, &order);
        assert_ne!(shuffled, img);
        assert_eq!(permute(&shuffled, 2, 3, &inverse(&order)), img);
    }

    #[test]
    fn the_grid_is_read_from_the_seams() {
        for (rows, cols) in [(2u32, 3u32), (4, 4), (3, 5), (4, 8), (1, 4)] {
            let n = rows * cols;
            // Reversed: no tile keeps a true neighbour on its right or below.
            let order: Vec<u32> = (0..n).rev().collect();
            let shuffled = permute(&scene(cols * 48, rows * 48), rows, cols, &order);
            assert_eq!(
                detect_grid(&shuffled, 8),
                Some((rows, cols)),
                "{rows}x{cols} {order:?}"
            );
        }
        // Never shuffled: no cut shows.
        assert_eq!(detect_grid(&scene(200, 120), 8), None);
    }

    #[test]
    fn solver_restores_small_and_large_grids() {
        for (rows, cols, order) in [
            (2u32, 2u32, vec![3u32, 0, 2, 1]),
            (3, 3, vec![8, 3, 1, 6, 0, 4, 2, 7, 5]),
            (3, 4, vec![11, 5, 2, 8, 0, 9, 4, 1, 10, 3, 7, 6]),
        ] {
            let img = scene(cols * 40, rows * 40);
            let shuffled = permute(&img, rows, cols, &order);
            let found = solve(&shuffled, rows, cols);
            assert_eq!(permute(&shuffled, rows, cols, &found), img, "{rows}x{cols}");
        }
    }
}
