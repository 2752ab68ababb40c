//! Geometric and photometric pixel operations on whole views.

use crate::program::{Axis, EnhanceMode, Filter};
use fast_image_resize::{
    images::Image as FirImage, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
};
use image::{imageops, Rgb, RgbImage};

/// Integer pixel bounds `(x, y, w, h)` clipped to the image.
pub type PixelBox = (u32, u32, u32, u32);

/// How coloured a pixel is: its largest channel minus its smallest.
pub fn chroma([r, g, b]: [u8; 3]) -> u8 {
    r.max(g).max(b) - r.min(g).min(b)
}

/// A pixel's brightness (Rec. 601 weights), rounded down.
pub fn luma([r, g, b]: [u8; 3]) -> u8 {
    ((299 * r as u32 + 587 * g as u32 + 114 * b as u32) / 1000) as u8
}

/// The 4-connected neighbours of raster index `i` in a `w × h` image.
pub fn neighbours(i: usize, w: usize, h: usize) -> impl Iterator<Item = usize> {
    let (x, y) = (i % w, i / w);
    [
        (x > 0).then(|| i - 1),
        (x + 1 < w).then(|| i + 1),
        (y > 0).then(|| i - w),
        (y + 1 < h).then(|| i + w),
    ]
    .into_iter()
    .flatten()
}

/// Disjoint sets of `0..n` (union-find with path halving): the pieces, blobs or runs a search
/// joins into larger things. A set is named by its smallest member.
pub struct DisjointSets(Vec<usize>);

impl DisjointSets {
    pub fn new(n: usize) -> Self {
        Self((0..n).collect())
    }

    /// The smallest member of `i`'s set.
    pub fn root(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }

    pub fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.root(a), self.root(b));
        self.0[ra.max(rb)] = ra.min(rb);
    }
}

/// The connected pieces of a `w × h` mask, found as runs of set pixels along rows: each run is
/// united with the runs of the row above that touch it (sharing a column, or only a corner too
/// when `corners`). Every pixel is read once, in memory order, where a flood fill from pixel to
/// pixel jumps about the mask and keeps a mask of its own.
pub struct RunPieces {
    /// Every run: its row and its columns `a..b`, in raster order.
    pub runs: Vec<(usize, usize, usize)>,
    /// The piece of each run, pieces numbered in the raster order of their first pixels.
    pub piece: Vec<usize>,
    /// How many pieces there are.
    pub count: usize,
}

/// The pieces of the set pixels of `mask` (see [`RunPieces`]).
pub fn run_pieces(mask: &[bool], w: usize, h: usize, corners: bool) -> RunPieces {
    run_pieces_by(mask, w, h, corners, |&set| set)
}

/// [`run_pieces`] of a raster of labels: the runs are of one label that `counts`, and a run
/// joins only the runs above of the same label (the patches of one colour class, say).
pub fn run_pieces_by<T: PartialEq>(
    cells: &[T],
    w: usize,
    h: usize,
    corners: bool,
    counts: impl Fn(&T) -> bool,
) -> RunPieces {
    let mut runs = Vec::new();
    let mut row_start = Vec::with_capacity(h + 1);
    for (y, row) in cells.chunks_exact(w.max(1)).take(h).enumerate() {
        row_start.push(runs.len());
        let mut x = 0;
        while let Some(skip) = row[x..].iter().position(&counts) {
            let a = x + skip;
            x = a + row[a..].iter().position(|c| *c != row[a]).unwrap_or(w - a);
            runs.push((y, a, x));
        }
    }
    row_start.push(runs.len());
    // Runs `a..b` and `c..d` on neighbouring rows touch when they share a column, or, with
    // corners, when one ends just before the other starts.
    let reach = usize::from(corners);
    let label = |(y, a, _): (usize, usize, usize)| &cells[y * w + a];
    let mut sets = DisjointSets::new(runs.len());
    for y in 1..row_start.len() - 1 {
        let above = row_start[y - 1]..row_start[y];
        let mut k = above.start;
        for r in row_start[y]..row_start[y + 1] {
            let (_, a, b) = runs[r];
            // Runs above that end too soon for this one end too soon for the later ones too.
            while k < above.end && runs[k].2 + reach <= a {
                k += 1;
            }
            let mut j = k;
            while j < above.end && runs[j].1 < b + reach {
                if label(runs[j]) == label(runs[r]) {
                    sets.union(r, j);
                }
                j += 1;
            }
        }
    }
    let mut number = vec![usize::MAX; runs.len()];
    let mut count = 0;
    let piece = (0..runs.len())
        .map(|r| {
            let root = sets.root(r);
            if number[root] == usize::MAX {
                number[root] = count;
                count += 1;
            }
            number[root]
        })
        .collect();
    RunPieces { runs, piece, count }
}

