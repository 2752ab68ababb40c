//! Sidecar overhead of the drop-in proxy, measured side by side against an instant mock upstream
//! on loopback: direct-to-mock versus through `etchr serve --upstream-url`.
//!
//! - Text passthrough at 500 and 1000 requests/s with an open-loop generator (requests fire on a
//!   fixed schedule whatever the latency; latency counts from the scheduled instant, so queueing
//!   is not hidden). Default 10 s per run on these 2-core machines (the issue asks for 30 s; set
//!   `ETCHR_BENCH_SECS=30`).
//! - A 1.5 MB body: a text request passed through byte for byte; a 1.5 MB image passed through
//!   (`x-etchr-strategy: passthrough`: forwarded byte for byte, going upstream while it arrives),
//!   side by side with a second sidecar that reads such bodies whole first
//!   (`reason.early_forward_bytes = 0`); and the same image through the loop with
//!   `max_steps: 0` (decode, one upstream call carrying the re-encoded image).
//!
//! The open-loop runs go A-B-B-A (direct, ETCHR, ETCHR, direct; half the time each) so that drift
//! in the shared machine's load does not favour either side.
//!
//! Overhead = through-ETCHR latency − direct latency at the same percentile; the server's own
//! `x-etchr-overhead-ms` header is reported too. Results: `bench/out/proxy-overhead.json`.
//! Run: `cargo bench --bench proxy_overhead`.

use base64::Engine;
use etchr_testkit::{MockUpstream, Reply, Script};
use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

/// `etchr serve` in front of `upstream`, logging errors only, to /dev/null; `extra` are more
/// `--set KEY=VALUE` settings.
fn start_etchr(upstream: &str, extra: &[&str]) -> (common::Server, String) {
    let mut args = vec![
        "--provider",
        "vllm",
        "--upstream-url",
        upstream,
        "--upstream-model",
        "mock-model",
        "--set",
        "limits.body_limit_bytes=67108864",
    ];
    for kv in extra {
        args.extend(["--set", kv]);
    }
    let server =
        common::Server::start_with(&args, &[("RUST_LOG", "error")], Some("/dev/null".as_ref()));
    let base = format!("{}/v1", server.base);
    (server, base)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Run {
    latencies_ms: Vec<f64>,
    server_overhead_ms: Vec<f64>,
    ok: usize,
    sent: usize,
}

impl Run {
    /// Both halves of an A-B-B-A schedule as one run.
    fn merge(mut self, other: Run) -> Run {
        self.latencies_ms.extend(other.latencies_ms);
        self.server_overhead_ms.extend(other.server_overhead_ms);
        self.latencies_ms.sort_by(f64::total_cmp);
        self.server_overhead_ms.sort_by(f64::total_cmp);
        self.ok += other.ok;
        self.sent += other.sent;
        self
    }
}

/// Fires `rate` requests/s for `secs` seconds on a fixed schedule.
async fn open_loop(
    client: &reqwest::Client,
    url: &str,
    body: &'static [u8],
    rate: u32,
    secs: u64,
) -> Run {
    let total = rate as u64 * secs;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(at).await;
        let (client, url) = (client.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let (ok, overhead) = match r {
                Ok(resp) => {
                    let o = resp
                        .headers()
                        .get("x-etchr-overhead-ms")
                        .and_then(|v| v.to_str().ok()?.parse::<f64>().ok());
                    let ok = resp.status().is_success() && resp.bytes().await.is_ok();
                    (ok, o)
                }
                Err(_) => (false, None),
            };
            (ok, at.elapsed().as_secs_f64() * 1000.0, overhead)
        }));
    }
    let mut run = Run {
        latencies_ms: Vec::new(),
        server_overhead_ms: Vec::new(),
        ok: 0,
        sent: total as usize,
    };
    for t in tasks {
        let (ok, ms, o) = t.await.unwrap();
        if ok {
            run.ok += 1;
            run.latencies_ms.push(ms);
        }
        run.server_overhead_ms.extend(o);
    }
    run.latencies_ms.sort_by(f64::total_cmp);
    run.server_overhead_ms.sort_by(f64::total_cmp);
    run
}

async fn sequential(client: &reqwest::Client, url: &str, body: &'static [u8], n: usize) -> Run {
    sequential_with(client, url, body, n, None, None).await
}

/// How a client on a slower link than loopback sends its body: `chunk` bytes every `gap`.
#[derive(Clone, Copy)]
struct Pace {
    chunk: usize,
    gap: Duration,
}

