//! The local LLM judge of profile v2 (docs/architecture.md §7.1).
//!
//! For each judged sample the judge model compares the candidate's greedy
//! (vibe) reply with the dataset's reference reply, in both orders. It reads
//! no free-form answer: one teacher-forced pass per order gives its
//! probabilities of the answer tokens `A` and `B` at the answer position
//! ([`LoadedModel::next_token_probs`]), and [`common::scoring::judge_verdict`]
//! turns the two orders into a win, a tie or a loss.
//!
//! The judge is the validator's model: it is fetched at its pinned revision
//! through the worker's model source and prechecked like any model, loaded
//! once per worker ([`JudgeSlot`]) and kept between jobs. Anything that goes
//! wrong with it (fetch, load, out of memory, a broken answer) is the
//! validator's trouble: a transient error, never the candidate's fault.

pub mod prompt;

use std::sync::Arc;

use common::job::ModelRef;
use common::result::{AnswerProbabilities, SampleVerdict};
use common::scoring::{JudgeSettings, judge_verdict};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::model::{EngineError, EngineOptions, LoadedModel};
use crate::dataset::Message;
use crate::error::JobError;
use crate::eval::context::fit_context;
use crate::source::{LocalModel, ModelSource};
use crate::template::{ChatTemplate, TemplateError};

/// Tokens a reply cut to the budget may take beyond it once rendered in the
/// prompt (its edges can tokenize differently there than alone).
const REPLY_SLACK_TOKENS: usize = 8;

/// Why the judge could not give a verdict. Every case is the validator's
/// problem ([`JudgeError::into_job_error`] makes it transient).
#[derive(Debug, thiserror::Error)]
pub enum JudgeError {
    #[error("fetching it failed: {0}")]
    Fetch(#[source] JobError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("its chat template: {0}")]
    Template(#[from] TemplateError),
    #[error("its tokenizer cannot answer: {0}")]
    Answers(String),
    #[error("this worker judges with {worker}, the job's profile asks for {profile}")]
    Mismatch { worker: String, profile: String },
}

impl JudgeError {
    /// A transient job error naming the judge: the job is handed back and
    /// retried, and the candidate is never blamed.
    pub fn into_job_error(self, settings: &JudgeSettings) -> JobError {
        JobError::transient_from(
            format!(
                "the judge {}@{} (the validator's, not the model's)",
                settings.repo, settings.revision
            ),
            self,
        )
    }
}

/// What the judge decided on one sample, with the lengths it saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JudgedSample {
    pub verdict: SampleVerdict,
    /// Characters of the candidate's and the reference reply, as shown (cut
    /// to the reply budget).
    pub candidate_chars: usize,
    pub reference_chars: usize,
}

/// What a judge needs beside its loaded model: see [`Judge`]'s fields.
struct Prepared {
    template: ChatTemplate,
    answers: Vec<[u32; 2]>,
    control_tokens: Vec<String>,
}

/// A loaded judge model.
#[derive(Debug)]
pub struct Judge {
    settings: JudgeSettings,
    model: LocalModel,
    loaded: LoadedModel,
    template: ChatTemplate,
    /// Token ids of each pair of [`prompt::LABEL_PAIRS`].
    answers: Vec<[u32; 2]>,
    /// Strings of the tokenizer's special tokens, removed from quoted text.
    control_tokens: Vec<String>,
}

impl Judge {
    /// Loads the judge fetched into `model`.
    pub async fn load(
        settings: JudgeSettings,
        model: LocalModel,
        options: EngineOptions,
    ) -> Result<Self, JudgeError> {
        let loaded = LoadedModel::load(&model.dir, options).await?;
        match Self::prepare(&settings, &loaded) {
            Ok(Prepared {
                template,
                answers,
                control_tokens,
            }) => Ok(Self {
                settings,
                model,
                loaded,
                template,
                answers,
                control_tokens,
            }),
            Err(e) => {
                loaded.unload().await;
                Err(e)
            }
        }
    }

