//! Compatibility with the official `openai` Python package: a mock upstream, the real `etchr serve
//! --upstream-url` binary, and `tests/compat/openai_client.py` driving it (plain, streaming, with
//! an image). Skipped with a notice when the package is not importable; `.ci/run` installs it
//! into a venv and points `ETCHR_COMPAT_PYTHON` at that interpreter.

use etchr_testkit::{MockUpstream, Reply, Script};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_etchr");

fn python() -> Option<String> {
    let py = std::env::var("ETCHR_COMPAT_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import openai"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_python_client_understands_etchr() {
    let Some(py) = python() else {
        eprintln!(
            "SKIPPED: the `openai` Python package is not importable (set ETCHR_COMPAT_PYTHON)"
        );
        return;
    };
    let mock = MockUpstream::start(Script::from_fn(|req| {
        let has_image = req.body.to_string().contains("image_url");
        let offers_client_tool = req.body["tools"].to_string().contains("get_weather");
        if offers_client_tool {
            Reply::tool_call("get_weather", serde_json::json!({"city": "Oslo"}), None)
        } else if req.body["stream"] == true {
            Reply::stream(&["Hello", " world"])
        } else if has_image {
            Reply::chat("\\boxed{1}")
        } else {
            Reply::chat("hello from mock")
        }
    }))
    .await;
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream-url"])
        .arg(mock.base_url())
        .args(["--provider", "vllm"])
        .env_remove("ETCHR_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("etchr starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("etchr prints its address").unwrap();
        if let Some(a) = line.strip_prefix("etchr listening on ") {
            break a.to_string();
        }
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/openai_client.py");
    let base = format!("http://{addr}/v1");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py).arg(script).arg(base).output().unwrap()
    })
    .await
    .unwrap();
    child.kill().ok();
    child.wait().ok();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
