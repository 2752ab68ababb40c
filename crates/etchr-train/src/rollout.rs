//! Sampling from the policy: single-step (k programs per item in one batched decode), and the
//! [`SamplingNetwork`] that multi-step episodes call inside the real loop: through the bare
//! [`SamplingPlanner`] (`progressive`), or through the sidecar's own planner (`product`).
//!
//! Every sampled program comes back with the [`TrainExample`] that reproduces it under teacher
//! forcing (the view as the model prepared it, the question, the context, and the decoded tokens
//! as targets), so the trainer can score the same choices under the current policy and under
//! the frozen reference. The policy's actions are the discrete choices only (vocabulary symbols
//! and pointer patches); the sub-patch offset and box-size regression is deterministic given
//! them, so it is part of the environment, not of the action.

use etchr_model::{
    DecodeOptions, EditingModel, ImageInput, ModelError, Network, PlanInput, PlanOutput,
    TrainExample,
};
use etchr_ops::Program;
use etchr_reason::{PlanError, PlanRequest, Planner};
use std::sync::{Arc, Mutex};

/// One sampled program and how to score it again.
#[derive(Debug, Clone)]
pub struct Sampled {
    pub program: Program,
    /// Ops validation dropped from the decoded program.
    pub dropped: usize,
    /// `None` when the tokens cannot be replayed (too long for the decoder): such a sample is
    /// rewarded but not trained on.
    pub example: Option<TrainExample>,
    /// Sum of the sampled choices' log-probabilities at decode time.
    pub logprob: f64,
}

/// Ops a plan's validation dropped (its `repairs` say "dropped").
pub fn dropped_ops(out: &PlanOutput) -> usize {
    out.repairs.iter().filter(|r| r.contains("dropped")).count()
}

/// The teacher-forcing example of a plan made from `input` (prepared as `prepared`).
pub fn replay_example(
    model: &EditingModel,
    prepared: Arc<etchr_model::Prepared>,
    input: &PlanInput,
    out: &PlanOutput,
) -> Option<TrainExample> {
    (!out.tokens.is_empty() && out.tokens.len() < model.config().max_steps).then(|| TrainExample {
        prepared,
        question: input.question.clone(),
        context: input.context.clone(),
        tokens: out.tokens.clone(),
        original_size: out.original_size,
        cue_regions: Vec::new(),
    })
}

