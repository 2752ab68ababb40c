//! Model-level tests with tiny fixed-seed weights: validity of constrained decoding, the
//! coordinate path back to the original, progressive use on a view, gradients, save/load,
//! and train/inference consistency.

use candle_core::Device;
use etchr_model::{
    program_to_tokens, tokens_to_program, Batch, DecodeOptions, EditingModel, Frame, ImageInput,
    ModelConfig, PlanInput, Prepared, Sym, TextAlign, Token, TrainExample,
};
use etchr_ops::{Program, Rect, RenderOptions, RgbImage};
use std::sync::Arc;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn image(rng: &mut Rng, w: u32, h: u32) -> RgbImage {
    let (a, b, c) = (rng.below(7) + 1, rng.below(5) + 1, rng.below(255) as u32);
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * a as u32 / 3 + c) as u8,
            (y * b as u32 / 2) as u8,
            (((x / 9) ^ (y / 7)) as u8).wrapping_mul(17),
        ])
    })
}

fn random_input(rng: &mut Rng, options: DecodeOptions) -> PlanInput {
    let sizes = [
        (640, 480),
        (2000, 300),
        (90, 1200),
        (17, 23),
        (1024, 1024),
        (3, 700),
    ];
    let (w, h) = sizes[rng.below(sizes.len() as u64) as usize];
    let words = [
        "code", "number", "value", "maze", "tile", "label", "rotate", "the", "red", "\"K-17\"",
    ];
    let q: Vec<&str> = (0..rng.below(12))
        .map(|_| words[rng.below(10) as usize])
        .collect();
    let ctx: Vec<&str> = (0..rng.below(30))
        .map(|_| words[rng.below(10) as usize])
        .collect();
    PlanInput::new(ImageInput::Decoded(Arc::new(image(rng, w, h))), q.join(" "))
        .with_context(ctx.join(" "))
        .with_options(options)
}

fn assert_valid(out: &etchr_model::PlanOutput) {
    let (w, h) = out.original_size;
    let (again, _) = etchr_ops::validate(w, h, &out.program, &RenderOptions::default())
        .unwrap_or_else(|e| panic!("invalid program {}: {e}", out.text));
    assert_eq!(again.len(), out.program.len(), "nothing left to drop");
    // (Equal up to float parsing: serde_json without `float_roundtrip` may differ in the last ulp.)
    assert_eq!(
        etchr_ops::text::parse(&out.text).unwrap().len(),
        out.program.len()
    );
    assert_eq!(out.tokens.last(), Some(&Token::Sym(Sym::End)));
    assert!(out
        .steps
        .iter()
        .all(|s| s.logprob <= 1e-5 && s.logprob.is_finite()));
}

#[test]
fn constrained_decoding_always_yields_valid_programs() {
    let mut rng = Rng(0x5eed);
    let mut kinds = std::collections::BTreeSet::new();
    let mut total = 0;
    for seed in 0..3u64 {
        let model = EditingModel::tiny(seed).unwrap();
        for i in 0..40u64 {
            let options = match i % 4 {
                0 => DecodeOptions::default(),
                1 => DecodeOptions::sample(1.0, 0.9, i),
                // Hot sampling explores every corner of the grammar.
                _ => DecodeOptions::sample(4.0, 1.0, seed * 100 + i),
            };
            let out = model.plan(random_input(&mut rng, options)).unwrap();
            assert_valid(&out);
            kinds.extend(out.program.ops().iter().map(|o| o.name()));
            total += 1;
        }
    }
    assert_eq!(total, 120);
    // Random weights at high temperature reach every op the model can say.
    for k in [
        "crop",
        "zoom",
        "rotate",
        "flip",
        "box",
        "highlight",
        "jigsaw_solve",
        "path",
    ] {
        assert!(kinds.contains(k), "never emitted {k}: {kinds:?}");
    }
}

#[test]
fn batched_decoding_matches_single_requests_and_is_valid() {
    let model = EditingModel::tiny(11).unwrap();
    let mut rng = Rng(99);
    let inputs: Vec<PlanInput> = (0..6)
        .map(|i| random_input(&mut rng, DecodeOptions::sample(3.0, 1.0, i)))
        .collect();
    let batched = model.plan_batch(inputs.clone());
    for (inp, b) in inputs.into_iter().zip(batched) {
        let b = b.unwrap();
        assert_valid(&b);
        assert_eq!(b.timings.batch_size, 6);
        let single = model.plan(inp).unwrap();
        assert_eq!(single.tokens.len(), b.tokens.len());
        let diff: f64 = (single.logprob - b.logprob).abs();
        assert!(diff < 1e-3 || single.tokens != b.tokens, "{diff}");
    }
}

