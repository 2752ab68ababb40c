//! [`EditingModel`]: construction (seeded), loading and saving (`config.json` +
//! `model.safetensors`), and planning: image + question + reasoning → edit program.

use crate::config::ModelConfig;
use crate::decode::{DecodeItem, DecodeOptions, Decoded, StepLogProb};
use crate::decoder::Decoder;
use crate::encoder::{text_ids, Encoder};
use crate::error::{ModelError, Result};
use crate::init::Params;
use crate::preprocess::Prepared;
use crate::tokens::{tokens_to_program, Frame, Token};
use crate::vocab::Vocab;
use candle_core::{DType, Device};
use candle_nn::VarMap;
use etchr_ops::{DecodeLimits, OpsError, Point, Program, Rect, RenderOptions, RgbImage, Transform};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Picks the device at run time: CUDA device 0 when asked for and available (built with the
/// `cuda` feature), otherwise the CPU, saying why in the log.
pub fn select_device(prefer_gpu: bool) -> Device {
    if !prefer_gpu {
        return Device::Cpu;
    }
    match Device::cuda_if_available(0) {
        Ok(d) if d.is_cuda() => {
            tracing::info!("editing model on CUDA device 0");
            d
        }
        Ok(_) => {
            tracing::warn!(
                "no CUDA device available (or built without the `cuda` feature): editing model on the CPU"
            );
            Device::Cpu
        }
        Err(e) => {
            tracing::warn!(error = %e, "CUDA initialisation failed: editing model on the CPU");
            Device::Cpu
        }
    }
}

/// The image of a plan request.
#[derive(Debug, Clone)]
pub enum ImageInput {
    /// PNG, JPEG or WebP bytes (JPEGs take the fast reduced-scale decode).
    Encoded(Arc<[u8]>),
    Decoded(Arc<RgbImage>),
}

/// One plan request. The image is the *view* the model should look at: the original, or an
/// edited view of it with `transform` mapping it back (progressive use).
#[derive(Debug, Clone)]
pub struct PlanInput {
    pub image: ImageInput,
    pub question: String,
    /// The reasoning so far (its last bytes are read).
    pub context: String,
    /// View → original. Identity for the original image.
    pub transform: Transform,
    /// The original image's size. `None`: the view's size for an identity transform, else the
    /// far corner of the view mapped back (exact for crops and zooms of the original's top-left
    /// region, an underestimate otherwise: pass it when you know it).
    pub original_size: Option<(u32, u32)>,
    pub options: DecodeOptions,
    /// Regions of the original (pixels) already shown without success: the program's first
    /// pointer choice (where it crops, where a path starts) avoids them while anything else
    /// is allowed. Empty for a plain plan.
    pub avoid: Vec<Rect>,
}

impl PlanInput {
    pub fn new(image: ImageInput, question: impl Into<String>) -> Self {
        Self {
            image,
            question: question.into(),
            context: String::new(),
            transform: Transform::identity(),
            original_size: None,
            options: DecodeOptions::default(),
            avoid: Vec::new(),
        }
    }

    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }

    /// Marks the image as an edited view: `transform` maps it back to an `original_size` image.
    pub fn on_view(mut self, transform: Transform, original_size: (u32, u32)) -> Self {
        self.transform = transform;
        self.original_size = Some(original_size);
        self
    }

    pub fn with_options(mut self, options: DecodeOptions) -> Self {
        self.options = options;
        self
    }

    /// Asks for an alternative plan: one whose first pointer choice lies outside `regions`
    /// (original pixels), e.g. the crops an upstream already saw and found no help in.
    pub fn avoiding(mut self, regions: Vec<Rect>) -> Self {
        self.avoid = regions;
        self
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Decoding and letterboxing this request's image.
    pub preprocess_ms: f64,
    /// The encoder pass of the batch this request ran in.
    pub encode_ms: f64,
    /// Constrained decoding of that batch.
    pub decode_ms: f64,
    /// How many requests shared the forward pass.
    pub batch_size: usize,
}

/// A plan.
#[derive(Debug, Clone)]
pub struct PlanOutput {
    /// Validated and repaired, in original pixels: ready for `etchr_ops::render`.
    pub program: Program,
    /// `program` in the compact text form.
    pub text: String,
    /// The tokens as decoded (before repairs), in bins of the view.
    pub tokens: Vec<Token>,
    /// Each discrete choice (symbol or patch) and its log-probability under the model
    /// (temperature 1, grammar-masked) — what Stage 2 needs.
    pub steps: Vec<StepLogProb>,
    /// Sum of `steps`' log-probabilities.
    pub logprob: f64,
    /// Where the program's first pointer choice could have gone: each allowed patch's centre
    /// in original pixels with its probability (temperature 1, after `avoid`). Empty when the
    /// program points nowhere (a whole-image rotation). A planner can rank regions by it.
    pub first_pointer: Vec<(Point, f32)>,
    /// What validation repaired or dropped.
    pub repairs: Vec<String>,
    pub view_size: (u32, u32),
    pub original_size: (u32, u32),
    pub timings: Timings,
}

/// The editing model. Cheap to share across threads by reference; the [`crate::worker`] owns
/// one on its inference thread.
pub struct EditingModel {
    cfg: ModelConfig,
    vocab: Vocab,
    device: Device,
    varmap: VarMap,
    encoder: Encoder,
    decoder: Decoder,
    limits: DecodeLimits,
}

/// Writes `cfg` as `config.json` and the variables of `varmap` as `model.safetensors` (stored
/// as `dtype`) into `dir`, created if missing: the layout of every model directory.
pub(crate) fn save_dir(
    dir: &Path,
    cfg: &impl serde::Serialize,
    varmap: &VarMap,
    dtype: DType,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(cfg).expect("configs serialise");
    std::fs::write(dir.join(CONFIG_FILE), json + "\n")?;
    let vars = varmap.data().lock().expect("varmap lock poisoned");
    let mut tensors = std::collections::HashMap::new();
    for (name, var) in vars.iter() {
        tensors.insert(name.clone(), var.as_tensor().to_dtype(dtype)?);
    }
    drop(vars);
    candle_core::safetensors::save(&tensors, dir.join(WEIGHTS_FILE))?;
    Ok(())
}

impl std::fmt::Debug for EditingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EditingModel")
            .field("config", &self.cfg)
            .field("device", &self.device)
            .field("params", &self.num_params())
            .finish()
    }
}

