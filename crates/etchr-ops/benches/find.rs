//! What the planner's pixel searches cost on a large original, next to decoding it: the
//! search for things of a named colour (`colour_regions`, run on every plan whose question
//! names a colour), the jigsaw seam grid (`jigsaw_grid`) and the ruled-table search
//! (`ruled_tables`, run on every plan for a table lookup question) and the text-line search
//! (`text_lines`, on every first plan of a question with a quoted key) and the bar-chart search
//! (`bar_charts`, for a chart question that names a bar), on a 4000 × 3000 board with 60 outlined
//! tags on a soft gradient (ten of them grey, the colour searched for).
//!
//! `cargo bench -p etchr-ops --bench find` prints the medians as JSON and writes them to
//! `bench/out/find-rust.json`.

use etchr_ops::render::{
    bar_charts, colour_regions, jigsaw_grid, ruled_tables, text_lines, NamedColour,
};
use etchr_ops::{decode_image, encode_image, DecodeLimits, OutputFormat};
use image::{Rgb, RgbImage};
use std::path::PathBuf;
use std::time::Instant;

const ITERATIONS: usize = 9;

/// A pastel gradient board with 60 outlined 130 × 28 tags in six pastel colours (ten each: a
/// colour marking more than twelve things names none).
fn board(w: u32, h: u32) -> RgbImage {
    let mut img = RgbImage::from_fn(w, h, |x, y| {
        let t = (x + y) as f32 / (w + h) as f32;
        Rgb([
            (236.0 - 20.0 * t) as u8,
            (230.0 - 8.0 * t) as u8,
            (214.0 + 16.0 * t) as u8,
        ])
    });
    let fills = [
        [205, 205, 205],
        [246, 190, 212],
        [186, 232, 186],
        [250, 228, 120],
        [186, 212, 246],
        [252, 252, 252],
    ];
    for k in 0..60u32 {
        let (x0, y0) = (200 + (k % 10) * 360, 200 + (k / 10) * 440);
        for y in y0..y0 + 28 {
            for x in x0..x0 + 130 {
                let edge = x == x0 || y == y0 || x == x0 + 129 || y == y0 + 27;
                let c = if edge {
                    [60, 60, 60]
                } else {
                    fills[(k % 6) as usize]
                };
                img.put_pixel(x, y, Rgb(c));
            }
        }
    }
    img
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let jpeg = encode_image(&board(4000, 3000), OutputFormat::Jpeg(90)).expect("encode");
    let limits = DecodeLimits::default();
    let (mut decode, mut colour, mut grid, mut tables, mut lines, mut bars) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut found = 0;
    for _ in 0..ITERATIONS {
        let t0 = Instant::now();
        let img = decode_image(&jpeg, &limits).expect("decode");
        let t1 = Instant::now();
        found = colour_regions(&img, NamedColour::Grey).len();
        let t2 = Instant::now();
        let _ = jigsaw_grid(&img, 8);
        let t3 = Instant::now();
        assert!(ruled_tables(&img).is_empty(), "the board has no table");
        let t4 = Instant::now();
        let _ = text_lines(&img);
        let t5 = Instant::now();
        let _ = bar_charts(&img);
        let t6 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        decode.push(ms(t0, t1));
        colour.push(ms(t1, t2));
        grid.push(ms(t2, t3));
        tables.push(ms(t3, t4));
        lines.push(ms(t4, t5));
        bars.push(ms(t5, t6));
    }
    let (decode, colour, grid, tables) =
        (median(decode), median(colour), median(grid), median(tables));
    let report = serde_json::json!({
        "input": "4000x3000 JPEG q90, 60 outlined tags",
        "iterations": ITERATIONS,
        "grey_tags_found": found,
        "median_ms": {
            "decode": decode,
            "colour_regions": colour,
            "jigsaw_grid": grid,
            "ruled_tables": tables,
            "text_lines": median(lines),
            "bar_charts": median(bars),
        },
        "colour_regions_over_decode": colour / decode,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/out");
    std::fs::create_dir_all(&dir).expect("bench/out is writable");
    std::fs::write(dir.join("find-rust.json"), report.to_string()).expect("write the report");
}