#[test]
fn planning_from_kept_preparations_is_planning_from_the_inputs() {
    let model = EditingModel::tiny(11).unwrap();
    let mut rng = Rng(7);
    let inputs: Vec<PlanInput> = (0..3)
        .map(|i| random_input(&mut rng, DecodeOptions::sample(2.0, 1.0, i)))
        .collect();
    let prepared: Vec<Arc<_>> = inputs
        .iter()
        .map(|i| Arc::new(model.prepare(i).unwrap()))
        .collect();
    let kept = model.plan_batch_prepared(&inputs, &prepared);
    for (fresh, kept) in model.plan_batch(inputs.clone()).into_iter().zip(kept) {
        let (fresh, kept) = (fresh.unwrap(), kept.unwrap());
        assert_eq!(fresh.tokens, kept.tokens);
        assert_eq!(fresh.program, kept.program);
        assert!((fresh.logprob - kept.logprob).abs() < 1e-6);
    }
}

#[test]
fn a_corrupt_image_in_a_batch_fails_only_its_own_request() {
    // Encoded inputs are decoded in parallel: results must stay in input order.
    let model = EditingModel::tiny(5).unwrap();
    let mut rng = Rng(17);
    let jpeg = |rng: &mut Rng, w, h| -> Arc<[u8]> {
        etchr_ops::encode_image(&image(rng, w, h), etchr_ops::OutputFormat::Jpeg(85))
            .unwrap()
            .into()
    };
    let sizes = [(640, 480), (300, 900), (1200, 200)];
    let mut inputs: Vec<PlanInput> = sizes
        .iter()
        .map(|&(w, h)| PlanInput::new(ImageInput::Encoded(jpeg(&mut rng, w, h)), "where?"))
        .collect();
    inputs.insert(
        1,
        PlanInput::new(
            ImageInput::Encoded(Arc::from(&b"\xff\xd8 not a jpeg"[..])),
            "where?",
        ),
    );
    let out = model.plan_batch(inputs);
    assert_eq!(out.len(), 4);
    assert!(out[1].is_err(), "the corrupt image fails");
    for (i, &(w, h)) in [0, 2, 3].iter().zip(&sizes) {
        let plan = out[*i].as_ref().expect("the good images plan");
        assert_valid(plan);
        assert_eq!(plan.timings.batch_size, 3);
        // Each result is its own input's: the model saw that image's size.
        assert_eq!(plan.view_size, (w, h), "result {i}");
    }
}

#[test]
fn a_progressive_call_on_a_cropped_view_maps_back_to_the_original() {
    let model = EditingModel::tiny(3).unwrap();
    let mut rng = Rng(4);
    let original = image(&mut rng, 1600, 1200);
    let first = Program::from_json(
        r#"[{"op":"crop","box":[400,300,1200,900]},{"op":"zoom","factor":0.5}]"#,
    )
    .unwrap();
    let rendered = etchr_ops::render(&original, &first, &RenderOptions::default()).unwrap();
    let view = rendered.views.into_iter().next().unwrap();
    assert_eq!(view.image.dimensions(), (400, 300));
    let shown = view.transform.rect_to_original(&Rect::full(400, 300));
    assert_eq!(shown, Rect::new(400.0, 300.0, 1200.0, 900.0));
    let frame = Frame::new(400, 300, view.transform.clone());
    let mut seen = 0;
    for i in 0..20 {
        let input = PlanInput::new(
            ImageInput::Decoded(Arc::new(view.image.clone())),
            "what code?",
        )
        .with_context("The label is in the crop; now look closer.")
        .on_view(view.transform.clone(), (1600, 1200))
        .with_options(DecodeOptions::sample(4.0, 1.0, i));
        let out = model.plan(input).unwrap();
        assert_valid(&out);
        assert_eq!(out.original_size, (1600, 1200));
        assert_eq!(out.view_size, (400, 300));
        // Every coordinate the model named lies in the part of the original the view shows,
        // and is exactly its view bins mapped through the transform.
        let decoded = tokens_to_program(&out.tokens, &frame, model.vocab()).unwrap();
        for op in decoded.ops() {
            if let Some(r) = op.focus_region() {
                seen += 1;
                assert!(r.x0 >= 400.0 - 1e-6 && r.x1 <= 1200.0 + 1e-6, "{r:?}");
                assert!(r.y0 >= 300.0 - 1e-6 && r.y1 <= 900.0 + 1e-6, "{r:?}");
            }
        }
        let regions = decoded.ops().iter().filter_map(|o| o.focus_region());
        let boxes = out.tokens.iter().filter(|t| matches!(t, Token::Box(_)));
        for (r, tok) in regions.zip(boxes) {
            if let Token::Box(b) = tok {
                let v = frame.bins_rect(*b);
                let back = view.transform.rect_to_original(&v);
                assert!((back.x0 - r.x0).abs() < 1e-6 && (back.y1 - r.y1).abs() < 1e-6);
                // One view bin is 0.4 view px = 0.8 original px here.
                assert!((v.x0 * 2.0 + 400.0 - r.x0).abs() < 1e-6);
            }
        }
        // The program renders on the original image. (A `path` endpoint that lands on a wall is
        // only detectable with the original's pixels: the renderer refuses it.)
        match etchr_ops::render(&original, &out.program, &RenderOptions::default()) {
            Ok(_) => {}
            Err(etchr_ops::OpsError::InvalidOp { op: "path", .. }) => {}
            Err(e) => panic!("{}: {e}", out.text),
        }
    }
    assert!(seen > 0, "sampling produced no region at all");
}