pub fn crop(img: &RgbImage, (x, y, w, h): PixelBox) -> RgbImage {
    imageops::crop_imm(img, x, y, w, h).to_image()
}

pub fn resize(img: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    if (width, height) == img.dimensions() {
        return img.clone();
    }
    let alg = match filter {
        Filter::Nearest => ResizeAlg::Nearest,
        Filter::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
        Filter::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
        Filter::Lanczos => ResizeAlg::Convolution(FilterType::Lanczos3),
    };
    let src = fast_image_resize::images::ImageRef::new(
        img.width(),
        img.height(),
        img.as_raw(),
        PixelType::U8x3,
    )
    .expect("an RgbImage buffer is a valid U8x3 image");
    let mut dst = FirImage::new(width, height, PixelType::U8x3);
    Resizer::new()
        .resize(&src, &mut dst, &ResizeOptions::new().resize_alg(alg))
        .expect("same pixel type on both sides");
    RgbImage::from_raw(width, height, dst.into_vec()).expect("buffer sized for the destination")
}

/// Rotates counter-clockwise by a multiple of 90° (`quarter` in 0..4), losslessly.
pub fn rotate_quarter(img: &RgbImage, quarter: u32) -> RgbImage {
    match quarter % 4 {
        0 => img.clone(),
        1 => imageops::rotate270(img),
        2 => imageops::rotate180(img),
        _ => imageops::rotate90(img),
    }
}

/// Fills a `width × height` view by bilinear sampling of `img` at `to_src(view point)`.
pub fn warp(
    img: &RgbImage,
    width: u32,
    height: u32,
    to_src: &crate::geom::Affine,
    fill: Rgb<u8>,
) -> RgbImage {
    let mut out = RgbImage::from_pixel(width, height, fill);
    let (w, h) = (img.width() as f64, img.height() as f64);
    let src = img.as_raw();
    let stride = img.width() as usize * 3;
    for (v, row) in out
        .as_mut()
        .chunks_exact_mut(width as usize * 3)
        .enumerate()
    {
        for (u, px) in row.chunks_exact_mut(3).enumerate() {
            let p = to_src.apply(crate::geom::Point::new(u as f64 + 0.5, v as f64 + 0.5));
            let (sx, sy) = (p.x - 0.5, p.y - 0.5);
            if sx < -0.5 || sy < -0.5 || sx > w - 0.5 || sy > h - 0.5 {
                continue;
            }
            let x0 = sx.floor().clamp(0.0, w - 1.0);
            let y0 = sy.floor().clamp(0.0, h - 1.0);
            let x1 = (x0 + 1.0).min(w - 1.0);
            let y1 = (y0 + 1.0).min(h - 1.0);
            let (fx, fy) = ((sx - x0).clamp(0.0, 1.0), (sy - y0).clamp(0.0, 1.0));
            let at =
                |x: f64, y: f64, c: usize| src[y as usize * stride + x as usize * 3 + c] as f64;
            for (c, out_c) in px.iter_mut().enumerate() {
                let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
                let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
                *out_c = (top * (1.0 - fy) + bottom * fy).round() as u8;
            }
        }
    }
    out
}

