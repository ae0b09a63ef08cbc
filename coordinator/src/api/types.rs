//! The API's JSON bodies, with their OpenAPI schemas. They mirror the domain
//! types of `common` and [`crate::leaderboard`] rather than exposing them, so
//! the wire format of the API changes only on purpose. The exceptions are
//! parts of a stored result, itself a versioned wire format: a job's scores
//! ([`ComponentScores`]), per-sample records ([`SampleRecord`]) and its
//! judge's tally ([`JudgeSummary`]) are served as they are (their schemas come with
//! `common`'s `openapi` feature).

use common::job::{JobStatus, ModelRef};
use common::result::{ComponentScores, FailureReason, JudgeSummary, SampleRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a submission stands, as a miner asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SubmissionStatus {
    /// Waiting for a worker (see `queue_position`).
    Queued,
    /// Being evaluated (see `progress`).
    Running,
    /// Scored (see `scores` and `total`).
    Completed,
    /// Evaluated and refused for good (see `reason`).
    Failed,
    /// The hotkey's commitment was refused; nothing is evaluated (see `reason`).
    Invalid,
}

impl From<JobStatus> for SubmissionStatus {
    fn from(status: JobStatus) -> Self {
        match status {
            JobStatus::Queued => Self::Queued,
            JobStatus::Running => Self::Running,
            JobStatus::Completed => Self::Completed,
            JobStatus::Failed => Self::Failed,
        }
    }
}

/// A model on the hub, as evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Model {
    pub namespace: String,
    pub name: String,
    pub revision: String,
    pub chat_template: String,
}

impl From<&ModelRef> for Model {
    fn from(m: &ModelRef) -> Self {
        Self {
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            revision: m.revision.clone(),
            chat_template: m.chat_template.clone(),
        }
    }
}

/// Why a submission is invalid or its evaluation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reason {
    /// Stable code: a failure code (`too_large`, `bad_template`…) or an
    /// invalid-submission code (`hash_mismatch`, `duplicate`…).
    pub code: String,
    /// What happened, written for the miner.
    pub message: String,
}

impl From<&FailureReason> for Reason {
    fn from(r: &FailureReason) -> Self {
        Self {
            code: r.code.as_str().to_owned(),
            message: r.message.clone(),
        }
    }
}

/// The answer to the miner's status query and to `GET /v1/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelStatus {
    pub status: SubmissionStatus,
    /// Absent for an INVALID submission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<Model>,
    /// Scoring profile version the job is evaluated with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The miner's uid and hotkey, when known from the chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hotkey: Option<String>,
    /// QUEUED: 1 for the next job a worker takes, in queueing order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u64>,
    /// QUEUED: how many jobs wait in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_length: Option<u64>,
    /// RUNNING: fraction done, in `[0, 1]`, as the worker last reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// Claims so far (more than 1 when a worker died or handed it back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// COMPLETED: the component scores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<ComponentScores>,
    /// COMPLETED: the profile's weighted total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// COMPLETED under a profile with a judge (v2): which judge, pinned, and
    /// how its verdicts went (each sample's verdict is on the samples route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeSummary>,
    /// FAILED or INVALID: why, written for the miner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Unix ms at which this answer was built (it is at most the status
    /// refresh interval old).
    pub as_of_ms: u64,
}

/// The answer of `GET /v1/jobs/{id}/samples`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobSamples {
    pub job_id: String,
    /// The job's status (never INVALID). Only a COMPLETED job has samples.
    pub status: SubmissionStatus,
    /// COMPLETED: one per scored sample, in the order they were scored
    /// (empty when the result came from a worker that did not record
    /// them). QUEUED, RUNNING, FAILED: empty.
    pub samples: Vec<SampleRecord>,
    /// Unix ms of the status index the status was read from (at most the
    /// status refresh interval old).
    pub as_of_ms: u64,
}

/// One row of the leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaderboardEntry {
    /// 1 for the best.
    pub rank: usize,
    pub uid: u16,
    pub hotkey: String,
    /// Block of the commitment.
    pub block: Option<u64>,
    pub model: Option<Model>,
    pub job_id: Option<String>,
    /// Job status, or INVALID.
    pub status: SubmissionStatus,
    pub scores: Option<ComponentScores>,
    /// Total as evaluated.
    pub total: Option<f64>,
    /// What counts for weights (0 for a copy of an earlier model).
    pub score: f64,
    pub weight: f64,
    pub reason: Option<String>,
    /// The miner's newer submission while it is evaluated. The row's model
    /// and score are then their last completed evaluation, which keeps
    /// counting until the new one COMPLETES (and replaces it) or FAILS (and
    /// the miner has no score).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingSubmission>,
}

/// A submission being evaluated while the miner's earlier score counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PendingSubmission {
    /// Block of the new commitment.
    pub block: Option<u64>,
    pub model: Model,
    pub job_id: String,
    /// QUEUED or RUNNING.
    pub status: SubmissionStatus,
}

/// The leaderboard as of the last aggregation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaderboardResponse {
    /// Block of the last aggregation.
    pub block: u64,
    pub entries: Vec<LeaderboardEntry>,
}

/// u16 weights as sent to the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WeightVector {
    pub uids: Vec<u16>,
    pub weights: Vec<u16>,
}

/// The last computed and the last set weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WeightsResponse {
    /// Latest chain block read.
    pub block: u64,
    pub computed: Option<WeightVector>,
    pub computed_at_block: Option<u64>,
    pub set: Option<WeightVector>,
    pub set_at_block: Option<u64>,
    /// Why the last attempt to set weights failed, if it did.
    pub last_error: Option<String>,
    /// Weights are computed but not sent (`--dry-run`).
    pub dry_run: bool,
}

/// An operator's request to evaluate a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluationRequest {
    /// Hugging Face user or organisation: 1 to 96 of `A-Z a-z 0-9 - _ .`, not `.` or `..`.
    #[schema(
        min_length = 1,
        max_length = 96,
        pattern = r"^(?!\.\.?$)[A-Za-z0-9._-]{1,96}$"
    )]
    pub namespace: String,
    /// Repository name, as `namespace`.
    #[schema(
        min_length = 1,
        max_length = 96,
        pattern = r"^(?!\.\.?$)[A-Za-z0-9._-]{1,96}$"
    )]
    pub name: String,
    /// Branch, tag or commit sha: 1 to 128 of `A-Z a-z 0-9 - _ . /`, without `..` [default: main].
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^(?!.*\.\.)[A-Za-z0-9._/-]{1,128}$"
    )]
    pub revision: Option<String>,
    /// Chat template: 1 to 64 of `A-Z a-z 0-9 - _ .`.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub chat_template: String,
    /// Who asks, recorded with the job: 1 to 64 of `A-Z a-z 0-9 - _ . @` [default: operator].
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    pub requested_by: Option<String>,
}

/// What `POST /v1/evaluations` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EvaluationAccepted {
    pub job_id: String,
    /// The job's status now (QUEUED for a new job).
    pub status: SubmissionStatus,
    /// A new job was created (false: the model was already known).
    pub created: bool,
    /// The job was (re-)published to the queue.
    pub published: bool,
}

/// One readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Check {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer of `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub store: Check,
    pub queue: Check,
    pub chain: Check,
}

/// The answer of `/healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}
