//! Evaluation jobs: content-derived ids, status, and the versioned message the
//! coordinator publishes and workers consume (docs/architecture.md §4).
//!
//! A job is one distinct (repository, revision, chat template, scoring profile
//! version). Its id is a hash of exactly those, so publishing the same model
//! twice yields the same id and every write keyed by it is idempotent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hex digits kept from the sha256 of a job's content (128 bits).
const JOB_ID_HEX_LEN: usize = 32;

/// A job id: 32 lowercase hex digits derived from the job's content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    /// The id of evaluating `model` under scoring profile `profile_version`.
    pub fn for_model(model: &ModelRef, profile_version: &str) -> Self {
        // Length-prefixed fields: no two different tuples hash the same bytes.
        let mut hasher = Sha256::new();
        for field in [
            "job.v1",
            &model.namespace.to_lowercase(),
            &model.name.to_lowercase(),
            &model.revision,
            &model.chat_template,
            profile_version,
        ] {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field.as_bytes());
        }
        Self(hex::encode(hasher.finalize())[..JOB_ID_HEX_LEN].to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A string that is not a job id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a job id is {JOB_ID_HEX_LEN} lowercase hex digits")]
pub struct InvalidJobId;

impl FromStr for JobId {
    type Err = InvalidJobId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok =
            s.len() == JOB_ID_HEX_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidJobId)
        }
    }
}

impl TryFrom<String> for JobId {
    type Error = InvalidJobId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> Self {
        id.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The revision evaluated when a submission names none.
pub const DEFAULT_REVISION: &str = "main";

/// The model a job evaluates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelRef {
    pub namespace: String,
    pub name: String,
    /// Branch, tag or commit sha on the model hub.
    pub revision: String,
    pub chat_template: String,
}

impl ModelRef {
    pub fn repo_id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}@{} ({})",
            self.namespace, self.name, self.revision, self.chat_template
        )
    }
}

/// Where a job's lifecycle stands. Its name (`as_str`, `Display`,
/// `FromStr`) is the one serde writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[derive(strum::IntoStaticStr, strum::Display, strum::EnumString)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl JobStatus {
    /// Completed and failed jobs never change again (for one profile version).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What moves a job from one status to another. The lifecycle is this
/// table and nothing else: both stores check every change against
/// [`TRANSITIONS`] (the Redis scripts get it rendered into Lua, see
/// [`transitions_lua`]), and the store contract suite walks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// A worker starts an attempt under a lease. From RUNNING only when the
    /// lease ran out or the same worker claims again.
    Claim,
    /// The worker hands its job back (shutdown, transient failure); its
    /// message goes back to the queue with it.
    HandBack,
    /// The reconciler takes back a job whose lease expired (its worker died
    /// or hangs); the job needs a new message.
    Reclaim,
    /// The reconciler queues again a job whose message was dead-lettered
    /// through no fault of the model; the job needs a new message.
    Requeue,
    /// A result with scores is recorded.
    Complete,
    /// A failure reason is recorded (the model's fault, or the reconciler
    /// giving up on a dead-lettered job).
    Fail,
}

impl Transition {
    pub const ALL: [Self; 6] = [
        Self::Claim,
        Self::HandBack,
        Self::Reclaim,
        Self::Requeue,
        Self::Complete,
        Self::Fail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Claim => "claim",
            Self::HandBack => "hand_back",
            Self::Reclaim => "reclaim",
            Self::Requeue => "requeue",
            Self::Complete => "complete",
            Self::Fail => "fail",
        }
    }

    /// The status `self` leads to from `from`, or `None` when the table
    /// does not allow it.
    pub fn apply(self, from: JobStatus) -> Option<JobStatus> {
        TRANSITIONS
            .iter()
            .find(|(f, t, _)| *f == from && *t == self)
            .map(|(_, _, to)| *to)
    }
}

/// The job lifecycle: (from, transition, to). A new record starts QUEUED;
/// COMPLETED and FAILED are final (for one scoring profile version).
pub const TRANSITIONS: &[(JobStatus, Transition, JobStatus)] = &[
    (JobStatus::Queued, Transition::Claim, JobStatus::Running),
    (JobStatus::Running, Transition::Claim, JobStatus::Running),
    (JobStatus::Running, Transition::HandBack, JobStatus::Queued),
    (JobStatus::Running, Transition::Reclaim, JobStatus::Queued),
    (JobStatus::Queued, Transition::Requeue, JobStatus::Queued),
    (
        JobStatus::Queued,
        Transition::Complete,
        JobStatus::Completed,
    ),
    (
        JobStatus::Running,
        Transition::Complete,
        JobStatus::Completed,
    ),
    (JobStatus::Queued, Transition::Fail, JobStatus::Failed),
    (JobStatus::Running, Transition::Fail, JobStatus::Failed),
];

