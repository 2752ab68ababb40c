//! Each strategy end to end against the mock upstream, plus budgets, deadlines, retries,
//! fallback and the trajectory log.

use std::sync::Arc;
use std::time::Duration;

use etchr_ops::{encode_image, Op, OutputFormat, Rect, RgbImage};
use etchr_reason::trace::StepKind;
use etchr_reason::trajlog::{read_records, LOG_FILE};
use etchr_reason::{LoopConfig, ReasonRequest, Reasoner, Strategy, TrajectoryLog};
use etchr_testkit::{MockUpstream, Reply, Script};
use etchr_upstream::{ChatBackend, ErrorKind, HttpUpstream, RetryPolicy, UpstreamConfig};
use serde_json::{json, Value};

fn png(w: u32, h: u32) -> Vec<u8> {
    let raw = (0..h)
        .flat_map(|y| (0..w).flat_map(move |x| [(x % 256) as u8, (y % 256) as u8, 90]))
        .collect();
    encode_image(&RgbImage::from_raw(w, h, raw).unwrap(), OutputFormat::Png).unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        ..RetryPolicy::default()
    }
}

fn backend(mock: &MockUpstream) -> Arc<dyn ChatBackend> {
    let mut cfg = UpstreamConfig::from_url(&mock.base_url(), "vllm", None).unwrap();
    cfg.model = Some("mock-model".into());
    Arc::new(
        HttpUpstream::new(&cfg)
            .unwrap()
            .with_retry_policy(fast_retries()),
    )
}

fn reasoner(mock: &MockUpstream) -> Reasoner {
    Reasoner::new(backend(mock), LoopConfig::default())
}

fn request(strategy: Strategy) -> ReasonRequest {
    ReasonRequest {
        image: png(800, 600),
        question: "What is in the corner?".into(),
        strategy,
        request_id: Some("req-1".into()),
        ..Default::default()
    }
}

fn images_in(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|p| p["type"] == "image_url")
        .count()
}

#[tokio::test]
async fn evr_uses_the_edit_when_the_upstream_says_it_helps() {
    let mock = MockUpstream::start(Script::queue([
        Reply::chat("The zoomed view shows it. \\boxed{1}"),
        Reply::chat("It is a lamp. \\boxed{lamp}"),
    ]))
    .await;
    let out = reasoner(&mock).run(request(Strategy::Evr)).await.unwrap();
    let t = &out.trace;
    assert_eq!(t.answer, "lamp");
    assert_eq!(t.planner, "tile_search");
    let kinds: Vec<_> = t.steps.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, [StepKind::Edit, StepKind::Verify, StepKind::Reason]);
    assert_eq!(t.steps[1].helps, Some(true));
    let edit = t.steps[0].edit.as_ref().unwrap();
    assert_eq!(
        edit.image.sha256,
        etchr_reason::sha256_hex(&out.views[0].bytes)
    );
    assert!(
        edit.program_text.starts_with("crop"),
        "{}",
        edit.program_text
    );
    assert_eq!(t.usage.total_tokens, 30);
    let bodies = mock.bodies();
    assert_eq!(bodies.len(), 2);
    assert_eq!(images_in(&bodies[0]), 2);
    assert_eq!(images_in(&bodies[1]), 2, "the edit helps, so it is kept");
    let req = &mock.requests()[0];
    assert_eq!(req.header("x-request-id"), Some("req-1"));
    // Traces never carry payloads.
    let trace_json = serde_json::to_string(t).unwrap();
    assert!(!trace_json.contains("base64"));
}

#[tokio::test]
async fn evr_drops_an_unhelpful_edit() {
    let mock = MockUpstream::start(Script::queue([
        Reply::chat("\\boxed{0}"),
        Reply::chat("ANSWER: nothing"),
    ]))
    .await;
    let mut req = request(Strategy::Evr);
    req.max_steps = Some(1);
    let out = reasoner(&mock).run(req).await.unwrap();
    assert_eq!(out.trace.answer, "nothing");
    assert_eq!(out.trace.steps[1].helps, Some(false));
    assert_eq!(images_in(&mock.bodies()[1]), 1);
}

/// Crops a 100 × 100 square at the first spot along the top row that no avoided region
/// covers, and records what it was asked.
#[derive(Default)]
struct LooksElsewhere {
    asked: std::sync::Mutex<Vec<(Vec<Rect>, bool)>>,
    /// Cut the crops from a restored 2×2 jigsaw (`reframe`), not from the original.
    restored: bool,
}

impl etchr_reason::Planner for LooksElsewhere {
    fn name(&self) -> &str {
        "looks_elsewhere"
    }

