//! Stage 1 trainer: overfitting a handful of items, checkpoint/resume, and a tiny end-to-end run.

use candle_core::Device;
use etchr_data::Family;
use etchr_model::{EditingModel, ModelConfig, TrainExample};
use etchr_train::data::{build_split, SplitSpec};
use etchr_train::optim::AdamWParams;
use etchr_train::schedule::Schedule;
use etchr_train::{checkpoints, run_sft, training_round, SftArgs, Trainer};

fn tiny_examples(model: &EditingModel, items: usize) -> Vec<TrainExample> {
    build_split(
        &SplitSpec {
            families: vec![Family::FineGrained, Family::Orientation, Family::Chart],
            seed: 7,
            first_index: 0,
            items,
            contexts_per_item: 1,
            keep_images: false,
        },
        model,
    )
    .unwrap()
    .into_iter()
    .map(|t| t.example)
    .collect()
}

fn trainer(seed: u64, examples: Vec<TrainExample>, steps: u64, batch: usize) -> Trainer {
    let model = EditingModel::new(ModelConfig::tiny(), seed, &Device::Cpu).unwrap();
    Trainer::new(
        model,
        examples,
        Schedule {
            base_lr: 3e-3,
            min_lr: 3e-4,
            warmup_steps: 3,
            total_steps: steps,
        },
        AdamWParams::default(),
        1.0,
        batch,
        11,
    )
    .unwrap()
}

/// The tests share two cores: running them one at a time keeps each one quick.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn params(t: &Trainer) -> Vec<(String, Vec<f32>)> {
    t.opt
        .vars()
        .map(|(n, v)| {
            (
                n.to_string(),
                v.as_tensor().flatten_all().unwrap().to_vec1().unwrap(),
            )
        })
        .collect()
}

#[test]
fn loss_decreases_when_overfitting_a_few_items() {
    let _serial = serial();
    let model = EditingModel::new(ModelConfig::tiny(), 0, &Device::Cpu).unwrap();
    let ex = tiny_examples(&model, 4);
    let mut t = trainer(0, ex, 40, 4);
    let first = t.peek_loss().unwrap();
    let mut last = Vec::new();
    for _ in 0..40 {
        let s = t.step().unwrap();
        assert!(s.loss.is_finite());
        last.push(s.loss);
    }
    let end = t.peek_loss().unwrap();
    assert_eq!(t.state.step, 40);
    assert!(
        end < 0.6 * first,
        "the loss should fall on a fixed batch: {first} -> {end} ({last:?})"
    );
}

