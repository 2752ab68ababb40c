//! `etchr train glyphs`: trains the glyph classifier the planner reads quoted keys with
//! (`etchr_model::glyphs`).
//!
//! Examples are lines of text rendered here, in every face given (the four the generator
//! draws with, plus the faces of any `--fonts`), at cap heights of 6 to 34 px, dark on light
//! and light on dark, sometimes boxed or ruled and sometimes resampled; each line is cut into
//! glyphs by the same `line_glyphs` the planner reads with, and a glyph is labelled with the
//! character whose ink it covers. The split seeds differ, and the faces of `--held-out-font`
//! are only validated on, each on its own, so the report says how far the reading carries
//! beyond the faces trained on. A run is a few minutes on two cores; it writes `best/` (by
//! validation accuracy) and `metrics.json`. `--evaluate DIR` trains nothing: it reports the
//! same accuracies for the classifier in DIR (the shipped one, say).

use crate::optim::{clip_scale, grad_norm, AdamW, AdamWParams};
use crate::schedule::Schedule;
use ab_glyph::{Font, FontArc, PxScale, ScaleFont};
use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use etchr_data::draw::Face;
use etchr_data::rng::Rng;
use etchr_model::glyphs::{GlyphClassifier, GlyphConfig, CHARSET};
use etchr_ops::render::{line_glyphs, GLYPH_FEATURES};
use etchr_ops::Rect;
use image::{imageops, Rgb, RgbImage};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Args)]
pub struct GlyphArgs {
    /// Output directory: `best/` (config.json + model.safetensors) and `metrics.json`.
    #[arg(long, default_value = "runs/glyphs")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 4000)]
    pub steps: u64,
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Lines rendered for training (about nine glyphs each).
    #[arg(long, default_value_t = 8000)]
    pub lines: usize,
    #[arg(long, default_value_t = 800)]
    pub val_lines: usize,
    #[arg(long, default_value_t = 17)]
    pub seed: u64,
    #[arg(long, default_value_t = 256)]
    pub hidden: usize,
    /// Extra faces to train on: a `.ttf` / `.otf` file, or a directory of them (repeatable).
    #[arg(long)]
    pub fonts: Vec<PathBuf>,
    /// Faces never trained on, each validated on separately: a `.ttf` / `.otf` file, or a
    /// directory of them (repeatable).
    #[arg(long, alias = "held-out-fonts")]
    pub held_out_font: Vec<PathBuf>,
    /// Train nothing: report the accuracies of the classifier in this directory
    /// (config.json + model.safetensors, e.g. models/glyphs) on the same lines a run
    /// validates on.
    #[arg(long, value_name = "DIR")]
    pub evaluate: Option<PathBuf>,
    /// Validate every this many steps.
    #[arg(long, default_value_t = 500)]
    pub eval_every: u64,
}

/// Glyph examples: features row-major `[n, GLYPH_FEATURES]`, one class per row.
#[derive(Default)]
pub struct Examples {
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
}

impl Examples {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn rows(&self, idx: &[usize], device: &Device) -> Result<(Tensor, Vec<u32>)> {
        let mut x = Vec::with_capacity(idx.len() * GLYPH_FEATURES);
        for &i in idx {
            x.extend_from_slice(&self.features[i * GLYPH_FEATURES..(i + 1) * GLYPH_FEATURES]);
        }
        let labels = idx.iter().map(|&i| self.labels[i]).collect();
        Ok((
            Tensor::from_vec(x, (idx.len(), GLYPH_FEATURES), device)?,
            labels,
        ))
    }
}

