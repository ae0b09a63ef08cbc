//! The outcome of an evaluation as a worker reports it (docs/architecture.md §4, §7).
//!
//! A result is final: COMPLETED with component scores, or FAILED with a reason
//! the miner can act on. Transient trouble (network, broker, host OOM) is not
//! a result: the job is handed back and retried.

use serde::{Deserialize, Serialize};

use crate::job::JobId;

/// The scoring components, each in `[0, 1]`.
// Served as they are by the coordinator's API (schema `Scores`): the doc
// comments are its OpenAPI descriptions, written for the miner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Scores))]
#[serde(deny_unknown_fields)]
pub struct ComponentScores {
    /// Teacher-forced probability of the reference replies.
    pub similarity: f64,
    /// How well reply lengths match the user's message lengths.
    pub vibe: f64,
    /// `1 - forward latency / reference latency`.
    pub latency: f64,
    /// `1 - size on disk / size limit`.
    pub size: f64,
    /// Profile v2: the local LLM judge's verdicts against the reference
    /// replies, `(wins + ties / 2) / judged samples`. Absent under profiles
    /// without a judge (v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<f64>,
}

impl ComponentScores {
    /// Every component is a finite number in `[0, 1]`.
    pub fn is_well_formed(&self) -> bool {
        [self.similarity, self.vibe, self.latency, self.size]
            .into_iter()
            .chain(self.judge)
            .all(|v| v.is_finite() && (0.0..=1.0).contains(&v))
    }
}

/// Why an evaluation failed for good: the model's own fault, or (for
/// `invalid_job` and `delivery_limit`) the validator giving up on a job, as
/// its message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::Display, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum FailureCode {
    /// The repository does not exist, is private or gated.
    NotAccessible,
    /// A file that is not safetensors weights or plain config (pickle, code…).
    ForbiddenFile,
    /// Larger than the profile's size limit.
    TooLarge,
    /// Index, shards or config inconsistent or unsupported.
    BadConfig,
    /// The chat template is unknown, fails to render, or loops.
    BadTemplate,
    /// The model produced NaN or infinite logits.
    NanOutput,
    /// The evaluation ran past the job deadline.
    Timeout,
    /// The model cannot be loaded or run by the engine.
    LoadFailed,
    /// The job's message could not be understood.
    InvalidJob,
    /// Every worker that started the job died (or its lease ran out) before
    /// finishing it, as many times as the limits allow (e.g. the model
    /// crashes or exhausts the worker each time). Hand-backs for the
    /// validator's trouble never count.
    DeliveryLimit,
}

impl FailureCode {
    /// Every code (`strum::VariantArray`), for pre-initialising metric labels
    /// and for listings.
    pub const ALL: &'static [Self] = <Self as strum::VariantArray>::VARIANTS;

    /// The code's name, the one serde writes.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A final failure with a message written for the miner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FailureReason {
    pub code: FailureCode,
    pub message: String,
}

