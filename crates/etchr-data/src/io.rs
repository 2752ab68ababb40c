//! Writing and reading sets: `items.jsonl` (one [`Item`] per line, image paths relative to the
//! set directory) and `images/`, with the originals (JPEG q90, or PNG for the maze and jigsaw
//! families where artefacts would break the edit) and the gold results (`<id>.gold.png`).
//!
//! Gold results are never downscaled: every gold program ends with a zoom whose output fits
//! the reader's 1024 px budget, so the file is exactly what the reader sees.

use crate::{generate, Family, Item};
use anyhow::{bail, Context, Result};
use etchr_ops::{render, OutputFormat, RenderOptions, RgbImage};
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// One written item: its JSON line, whether it is small-text, and the bytes of its images.
type JobResult = Result<(String, bool, u64)>;

/// `etchr gen-data` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct GenArgs {
    /// Family to generate (fine_grained, chart, document, maze, jigsaw, orientation), or `all`.
    #[arg(long, default_value = "all")]
    pub family: String,
    /// Items per family.
    #[arg(long, default_value_t = 50)]
    pub n: usize,
    /// Set seed: the same seed always gives the same bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (created; items.jsonl and images/ are overwritten).
    #[arg(long)]
    pub out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Draw all text in this `.ttf` / `.otf` face instead of the generator's four DejaVu faces
    /// (an item's `meta.face` then names the one of the four it picked). The same seed gives
    /// the same items otherwise; text is laid out with this face's own metrics.
    #[arg(long, value_name = "TTF")]
    pub face_file: Option<PathBuf>,
}

/// What [`write_set`] wrote.
#[derive(Debug, Clone, Default)]
pub struct SetSummary {
    pub items: usize,
    pub small_text: usize,
    pub image_bytes: u64,
    pub seconds: f64,
}

/// Renders an item's gold program on its original image.
pub fn render_gold(item: &Item, original: &RgbImage) -> Result<RgbImage> {
    let r = render(original, &item.gold_program, &RenderOptions::default())
        .with_context(|| format!("gold program of {}", item.id))?;
    Ok(r.views
        .into_iter()
        .next()
        .expect("a program without tiles has one view")
        .image)
}

/// The bytes `gen-data` writes for `img` at `path`: PNG for `.png`, else JPEG q90, through the
/// build-independent encoder so a set regenerates bit for bit (its MANIFEST checks that).
pub fn encode_for_path(img: &RgbImage, path: &str) -> Result<Vec<u8>> {
    let format = if path.ends_with(".png") {
        OutputFormat::Png
    } else {
        OutputFormat::Jpeg(90)
    };
    Ok(etchr_ops::encode_image_stable(img, format)?)
}

/// Generates `n` items of `family` (every family when `None`) with set seed `seed` into
/// `out_dir`. Items are generated on all cores and written in (family, index) order.
pub fn write_set(
    family: Option<Family>,
    n: usize,
    seed: u64,
    out_dir: &Path,
) -> Result<SetSummary> {
    write_set_threads(family, n, seed, out_dir, None)
}

fn write_set_threads(
    family: Option<Family>,
    n: usize,
    seed: u64,
    out_dir: &Path,
    threads: Option<usize>,
) -> Result<SetSummary> {
    let start = Instant::now();
    let images = out_dir.join("images");
    fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;
    let families: Vec<Family> = family.map_or(Family::ALL.to_vec(), |f| vec![f]);
    let jobs: Vec<(Family, u64)> = families
        .iter()
        .flat_map(|&f| (0..n as u64).map(move |i| (f, i)))
        .collect();
    let results: Mutex<Vec<Option<JobResult>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let workers = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, jobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(f, i)) = jobs.get(k) else { break };
                let r = one(f, seed, i, out_dir);
                results
                    .lock()
                    .expect("no worker panics while holding the lock")[k] = Some(r);
            });
        }
    });
    let mut out = BufWriter::new(fs::File::create(out_dir.join("items.jsonl"))?);
    let mut summary = SetSummary::default();
    for r in results.into_inner().expect("workers are done") {
        let (line, small, bytes) = r.expect("every job ran")?;
        writeln!(out, "{line}")?;
        summary.items += 1;
        summary.small_text += small as usize;
        summary.image_bytes += bytes;
    }
    out.flush()?;
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn one(family: Family, seed: u64, index: u64, out_dir: &Path) -> JobResult {
    let (item, img) = generate(family, seed, index);
    let gold = render_gold(&item, &img)?;
    let a = encode_for_path(&img, &item.image)?;
    let b = encode_for_path(&gold, &item.gold_image)?;
    fs::write(out_dir.join(&item.image), &a)?;
    fs::write(out_dir.join(&item.gold_image), &b)?;
    Ok((
        serde_json::to_string(&item)?,
        item.small_text,
        (a.len() + b.len()) as u64,
    ))
}

/// Reads `dir/items.jsonl`.
pub fn read_set(dir: &Path) -> Result<Vec<Item>> {
    let path = dir.join("items.jsonl");
    let f = fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut items = Vec::new();
    for (n, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        items.push(
            serde_json::from_str(&line).with_context(|| format!("{}:{}", path.display(), n + 1))?,
        );
    }
    Ok(items)
}

/// The `etchr gen-data` command.
pub fn run_gen_data(args: GenArgs) -> Result<()> {
    let family = match args.family.trim() {
        "all" | "" => None,
        f => Some(f.parse::<Family>().map_err(anyhow::Error::msg)?),
    };
    if args.n == 0 {
        bail!("--n must be at least 1");
    }
    if let Some(path) = &args.face_file {
        let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        crate::draw::replace_faces(bytes)
            .map_err(|e| anyhow::anyhow!("--face-file {}: {e}", path.display()))?;
    }
    let s = write_set_threads(family, args.n, args.seed, &args.out, args.threads)?;
    println!(
        "wrote {} items ({} small-text) to {} in {:.1} s ({:.1} items/s), {:.1} MB of images",
        s.items,
        s.small_text,
        args.out.display(),
        s.seconds,
        s.items as f64 / s.seconds.max(1e-9),
        s.image_bytes as f64 / 1e6
    );
    Ok(())
}
