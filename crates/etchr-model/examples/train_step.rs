//! Times one training step (forward, backward, AdamW) of the default model at batch 32 on
//! synthetic examples: `cargo run --release -p etchr-model --example train_step [batch] [steps]`.

use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use etchr_model::{
    program_to_tokens, Batch, EditingModel, Frame, ModelConfig, Prepared, TrainExample,
};
use etchr_ops::Program;
use std::sync::Arc;
use std::time::Instant;

fn cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let batch_size = args.first().copied().unwrap_or(32);
    let steps = args.get(1).copied().unwrap_or(5);
    let device = etchr_model::select_device(std::env::var_os("ETCHR_GPU").is_some());
    let model = EditingModel::new(ModelConfig::default(), 0, &device).unwrap();
    println!("params: {}", model.num_params());
    let programs = [
        r#"[{"op":"crop","box":[100,100,400,300]},{"op":"zoom","factor":2},{"op":"box","box":[150,150,300,250]}]"#,
        r#"[{"op":"highlight","box":[10,20,200,600]},{"op":"crop","box":[0,0,300,700]},{"op":"zoom","factor":1.5}]"#,
        r#"[{"op":"crop","box":[300,300,500,400]},{"op":"rotate","angle":270},{"op":"zoom","factor":3}]"#,
        r#"[{"op":"jigsaw_solve","rows":2,"cols":4},{"op":"crop","box":[0,300,600,450]},{"op":"zoom","factor":1.2}]"#,
        r#"[{"op":"path","from":[20,30],"to":[650,600]},{"op":"crop","box":[600,550,700,650]},{"op":"zoom","factor":4}]"#,
    ];
    let examples: Vec<TrainExample> = (0..batch_size)
        .map(|i| {
            let (w, h) = (800 + (i as u32 % 5) * 200, 700 + (i as u32 % 3) * 150);
            let img = etchr_ops::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x + i as u32) as u8, y as u8, (x ^ y) as u8]));
            let frame = Frame::identity(w, h);
            let p = Program::from_json(programs[i % programs.len()]).unwrap();
            TrainExample {
                tokens: program_to_tokens(&p, &frame, model.vocab()).unwrap(),
                prepared: Arc::new(Prepared::from_image(&img, frame, model.config()).unwrap()),
                question: format!("What is the code next to \"K-{i}\" in the picture? Answer with the code."),
                context: "The label is small and sits in the lower part of the image; zoom in to read it.".into(),
                original_size: (w, h),
                cue_regions: Vec::new(),
            }
        })
        .collect();
    let mut opt = AdamW::new(
        model.varmap().all_vars(),
        ParamsAdamW {
            lr: 3e-4,
            ..Default::default()
        },
    )
    .unwrap();
    let (mut tb, mut tf, mut tbw, mut to, mut cpu) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for s in 0..steps + 1 {
        let (t0, c0) = (Instant::now(), cpu_ms());
        let batch = Batch::new(&examples, &model).unwrap();
        let t1 = Instant::now();
        let loss = model.loss(&batch).unwrap();
        let total: f32 = loss.total.to_scalar().unwrap();
        let t2 = Instant::now();
        let grads = loss.total.backward().unwrap();
        let t3 = Instant::now();
        opt.step(&grads).unwrap();
        let t4 = Instant::now();
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        println!(
            "step {s}: loss {total:.4}  batch {:.1} ms  forward {:.1} ms  backward {:.1} ms  adamw {:.1} ms  total {:.1} ms",
            ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t3, t4), ms(t0, t4)
        );
        if s > 0 {
            cpu += cpu_ms() - c0;
            tb += ms(t0, t1);
            tf += ms(t1, t2);
            tbw += ms(t2, t3);
            to += ms(t3, t4);
        }
    }
    let n = steps as f64;
    println!(
        "mean over {steps} steps at batch {batch_size}: batch {:.1} ms, forward {:.1} ms, backward {:.1} ms, adamw {:.1} ms, total {:.1} ms wall, {:.1} ms process CPU",
        tb / n, tf / n, tbw / n, to / n, (tb + tf + tbw + to) / n, cpu / n
    );
}
