//! `/v1/edit` over HTTP on loopback: single-request latency, then concurrency 16.
//!
//! Starts the real `etchr serve` binary on port 0 in its own process (so client and server do
//! not share a runtime), sends a 1024 × 1024 JPEG with crop + zoom ×2 + box + highlight, and
//! writes p50 / p99 / throughput to `bench/out/http-edit.json`.
//! Run: `cargo bench --bench http_edit`.

use base64::Engine;
use etchr_ops::{encode_image, OutputFormat};
use image::{Rgb, RgbImage};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SINGLE: usize = 100;
const CONCURRENCY: usize = 16;
const PER_WORKER: usize = 40;

#[path = "../tests/common/mod.rs"]
mod common;

/// `etchr serve`, logging errors only, to /dev/null (a bench's load must not fill a log pipe).
fn start_server() -> (common::Server, String) {
    let server =
        common::Server::start_with(&[], &[("RUST_LOG", "error")], Some("/dev/null".as_ref()));
    let base = server.base.clone();
    (server, base)
}

fn scene() -> RgbImage {
    RgbImage::from_fn(1024, 1024, |x, y| {
        let n = ((x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)) >> 7) % 40;
        Rgb([(x / 4) as u8, (y / 4) as u8, (100 + n) as u8])
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut ms: Vec<f64>, wall: Duration) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    serde_json::json!({
        "requests": ms.len(),
        "p50_ms": percentile(&ms, 0.5),
        "p99_ms": percentile(&ms, 0.99),
        "max_ms": ms[ms.len() - 1],
        "throughput_rps": ms.len() as f64 / wall.as_secs_f64(),
    })
}

async fn post(client: &reqwest::Client, url: &str, body: &Arc<String>) -> f64 {
    let t = Instant::now();
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.as_ref().clone())
        .send()
        .await
        .expect("send");
    assert!(resp.status().is_success(), "edit failed: {}", resp.status());
    let bytes = resp.bytes().await.expect("body");
    assert!(bytes.len() > 1000);
    t.elapsed().as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (_server, base) = start_server();
    let url = format!("{base}/v1/edit");
    let jpeg = encode_image(&scene(), OutputFormat::Jpeg(90)).expect("encode");
    let body = Arc::new(
        serde_json::json!({
            "image": format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(&jpeg)),
            "ops": [
                {"op": "crop", "box": [256, 256, 768, 768]},
                {"op": "zoom", "factor": 2},
                {"op": "box", "box": [400, 400, 600, 600], "width": 4},
                {"op": "highlight", "box": [400, 400, 600, 600]}
            ]
        })
        .to_string(),
    );
    let client = reqwest::Client::new();
    for _ in 0..10 {
        post(&client, &url, &body).await;
    }

    let t = Instant::now();
    let mut single = Vec::with_capacity(SINGLE);
    for _ in 0..SINGLE {
        single.push(post(&client, &url, &body).await);
    }
    let single = summary(single, t.elapsed());

    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut v = Vec::with_capacity(PER_WORKER);
            for _ in 0..PER_WORKER {
                v.push(post(&client, &url, &body).await);
            }
            v
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("worker"));
    }
    let concurrent = summary(all, t.elapsed());

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ratio = concurrent["p99_ms"].as_f64().unwrap() / single["p50_ms"].as_f64().unwrap();
    let report = serde_json::json!({
        "input": "1024x1024 JPEG, crop + zoom x2 + box + highlight, PNG response in JSON",
        "cores": cores,
        "single": single,
        "concurrency_16": concurrent,
        "p99_at_16_over_single_p50": ratio,
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/out");
    std::fs::create_dir_all(&out).expect("bench/out");
    std::fs::write(out.join("http-edit.json"), report.to_string()).expect("write the report");
}