/// `body` as a stream paced by `pace` (with its length declared, as clients do).
fn paced_body(body: &'static [u8], pace: Pace) -> reqwest::Body {
    let chunks = futures_util::stream::iter(body.chunks(pace.chunk).enumerate()).then(
        move |(i, c)| async move {
            if i > 0 {
                tokio::time::sleep(pace.gap).await;
            }
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(c))
        },
    );
    reqwest::Body::wrap_stream(chunks)
}

/// Sequential requests, optionally with one extra header.
async fn sequential_with(
    client: &reqwest::Client,
    url: &str,
    body: &'static [u8],
    n: usize,
    header: Option<(&str, &str)>,
    pace: Option<Pace>,
) -> Run {
    let mut run = Run {
        latencies_ms: Vec::new(),
        server_overhead_ms: Vec::new(),
        ok: 0,
        sent: n,
    };
    for _ in 0..n {
        let t = Instant::now();
        let mut rb = client.post(url).header("content-type", "application/json");
        rb = match pace {
            None => rb.body(body),
            Some(pace) => rb
                .header("content-length", body.len())
                .body(paced_body(body, pace)),
        };
        if let Some((k, v)) = header {
            rb = rb.header(k, v);
        }
        let resp = rb.send().await;
        if let Ok(resp) = resp {
            let o = resp
                .headers()
                .get("x-etchr-overhead-ms")
                .and_then(|v| v.to_str().ok()?.parse::<f64>().ok());
            if resp.status().is_success() && resp.bytes().await.is_ok() {
                run.ok += 1;
                run.latencies_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            run.server_overhead_ms.extend(o);
        }
    }
    run.latencies_ms.sort_by(f64::total_cmp);
    run.server_overhead_ms.sort_by(f64::total_cmp);
    run
}

/// `n` sequential requests to each side, in rounds of 10 taking turns, so that drift in the
/// machine's load falls on every side alike. Each side is a URL and an optional extra header.
async fn interleaved(
    client: &reqwest::Client,
    sides: &[(&str, Option<(&str, &str)>)],
    body: &'static [u8],
    n: usize,
    pace: Option<Pace>,
) -> Vec<Run> {
    let mut runs: Vec<Option<Run>> = sides.iter().map(|_| None).collect();
    for _ in 0..n.div_ceil(10) {
        for (run, (url, header)) in runs.iter_mut().zip(sides) {
            let r = sequential_with(client, url, body, 10, *header, pace).await;
            *run = Some(match run.take() {
                Some(prev) => prev.merge(r),
                None => r,
            });
        }
    }
    runs.into_iter().map(|r| r.expect("n > 0")).collect()
}

fn compare(name: &str, direct: &Run, etchr: &Run) -> serde_json::Value {
    let s = |r: &Run| {
        json!({
            "sent": r.sent, "ok": r.ok, "success_rate": r.ok as f64 / r.sent.max(1) as f64,
            "p50_ms": pct(&r.latencies_ms, 0.5), "p99_ms": pct(&r.latencies_ms, 0.99),
        })
    };
    let v = json!({
        "name": name,
        "direct": s(direct),
        "etchr": s(etchr),
        "overhead_p50_ms": pct(&etchr.latencies_ms, 0.5) - pct(&direct.latencies_ms, 0.5),
        "overhead_p99_ms": pct(&etchr.latencies_ms, 0.99) - pct(&direct.latencies_ms, 0.99),
        "server_reported_overhead_p50_ms": pct(&etchr.server_overhead_ms, 0.5),
        "server_reported_overhead_p99_ms": pct(&etchr.server_overhead_ms, 0.99),
    });
    println!("{v}");
    v
}

fn main() {
    let secs: u64 = std::env::var("ETCHR_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mock = MockUpstream::start(Script::always(Reply::chat("ok"))).await;
        mock.set_recording(false);
        let (_server, etchr) = start_etchr(&mock.base_url(), &[]);
        // The same sidecar reading large passthrough bodies whole before forwarding them.
        let (_whole_server, whole) =
            start_etchr(&mock.base_url(), &["reason.early_forward_bytes=0"]);
        let via_whole = format!("{whole}/chat/completions");
        let client = reqwest::Client::builder().pool_max_idle_per_host(2048).build().unwrap();
        let direct = format!("{}/chat/completions", mock.base_url());
        let via = format!("{etchr}/chat/completions");
        let text: &'static [u8] = Box::leak(
            json!({"model": "mock-model", "messages": [{"role": "user", "content": "hello"}]})
                .to_string()
                .into_bytes()
                .into_boxed_slice(),
        );
        // Warm both paths (connections, allocator).
        sequential(&client, &direct, text, 200).await;
        sequential(&client, &via, text, 200).await;
        let mut results = Vec::new();
        // A-B-B-A halves (direct, ETCHR, ETCHR, direct): drift in the machine's load over the
        // run (other tenants, frequency scaling) falls on both sides equally.
        let half = (secs / 2).max(1);
        for rate in [500u32, 1000] {
            let d1 = open_loop(&client, &direct, text, rate, half).await;
            let e1 = open_loop(&client, &via, text, rate, half).await;
            let e2 = open_loop(&client, &via, text, rate, half).await;
            let d2 = open_loop(&client, &direct, text, rate, half).await;
            let (d, e) = (d1.merge(d2), e1.merge(e2));
            results.push(compare(&format!("text passthrough {rate} rps x {} s", 2 * half), &d, &e));
        }
        let big_text: &'static [u8] = Box::leak(
            json!({"model": "mock-model", "messages": [{"role": "user", "content": "x".repeat(1_500_000)}]})
                .to_string().into_bytes().into_boxed_slice(),
        );
        let d = sequential(&client, &direct, big_text, 100).await;
        let e = sequential(&client, &via, big_text, 100).await;
        results.push(compare("1.5 MB text body passed through (sequential)", &d, &e));
        // A ~1.5 MB JPEG-sized payload: noise PNG of about that size.
        let mut img = image::RgbImage::new(720, 700);
        let mut seed = 1u32;
        for p in img.pixels_mut() {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *p = image::Rgb([(seed >> 24) as u8, (seed >> 16) as u8, (seed >> 8) as u8]);
        }
        let png = etchr_ops::encode_image(&img, etchr_ops::OutputFormat::Png).unwrap();
        let url = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&png));
        let big_image: &'static [u8] = Box::leak(
            json!({"model": "mock-model", "etchr": {"max_steps": 0}, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": url}}]}]})
                .to_string().into_bytes().into_boxed_slice(),
        );
        // Passthrough chosen by header, the body exactly what a plain OpenAI client sends.
        let plain_image: &'static [u8] = Box::leak(
            json!({"model": "mock-model", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what?"}, {"type": "image_url", "image_url": {"url": url}}]}]})
                .to_string().into_bytes().into_boxed_slice(),
        );
        let pass = Some(("x-etchr-strategy", "passthrough"));
        // Direct, through ETCHR as shipped (forwarding while the body arrives), and through
        // ETCHR reading the body whole first, taking turns.
        let sides = [(direct.as_str(), None), (via.as_str(), pass), (via_whole.as_str(), pass)];
        sequential_with(&client, &via_whole, plain_image, 10, pass, None).await;
        // At loopback speed, then from a client sending 64 KiB per millisecond (about 0.5 Gbit/s,
        // a remote backend), where the body takes longer to arrive than to forward.
        let paced = Pace { chunk: 64 << 10, gap: Duration::from_millis(1) };
        for (pace, how) in [(None, "loopback"), (Some(paced), "client paced at 64 KiB/ms")] {
            let [d, e, w]: [Run; 3] = interleaved(&client, &sides, plain_image, 100, pace)
                .await
                .try_into()
                .unwrap_or_else(|_| unreachable!("three sides"));
            for (via, name) in [
                (e, "1.5 MB image body passed through (passthrough mode, sequential"),
                (w, "1.5 MB image body passed through, read whole before forwarding (early_forward_bytes = 0"),
            ] {
                let mut v = compare(&format!("{name}, {how})"), &d, &via);
                v["image_bytes"] = json!(png.len());
                results.push(v);
            }
        }
        let d = sequential(&client, &direct, big_image, 30).await;
        let e = sequential(&client, &via, big_image, 30).await;
        let mut v = compare("1.5 MB image through the loop, max_steps 0 (sequential)", &d, &e);
        v["image_bytes"] = json!(png.len());
        results.push(v);
        let out = json!({
            "bench": "proxy_overhead",
            "machine": format!("{} cores", std::thread::available_parallelism().map_or(1, |n| n.get())),
            "seconds_per_rate": secs,
            "results": results,
        });
        std::fs::create_dir_all("bench/out").unwrap();
        std::fs::write("bench/out/proxy-overhead.json", serde_json::to_vec_pretty(&out).unwrap()).unwrap();
        println!("wrote bench/out/proxy-overhead.json");
    });
}
