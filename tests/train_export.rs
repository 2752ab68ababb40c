//! `etchr train sft --tiny` → `etchr train export` (F16) → `etchr train metrics` through the real
//! binary: the shipping path for `models/default`.

use std::process::{Command, Output};

fn etchr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etchr"))
        .args(args)
        .output()
        .expect("the etchr binary runs")
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_trained_model_exports_to_f16_and_reports_held_out_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let shipped = dir.path().join("shipped");
    let (run_s, shipped_s) = (run.to_str().unwrap(), shipped.to_str().unwrap());
    ok(etchr(&[
        "train",
        "sft",
        "--tiny",
        "--out",
        run_s,
        "--steps",
        "2",
        "--train-items",
        "4",
        "--val-items",
        "2",
        "--families",
        "fine_grained,orientation",
        "--batch-size",
        "4",
        "--warmup",
        "1",
        "--eval-every",
        "2",
        "--checkpoint-every",
        "2",
        "--quiet",
    ]));
    let from = run.join("final");
    ok(etchr(&[
        "train",
        "export",
        "--from",
        from.to_str().unwrap(),
        "--out",
        shipped_s,
    ]));
    let size = |d: &std::path::Path| {
        std::fs::metadata(d.join("model.safetensors"))
            .unwrap()
            .len()
    };
    assert!(
        size(&shipped) * 10 < size(&from) * 6,
        "F16 halves the weights"
    );
    assert_eq!(
        std::fs::read(from.join("config.json")).unwrap(),
        std::fs::read(shipped.join("config.json")).unwrap()
    );
    let out = ok(etchr(&[
        "train",
        "metrics",
        "--model",
        shipped_s,
        "--seed",
        "77",
        "--items",
        "4",
        "--families",
        "fine_grained,orientation",
    ]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["decoded"], 8, "{report}");
    assert_eq!(report["validity"], 1.0, "{report}");
    assert!(report["mean_iou"].is_number() && report["coarse_mean_iou"].is_number());
    assert!(report["per_family"]["orientation"]["n"] == 4);
    // A directory without a model is a clear error.
    let bad = etchr(&["train", "export", "--from", shipped_s, "--out", shipped_s]);
    assert!(bad.status.success(), "re-exporting an F16 model works too");
    let missing = etchr(&["train", "metrics", "--model", run_s, "--seed", "1"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("loading"));
}
