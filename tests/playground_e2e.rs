//! The playground (`GET /` of `etchr serve`) end to end in headless Chromium: the real binary on
//! port 0 against scripted mock upstreams, driven by `tests/playground/e2e.mjs` (playwright-core,
//! pinned in `tests/playground/package-lock.json`) with Debian's `chromium`.
//!
//! The script uploads `examples/panel.jpg`, asks a question with the `evr` strategy, checks that
//! every step renders (the edited image, the program drawn over the original, the upstream's
//! text, the answer), downloads the trace, plans an edit through `/v1/edit`, pastes an image,
//! then opens the trajectory log the server just wrote, the downloaded trace and an `etchr eval`
//! report (made here against a mock) in the viewer and pages through its failures. Screenshots
//! are kept as artifacts in `target/playground-screenshots/`.
//!
//! Needs `node`, `tests/playground/node_modules` (`npm ci` there) and Chromium
//! (`ETCHR_CHROMIUM`, else `/usr/bin/chromium`). Without them the test prints SKIPPED and passes,
//! unless `ETCHR_REQUIRE_BROWSER=1` (set by `.ci/run`, which installs them) makes it fail.

use etchr_testkit::{MockUpstream, Reply, Script};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::Server;

const BIN: &str = env!("CARGO_BIN_EXE_etchr");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// What the browser run needs, or why it cannot run here.
fn browser() -> Result<(String, PathBuf), String> {
    let node = std::env::var("ETCHR_NODE").unwrap_or_else(|_| "node".into());
    let ok = Command::new(&node)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(format!("`{node}` is not runnable (set ETCHR_NODE)"));
    }
    let pw = Path::new(ROOT).join("tests/playground/node_modules/playwright-core/package.json");
    if !pw.is_file() {
        return Err(
            "tests/playground/node_modules is missing (run `npm ci` in tests/playground)".into(),
        );
    }
    let chromium = std::env::var_os("ETCHR_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        });
    match chromium {
        Some(p) if p.is_file() => Ok((node, p)),
        _ => Err(
            "Chromium is not installed (`apt-get install chromium`, or set ETCHR_CHROMIUM)".into(),
        ),
    }
}

/// The upstream the playground talks to: verifies every edit as helpful and reads the tag.
fn playground_script() -> Script {
    Script::from_fn(|req| {
        let body = req.body.to_string();
        if body.contains("Does the edited view help answer it?") {
            Reply::chat("The zoomed view shows the tag clearly. \\boxed{1}")
        } else {
            Reply::chat("The tag on the pump in the zoomed view reads PUMP 7.\n\\boxed{PUMP 7}")
        }
    })
}

