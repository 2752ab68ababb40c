//! One plan for a 2048 × 2048 JPEG on the CPU, end to end: JPEG decode (reduced DCT scale),
//! letterbox and patches, encoder, constrained decoding and validation. Target: p50 ≤ 50 ms.
//!
//! `cargo bench -p etchr-model --bench plan_latency` prints JSON and writes
//! `bench/out/plan-latency.json`. The weights are the default architecture at a fixed seed:
//! latency does not depend on training, except through program length, so both greedy plans
//! and long sampled programs (6–8 ops) are timed. `coarse_to_fine` times the planner's
//! two-call path (full decode, plan, `refine_view`, plan on the view). `batches` times
//! `plan_batch` at 1, 8 and 32 requests (the worker's micro-batching): plans/s and the model's
//! own share per batch. `ETCHR_BENCH_GPU=1` runs it on CUDA device 0 (a `--features cuda` build).

use etchr_model::{select_device, DecodeOptions, EditingModel, ImageInput, ModelConfig, PlanInput};
use std::sync::Arc;
use std::time::Instant;

fn photo(w: u32, h: u32) -> etchr_ops::RgbImage {
    // Smooth shading, texture and sharp edges, so the JPEG has realistic entropy.
    let mut s = 0x1234_5678u32;
    etchr_ops::RgbImage::from_fn(w, h, |x, y| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        let n = s & 15;
        let edge = if (x / 97 + y / 61) % 3 == 0 { 60 } else { 0 };
        image::Rgb([
            ((x * 255 / w) + n + edge).min(255) as u8,
            ((y * 255 / h) + n).min(255) as u8,
            (((x ^ y) & 127) + n * 2) as u8,
        ])
    })
}

/// CPU time of the whole process, in ms: on a shared machine this, not wall time, says what
/// a plan costs (with one thread it is the latency an idle machine would show).
fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Run {
    p50: f64,
    p90: f64,
    cpu_p50: f64,
    mean: f64,
    pre: f64,
    enc: f64,
    dec: f64,
    tokens: f64,
}

fn run(
    model: &EditingModel,
    jpeg: &Arc<[u8]>,
    iters: usize,
    options: impl Fn(usize) -> DecodeOptions,
) -> Run {
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let (mut pre, mut enc, mut dec, mut toks) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..iters {
        let input = PlanInput::new(
            ImageInput::Encoded(jpeg.clone()),
            r#"What code is printed on the tag next to "K-17"?"#,
        )
        .with_context(
            "The tags are small; the one after K-17 is in the lower right. Zoom in on it.",
        )
        .with_options(options(i));
        let (start, c0) = (Instant::now(), cpu_ms());
        let out = model.plan(input).expect("plan");
        times.push(start.elapsed().as_secs_f64() * 1e3);
        cpu.push(cpu_ms() - c0);
        pre += out.timings.preprocess_ms;
        enc += out.timings.encode_ms;
        dec += out.timings.decode_ms;
        toks += out.tokens.len() as f64;
    }
    let n = iters as f64;
    let mean = times.iter().sum::<f64>() / n;
    times.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    Run {
        cpu_p50: percentile(&cpu, 0.5),
        p50: percentile(&times, 0.5),
        p90: percentile(&times, 0.9),
        mean,
        pre: pre / n,
        enc: enc / n,
        dec: dec / n,
        tokens: toks / n,
    }
}

/// The planner's coarse-to-fine path, end to end from the JPEG: decode (full size, as the
/// server does before the loop), a first plan, `refine_view` around a crop an eighth of the
/// image wide (forced, so every iteration pays for the second call: the worst case), and the
/// second plan on that view. Wall-clock p50 / p90 in ms.
fn run_refined(model: &EditingModel, jpeg: &Arc<[u8]>, iters: usize) -> (f64, f64) {
    let question = r#"What code is printed on the tag next to "K-17"?"#;
    let crop = etchr_ops::Program(vec![etchr_ops::Op::Crop {
        region: etchr_ops::Rect::new(1400.0, 1500.0, 1656.0, 1628.0),
    }]);
    let mut times = Vec::new();
    for _ in 0..iters {
        let start = Instant::now();
        let img = Arc::new(
            etchr_ops::decode_image(jpeg, &etchr_ops::DecodeLimits::default()).expect("decode"),
        );
        let first = model
            .plan(PlanInput::new(ImageInput::Decoded(img.clone()), question))
            .expect("plan");
        let (view, tf) = etchr_model::refine_view(&img, &etchr_ops::Transform::identity(), &crop)
            .expect("a small crop refines");
        let second = model
            .plan(
                PlanInput::new(ImageInput::Decoded(Arc::new(view)), question)
                    .on_view(tf, (img.width(), img.height())),
            )
            .expect("plan");
        std::hint::black_box((first, second));
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), percentile(&times, 0.9))
}

