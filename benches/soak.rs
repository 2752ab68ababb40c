//! Soak and fault test on loopback: sustained open-loop load through the reasoning loop while
//! the mock upstream injects 10 % HTTP 500s, 5 % timeouts and 5 % connection resets.
//!
//! Checks, per request: a correct answer (`42`, from the mock's `\boxed{42}`) or a clear
//! OpenAI-shaped error, within the client's deadline — never a hang, a malformed body or a
//! dropped connection. Over the run: the server's resident memory (sampled every second from
//! /proc) stays flat, and after a SIGTERM the trajectory log holds exactly one whole record per
//! successful loop (none lost, none torn).
//!
//! The editing model is off (`model.enabled=false`, the loop plans with `tile_search`): at these
//! rates on 2 cores the model's forward pass, not the sidecar, would be what is measured.
//!
//! Bounded: `ETCHR_SOAK_SECS` (default 300) at `ETCHR_SOAK_RPS` (default 200) requests/s.
//! Results: `bench/out/soak.json`. Run: `cargo bench --bench soak`.

use base64::Engine;
use etchr_testkit::{MockUpstream, Reply, Script};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the client allows a request: the server's request timeout plus transfer slack.
const CLIENT_DEADLINE: Duration = Duration::from_secs(20);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[path = "../tests/common/mod.rs"]
mod common;

/// `etchr serve --config CONFIG`, logging errors only, to /dev/null.
fn start_etchr(config: &Path) -> (common::Server, String) {
    let config = config.to_str().expect("a UTF-8 config path");
    let server = common::Server::start_with(
        &["--config", config],
        &[("RUST_LOG", "error")],
        Some("/dev/null".as_ref()),
    );
    let base = server.base.clone();
    (server, base)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The mock upstream's behaviour, drawn per call: 10 % 500, 5 % a reply slower than the
/// per-attempt timeout, 5 % a reset, otherwise a quick answer.
fn faulty_upstream() -> Script {
    let counter = AtomicU64::new(0);
    Script::from_fn(move |_| {
        // A fixed-seed sequence: the run is reproducible call for call.
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let roll = fastrand::Rng::with_seed(n).u32(0..100);
        match roll {
            0..=9 => Reply::server_error(),
            10..=14 => Reply::chat("\\boxed{42}").delayed(Duration::from_secs(3)),
            15..=19 => Reply::reset(),
            _ => Reply::chat("The code is \\boxed{42}").delayed(Duration::from_millis(5)),
        }
    })
}

fn image_data_url() -> String {
    let img = etchr_ops::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let png = etchr_ops::encode_image(&img, etchr_ops::OutputFormat::Png).unwrap();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

#[derive(Default)]
struct Tally {
    correct: u64,
    wrong_answer: u64,
    clear_errors: BTreeMap<String, u64>,
    unclear: Vec<String>,
    client_timeouts: u64,
    transport_errors: u64,
    latencies_ms: Vec<f64>,
    max_error_ms: f64,
}

async fn one(
    client: &reqwest::Client,
    base: &str,
    body: &Value,
    chat: bool,
) -> Result<(u16, Value), String> {
    let url = if chat {
        format!("{base}/v1/chat/completions")
    } else {
        format!("{base}/v1/reason")
    };
    let r = client
        .post(url)
        .json(body)
        .timeout(CLIENT_DEADLINE)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timeout".to_string()
            } else {
                format!("transport: {e}")
            }
        })?;
    let status = r.status().as_u16();
    let text = r.text().await.map_err(|e| {
        if e.is_timeout() {
            "timeout".to_string()
        } else {
            format!("transport: {e}")
        }
    })?;
    let v = serde_json::from_str(&text)
        .map_err(|_| format!("status {status}, not JSON: {text:.200}"))?;
    Ok((status, v))
}