#[test]
fn an_alternative_plan_places_its_first_pointer_outside_the_avoided_regions() {
    let model = EditingModel::tiny(5).unwrap();
    let mut rng = Rng(11);
    let mut moved = 0;
    for i in 0..12 {
        let img = Arc::new(image(&mut rng, 640, 480));
        let input = || {
            PlanInput::new(ImageInput::Decoded(img.clone()), "the red tag's code?")
                .with_options(DecodeOptions::sample(2.0, 1.0, i))
        };
        let first = model.plan(input()).unwrap();
        // Avoiding everything leaves nothing to avoid it with: the plan is unchanged.
        let all = model
            .plan(input().avoiding(vec![Rect::full(640, 480)]))
            .unwrap();
        assert_eq!(all.program, first.program);
        let Some((k, centre)) = first_pointer(&first) else {
            continue;
        };
        // A region around where the first plan pointed: the tiny model's patch is 160 original
        // px here, and the chosen patch's centre is within half of it of the box's centre.
        let avoid = Rect::new(
            centre.0 - 85.0,
            centre.1 - 85.0,
            centre.0 + 85.0,
            centre.1 + 85.0,
        );
        let other = model.plan(input().avoiding(vec![avoid])).unwrap();
        assert_valid(&other);
        let (k2, _) = first_pointer(&other).expect("the same grammar path points again");
        assert_ne!(k2, k, "plan {i}: the avoided patch was chosen again");
        moved += 1;
    }
    assert!(moved > 0, "no plan pointed at all");
}

/// The first pointer choice of a plan: its patch and its box or point's centre in original
/// pixels.
fn first_pointer(out: &etchr_model::PlanOutput) -> Option<(usize, (f64, f64))> {
    let k = out.steps.iter().find_map(|s| s.patch)?;
    let r = out.program.ops().iter().find_map(|op| match op {
        etchr_ops::Op::Path { from, .. } => Some(Rect::new(from.x, from.y, from.x, from.y)),
        op => op.focus_region(),
    })?;
    Some((k, ((r.x0 + r.x1) / 2.0, (r.y0 + r.y1) / 2.0)))
}

fn example(model: &EditingModel, w: u32, h: u32, json: &str, q: &str) -> TrainExample {
    let mut rng = Rng(w as u64 * 31 + h as u64);
    let img = image(&mut rng, w, h);
    let frame = Frame::identity(w, h);
    let program = Program::from_json(json).unwrap();
    let tokens = program_to_tokens(&program, &frame, model.vocab()).unwrap();
    TrainExample {
        prepared: Arc::new(Prepared::from_image(&img, frame, model.config()).unwrap()),
        question: q.into(),
        context: "Reasoning so far.".into(),
        tokens,
        original_size: (w, h),
        cue_regions: Vec::new(),
    }
}

fn examples(model: &EditingModel) -> Vec<TrainExample> {
    vec![
        example(
            model,
            800,
            600,
            r#"[{"op":"crop","box":[100,100,400,300]},{"op":"zoom","factor":2},{"op":"box","box":[150,150,300,250]}]"#,
            "What code is on the tag?",
        ),
        example(
            model,
            1000,
            700,
            r#"[{"op":"highlight","box":[10,20,200,600]},{"op":"crop","box":[0,0,300,700]},{"op":"zoom","factor":1.5}]"#,
            "What value has the bar?",
        ),
        example(
            model,
            640,
            640,
            r#"[{"op":"crop","box":[300,300,500,400]},{"op":"rotate","angle":270},{"op":"zoom","factor":3}]"#,
            "Which code, upright?",
        ),
        example(
            model,
            900,
            500,
            r#"[{"op":"crop","box":[30,30,300,200]},{"op":"flip","axis":"vertical"}]"#,
            "Mirror?",
        ),
        example(
            model,
            1200,
            600,
            r#"[{"op":"jigsaw_solve","rows":2,"cols":4},{"op":"crop","box":[0,300,600,450]},{"op":"zoom","factor":1.2}]"#,
            "Restore the tiles.",
        ),
        example(
            model,
            700,
            700,
            r#"[{"op":"path","from":[20,30],"to":[650,600]},{"op":"crop","box":[600,550,700,650]},{"op":"zoom","factor":4}]"#,
            "Follow the maze.",
        ),
        example(model, 300, 300, "[]", "Nothing to do."),
    ]
}

