//! Black-box tests of the `etchr` binary: a real server on port 0 edited over HTTP, and the
//! `edit`, `openapi` and config-error paths of the command line.

use etchr_ops::{decode_image, encode_image, DecodeLimits, OutputFormat, RgbImage};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

mod common;
use common::Server;

const BIN: &str = env!("CARGO_BIN_EXE_etchr");

fn png(w: u32, h: u32) -> Vec<u8> {
    let raw = (0..h)
        .flat_map(|y| (0..w).flat_map(move |x| [(x % 256) as u8, (y % 256) as u8, 90]))
        .collect();
    encode_image(&RgbImage::from_raw(w, h, raw).unwrap(), OutputFormat::Png).unwrap()
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!("etchr-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

#[test]
fn serve_edits_over_http() {
    let server = Server::start(&[]);
    let client = reqwest::blocking::Client::new();

    let health: Value = client
        .get(format!("{}/healthz", server.base))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(health["status"], "ok");

    // Crop 120x80 at (40, 20), then zoom 2x: a 240x160 view.
    let ops = r#"[{"op":"crop","box":[40,20,160,100]},{"op":"zoom","factor":2}]"#;
    let form = || {
        reqwest::blocking::multipart::Form::new()
            .part(
                "image",
                reqwest::blocking::multipart::Part::bytes(png(320, 200))
                    .file_name("in.png")
                    .mime_str("image/png")
                    .unwrap(),
            )
            .text("ops", ops)
    };
    let res = client
        .post(format!("{}/v1/edit", server.base))
        .multipart(form())
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    let v: Value = res.json().unwrap();
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(240), Some(160)),
        "{v}"
    );
    assert!(v["image"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));
    assert_eq!(
        v["ops"][0]["box"],
        serde_json::json!([40.0, 20.0, 160.0, 100.0])
    );

    // The same edit as raw PNG bytes.
    let res = client
        .post(format!("{}/v1/edit", server.base))
        .header("accept", "image/png")
        .multipart(form())
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let img = decode_image(&res.bytes().unwrap(), &DecodeLimits::default()).unwrap();
    assert_eq!(img.dimensions(), (240, 160));

    // Errors keep the OpenAI shape over the wire.
    let res = client
        .post(format!("{}/v1/edit", server.base))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().unwrap();
    assert_eq!(v["error"]["code"], "invalid_json");

    let metrics = client
        .get(format!("{}/metrics", server.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(metrics.contains("etchr_http_requests_total"), "{metrics}");

    // No ops, a question: the built-in editing model plans the program.
    use base64::Engine as _;
    let image = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png(320, 200))
    );
    let res = client
        .post(format!("{}/v1/edit", server.base))
        .json(&serde_json::json!({"image": image, "question": "What is the code on the tag?"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().unwrap();
    assert!(!v["ops"].as_array().unwrap().is_empty(), "{v}");
    assert!(v["timings_ms"]["plan"].is_number(), "{v}");
}

#[test]
fn edit_cli_plans_with_the_built_in_model() {
    let dir = TempDir::new("cli-plan");
    let out = dir.0.join("x.png");
    let output = Command::new(BIN)
        .arg("edit")
        .arg("--image")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/panel.jpg"))
        .args([
            "--question",
            "What is the code on the tag \"Pump 7\" of the purple square?",
        ])
        .arg("--out")
        .arg(&out)
        .env_remove("ETCHR_CONFIG")
        .env_remove("ETCHR_MODEL__PATH")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["planner"], "etchr-model:default", "{summary}");
    let ops = summary["ops"].as_array().unwrap();
    assert!(!ops.is_empty(), "a program was planned: {summary}");
    let program = summary["program"].as_str().unwrap();
    assert!(!program.is_empty(), "{summary}");
    assert!(summary["timings_ms"]["plan"].is_number());
    let img = decode_image(&std::fs::read(&out).unwrap(), &DecodeLimits::default()).unwrap();
    assert_eq!(
        (img.width() as u64, img.height() as u64),
        (
            summary["width"].as_u64().unwrap(),
            summary["height"].as_u64().unwrap()
        )
    );
}

#[test]
fn a_bad_model_path_is_a_clear_error() {
    let dir = TempDir::new("cli-model");
    let missing = dir.0.join("no-such-model");
    let output = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("ETCHR_CONFIG")
        .env("ETCHR_MODEL__PATH", &missing)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("listening"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-model"), "{stderr}");

    let input = dir.0.join("in.png");
    std::fs::write(&input, png(64, 64)).unwrap();
    let output = Command::new(BIN)
        .arg("edit")
        .arg("--image")
        .arg(&input)
        .args(["--question", "where?", "--model"])
        .arg(&missing)
        .arg("--out")
        .arg(dir.0.join("out.png"))
        .env_remove("ETCHR_CONFIG")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-model"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn sigterm_shuts_down_gracefully() {
    let mut server = Server::start(&[]);
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    // Bounded wait for the exit (not a timing assertion: generous on purpose).
    let mut exit = None;
    for _ in 0..600 {
        if let Some(s) = server.child.try_wait().unwrap() {
            exit = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let exit = exit.expect("etchr exits after SIGTERM");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn edit_cli_writes_a_png() {
    let dir = TempDir::new("cli-edit");
    let input = dir.0.join("in.png");
    let ops = dir.0.join("ops.json");
    let out = dir.0.join("out.png");
    std::fs::write(&input, png(200, 100)).unwrap();
    // norm1000: the left half, then a 2x zoom.
    std::fs::write(
        &ops,
        r#"[{"op":"crop","box":[0,0,500,1000]},{"op":"zoom","factor":2}]"#,
    )
    .unwrap();
    let output = Command::new(BIN)
        .arg("edit")
        .arg("--image")
        .arg(&input)
        .arg("--ops")
        .arg(&ops)
        .arg("--out")
        .arg(&out)
        .args(["--coords", "norm1000"])
        .env_remove("ETCHR_CONFIG")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one summary line: {stdout}"
    );
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        (summary["width"].as_u64(), summary["height"].as_u64()),
        (Some(200), Some(200))
    );
    assert!(summary["repairs"].is_array());
    assert!(summary["timings_ms"]["render"].is_number());
    let img = decode_image(&std::fs::read(&out).unwrap(), &DecodeLimits::default()).unwrap();
    assert_eq!(img.dimensions(), (200, 200));
}

#[test]
fn edit_cli_reports_bad_programs() {
    let dir = TempDir::new("cli-bad");
    let input = dir.0.join("in.png");
    let ops = dir.0.join("ops.json");
    std::fs::write(&input, png(20, 20)).unwrap();
    std::fs::write(&ops, r#"[{"op":"flip"},{"op":"zoom"}]"#).unwrap();
    let output = Command::new(BIN)
        .arg("edit")
        .arg("--image")
        .arg(&input)
        .arg("--ops")
        .arg(&ops)
        .arg("--out")
        .arg(dir.0.join("out.png"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("op 1"), "{stderr}");
}

#[test]
fn unknown_config_keys_stop_startup() {
    let dir = TempDir::new("cli-config");
    let cfg = dir.0.join("etchr.toml");
    std::fs::write(&cfg, "[limits]\nmax_pixelz = 10\n").unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_pixelz"), "{stderr}");
}

#[test]
fn openapi_subcommand_prints_the_committed_document() {
    let output = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap();
    assert!(printed.starts_with("openapi: 3."));
    assert_eq!(
        printed, committed,
        "openapi.yaml is stale: run `cargo run -- openapi > openapi.yaml`"
    );
}

#[test]
fn reason_cli_plans_with_the_model_unless_told_otherwise() {
    use etchr_testkit::{MockUpstream, Reply, Script};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Every call: "the edit helps" for the verifier, and an answer.
    let mock = runtime.block_on(MockUpstream::start(Script::always(Reply::chat(
        "Looks right. \\boxed{1}",
    ))));
    let dir = TempDir::new("cli-reason");
    let input = dir.0.join("in.png");
    std::fs::write(&input, png(256, 192)).unwrap();
    let run = |planner: Option<&str>| -> Value {
        let trace = dir.0.join("trace.json");
        let mut cmd = Command::new(BIN);
        cmd.arg("reason")
            .arg("--image")
            .arg(&input)
            .args(["--question", "What is the code on the tag?"])
            .args(["--strategy", "evr", "--provider", "vllm", "--upstream-url"])
            .arg(mock.base_url())
            .args(["--upstream-model", "m", "--trace"])
            .arg(&trace)
            .env_remove("ETCHR_CONFIG")
            .env_remove("ETCHR_MODEL__PATH")
            .env_remove("ETCHR_MODEL__ENABLED");
        if let Some(p) = planner {
            cmd.args(["--planner", p]);
        }
        let output = cmd.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap()
    };
    let trace = run(None);
    assert_eq!(trace["planner"], "etchr-model:default");
    let edited = trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["edit"]["planner"] == "etchr-model:default");
    assert!(edited, "the model planned an edit: {trace}");
    assert_eq!(run(Some("model"))["planner"], "etchr-model:default");
    assert_eq!(run(Some("tile-search"))["planner"], "tile_search");
    drop(runtime);
}

#[test]
fn eval_measures_the_shipped_model_by_default() {
    use etchr_testkit::{MockUpstream, Reply, Script};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(MockUpstream::start(Script::always(Reply::chat(
        "\\boxed{1}",
    ))));
    let dir = TempDir::new("cli-eval");
    let items = dir.0.join("items");
    etchr_data::write_set(Some(etchr_data::Family::FineGrained), 1, 4, &items).unwrap();
    let run = |planner: &str| -> Value {
        let out = dir.0.join(format!("out-{planner}"));
        let output = Command::new(BIN)
            .args(["eval", "--items"])
            .arg(&items)
            .args(["--upstream", &mock.base_url(), "--model", "m"])
            .args(["--conditions", "etchr", "--quiet", "--thumb-side", "0"])
            .args(["--planner", planner, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap()
    };
    let r = run("model");
    assert_eq!(r["meta"]["planner"], "etchr-model:default", "{}", r["meta"]);
    assert_eq!(r["summary"][0]["errors"], 0, "{}", r["summary"]);
    let r = run("tile-search");
    assert_eq!(r["meta"]["planner"], "tile_search");
    drop(runtime);
}
