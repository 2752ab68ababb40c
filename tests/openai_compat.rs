//! Compatibility with the official `openai` Python package: a mock upstream, the real `etchr serve
//! --upstream-url` binary, and `tests/compat/openai_client.py` driving it (plain, streaming, with
//! an image). Skipped with a notice when the package is not importable; `.ci/run` installs it
//! into a venv and points `ETCHR_COMPAT_PYTHON` at that interpreter.

mod common;

use etchr_testkit::{MockUpstream, Reply, Script};
use std::process::{Command, Stdio};

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
    let upstream = mock.base_url();
    let server = common::Server::start(&["--upstream-url", &upstream, "--provider", "vllm"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/openai_client.py");
    let base = format!("{}/v1", server.base);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py).arg(script).arg(base).output().unwrap()
    })
    .await
    .unwrap();
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