#[test]
fn every_parameter_receives_a_gradient() {
    let model = EditingModel::tiny(1).unwrap();
    let batch = Batch::new(&examples(&model), &model).unwrap();
    assert_eq!(batch.forced, 0, "gold programs fit the masks");
    let loss = model.loss(&batch).unwrap();
    let (total, tok, ptr, reg) = loss.values().unwrap();
    assert!(
        total.is_finite() && tok > 0.0 && ptr > 0.0 && reg > 0.0,
        "{total} {tok} {ptr} {reg}"
    );
    let grads = loss.total.backward().unwrap();
    let vars = model.varmap().data().lock().unwrap();
    let mut missing = Vec::new();
    for (name, var) in vars.iter() {
        let g = grads.get(var.as_tensor());
        let norm = g.map_or(0.0, |g| {
            g.abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        });
        if !(norm > 0.0 && norm.is_finite()) {
            missing.push(name.clone());
        }
    }
    assert!(missing.is_empty(), "no gradient for {missing:?}");
    assert!(vars.len() > 30);
    let top1: f32 = loss.pointer_top1.to_scalar().unwrap();
    assert!((0.0..=1.0).contains(&top1), "{top1}");
    // One first pointer choice per example that points at all (the empty program does not).
    let pointing = examples(&model)
        .iter()
        .filter(|e| e.tokens.iter().any(|t| !matches!(t, Token::Sym(_))))
        .count();
    assert_eq!(batch.n_first_pointers, pointing);
    let firsts: f32 = batch
        .first_ptr_weight
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(firsts as usize, pointing);
    assert!(pointing > 0 && batch.n_pointers > pointing);
    let first_top1: f32 = loss.first_pointer_top1.to_scalar().unwrap();
    let first_nll: f32 = loss.first_pointer_nll.to_scalar().unwrap();
    assert!((0.0..=1.0).contains(&first_top1), "{first_top1}");
    assert!(first_nll > 0.0 && first_nll.is_finite(), "{first_nll}");
}

#[test]
fn word_aligned_text_trains_and_decodes_with_the_same_parameters() {
    // `text_align` changes only where text tokens start: the same parameter shapes (so byte
    // weights warm-start a word-aligned model), gradients everywhere, valid programs.
    let cfg = ModelConfig {
        text_align: TextAlign::Words,
        ..ModelConfig::tiny()
    };
    let words = EditingModel::new(cfg, 1, &Device::Cpu).unwrap();
    let bytes = EditingModel::tiny(1).unwrap();
    assert_eq!(words.num_params(), bytes.num_params());
    let batch = Batch::new(&examples(&words), &words).unwrap();
    let loss = words.loss(&batch).unwrap();
    let grads = loss.total.backward().unwrap();
    let vars = words.varmap().data().lock().unwrap();
    for (name, var) in vars.iter() {
        let g = grads.get(var.as_tensor()).expect(name);
        let norm: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(norm > 0.0 && norm.is_finite(), "no gradient for {name}");
    }
    drop(vars);
    let mut rng = Rng(5);
    for i in 0..4 {
        assert_valid(
            &words
                .plan(random_input(&mut rng, DecodeOptions::sample(2.0, 1.0, i)))
                .unwrap(),
        );
    }
    // Configs written before the field existed read as byte-aligned.
    let mut json = serde_json::to_value(ModelConfig::tiny()).unwrap();
    json.as_object_mut().unwrap().remove("text_align");
    let old: ModelConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.text_align, TextAlign::Bytes);
}

#[test]
fn neighbour_mixing_grows_from_trained_weights_and_then_learns() {
    // Growing tiny weights into `neighbour_mix` keeps every old tensor and starts from the
    // same function (the new map is zero); it then gets gradients like everything else and,
    // once non-zero, makes a patch's token depend on the patches around it.
    let old = EditingModel::tiny(3).unwrap();
    let dir = std::env::temp_dir().join(format!("etchr-grow-test-{}", std::process::id()));
    old.save(&dir).unwrap();
    let cfg = ModelConfig {
        neighbour_mix: true,
        ..ModelConfig::tiny()
    };
    let (grown, new) = EditingModel::load_grown(&dir, cfg, 9, &Device::Cpu).unwrap();
    // The other direction would drop a trained tensor: refused.
    grown.save(dir.join("mixed")).unwrap();
    let shrink = EditingModel::load_grown(dir.join("mixed"), ModelConfig::tiny(), 9, &Device::Cpu);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(new, ["enc.neighbour.weight"]);
    assert!(shrink.is_err());
    let d = ModelConfig::tiny().d_model;
    assert_eq!(grown.num_params(), old.num_params() + 9 * d * d);

    let batch = Batch::new(&examples(&old), &old).unwrap();
    let total = |m: &EditingModel| -> f32 { m.loss(&batch).unwrap().total.to_scalar().unwrap() };
    assert!((total(&old) - total(&grown)).abs() < 1e-5);

    let loss = grown.loss(&batch).unwrap();
    let grads = loss.total.backward().unwrap();
    let vars = grown.varmap().data().lock().unwrap();
    let w = vars.get("enc.neighbour.weight").unwrap();
    assert_gradient(&grads, w, "enc.neighbour.weight");
    // A map that copies each patch's left neighbour: changing the top-left patch then changes
    // its right neighbour's token far more than a distant one's.
    let cfg = grown.config().clone();
    let d = cfg.d_model;
    let copy_left: Vec<f32> = (0..d * 9 * d)
        .map(|i| f32::from(i % (9 * d) == 3 * d + i / (9 * d)))
        .collect();
    w.set(&candle_core::Tensor::from_vec(copy_left, (d, 9 * d), &Device::Cpu).unwrap())
        .unwrap();
    drop(vars);
    let (n, pd) = (cfg.num_patches(), cfg.patch_dim());
    let text = candle_core::Tensor::from_vec(
        etchr_model::encoder::text_ids(&cfg, "the red star", ""),
        (1, cfg.text_len()),
        &Device::Cpu,
    )
    .unwrap();
    let run = |patches: Vec<f32>| {
        let p = candle_core::Tensor::from_vec(patches, (1, n, pd), &Device::Cpu).unwrap();
        grown
            .encoder()
            .forward(&p, &text, false)
            .unwrap()
            .image()
            .unwrap()
    };
    let base = run(vec![0.1; n * pd]);
    let mut changed = vec![0.1; n * pd];
    changed[..pd].iter_mut().for_each(|v| *v = 0.9); // patch 0, the top-left corner
    let diff = (run(changed) - base)
        .unwrap()
        .abs()
        .unwrap()
        .sum(2)
        .unwrap();
    let diff = diff.squeeze(0).unwrap().to_vec1::<f32>().unwrap();
    let g = cfg.grid();
    // Attention spreads a little of the change everywhere: compare with a far patch.
    assert!(diff[1] > 10.0 * diff[g * g - 1], "{diff:?}");
}