    fn plan(
        &self,
        request: &etchr_reason::PlanRequest<'_>,
    ) -> Result<etchr_ops::Program, etchr_reason::PlanError> {
        self.asked.lock().unwrap().push((
            request.avoid.to_vec(),
            request.transform.steps.is_empty() && request.image.width() == 800,
        ));
        let x = (0..8)
            .map(|i| i as f64 * 100.0)
            .find(|x| {
                !request
                    .avoid
                    .iter()
                    .any(|r| r.x0 <= x + 50.0 && x + 50.0 <= r.x1)
            })
            .ok_or(etchr_reason::PlanError::Exhausted)?;
        let crop = Op::Crop {
            region: Rect::new(x, 0.0, x + 100.0, 100.0),
        };
        Ok(etchr_ops::Program(if self.restored {
            vec![
                Op::Jigsaw {
                    rows: 2,
                    cols: 2,
                    order: vec![3, 2, 1, 0],
                },
                Op::Reframe,
                crop,
            ]
        } else {
            vec![crop]
        }))
    }
}

#[tokio::test]
async fn evr_tries_another_candidate_away_from_a_rejected_one() {
    let mock = MockUpstream::start(Script::queue([
        Reply::chat("\\boxed{0}"),
        Reply::chat("\\boxed{1}"),
        Reply::chat("It is a lamp. \\boxed{lamp}"),
    ]))
    .await;
    let planner = Arc::new(LooksElsewhere::default());
    let out = reasoner(&mock)
        .with_planner(planner.clone())
        .run(request(Strategy::Evr))
        .await
        .unwrap();
    let t = &out.trace;
    assert_eq!(t.answer, "lamp");
    let kinds: Vec<_> = t.steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            StepKind::Edit,
            StepKind::Verify,
            StepKind::Edit,
            StepKind::Verify,
            StepKind::Reason
        ]
    );
    assert_eq!(t.steps[1].helps, Some(false));
    assert_eq!(t.steps[3].helps, Some(true));
    // The second candidate was planned on the original, away from the first crop.
    let asked = planner.asked.lock().unwrap().clone();
    assert_eq!(
        asked,
        [
            (vec![], true),
            (vec![Rect::new(0.0, 0.0, 100.0, 100.0)], true)
        ]
    );
    let second = t.steps[2].edit.as_ref().unwrap();
    assert_eq!(
        second.program.0,
        [Op::Crop {
            region: Rect::new(100.0, 0.0, 200.0, 100.0)
        }]
    );
    // The answer call carries the original and the accepted (second) edit only.
    let bodies = mock.bodies();
    assert_eq!(bodies.len(), 3);
    assert_eq!(images_in(&bodies[2]), 2);
    assert_eq!(out.views.len(), 2);
}

#[tokio::test]
async fn evr_stops_after_max_steps_candidates() {
    let mock = MockUpstream::start(Script::queue([
        Reply::chat("\\boxed{0}"),
        Reply::chat("\\boxed{0}"),
        Reply::chat("ANSWER: none"),
    ]))
    .await;
    let mut req = request(Strategy::Evr);
    req.max_steps = Some(2);
    let out = reasoner(&mock)
        .with_planner(Arc::new(LooksElsewhere::default()))
        .run(req)
        .await
        .unwrap();
    assert_eq!(out.trace.answer, "none");
    assert_eq!(out.trace.edits().count(), 2);
    assert_eq!(images_in(&mock.bodies()[2]), 1, "no edit helped");
}

#[tokio::test]
async fn a_rejected_crop_of_a_restored_view_is_avoided_where_it_was_named() {
    let mock = MockUpstream::start(Script::queue([
        Reply::chat("\\boxed{0}"),
        Reply::chat("\\boxed{1}"),
        Reply::chat("It is a lamp. \\boxed{lamp}"),
    ]))
    .await;
    let planner = Arc::new(LooksElsewhere {
        restored: true,
        ..Default::default()
    });
    let out = reasoner(&mock)
        .with_planner(planner.clone())
        .run(request(Strategy::Evr))
        .await
        .unwrap();
    assert_eq!(out.trace.answer, "lamp");
    // The first crop named [0, 0, 100, 100] of the restored image (in the shuffled original
    // it comes from the bottom-right tile): that is the region to avoid next.
    let asked = planner.asked.lock().unwrap().clone();
    assert_eq!(asked[1].0, [Rect::new(0.0, 0.0, 100.0, 100.0)]);
}