/// Batch throughput: `plan_batch` over `batch` requests at once (the worker's micro-batching),
/// end to end from the JPEG. Returns JSON with wall ms per batch, plans/s, and the model's own
/// share (encoder + decoder ms per batch), which is what a GPU speeds up.
fn run_batches(model: &EditingModel, jpeg: &Arc<[u8]>, batch: usize, rounds: usize) -> String {
    let inputs = || {
        (0..batch)
            .map(|i| {
                PlanInput::new(
                    ImageInput::Encoded(jpeg.clone()),
                    r#"What code is printed on the tag next to "K-17"?"#,
                )
                .with_options(DecodeOptions::sample(1.0, 1.0, i as u64))
            })
            .collect::<Vec<_>>()
    };
    model.plan_batch(inputs()); // warm-up at this shape
    let (mut wall, mut model_ms) = (Vec::new(), 0.0);
    for _ in 0..rounds {
        let start = Instant::now();
        let out = model.plan_batch(inputs());
        wall.push(start.elapsed().as_secs_f64() * 1e3);
        let t = &out[0].as_ref().expect("plan").timings;
        model_ms += t.encode_ms + t.decode_ms;
    }
    wall.sort_by(f64::total_cmp);
    let p50 = percentile(&wall, 0.5);
    format!(
        r#"{{"batch":{batch},"p50_ms_per_batch":{p50:.2},"plans_per_s":{:.1},"model_ms_per_batch":{:.2}}}"#,
        batch as f64 * 1e3 / p50,
        model_ms / rounds as f64
    )
}

fn json(r: &Run) -> String {
    format!(
        r#"{{"p50_ms":{:.2},"p90_ms":{:.2},"cpu_p50_ms":{:.2},"mean_ms":{:.2},"preprocess_ms":{:.2},"encode_ms":{:.2},"decode_ms":{:.2},"tokens":{:.1}}}"#,
        r.p50, r.p90, r.cpu_p50, r.mean, r.pre, r.enc, r.dec, r.tokens
    )
}

fn main() {
    let device = select_device(std::env::var_os("ETCHR_BENCH_GPU").is_some());
    let cfg = ModelConfig::default();
    let model = EditingModel::new(cfg.clone(), 0, &device).expect("model");
    let jpeg: Arc<[u8]> =
        etchr_ops::encode_image(&photo(2048, 2048), etchr_ops::OutputFormat::Jpeg(90))
            .expect("jpeg")
            .into();
    let iters: usize = std::env::var("ETCHR_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    // Warm up allocators and thread pools.
    run(&model, &jpeg, 3, |_| DecodeOptions::default());
    let greedy = run(&model, &jpeg, iters, |_| DecodeOptions::default());
    let long = run(&model, &jpeg, iters, |i| {
        DecodeOptions::sample(6.0, 1.0, i as u64)
    });
    let (refined_p50, refined_p90) = run_refined(&model, &jpeg, iters);
    let rounds = (iters / 4).max(3);
    let batches: Vec<String> = [1, 8, 32]
        .iter()
        .map(|&b| run_batches(&model, &jpeg, b, rounds))
        .collect();
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(0, |n| n.get()));
    let out = format!(
        r#"{{"bench":"plan_latency","input":"2048x2048 JPEG q90 ({} bytes)","device":"{}","threads":{},"load_avg":"{}","params":{},"image_size":{},"patch_size":{},"d_model":{},"encoder_layers":{},"decoder_layers":{},"target_p50_ms":50,"greedy":{},"long_programs":{},"coarse_to_fine":{{"p50_ms":{:.2},"p90_ms":{:.2}}},"batches":[{}],"iters":{}}}"#,
        jpeg.len(),
        if device.is_cuda() { "cuda:0" } else { "cpu" },
        threads,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        model.num_params(),
        cfg.image_size,
        cfg.patch_size,
        cfg.d_model,
        cfg.encoder_layers,
        cfg.decoder_layers,
        json(&greedy),
        json(&long),
        refined_p50,
        refined_p90,
        batches.join(","),
        iters
    );
    println!("{out}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/out");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(dir.join("plan-latency.json"), out + "\n");
    }
}