fn answer_of(v: &Value, chat: bool) -> Option<String> {
    if chat {
        v["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
    } else {
        v["answer"].as_str().map(str::to_string)
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`, `cargo test --benches`
    }
    let secs: u64 = env_or("ETCHR_SOAK_SECS", 300);
    let rps: u64 = env_or("ETCHR_SOAK_RPS", 200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mock = MockUpstream::start(faulty_upstream()).await;
        let dir: PathBuf = std::env::temp_dir().join(format!("etchr-soak-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let traj = dir.join("trajectories");
        let config = dir.join("etchr.toml");
        std::fs::write(
            &config,
            format!(
                "shutdown_drain_secs = 30\n\
                 [limits]\nrequest_timeout_secs = 15\n\
                 [model]\nenabled = false\n\
                 [reason]\nstrategy = \"progressive\"\nmax_steps = 1\ndeadline_secs = 12.0\n\
                 trajectory_dir = {:?}\n\
                 [upstream]\nprovider = \"vllm\"\nbase_url = {:?}\nmodel = \"mock\"\n\
                 timeout_secs = 1.0\nmax_retries = 2\n",
                traj.display().to_string(),
                mock.base_url()
            ),
        )
        .unwrap();
        let (mut server, base) = start_etchr(&config);
        let pid = server.child.id();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .build()
            .unwrap();
        let image = image_data_url();
        let reason_body = Arc::new(json!({
            "image": image, "question": "What is the code on the tag?",
        }));
        let chat_body = Arc::new(json!({
            "model": "mock",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is the code on the tag?"},
                {"type": "image_url", "image_url": {"url": image}}
            ]}]
        }));

        let tally = Arc::new(Mutex::new(Tally::default()));
        let rss = Arc::new(Mutex::new(Vec::<(f64, u64)>::new()));
        let started = Instant::now();
        let sampler = {
            let rss = rss.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    match rss_kib(pid) {
                        Some(kib) => rss.lock().unwrap().push((started.elapsed().as_secs_f64(), kib)),
                        None => break,
                    }
                }
            })
        };
        let total = secs * rps;
        let period = Duration::from_secs_f64(1.0 / rps as f64);
        let mut handles = Vec::with_capacity(total as usize);
        eprintln!("soak: {total} requests at {rps}/s for {secs} s against {base}");
        for i in 0..total {
            let due = started + period * i as u32;
            tokio::time::sleep_until(due.into()).await;
            let chat = i % 5 == 4; // 80 % /v1/reason, 20 % chat completions
            let body = if chat { chat_body.clone() } else { reason_body.clone() };
            let (client, base, tally) = (client.clone(), base.clone(), tally.clone());
            handles.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let result = one(&client, &base, &body, chat).await;
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                let mut t = tally.lock().unwrap();
                match result {
                    Ok((200, v)) => {
                        t.latencies_ms.push(ms);
                        if answer_of(&v, chat).is_some_and(|a| a.contains("42")) {
                            t.correct += 1;
                        } else {
                            t.wrong_answer += 1;
                        }
                    }
                    Ok((status, v)) => {
                        t.max_error_ms = t.max_error_ms.max(ms);
                        match v["error"]["code"].as_str() {
                            Some(code) if !v["error"]["message"].as_str().unwrap_or("").is_empty() => {
                                *t.clear_errors.entry(format!("{status} {code}")).or_default() += 1;
                            }
                            _ => t.unclear.push(format!("{status}: {v}")),
                        }
                    }
                    Err(e) if e == "timeout" => t.client_timeouts += 1,
                    Err(e) => {
                        t.transport_errors += 1;
                        if t.unclear.len() < 20 {
                            t.unclear.push(e);
                        }
                    }
                }
            }));
            if i > 0 && i % (rps * 30) == 0 {
                eprintln!("soak: {} s, {} sent", started.elapsed().as_secs(), i);
            }
        }
        for h in handles {
            h.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        // Stop the server the way Kubernetes does, then audit the trajectory log.
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let exit = server.child.wait().unwrap();
        sampler.abort();
        let log = std::fs::read_to_string(traj.join("trajectories.jsonl")).unwrap_or_default();
        let mut records = 0u64;
        let mut torn = 0u64;
        for line in log.lines() {
            match serde_json::from_str::<Value>(line) {
                Ok(v) if v["id"].is_string() => records += 1,
                _ => torn += 1,
            }
        }
        let t = tally.lock().unwrap();
        let mut lat = t.latencies_ms.clone();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let rss = rss.lock().unwrap().clone();
        let window = |from: f64, to: f64| {
            let v: Vec<u64> = rss.iter().filter(|(s, _)| *s >= from && *s < to).map(|(_, k)| *k).collect();
            if v.is_empty() { f64::NAN } else { v.iter().sum::<u64>() as f64 / v.len() as f64 / 1024.0 }
        };
        let span = secs as f64;
        let early = window(span * 0.1, span * 0.3);
        let late = window(span * 0.8, span);
        let peak = rss.iter().map(|(_, k)| *k).max().unwrap_or(0) as f64 / 1024.0;
        let successes = t.correct + t.wrong_answer;
        let clear: u64 = t.clear_errors.values().sum();
        let report = json!({
            "requests": total,
            "rps_target": rps,
            "secs": secs,
            "elapsed_secs": elapsed,
            "correct_answers": t.correct,
            "wrong_answers": t.wrong_answer,
            "clear_errors": clear,
            "clear_errors_by_code": t.clear_errors,
            "unclear_responses": t.unclear.len(),
            "unclear_examples": t.unclear.iter().take(5).collect::<Vec<_>>(),
            "client_timeouts": t.client_timeouts,
            "transport_errors": t.transport_errors,
            "success_latency_ms": {"p50": pct(&lat, 0.5), "p99": pct(&lat, 0.99), "max": lat.last().copied().unwrap_or(f64::NAN)},
            "slowest_error_ms": t.max_error_ms,
            "rss_mib": {"early_mean": early, "late_mean": late, "peak": peak, "late_over_early": late / early},
            "trajectory_records": records,
            "torn_records": torn,
            "lost_records": successes as i64 - records as i64,
            "server_exit_ok": exit.success(),
        });
        let ok = t.wrong_answer == 0
            && t.unclear.is_empty()
            && t.client_timeouts == 0
            && t.transport_errors == 0
            && torn == 0
            && records == successes
            && exit.success();
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/out");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("soak.json"), serde_json::to_string_pretty(&report).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        drop(server);
        if !ok {
            eprintln!("soak: FAILED (see the report above)");
            std::process::exit(1);
        }
        eprintln!("soak: passed");
    });
}