#[tokio::test]
async fn progressive_edits_between_reasoning_turns() {
    let mock = MockUpstream::start(Script::queue([
        Reply::chat("I need a closer look at the top left."),
        Reply::chat("Now I can see it: \\boxed{\\frac{1}{2}}"),
    ]))
    .await;
    let out = reasoner(&mock)
        .run(request(Strategy::Progressive))
        .await
        .unwrap();
    let t = &out.trace;
    assert_eq!(t.answer, "\\frac{1}{2}");
    assert!(!t.forced_final);
    let edit = t.edits().next().unwrap();
    assert_eq!(
        edit.context.as_deref(),
        Some("I need a closer look at the top left.")
    );
    let second = &mock.bodies()[1];
    assert_eq!(images_in(second), 2);
    assert_eq!(second["messages"][1]["role"], "assistant");
}

#[tokio::test]
async fn max_steps_ends_with_one_forced_answer_call() {
    let mock = MockUpstream::start(Script::always(Reply::chat("still looking"))).await;
    let mut req = request(Strategy::Progressive);
    req.max_steps = Some(2);
    let out = reasoner(&mock).run(req).await.unwrap();
    let t = &out.trace;
    assert!(t.forced_final);
    assert_eq!(t.stop_reason, "max_steps");
    assert_eq!(t.edits().count(), 2);
    assert_eq!(t.calls(), 4, "3 reasoning turns and 1 forced answer");
    assert_eq!(t.steps.last().unwrap().kind, StepKind::Final);
    assert_eq!(t.answer, "still looking");
    let last = mock.bodies().pop().unwrap();
    let text = last["messages"].as_array().unwrap().last().unwrap()["content"].to_string();
    assert!(text.contains("final answer"), "{text}");
    // images_per_call (4) holds: original + 2 edits.
    assert!(images_in(&last) <= 4);
}

#[tokio::test]
async fn tools_maps_norm1000_boxes_to_original_pixels() {
    let mock = MockUpstream::start(Script::queue([
        Reply::tool_call(
            "edit_image",
            json!({"image": 0, "ops": [{"op": "crop", "box": [250, 500, 750, 1000]}, {"op": "zoom", "factor": 2}]}),
            Some("let me zoom"),
        ),
        Reply::chat("A red square. \\boxed{red}"),
    ]))
    .await;
    let r = reasoner(&mock);
    assert_eq!(
        r.upstream().profile().box_convention,
        etchr_upstream::BoxConvention::Norm1000
    );
    let out = r.run(request(Strategy::Tools)).await.unwrap();
    let t = &out.trace;
    assert_eq!(t.answer, "red");
    assert_eq!(t.planner, "upstream_tools");
    let edit = t.edits().next().unwrap();
    assert_eq!(edit.planner, "upstream_tools");
    assert_eq!(
        edit.program.0[0],
        Op::Crop {
            region: Rect::new(200.0, 300.0, 600.0, 600.0)
        }
    );
    assert_eq!((edit.image.width, edit.image.height), (800, 600));
    let bodies = mock.bodies();
    assert_eq!(bodies[0]["tools"][0]["function"]["name"], "edit_image");
    let msgs = bodies[1]["messages"].as_array().unwrap();
    let roles: Vec<_> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "user"]);
    assert_eq!(msgs[2]["tool_call_id"], "call_0");
    assert_eq!(msgs[1]["reasoning_content"], "let me zoom");
    assert_eq!(images_in(&bodies[1]), 2);
}

#[tokio::test]
async fn a_slow_upstream_hits_the_deadline_with_a_clear_error() {
    let mock = MockUpstream::start(Script::always(
        Reply::chat("late").delayed(Duration::from_secs(5)),
    ))
    .await;
    let cfg = LoopConfig {
        deadline: Duration::from_millis(300),
        ..LoopConfig::default()
    };
    let err = Reasoner::new(backend(&mock), cfg)
        .run(request(Strategy::Evr))
        .await
        .unwrap_err();
    assert!(err.is_deadline(), "{err:?}");
}