#[derive(Debug, Serialize)]
struct Metrics {
    steps: u64,
    train_glyphs: usize,
    val_glyphs: usize,
    /// Glyph accuracy on the validation lines (faces trained on, another seed).
    val_accuracy: f64,
    /// Same, ignoring case (what key matching needs).
    val_accuracy_nocase: f64,
    /// Each held-out face: its file, its glyphs, its accuracy ignoring case.
    held_out: Vec<HeldOut>,
    /// The mean of the held-out faces' accuracies (each face weighs the same).
    held_out_mean_nocase: Option<f64>,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct HeldOut {
    font: String,
    glyphs: usize,
    accuracy_nocase: f64,
}

pub fn run_glyphs(args: GlyphArgs) -> Result<()> {
    anyhow::ensure!(
        args.lines > 0 && args.batch > 0,
        "--lines and --batch must be positive"
    );
    let started = std::time::Instant::now();
    let mut faces: Vec<FontArc> = Face::ALL
        .iter()
        .map(|f| FontArc::new(f.font().clone()))
        .collect();
    for path in &args.fonts {
        faces.extend(faces_at(path)?.into_iter().map(|(_, face)| face));
    }
    let mut held_out_faces = Vec::new();
    for path in &args.held_out_font {
        held_out_faces.extend(faces_at(path)?);
    }
    let charset: Vec<char> = CHARSET.chars().collect();
    // An evaluation renders no training lines.
    let train_lines = if args.evaluate.is_some() {
        0
    } else {
        args.lines
    };
    eprintln!(
        "rendering {} + {} lines in {} faces, {} lines in each of {} held-out faces",
        train_lines,
        args.val_lines,
        faces.len(),
        args.val_lines,
        held_out_faces.len()
    );
    let train = examples(&faces, &charset, train_lines, args.seed);
    let val = examples(&faces, &charset, args.val_lines, args.seed ^ 0x5e_ed0f_1a11);
    let held_out: Vec<(String, Examples)> = held_out_faces
        .iter()
        .map(|(path, face)| {
            let lines = examples(
                std::slice::from_ref(face),
                &charset,
                args.val_lines,
                args.seed ^ 7,
            );
            (path.display().to_string(), lines)
        })
        .collect();
    let device = Device::Cpu;
    if let Some(dir) = &args.evaluate {
        let model = GlyphClassifier::load(dir, &device)
            .with_context(|| format!("loading the glyph classifier in {}", dir.display()))?;
        let acc = accuracy(&model, &val, &charset)?;
        return report(&args, &model, acc, &train, &val, &held_out, started);
    }
    anyhow::ensure!(!train.is_empty(), "no glyph examples were cut");
    let cfg = GlyphConfig {
        charset: CHARSET.into(),
        hidden: args.hidden,
    };
    let model = GlyphClassifier::new(cfg, args.seed, &device)?;
    let mut opt = AdamW::new(model.varmap(), AdamWParams::default())?;
    let schedule = Schedule {
        base_lr: args.lr,
        min_lr: args.lr / 20.0,
        warmup_steps: args.steps / 20,
        total_steps: args.steps,
    };
    let bar = ProgressBar::new(args.steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} eta {eta_precise} {msg}",
        )
        .expect("a valid template"),
    );
    let mut rng = Rng::new(args.seed ^ 0xba7c);
    let mut best = (-1.0_f64, 0.0_f64);
    let best_dir = args.out.join("best");
    for step in 0..args.steps {
        let idx: Vec<usize> = (0..args.batch)
            .map(|_| rng.below(train.len() as u64) as usize)
            .collect();
        let (x, labels) = train.rows(&idx, &device)?;
        let loss = nll(&model, &x, &labels)?;
        let grads = loss.backward()?;
        let norm = grad_norm(&grads, opt.vars().map(|(_, v)| v))?;
        opt.step(&grads, schedule.lr(step), clip_scale(norm, 1.0))?;
        bar.inc(1);
        if step % 50 == 0 {
            bar.set_message(format!("loss {:.3}", loss.to_scalar::<f32>()?));
        }
        if (step + 1) % args.eval_every == 0 || step + 1 == args.steps {
            let acc = accuracy(&model, &val, &charset)?;
            bar.println(format!(
                "step {}: val accuracy {:.4} (ignoring case {:.4})",
                step + 1,
                acc.0,
                acc.1
            ));
            if acc.0 > best.0 {
                best = acc;
                model.save(&best_dir, DType::F16)?;
            }
        }
    }
    bar.finish();
    let best_model = GlyphClassifier::load(&best_dir, &device)?;
    report(&args, &best_model, best, &train, &val, &held_out, started)
}

