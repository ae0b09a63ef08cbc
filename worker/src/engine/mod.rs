//! The mistral.rs evaluator: loads a model, computes the components of a
//! scoring profile (docs/architecture.md §7), unloads it.
//!
//! - **Similarity**: for each sampled conversation, the context is rendered
//!   with the submission's chat template and tokenized, its oldest turns
//!   dropped until it fits the window beside the reference
//!   ([`crate::eval::context`]); the reference reply and the EOS token
//!   ([`common::scoring::reference_target`], at most `max_reference_tokens`)
//!   are appended and scored teacher-forced in one forward pass with raw
//!   logits ([`LoadedModel::teacher_forced_top_k_probs`]).
//! - **Vibe**: greedy generation for the (fitted) context with a budget of
//!   [`ScoringProfile::vibe_budget`] tokens (from the last user message's
//!   characters); the untrimmed reply's length in characters is compared with
//!   the user message's.
//! - **Latency**: median wall time of a forward pass on a fixed-shape prompt,
//!   after warm-up passes ([`LoadedModel::forward_latency`]).
//! - **Size**: bytes on disk against the profile's limit.
//! - **Judge** (profile v2, [`judge`]): after the candidate is unloaded, the
//!   worker's judge model compares each judged sample's vibe reply with the
//!   reference reply, in both orders.
//!
//! One model is loaded at a time per process (one GPU per worker), requests
//! go one at a time (see [`model`] for the CPU batching bug), and the model is
//! unloaded and its memory returned to the OS after every job. Cancellation
//! is checked between samples.

pub mod judge;
mod model;

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use common::job::JobV1;
use common::result::{ComponentScores, FailureCode, FailureReason, JudgeSummary, VerdictOutcome};
use common::scoring::{
    ScoringProfile, correlation, judge_score, mean, reference_target, sample_vibe,
};
use tokio_util::sync::CancellationToken;
use tracing::info;

use self::judge::{Judge, JudgeSlot};
pub use self::model::{
    EngineError, EngineOptions, Generation, LoadedModel, ModelInfo, release_freed_memory,
};
use crate::dataset::{Conversation, Dataset, Message};
use crate::error::JobError;
use crate::eval::context::fit_context;
use crate::eval::{
    EvalTask, Evaluation, EvaluationDetails, Evaluator, Phase, PhaseTimings, Progress, SampleRecord,
};
use crate::source::LocalModel;
use crate::template::{ChatTemplate, TemplateError};

/// See the module docs.
#[derive(Debug)]
pub struct MistralEvaluator {
    dataset: Arc<Dataset>,
    options: EngineOptions,
    /// The judge of profiles that have one (v2), kept loaded between jobs.
    judge: Option<JudgeSlot>,
    /// One candidate model at a time.
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
            judge: None,
            exclusive: tokio::sync::Mutex::new(()),
        }
    }

    /// Judges with `judge` under profiles that have a judge.
    #[must_use]
    pub fn with_judge(mut self, judge: JudgeSlot) -> Self {
        self.judge = Some(judge);
        self
    }
}

#[async_trait]
impl Evaluator for MistralEvaluator {
    async fn evaluate(&self, task: EvalTask<'_>) -> Result<Evaluation, JobError> {
        let EvalTask {
            job,
            model,
            profile,
            progress,
            cancel,
        } = task;
        let _exclusive = self.exclusive.lock().await;
        // The judge first: its trouble is the validator's, found before the candidate costs
        // anything.
        let judge = match &profile.judge {
            None => None,
            Some(settings) => match &self.judge {
                Some(slot) => Some(
                    slot.ready(settings)
                        .await
                        .map_err(|e| e.into_job_error(settings))?,
                ),
                None => {
                    return Err(JobError::transient(format!(
                        "profile {} needs the judge {}@{}, and this worker has none",
                        profile.version, settings.repo, settings.revision
                    )));
                }
            },
        };
        let started = Instant::now();
        let loaded = LoadedModel::load(&model.dir, self.options.clone())
            .await
            .map_err(classify)?;
        let load_ms = millis(started);
        let mut steps = Steps::new(&progress);
        let result = self
            .score(&loaded, job, model, profile, &mut steps, &cancel)
            .await;
        // The candidate leaves memory before the judge runs.
        loaded.unload().await;
        let Scored {
            mut evaluation,
            replies,
        } = result?;
        evaluation.details.timings.load_ms = load_ms;
        if let Some(judge) = judge {
            judge_replies(
                &judge,
                profile,
                &replies,
                &mut evaluation,
                &mut steps,
                &cancel,
            )
            .await?;
        }
        Ok(evaluation)
    }
}