/// A seed per (step seed, sample) that differs between samples.
pub fn sample_seed(step_seed: u64, sample: usize) -> u64 {
    step_seed ^ (sample as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Inputs decoded together by [`sample_groups`] (one encoder and decoder pass).
pub const SAMPLE_BATCH: usize = 32;

/// Samples `k` programs for each input (its decode options are replaced: `(temperature, top_p)`
/// and the box sizes' Gaussian deviation `size_std`), `seeds[i]` seeding
/// input `i`'s samples, in batched decodes of up to [`SAMPLE_BATCH`] sequences. One vector of
/// `k` results per input; a failed plan is an `Err` with the message.
pub fn sample_groups(
    model: &EditingModel,
    inputs: &[PlanInput],
    seeds: &[u64],
    k: usize,
    (temperature, top_p): (f32, f32),
    size_std: f32,
) -> Vec<Vec<Result<Sampled, String>>> {
    let prepared: Vec<Result<Arc<etchr_model::Prepared>, String>> = inputs
        .iter()
        .map(|i| model.prepare(i).map(Arc::new).map_err(|e| e.to_string()))
        .collect();
    // (input, sample) pairs of the inputs that prepared.
    let jobs: Vec<(usize, usize)> = (0..inputs.len())
        .filter(|&i| prepared[i].is_ok())
        .flat_map(|i| (0..k).map(move |j| (i, j)))
        .collect();
    let mut out: Vec<Vec<Result<Sampled, String>>> = prepared
        .iter()
        .map(|p| match p {
            Ok(_) => Vec::with_capacity(k),
            Err(e) => (0..k).map(|_| Err(e.clone())).collect(),
        })
        .collect();
    for chunk in jobs.chunks(SAMPLE_BATCH) {
        let batch: Vec<PlanInput> = chunk
            .iter()
            .map(|&(i, j)| {
                inputs[i].clone().with_options(
                    DecodeOptions::sample(temperature, top_p, sample_seed(seeds[i], j))
                        .with_size_std(size_std),
                )
            })
            .collect();
        let ready: Vec<Arc<etchr_model::Prepared>> = chunk
            .iter()
            .map(|&(i, _)| {
                (prepared[i].as_ref())
                    .expect("only prepared inputs are sampled")
                    .clone()
            })
            .collect();
        let planned = model.plan_batch_prepared(&batch, &ready);
        for ((&(i, _), p), r) in chunk.iter().zip(ready).zip(planned) {
            out[i].push(match r {
                Ok(o) => Ok(Sampled {
                    dropped: dropped_ops(&o),
                    example: replay_example(model, p, &inputs[i], &o),
                    program: o.program,
                    logprob: o.logprob,
                }),
                Err(e) => Err(e.to_string()),
            });
        }
    }
    out
}

/// The policy as a [`Network`]: every call is decoded by sampling (or greedily) and recorded
/// with what replays it. Call `n` of an episode is seeded from the episode's seed and `n`, so
/// an episode's samples differ call by call and replay exactly.
pub struct SamplingNetwork {
    model: Arc<EditingModel>,
    /// `(temperature, top_p)`, or `None` for greedy decoding.
    sampling: Option<(f32, f32)>,
    /// Gaussian deviation of sampled box sizes (`DecodeOptions::size_std`).
    size_std: f32,
    seed: u64,
    calls: Mutex<Vec<Sampled>>,
}

impl SamplingNetwork {
    pub fn new(model: Arc<EditingModel>, sampling: Option<(f32, f32)>, seed: u64) -> Self {
        Self {
            model,
            sampling,
            size_std: 0.0,
            seed,
            calls: Mutex::new(Vec::new()),
        }
    }

    /// Samples box sizes too (see `DecodeOptions::size_std`).
    pub fn with_size_std(mut self, size_std: f32) -> Self {
        self.size_std = size_std;
        self
    }

    /// The calls made so far, in order.
    pub fn take_calls(&self) -> Vec<Sampled> {
        std::mem::take(&mut *self.calls.lock().expect("calls lock"))
    }
}

impl Network for SamplingNetwork {
    fn plan_one(&self, input: PlanInput) -> Result<PlanOutput, ModelError> {
        let n = self.calls.lock().expect("calls lock").len();
        let input = input.with_options(match self.sampling {
            Some((t, p)) => {
                DecodeOptions::sample(t, p, sample_seed(self.seed, n)).with_size_std(self.size_std)
            }
            None => DecodeOptions::default(),
        });
        let prepared = Arc::new(self.model.prepare(&input)?);
        let out = (self.model)
            .plan_batch_prepared(
                std::slice::from_ref(&input),
                std::slice::from_ref(&prepared),
            )
            .pop()
            .expect("one result per input")?;
        self.calls.lock().expect("calls lock").push(Sampled {
            dropped: dropped_ops(&out),
            example: replay_example(&self.model, prepared, &input, &out),
            program: out.program.clone(),
            logprob: out.logprob,
        });
        Ok(out)
    }
}

/// A planner that is the policy alone (its decoded program is the edit), for the `progressive`
/// loop's episodes. It maps a [`PlanRequest`] to a [`PlanInput`] as the `etchr` binary's model
/// planner does (the current view, its transform back to the original, the question and the
/// reasoning so far).
pub struct SamplingPlanner {
    network: Arc<SamplingNetwork>,
}

impl SamplingPlanner {
    pub fn new(network: Arc<SamplingNetwork>) -> Self {
        Self { network }
    }
}

impl Planner for SamplingPlanner {
    fn name(&self) -> &str {
        "etchr-model:policy-sample"
    }

    fn plan(&self, request: &PlanRequest<'_>) -> Result<Program, PlanError> {
        let mut input = PlanInput::new(
            ImageInput::Decoded(Arc::clone(request.image)),
            request.question,
        )
        .on_view(request.transform.clone(), request.original_size);
        if let Some(c) = request.context {
            input = input.with_context(c);
        }
        let out = self
            .network
            .plan_one(input)
            .map_err(|e| PlanError::Model(e.to_string()))?;
        Ok(out.program)
    }
}

/// A planner that records the programs `inner` returns (the edits an episode showed, in order).
pub struct Recording {
    inner: Arc<dyn Planner>,
    programs: Mutex<Vec<Program>>,
}

impl Recording {
    pub fn new(inner: Arc<dyn Planner>) -> Self {
        Self {
            inner,
            programs: Mutex::new(Vec::new()),
        }
    }

    pub fn take_programs(&self) -> Vec<Program> {
        std::mem::take(&mut *self.programs.lock().expect("programs lock"))
    }
}

impl Planner for Recording {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn plan(&self, request: &PlanRequest<'_>) -> Result<Program, PlanError> {
        let program = self.inner.plan(request)?;
        self.programs
            .lock()
            .expect("programs lock")
            .push(program.clone());
        Ok(program)
    }
}
