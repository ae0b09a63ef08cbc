//! Evaluation datasets: JSONL, one roleplay conversation per line.
//!
//! ```json
//! {"id": "captain", "messages": [
//!   {"role": "system", "content": "You are Captain Mara…"},
//!   {"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}]}
//! ```
//! An optional leading system message holds the character card; user and
//! assistant turns alternate; the last assistant turn is the reference reply.
//! The file's sha256 is recorded with every result, and samples are drawn with
//! the profile's seed, so two workers score a model on the same samples.
//!
//! A dataset is the built-in sample set, a local file, or a file of a Hugging
//! Face dataset repository ([`DatasetLocation`]); the operator configures it,
//! so it is trusted input, but every line is still validated. This module only
//! parses and validates; [`crate::source::fetch_dataset`] downloads a hub file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The small dataset shipped with the worker, used when none is configured.
pub const BUILTIN: &str = include_str!("../data/roleplay-mini.jsonl");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// One conversation, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: String,
    pub messages: Vec<Message>,
}

impl Conversation {
    /// Everything before the reference reply.
    pub fn context(&self) -> &[Message] {
        &self.messages[..self.messages.len() - 1]
    }

    /// The last assistant turn.
    pub fn reference(&self) -> &str {
        &self.messages[self.messages.len() - 1].content
    }

    /// The user message the reference answers.
    pub fn last_user(&self) -> &str {
        &self.messages[self.messages.len() - 2].content
    }
}

/// A loaded dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub conversations: Vec<Conversation>,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read dataset {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("dataset line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("dataset has no conversations")]
    Empty,
    #[error("cannot fetch dataset {location}: {message}")]
    Fetch { location: String, message: String },
}

/// Where the evaluation dataset comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DatasetLocation {
    /// [`BUILTIN`].
    #[default]
    Builtin,
    /// A JSONL file on local disk.
    File(PathBuf),
    /// A file of a Hugging Face dataset repository.
    Hub(HubDataset),
}

/// `hf://datasets/<namespace>/<name>[@<revision>]/<path>`, the notation of
/// `huggingface_hub`'s file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubDataset {
    /// `namespace/name`.
    pub repo_id: String,
    /// Branch, tag or commit sha [default: main].
    pub revision: String,
    /// Path of the JSONL file inside the repository.
    pub path: String,
}

const HUB_PREFIX: &str = "hf://datasets/";

impl FromStr for DatasetLocation {
    type Err = String;

    /// `builtin`; a string starting `hf://datasets/` names a hub file;
    /// anything else is a path.
    fn from_str(value: &str) -> Result<Self, String> {
        if value == "builtin" {
            return Ok(Self::Builtin);
        }
        let Some(rest) = value.strip_prefix(HUB_PREFIX) else {
            if value.trim().is_empty() {
                return Err("is empty".into());
            }
            return Ok(Self::File(PathBuf::from(value)));
        };
        let usage = || {
            format!(
                "`{value}` is not of the form {HUB_PREFIX}<namespace>/<name>[@<revision>]/<file>"
            )
        };
        let mut parts = rest.splitn(3, '/');
        let (Some(namespace), Some(name_rev), Some(path)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(usage());
        };
        let (name, revision) = name_rev
            .split_once('@')
            .unwrap_or((name_rev, common::job::DEFAULT_REVISION));
        let plain = |s: &str| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !plain(namespace) || !plain(name) || !plain(revision) {
            return Err(usage());
        }
        if !crate::paths::is_safe_relative_path(path) {
            return Err(format!(
                "`{path}` is not a plain relative path inside the repository"
            ));
        }
        Ok(Self::Hub(HubDataset {
            repo_id: format!("{namespace}/{name}"),
            revision: revision.into(),
            path: path.into(),
        }))
    }
}

impl fmt::Display for DatasetLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin => f.write_str("builtin"),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Hub(hub) => write!(
                f,
                "{HUB_PREFIX}{}@{}/{}",
                hub.repo_id, hub.revision, hub.path
            ),
        }
    }
}

impl Dataset {
    pub fn builtin() -> Self {
        Self::parse(BUILTIN).expect("the built-in dataset is valid")
    }