#[test]
fn resume_matches_an_uninterrupted_run() {
    let _serial = serial();
    let model = EditingModel::new(ModelConfig::tiny(), 0, &Device::Cpu).unwrap();
    let ex = tiny_examples(&model, 3);
    // Batch 2 over 3 examples: the resumed run must also pick up the shuffle mid-epoch.
    let mut a = trainer(5, ex.clone(), 8, 2);
    for _ in 0..6 {
        a.step().unwrap();
    }
    let mut b = trainer(5, ex.clone(), 8, 2);
    for _ in 0..3 {
        b.step().unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    b.save(dir.path()).unwrap();
    let before = params(&b);
    drop(b);
    let mut c = Trainer::load(dir.path(), ex, &Device::Cpu).unwrap();
    assert_eq!(c.state.step, 3);
    assert_eq!(c.opt.t, 3);
    assert_eq!(params(&c), before, "weights restored exactly");
    for _ in 0..3 {
        c.step().unwrap();
    }
    assert_eq!(c.state.step, 6);
    // candle's CPU reductions are not bit-reproducible under thread contention, and Adam turns
    // the rounding noise on parameters whose true gradient is zero (e.g. key biases) into
    // steps of up to lr each: allow that much, and require the loss to agree closely.
    let (pa, pc) = (params(&a), params(&c));
    let mut exact = 0usize;
    let mut total = 0usize;
    for ((na, va), (nc, vc)) in pa.iter().zip(&pc) {
        assert_eq!(na, nc);
        for (x, y) in va.iter().zip(vc) {
            total += 1;
            if (x - y).abs() <= 1e-5 * (1.0 + x.abs()) {
                exact += 1;
            }
            assert!((x - y).abs() <= 3.0 * 3e-3 + 1e-5, "{na}: {x} vs {y}");
        }
    }
    assert!(
        exact * 10 >= total * 9,
        "only {exact} of {total} parameters agree"
    );
    let (la, lc) = (a.peek_loss().unwrap(), c.peek_loss().unwrap());
    assert!((la - lc).abs() <= 1e-3 * (1.0 + la.abs()), "{la} vs {lc}");
}

/// A quick Stage 1 run of the tiny architecture: two items, batch 2, one warm-up step.
fn tiny_args(out: &std::path::Path, families: Vec<Family>, steps: u64) -> SftArgs {
    let mut args = SftArgs::new(out);
    args.tiny = true;
    args.families = families;
    args.train_items = 2;
    args.steps = steps;
    args.batch_size = 2;
    args.warmup = 1;
    args
}

#[test]
fn run_sft_end_to_end_with_checkpoints_and_resume() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut args = tiny_args(dir.path(), vec![Family::Orientation, Family::Jigsaw], 4);
    args.val_items = 2;
    args.checkpoint_every = 2;
    args.eval_every = 2;
    args.keep_checkpoints = 1;
    run_sft(args.clone()).unwrap();
    let ck = checkpoints(dir.path());
    assert_eq!(ck.len(), 1, "only the newest is kept: {ck:?}");
    assert_eq!(ck[0].0, 4);
    assert!(dir.path().join("final/model.safetensors").is_file());
    assert!(dir.path().join("best/config.json").is_file());
    let metrics = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!(l["validity"], 1.0, "every decode is a valid program: {l}");
        assert_eq!(l["decoded"], 4);
    }
    // Without --resume an existing run is refused; with it, training continues.
    assert!(run_sft(args.clone()).is_err());
    args.resume = true;
    args.steps = 6;
    run_sft(args).unwrap();
    assert_eq!(checkpoints(dir.path()).last().unwrap().0, 6);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("ckpt-00000006/trainer_state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["step"], 6);
}