    fn prepare(settings: &JudgeSettings, loaded: &LoadedModel) -> Result<Prepared, JudgeError> {
        let info = loaded.info();
        let template = ChatTemplate::select(
            &settings.chat_template,
            info.chat_template.as_deref(),
            &info.bos_token,
            &info.eos_token,
        )?;
        let mut answers = Vec::with_capacity(prompt::LABEL_PAIRS.len());
        for pair in prompt::LABEL_PAIRS {
            let mut ids = [0; 2];
            for (slot, label) in ids.iter_mut().zip(pair) {
                match loaded.tokenize(label)?.as_slice() {
                    [id] => *slot = *id,
                    other => {
                        return Err(JudgeError::Answers(format!(
                            "`{label}` is {} tokens, not one",
                            other.len()
                        )));
                    }
                }
            }
            if ids[0] == ids[1] {
                return Err(JudgeError::Answers(format!(
                    "`{}` and `{}` are the same token",
                    pair[0], pair[1]
                )));
            }
            answers.push(ids);
        }
        let mut control_tokens: Vec<String> = loaded
            .tokenizer()
            .get_added_tokens_decoder()
            .into_values()
            .filter(|t| t.special)
            .map(|t| t.content)
            .chain([info.bos_token.clone(), info.eos_token.clone()])
            .filter(|t| !t.is_empty())
            .collect();
        // Longest first, so a token that contains another is removed whole.
        control_tokens.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        control_tokens.dedup();
        Ok(Prepared {
            template,
            answers,
            control_tokens,
        })
    }

    pub fn settings(&self) -> &JudgeSettings {
        &self.settings
    }

    /// The judge as fetched: its resolved revision, weights fingerprint and
    /// memory estimate.
    pub fn model(&self) -> &LocalModel {
        &self.model
    }

    /// `reply` cut to the profile's reply budget in the judge's tokens.
    pub fn cut_reply(&self, reply: &str) -> Result<String, JudgeError> {
        let mut ids = self.loaded.tokenize(reply)?;
        if ids.len() <= self.settings.reply_tokens {
            return Ok(reply.to_owned());
        }
        ids.truncate(self.settings.reply_tokens);
        Ok(self.loaded.detokenize(&ids)?)
    }

    /// The judge's verdict on `candidate` against `reference` after `context`:
    /// both cut to the reply budget, asked in both orders, after the context
    /// [`Self::judged_context`] keeps.
    pub async fn judge(
        &self,
        context: &[Message],
        candidate: &str,
        reference: &str,
    ) -> Result<JudgedSample, JudgeError> {
        let candidate = self.cut_reply(candidate)?;
        let reference = self.cut_reply(reference)?;
        let context = self.judged_context(context, &reference)?;
        let first = self
            .answer_probabilities(&context, &candidate, &reference)
            .await?;
        let second = self
            .answer_probabilities(&context, &reference, &candidate)
            .await?;
        Ok(JudgedSample {
            verdict: judge_verdict(first, second),
            candidate_chars: candidate.chars().count(),
            reference_chars: reference.chars().count(),
        })
    }

    /// What of `context` the judge is shown beside `reference` (already cut to
    /// the reply budget): what fits its window with a candidate reply of the
    /// full budget ([`prompt::fit_judged_context`]). So it is the same for
    /// every candidate, whatever the length of its reply, and the
    /// instructions are never cut.
    pub fn judged_context(
        &self,
        context: &[Message],
        reference: &str,
    ) -> Result<Vec<Message>, JudgeError> {
        let budget = self
            .loaded
            .info()
            .max_seq_len
            .saturating_sub(1 + self.settings.reply_tokens + REPLY_SLACK_TOKENS)
            .max(1);
        // The candidate's place is left empty: its budget is kept free.
        let without_candidate = prompt::Comparison {
            context,
            reply_a: "",
            reply_b: reference,
        };
        let labels = prompt::Labels::choose(&without_candidate);
        prompt::fit_judged_context(context, budget, |kept| {
            let comparison = prompt::Comparison {
                context: kept,
                ..without_candidate
            };
            self.render_tokens(&comparison, labels)
        })
    }

    /// The judge's probabilities of answering with the first and the second
    /// label when shown `reply_a` first and `reply_b` second (as given: no cut)
    /// after `context`, whose oldest turns are dropped until the prompt fits the
    /// judge's window.
    pub async fn answer_probabilities(
        &self,
        context: &[Message],
        reply_a: &str,
        reply_b: &str,
    ) -> Result<AnswerProbabilities, JudgeError> {
        let (tokens, labels) = self.prompt_tokens(context, reply_a, reply_b)?;
        self.answer_probabilities_of(&tokens, labels).await
    }

