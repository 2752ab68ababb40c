//! Stage 2 trainer: the GRPO update, the KL to the reference, downstream rewards through the real
//! loop against a mock upstream (with the reward cache), progressive episodes, and resume.

use candle_core::Device;
use etchr_data::Family;
use etchr_model::{Batch, EditingModel, TrainExample};
use etchr_ops::{OutputFormat, Program, RgbImage};
use etchr_testkit::{MockUpstream, Reply, Script};
use etchr_train::optim::AdamWParams;
use etchr_train::reward::{Downstream, Overlap, Query, RewardCache};
use etchr_train::rl::{
    build_items, rl_checkpoints, Env, EpisodeSpec, GrpoParams, RlItem, RlTrainer, Rollout,
};
use etchr_train::schedule::Schedule;
use etchr_train::{run_rl, ProductPlanner, RlArgs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The tests share two cores: running them one at a time keeps each one quick.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn grpo(k: usize) -> GrpoParams {
    GrpoParams {
        items_per_step: 2,
        group_size: k,
        temperature: 1.0,
        top_p: 1.0,
        ppo_epochs: 1,
        clip_eps: 0.2,
        kl_coef: 0.0,
        clip: 0.0,
        w_edit: 1.0,
        w_answer: 1.0,
        overlap: Overlap::Iou,
        size_std: 0.0,
        rollout: Rollout::Single,
        max_steps: 2,
    }
}

fn trainer(items: Vec<RlItem>, g: GrpoParams, lr: f64) -> RlTrainer {
    RlTrainer::new(
        EditingModel::tiny(3).unwrap(),
        EditingModel::tiny(3).unwrap(),
        items,
        Schedule {
            base_lr: lr,
            min_lr: lr,
            warmup_steps: 0,
            total_steps: 100,
        },
        AdamWParams {
            weight_decay: 0.0,
            ..Default::default()
        },
        g,
        5,
    )
    .unwrap()
}

fn items(n: usize) -> Vec<RlItem> {
    build_items(&[Family::FineGrained, Family::Orientation], 31, n).unwrap()
}

/// Sum of each example's choice log-probabilities under `model`.
fn seq_logprobs(model: &EditingModel, ex: &[TrainExample]) -> Vec<f32> {
    let batch = Batch::new(ex, model).unwrap();
    model
        .loss(&batch)
        .unwrap()
        .logprobs
        .sum(1)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Sampled programs (with their replay examples) for the trainer's first items.
fn sampled_examples(t: &mut RlTrainer) -> Vec<TrainExample> {
    let idx = t.items_at(0);
    t.rollout_single(&idx, 77, None)
        .unwrap()
        .into_iter()
        .flat_map(|e| e.calls)
        .filter_map(|c| c.example)
        .collect()
}

#[test]
fn grpo_update_moves_logprobs_with_the_advantage() {
    let _s = serial();
    let mut t = trainer(items(2), grpo(2), 1e-3);
    let ex = sampled_examples(&mut t);
    assert!(ex.len() >= 2, "sampled {}", ex.len());
    let one = vec![ex[0].clone()];
    let before = seq_logprobs(&t.policy, &one)[0];
    let s = t.update(&one, &[1.0]).unwrap();
    assert!(s.grad_norm > 0.0);
    let after = seq_logprobs(&t.policy, &one)[0];
    assert!(
        after > before,
        "a positive advantage raises the sample's log-probability: {before} -> {after}"
    );
    // And a negative one lowers it.
    let before = after;
    t.update(&one, &[-1.0]).unwrap();
    let after = seq_logprobs(&t.policy, &one)[0];
    assert!(after < before, "{before} -> {after}");
    assert_eq!(t.opt.t, 2);
}

#[test]
fn kl_is_zero_while_the_policy_is_the_reference() {
    let _s = serial();
    let mut g = grpo(2);
    g.kl_coef = 0.1;
    let mut t = trainer(items(2), g, 1e-2);
    let ex = sampled_examples(&mut t);
    let adv = vec![0.0f32; ex.len()];
    let s = t.update(&ex, &adv).unwrap();
    assert!(s.kl.abs() < 1e-6, "kl {}", s.kl);
    assert!(
        s.loss.abs() < 1e-6,
        "zero advantages and no KL: loss {}",
        s.loss
    );
    // After moving the policy, the KL to the reference is positive.
    let adv: Vec<f32> = (0..ex.len())
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    t.update(&ex, &adv).unwrap();
    let s = t.update(&ex, &vec![0.0; ex.len()]).unwrap();
    assert!(s.kl > 1e-6, "kl {}", s.kl);
}

/// Mean `log2` area of the first region (crop, box or highlight) of the programs sampled for
/// the trainer's first items with `seed`, box sizes at the regression's output (no size noise).
fn first_region_log_area(t: &mut RlTrainer, seed: u64) -> f64 {
    let std = t.state.grpo.size_std;
    t.state.grpo.size_std = 0.0;
    let idx = t.items_at(0);
    let episodes = t.rollout_single(&idx, seed, None).unwrap();
    t.state.grpo.size_std = std;
    let areas: Vec<f64> = episodes
        .iter()
        .flat_map(|e| &e.calls)
        .filter_map(|c| c.program.ops().iter().find_map(etchr_ops::Op::focus_region))
        .map(|r| r.area().max(1.0).log2())
        .collect();
    assert!(!areas.is_empty(), "no sampled program had a region");
    areas.iter().sum::<f64>() / areas.len() as f64
}

#[test]
fn sampled_box_sizes_are_actions_the_advantage_moves() {
    let _s = serial();
    // Advantages that favour the samples whose first region is larger grow the regions the
    // policy draws; the opposite advantages shrink them. Without the sizes' own log-density in
    // the objective, the size regression would move only by chance through shared features.
    for sign in [1.0f64, -1.0] {
        let mut g = grpo(6);
        g.size_std = 0.5;
        g.kl_coef = 0.0;
        let mut t = trainer(items(2), g, 3e-3);
        let before = first_region_log_area(&mut t, 5);
        for round in 0..8u64 {
            let idx = t.items_at(0);
            let episodes = t.rollout_single(&idx, 100 + round, None).unwrap();
            let rewards: Vec<Option<f64>> = episodes
                .iter()
                .map(|e| {
                    let region = (e.calls.first()?.program.ops().iter())
                        .find_map(etchr_ops::Op::focus_region)?;
                    Some(sign * region.area().max(1.0).log2())
                })
                .collect();
            let adv = etchr_train::rl::group_advantages(&rewards, 6);
            let (examples, adv): (Vec<TrainExample>, Vec<f32>) = episodes
                .iter()
                .zip(adv)
                .filter_map(|(e, a)| Some((e.calls.first()?.example.clone()?, a as f32)))
                .unzip();
            t.update(&examples, &adv).unwrap();
        }
        let after = first_region_log_area(&mut t, 5);
        assert!(
            sign * (after - before) > 0.5,
            "advantage sign {sign}: log2 area {before:.2} -> {after:.2}"
        );
    }
}

fn tiny_jpeg() -> Arc<[u8]> {
    let data: Vec<u8> = (0..96 * 64)
        .flat_map(|i| [(i % 96 * 2) as u8, (i / 96 * 3) as u8, 90])
        .collect();
    let img = RgbImage::from_raw(96, 64, data).unwrap();
    etchr_ops::encode_image(&img, OutputFormat::Jpeg(90))
        .unwrap()
        .into()
}

/// Two sampled loop episodes of up to two edits each.
const SAMPLED_PAIR: EpisodeSpec = EpisodeSpec {
    k: 2,
    sampling: Some((1.0, 1.0)),
    max_steps: 2,
    seed: 9,
    overlap: Overlap::Iou,
    size_std: 0.0,
};

/// The reward's upstream side against `mock`, with an in-memory cache.
fn env_of(mock: &MockUpstream, rt: &tokio::runtime::Runtime) -> Env {
    Env {
        downstream: downstream(mock),
        cache: Mutex::new(RewardCache::in_memory("test")),
        handle: rt.handle().clone(),
    }
}

fn downstream(mock: &MockUpstream) -> Downstream {
    let backend = etchr_upstream::HttpUpstream::from_url(&mock.base_url(), "vllm", None).unwrap();
    let mut d = Downstream::new(Arc::new(backend), Duration::from_secs(30), 2);
    d.model = Some("mock".into());
    d
}

#[test]
fn downstream_rewards_are_cached_by_image_and_program() {
    let _s = serial();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = rt.block_on(MockUpstream::start(Script::always(Reply::chat(
        "It reads \\boxed{7PCR39}",
    ))));
    let d = downstream(&mock);
    let image = tiny_jpeg();
    let q = |prog: &str, gold: &str| Query {
        image: image.clone(),
        image_sha: etchr_reason::sha256_hex(&image),
        question: "What is the code?".into(),
        gold: gold.into(),
        program: Program::from_json(prog).unwrap(),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.jsonl");
    let cache = Mutex::new(RewardCache::open(&path, "evr|mock").unwrap());
    let crop = r#"[{"op":"crop","box":[0,0,48,32]}]"#;
    let other = r#"[{"op":"crop","box":[48,32,96,64]}]"#;
    // Two identical queries in one batch make one loop run (evr: verify + answer).
    let first = rt.block_on(d.judge_all(
        &[q(crop, "7PCR39"), q(crop, "7PCR39"), q(other, "XXXXX")],
        &cache,
    ));
    let first: Vec<_> = first.into_iter().map(Result::unwrap).collect();
    assert!(first[0].correct && first[1].correct);
    assert!(!first[2].correct, "judged against its own gold");
    assert_eq!(first[0].answer, "7PCR39");
    assert_eq!(first[0].calls, 2, "evr: verify, then answer");
    assert_eq!(first[1].calls, 0);
    // The mock never says the edit helps, so both runs end with the same question on the
    // original alone: the memo sends that call once.
    assert_eq!(mock.request_count(), 3);
    // The same (image, program) again: answered from the cache, no upstream call.
    let again = rt.block_on(d.judge_all(&[q(crop, "7PCR39")], &cache));
    assert!(again[0].as_ref().unwrap().correct);
    assert_eq!(mock.request_count(), 3);
    let c = cache.lock().unwrap();
    assert_eq!(c.misses, 2);
    assert_eq!(c.hits, 2);
    drop(c);
    // The file keeps it for a resumed run.
    let mut reopened = RewardCache::open(&path, "evr|mock").unwrap();
    assert_eq!(reopened.len(), 2);
    let prog_text = etchr_ops::text::to_text(&Program::from_json(crop).unwrap());
    assert!(
        reopened
            .get(&etchr_reason::sha256_hex(&image), &prog_text)
            .unwrap()
            .correct
    );
    rt.block_on(mock.shutdown());
}

#[test]
fn single_step_training_with_a_mock_upstream() {
    let _s = serial();
    let its = items(1);
    let gold = its[0].item.answer.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = rt.block_on(MockUpstream::start(Script::always(Reply::chat(&format!(
        "\\boxed{{{gold}}}"
    )))));
    let env = env_of(&mock, &rt);
    let mut g = grpo(3);
    g.items_per_step = 1;
    let mut t = trainer(its, g, 1e-3);
    let s = t.step(Some(&env)).unwrap();
    assert_eq!(s.step, 1);
    assert_eq!(s.samples, 3);
    assert_eq!(s.reward_answer, Some(1.0), "{s:?}");
    assert!(s.upstream_calls > 0 && s.upstream_errors == 0, "{s:?}");
    assert!(s.reward >= 1.0, "answer weight 1 plus the edit part: {s:?}");
    assert_eq!(s.cache_misses + s.cache_hits, 3);
    let calls = mock.request_count();
    assert!(calls > 0);
    rt.block_on(mock.shutdown());
}

/// A stand-in for the sidecar's planner (which lives in the `etchr` binary): it asks the
/// network twice, as the sidecar does for an alternative, and shows a fixed crop of the gold
/// region, so the episode's reward is the answer's and the edit score that crop's.
struct TwoCallsThenGold {
    network: Arc<dyn etchr_model::Network>,
    crop: Program,
}

impl etchr_reason::Planner for TwoCallsThenGold {
    fn name(&self) -> &str {
        "two-calls"
    }

    fn plan(
        &self,
        request: &etchr_reason::PlanRequest<'_>,
    ) -> Result<Program, etchr_reason::PlanError> {
        for _ in 0..2 {
            let input = etchr_model::PlanInput::new(
                etchr_model::ImageInput::Decoded(Arc::clone(request.image)),
                request.question,
            );
            self.network
                .plan_one(input)
                .map_err(|e| etchr_reason::PlanError::Model(e.to_string()))?;
        }
        Ok(self.crop.clone())
    }
}

#[test]
fn product_episodes_credit_every_call_of_the_planner_and_score_what_it_showed() {
    let _s = serial();
    let its = items(1);
    let gold = its[0].item.answer.clone();
    let crop = Program(vec![etchr_ops::Op::Crop {
        region: its[0].item.gold_region,
    }]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = rt.block_on(MockUpstream::start(Script::from_fn(move |r| {
        let raw = String::from_utf8_lossy(&r.raw);
        if raw.contains("\\boxed{0}") {
            Reply::chat("\\boxed{1}")
        } else {
            Reply::chat(&format!("\\boxed{{{gold}}}"))
        }
    })));
    let env = env_of(&mock, &rt);
    let mut g = grpo(2);
    g.items_per_step = 1;
    g.rollout = Rollout::Product;
    let make: ProductPlanner = Arc::new(move |network| {
        Arc::new(TwoCallsThenGold {
            network,
            crop: crop.clone(),
        }) as Arc<dyn etchr_reason::Planner>
    });
    let mut t = trainer(its, g, 1e-3).with_product(Some(make.clone()));
    let idx = t.items_at(0);
    let eps =
        RlTrainer::rollout_episodes(&t.policy, t.items(), &idx, SAMPLED_PAIR, &env, Some(&make));
    assert_eq!(eps.len(), 2);
    for e in &eps {
        let j = e.judged.as_ref().unwrap().as_ref().unwrap();
        assert!(j.correct, "{j:?}");
        assert_eq!(e.calls.len(), 2, "both calls of the planner are credited");
        assert!(e.edit.valid && e.edit.iou == Some(1.0), "{:?}", e.edit);
    }
    let s = t.step(Some(&env)).unwrap();
    assert_eq!(s.samples, 2);
    assert_eq!(s.planner_calls, 4, "{s:?}");
    rt.block_on(mock.shutdown());
}

#[test]
fn progressive_episodes_credit_every_edit() {
    let _s = serial();
    let its = items(1);
    let gold = its[0].item.answer.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The upstream never answers on its own: each episode runs to --max-steps edits, then the
    // forced answer.
    let mock = rt.block_on(MockUpstream::start(Script::from_fn(move |r| {
        let raw = String::from_utf8_lossy(&r.raw);
        if raw.contains("Stop here and give your final answer now") {
            Reply::chat(&format!("\\boxed{{{gold}}}"))
        } else {
            Reply::chat("The tag is too small to read; a closer look at it would help.")
        }
    })));
    let env = env_of(&mock, &rt);
    let mut g = grpo(2);
    g.items_per_step = 1;
    g.rollout = Rollout::Progressive;
    g.max_steps = 2;
    let mut t = trainer(its, g, 1e-3);
    let idx = t.items_at(0);
    let eps = RlTrainer::rollout_episodes(&t.policy, t.items(), &idx, SAMPLED_PAIR, &env, None);
    assert_eq!(eps.len(), 2);
    for e in &eps {
        let j = e.judged.as_ref().unwrap().as_ref().unwrap();
        // A sampled program the renderer cannot run (a `path` with no free path) ends the loop:
        // judged wrong, edit invalid.
        if j.program_error.is_some() {
            assert!(!j.correct && !e.edit.valid);
            continue;
        }
        assert!(j.correct, "the forced answer is judged: {j:?}");
        assert!(
            !e.calls.is_empty() && e.calls.len() <= 2,
            "{}",
            e.calls.len()
        );
        assert!(e.calls.iter().all(|c| c.example.is_some()));
    }
    // The second call of an episode reads the upstream's reasoning.
    if let Some(c) = eps.iter().find_map(|e| e.calls.get(1)) {
        assert!(c.example.as_ref().unwrap().context.contains("closer look"));
    }
    let s = t.step(Some(&env)).unwrap();
    assert_eq!(s.samples, 2);
    assert!(s.planner_calls >= 2, "{s:?}");
    assert!(s.update.sequences >= 2, "every edit is trained on: {s:?}");
    rt.block_on(mock.shutdown());
}

fn params(dir: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let m = EditingModel::load(dir, &Device::Cpu).unwrap();
    let data = m.varmap().data().lock().unwrap();
    let mut v: Vec<(String, Vec<f32>)> = data
        .iter()
        .map(|(k, t)| {
            (
                k.clone(),
                t.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn rl_args(out: &std::path::Path, steps: u64) -> RlArgs {
    let mut a = RlArgs::new(out);
    a.tiny = true;
    a.families = vec![Family::Orientation, Family::FineGrained];
    a.train_items = 3;
    a.val_items = 2;
    a.items_per_step = 2;
    a.group_size = 2;
    a.steps = steps;
    a.lr = 1e-3;
    a.min_lr_frac = 1.0;
    a.warmup = 0;
    a.checkpoint_every = 2;
    a.eval_every = 2;
    a.keep_checkpoints = 2;
    a
}

#[test]
fn resume_continues_like_an_uninterrupted_run() {
    let _s = serial();
    let straight = tempfile::tempdir().unwrap();
    run_rl(rl_args(straight.path(), 4), None).unwrap();
    let split = tempfile::tempdir().unwrap();
    run_rl(rl_args(split.path(), 2), None).unwrap();
    assert!(
        run_rl(rl_args(split.path(), 4), None).is_err(),
        "needs --resume"
    );
    let mut a = rl_args(split.path(), 4);
    a.resume = true;
    run_rl(a, None).unwrap();

    let ck = rl_checkpoints(split.path());
    assert_eq!(ck.iter().map(|c| c.0).collect::<Vec<_>>(), vec![2, 4]);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ck[1].1.join("rl_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["step"], 4);
    assert!(split.path().join("reference/model.safetensors").is_file());
    let metrics = std::fs::read_to_string(split.path().join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<u64> = lines
        .iter()
        .filter(|l| l["kind"] == "train")
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4], "step numbering continues");
    for l in lines.iter().filter(|l| l["kind"] == "train") {
        assert!(l["reward"].as_f64().unwrap().is_finite());
        assert!(l["update"]["kl"].as_f64().unwrap() >= -1e-6);
        assert!(
            l["reward_answer"].is_null(),
            "no upstream: no answer reward"
        );
    }
    assert_eq!(lines.iter().filter(|l| l["kind"] == "eval").count(), 2);
    // The same weights as the uninterrupted run (Adam turns candle's CPU rounding noise on
    // zero-gradient parameters into steps of up to lr: allow that much).
    let (pa, pb) = (
        params(&straight.path().join("final")),
        params(&split.path().join("final")),
    );
    let (mut exact, mut total) = (0usize, 0usize);
    for ((na, va), (nb, vb)) in pa.iter().zip(&pb) {
        assert_eq!(na, nb);
        for (x, y) in va.iter().zip(vb) {
            total += 1;
            if (x - y).abs() <= 1e-5 * (1.0 + x.abs()) {
                exact += 1;
            }
            assert!((x - y).abs() <= 2.0 * 1e-3 + 1e-5, "{na}: {x} vs {y}");
        }
    }
    assert!(exact * 10 >= total * 9, "only {exact} of {total} agree");
    // And the policy moved away from the reference.
    let r = params(&split.path().join("reference"));
    assert_ne!(r, pb);
}