impl FailureReason {
    pub fn new(code: FailureCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What a model scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scores {
    pub components: ComponentScores,
    /// The profile's weighted total.
    pub total: f64,
    /// [`crate::submission::weights_fingerprint`] of the evaluated weights.
    pub weights_fingerprint: String,
    /// sha256 of the evaluation dataset file.
    pub dataset_sha256: String,
    /// Resolved commit sha of the evaluated revision.
    pub revision_sha: String,
    /// Tokens scored or generated, for throughput figures.
    pub tokens: u64,
    /// Samples whose context was cut (oldest turns dropped) to fit the model's
    /// window. Absent in results written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples_context_cut: Option<u32>,
    /// The latency probe's timed passes. Absent in results written before it
    /// was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyStats>,
    /// One record per scored sample, in sample order, so the miner can see
    /// what each conversation scored. Empty in results written before they
    /// were recorded. Stores keep them apart from the job record
    /// ([`crate::store::ResultStore::samples`]).
    ///
    /// Size: a profile scores at most `similarity_samples` of them (64 in v1),
    /// and only the `vibe_samples` ones (16 in v1) carry a reply of at most
    /// [`SampleRecord::REPLY_CHARS`] characters, so a result's records stay
    /// within tens of kilobytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<SampleRecord>,
    /// Profile v2: which judge gave the verdicts, and their tally. Absent
    /// under profiles without a judge.
    /// Boxed: it is rare and large beside the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<Box<JudgeSummary>>,
}

/// The judge of a v2 evaluation and its tally over the judged samples.
// Served as it is by the coordinator's API (schema `JudgeReport`): the doc
// comments are its OpenAPI descriptions, written for the miner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = JudgeReport))]
#[serde(deny_unknown_fields)]
pub struct JudgeSummary {
    /// The judge model's repository, `namespace/name`.
    pub repo: String,
    /// The commit the judge was pinned to.
    pub revision: String,
    /// Fingerprint of the judge's weights (as a submission's weights are
    /// fingerprinted, to spot copies).
    pub weights_fingerprint: String,
    /// Samples judged, and how each ended for the model.
    pub samples: u32,
    pub wins: u32,
    pub ties: u32,
    pub losses: u32,
    /// Mean of the model's per-sample preference (each the mean of both
    /// orders), in `[0, 1]`.
    pub mean_preference: f64,
    /// Pearson correlation between the reply-length difference (the model's
    /// minus the reference's, in characters, as the judge saw them) and the
    /// preference: near +1, the judge rewards length. Absent when undefined
    /// (fewer than two samples, or no variation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length_correlation: Option<f64>,
}

/// What one sample (one conversation of the validator's dataset) scored.
// The coordinator's API serves these records as they are (`GET
// /v1/jobs/{id}/samples`, schema `Sample`): the doc comments here and on
// the types within are its OpenAPI descriptions, written for the miner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Sample))]
#[serde(deny_unknown_fields)]
pub struct SampleRecord {
    /// The conversation's id in the evaluation dataset.
    pub conversation_id: String,
    /// The sample's similarity, in `[0, 1]`.
    pub similarity: f64,
    /// The sample's vibe, in `[0, 1]`; only on the samples also generated
    /// for vibe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vibe: Option<f64>,
    /// The model's greedy reply on the vibe samples, cut to its first 500
    /// characters. The model's own text, as plain JSON data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// The conversation was longer than the model's window, so its oldest
    /// turns were dropped (the system prompt and the last user turn kept).
    pub context_cut: bool,
    /// Profile v2: the judge's verdict on this sample's reply against the
    /// reference reply. Absent on samples that were not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<SampleVerdict>,
}

/// The judge's probabilities of its two answers at the answer position, read
/// teacher-forced from its logits (full softmax): `a` for the reply shown
/// first, `b` for the one shown second. The labels are `A` and `B` unless a
/// quoted text uses those words (then `X`/`Y` or `P`/`Q`), so that no reply
/// can name an answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Answers))]
#[serde(deny_unknown_fields)]
pub struct AnswerProbabilities {
    pub a: f64,
    pub b: f64,
}

impl AnswerProbabilities {
    /// The judge's preference for reply A over B: `a / (a + b)`, 0.5 when
    /// both are 0.
    pub fn prefers_a(&self) -> f64 {
        let sum = self.a + self.b;
        if sum > 0.0 { self.a / sum } else { 0.5 }
    }
}

/// How a judged sample ended for the model: a win or a loss only when both
/// orders agree, else a tie (position bias cancels out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Outcome))]
#[serde(rename_all = "snake_case")]
pub enum VerdictOutcome {
    Win,
    Tie,
    Loss,
}

/// The judge's verdict on one sample, asked in both orders, so that the
/// judge's preference for a position cancels out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Verdict))]
#[serde(deny_unknown_fields)]
pub struct SampleVerdict {
    /// The judge's probabilities of answering with the first (`a`) and the
    /// second (`b`) reply, with the model's reply shown first and the
    /// reference second.
    pub candidate_first: AnswerProbabilities,
    /// The same with the reference shown first and the model's reply second.
    pub candidate_second: AnswerProbabilities,
    /// The model's reply's share of the answer probability, mean of both
    /// orders, in `[0, 1]`.
    pub preference: f64,
    /// `win` or `loss` when both orders agree, else `tie`.
    pub outcome: VerdictOutcome,
}

impl SampleRecord {
    /// Characters of a generated reply kept in a record (`reply`: text the
    /// miner's model wrote, to serve as data, never as markup).
    pub const REPLY_CHARS: usize = 500;

    /// `reply` cut to [`Self::REPLY_CHARS`] characters (never inside a
    /// character).
    pub fn cut_reply(reply: &str) -> String {
        reply.chars().take(Self::REPLY_CHARS).collect()
    }
}

/// The latency probe of one evaluation: the median is what is scored; the
/// spread shows how noisy the measurement was.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyStats {
    /// Median forward latency, milliseconds.
    pub median_ms: f64,
    /// Fastest and slowest timed pass, milliseconds.
    pub min_ms: f64,
    pub max_ms: f64,
    /// Timed passes (after the untimed warm-up).
    pub repeats: u32,
}

impl LatencyStats {
    /// `(max - min) / median`: 0 for a perfectly steady probe.
    pub fn relative_spread(&self) -> f64 {
        if self.median_ms > 0.0 {
            (self.max_ms - self.min_ms) / self.median_ms
        } else {
            0.0
        }
    }
}

/// How an evaluation ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Completed(Scores),
    Failed(FailureReason),
}