    pub fn load(path: &Path) -> Result<Self, DatasetError> {
        let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, DatasetError> {
        let mut conversations = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let line_no = i + 1;
            let conversation: Conversation =
                serde_json::from_str(line).map_err(|e| DatasetError::Line {
                    line: line_no,
                    message: e.to_string(),
                })?;
            check_turns(&conversation.messages).map_err(|message| DatasetError::Line {
                line: line_no,
                message,
            })?;
            conversations.push(conversation);
        }
        if conversations.is_empty() {
            return Err(DatasetError::Empty);
        }
        Ok(Self {
            conversations,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
        })
    }

    /// `count` conversations drawn with `seed` (all of them, in seeded order,
    /// when the dataset is smaller).
    pub fn sample(&self, seed: u64, count: usize) -> Vec<&Conversation> {
        let mut picked: Vec<&Conversation> = self.conversations.iter().collect();
        picked.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        picked.truncate(count);
        picked
    }
}

fn check_turns(messages: &[Message]) -> Result<(), String> {
    let turns = match messages.first() {
        Some(Message {
            role: Role::System, ..
        }) => &messages[1..],
        _ => messages,
    };
    if turns.len() < 2 {
        return Err("needs at least one user turn and the reference assistant turn".into());
    }
    for (i, message) in turns.iter().enumerate() {
        let expected = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        if message.role != expected {
            return Err(format!(
                "turn {} is {:?}, expected {:?} (turns alternate, user first)",
                i + 1,
                message.role,
                expected
            ));
        }
    }
    if turns.len() % 2 != 0 {
        return Err("the last turn must be the assistant's reference reply".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_dataset_loads_and_samples_deterministically() {
        let data = Dataset::builtin();
        assert!(data.conversations.len() >= 10);
        assert_eq!(data.sha256.len(), 64);
        let a: Vec<&str> = data.sample(11, 5).iter().map(|c| c.id.as_str()).collect();
        let b: Vec<&str> = data.sample(11, 5).iter().map(|c| c.id.as_str()).collect();
        let c: Vec<&str> = data.sample(12, 5).iter().map(|c| c.id.as_str()).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(data.sample(1, 1_000).len(), data.conversations.len());
        let first = &data.conversations[0];
        assert_eq!(first.messages.last().unwrap().role, Role::Assistant);
        assert_eq!(first.context().len(), first.messages.len() - 1);
    }

    #[test]
    fn locations_parse() {
        let hub = |s: &str| s.parse::<DatasetLocation>();
        assert_eq!(
            hub("hf://datasets/org/rp-eval@v2/data/test.jsonl"),
            Ok(DatasetLocation::Hub(HubDataset {
                repo_id: "org/rp-eval".into(),
                revision: "v2".into(),
                path: "data/test.jsonl".into(),
            }))
        );
        let default_revision = hub("hf://datasets/org/rp-eval/test.jsonl").unwrap();
        assert_eq!(
            default_revision.to_string(),
            "hf://datasets/org/rp-eval@main/test.jsonl"
        );
        assert_eq!(hub("builtin"), Ok(DatasetLocation::Builtin));
        assert_eq!(
            hub("./local.jsonl"),
            Ok(DatasetLocation::File("./local.jsonl".into()))
        );
        for bad in [
            "hf://datasets/org/rp-eval",
            "hf://datasets/org/rp-eval@/x.jsonl",
            "hf://datasets/../rp/x.jsonl",
            "hf://datasets/org/rp/../../etc/passwd",
            "hf://datasets/org/rp//x.jsonl",
            "hf://datasets/org/r p/x.jsonl",
            "",
        ] {
            assert!(hub(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn malformed_lines_are_named() {
        let bad = r#"{"id":"x","messages":[{"role":"user","content":"hi"},{"role":"user","content":"again"}]}"#;
        let err = Dataset::parse(&format!("\n{bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2") && err.contains("expected Assistant"),
            "{err}"
        );
        assert!(matches!(Dataset::parse(""), Err(DatasetError::Empty)));
        assert!(
            Dataset::parse("{not json")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }
}
