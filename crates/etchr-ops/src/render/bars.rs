//! Bar charts, found from the pixels: runs of solid rectangles of one colour standing on one
//! baseline. A planner uses them to bet on the bar a question names by its place ("the third
//! bar from the left") or its height ("the tallest pink bar"), and then on the annotation
//! above it.

use super::colour::{NamedColour, PixelNames};
use super::pixels::{chroma, run_pieces_by, RunPieces};
use crate::geom::Rect;
use image::RgbImage;

/// Pixels less coloured than this are paper, ink or grid, never a bar.
const MIN_CHROMA: u8 = 40;
/// A bar fills at least this share of its box (a solid rectangle, JPEG edges allowed).
const MIN_FILL: f64 = 0.85;
/// A bar is at least this wide and tall, in pixels.
const MIN_SIDE: f64 = 4.0;
/// Bars of one chart stand on one baseline, give or take this many pixels.
const BASELINE_SLACK: f64 = 3.0;
/// A chart has at least this many bars.
const MIN_BARS: usize = 3;

/// The bars of one chart: one colour, one baseline, left to right.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    pub colour: NamedColour,
    pub bars: Vec<Rect>,
}

impl BarChart {
    /// The box around every bar.
    pub fn bounds(&self) -> Rect {
        self.bars
            .iter()
            .skip(1)
            .fold(self.bars[0], |b, r| b.union(r))
    }
}

/// The bar charts of `img`, largest first (by the number of bars).
pub fn bar_charts(img: &RgbImage) -> Vec<BarChart> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    // Each pixel's colour, or none for paper, ink and grid.
    let mut names = PixelNames::default();
    let class: Vec<Option<NamedColour>> = img
        .pixels()
        .map(|p| (chroma(p.0) >= MIN_CHROMA).then(|| names.of(p.0)))
        .collect();
    // The 4-connected patches of one colour, in the raster order of their first pixels.
    let RunPieces { runs, piece, count } = run_pieces_by(&class, w, h, false, Option::is_some);
    let mut patches = vec![(None, w, h, 0, 0, 0usize); count];
    for (&(y, a, b), &p) in runs.iter().zip(&piece) {
        let (colour, x0, y0, x1, y1, area) = &mut patches[p];
        *colour = class[y * w + a];
        (*x0, *y0, *x1, *y1) = ((*x0).min(a), (*y0).min(y), (*x1).max(b), y + 1);
        *area += b - a;
    }
    let mut rects: Vec<(NamedColour, Rect)> = Vec::new();
    for (colour, x0, y0, x1, y1, area) in patches {
        let r = Rect::new(x0 as f64, y0 as f64, x1 as f64, y1 as f64);
        if r.width() >= MIN_SIDE
            && r.height() >= MIN_SIDE
            && area as f64 >= MIN_FILL * r.width() * r.height()
        {
            rects.push((colour.expect("a patch has a colour"), r));
        }
    }
    let mut charts: Vec<BarChart> = Vec::new();
    for (colour, r) in rects {
        match charts
            .iter_mut()
            .find(|c| c.colour == colour && (c.bars[0].y1 - r.y1).abs() <= BASELINE_SLACK)
        {
            Some(chart) => chart.bars.push(r),
            None => charts.push(BarChart {
                colour,
                bars: vec![r],
            }),
        }
    }
    charts.retain(|c| c.bars.len() >= MIN_BARS && no_two_overlap_across(&c.bars));
    for c in &mut charts {
        c.bars.sort_by(|a, b| a.x0.total_cmp(&b.x0));
    }
    charts.sort_by_key(|c| std::cmp::Reverse(c.bars.len()));
    charts
}

/// Bars stand side by side: no two share a column of pixels (swatches of a legend, stacked one
/// above the other, do).
fn no_two_overlap_across(bars: &[Rect]) -> bool {
    bars.iter()
        .enumerate()
        .all(|(i, a)| bars[i + 1..].iter().all(|b| a.x1 <= b.x0 || b.x1 <= a.x0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn fill(img: &mut RgbImage, r: (u32, u32, u32, u32), c: [u8; 3]) {
        for y in r.1..r.3 {
            for x in r.0..r.2 {
                img.put_pixel(x, y, Rgb(c));
            }
        }
    }

    #[test]
    fn bars_on_one_baseline_make_a_chart_left_to_right() {
        let mut img = RgbImage::from_pixel(400, 300, Rgb([250, 250, 250]));
        let pink = [230, 90, 170];
        // Four pink bars on y = 250 (drawn out of order), a pink swatch elsewhere, and two
        // blue bars: too few for a chart.
        for (x, top) in [(200, 60), (40, 120), (120, 200), (280, 30)] {
            fill(&mut img, (x, top, x + 40, 250), pink);
        }
        fill(&mut img, (350, 10, 370, 20), pink);
        fill(&mut img, (20, 270, 40, 290), [31, 90, 200]);
        fill(&mut img, (60, 270, 80, 290), [31, 90, 200]);
        let charts = bar_charts(&img);
        assert_eq!(charts.len(), 1, "{charts:?}");
        assert_eq!(charts[0].colour, NamedColour::Pink);
        let lefts: Vec<f64> = charts[0].bars.iter().map(|b| b.x0).collect();
        assert_eq!(lefts, [40.0, 120.0, 200.0, 280.0]);
        assert_eq!(charts[0].bars[3], Rect::new(280.0, 30.0, 320.0, 250.0));
        assert_eq!(charts[0].bounds(), Rect::new(40.0, 30.0, 320.0, 250.0));
        // Nothing coloured: no chart.
        assert!(bar_charts(&RgbImage::from_pixel(50, 50, Rgb([0, 0, 0]))).is_empty());
    }
}