impl EditingModel {
    /// A freshly initialised model; the same `seed` gives the same weights on every machine.
    pub fn new(cfg: ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let vocab = Vocab::new(&cfg);
        let varmap = VarMap::new();
        let mut p = Params::new(&varmap, seed, device);
        let encoder = Encoder::new(&mut p, &cfg)?;
        let decoder = Decoder::new(&mut p, &cfg, vocab.size())?;
        Ok(Self {
            cfg,
            vocab,
            device: device.clone(),
            varmap,
            encoder,
            decoder,
            limits: DecodeLimits::default(),
        })
    }

    /// Tiny fixed-seed weights on the CPU, for tests ([`ModelConfig::tiny`]).
    pub fn tiny(seed: u64) -> Result<Self> {
        Self::new(ModelConfig::tiny(), seed, &Device::Cpu)
    }

    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg = std::fs::read(dir.join(CONFIG_FILE))?;
        let weights = std::fs::read(dir.join(WEIGHTS_FILE))?;
        Self::load_bytes(&cfg, &weights, device)
    }

    /// Loads from the two files' bytes (for weights embedded in the binary).
    pub fn load_bytes(config_json: &[u8], weights: &[u8], device: &Device) -> Result<Self> {
        let cfg: ModelConfig = serde_json::from_slice(config_json)
            .map_err(|e| ModelError::Weights(format!("config.json: {e}")))?;
        let model = Self::new(cfg, 0, device)?;
        model.fill_from(weights, false)?;
        Ok(model)
    }

    /// A model of architecture `cfg` holding the weights in `dir` wherever names and shapes
    /// agree: the warm start for growing a trained model (e.g. `neighbour_mix`). Variables the
    /// weights lack keep their initialisation (`seed`) and are returned by name; a tensor the
    /// new architecture lacks or shapes differently is an error, so nothing is dropped.
    pub fn load_grown(
        dir: impl AsRef<Path>,
        cfg: ModelConfig,
        seed: u64,
        device: &Device,
    ) -> Result<(Self, Vec<String>)> {
        let weights = std::fs::read(dir.as_ref().join(WEIGHTS_FILE))?;
        let model = Self::new(cfg, seed, device)?;
        let new = model.fill_from(&weights, true)?;
        Ok((model, new))
    }

    /// Overwrites the variables from safetensors bytes; returns the variables the bytes lack
    /// (an error unless `allow_missing`).
    fn fill_from(&self, weights: &[u8], allow_missing: bool) -> Result<Vec<String>> {
        let tensors = candle_core::safetensors::load_buffer(weights, self.device())
            .map_err(|e| ModelError::Weights(format!("safetensors: {e}")))?;
        let vars = self.varmap.data().lock().expect("varmap lock poisoned");
        if let Some(extra) = tensors.keys().find(|k| !vars.contains_key(*k)) {
            return Err(ModelError::Weights(format!(
                "the weights hold {extra:?}, which this architecture does not have"
            )));
        }
        let mut missing = Vec::new();
        for (name, var) in vars.iter() {
            let Some(t) = tensors.get(name) else {
                if allow_missing {
                    missing.push(name.clone());
                    continue;
                }
                return Err(ModelError::Weights(format!("the weights lack {name:?}")));
            };
            if t.dims() != var.dims() {
                return Err(ModelError::Weights(format!(
                    "{name:?} is {:?} in the weights but {:?} in the config",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        missing.sort();
        Ok(missing)
    }

    /// Writes `config.json` and `model.safetensors` into `dir` (created if missing).
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(&self.cfg).expect("configs serialise");
        std::fs::write(dir.join(CONFIG_FILE), json + "\n")?;
        self.varmap.save(dir.join(WEIGHTS_FILE))?;
        Ok(())
    }

    /// Like [`save`](Self::save), storing the weights as `dtype` (the shipped model uses F16:
    /// half the size; [`load_bytes`](Self::load_bytes) computes in F32 either way).
    pub fn save_as(&self, dir: impl AsRef<Path>, dtype: DType) -> Result<()> {
        save_dir(dir.as_ref(), &self.cfg, &self.varmap, dtype)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The trainable variables (for the optimiser, checkpoints and gradient checks).
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    pub fn num_params(&self) -> usize {
        self.varmap.all_vars().iter().map(|v| v.elem_count()).sum()
    }

    /// Limits applied when decoding encoded images.
    pub fn set_decode_limits(&mut self, limits: DecodeLimits) {
        self.limits = limits;
    }

    /// Decodes and letterboxes a request's image.
    pub fn prepare(&self, input: &PlanInput) -> Result<Prepared> {
        match &input.image {
            ImageInput::Encoded(bytes) => Prepared::from_encoded(
                bytes,
                Frame::new(0, 0, input.transform.clone()),
                &self.cfg,
                &self.limits,
            ),
            ImageInput::Decoded(img) => Prepared::from_image(
                img,
                Frame::new(img.width(), img.height(), input.transform.clone()),
                &self.cfg,
            ),
        }
    }

    /// Prepares a batch's inputs (each with its time in ms), in parallel across the machine's
    /// cores: decoding is CPU work that would otherwise run one request after another while the
    /// model waits (on a GPU it was two thirds of a batch's time, bench/RESULTS.md).
    fn prepare_all(&self, inputs: &[PlanInput]) -> Vec<(Result<Prepared>, f64)> {
        let timed = |input: &PlanInput| {
            let start = Instant::now();
            let prepared = self.prepare(input);
            (prepared, start.elapsed().as_secs_f64() * 1e3)
        };
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(inputs.len());
        if workers < 2 {
            return inputs.iter().map(timed).collect();
        }
        let chunk = inputs.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let parts: Vec<_> = inputs
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(timed).collect::<Vec<_>>()))
                .collect();
            parts
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    }

    /// Plans one request.
    pub fn plan(&self, input: PlanInput) -> Result<PlanOutput> {
        self.plan_batch(vec![input])
            .pop()
            .expect("one result per input")
    }

    /// Plans several requests in one forward pass (one result per input, in order; a bad
    /// image fails only its own request).
    pub fn plan_batch(&self, inputs: Vec<PlanInput>) -> Vec<Result<PlanOutput>> {
        let prepared = self
            .prepare_all(&inputs)
            .into_iter()
            .map(|(p, ms)| (p.map(Arc::new), ms))
            .collect();
        self.plan_ready(&inputs, prepared)
    }

    /// [`Self::plan_batch`] of inputs already prepared with [`Self::prepare`] (`prepared[i]`
    /// is `inputs[i]`'s): Stage 2 training keeps each preparation for the replay of what it
    /// sampled, and would otherwise letterbox every image twice. Their `preprocess_ms` is 0.
    pub fn plan_batch_prepared(
        &self,
        inputs: &[PlanInput],
        prepared: &[Arc<Prepared>],
    ) -> Vec<Result<PlanOutput>> {
        assert_eq!(inputs.len(), prepared.len(), "one preparation per input");
        let prepared = prepared.iter().map(|p| (Ok(p.clone()), 0.0)).collect();
        self.plan_ready(inputs, prepared)
    }

    /// Decodes `inputs` from their preparations (each with its time in ms).
    fn plan_ready(
        &self,
        inputs: &[PlanInput],
        prepared: Vec<(Result<Arc<Prepared>>, f64)>,
    ) -> Vec<Result<PlanOutput>> {
        let mut results: Vec<Option<Result<PlanOutput>>> =
            (0..inputs.len()).map(|_| None).collect();
        let mut ready = Vec::new();
        for (i, (prepared, ms)) in prepared.into_iter().enumerate() {
            match prepared {
                Ok(p) => {
                    let original = original_size(&p.frame, inputs[i].original_size);
                    ready.push((i, p, original, ms));
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if !ready.is_empty() {
            let items: Vec<DecodeItem> = ready
                .iter()
                .map(|(i, p, original, _)| DecodeItem {
                    prepared: p,
                    text: text_ids(&self.cfg, &inputs[*i].question, &inputs[*i].context),
                    original: *original,
                    options: inputs[*i].options,
                    avoid: &inputs[*i].avoid,
                })
                .collect();
            match self.decode_items(&items) {
                Ok((decoded, encode_ms, decode_ms)) => {
                    for ((i, p, original, pre_ms), d) in ready.iter().zip(decoded) {
                        let timings = Timings {
                            preprocess_ms: *pre_ms,
                            encode_ms,
                            decode_ms,
                            batch_size: items.len(),
                        };
                        results[*i] = Some(self.finish(p, *original, d, timings));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for (i, ..) in &ready {
                        results[*i] = Some(Err(ModelError::Internal(msg.clone())));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every input has a result"))
            .collect()
    }

    /// Tokens → program → validation, dropping any op validation rejects.
    fn finish(
        &self,
        p: &Prepared,
        original: (u32, u32),
        decoded: Decoded,
        timings: Timings,
    ) -> Result<PlanOutput> {
        let Decoded {
            tokens,
            steps,
            first_pointer,
        } = decoded;
        let mut program = tokens_to_program(&tokens, &p.frame, &self.vocab)?;
        let mut dropped = Vec::new();
        let (program, mut repairs) = loop {
            match etchr_ops::validate(original.0, original.1, &program, &RenderOptions::default()) {
                Ok(ok) => break ok,
                Err(OpsError::InvalidOp { index, op, reason }) if index < program.len() => {
                    dropped.push(format!("op {index} ({op}) dropped: {reason}"));
                    program.0.remove(index);
                }
                Err(e) => return Err(e.into()),
            }
        };
        repairs.extend(dropped);
        let logprob = steps.iter().map(|s| s.logprob as f64).sum();
        Ok(PlanOutput {
            text: etchr_ops::text::to_text(&program),
            program,
            tokens,
            steps,
            logprob,
            first_pointer,
            repairs,
            view_size: (p.frame.view_width, p.frame.view_height),
            original_size: original,
            timings,
        })
    }
}

/// The original image's size: given, or the view's far corner mapped back.
fn original_size(frame: &Frame, given: Option<(u32, u32)>) -> (u32, u32) {
    if let Some(s) = given {
        return s;
    }
    if frame.transform.is_identity() {
        return (frame.view_width, frame.view_height);
    }
    let r: Rect = frame
        .transform
        .rect_to_original(&Rect::full(frame.view_width, frame.view_height));
    (r.x1.ceil().max(1.0) as u32, r.y1.ceil().max(1.0) as u32)
}
