//! What the engine and family tests share: a small profile, a job, one
//! evaluation of a model directory, and a model loaded for teacher forcing.

use std::path::Path;

use common::job::{JobMessage, JobOrigin, ModelRef};
use common::scoring::ScoringProfile;
use worker::dataset::Dataset;
use worker::engine::{EngineOptions, LoadedModel, MistralEvaluator};
use worker::error::JobError;
use worker::eval::{EvalTask, Evaluation, Evaluator, Progress};
use worker::source::{ConfigLimits, inspect_dir};

/// v1 with `similarity` and `vibe` samples and a latency probe of
/// `latency_tokens` input tokens, `latency_repeats` times.
pub(crate) fn small_profile(
    similarity: usize,
    vibe: usize,
    latency_tokens: usize,
    latency_repeats: usize,
) -> ScoringProfile {
    let mut p = ScoringProfile::v1();
    p.similarity_samples = similarity;
    p.vibe_samples = vibe;
    p.latency_input_tokens = latency_tokens;
    p.latency_repeats = latency_repeats;
    p
}

/// An operator's job for the model `t/tiny` with `template`.
pub(crate) fn job(template: &str) -> JobMessage {
    JobMessage::v1(
        ModelRef {
            namespace: "t".into(),
            name: "tiny".into(),
            revision: "main".into(),
            chat_template: template.into(),
        },
        "v1",
        JobOrigin::Operator {
            requested_by: "test".into(),
        },
        0,
    )
}

/// Evaluates the model in `dir` with the mistral.rs evaluator; a finished
/// evaluation has reported its progress up to 1.
pub(crate) async fn evaluate(
    dir: &Path,
    template: &str,
    dataset: Dataset,
    profile: &ScoringProfile,
) -> Result<Evaluation, JobError> {
    let model = inspect_dir(dir, 1 << 30, &ConfigLimits::default(), template)?;
    let (progress, rx) = Progress::new();
    let result = MistralEvaluator::new(dataset)
        .evaluate(EvalTask {
            progress,
            ..EvalTask::new(job(template).job(), &model, profile)
        })
        .await;
    if result.is_ok() {
        assert!((*rx.borrow() - 1.0).abs() < 1e-9, "progress ends at 1");
    }
    result
}

/// The model in `dir` loaded, with a ChatML prompt as context, a reference
/// answer, and the full teacher-forced probabilities of that answer (k = the
/// vocabulary size: every token is "in the top k", so these are plain
/// probabilities).
pub(crate) struct TeacherForced {
    pub(crate) loaded: LoadedModel,
    pub(crate) context: Vec<u32>,
    pub(crate) reference: Vec<u32>,
    pub(crate) vocab: usize,
    pub(crate) full: Vec<f64>,
}

impl TeacherForced {
    pub(crate) async fn load(dir: &Path) -> Self {
        let loaded = LoadedModel::load(dir, EngineOptions::default())
            .await
            .unwrap();
        let context = loaded
            .tokenize("<|im_start|>user\nhello there<|im_end|>\n<|im_start|>assistant\n")
            .unwrap();
        let reference = loaded.tokenize("general kenobi").unwrap();
        let vocab = loaded.info().vocab_size;
        let full = loaded
            .teacher_forced_top_k_probs(&context, &reference, vocab, 1e-9)
            .await
            .unwrap();
        assert_eq!(full.len(), reference.len());
        Self {
            loaded,
            context,
            reference,
            vocab,
            full,
        }
    }

    /// The probabilities of the first `n` reference tokens alone.
    pub(crate) async fn prefix(&self, n: usize) -> Vec<f64> {
        self.loaded
            .teacher_forced_top_k_probs(&self.context, &self.reference[..n], self.vocab, 1e-9)
            .await
            .unwrap()
    }
}
