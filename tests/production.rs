//! Production behaviour of the real binary: secrets never reach the logs, and SIGTERM drains
//! in-flight loops, flips readiness and flushes the trajectory log.

mod common;

use base64::Engine as _;
use common::Server;
use etchr_ops::{encode_image, OutputFormat, RgbImage};
use etchr_testkit::{MockUpstream, Reply, Script};
use serde_json::{json, Value};
use std::time::Duration;

const UPSTREAM_KEY: &str = "sk-upstream-SECRET-4f9c2a";
const CLIENT_KEY: &str = "etchr-client-SECRET-77b1";

fn data_url() -> String {
    let img = RgbImage::from_fn(48, 32, |x, y| image::Rgb([x as u8 * 5, y as u8 * 7, 90]));
    let png = encode_image(&img, OutputFormat::Png).unwrap();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("etchr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn post(base: &str, path: &str, body: Value, key: Option<&str>) -> (u16, String) {
    let mut req = reqwest::blocking::Client::new()
        .post(format!("{base}{path}"))
        .json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().expect("etchr answers");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_reach_the_logs() {
    // The upstream fails in every way the error paths log: auth, 5xx, garbage, then succeeds.
    let mock = MockUpstream::start(
        Script::queue([
            Reply::error(401, "invalid api key"),
            Reply::server_error(),
            Reply::garbage(),
            Reply::server_error(),
            Reply::garbage(),
            Reply::server_error(),
        ])
        .otherwise(Reply::chat("\\boxed{42}")),
    )
    .await;
    let dir = temp_dir("keys-log");
    let log = dir.join("etchr.log");
    let base_url = mock.base_url();
    let log_path = log.clone();
    let base = tokio::task::spawn_blocking(move || {
        let server = Server::start_with(
            &[
                "--upstream-url",
                &base_url,
                "--provider",
                "openai",
                "--upstream-model",
                "m",
                "--set",
                "model.enabled=false",
                "--log-format",
                "json",
            ],
            &[
                ("RUST_LOG", "trace"),
                ("ETCHR_UPSTREAM_KEY", UPSTREAM_KEY),
                ("ETCHR_API_KEYS", CLIENT_KEY),
            ],
            Some(&log_path),
        );
        let base = server.base.clone();
        let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(post(&base, "/v1/chat/completions", chat.clone(), Some(CLIENT_KEY)).0);
        }
        let reason = json!({"image": data_url(), "question": "q?", "strategy": "progressive", "max_steps": 0});
        statuses.push(post(&base, "/v1/reason", reason, Some(CLIENT_KEY)).0);
        // A wrong client key, and the right one sent the wrong way.
        statuses.push(post(&base, "/v1/reason", json!({}), Some("etchr-client-SECRET-wrong")).0);
        statuses.push(post(&base, "/v1/reason", json!({}), None).0);
        drop(server);
        (base, statuses)
    })
    .await
    .unwrap();
    let (_, statuses) = base;
    // Failures first (auth, 5xx, garbage; retried or not), then successes.
    assert_eq!(statuses[0], 502, "{statuses:?}");
    assert_eq!(statuses[7..], [200, 200, 401, 401], "{statuses:?}");
    // The upstream did get the key (so the test is not vacuous) ...
    let sent = mock.requests();
    let bearer = format!("Bearer {UPSTREAM_KEY}");
    assert!(sent
        .iter()
        .all(|r| r.header("authorization") == Some(bearer.as_str())));
    // ... and the trace-level log saw every request, but neither key.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().count() > 20,
        "the log is too short to prove anything:\n{text}"
    );
    assert!(text.contains("/v1/chat/completions"), "{text}");
    for secret in [UPSTREAM_KEY, CLIENT_KEY, "SECRET"] {
        let line = text.lines().find(|l| l.contains(secret));
        assert!(
            line.is_none(),
            "the log leaks {secret:?}: {}",
            line.unwrap()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_loops_and_flushes_the_trajectory_log() {
    let mock = MockUpstream::start(Script::always(
        Reply::chat("\\boxed{late}").delayed(Duration::from_millis(2500)),
    ))
    .await;
    let dir = temp_dir("drain");
    let traj = dir.join("trajectories");
    let server = Server::start(&[
        "--upstream-url",
        &mock.base_url(),
        "--provider",
        "vllm",
        "--upstream-model",
        "m",
        "--set",
        "model.enabled=false",
        "--set",
        "shutdown_grace_secs=1",
        "--set",
        &format!("reason.trajectory_dir={:?}", traj.display().to_string()),
    ]);
    let base = server.base.clone();
    let in_flight = {
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            let body = json!({"image": data_url(), "question": "q?", "strategy": "progressive", "max_steps": 0});
            post(&base, "/v1/reason", body, None)
        })
    };
    // The loop is in flight once the upstream has its request.
    while mock.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // During the grace period the process still answers, but is not ready.
    let readyz = format!("{base}/readyz");
    let mut saw_not_ready = false;
    for _ in 0..100 {
        match reqwest::get(&readyz).await {
            Ok(r) if r.status() == 503 => {
                saw_not_ready = true;
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(_) => break,
        }
    }
    assert!(saw_not_ready, "/readyz never answered 503 while draining");
    // The in-flight loop still completes.
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The process exits cleanly, and the run's record is in the log, whole.
    let mut server = server;
    let status = tokio::task::spawn_blocking(move || {
        let s = server.child.wait().unwrap();
        drop(server);
        s
    })
    .await
    .unwrap();
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(traj.join("trajectories.jsonl")).unwrap();
    let records: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("whole JSON lines"))
        .collect();
    assert_eq!(records.len(), 1, "{log}");
    assert_eq!(records[0]["id"], id.as_str());
    let _ = std::fs::remove_dir_all(&dir);
}