/// Writes and prints `metrics.json` for `model`, whose accuracy on `val` is `val_acc`: it is
/// validated on each held-out face here.
fn report(
    args: &GlyphArgs,
    model: &GlyphClassifier,
    val_acc: (f64, f64),
    train: &Examples,
    val: &Examples,
    held_out: &[(String, Examples)],
    started: std::time::Instant,
) -> Result<()> {
    let charset: Vec<char> = CHARSET.chars().collect();
    let held_out = held_out
        .iter()
        .map(|(font, ex)| {
            Ok(HeldOut {
                font: font.clone(),
                glyphs: ex.len(),
                accuracy_nocase: accuracy(model, ex, &charset)?.1,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let held_out_mean_nocase = (!held_out.is_empty())
        .then(|| held_out.iter().map(|h| h.accuracy_nocase).sum::<f64>() / held_out.len() as f64);
    let metrics = Metrics {
        steps: if args.evaluate.is_some() {
            0
        } else {
            args.steps
        },
        train_glyphs: train.len(),
        val_glyphs: val.len(),
        val_accuracy: val_acc.0,
        val_accuracy_nocase: val_acc.1,
        held_out,
        held_out_mean_nocase,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_string_pretty(&metrics)?;
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("metrics.json"), json.clone() + "\n")?;
    println!("{json}");
    Ok(())
}

/// Mean negative log-likelihood of `labels`.
pub fn nll(model: &GlyphClassifier, x: &Tensor, labels: &[u32]) -> Result<Tensor> {
    let lp = model.log_probs(x)?;
    let n = labels.len();
    let mut onehot = vec![0.0_f32; n * model.classes()];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * model.classes() + l as usize] = 1.0;
    }
    let onehot = Tensor::from_vec(onehot, (n, model.classes()), x.device())?;
    Ok(((lp * onehot)?.sum_all()? / -(n as f64))?)
}

/// Accuracy on `ex`, exact and ignoring case.
fn accuracy(model: &GlyphClassifier, ex: &Examples, charset: &[char]) -> Result<(f64, f64)> {
    let (mut right, mut nocase) = (0usize, 0usize);
    let all: Vec<usize> = (0..ex.len()).collect();
    for chunk in all.chunks(4096) {
        let (x, labels) = ex.rows(chunk, model.device())?;
        let got = model.log_probs(&x)?.argmax(1)?.to_vec1::<u32>()?;
        for (g, l) in got.into_iter().zip(labels) {
            right += (g == l) as usize;
            let (a, b) = (charset[g as usize], charset[l as usize]);
            nocase += a.eq_ignore_ascii_case(&b) as usize;
        }
    }
    let n = ex.len().max(1) as f64;
    Ok((right as f64 / n, nocase as f64 / n))
}

fn font_at(path: &Path) -> Result<FontArc> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    FontArc::try_from_vec(bytes)
        .with_context(|| format!("{} is no TrueType or OpenType face", path.display()))
}

/// The face at `path`, or the `.ttf` / `.otf` faces of the directory `path` (in name order,
/// not descending into subdirectories), each with its file.
fn faces_at(path: &Path) -> Result<Vec<(PathBuf, FontArc)>> {
    let is_face = |p: &Path| {
        p.extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("ttf") || x.eq_ignore_ascii_case("otf"))
    };
    let mut paths: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_face(p))
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    paths.sort();
    anyhow::ensure!(
        !paths.is_empty(),
        "no .ttf or .otf face in {}",
        path.display()
    );
    paths
        .into_iter()
        .map(|p| font_at(&p).map(|face| (p, face)))
        .collect()
}