/// [`TRANSITIONS`] as a Lua table `{["FROM>transition"] = "TO", …}`, so the
/// Redis scripts enforce the very same table.
pub fn transitions_lua() -> String {
    let entries: Vec<String> = TRANSITIONS
        .iter()
        .map(|(from, t, to)| format!("[\"{from}>{}\"] = \"{to}\"", t.as_str()))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

/// Who asked for a job: a chain submission or an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobOrigin {
    Chain {
        uid: u16,
        hotkey: String,
        block: u64,
    },
    Operator {
        requested_by: String,
    },
}

/// The body of a job message, version 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobV1 {
    pub job_id: JobId,
    pub model: ModelRef,
    /// Version of the scoring profile to evaluate with, e.g. `v1`.
    pub profile: String,
    pub origin: JobOrigin,
    /// Unix milliseconds at which the coordinator first queued the job.
    pub queued_at_ms: u64,
}

/// A job as it travels on the queue: one variant per wire version, so a worker
/// refuses a version it does not know instead of misreading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "schema")]
pub enum JobMessage {
    #[serde(rename = "eval-job/v1")]
    V1(JobV1),
}

/// A message body that is not a job this build understands: a poison message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("message has unknown schema `{0}`")]
    UnknownSchema(String),
    #[error("message does not match its schema: {0}")]
    Invalid(serde_json::Error),
}

/// Decodes a versioned JSON message, telling apart garbage, an unknown
/// version and a malformed known version.
pub(crate) fn decode_versioned<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    known: &[&str],
) -> Result<T, WireError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(WireError::NotJson)?;
    let schema = value
        .get("schema")
        .and_then(|s| s.as_str())
        .unwrap_or("<missing>");
    if !known.contains(&schema) {
        return Err(WireError::UnknownSchema(schema.to_owned()));
    }
    serde_json::from_value(value).map_err(WireError::Invalid)
}

/// `decode` and `encode` for a versioned wire message: JSON tagged by
/// `schema`, read only in one of the `known` versions ([`decode_versioned`]).
macro_rules! versioned_wire {
    ($message:ty, $known:expr) => {
        impl $message {
            /// Reads a message, telling garbage, an unknown version and a
            /// malformed known version apart.
            pub fn decode(bytes: &[u8]) -> Result<Self, $crate::job::WireError> {
                $crate::job::decode_versioned(bytes, $known)
            }

            pub fn encode(&self) -> Vec<u8> {
                serde_json::to_vec(self).expect("wire messages always serialize")
            }
        }
    };
}
pub(crate) use versioned_wire;

versioned_wire!(JobMessage, &["eval-job/v1"]);

/// Checks a wire message against its golden file's text: written, the same
/// JSON; read, the same message.
#[cfg(test)]
pub(crate) fn assert_golden<T>(message: &T, golden: &str, decode: fn(&[u8]) -> Result<T, WireError>)
where
    T: Serialize + PartialEq + std::fmt::Debug,
{
    let expected: serde_json::Value = serde_json::from_str(golden).unwrap();
    assert_eq!(
        serde_json::to_value(message).unwrap(),
        expected,
        "wire format changed"
    );
    assert_eq!(&decode(golden.as_bytes()).unwrap(), message);
}

impl JobMessage {
    pub fn v1(model: ModelRef, profile: &str, origin: JobOrigin, queued_at_ms: u64) -> Self {
        Self::V1(JobV1 {
            job_id: JobId::for_model(&model, profile),
            model,
            profile: profile.to_owned(),
            origin,
            queued_at_ms,
        })
    }

    /// The current-version view of the job.
    pub fn job(&self) -> &JobV1 {
        match self {
            Self::V1(job) => job,
        }
    }

