//! The mistral.rs evaluator: loads a model, computes the components of a
//! scoring profile (docs/architecture.md §7), unloads it.
//!
//! - **Similarity**: for each sampled conversation, the context is rendered
//!   with the submission's chat template and tokenized; the reference reply
//!   (at most `max_reference_tokens`) is appended and scored teacher-forced in
//!   one forward pass with raw logits ([`LoadedModel::teacher_forced_top_k_probs`]).
//! - **Vibe**: greedy generation for the context with a budget of
//!   `vibe_budget_factor` times the last user message's tokens; the reply's
//!   length in characters is compared with the user message's.
//! - **Latency**: mean wall time of a forward pass on a fixed-shape prompt.
//! - **Size**: bytes on disk against the profile's limit.
//!
//! One model is loaded at a time per process (one GPU per worker), requests
//! go one at a time (see [`model`] for the CPU batching bug), and the model is
//! unloaded and its memory returned to the OS after every job. Cancellation
//! is checked between samples.

mod model;

use std::sync::Arc;

use async_trait::async_trait;
use common::job::JobV1;
use common::result::{ComponentScores, FailureCode, FailureReason};
use common::scoring::{ScoringProfile, mean, sample_vibe};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use self::model::{EngineError, EngineOptions, LoadedModel, ModelInfo, release_freed_memory};
use crate::error::JobError;
use crate::eval::dataset::Dataset;
use crate::eval::template::{ChatTemplate, TemplateError};
use crate::eval::{Evaluation, Evaluator, Progress};
use crate::source::LocalModel;

/// See the module docs.
#[derive(Debug)]
pub struct MistralEvaluator {
    dataset: Arc<Dataset>,
    options: EngineOptions,
    /// One loaded model at a time.
    exclusive: tokio::sync::Mutex<()>,
}

impl MistralEvaluator {
    pub fn new(dataset: Dataset) -> Self {
        Self::with_options(dataset, EngineOptions::default())
    }

    pub fn with_options(dataset: Dataset, options: EngineOptions) -> Self {
        Self {
            dataset: Arc::new(dataset),
            options,
            exclusive: tokio::sync::Mutex::new(()),
        }
    }
}

#[async_trait]
impl Evaluator for MistralEvaluator {
    async fn evaluate(
        &self,
        job: &JobV1,
        model: &LocalModel,
        profile: &ScoringProfile,
        progress: Progress,
        cancel: CancellationToken,
    ) -> Result<Evaluation, JobError> {
        let _exclusive = self.exclusive.lock().await;
        let loaded = LoadedModel::load(&model.dir, self.options.clone())
            .await
            .map_err(classify)?;
        let result = score(
            &loaded,
            &self.dataset,
            job,
            model,
            profile,
            &progress,
            &cancel,
        )
        .await;
        loaded.unload().await;
        result
    }
}

async fn score(
    loaded: &LoadedModel,
    dataset: &Dataset,
    job: &JobV1,
    model: &LocalModel,
    profile: &ScoringProfile,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Evaluation, JobError> {
    let info = loaded.info();
    let template = ChatTemplate::select(
        &job.model.chat_template,
        info.chat_template.as_deref(),
        &info.bos_token,
        &info.eos_token,
    )
    .map_err(bad_template)?;
    let samples = dataset.sample(profile.sample_seed, profile.similarity_samples);
    let vibe_count = profile.vibe_samples.min(samples.len());
    let steps = (samples.len() + vibe_count + 1) as f64;
    let mut done = 0usize;
    let mut step = || {
        done += 1;
        progress.set(0.05 + 0.95 * done as f64 / steps);
    };
    let mut tokens = 0u64;

    let mut similarities = Vec::with_capacity(samples.len());
    for conversation in &samples {
        check(cancel)?;
        let context = loaded
            .tokenize(
                &template
                    .render(conversation.context(), true)
                    .map_err(bad_template)?,
            )
            .map_err(classify)?;
        let mut reference = loaded
            .tokenize(conversation.reference())
            .map_err(classify)?;
        reference.truncate(profile.max_reference_tokens);
        let probabilities = loaded
            .teacher_forced_top_k_probs(
                &context,
                &reference,
                profile.top_k,
                profile.floor_probability,
            )
            .await
            .map_err(classify)?;
        tokens += (context.len() + reference.len()) as u64;
        similarities.push(profile.sample_similarity(&probabilities));
        step();
    }

    let mut vibes = Vec::with_capacity(vibe_count);
    for conversation in samples.iter().take(vibe_count) {
        check(cancel)?;
        let prompt = loaded
            .tokenize(
                &template
                    .render(conversation.context(), true)
                    .map_err(bad_template)?,
            )
            .map_err(classify)?;
        let user = conversation.last_user();
        let budget = profile.vibe_budget(loaded.tokenize(user).map_err(classify)?.len());
        let reply = loaded
            .generate_greedy(&prompt, budget)
            .await
            .map_err(classify)?;
        tokens += (prompt.len() + budget) as u64;
        vibes.push(sample_vibe(
            reply.trim().chars().count(),
            user.chars().count(),
        ));
        step();
    }

    check(cancel)?;
    let probe = profile
        .latency_input_tokens
        .min(info.max_seq_len.saturating_sub(1))
        .max(1);
    let latency_ms = loaded
        .forward_latency_ms(probe, profile.latency_repeats.max(1))
        .await
        .map_err(classify)?;
    step();

    let components = ComponentScores {
        similarity: mean(&similarities),
        vibe: mean(&vibes),
        latency: profile.latency_score(latency_ms),
        size: profile.size_score(model.size_bytes),
    };
    info!(
        similarity = components.similarity,
        vibe = components.vibe,
        latency_ms,
        size_bytes = model.size_bytes,
        tokens,
        "model scored"
    );
    Ok(Evaluation {
        components,
        tokens,
        dataset_sha256: dataset.sha256.clone(),
    })
}

fn check(cancel: &CancellationToken) -> Result<(), JobError> {
    if cancel.is_cancelled() {
        Err(JobError::Cancelled)
    } else {
        Ok(())
    }
}

fn bad_template(e: TemplateError) -> JobError {
    FailureReason::new(FailureCode::BadTemplate, e.to_string()).into()
}

/// Sorts engine errors into the model's fault and transient trouble.
fn classify(e: EngineError) -> JobError {
    let model = |code: FailureCode| JobError::Model(FailureReason::new(code, e.to_string()));
    match &e {
        EngineError::NonFiniteLogits { .. } => model(FailureCode::NanOutput),
        EngineError::ModelFile { .. }
        | EngineError::Tokenizer(_)
        | EngineError::SequenceTooLong { .. }
        | EngineError::TokenOutOfVocabulary { .. }
        | EngineError::EmptyInput(_) => model(FailureCode::BadConfig),
        // A model that fails to load or run fails again on retry.
        EngineError::Load(_) | EngineError::Inference(_) | EngineError::EngineGone => {
            model(FailureCode::LoadFailed)
        }
        EngineError::MissingModelDir(_)
        | EngineError::LogitsShape(_)
        | EngineError::UnexpectedResponse(_)
        | EngineError::Tensor(_)
        | EngineError::Join(_) => JobError::Transient(e.to_string()),
    }
}