/// Counts finished steps into the job's progress (loading is the first 5 %).
struct Steps<'a> {
    progress: &'a Progress,
    total: usize,
    done: usize,
}

impl<'a> Steps<'a> {
    fn new(progress: &'a Progress) -> Self {
        Self {
            progress,
            total: 1,
            done: 0,
        }
    }

    fn finished(&mut self, phase: Phase) {
        self.done += 1;
        self.progress
            .set(0.05 + 0.95 * self.done as f64 / self.total.max(1) as f64);
        self.progress.step(phase);
    }
}

/// A scored candidate, with its greedy replies (the vibe samples', in sample
/// order, untrimmed, each with its conversation) for the judge.
struct Scored<'d> {
    evaluation: Evaluation,
    replies: Vec<(&'d Conversation, String)>,
}

/// The judge phase: the first judged samples' replies against their
/// references, into the records, the judge component and its summary.
async fn judge_replies(
    judge: &Judge,
    profile: &ScoringProfile,
    replies: &[(&Conversation, String)],
    evaluation: &mut Evaluation,
    steps: &mut Steps<'_>,
    cancel: &CancellationToken,
) -> Result<(), JobError> {
    let settings = judge.settings();
    let count = profile.judged_samples(replies.len());
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(count);
    let mut lengths = Vec::with_capacity(count);
    for ((conversation, reply), record) in replies
        .iter()
        .take(count)
        .zip(evaluation.details.samples.iter_mut())
    {
        check(cancel)?;
        let judged = judge
            .judge(conversation.context(), reply, conversation.reference())
            .await
            .map_err(|e| e.into_job_error(settings))?;
        record.verdict = Some(judged.verdict);
        outcomes.push(judged.verdict.outcome);
        lengths.push((
            judged.candidate_chars as f64 - judged.reference_chars as f64,
            judged.verdict.preference,
        ));
        steps.finished(Phase::Judge);
    }
    let timings = &mut evaluation.details.timings;
    timings.judge_ms = millis(started);
    timings.judged_samples = outcomes.len() as u64;
    let tally = |o: VerdictOutcome| {
        u32::try_from(outcomes.iter().filter(|&&x| x == o).count()).unwrap_or(u32::MAX)
    };
    let preferences: Vec<f64> = lengths.iter().map(|&(_, p)| p).collect();
    let summary = JudgeSummary {
        repo: settings.repo.clone(),
        revision: judge.model().revision_sha.clone(),
        weights_fingerprint: judge.model().weights_fingerprint.clone(),
        samples: u32::try_from(outcomes.len()).unwrap_or(u32::MAX),
        wins: tally(VerdictOutcome::Win),
        ties: tally(VerdictOutcome::Tie),
        losses: tally(VerdictOutcome::Loss),
        mean_preference: mean(&preferences),
        length_correlation: correlation(&lengths),
    };
    evaluation.components.judge = Some(judge_score(outcomes.iter().copied()));
    info!(
        judge = evaluation.components.judge,
        wins = summary.wins,
        ties = summary.ties,
        losses = summary.losses,
        length_correlation = summary.length_correlation,
        "replies judged"
    );
    evaluation.details.judge = Some(summary);
    Ok(())
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

impl MistralEvaluator {
    /// Similarity, vibe, latency and size of the `loaded` candidate.
    async fn score(
        &self,
        loaded: &LoadedModel,
        job: &JobV1,
        model: &LocalModel,
        profile: &ScoringProfile,
        steps: &mut Steps<'_>,
        cancel: &CancellationToken,
    ) -> Result<Scored<'_>, JobError> {
        let dataset = &*self.dataset;
        let generation_batch = self.options.generation_batch;
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
        steps.total = samples.len() + vibe_count + 1 + profile.judged_samples(vibe_count);
        let mut tokens = 0u64;
        let window = info.max_seq_len;
        // The seed's validator: context budget = window - reference budget. Half the window at
        // most goes to the reply, so a small window still leaves room for the context.
        let reference_budget = profile.max_reference_tokens.min(window / 2).max(1);
        let render_tokens = |messages: &[Message]| -> Result<Vec<u32>, JobError> {
            let text = template.render(messages, true).map_err(bad_template)?;
            loaded.tokenize(&text).map_err(classify)
        };

        let mut timings = PhaseTimings::default();
        let started = Instant::now();
        let mut records = Vec::with_capacity(samples.len());
        for conversation in &samples {
            check(cancel)?;
            let context = fit_context(
                conversation.context(),
                (window - reference_budget).max(1),
                render_tokens,
            )?;
            let mut reference = loaded
                .tokenize(&reference_target(conversation.reference(), &info.eos_token))
                .map_err(classify)?;
            reference.truncate(
                profile
                    .max_reference_tokens
                    .min(window - context.tokens.len()),
            );
            let probabilities = loaded
                .teacher_forced_top_k_probs(
                    &context.tokens,
                    &reference,
                    profile.top_k,
                    profile.floor_probability,
                )
                .await
                .map_err(classify)?;
            tokens += (context.tokens.len() + reference.len()) as u64;
            timings.similarity_tokens += (context.tokens.len() + reference.len()) as u64;
            records.push(SampleRecord {
                conversation_id: conversation.id.clone(),
                similarity: profile.sample_similarity(&probabilities),
                vibe: None,
                reply: None,
                context_cut: context.is_cut(),
                verdict: None,
            });
            steps.finished(Phase::Similarity);
        }

        timings.similarity_ms = millis(started);
        let started = Instant::now();
        let mut replies = Vec::with_capacity(vibe_count);
        let mut prompts = Vec::with_capacity(vibe_count);
        for conversation in samples.iter().take(vibe_count) {
            let user_chars = conversation.last_user().chars().count();
            let budget = profile.vibe_budget(user_chars).min(window / 2).max(1);
            let prompt = fit_context(
                conversation.context(),
                (window - budget).max(1),
                render_tokens,
            )?;
            prompts.push((user_chars, budget, prompt));
        }
        // `generation_batch` replies at a time (one by default); the same replies either way
        // where the engine batches correctly (the GPU check compares them).
        for (chunk_index, chunk) in prompts.chunks(generation_batch.max(1)).enumerate() {
            check(cancel)?;
            let generations = futures::future::join_all(
                chunk
                    .iter()
                    .map(|(_, budget, prompt)| loaded.generate(&prompt.tokens, *budget)),
            )
            .await;
            let first = chunk_index * generation_batch.max(1);
            for (offset, ((user_chars, _, prompt), generation)) in
                chunk.iter().zip(generations).enumerate()
            {
                let generation = generation.map_err(classify)?;
                let record = &mut records[first + offset];
                tokens += (prompt.tokens.len() + generation.tokens) as u64;
                timings.generated_tokens += generation.tokens as u64;
                let reply = generation.text;
                // Untrimmed, as the seed compared them.
                record.vibe = Some(sample_vibe(reply.chars().count(), *user_chars));
                record.reply = Some(SampleRecord::cut_reply(&reply));
                record.context_cut |= prompt.is_cut();
                replies.push((samples[first + offset], reply));
                steps.finished(Phase::Vibe);
            }
        }

        timings.generation_ms = millis(started);
        check(cancel)?;
        let started = Instant::now();
        let probe = profile
            .latency_input_tokens
            .min(window.saturating_sub(1))
            .max(1);
        let latency = loaded
            .forward_latency(probe, profile.latency_repeats.max(1))
            .await
            .map_err(classify)?;
        timings.latency_probe_ms = millis(started);
        steps.finished(Phase::Latency);

        let similarities: Vec<f64> = records.iter().map(|r| r.similarity).collect();
        let vibes: Vec<f64> = records.iter().filter_map(|r| r.vibe).collect();
        let components = ComponentScores {
            similarity: mean(&similarities),
            vibe: mean(&vibes),
            latency: profile.latency_score(latency.median_ms),
            size: profile.size_score(model.size_bytes),
            // Set by the judge phase, after the candidate is unloaded.
            judge: None,
        };
        let samples_context_cut = records.iter().filter(|r| r.context_cut).count();
        info!(
            similarity = components.similarity,
            vibe = components.vibe,
            latency_ms = latency.median_ms,
            latency_spread = latency.relative_spread(),
            samples_context_cut,
            size_bytes = model.size_bytes,
            tokens,
            "model scored"
        );
        Ok(Scored {
            evaluation: Evaluation {
                components,
                tokens,
                dataset_sha256: dataset.sha256.clone(),
                details: EvaluationDetails {
                    samples_context_cut,
                    latency: Some(latency),
                    samples: records,
                    timings,
                    judge: None,
                },
            },
            replies,
        })
    }
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
/// Whether an engine error's text is the device's failure rather than the
/// model's: a CUDA driver or library error, or memory running out. The CUDA
/// worker on a host whose driver does not answer failed every model as
/// `load_failed: … DriverError(CUDA_ERROR_…)` before this was told apart.
/// Memory running out despite the precheck's estimate is the validator's
/// limit too; a model that truly cannot fit is refused by the precheck.
fn is_device_failure(message: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "DriverError",
        "CUDA_ERROR",
        "CUBLAS_STATUS",
        "out of memory",
        "OutOfMemory",
        "cudaErrorMemoryAllocation",
    ];
    MARKERS.iter().any(|m| message.contains(m))
}