#[test]
fn teacher_forced_logprobs_match_decoding() {
    // Decode greedily, then score the decoded program as a training target: the training path
    // (explicit ops, teacher forcing, the same masks) must give the decoder's log-probs.
    let model = EditingModel::tiny(8).unwrap();
    let mut rng = Rng(21);
    for i in 0..6 {
        let w = 300 + rng.below(900) as u32;
        let h = 200 + rng.below(900) as u32;
        let img = image(&mut rng, w, h);
        let options = DecodeOptions::sample(3.0, 1.0, i);
        let input = PlanInput::new(
            ImageInput::Decoded(Arc::new(img.clone())),
            "Where is the code?",
        )
        .with_context("ctx")
        .with_options(options);
        let out = model.plan(input).unwrap();
        let ex = TrainExample {
            prepared: Arc::new(
                Prepared::from_image(&img, Frame::identity(w, h), model.config()).unwrap(),
            ),
            question: "Where is the code?".into(),
            context: "ctx".into(),
            tokens: out.tokens.clone(),
            original_size: (w, h),
            cue_regions: Vec::new(),
        };
        let batch = Batch::new(&[ex], &model).unwrap();
        assert_eq!(batch.forced, 0);
        let lp: f32 = model
            .loss(&batch)
            .unwrap()
            .logprobs
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(
            (lp as f64 - out.logprob).abs() < 1e-3 * (1.0 + out.logprob.abs()),
            "{lp} vs {}",
            out.logprob
        );
    }
}