pub fn flip(img: &RgbImage, axis: Axis) -> RgbImage {
    match axis {
        Axis::Horizontal => imageops::flip_horizontal(img),
        Axis::Vertical => imageops::flip_vertical(img),
    }
}

/// A Gaussian blur of sigma `sigma`, computed at reduced resolution for large sigmas: the
/// result is indistinguishable for a background blur and costs a fraction of a full-size one.
pub fn blur(img: &RgbImage, sigma: f64) -> RgbImage {
    let k = (sigma / 2.0).floor().max(1.0);
    if k <= 1.0 {
        return imageproc::filter::gaussian_blur_f32(img, sigma as f32);
    }
    let (w, h) = img.dimensions();
    let (sw, sh) = (
        ((w as f64 / k).round() as u32).max(1),
        ((h as f64 / k).round() as u32).max(1),
    );
    let small = resize(img, sw, sh, Filter::Bilinear);
    let blurred = imageproc::filter::gaussian_blur_f32(&small, (sigma / k) as f32);
    resize(&blurred, w, h, Filter::Bilinear)
}

/// Darkens every pixel outside `inside` by `amount` (0–1).
pub fn dim_outside(img: &mut RgbImage, inside: PixelBox, amount: f64) {
    let keep = ((1.0 - amount.clamp(0.0, 1.0)) * 256.0).round() as u32;
    let (x0, y0, bw, bh) = inside;
    let (x1, y1) = (x0 + bw, y0 + bh);
    let w = img.width() as usize;
    for (y, row) in img.as_mut().chunks_exact_mut(w * 3).enumerate() {
        let y = y as u32;
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let x = x as u32;
            if y >= y0 && y < y1 && x >= x0 && x < x1 {
                continue;
            }
            for c in px {
                *c = ((*c as u32 * keep) >> 8) as u8;
            }
        }
    }
}

/// Copies `region` of `src` into the same place of `dst` (same size images).
pub fn copy_region(dst: &mut RgbImage, src: &RgbImage, (x, y, w, h): PixelBox) {
    let stride = dst.width() as usize * 3;
    for row in y as usize..(y + h) as usize {
        let a = row * stride + x as usize * 3;
        let b = a + w as usize * 3;
        dst.as_mut()[a..b].copy_from_slice(&src.as_raw()[a..b]);
    }
}

fn apply_lut(img: &mut RgbImage, region: PixelBox, lut: &[[u8; 256]; 3]) {
    let (x, y, w, h) = region;
    let stride = img.width() as usize * 3;
    for row in y as usize..(y + h) as usize {
        let a = row * stride + x as usize * 3;
        for px in img.as_mut()[a..a + w as usize * 3].chunks_exact_mut(3) {
            for c in 0..3 {
                px[c] = lut[c][px[c] as usize];
            }
        }
    }
}

fn lut_from(f: impl Fn(f64) -> f64) -> [u8; 256] {
    std::array::from_fn(|v| f(v as f64).round().clamp(0.0, 255.0) as u8)
}

fn histograms(img: &RgbImage, (x, y, w, h): PixelBox) -> [[u64; 256]; 3] {
    let mut hist = [[0u64; 256]; 3];
    let stride = img.width() as usize * 3;
    for row in y as usize..(y + h) as usize {
        let a = row * stride + x as usize * 3;
        for px in img.as_raw()[a..a + w as usize * 3].chunks_exact(3) {
            for c in 0..3 {
                hist[c][px[c] as usize] += 1;
            }
        }
    }
    hist
}