/// `lines` rendered lines in `faces`, cut and labelled.
pub fn examples(faces: &[FontArc], charset: &[char], lines: usize, seed: u64) -> Examples {
    let mut out = Examples::default();
    for i in 0..lines {
        let mut rng = Rng::for_item(0x91f, seed, i as u64);
        let face = &faces[rng.below(faces.len() as u64) as usize];
        let text = sample_text(&mut rng, charset);
        let (img, boxes) = render_line(&mut rng, face, &text);
        let full = Rect::full(img.width(), img.height());
        for g in line_glyphs(&img, full) {
            let Some((c, iou)) = boxes
                .iter()
                .map(|(c, b)| (*c, b.iou(&g.region)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
            else {
                continue;
            };
            // A glyph cut through or merged with its neighbour teaches nothing.
            if iou < 0.5 {
                continue;
            }
            let class = charset
                .iter()
                .position(|&k| k == c)
                .expect("sampled from the charset");
            out.features.extend_from_slice(&g.features);
            out.labels.push(class as u32);
        }
    }
    out
}

const WORDS: [&str; 12] = [
    "Juniper", "Harbor", "Invoice", "Route", "Serial", "Voucher", "Sensor", "Ticket", "Willow",
    "Cargo", "Permit", "Pallet",
];

/// Text like what the planner reads: codes, keys (a word and a number), numbers, headers,
/// and random runs of the charset so rare characters are seen too.
fn sample_text(rng: &mut Rng, charset: &[char]) -> String {
    let pick = |rng: &mut Rng, set: &[char], n: usize| -> String {
        (0..n)
            .map(|_| set[rng.below(set.len() as u64) as usize])
            .collect()
    };
    let upper_digits: Vec<char> = charset
        .iter()
        .copied()
        .filter(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        .collect();
    let lower: Vec<char> = charset
        .iter()
        .copied()
        .filter(char::is_ascii_lowercase)
        .collect();
    let n = rng.int(4, 6) as usize;
    match rng.below(6) {
        0 => pick(rng, &upper_digits, n),
        1 => {
            let word = format!(
                "{}{}",
                pick(rng, &upper_digits[10..], 1),
                pick(rng, &lower, n)
            );
            format!("{word} {}", rng.int(1, 99))
        }
        2 => format!("{}: {}", rng.pick_str(&WORDS), pick(rng, &upper_digits, n)),
        3 => format!("{}.{} {}%", rng.int(0, 999), rng.int(0, 99), rng.int(1, 99)),
        4 => format!("{} {}", rng.pick_str(&WORDS), pick(rng, &lower, n)),
        _ => {
            let len = rng.int(3, 10) as usize;
            let mut s = pick(rng, charset, len);
            if rng.chance(0.5) {
                s.insert(rng.below(s.len() as u64) as usize, ' ');
            }
            s
        }
    }
}

/// `text` drawn in `face` on a line of its own, with each character's ink box.
fn render_line(rng: &mut Rng, face: &FontArc, text: &str) -> (RgbImage, Vec<(char, Rect)>) {
    let cap_ratio = {
        let g = face.glyph_id('H').with_scale(PxScale::from(100.0));
        face.outline_glyph(g)
            .map_or(0.73, |o| (o.px_bounds().height() / 100.0) as f64)
    };
    let size = rng.range(6.0, 34.0) / cap_ratio.max(0.3);
    let scale = PxScale::from(size as f32);
    let scaled = face.as_scaled(scale);
    let tracking = rng.range(-0.02, 0.08) * size;
    let width = (text.chars().count() as f64 * size * 0.8 + size * 2.0) as u32;
    let height = (size * 2.0) as u32;
    let inverted = rng.chance(0.15);
    let paper_l = rng.int(175, 255) as u8;
    let ink_l = rng.int(0, 100) as u8;
    let tint = |rng: &mut Rng, l: u8| -> [u8; 3] {
        let t = |rng: &mut Rng| (l as i64 + rng.int(-25, 25)).clamp(0, 255) as u8;
        [t(rng), t(rng), t(rng)]
    };
    let (paper, ink) = if inverted {
        (tint(rng, 255 - paper_l), tint(rng, 255 - ink_l))
    } else {
        (tint(rng, paper_l), tint(rng, ink_l))
    };
    let mut img = RgbImage::from_pixel(width.max(8), height.max(8), Rgb(paper));
    let (mut x, y) = (size * rng.range(0.3, 0.8), size * rng.range(0.2, 0.5));
    let mut boxes = Vec::new();
    let mut prev = None;
    for c in text.chars() {
        let id = face.glyph_id(c);
        if let Some(p) = prev {
            x += scaled.kern(p, id) as f64;
        }
        prev = Some(id);
        if c != ' ' {
            let g = id.with_scale_and_position(
                scale,
                ab_glyph::point(x as f32, (y + scaled.ascent() as f64) as f32),
            );
            if let Some(outline) = face.outline_glyph(g) {
                let b = outline.px_bounds();
                let mut ink_box: Option<Rect> = None;
                outline.draw(|gx, gy, cov| {
                    let (px, py) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                    if px < 0 || py < 0 || px >= img.width() as i64 || py >= img.height() as i64 {
                        return;
                    }
                    let p = img.get_pixel_mut(px as u32, py as u32);
                    for (c, &i) in p.0.iter_mut().zip(ink.iter()) {
                        *c = (*c as f32 * (1.0 - cov) + i as f32 * cov).round() as u8;
                    }
                    if cov > 0.5 {
                        let r = Rect::new(px as f64, py as f64, px as f64 + 1.0, py as f64 + 1.0);
                        ink_box = Some(ink_box.map_or(r, |k| k.union(&r)));
                    }
                });
                if let Some(r) = ink_box {
                    boxes.push((c, r));
                }
            }
        }
        x += scaled.h_advance(id) as f64 + if c == ' ' { 0.0 } else { tracking };
    }
    // A tag's outline or a table's rules around some lines.
    if rng.chance(0.3) {
        let (w, h) = (img.width(), img.height());
        let rule = |img: &mut RgbImage, y: u32| {
            for xx in 0..w {
                img.put_pixel(xx, y.min(h - 1), Rgb(ink));
            }
        };
        rule(&mut img, 0);
        rule(&mut img, h - 1);
    }
    if rng.chance(0.3) {
        let f = rng.range(0.6, 1.6);
        let (w, h) = (
            ((img.width() as f64 * f) as u32).max(8),
            ((img.height() as f64 * f) as u32).max(8),
        );
        let sx = w as f64 / img.width() as f64;
        let sy = h as f64 / img.height() as f64;
        img = imageops::resize(&img, w, h, imageops::FilterType::Triangle);
        for (_, b) in &mut boxes {
            *b = Rect::new(b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy);
        }
    }
    (img, boxes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etchr_model::glyphs::GLYPH_WEIGHTS_FILE;

    #[test]
    fn rendered_lines_are_cut_into_labelled_glyphs_of_every_kind() {
        let faces: Vec<FontArc> = Face::ALL
            .iter()
            .map(|f| FontArc::new(f.font().clone()))
            .collect();
        let charset: Vec<char> = CHARSET.chars().collect();
        let ex = examples(&faces, &charset, 60, 1);
        assert!(ex.len() > 60 * 3, "{} glyphs from 60 lines", ex.len());
        assert_eq!(ex.features.len(), ex.len() * GLYPH_FEATURES);
        let mut seen = vec![false; charset.len()];
        ex.labels.iter().for_each(|&l| seen[l as usize] = true);
        assert!(seen.iter().filter(|&&s| s).count() > charset.len() / 2);
    }

    #[test]
    fn a_few_steps_lower_the_loss_and_reach_every_parameter() {
        let faces: Vec<FontArc> = vec![FontArc::new(Face::Mono.font().clone())];
        let charset: Vec<char> = CHARSET.chars().collect();
        let ex = examples(&faces, &charset, 40, 2);
        let model = GlyphClassifier::new(
            GlyphConfig {
                charset: CHARSET.into(),
                hidden: 32,
            },
            5,
            &Device::Cpu,
        )
        .unwrap();
        let idx: Vec<usize> = (0..ex.len().min(128)).collect();
        let (x, labels) = ex.rows(&idx, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(model.varmap(), AdamWParams::default()).unwrap();
        let first = nll(&model, &x, &labels).unwrap();
        let grads = first.backward().unwrap();
        for (name, var) in opt.vars() {
            let g = grads.get(var.as_tensor()).expect(name);
            let norm = g
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(norm > 0.0, "{name} got no gradient");
        }
        for _ in 0..30 {
            let loss = nll(&model, &x, &labels).unwrap();
            opt.step(&loss.backward().unwrap(), 3e-3, 1.0).unwrap();
        }
        let last = nll(&model, &x, &labels)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(last < first.to_scalar::<f32>().unwrap() * 0.5);
    }

    fn generator_fonts() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../etchr-data/assets/fonts")
    }

    #[test]
    fn faces_are_read_from_files_and_directories_in_name_order() {
        let dir = generator_fonts();
        let names: Vec<String> = faces_at(&dir)
            .unwrap()
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // The licence text next to them is no face.
        assert_eq!(
            names,
            [
                "DejaVuSansMono-Bold.ttf",
                "DejaVuSansMono.ttf",
                "DejaVuSerif.ttf"
            ]
        );
        assert_eq!(faces_at(&dir.join("DejaVuSerif.ttf")).unwrap().len(), 1);
        let empty = tempfile::tempdir().unwrap();
        let err = faces_at(empty.path()).err().unwrap().to_string();
        assert!(err.contains("no .ttf or .otf face"), "{err}");
        let err = format!(
            "{:#}",
            faces_at(&dir.join("LICENSE-DejaVu.txt")).err().unwrap()
        );
        assert!(err.contains("is no TrueType or OpenType face"), "{err}");
    }

    #[test]
    fn an_evaluation_trains_nothing_and_reports_each_held_out_face() {
        let tmp = tempfile::tempdir().unwrap();
        let model_dir = tmp.path().join("model");
        let cfg = GlyphConfig {
            charset: CHARSET.into(),
            hidden: 8,
        };
        let model = GlyphClassifier::new(cfg, 3, &Device::Cpu).unwrap();
        model.save(&model_dir, DType::F32).unwrap();
        let weights = std::fs::read(model_dir.join(GLYPH_WEIGHTS_FILE)).unwrap();
        let out = tmp.path().join("eval");
        let args = GlyphArgs {
            out: out.clone(),
            steps: 4000,
            batch: 256,
            lr: 2e-3,
            lines: 8000,
            val_lines: 12,
            seed: 5,
            hidden: 256,
            fonts: vec![],
            held_out_font: vec![generator_fonts()],
            evaluate: Some(model_dir.clone()),
            eval_every: 500,
        };
        run_glyphs(args).unwrap();
        let metrics: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap())
                .unwrap();
        assert_eq!(metrics["steps"], 0);
        assert_eq!(metrics["train_glyphs"], 0);
        assert!(metrics["val_glyphs"].as_u64().unwrap() > 12);
        let held = metrics["held_out"].as_array().unwrap();
        assert_eq!(held.len(), 3);
        let accs: Vec<f64> = held
            .iter()
            .map(|h| h["accuracy_nocase"].as_f64().unwrap())
            .collect();
        assert!(held.iter().all(|h| h["glyphs"].as_u64().unwrap() > 12));
        assert!(held[2]["font"]
            .as_str()
            .unwrap()
            .ends_with("DejaVuSerif.ttf"));
        let mean = metrics["held_out_mean_nocase"].as_f64().unwrap();
        assert!((mean - accs.iter().sum::<f64>() / 3.0).abs() < 1e-12);
        // The classifier evaluated is left as it was.
        assert_eq!(
            std::fs::read(model_dir.join(GLYPH_WEIGHTS_FILE)).unwrap(),
            weights
        );
    }
}
