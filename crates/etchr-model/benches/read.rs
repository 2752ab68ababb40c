//! What reading a quoted key costs the planner, next to decoding the image: the committed
//! example panel (`examples/panel.jpg`, 2400 × 1600, 40 tags) read with the shipped glyph
//! classifier (`models/glyphs`): the text-line search (`text_lines`), cutting every line into
//! glyphs and classifying them in one batch (`read`), and the key search (`find_text`).
//!
//! `cargo bench -p etchr-model --bench read` prints the medians as JSON and writes them to
//! `bench/out/read-rust.json`.

use candle_core::Device;
use etchr_model::glyphs::{find_text, GlyphClassifier};
use etchr_ops::render::text_lines;
use etchr_ops::{decode_image, DecodeLimits};
use std::path::PathBuf;
use std::time::Instant;

const ITERATIONS: usize = 9;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let jpeg = std::fs::read(root.join("examples/panel.jpg")).expect("the example panel");
    let reader = GlyphClassifier::load(root.join("models/glyphs"), &Device::Cpu).expect("glyphs");
    let limits = DecodeLimits::default();
    let (mut decode, mut lines_ms, mut read_ms, mut find_ms) = (vec![], vec![], vec![], vec![]);
    let (mut lines_found, mut glyphs, mut found) = (0, 0, None);
    for _ in 0..ITERATIONS {
        let t0 = Instant::now();
        let img = decode_image(&jpeg, &limits).expect("decode");
        let t1 = Instant::now();
        let lines = text_lines(&img);
        let t2 = Instant::now();
        let read = reader.read(&img, &lines).expect("read");
        let t3 = Instant::now();
        found = find_text(&read, "Pump 7").map(|f| read[f.line].text());
        let t4 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        decode.push(ms(t0, t1));
        lines_ms.push(ms(t1, t2));
        read_ms.push(ms(t2, t3));
        find_ms.push(ms(t3, t4));
        lines_found = lines.len();
        glyphs = read.iter().map(|l| l.chars.len()).sum::<usize>();
    }
    let (decode, read) = (median(decode), median(read_ms));
    let report = serde_json::json!({
        "input": "examples/panel.jpg (2400x1600 JPEG, 40 tags)",
        "iterations": ITERATIONS,
        "lines": lines_found,
        "glyphs": glyphs,
        "key_line": found,
        "median_ms": {
            "decode": decode,
            "text_lines": median(lines_ms),
            "read": read,
            "find_text": median(find_ms),
        },
        "read_over_decode": read / decode,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/out");
    std::fs::create_dir_all(&dir).expect("bench/out is writable");
    std::fs::write(dir.join("read-rust.json"), report.to_string()).expect("write the report");
}