/// Applies a photometric adjustment to `region` of `img`.
pub fn enhance(img: &mut RgbImage, region: PixelBox, mode: EnhanceMode, amount: f64) {
    let count = (region.2 as u64 * region.3 as u64).max(1);
    match mode {
        EnhanceMode::Contrast => {
            let hist = histograms(img, region);
            let sum: u64 = hist
                .iter()
                .flat_map(|h| h.iter().enumerate().map(|(v, n)| v as u64 * n))
                .sum();
            let mean = sum as f64 / (3 * count) as f64;
            let lut = lut_from(|v| (v - mean) * amount + mean);
            apply_lut(img, region, &[lut; 3]);
        }
        EnhanceMode::Brightness => {
            let lut = lut_from(|v| v * amount);
            apply_lut(img, region, &[lut; 3]);
        }
        EnhanceMode::Gamma => {
            let lut = lut_from(|v| 255.0 * (v / 255.0).powf(amount));
            apply_lut(img, region, &[lut; 3]);
        }
        EnhanceMode::Invert => {
            let lut = lut_from(|v| 255.0 - v);
            apply_lut(img, region, &[lut; 3]);
        }
        EnhanceMode::Equalize => {
            let hist = histograms(img, region);
            let luts = hist.map(|h| {
                let mut cdf = [0u64; 256];
                let mut acc = 0;
                for (v, n) in h.iter().enumerate() {
                    acc += n;
                    cdf[v] = acc;
                }
                let min = cdf.iter().copied().find(|&c| c > 0).unwrap_or(0);
                let span = (count - min).max(1) as f64;
                lut_from(|v| (cdf[v as usize].saturating_sub(min)) as f64 * 255.0 / span)
            });
            apply_lut(img, region, &luts);
        }
        EnhanceMode::Grayscale => {
            let (x, y, w, h) = region;
            let stride = img.width() as usize * 3;
            for row in y as usize..(y + h) as usize {
                let a = row * stride + x as usize * 3;
                for px in img.as_mut()[a..a + w as usize * 3].chunks_exact_mut(3) {
                    let l =
                        (299 * px[0] as u32 + 587 * px[1] as u32 + 114 * px[2] as u32 + 500) / 1000;
                    px.fill(l as u8);
                }
            }
        }
        EnhanceMode::Sharpen => {
            let part = crop(img, region);
            let soft = imageproc::filter::gaussian_blur_f32(&part, 1.0);
            let mut sharp = part.clone();
            for ((s, p), b) in sharp
                .as_mut()
                .iter_mut()
                .zip(part.as_raw())
                .zip(soft.as_raw())
            {
                let v = *p as f64 + amount * (*p as f64 - *b as f64);
                *s = v.round().clamp(0.0, 255.0) as u8;
            }
            imageops::replace(img, &sharp, region.0 as i64, region.1 as i64);
        }
    }
}