#[test]
fn save_then_load_gives_identical_outputs() {
    let model = EditingModel::tiny(42).unwrap();
    let dir = std::env::temp_dir().join(format!("etchr-model-test-{}", std::process::id()));
    model.save(&dir).unwrap();
    let loaded = EditingModel::load(&dir, &Device::Cpu).unwrap();
    let bytes = EditingModel::load_bytes(
        &std::fs::read(dir.join("config.json")).unwrap(),
        &std::fs::read(dir.join("model.safetensors")).unwrap(),
        &Device::Cpu,
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(loaded.config(), model.config());
    assert_eq!(loaded.num_params(), model.num_params());
    let mut rng = Rng(77);
    for i in 0..5 {
        let input = random_input(&mut rng, DecodeOptions::sample(2.0, 0.95, i));
        let a = model.plan(input.clone()).unwrap();
        let b = loaded.plan(input.clone()).unwrap();
        let c = bytes.plan(input).unwrap();
        assert_eq!(a.tokens, b.tokens);
        assert_eq!(a.program, b.program);
        assert_eq!(a.logprob, b.logprob);
        assert_eq!(a.tokens, c.tokens);
    }
    // A different seed is a different model; a mismatched config is refused.
    let other = EditingModel::tiny(43).unwrap();
    assert_ne!(
        other.varmap().data().lock().unwrap()["enc.patch.weight"]
            .to_vec2::<f32>()
            .unwrap(),
        model.varmap().data().lock().unwrap()["enc.patch.weight"]
            .to_vec2::<f32>()
            .unwrap()
    );
    let mut cfg = ModelConfig::tiny();
    cfg.d_model = 64;
    let dir2 = std::env::temp_dir().join(format!("etchr-model-test2-{}", std::process::id()));
    model.save(&dir2).unwrap();
    std::fs::write(
        dir2.join("config.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    let err = EditingModel::load(&dir2, &Device::Cpu).unwrap_err();
    let _ = std::fs::remove_dir_all(&dir2);
    assert!(err.to_string().contains("weights"), "{err}");
}

#[test]
fn f16_storage_halves_the_file_and_loads_to_the_rounded_weights() {
    let model = EditingModel::tiny(42).unwrap();
    let base = std::env::temp_dir().join(format!("etchr-model-f16-{}", std::process::id()));
    let (full, half) = (base.join("f32"), base.join("f16"));
    model.save(&full).unwrap();
    model.save_as(&half, candle_core::DType::F16).unwrap();
    let size = |d: &std::path::Path| {
        std::fs::metadata(d.join("model.safetensors"))
            .unwrap()
            .len()
    };
    let (full_size, half_size) = (size(&full), size(&half));
    let loaded = EditingModel::load(&half, &Device::Cpu).unwrap();
    let _ = std::fs::remove_dir_all(&base);
    assert!(half_size * 10 < full_size * 6, "{half_size} vs {full_size}");
    let vars = model.varmap().data().lock().unwrap();
    let got = loaded.varmap().data().lock().unwrap();
    for (name, var) in vars.iter() {
        let want = var
            .as_tensor()
            .to_dtype(candle_core::DType::F16)
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let have = got[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(want, have, "{name}");
    }
}

#[test]
fn seeded_weights_are_reproducible() {
    let a = EditingModel::tiny(7).unwrap();
    let b = EditingModel::tiny(7).unwrap();
    let va = a.varmap().data().lock().unwrap();
    let vb = b.varmap().data().lock().unwrap();
    for (k, v) in va.iter() {
        let x = v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let y = vb[k].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(x, y, "{k}");
    }
}

#[test]
fn fused_inference_matches_the_training_path() {
    let model = EditingModel::tiny(2).unwrap();
    let batch = Batch::new(&examples(&model), &model).unwrap();
    let a = model
        .encoder()
        .forward(&batch.patches, &batch.text, false)
        .unwrap();
    let b = model
        .encoder()
        .forward(&batch.patches, &batch.text, true)
        .unwrap();
    let diff = (a.all - b.all)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn encoded_jpeg_input_plans() {
    let model = EditingModel::tiny(9).unwrap();
    let mut rng = Rng(3);
    let img = image(&mut rng, 1500, 1000);
    let jpeg = etchr_ops::encode_image(&img, etchr_ops::OutputFormat::Jpeg(90)).unwrap();
    let out = model
        .plan(
            PlanInput::new(ImageInput::Encoded(jpeg.into()), "q")
                .with_options(DecodeOptions::sample(3.0, 1.0, 1)),
        )
        .unwrap();
    assert_eq!(out.original_size, (1500, 1000));
    assert_valid(&out);
    let bad = model.plan(PlanInput::new(
        ImageInput::Encoded(Arc::from(&b"not an image"[..])),
        "q",
    ));
    assert!(bad.is_err());
}

#[test]
fn cue_targets_are_the_patches_the_cue_regions_cover_in_the_view() {
    // Tiny: 64 px input, 4 × 4 patches of 16 px. 800 × 600 → scale 0.08, padded 8 px top.
    let cfg = ModelConfig::tiny();
    let mut rng = Rng(6);
    let img = image(&mut rng, 800, 600);
    let whole = Prepared::from_image(&img, Frame::identity(800, 600), &cfg).unwrap();
    let lit = |regions: &[Rect], p: &Prepared| -> Vec<usize> {
        etchr_model::batch::cue_patches(regions, p, &cfg)
            .iter()
            .enumerate()
            .filter(|(_, &y)| y > 0.0)
            .map(|(j, _)| j)
            .collect()
    };
    // [0, 0, 100, 100] → input [0, 8, 8, 16]: the top-left patch only; the bottom-right
    // corner → input [56, 48, 64, 56]: the last patch; reversed corners are normalised.
    let corner = Rect::new(0.0, 0.0, 100.0, 100.0);
    let far = Rect::new(800.0, 600.0, 700.0, 500.0);
    assert_eq!(lit(&[corner], &whole), [0]);
    assert_eq!(lit(&[corner, far], &whole), [0, 15]);
    // On a view of the top-left quarter, the far corner is not shown and lights nothing (not
    // even the letterbox padding); the corner region now spans more of the input.
    let crop = Program::from_json(r#"[{"op":"crop","box":[0,0,400,300]}]"#).unwrap();
    let view = etchr_ops::render(&img, &crop, &RenderOptions::default())
        .unwrap()
        .views
        .remove(0);
    let frame = Frame::new(400, 300, view.transform.clone());
    let quarter = Prepared::from_image(&view.image, frame, &cfg).unwrap();
    assert!(lit(&[far], &quarter).is_empty());
    // [0, 0, 100, 100] of a 400 × 300 view at scale 0.16, padded 8: input [0, 8, 16, 24].
    assert_eq!(lit(&[corner], &quarter), [0, 4]);
}

/// Asserts that `var` has a finite, non-zero gradient in `grads`.
fn assert_gradient(grads: &candle_core::backprop::GradStore, var: &candle_core::Var, name: &str) {
    let g: f32 = grads
        .get(var.as_tensor())
        .unwrap_or_else(|| panic!("no gradient for {name}"))
        .abs()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(g > 0.0 && g.is_finite(), "{name}: {g}");
}

/// `old`'s weights grown into `cfg` (through a temporary directory), and the new variables.
fn grown_from(old: &EditingModel, cfg: ModelConfig) -> (EditingModel, Vec<String>) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("etchr-grow-{}-{n}", std::process::id()));
    old.save(&dir).unwrap();
    let grown = EditingModel::load_grown(&dir, cfg, 9, &Device::Cpu).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    grown
}

/// `steps` of plain gradient descent on `batch`'s total loss.
fn descend(model: &EditingModel, batch: &Batch, steps: usize, lr: f64) {
    let vars = model.varmap().all_vars();
    for _ in 0..steps {
        let grads = model.loss(batch).unwrap().total.backward().unwrap();
        for v in &vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                v.set(&(v.as_tensor() - (g * lr).unwrap()).unwrap())
                    .unwrap();
            }
        }
    }
}

#[test]
fn the_cue_head_grows_from_trained_weights_and_learns_where_the_cue_points() {
    // Growing into `cue_head` adds only the zero-initialised head: the same pointer logits,
    // so the same loss on examples without cue targets, and ln 2 more on examples with them
    // (the balanced BCE of zero scores).
    let old = EditingModel::tiny(4).unwrap();
    let cfg = ModelConfig {
        cue_head: true,
        ..ModelConfig::tiny()
    };
    let (grown, new) = grown_from(&old, cfg);
    assert_eq!(new, ["dec.cue.bias", "dec.cue.weight"]);
    let plain = examples(&old);
    let total = |m: &EditingModel, ex: &[TrainExample]| -> f32 {
        let batch = Batch::new(ex, m).unwrap();
        m.loss(&batch).unwrap().total.to_scalar().unwrap()
    };
    assert!((total(&old, &plain) - total(&grown, &plain)).abs() < 1e-5);
    // Cue regions on the first three examples: a corner of each image.
    let mut cued = plain.clone();
    for ex in cued.iter_mut().take(3) {
        ex.cue_regions = vec![Rect::new(0.0, 0.0, 150.0, 150.0)];
    }
    let batch = Batch::new(&cued, &grown).unwrap();
    assert_eq!(batch.n_cue_examples, 3);
    let parts = grown.loss(&batch).unwrap();
    let bce: f32 = parts.cue_bce.to_scalar().unwrap();
    assert!((bce - std::f32::consts::LN_2).abs() < 1e-4, "{bce}");
    assert!((total(&grown, &cued) - total(&old, &cued) - bce).abs() < 1e-4);
    // The head gets a gradient, and plain gradient descent on the loss teaches it the corner.
    let grads = parts.total.backward().unwrap();
    let vars = grown.varmap().data().lock().unwrap();
    assert_gradient(&grads, &vars["dec.cue.weight"], "dec.cue.weight");
    drop(vars);
    descend(&grown, &batch, 40, 0.05);
    let after = grown.loss(&batch).unwrap();
    let bce_after: f32 = after.cue_bce.to_scalar().unwrap();
    let top1: f32 = after.cue_top1.to_scalar().unwrap();
    assert!(bce_after < 0.5 * bce, "{bce} → {bce_after}");
    assert_eq!(top1, 1.0);
}

#[test]
fn the_cue_heads_word_part_grows_in_unchanged_and_binds_a_word_to_where_it_points() {
    // `cue_words` adds a word table and a bilinear word × patch score whose word side starts at
    // zero: growing into it changes nothing, and then the word decides where the head points.
    let base = ModelConfig {
        cue_head: true,
        ..ModelConfig::tiny()
    };
    let old = EditingModel::new(base.clone(), 4, &Device::Cpu).unwrap();
    let cfg = ModelConfig {
        cue_words: 8,
        word_buckets: 64,
        ..base
    };
    let (grown, new) = grown_from(&old, cfg);
    assert_eq!(
        new,
        ["dec.cue_img.weight", "dec.cue_txt.weight", "enc.words"]
    );
    // Two examples with the same image whose questions differ only in a word past the 24
    // question bytes the encoder reads: "left" is about the left edge, "right" the right.
    let (ql, qr) = (
        "where is the thing on the left?",
        "where is the thing on the right?",
    );
    let bytes = grown.config().text_bytes();
    let (il, ir) = (
        etchr_model::encoder::text_ids(grown.config(), ql, "Reasoning so far."),
        etchr_model::encoder::text_ids(grown.config(), qr, "Reasoning so far."),
    );
    assert_eq!(il[..bytes], ir[..bytes]);
    assert_ne!(il[bytes..], ir[bytes..]);
    let mut left = example(&grown, 800, 600, "[]", ql);
    let mut right = example(&grown, 800, 600, "[]", qr);
    left.cue_regions = vec![Rect::new(0.0, 0.0, 100.0, 600.0)];
    right.cue_regions = vec![Rect::new(700.0, 0.0, 800.0, 600.0)];
    let pair = [left, right];
    let total = |m: &EditingModel| -> f32 {
        let batch = Batch::new(&pair, m).unwrap();
        m.loss(&batch).unwrap().total.to_scalar().unwrap()
    };
    assert!((total(&old) - total(&grown)).abs() < 1e-5);
    let batch = Batch::new(&pair, &grown).unwrap();
    // Only the word path can tell the two apart (same image, same bytes): training makes the
    // head point at each question's own edge, which no function of image and bytes can.
    descend(&grown, &batch, 300, 0.05);
    let top1: f32 = grown.loss(&batch).unwrap().cue_top1.to_scalar().unwrap();
    assert_eq!(top1, 1.0);
}

/// Grows `old` into `cfg` and checks the growth: exactly the `expected` variables are new, the
/// loss on `examples` is unchanged, and once a few descent steps have moved the zero-initialised
/// parts every new variable gets a gradient and the loss has fallen.
fn assert_grows_unchanged_then_learns(
    old: &EditingModel,
    cfg: ModelConfig,
    examples: &[TrainExample],
    expected: &[&str],
) {
    let (grown, new) = grown_from(old, cfg);
    assert_eq!(new, expected);
    let total = |m: &EditingModel| -> f32 {
        let batch = Batch::new(examples, m).unwrap();
        m.loss(&batch).unwrap().total.to_scalar().unwrap()
    };
    let before = total(&grown);
    assert!((total(old) - before).abs() < 1e-5);
    let batch = Batch::new(examples, &grown).unwrap();
    descend(&grown, &batch, 3, 0.05);
    let grads = grown.loss(&batch).unwrap().total.backward().unwrap();
    let vars = grown.varmap().data().lock().unwrap();
    for name in &new {
        assert_gradient(&grads, &vars[name], name);
    }
    drop(vars);
    assert!(total(&grown) < before);
}

#[test]
fn the_conv_stem_grows_in_unchanged_and_then_learns() {
    // `conv_stem` adds a convolutional stem whose output map starts at zero.
    let old = EditingModel::tiny(5).unwrap();
    let cfg = ModelConfig {
        conv_stem: 8,
        ..ModelConfig::tiny()
    };
    assert_grows_unchanged_then_learns(
        &old,
        cfg,
        &examples(&old),
        &[
            "enc.stem.cell.bias",
            "enc.stem.cell.weight",
            "enc.stem.conv.bias",
            "enc.stem.conv.weight",
            "enc.stem.out.weight",
        ],
    );
}

#[test]
fn the_direct_cue_path_grows_in_unchanged_and_then_learns() {
    // `cue_direct` adds a bilinear word × pre-encoder-token score whose word side starts at
    // zero; its gradient needs examples with cue targets.
    let base = ModelConfig {
        cue_head: true,
        cue_words: 8,
        word_buckets: 64,
        ..ModelConfig::tiny()
    };
    let old = EditingModel::new(base.clone(), 6, &Device::Cpu).unwrap();
    let mut cued = examples(&old);
    for ex in cued.iter_mut() {
        ex.cue_regions = vec![Rect::new(0.0, 0.0, 150.0, 150.0)];
    }
    let cfg = ModelConfig {
        cue_direct: true,
        ..base
    };
    assert!(ModelConfig {
        cue_words: 0,
        ..cfg.clone()
    }
    .validate()
    .is_err());
    assert_grows_unchanged_then_learns(
        &old,
        cfg,
        &cued,
        &["dec.cue_direct_img.weight", "dec.cue_direct_txt.weight"],
    );
}

#[test]
fn sampled_box_sizes_spread_around_the_same_choices_and_greedy_plans_ignore_them() {
    let model = EditingModel::tiny(4).unwrap();
    let mut rng = Rng(21);
    let (mut boxes, mut resized) = (0, 0);
    for i in 0..24u64 {
        let base = random_input(&mut rng, DecodeOptions::default());
        let noisy_greedy = DecodeOptions::default().with_size_std(1.0);
        assert_eq!(
            model.plan(base.clone()).unwrap().tokens,
            model
                .plan(base.clone().with_options(noisy_greedy))
                .unwrap()
                .tokens,
            "a greedy plan has no size noise"
        );
        let sampled = DecodeOptions::sample(1.0, 1.0, i);
        let plain = model.plan(base.clone().with_options(sampled)).unwrap();
        let noisy = model
            .plan(base.with_options(sampled.with_size_std(1.0)))
            .unwrap();
        assert_valid(&noisy);
        // The noise is drawn after the first pointer's choice: everything up to that choice is
        // the same, and a box chosen there differs in size only.
        let Some(j) = plain.steps.iter().position(|s| s.patch.is_some()) else {
            continue;
        };
        assert_eq!(plain.steps[..j], noisy.steps[..j]);
        assert_eq!(plain.steps[j].patch, noisy.steps[j].patch);
        if let (Token::Box(a), Token::Box(b)) = (plain.steps[j].token, noisy.steps[j].token) {
            boxes += 1;
            let size = |t: [u16; 4]| (t[2] - t[0], t[3] - t[1]);
            if size(a) != size(b) {
                resized += 1;
            }
        }
    }
    assert!(boxes >= 5, "only {boxes} programs started with a box");
    assert!(
        resized * 10 >= boxes * 7,
        "{resized} of {boxes} first boxes changed size"
    );
}
