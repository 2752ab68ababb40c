//! Fitting a phone photo to a provider's limits: a 6000 × 4000 JPEG for Gemini (3072 px side),
//! so the image is decoded, downscaled to 3072 × 2048 and re-encoded.
//!
//! `cargo bench -p etchr-upstream --bench fit_image` times, in one run and interleaved, the
//! downscale as `fit_image` does it (the renderer's fast_image_resize, bilinear) against
//! `image`'s `resize` with a triangle filter (what it used before), then `fit_image` end to end.
//! Prints JSON and writes `bench/out/fit-image.json`.

use etchr_upstream::images::fit_image;
use etchr_upstream::Provider;
use image::RgbImage;
use std::time::Instant;

const ITERS: usize = 9;

/// Gradients, a checker of sharp edges and per-pixel noise: a JPEG of realistic size.
fn photo(w: u32, h: u32) -> RgbImage {
    let mut s = 0x9e37_79b9u32;
    RgbImage::from_fn(w, h, |x, y| {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let n = s >> 28;
        let edge = if (x / 131 + y / 89) % 2 == 0 { 50 } else { 0 };
        image::Rgb([
            ((x * 200 / w) + n + edge).min(255) as u8,
            ((y * 200 / h) + n * 2).min(255) as u8,
            ((((x + y) / 7) % 160) + n + edge / 2).min(255) as u8,
        ])
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let (w, h, nw, nh) = (6000, 4000, 3072, 2048);
    let img = photo(w, h);
    let jpeg = etchr_ops::encode_image(&img, etchr_ops::OutputFormat::Jpeg(90)).unwrap();
    let limits = Provider::Gemini.image_limits();
    let (mut ours, mut theirs, mut fit) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ITERS {
        let t = Instant::now();
        let a = etchr_ops::resize(&img, nw, nh, etchr_ops::program::Filter::Bilinear);
        ours.push(ms(t));
        let t = Instant::now();
        let b = image::imageops::resize(&img, nw, nh, image::imageops::FilterType::Triangle);
        theirs.push(ms(t));
        assert_eq!(a.dimensions(), b.dimensions());
        let t = Instant::now();
        let fitted = fit_image(&jpeg, &limits, &Default::default()).unwrap();
        fit.push(ms(t));
        assert_eq!((fitted.width, fitted.height), (nw, nh));
    }
    let (ours, theirs, fit) = (median(ours), median(theirs), median(fit));
    let report = serde_json::json!({
        "bench": "fit_image",
        "input": format!("{w}x{h} JPEG q90, {} bytes", jpeg.len()),
        "output": format!("{nw}x{nh} (Gemini limits)"),
        "iterations": ITERS,
        "resize_ms_median": {"fast_image_resize_bilinear": ours, "image_triangle": theirs},
        "resize_speedup": theirs / ours,
        "fit_image_ms_median": fit,
    });
    let text = serde_json::to_string_pretty(&report).unwrap();
    println!("{text}");
    let out = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/out");
    std::fs::create_dir_all(out).ok();
    std::fs::write(format!("{out}/fit-image.json"), text).ok();
}