/// Alpha-blends `color` into the pixels where `mask` is set (`mask` is row-major, one byte per
/// pixel).
pub fn tint(img: &mut RgbImage, mask: &[bool], color: Rgb<u8>, alpha: f64) {
    let a = (alpha.clamp(0.0, 1.0) * 256.0) as u32;
    for (px, &m) in img.as_mut().chunks_exact_mut(3).zip(mask) {
        if m {
            for c in 0..3 {
                px[c] = ((px[c] as u32 * (256 - a) + color[c] as u32 * a) >> 8) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each cell's piece by a flood fill through equal labels (0 is no label) from each unfilled
    /// labelled cell in raster order, pieces numbered in that order (`usize::MAX` off every
    /// piece): what [`run_pieces_by`] must agree with.
    fn pieces_by_flood_fill(cells: &[u8], w: usize, h: usize, corners: bool) -> Vec<usize> {
        let mut piece = vec![usize::MAX; cells.len()];
        let mut count = 0;
        for start in 0..cells.len() {
            if cells[start] == 0 || piece[start] != usize::MAX {
                continue;
            }
            piece[start] = count;
            let mut stack = vec![start];
            while let Some(i) = stack.pop() {
                let (x, y) = (i % w, i / w);
                for ny in y.saturating_sub(1)..(y + 2).min(h) {
                    for nx in x.saturating_sub(1)..(x + 2).min(w) {
                        let j = ny * w + nx;
                        let diagonal = nx != x && ny != y;
                        let joins = cells[j] == cells[i] && (corners || !diagonal);
                        if joins && piece[j] == usize::MAX {
                            piece[j] = count;
                            stack.push(j);
                        }
                    }
                }
            }
            count += 1;
        }
        piece
    }

    fn piece_of_each_cell(found: &RunPieces, w: usize, h: usize) -> Vec<usize> {
        let mut piece = vec![usize::MAX; w * h];
        for (&(y, a, b), &p) in found.runs.iter().zip(&found.piece) {
            piece[y * w + a..y * w + b].fill(p);
        }
        let pieces = piece
            .iter()
            .filter(|&&p| p != usize::MAX)
            .max()
            .map_or(0, |m| m + 1);
        assert_eq!(found.count, pieces);
        piece
    }

    proptest::proptest! {
        #[test]
        fn pieces_from_runs_are_the_flood_filled_pieces_numbered_alike(
            w in 0usize..24,
            h in 0usize..24,
            bits in proptest::collection::vec(0u8..6, 576),
            corners: bool,
        ) {
            // Three labels and none, and the mask of one label: runs, diagonal steps, rings,
            // holes, and pieces of different labels side by side.
            let cells: Vec<u8> = bits[..w * h].iter().map(|&v| v.saturating_sub(2)).collect();
            let found = run_pieces_by(&cells, w, h, corners, |&c| c != 0);
            proptest::prop_assert_eq!(
                piece_of_each_cell(&found, w, h),
                pieces_by_flood_fill(&cells, w, h, corners)
            );
            let mask: Vec<bool> = cells.iter().map(|&c| c == 1).collect();
            let ones: Vec<u8> = mask.iter().map(|&m| u8::from(m)).collect();
            proptest::prop_assert_eq!(
                piece_of_each_cell(&run_pieces(&mask, w, h, corners), w, h),
                pieces_by_flood_fill(&ones, w, h, corners)
            );
        }
    }

    #[test]
    fn quarter_rotation_moves_corners() {
        let mut img = RgbImage::new(4, 2);
        img.put_pixel(0, 0, Rgb([255, 0, 0]));
        let r = rotate_quarter(&img, 1); // counter-clockwise: top-left goes to bottom-left
        assert_eq!(r.dimensions(), (2, 4));
        assert_eq!(r.get_pixel(0, 3).0, [255, 0, 0]);
    }

    #[test]
    fn dim_keeps_the_inside() {
        let mut img = RgbImage::from_pixel(10, 10, Rgb([200, 200, 200]));
        dim_outside(&mut img, (2, 2, 3, 3), 0.5);
        assert_eq!(img.get_pixel(3, 3).0, [200, 200, 200]);
        assert_eq!(img.get_pixel(0, 0).0, [100, 100, 100]);
        assert_eq!(img.get_pixel(5, 3).0, [100, 100, 100]);
    }

    #[test]
    fn enhance_modes_map_values() {
        let mut img = RgbImage::from_pixel(4, 4, Rgb([100, 150, 200]));
        enhance(&mut img, (0, 0, 4, 4), EnhanceMode::Invert, 0.0);
        assert_eq!(img.get_pixel(1, 1).0, [155, 105, 55]);
        enhance(&mut img, (0, 0, 2, 4), EnhanceMode::Grayscale, 0.0);
        assert_eq!(img.get_pixel(0, 0).0, [114, 114, 114]);
        assert_eq!(
            img.get_pixel(3, 0).0,
            [155, 105, 55],
            "outside the region stays"
        );
    }

    #[test]
    fn warp_identity_is_exact() {
        let mut img = RgbImage::new(5, 5);
        img.put_pixel(2, 3, Rgb([9, 8, 7]));
        let out = warp(&img, 5, 5, &crate::geom::Affine::IDENTITY, Rgb([0, 0, 0]));
        assert_eq!(out, img);
    }
}
