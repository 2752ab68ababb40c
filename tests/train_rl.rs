//! `etchr train rl` through the real binary: a tiny two-step run rewarded through a mock
//! upstream, then the same run resumed to four steps; and the no-upstream path.

use etchr_testkit::{MockUpstream, Reply, Script};
use std::path::Path;
use std::process::{Command, Output};

fn etchr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etchr"))
        .args(args)
        .output()
        .expect("the etchr binary runs")
}

fn lines(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn tiny_args<'a>(out: &'a str, steps: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "rl",
        "--tiny",
        "--out",
        out,
        "--steps",
        steps,
        "--families",
        "orientation,fine_grained",
        "--train-items",
        "2",
        "--val-items",
        "2",
        "--items-per-step",
        "2",
        "--group-size",
        "2",
        "--checkpoint-every",
        "1",
        "--eval-every",
        "2",
        "--quiet",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_rl_tiny_with_a_mock_upstream_and_resume() {
    let mock = MockUpstream::start(Script::always(Reply::chat("\\boxed{NOPE1}"))).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap().to_string();
    let url = mock.base_url();
    let run = |steps: &'static str, resume: bool| {
        let (out, url) = (out.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            let mut a = tiny_args(&out, steps);
            a.extend(["--upstream", &url, "--upstream-model", "mock"]);
            if resume {
                a.push("--resume");
            }
            etchr(&a)
        })
    };
    let o = run("2", false).await.unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("downstream reward"), "{err}");
    assert!(mock.request_count() > 0, "the reward asked the upstream");
    let m = lines(dir.path());
    let train: Vec<_> = m.iter().filter(|l| l["kind"] == "train").collect();
    assert_eq!(train.len(), 2);
    for l in &train {
        // The mock never answers right: the downstream half of the reward is 0.
        assert_eq!(l["reward_answer"], 0.0, "{l}");
        assert_eq!(l["samples"], 4);
    }
    let eval: Vec<_> = m.iter().filter(|l| l["kind"] == "eval").collect();
    assert_eq!(eval.len(), 1);
    assert_eq!(eval[0]["pass1"], 0.0);
    assert!(dir.path().join("final/model.safetensors").is_file());
    let cache = std::fs::read_to_string(dir.path().join("reward_cache.jsonl")).unwrap();
    assert!(cache.lines().count() > 0);

    let o = run("4", true).await.unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("resumed from"), "{err}");
    let steps: Vec<u64> = lines(dir.path())
        .iter()
        .filter(|l| l["kind"] == "train")
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4]);
    mock.shutdown().await;
}

#[test]
fn train_rl_without_an_upstream_rewards_edits_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = etchr(&tiny_args(out, "2"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("no --upstream"), "{err}");
    let m = lines(dir.path());
    assert_eq!(m.iter().filter(|l| l["kind"] == "train").count(), 2);
    assert!(m
        .iter()
        .all(|l| l["reward_answer"].is_null() && l["pass1"].is_null()));
    // Progressive rollouts need the upstream's reasoning.
    let o = etchr(&[
        "train",
        "rl",
        "--tiny",
        "--out",
        dir.path().join("p").to_str().unwrap(),
        "--rollout",
        "progressive",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs --upstream"));
    // Without --tiny or --resume, the Stage 1 weights must be named.
    let o = etchr(&[
        "train",
        "rl",
        "--out",
        dir.path().join("q").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--init-from"));
}