    pub fn id(&self) -> &JobId {
        &self.job().job_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_model() -> ModelRef {
        ModelRef {
            namespace: "alice".into(),
            name: "rp-7b".into(),
            revision: "main".into(),
            chat_template: "chatml".into(),
        }
    }

    #[test]
    fn a_status_has_one_name_for_serde_strum_and_redis() {
        use JobStatus::*;
        for status in [Queued, Running, Completed, Failed] {
            let name = status.as_str();
            assert_eq!(serde_json::to_value(status).unwrap(), name);
            assert_eq!(status.to_string(), name);
            assert_eq!(name.parse::<JobStatus>(), Ok(status));
        }
        assert!("queued".parse::<JobStatus>().is_err());
    }

    #[test]
    fn job_id_depends_on_content_only() {
        let model = sample_model();
        let id = JobId::for_model(&model, "v1");
        assert_eq!(id, JobId::for_model(&model.clone(), "v1"));
        assert_eq!(id.as_str().len(), 32);
        // Repository names are case-insensitive on the hub.
        let upper = ModelRef {
            namespace: "Alice".into(),
            ..model.clone()
        };
        assert_eq!(id, JobId::for_model(&upper, "v1"));
        for other in [
            JobId::for_model(&model, "v2"),
            JobId::for_model(
                &ModelRef {
                    revision: "abc".into(),
                    ..model.clone()
                },
                "v1",
            ),
            JobId::for_model(
                &ModelRef {
                    chat_template: "llama3".into(),
                    ..model.clone()
                },
                "v1",
            ),
            JobId::for_model(
                &ModelRef {
                    name: "rp-7c".into(),
                    ..model.clone()
                },
                "v1",
            ),
        ] {
            assert_ne!(id, other);
        }
        // Field boundaries matter: "ab"+"c" is not "a"+"bc".
        let a = ModelRef {
            namespace: "ab".into(),
            name: "c".into(),
            ..model.clone()
        };
        let b = ModelRef {
            namespace: "a".into(),
            name: "bc".into(),
            ..model
        };
        assert_ne!(JobId::for_model(&a, "v1"), JobId::for_model(&b, "v1"));
    }

    #[test]
    fn the_lifecycle_table() {
        use JobStatus::*;
        // Final statuses never move.
        for t in Transition::ALL {
            assert_eq!(t.apply(Completed), None, "{t:?} from COMPLETED");
            assert_eq!(t.apply(Failed), None, "{t:?} from FAILED");
        }
        assert_eq!(Transition::Claim.apply(Queued), Some(Running));
        assert_eq!(Transition::Reclaim.apply(Queued), None);
        assert_eq!(Transition::HandBack.apply(Queued), None);
        assert_eq!(Transition::Requeue.apply(Running), None);
        assert_eq!(Transition::Complete.apply(Running), Some(Completed));
        assert_eq!(Transition::Fail.apply(Queued), Some(Failed));
        // One row per (from, transition).
        let mut seen = std::collections::HashSet::new();
        for (from, t, _) in TRANSITIONS {
            assert!(seen.insert((*from, *t)), "duplicate row {from} {t:?}");
        }
        let lua = transitions_lua();
        assert!(lua.contains(r#"["RUNNING>reclaim"] = "QUEUED""#), "{lua}");
        assert_eq!(lua.matches(" = ").count(), TRANSITIONS.len());
    }

    #[test]
    fn job_id_parsing() {
        assert!("0123456789abcdef0123456789abcdef".parse::<JobId>().is_ok());
        assert!("0123456789ABCDEF0123456789abcdef".parse::<JobId>().is_err());
        assert!("../etc/passwd".parse::<JobId>().is_err());
    }

    #[test]
    fn golden_job_v1() {
        let message = JobMessage::v1(
            sample_model(),
            "v1",
            JobOrigin::Chain {
                uid: 7,
                hotkey: "5Alice".into(),
                block: 4_200_000,
            },
            1_764_000_000_000,
        );
        let golden = include_str!("../testdata/job.v1.json");
        assert_golden(&message, golden, JobMessage::decode);
    }

    #[test]
    fn poison_messages_are_told_apart() {
        assert!(matches!(
            JobMessage::decode(b"not json"),
            Err(WireError::NotJson(_))
        ));
        assert!(matches!(
            JobMessage::decode(br#"{"schema":"eval-job/v9"}"#),
            Err(WireError::UnknownSchema(s)) if s == "eval-job/v9"
        ));
        assert!(matches!(
            JobMessage::decode(br#"{"schema":"eval-job/v1","job_id":"x"}"#),
            Err(WireError::Invalid(_))
        ));
    }
}