/// The body of a result, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultV1 {
    pub job_id: JobId,
    pub profile: String,
    pub outcome: Outcome,
    /// Name of the worker that produced it.
    pub worker: String,
    /// Which delivery of the job produced it (1 for the first).
    pub attempt: u32,
    pub started_at_ms: u64,
    pub finished_at_ms: u64,
}

impl ResultV1 {
    /// Moves the per-sample records out (none for a failure). Stores keep
    /// them apart from the job record, which the coordinator's status index
    /// reads for every job every second.
    pub fn take_samples(&mut self) -> Vec<SampleRecord> {
        match &mut self.outcome {
            Outcome::Completed(scores) => std::mem::take(&mut scores.samples),
            Outcome::Failed(_) => Vec::new(),
        }
    }
}

/// A result as stored: one variant per wire version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "schema")]
pub enum ResultMessage {
    #[serde(rename = "eval-result/v1")]
    V1(ResultV1),
}

crate::job::versioned_wire!(ResultMessage, &["eval-result/v1"]);

impl ResultMessage {
    pub fn result(&self) -> &ResultV1 {
        match self {
            Self::V1(result) => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FailureCode;

    #[test]
    fn failure_code_all_lists_every_code_once_by_its_serde_name() {
        // A new variant breaks this match until it is added here too.
        let position = |code: FailureCode| match code {
            FailureCode::NotAccessible => 0,
            FailureCode::ForbiddenFile => 1,
            FailureCode::TooLarge => 2,
            FailureCode::BadConfig => 3,
            FailureCode::BadTemplate => 4,
            FailureCode::NanOutput => 5,
            FailureCode::Timeout => 6,
            FailureCode::LoadFailed => 7,
            FailureCode::InvalidJob => 8,
            FailureCode::DeliveryLimit => 9,
        };
        for (i, &code) in FailureCode::ALL.iter().enumerate() {
            assert_eq!(position(code), i, "{code}");
            // strum's name (metric labels, messages) is serde's (the wire).
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert_eq!(code.to_string(), code.as_str());
        }
    }

    use super::*;
    use crate::job::{JobId, ModelRef};

    fn job_id() -> JobId {
        JobId::for_model(
            &ModelRef {
                namespace: "alice".into(),
                name: "rp-7b".into(),
                revision: "main".into(),
                chat_template: "chatml".into(),
            },
            "v1",
        )
    }

    #[test]
    fn golden_result_v1_completed_and_failed() {
        let completed = ResultMessage::V1(ResultV1 {
            job_id: job_id(),
            profile: "v1".into(),
            outcome: Outcome::Completed(Scores {
                components: crate::testsuite::distinct_scores(),
                total: 0.4775,
                weights_fingerprint: "f".repeat(64),
                dataset_sha256: "d".repeat(64),
                revision_sha: "0".repeat(40),
                tokens: 1234,
                samples_context_cut: None,
                latency: None,
                samples: Vec::new(),
                judge: None,
            }),
            worker: "worker-0".into(),
            attempt: 1,
            started_at_ms: 1_764_000_000_000,
            finished_at_ms: 1_764_000_360_000,
        });
        let failed = ResultMessage::V1(ResultV1 {
            outcome: Outcome::Failed(FailureReason::new(
                FailureCode::ForbiddenFile,
                "pytorch_model.bin: only safetensors weights are accepted",
            )),
            attempt: 2,
            ..completed.result().clone()
        });
        for (message, golden) in [
            (
                completed,
                include_str!("../testdata/result.v1.completed.json"),
            ),
            (failed, include_str!("../testdata/result.v1.failed.json")),
        ] {
            crate::job::assert_golden(&message, golden, ResultMessage::decode);
        }
    }

    #[test]
    fn optional_evaluation_details_round_trip() {
        let golden = include_str!("../testdata/result.v1.completed.json");
        let mut message = ResultMessage::decode(golden.as_bytes()).unwrap();
        let ResultMessage::V1(result) = &mut message;
        let Outcome::Completed(scores) = &mut result.outcome else {
            panic!("completed golden expected")
        };
        assert_eq!((scores.samples_context_cut, scores.latency), (None, None));
        scores.samples_context_cut = Some(3);
        scores.latency = Some(LatencyStats {
            median_ms: 10.0,
            min_ms: 9.5,
            max_ms: 10.5,
            repeats: 9,
        });
        let bytes = message.encode();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"samples_context_cut\":3"), "{text}");
        assert_eq!(ResultMessage::decode(&bytes).unwrap(), message);
        let ResultMessage::V1(result) = &message;
        let Outcome::Completed(scores) = &result.outcome else {
            unreachable!()
        };
        assert!((scores.latency.unwrap().relative_spread() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn per_sample_records_round_trip_and_split_off() {
        // The golden (written before samples were recorded) decodes with none.
        let golden = include_str!("../testdata/result.v1.completed.json");
        let mut message = ResultMessage::decode(golden.as_bytes()).unwrap();
        let ResultMessage::V1(result) = &mut message;
        let Outcome::Completed(scores) = &mut result.outcome else {
            panic!("completed golden expected")
        };
        assert!(scores.samples.is_empty());
        let records = vec![
            SampleRecord {
                conversation_id: "tavern-7".into(),
                similarity: 0.25,
                vibe: Some(0.5),
                reply: Some("\"Hi\" <b>there</b> — ünïcode".into()),
                context_cut: true,
                verdict: None,
            },
            SampleRecord {
                conversation_id: "tavern-8".into(),
                similarity: 0.125,
                vibe: None,
                reply: None,
                context_cut: false,
                verdict: None,
            },
        ];
        scores.samples = records.clone();
        let bytes = message.encode();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value["outcome"]["samples"][1],
            serde_json::json!({"conversation_id": "tavern-8", "similarity": 0.125, "context_cut": false}),
            "a record without vibe leaves vibe and reply out"
        );
        assert_eq!(ResultMessage::decode(&bytes).unwrap(), message);

        let mut result = message.result().clone();
        assert_eq!(result.take_samples(), records);
        assert_eq!(result.take_samples(), Vec::new());
        let ResultMessage::V1(expected) = ResultMessage::decode(golden.as_bytes()).unwrap();
        assert_eq!(result, expected, "only the samples were taken");
    }

    #[test]
    fn replies_are_cut_by_characters() {
        let long = "é".repeat(SampleRecord::REPLY_CHARS + 7);
        let cut = SampleRecord::cut_reply(&long);
        assert_eq!(cut.chars().count(), SampleRecord::REPLY_CHARS);
        assert_eq!(SampleRecord::cut_reply("short"), "short");
    }

    #[test]
    fn component_scores_range_check() {
        let ok = ComponentScores {
            similarity: 0.0,
            vibe: 1.0,
            latency: 0.5,
            size: 0.5,
            judge: None,
        };
        assert!(ok.is_well_formed());
        assert!(
            !ComponentScores {
                similarity: f64::NAN,
                ..ok
            }
            .is_well_formed()
        );
        assert!(!ComponentScores { size: 1.5, ..ok }.is_well_formed());
        assert!(
            ComponentScores {
                judge: Some(0.5),
                ..ok
            }
            .is_well_formed()
        );
        assert!(
            !ComponentScores {
                judge: Some(f64::NAN),
                ..ok
            }
            .is_well_formed()
        );
        assert!(
            !ComponentScores {
                judge: Some(-0.1),
                ..ok
            }
            .is_well_formed()
        );
    }
}