#[tokio::test]
async fn upstream_500s_are_retried_then_reported() {
    let mock = MockUpstream::start(Script::faulty(
        2,
        Reply::server_error(),
        Reply::chat("\\boxed{0}"),
    ))
    .await;
    let out = reasoner(&mock).run(request(Strategy::Evr)).await.unwrap();
    assert_eq!(out.trace.steps[1].call.as_ref().unwrap().attempts, 3);

    let mock = MockUpstream::start(Script::always(Reply::server_error())).await;
    let err = reasoner(&mock)
        .run(request(Strategy::Evr))
        .await
        .unwrap_err();
    match err {
        etchr_reason::ReasonError::Upstream(e) => {
            assert_eq!(e.kind, ErrorKind::Api);
            assert_eq!(e.status, Some(500));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_failing_upstream_falls_back() {
    let bad = MockUpstream::start(Script::always(Reply::server_error())).await;
    let good = MockUpstream::start(Script::always(Reply::chat("\\boxed{1}"))).await;
    let mut cfg = UpstreamConfig::from_url(&bad.base_url(), "vllm", None).unwrap();
    cfg.model = Some("m".into());
    cfg.max_retries = 0;
    let mut fb = UpstreamConfig::from_url(&good.base_url(), "vllm", None).unwrap();
    fb.name = Some("backup".into());
    fb.model = Some("m".into());
    cfg.fallback = vec![fb];
    let backend = etchr_upstream::build(&cfg).unwrap();
    let out = Reasoner::new(backend, LoopConfig::default())
        .run(request(Strategy::Evr))
        .await
        .unwrap();
    assert_eq!(out.trace.steps[1].call.as_ref().unwrap().upstream, "backup");
    assert_eq!(out.trace.answer, "1");
}

#[tokio::test]
async fn explicit_ops_are_the_planner() {
    let mock = MockUpstream::start(Script::queue([
        Reply::chat("\\boxed{1}"),
        Reply::chat("\\boxed{ok}"),
    ]))
    .await;
    let mut req = request(Strategy::Evr);
    req.ops = Some(etchr_ops::Program(vec![Op::Crop {
        region: Rect::new(10.0, 10.0, 110.0, 60.0),
    }]));
    let out = reasoner(&mock).run(req).await.unwrap();
    assert_eq!(out.trace.planner, "explicit_ops");
    assert_eq!(out.views[0].info.width, 100);
}

#[tokio::test]
async fn trajectory_log_survives_a_torn_record() {
    let dir = std::env::temp_dir().join(format!("etchr-trajlog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mock = MockUpstream::start(Script::always(Reply::chat("\\boxed{1}"))).await;
    let r = reasoner(&mock);
    let out = r.run(request(Strategy::Evr)).await.unwrap();
    {
        let log = TrajectoryLog::open(&dir).unwrap();
        log.append(&out).unwrap();
    }
    // A crash mid-append: half a record, no newline.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join(LOG_FILE))
        .unwrap();
    f.write_all(b"{\"version\":1,\"id\":\"torn").unwrap();
    drop(f);
    assert_eq!(
        read_records(&dir).unwrap().len(),
        1,
        "readers skip the torn tail"
    );
    let log = TrajectoryLog::open(&dir).unwrap();
    log.append(&out).unwrap();
    let records = read_records(&dir).unwrap();
    assert_eq!(records.len(), 2);
    for rec in &records {
        assert_eq!(rec.question, "What is in the corner?");
        assert!(dir.join(&rec.original_image).is_file());
        let edit = rec.steps.iter().find(|s| s.program.is_some()).unwrap();
        assert!(dir.join(edit.image.as_ref().unwrap()).is_file());
        assert_eq!(rec.answer, "1");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Proposes a `path` between two rooms a wall separates: it validates, but only the renderer
/// finds that no route exists.
struct WalledPath;

impl etchr_reason::Planner for WalledPath {
    fn name(&self) -> &str {
        "walled_path"
    }

    fn plan(
        &self,
        _request: &etchr_reason::PlanRequest<'_>,
    ) -> Result<etchr_ops::Program, etchr_reason::PlanError> {
        Ok(
            // Starts deep inside the wall below: nothing to walk from.
            etchr_ops::Program::from_json(r#"[{"op":"path","from":[100,50],"to":[180,50]}]"#)
                .unwrap(),
        )
    }
}

#[tokio::test]
async fn a_planned_program_that_does_not_render_costs_the_edit_not_the_run() {
    let mock = MockUpstream::start(Script::queue([Reply::chat("ANSWER: 7")])).await;
    let raw = (0..100u32)
        .flat_map(|_| (0..200u32).flat_map(|x| [if (60..140).contains(&x) { 0 } else { 255 }; 3]))
        .collect();
    let walled = RgbImage::from_raw(200, 100, raw).unwrap();
    let mut req = request(Strategy::Evr);
    req.image = encode_image(&walled, OutputFormat::Png).unwrap();
    let out = reasoner(&mock)
        .with_planner(Arc::new(WalledPath))
        .run(req)
        .await
        .unwrap();
    assert_eq!(out.trace.answer, "7");
    let error = out.trace.steps[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("does not render"), "{error}");
    assert_eq!(images_in(&mock.bodies()[0]), 1);
}