#[test]
fn init_from_with_a_config_grows_trained_weights_into_it() {
    // `--init-from DIR --config CFG`: DIR's weights in CFG's larger architecture (here the
    // zero-initialised neighbour mixing), trained on from there; evaluation lines carry the
    // first-pointer metrics.
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    run_sft(tiny_args(&first, vec![Family::FineGrained], 2)).unwrap();
    let cfg = ModelConfig {
        neighbour_mix: true,
        ..ModelConfig::tiny()
    };
    let cfg_path = dir.path().join("mix.json");
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let grown = dir.path().join("grown");
    let mut args = tiny_args(&grown, vec![Family::FineGrained], 2);
    args.tiny = false;
    args.init_from = Some(first.join("final"));
    args.config = Some(cfg_path);
    args.val_items = 2;
    args.eval_every = 2;
    run_sft(args).unwrap();
    let model = EditingModel::load(grown.join("final"), &Device::Cpu).unwrap();
    assert!(model.config().neighbour_mix);
    let old = EditingModel::load(first.join("final"), &Device::Cpu).unwrap();
    let d = cfg.d_model;
    assert_eq!(model.num_params(), old.num_params() + 9 * d * d);
    let metrics = std::fs::read_to_string(grown.join("metrics.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    let top1 = line["val_first_pointer_top1"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&top1), "{line}");
    assert!(
        line["per_family"]["fine_grained"]["first_pointer_nll"]
            .as_f64()
            .unwrap()
            > 0.0
    );
}

#[test]
fn refreshed_training_splits_are_new_items_and_survive_a_resume() {
    let _serial = serial();
    assert_eq!(
        training_round(5, 0),
        0,
        "no refresh: always the first split"
    );
    assert_eq!(training_round(3, 2), 1);
    assert_eq!(training_round(4, 2), 2);
    // Round r is items r × train_items onwards of the same seed: no item in two rounds.
    let model = EditingModel::tiny(3).unwrap();
    let ids = |round: u64| -> Vec<String> {
        let spec = SplitSpec {
            families: vec![Family::Orientation, Family::Chart],
            seed: 5,
            first_index: round * 4,
            items: 4,
            contexts_per_item: 1,
            keep_images: false,
        };
        build_split(&spec, &model)
            .unwrap()
            .into_iter()
            .map(|t| t.item_id)
            .collect()
    };
    let (r0, r1) = (ids(0), ids(1));
    assert_eq!(r0.len(), 4);
    assert!(r0.iter().all(|id| !r1.contains(id)), "{r0:?} vs {r1:?}");

    let dir = tempfile::tempdir().unwrap();
    let mut args = tiny_args(dir.path(), vec![Family::Orientation], 5);
    args.val_items = 1;
    args.checkpoint_every = 3;
    args.eval_every = 0;
    args.refresh_every = 2;
    run_sft(args.clone()).unwrap();
    // Resuming from the last checkpoint regenerates the round it stopped in and goes on.
    args.resume = true;
    args.steps = 7;
    run_sft(args).unwrap();
    assert_eq!(checkpoints(dir.path()).last().unwrap().0, 7);
}

#[test]
fn view_trajectories_zoom_around_the_gold_edit_and_map_back() {
    let _guard = serial();
    let model = EditingModel::tiny(3).unwrap();
    let spec = SplitSpec {
        families: vec![Family::FineGrained, Family::Maze],
        seed: 9,
        first_index: 0,
        items: 4,
        contexts_per_item: 1,
        keep_images: false,
    };
    let split = etchr_train::data::build_split_with_views(&spec, 2, &model).unwrap();
    // Fine-grained items get 1 + 2 trajectories; mazes (a path spans the image) only 1.
    let count = |f: Family| split.iter().filter(|t| t.family == f).count();
    assert_eq!(count(Family::FineGrained), 2 * 3);
    assert_eq!(count(Family::Maze), 2);
    for t in split.iter().filter(|t| t.family == Family::FineGrained) {
        let frame = &t.example.prepared.frame;
        let program =
            etchr_model::tokens_to_program(&t.example.tokens, frame, model.vocab()).unwrap();
        let want = t.gold_program.focus().unwrap();
        let got = program.focus().expect("the view keeps the gold box");
        // Through the view's bins and back, the gold box survives to within a few pixels.
        assert!(got.iou(&want) > 0.8, "{got:?} vs {want:?}");
        if frame.transform.is_identity() {
            assert_eq!(
                (frame.view_width, frame.view_height),
                t.example.original_size
            );
        } else {
            let shown = frame
                .transform
                .rect_to_original(&etchr_ops::Rect::full(frame.view_width, frame.view_height));
            assert!(shown.intersect(&want).map(|i| i.area()) == Some(want.area()));
            assert!(shown.area() < (t.example.original_size.0 * t.example.original_size.1) as f64);
        }
    }
}

#[test]
fn evaluation_reports_the_cue_head_where_the_data_has_cue_targets() {
    // Fine-grained items (and their zoomed views) carry cue regions, charts none: the cue
    // metrics cover the first, are absent for the second, and absent without a cue head.
    let _guard = serial();
    let cfg = ModelConfig {
        cue_head: true,
        ..ModelConfig::tiny()
    };
    let cued = EditingModel::new(cfg, 3, &Device::Cpu).unwrap();
    let spec = SplitSpec {
        families: vec![Family::FineGrained, Family::Chart],
        seed: 12,
        first_index: 0,
        items: 4,
        contexts_per_item: 1,
        keep_images: true,
    };
    let val = etchr_train::data::build_split_with_views(&spec, 1, &cued).unwrap();
    for t in &val {
        let has = !t.example.cue_regions.is_empty();
        assert_eq!(has, t.family == Family::FineGrained, "{}", t.item_id);
    }
    let report = etchr_train::eval::evaluate(&cued, &val, 8, 0).unwrap();
    // Zero-initialised scores: the balanced BCE is ln 2.
    let bce = report.val_cue_bce.expect("cue BCE");
    assert!((bce - std::f64::consts::LN_2).abs() < 1e-4, "{bce}");
    assert!(report
        .val_cue_top1
        .is_some_and(|t| (0.0..=1.0).contains(&t)));
    assert!(report.per_family["fine_grained"].cue_top1.is_some());
    assert_eq!(report.per_family["chart"].cue_top1, None);
    let plain = EditingModel::tiny(3).unwrap();
    let report = etchr_train::eval::evaluate(&plain, &val, 8, 0).unwrap();
    assert_eq!((report.val_cue_bce, report.val_cue_top1), (None, None));
    assert_eq!(report.per_family["fine_grained"].cue_top1, None);
}