fn classify(e: EngineError) -> JobError {
    let model = |code: FailureCode| JobError::Model(FailureReason::new(code, e.to_string()));
    match &e {
        EngineError::NonFiniteLogits { .. } => model(FailureCode::NanOutput),
        // The device failed (no usable driver, out of GPU memory): the worker's trouble.
        EngineError::Load(message) | EngineError::Inference(message)
            if is_device_failure(message) =>
        {
            JobError::transient_source(e)
        }
        EngineError::ModelFile { .. }
        | EngineError::Tokenizer(_)
        | EngineError::SequenceTooLong { .. }
        | EngineError::TokenOutOfVocabulary { .. }
        | EngineError::EmptyInput(_) => model(FailureCode::BadConfig),
        // A model that fails to load or run fails again on retry.
        EngineError::Load(_) | EngineError::Inference(_) | EngineError::EngineGone => {
            model(FailureCode::LoadFailed)
        }
        // A config.json form the engine does not read is the validator's limit: hand the
        // job back (another worker, or a newer engine, may read it) rather than fail it.
        EngineError::UnreadableConfig(_)
        | EngineError::DerivedDir(_)
        | EngineError::MissingModelDir(_)
        | EngineError::LogitsShape(_)
        | EngineError::UnexpectedResponse(_)
        | EngineError::Tensor(_)
        | EngineError::Join(_) => JobError::transient_source(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_failures_are_the_workers_and_model_failures_the_models() {
        // As the CUDA worker reported it on a host without a usable driver.
        let no_driver = EngineError::Load(
            "DriverError(CUDA_ERROR_STUB_LIBRARY, \"<Failure when calling cuGetErrorString()>\")"
                .into(),
        );
        assert!(matches!(classify(no_driver), JobError::Transient { .. }));
        let oom = EngineError::Inference("CUDA_ERROR_OUT_OF_MEMORY: out of memory".into());
        assert!(matches!(classify(oom), JobError::Transient { .. }));
        // A model the engine cannot load is still the model's.
        let broken = EngineError::Load("cannot find tensor model.embed_tokens.weight".into());
        assert!(matches!(
            classify(broken),
            JobError::Model(FailureReason {
                code: FailureCode::LoadFailed,
                ..
            })
        ));
    }
}