    /// The prompt of one order, rendered and tokenized (see [`prompt`]), with
    /// its labels.
    pub fn prompt_tokens(
        &self,
        context: &[Message],
        reply_a: &str,
        reply_b: &str,
    ) -> Result<(Vec<u32>, prompt::Labels), JudgeError> {
        let labels = prompt::Labels::choose(&prompt::Comparison {
            context,
            reply_a,
            reply_b,
        });
        // A context from `judged_context` fits; this only cuts one that
        // does not, from the left, as a last resort.
        let window = self.loaded.info().max_seq_len;
        let fitted = fit_context(context, window.saturating_sub(1).max(1), |kept| {
            let comparison = prompt::Comparison {
                context: kept,
                reply_a,
                reply_b,
            };
            self.render_tokens(&comparison, labels)
        })?;
        Ok((fitted.tokens, labels))
    }

    /// The prompt of `comparison` under `labels`, rendered and tokenized.
    fn render_tokens(
        &self,
        comparison: &prompt::Comparison<'_>,
        labels: prompt::Labels,
    ) -> Result<Vec<u32>, JudgeError> {
        let messages = prompt::messages(comparison, &self.control_tokens, labels);
        let text = self.template.render(&messages, true)?;
        Ok(self.loaded.tokenize(&text)?)
    }

    /// The probabilities of `labels` after an already tokenized prompt.
    pub async fn answer_probabilities_of(
        &self,
        prompt_tokens: &[u32],
        labels: prompt::Labels,
    ) -> Result<AnswerProbabilities, JudgeError> {
        let p = self
            .loaded
            .next_token_probs(prompt_tokens, &self.answers[labels.pair])
            .await?;
        Ok(AnswerProbabilities { a: p[0], b: p[1] })
    }

    /// The judge's tokenizer, for callers that build prompts of their own.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, JudgeError> {
        Ok(self.loaded.tokenize(text)?)
    }

    pub async fn unload(self) {
        self.loaded.unload().await;
    }
}

/// The judge of a worker: fetched and loaded on first use, then kept loaded
/// between jobs. A failure leaves the slot empty, so the next job tries again.
pub struct JudgeSlot {
    settings: JudgeSettings,
    source: Arc<dyn ModelSource>,
    max_bytes: u64,
    options: EngineOptions,
    judge: Mutex<Option<Judge>>,
}

common::debug_fields!(JudgeSlot {
    settings,
    max_bytes
});

impl JudgeSlot {
    /// The judge `settings` names, fetched from `source` (refused over
    /// `max_bytes`, like any model).
    pub fn new(settings: JudgeSettings, source: Arc<dyn ModelSource>, max_bytes: u64) -> Self {
        Self {
            settings,
            source,
            max_bytes,
            options: EngineOptions::default(),
            judge: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &JudgeSettings {
        &self.settings
    }

    /// The loaded judge for `wanted` (the job's profile's), fetching and
    /// loading it first if needed.
    pub async fn ready(
        &self,
        wanted: &JudgeSettings,
    ) -> Result<MappedMutexGuard<'_, Judge>, JudgeError> {
        if wanted != &self.settings {
            return Err(JudgeError::Mismatch {
                worker: format!("{}@{}", self.settings.repo, self.settings.revision),
                profile: format!("{}@{}", wanted.repo, wanted.revision),
            });
        }
        let mut slot = self.judge.lock().await;
        if slot.is_none() {
            let (namespace, name) = self
                .settings
                .repo
                .split_once('/')
                .unwrap_or(("", &self.settings.repo));
            let reference = ModelRef {
                namespace: namespace.into(),
                name: name.into(),
                revision: self.settings.revision.clone(),
                chat_template: self.settings.chat_template.clone(),
            };
            let model = self
                .source
                .fetch(&reference, self.max_bytes)
                .await
                .map_err(JudgeError::Fetch)?;
            let judge = Judge::load(self.settings.clone(), model, self.options.clone()).await?;
            tracing::info!(
                repo = %self.settings.repo,
                revision = %judge.model.revision_sha,
                weights_fingerprint = %judge.model.weights_fingerprint,
                estimated_bytes = judge.model.shape.estimated_bytes,
                "judge loaded"
            );
            *slot = Some(judge);
        }
        Ok(MutexGuard::map(slot, |judge| {
            judge.as_mut().expect("the judge was loaded above")
        }))
    }
}
