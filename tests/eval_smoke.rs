//! CI smoke test of the offline benchmark, end to end: the reader emulator (bench/reader) on
//! port 0, one generated item per family, `etchr eval --conditions direct,oracle` through the
//! real binary. Asserts the report files and counts, not accuracy (OCR on a busy machine must
//! not make CI flaky) — except that the gold edit lets the reader read at least one item.
//!
//! Needs the reader's venv: `ETCHR_READER_PYTHON`, else `bench/.venv/bin/python`
//! (`bench/reader/setup.sh install`). Without it the test prints SKIPPED and passes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn reader_python() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let py = std::env::var_os("ETCHR_READER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("bench/.venv/bin/python"));
    let ok = Command::new(&py)
        .args(["-c", "import rapidocr_onnxruntime"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

/// The reader process; killed on drop so a failing assertion does not leak it.
struct Reader(Child);

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_reader(py: &Path) -> (Reader, String) {
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/reader/server.py");
    let mut child = Command::new(py)
        .arg(server)
        .args(["--port", "0", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the reader starts");
    let stdout = child.stdout.take().unwrap();
    let reader = Reader(child);
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the reader printed its port before exiting")
            .expect("readable stdout");
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            break addr.rsplit(':').next().unwrap().to_string();
        }
    };
    (reader, format!("http://127.0.0.1:{port}/v1"))
}

#[test]
fn eval_runs_end_to_end_with_the_reader() {
    let Some(py) = reader_python() else {
        eprintln!(
            "SKIPPED: the reader emulator is not installed (bench/reader/setup.sh install, \
             or set ETCHR_READER_PYTHON)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    etchr_data::write_set(None, 1, 4, dir.path()).unwrap();
    let (_reader, url) = start_reader(&py);
    let out = dir.path().join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_etchr"))
        .args(["eval", "--items"])
        .arg(dir.path())
        .args([
            "--upstream",
            &url,
            "--conditions",
            "direct,oracle",
            "--quiet",
        ])
        .args(["--concurrency", "2", "--thumb-side", "128", "--out"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());

    for f in ["results.json", "results.md", "report.html"] {
        assert!(out.join(f).is_file(), "{f} is written");
    }
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let items = r["items"].as_array().unwrap();
    assert_eq!(items.len(), 6, "one item per family");
    let summary = r["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 2);
    let mut oracle_correct = 0;
    for s in summary {
        assert_eq!(s["overall"]["n"], 6);
        assert_eq!(s["errors"], 0, "no condition failed: {s}");
        assert_eq!(s["calls_per_item"], 1.0);
        assert_eq!(s["families"].as_object().unwrap().len(), 6);
        if s["condition"] == "oracle" {
            oracle_correct = s["overall"]["correct"].as_u64().unwrap();
            assert!(s["mcnemar"]["p_value"].is_number());
        }
    }
    assert!(
        oracle_correct >= 1,
        "the gold edit made at least one item readable"
    );
    for i in items {
        assert_eq!(i["results"].as_array().unwrap().len(), 2);
    }
}
