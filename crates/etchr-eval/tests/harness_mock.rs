//! The whole harness against a scripted upstream (no reader needed): every condition runs, the
//! counts, the paired test and the report files come out as the script dictates.

use std::collections::HashMap;
use std::path::Path;

use clap::Parser;
use etchr_eval::{run_eval, Condition, EvalArgs, Results};
use etchr_testkit::{MockUpstream, Reply, Script};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: EvalArgs,
}

/// The texts and image count of a chat request.
fn shape(body: &serde_json::Value) -> (String, usize) {
    let mut text = String::new();
    let mut images = 0;
    for m in body["messages"].as_array().into_iter().flatten() {
        match &m["content"] {
            serde_json::Value::String(s) => text.push_str(s),
            serde_json::Value::Array(parts) => {
                for p in parts {
                    match p["type"].as_str() {
                        Some("text") => text.push_str(p["text"].as_str().unwrap_or("")),
                        Some("image_url") => images += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (text, images)
}

fn eval(dir: &Path, url: &str, conditions: &str) -> Results {
    let out = dir.join("out");
    let cli = Cli::parse_from([
        "eval",
        "--items",
        dir.to_str().unwrap(),
        "--upstream",
        url,
        "--model",
        "mock-vl",
        "--conditions",
        conditions,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--thumb-side",
        "96",
    ]);
    run_eval(cli.args).expect("the eval runs")
}

#[test]
fn every_condition_runs_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    etchr_data::write_set(None, 1, 3, dir.path()).unwrap();
    let items = etchr_data::read_set(dir.path()).unwrap();
    assert_eq!(items.len(), 6);
    let gold: HashMap<String, String> = items
        .iter()
        .map(|i| (i.question.clone(), i.answer.clone()))
        .collect();
    // The script answers right only when it sees more than the original (so every edit
    // condition beats direct), and always says an edit helps.
    let script = Script::from_fn(move |req| {
        let (text, images) = shape(&req.body);
        if text.contains("\\boxed{0}") {
            return Reply::chat("\\boxed{1}");
        }
        let answer = gold
            .iter()
            .find(|(q, _)| text.contains(q.as_str()))
            .map(|(_, a)| a.clone())
            .unwrap_or_default();
        if images >= 2 {
            Reply::chat(&format!("It reads \\boxed{{{answer}}}"))
        } else {
            Reply::chat("I cannot read it. \\boxed{}")
        }
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = rt.block_on(MockUpstream::start(script));
    let r = eval(
        dir.path(),
        &mock.base_url(),
        "direct,etchr,oracle,random,tiles",
    );

    assert_eq!(r.items.len(), 6);
    assert!(r.items.iter().all(|i| i.results.len() == 5));
    let by = |c: Condition| r.summary.iter().find(|s| s.condition == c).unwrap();
    assert_eq!(by(Condition::Direct).overall.correct, 0);
    for c in [
        Condition::Etchr,
        Condition::Oracle,
        Condition::Random,
        Condition::Tiles,
    ] {
        let s = by(c);
        assert_eq!((s.overall.n, s.overall.correct, s.errors), (6, 6, 0), "{c}");
        let m = s.mcnemar.unwrap();
        assert_eq!((m.b, m.c), (6, 0), "{c}");
        assert!((m.p_value - 2.0 / 64.0).abs() < 1e-12);
        assert_eq!(s.families.len(), 6);
    }
    // Calls per item: one each; the 2×2 tiles fit one call of 5 images; evr verifies and reasons.
    assert_eq!(by(Condition::Direct).calls_per_item, 1.0);
    assert_eq!(by(Condition::Tiles).calls_per_item, 1.0);
    assert_eq!(by(Condition::Tiles).images_per_item, 5.0);
    assert_eq!(by(Condition::Etchr).calls_per_item, 2.0);
    assert!(by(Condition::Oracle).pixels_per_item > by(Condition::Direct).pixels_per_item);

    let out = dir.path().join("out");
    for f in ["results.json", "results.md", "report.html"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let back: Results =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(back.items.len(), 6);
    assert_eq!(back.summary.len(), 5);
    assert_eq!(back.meta.model, "mock-vl");
    // Every thumbnail the report links to exists.
    for item in &r.items {
        let thumbs = item.thumb.iter().chain(
            item.results
                .iter()
                .flat_map(|c| c.views.iter().filter_map(|v| v.thumb.as_ref())),
        );
        for t in thumbs {
            assert!(out.join(t).is_file(), "{t}");
        }
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains(&r.items[0].id) && html.contains("id=mode"));
    rt.block_on(mock.shutdown());
}
