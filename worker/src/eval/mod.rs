//! Evaluation: turning a model on disk into the components of a scoring
//! profile.
//!
//! [`Evaluator`] is the seam: the mistral.rs engine implements it for real
//! models. Evaluation is long and blocking; implementations run it off the
//! async runtime, report progress through [`Progress`], and stop between
//! steps when the cancellation token fires (deadline, lost lease, shutdown).

pub mod context;

use std::sync::Arc;

use async_trait::async_trait;
use common::job::JobV1;
pub use common::result::SampleRecord;
use common::result::{ComponentScores, JudgeSummary, LatencyStats};
use common::scoring::ScoringProfile;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::JobError;
use crate::source::LocalModel;

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub components: ComponentScores,
    /// Tokens scored or generated.
    pub tokens: u64,
    /// sha256 of the dataset the samples came from.
    pub dataset_sha256: String,
    /// What else was measured, for the result and `worker eval`.
    pub details: EvaluationDetails,
}

/// Measurements beside the components.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvaluationDetails {
    /// Samples whose context was cut to fit the model's window.
    pub samples_context_cut: usize,
    /// The latency probe's timed passes.
    pub latency: Option<LatencyStats>,
    /// One record per scored sample, in sample order.
    pub samples: Vec<SampleRecord>,
    /// Where the time went, for `worker eval --json` and benchmarks.
    pub timings: PhaseTimings,
    /// Profile v2: the judge and its tally.
    pub judge: Option<JudgeSummary>,
}

/// Wall time per phase of one evaluation, with the tokens each handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct PhaseTimings {
    /// Loading the model (reading the weights, building the engine).
    pub load_ms: f64,
    /// Teacher-forced scoring of every sample (similarity).
    pub similarity_ms: f64,
    /// Context and reference tokens scored.
    pub similarity_tokens: u64,
    /// Greedy generation of the vibe samples.
    pub generation_ms: f64,
    /// Tokens generated (the replies, not the prompts).
    pub generated_tokens: u64,
    /// The latency probe, warm-up included.
    pub latency_probe_ms: f64,
    /// Profile v2: the judge's passes (two per judged sample).
    pub judge_ms: f64,
    pub judged_samples: u64,
}

impl PhaseTimings {
    /// Scored tokens per second (prompt processing).
    pub fn similarity_tokens_per_s(&self) -> f64 {
        per_second(self.similarity_tokens, self.similarity_ms)
    }

    /// Generated tokens per second (decoding, prompt processing included).
    pub fn generated_tokens_per_s(&self) -> f64 {
        per_second(self.generated_tokens, self.generation_ms)
    }
}

fn per_second(tokens: u64, ms: f64) -> f64 {
    if ms > 0.0 {
        tokens as f64 * 1000.0 / ms
    } else {
        0.0
    }
}

/// A phase of an evaluation, for per-phase progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Teacher-forced scoring of one sample.
    Similarity,
    /// Generation of one sample.
    Vibe,
    /// The latency probe.
    Latency,
    /// The judge's verdict on one sample (profile v2).
    Judge,
}

/// Called once per finished step of a phase.
pub type PhaseObserver = Arc<dyn Fn(Phase) + Send + Sync>;

/// A handle to report a job's progress in `[0, 1]` (and, to an optional
/// observer, each finished step); cheap to clone and usable from blocking
/// threads.
#[derive(Clone)]
pub struct Progress {
    fraction: watch::Sender<f64>,
    observer: Option<PhaseObserver>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("fraction", &*self.fraction.borrow())
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl Progress {
    pub fn new() -> (Self, watch::Receiver<f64>) {
        let (tx, rx) = watch::channel(0.0);
        (
            Self {
                fraction: tx,
                observer: None,
            },
            rx,
        )
    }

    /// Also tells `observer` about every finished step.
    #[must_use]
    pub fn with_observer(mut self, observer: PhaseObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn set(&self, fraction: f64) {
        self.fraction.send_replace(fraction.clamp(0.0, 1.0));
    }

    /// One step of `phase` finished.
    pub fn step(&self, phase: Phase) {
        if let Some(observer) = &self.observer {
            observer(phase);
        }
    }
}

/// One evaluation: the job, its fetched model, the profile to score it under,
/// where to report progress, and the token that cancels it.
#[derive(Debug)]
pub struct EvalTask<'a> {
    pub job: &'a JobV1,
    pub model: &'a LocalModel,
    pub profile: &'a ScoringProfile,
    pub progress: Progress,
    pub cancel: CancellationToken,
}

impl<'a> EvalTask<'a> {
    /// A task whose progress nobody reads and that nothing cancels.
    pub fn new(job: &'a JobV1, model: &'a LocalModel, profile: &'a ScoringProfile) -> Self {
        Self {
            job,
            model,
            profile,
            progress: Progress::new().0,
            cancel: CancellationToken::new(),
        }
    }
}

/// Scores a model under a profile.
#[async_trait]
pub trait Evaluator: Send + Sync + 'static {
    async fn evaluate(&self, task: EvalTask<'_>) -> Result<Evaluation, JobError>;
}