/// The upstream `etchr eval` talks to: right when it is shown an edited view (two images), wrong
/// on the original alone, so `oracle` passes every item and `direct` fails every one.
fn eval_script(items: &Path) -> Script {
    let gold: HashMap<String, String> = etchr_data::read_set(items)
        .expect("the generated items read back")
        .into_iter()
        .map(|i| {
            let q = serde_json::to_string(&i.question).unwrap();
            (q.trim_matches('"').to_string(), i.answer)
        })
        .collect();
    Script::from_fn(move |req| {
        let body = req.body.to_string();
        let images = body.matches(r#""type":"image_url""#).count();
        let answer = gold
            .iter()
            .find(|(q, _)| body.contains(q.as_str()))
            .map(|(_, a)| a.as_str());
        match answer {
            Some(a) if images >= 2 => Reply::chat(&format!("I can read it now. \\boxed{{{a}}}")),
            _ => Reply::chat("Too small to read; my guess: \\boxed{ZZZZ}"),
        }
    })
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(ROOT).join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        Path::new(ROOT).join(target)
    };
    target.join("playground-screenshots")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_playground_runs_a_trace_and_views_logs_in_chromium() {
    let (node, chromium) = match browser() {
        Ok(b) => b,
        Err(why) => {
            if std::env::var("ETCHR_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
                panic!("ETCHR_REQUIRE_BROWSER=1 but the browser test cannot run: {why}");
            }
            eprintln!("SKIPPED: the playground browser test: {why}");
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();

    // An `etchr eval` report to open in the viewer: one item per family, two conditions.
    let items = tmp.path().join("items");
    etchr_data::write_set(None, 1, 4, &items).unwrap();
    let eval_mock = MockUpstream::start(eval_script(&items)).await;
    let eval_out = tmp.path().join("eval");
    let eval = {
        let mut cmd = Command::new(BIN);
        cmd.args(["eval", "--items"])
            .arg(&items)
            .args(["--upstream", &eval_mock.base_url(), "--model", "mock-vl"])
            .args(["--conditions", "direct,oracle", "--quiet"])
            .args(["--concurrency", "2", "--thumb-side", "128", "--out"])
            .arg(&eval_out)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        tokio::task::spawn_blocking(move || cmd.status().unwrap())
    }
    .await
    .unwrap();
    assert!(eval.success(), "etchr eval ran against the mock");
    assert!(eval_out.join("results.json").is_file());

    // The server the page runs against, logging trajectories for the viewer.
    let mock = MockUpstream::start(playground_script()).await;
    let traj = tmp.path().join("trajectories");
    let traj_set = format!("reason.trajectory_dir={}", traj.display());
    let upstream = mock.base_url();
    let server = Server::start(&[
        "--upstream-url",
        &upstream,
        "--provider",
        "vllm",
        "--upstream-model",
        "mock-vl",
        "--set",
        &traj_set,
    ]);

    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    for old in std::fs::read_dir(&shots).unwrap().flatten() {
        std::fs::remove_file(old.path()).ok();
    }
    let script = Path::new(ROOT).join("tests/playground/e2e.mjs");
    let mut cmd = Command::new(&node);
    cmd.arg(&script)
        .current_dir(Path::new(ROOT).join("tests/playground"))
        .env("ETCHR_BASE", &server.base)
        .env("ETCHR_CHROMIUM", &chromium)
        .env("ETCHR_IMAGE", Path::new(ROOT).join("examples/panel.jpg"))
        .env(
            "ETCHR_OPS",
            Path::new(ROOT).join("examples/zoom-on-pump-7.json"),
        )
        .env("ETCHR_TRAJ_DIR", &traj)
        .env("ETCHR_EVAL_DIR", &eval_out)
        .env("ETCHR_SHOTS", &shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("node starts");
        let mut stdout = String::new();
        let mut stderr = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .ok();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .ok();
        (child.wait().unwrap(), stdout, stderr)
    })
    .await
    .unwrap();
    drop(server);
    let (status, stdout, stderr) = out;
    println!("{stdout}");
    assert!(
        status.success() && stdout.lines().any(|l| l.trim() == "PLAYGROUND E2E OK"),
        "the browser script failed ({status}); screenshots in {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        shots.display()
    );

    // The page really drove the API against the mock: a verification and a reasoning call.
    assert!(
        mock.request_count() >= 2,
        "{} upstream calls",
        mock.request_count()
    );
    // The screenshots are kept as artifacts.
    for name in [
        "01-form.png",
        "02-reason-trace.png",
        "03-edit.png",
        "04-viewer-trajectory.png",
        "05-viewer-eval-failures.png",
        "trace.json",
    ] {
        let p = shots.join(name);
        assert!(
            p.metadata().is_ok_and(|m| m.len() > 0),
            "{} was written",
            p.display()
        );
    }
    // The downloaded trace is the /v1/reason response: steps, edited images, the answer.
    let trace: serde_json::Value =
        serde_json::from_slice(&std::fs::read(shots.join("trace.json")).unwrap()).unwrap();
    assert_eq!(trace["answer"], "PUMP 7");
    assert_eq!(trace["strategy"], "evr");
    assert!(trace["steps"].as_array().is_some_and(|s| s.len() >= 3));
    assert!(trace["images"][0]
        .as_str()
        .is_some_and(|u| u.starts_with("data:image/")));
    eprintln!("playground screenshots: {}", shots.display());
}
