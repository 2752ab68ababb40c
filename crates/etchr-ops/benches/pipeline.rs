//! The edit pipeline on a 12-megapixel JPEG: decode → crop + zoom ×2 + box + highlight →
//! PNG and JPEG encode, with the ops' time reported apart from decode and encode.
//!
//! `cargo bench -p etchr-ops --bench pipeline` writes the input to `bench/out/photo-12mp.jpg`
//! (so `bench/pillow_pipeline.py` runs the identical job) and the timings, as JSON, to
//! `bench/out/pipeline-rust.json` (`pipeline-rust-turbojpeg.json` with `--features turbojpeg`,
//! JPEG encoding through libjpeg-turbo). `bench/pipeline.sh` runs all three and prints the
//! comparison.

use etchr_ops::{
    decode_image, encode_image, render, DecodeLimits, OutputFormat, Program, RenderOptions,
};
use image::{Rgb, RgbImage};
use std::path::PathBuf;
use std::time::Instant;

/// The program both implementations run (Pillow's script mirrors it op for op).
const PROGRAM: &str = r##"[
  {"op":"crop","box":[1400,1000,2400,1750]},
  {"op":"zoom","factor":2,"filter":"bicubic"},
  {"op":"box","box":[1700,1200,2000,1400],"color":"#e61919","width":4},
  {"op":"highlight","box":[1700,1200,2000,1400],"mode":"dim","amount":0.6}
]"##;

const ITERATIONS: usize = 15;

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/out");
    std::fs::create_dir_all(&dir).expect("bench/out is writable");
    dir
}

/// A deterministic photo-like scene: smooth gradients, texture noise and hard-edged shapes, so
/// the JPEG has the entropy of a real photograph rather than of a flat test card.
fn scene(w: u32, h: u32) -> RgbImage {
    let mut state: u32 = 0x9E37_79B9;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state >> 24) as i32 - 128
    };
    RgbImage::from_fn(w, h, |x, y| {
        let base = [
            (x * 200 / w) as i32 + 30,
            (y * 180 / h) as i32 + 40,
            (((x + y) / 37) % 64) as i32 * 2 + 60,
        ];
        let shape = if ((x / 180) + (y / 140)) % 5 == 0 {
            70
        } else {
            0
        };
        let n = noise() / 10;
        Rgb(base.map(|v| (v + n + shape).clamp(0, 255) as u8))
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let path = out_dir().join("photo-12mp.jpg");
    if !path.exists() {
        let jpeg =
            encode_image(&scene(4000, 3000), OutputFormat::Jpeg(90)).expect("encode the input");
        std::fs::write(&path, jpeg).expect("write the input");
    }
    let bytes = std::fs::read(&path).expect("read the input");
    let program = Program::from_json(PROGRAM).expect("the bench program parses");
    let opts = RenderOptions::default();
    let limits = DecodeLimits::default();

    let (mut decode, mut ops, mut png, mut jpeg, mut total) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut sizes = (0, 0);
    for _ in 0..ITERATIONS {
        let t0 = Instant::now();
        let img = decode_image(&bytes, &limits).expect("decode");
        let t1 = Instant::now();
        let out = render(&img, &program, &opts).expect("render");
        let t2 = Instant::now();
        let p = encode_image(&out.views[0].image, OutputFormat::Png).expect("png");
        let t3 = Instant::now();
        let j = encode_image(&out.views[0].image, OutputFormat::Jpeg(90)).expect("jpeg");
        let t4 = Instant::now();
        sizes = (p.len(), j.len());
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        decode.push(ms(t0, t1));
        ops.push(ms(t1, t2));
        png.push(ms(t2, t3));
        jpeg.push(ms(t3, t4));
        total.push(ms(t0, t4));
    }
    let (decode, ops, png, jpeg, total) = (
        median(decode),
        median(ops),
        median(png),
        median(jpeg),
        median(total),
    );
    let codec = decode + png + jpeg;
    let (implementation, file) = if cfg!(feature = "turbojpeg") {
        ("etchr-ops + libjpeg-turbo", "pipeline-rust-turbojpeg.json")
    } else {
        ("etchr-ops", "pipeline-rust.json")
    };
    let report = serde_json::json!({
        "implementation": implementation,
        "input": "4000x3000 JPEG q90",
        "iterations": ITERATIONS,
        "median_ms": {"decode": decode, "ops": ops, "encode_png": png, "encode_jpeg": jpeg, "total": total},
        "ops_over_codec": ops / codec,
        "output_bytes": {"png": sizes.0, "jpeg": sizes.1},
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    std::fs::write(out_dir().join(file), report.to_string()).expect("write the report");
}
