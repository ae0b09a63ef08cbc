//! Submissions as miners commit them on chain (docs/architecture.md §3), and the rules that
//! decide which of them a validator evaluates.
//!
//! A miner commits the UTF-8 string
//! `namespace:name:chat_template:hotkey:hash:competition_id` (at most
//! [`MAX_COMMIT_BYTES`] bytes, `None` for an absent field). `hash` binds the
//! string to the committing hotkey, so a copied string is invalid on any other
//! hotkey. Everything here is pure: the chain adapter reads the raw bytes and
//! blocks, [`validate_submissions`] turns them into verdicts.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The largest commitment the `Commitments` pallet stores as `Raw` data.
pub const MAX_COMMIT_BYTES: usize = 128;

/// The literal that stands for an absent field in a commit string.
const ABSENT: &str = "None";

/// A parsed commit string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitString {
    /// Hugging Face user or organisation.
    pub namespace: String,
    /// Hugging Face repository name.
    pub name: String,
    /// Chat template name (one of the built-in set, or `tokenizer` for the repo's own).
    pub chat_template: String,
    /// The hotkey the miner bound the string to.
    pub hotkey: Option<String>,
    /// [`hotkey_hash`] of the fields above.
    pub hash: Option<u64>,
    /// Competition the model enters, if the subnet runs several.
    pub competition_id: Option<String>,
}

/// Why a commit string could not be parsed. The message is shown to miners.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitParseError {
    #[error("commitment is {len} bytes, more than the {MAX_COMMIT_BYTES}-byte limit")]
    TooLong { len: usize },
    #[error("commitment is not valid UTF-8")]
    NotUtf8,
    #[error(
        "commitment has {found} ':'-separated fields, expected 6 (namespace:name:chat_template:hotkey:hash:competition_id)"
    )]
    FieldCount { found: usize },
    #[error("field `{field}` is empty or None, but it is required")]
    MissingField { field: &'static str },
    #[error("field `{field}` contains whitespace or control characters")]
    BadCharacters { field: &'static str },
    #[error("hash `{value}` is not a decimal u64")]
    BadHash { value: String },
}

impl CommitString {
    /// Builds a commit string bound to `hotkey`, computing its hash.
    pub fn bound_to(
        namespace: impl Into<String>,
        name: impl Into<String>,
        chat_template: impl Into<String>,
        hotkey: impl Into<String>,
        competition_id: Option<String>,
    ) -> Self {
        let (namespace, name, chat_template, hotkey) = (
            namespace.into(),
            name.into(),
            chat_template.into(),
            hotkey.into(),
        );
        let hash = hotkey_hash(&namespace, &name, &chat_template, &hotkey);
        Self {
            namespace,
            name,
            chat_template,
            hotkey: Some(hotkey),
            hash: Some(hash),
            competition_id,
        }
    }

    /// Parses raw commitment bytes as read from chain storage.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, CommitParseError> {
        if bytes.len() > MAX_COMMIT_BYTES {
            return Err(CommitParseError::TooLong { len: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| CommitParseError::NotUtf8)?;
        Self::parse(text)
    }

    /// Parses a commit string.
    pub fn parse(text: &str) -> Result<Self, CommitParseError> {
        if text.len() > MAX_COMMIT_BYTES {
            return Err(CommitParseError::TooLong { len: text.len() });
        }
        let fields: Vec<&str> = text.split(':').collect();
        let [namespace, name, chat_template, hotkey, hash, competition_id] = fields[..] else {
            return Err(CommitParseError::FieldCount {
                found: fields.len(),
            });
        };
        let required = |field: &'static str, value: &str| -> Result<String, CommitParseError> {
            let value = optional(field, value)?;
            value.ok_or(CommitParseError::MissingField { field })
        };
        let hash = match optional("hash", hash)? {
            None => None,
            Some(value) => Some(
                value
                    .parse::<u64>()
                    .map_err(|_| CommitParseError::BadHash {
                        value: value.clone(),
                    })?,
            ),
        };
        Ok(Self {
            namespace: required("namespace", namespace)?,
            name: required("name", name)?,
            chat_template: required("chat_template", chat_template)?,
            hotkey: optional("hotkey", hotkey)?,
            hash,
            competition_id: optional("competition_id", competition_id)?,
        })
    }

    /// `namespace/name`, the Hugging Face repository id.
    pub fn repo_id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The hash this string should carry when committed by `hotkey`.
    pub fn expected_hash(&self, hotkey: &str) -> u64 {
        hotkey_hash(&self.namespace, &self.name, &self.chat_template, hotkey)
    }

    /// Whether the string is bound to `hotkey`: it names it and carries its hash.
    pub fn is_bound_to(&self, hotkey: &str) -> bool {
        self.hotkey.as_deref() == Some(hotkey) && self.hash == Some(self.expected_hash(hotkey))
    }
}

fn optional(field: &'static str, value: &str) -> Result<Option<String>, CommitParseError> {
    if value.is_empty() || value == ABSENT {
        return Ok(None);
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(CommitParseError::BadCharacters { field });
    }
    Ok(Some(value.to_owned()))
}

impl fmt::Display for CommitString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hash = self.hash.map(|h| h.to_string());
        write!(
            f,
            "{}:{}:{}:{}:{}:{}",
            self.namespace,
            self.name,
            self.chat_template,
            self.hotkey.as_deref().unwrap_or(ABSENT),
            hash.as_deref().unwrap_or(ABSENT),
            self.competition_id.as_deref().unwrap_or(ABSENT),
        )
    }
}

/// The hotkey binding: the first 16 hex digits of
/// `sha256("<namespace> <name> <chat_template> <hotkey>")` read as a u64.
pub fn hotkey_hash(namespace: &str, name: &str, chat_template: &str, hotkey: &str) -> u64 {
    let digest = Sha256::digest(format!("{namespace} {name} {chat_template} {hotkey}"));
    let mut first8 = [0u8; 8];
    first8.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first8)
}

/// One uid's commitment as read from chain, not yet judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawCommitment {
    pub uid: u16,
    pub hotkey: String,
    /// Block of the (latest) commitment; re-committing moves it forward.
    pub block: u64,
    /// The raw bytes stored on chain (empty when `not_raw` is set).
    pub data: Vec<u8>,
    /// Set when the commitment is not raw bytes: what it holds instead
    /// (e.g. "a `Sha256` field"), for the miner's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_raw: Option<String>,
}

/// Why a uid's submission is not evaluated. Shown to the miner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum InvalidReason {
    #[error("no commitment on chain for this hotkey")]
    NoCommitment,
    #[error("commitment could not be parsed: {message}")]
    Malformed { message: String },
    #[error(
        "commitment holds {found}, not raw bytes: commit the string as a `Raw` field (`coordinator submit` does)"
    )]
    NotRaw { found: String },
    #[error(
        "commitment is bound to another hotkey or its hash is wrong (expected {expected} for this hotkey)"
    )]
    HashMismatch { expected: u64 },
    #[error("commitment block {block} is after the current block {current}")]
    FutureBlock { block: u64, current: u64 },
    #[error("commitment block {block} is before the epoch start block {epoch_start}")]
    BeforeEpochStart { block: u64, epoch_start: u64 },
    #[error("uid {earlier_uid} committed the same {what} earlier (block {earlier_block})")]
    Duplicate {
        what: DuplicateKind,
        earlier_uid: u16,
        earlier_block: u64,
    },
}

impl InvalidReason {
    /// Every reason's [`code`](Self::code), in declaration order.
    pub const CODES: [&'static str; 7] = [
        "no_commitment",
        "malformed",
        "not_raw",
        "hash_mismatch",
        "future_block",
        "before_epoch_start",
        "duplicate",
    ];

    /// The reason's machine-readable code: its `code` tag in JSON.
    pub fn code(&self) -> &'static str {
        // A new variant breaks this match until it is added to `CODES` too.
        Self::CODES[match self {
            Self::NoCommitment => 0,
            Self::Malformed { .. } => 1,
            Self::NotRaw { .. } => 2,
            Self::HashMismatch { .. } => 3,
            Self::FutureBlock { .. } => 4,
            Self::BeforeEpochStart { .. } => 5,
            Self::Duplicate { .. } => 6,
        }]
    }
}

/// Which duplicate rule a later submission fell under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateKind {
    Hash,
    Repository,
}

impl fmt::Display for DuplicateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hash => "hash",
            Self::Repository => "repository",
        })
    }
}

/// A uid's judged submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub uid: u16,
    pub hotkey: String,
    pub block: Option<u64>,
    pub outcome: Result<CommitString, InvalidReason>,
}

impl Verdict {
    pub fn valid(&self) -> Option<&CommitString> {
        self.outcome.as_ref().ok()
    }
}

/// The chain context the per-uid rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationContext {
    pub current_block: u64,
    /// Commitments before this block are ignored (a new competition epoch).
    pub epoch_start_block: u64,
}

/// Judges every registered uid's commitment (docs/architecture.md §3).
///
/// `hotkeys` lists every registered uid; `commitments` holds the commitments
/// read from chain (uids without one are [`InvalidReason::NoCommitment`]).
/// The per-uid rules run first; then, among the submissions that passed them,
/// two with the same hash or the same repository keep only the earlier block
/// (a tie on block goes to the lower uid, so the outcome never depends on read
/// order).
pub fn validate_submissions(
    hotkeys: &BTreeMap<u16, String>,
    commitments: &[RawCommitment],
    ctx: ValidationContext,
) -> Vec<Verdict> {
    let by_uid: HashMap<u16, &RawCommitment> = commitments
        .iter()
        .filter(|c| hotkeys.get(&c.uid) == Some(&c.hotkey))
        .map(|c| (c.uid, c))
        .collect();

    let mut verdicts: Vec<Verdict> = hotkeys
        .iter()
        .map(|(&uid, hotkey)| {
            let Some(raw) = by_uid.get(&uid) else {
                return Verdict {
                    uid,
                    hotkey: hotkey.clone(),
                    block: None,
                    outcome: Err(InvalidReason::NoCommitment),
                };
            };
            Verdict {
                uid,
                hotkey: hotkey.clone(),
                block: Some(raw.block),
                outcome: judge_one(raw, ctx),
            }
        })
        .collect();

    // Earliest first; the first holder of a hash or repository keeps it.
    let mut order: Vec<usize> = (0..verdicts.len())
        .filter(|&i| verdicts[i].valid().is_some())
        .collect();
    order.sort_by_key(|&i| (verdicts[i].block, verdicts[i].uid));
    let mut hash_holder: HashMap<u64, (u16, u64)> = HashMap::new();
    let mut repo_holder: HashMap<String, (u16, u64)> = HashMap::new();
    for i in order {
        let (uid, block) = (verdicts[i].uid, verdicts[i].block.unwrap_or_default());
        let Some(commit) = verdicts[i].valid() else {
            continue;
        };
        let hash = commit.hash.unwrap_or_default();
        let repo = commit.repo_id().to_lowercase();
        let duplicate = if let Some(&(earlier_uid, earlier_block)) = hash_holder.get(&hash) {
            Some((DuplicateKind::Hash, earlier_uid, earlier_block))
        } else {
            repo_holder.get(&repo).map(|&(earlier_uid, earlier_block)| {
                (DuplicateKind::Repository, earlier_uid, earlier_block)
            })
        };
        match duplicate {
            Some((what, earlier_uid, earlier_block)) => {
                verdicts[i].outcome = Err(InvalidReason::Duplicate {
                    what,
                    earlier_uid,
                    earlier_block,
                });
            }
            None => {
                hash_holder.insert(hash, (uid, block));
                repo_holder.insert(repo, (uid, block));
            }
        }
    }
    verdicts
}

fn judge_one(raw: &RawCommitment, ctx: ValidationContext) -> Result<CommitString, InvalidReason> {
    if let Some(found) = &raw.not_raw {
        return Err(InvalidReason::NotRaw {
            found: found.clone(),
        });
    }
    let commit = CommitString::parse_bytes(&raw.data).map_err(|e| InvalidReason::Malformed {
        message: e.to_string(),
    })?;
    if !commit.is_bound_to(&raw.hotkey) {
        return Err(InvalidReason::HashMismatch {
            expected: commit.expected_hash(&raw.hotkey),
        });
    }
    if raw.block > ctx.current_block {
        return Err(InvalidReason::FutureBlock {
            block: raw.block,
            current: ctx.current_block,
        });
    }
    if raw.block < ctx.epoch_start_block {
        return Err(InvalidReason::BeforeEpochStart {
            block: raw.block,
            epoch_start: ctx.epoch_start_block,
        });
    }
    Ok(commit)
}

/// A model's weights fingerprint: sha256 over the safetensors index followed
/// by the sorted sha256s of its shards. Two repos with the same fingerprint
/// hold the same weights, whatever their names.
pub fn weights_fingerprint(index_json: &[u8], shard_sha256s: &[String]) -> String {
    let mut shards: Vec<&str> = shard_sha256s.iter().map(String::as_str).collect();
    shards.sort_unstable();
    let mut hasher = Sha256::new();
    hasher.update(index_json);
    for shard in shards {
        hasher.update(b"\n");
        hasher.update(shard.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Given `(uid, block, fingerprint)` for evaluated models, the uids whose
/// score must be zeroed because an earlier submission carries the same
/// weights (ties on block go to the lower uid).
pub fn fingerprint_copies(entries: &[(u16, u64, &str)]) -> Vec<u16> {
    let mut sorted: Vec<&(u16, u64, &str)> = entries.iter().collect();
    sorted.sort_by_key(|(uid, block, _)| (*block, *uid));
    let mut seen = std::collections::HashSet::new();
    sorted
        .into_iter()
        .filter(|(_, _, fingerprint)| !seen.insert(*fingerprint))
        .map(|(uid, _, _)| *uid)
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn hash_matches_hand_computed_value() {
        // sha256("ns model chatml 5Hot") = b493cb9574777547..., first 16 hex digits as u64.
        let expected = u64::from_str_radix(
            &hex::encode(Sha256::digest("ns model chatml 5Hot"))[..16],
            16,
        )
        .unwrap();
        assert_eq!(hotkey_hash("ns", "model", "chatml", "5Hot"), expected);
        // A value computed independently with Python's hashlib.
        assert_eq!(
            hotkey_hash("ns", "model", "chatml", "5Hot"),
            13011967591168046407
        );
    }

    #[test]
    fn parse_and_format_round_trip() {
        let text = "alice:rp-7b:chatml:5Alice:123:None";
        let commit = CommitString::parse(text).unwrap();
        assert_eq!(commit.namespace, "alice");
        assert_eq!(commit.name, "rp-7b");
        assert_eq!(commit.chat_template, "chatml");
        assert_eq!(commit.hotkey.as_deref(), Some("5Alice"));
        assert_eq!(commit.hash, Some(123));
        assert_eq!(commit.competition_id, None);
        assert_eq!(commit.to_string(), text);
        assert_eq!(CommitString::parse_bytes(text.as_bytes()).unwrap(), commit);
    }

    #[test]
    fn parse_refuses_bad_strings_with_clear_reasons() {
        assert_eq!(
            CommitString::parse("a:b:c"),
            Err(CommitParseError::FieldCount { found: 3 })
        );
        assert_eq!(
            CommitString::parse("None:b:chatml:hk:1:None"),
            Err(CommitParseError::MissingField { field: "namespace" })
        );
        assert_eq!(
            CommitString::parse("a:b:chatml:hk:0x12:None"),
            Err(CommitParseError::BadHash {
                value: "0x12".into()
            })
        );
        assert_eq!(
            CommitString::parse("a:b c:chatml:hk:1:None"),
            Err(CommitParseError::BadCharacters { field: "name" })
        );
        let long = format!("{}:b:chatml:hk:1:None", "a".repeat(120));
        assert_eq!(
            CommitString::parse(&long),
            Err(CommitParseError::TooLong { len: long.len() })
        );
        assert_eq!(
            CommitString::parse_bytes(&[b'a', b':', 0xff, 0xfe]),
            Err(CommitParseError::NotUtf8)
        );
    }

    fn commit(uid: u16, hotkey: &str, block: u64, text: &str) -> RawCommitment {
        RawCommitment {
            uid,
            hotkey: hotkey.into(),
            block,
            data: text.as_bytes().to_vec(),
            not_raw: None,
        }
    }

    fn bound(ns: &str, name: &str, hotkey: &str) -> String {
        CommitString::bound_to(ns, name, "chatml", hotkey, None).to_string()
    }

    const CTX: ValidationContext = ValidationContext {
        current_block: 1_000,
        epoch_start_block: 100,
    };

    fn hotkeys(keys: &[&str]) -> BTreeMap<u16, String> {
        keys.iter()
            .enumerate()
            .map(|(uid, k)| (uid as u16, (*k).to_owned()))
            .collect()
    }

    /// The verdicts on `commits`, each made by the hotkey that holds its uid.
    fn verdicts(commits: &[RawCommitment]) -> Vec<Verdict> {
        let keys = commits.iter().map(|c| (c.uid, c.hotkey.clone())).collect();
        validate_submissions(&keys, commits, CTX)
    }

    #[test]
    fn same_model_committed_by_two_hotkeys_the_later_is_invalid() {
        let verdicts = verdicts(&[
            commit(0, "hk0", 500, &bound("alice", "rp", "hk0")),
            commit(1, "hk1", 400, &bound("alice", "rp", "hk1")),
        ]);
        assert_eq!(
            verdicts[0].outcome,
            Err(InvalidReason::Duplicate {
                what: DuplicateKind::Repository,
                earlier_uid: 1,
                earlier_block: 400
            })
        );
        assert!(verdicts[1].valid().is_some());
    }

    #[test]
    fn copied_string_on_another_hotkey_is_invalid() {
        let original = bound("alice", "rp", "hk0");
        let verdicts = verdicts(&[
            commit(0, "hk0", 500, &original),
            commit(1, "hk1", 600, &original),
        ]);
        assert!(verdicts[0].valid().is_some());
        assert_eq!(
            verdicts[1].outcome,
            Err(InvalidReason::HashMismatch {
                expected: hotkey_hash("alice", "rp", "chatml", "hk1")
            })
        );
        // The same string with only the hotkey field swapped still carries hk0's hash.
        let swapped = original.replace(":hk0:", ":hk1:");
        let keys = hotkeys(&["hk0", "hk1"]);
        let verdicts = validate_submissions(&keys, &[commit(1, "hk1", 600, &swapped)], CTX);
        assert!(matches!(
            verdicts[1].outcome,
            Err(InvalidReason::HashMismatch { .. })
        ));
    }

    #[test]
    fn a_commitment_that_is_not_raw_says_so() {
        let hashed = RawCommitment {
            not_raw: Some("a `Sha256` field".into()),
            ..commit(0, "hk0", 500, "")
        };
        let verdicts = verdicts(&[hashed]);
        let reason = verdicts[0].outcome.clone().unwrap_err();
        assert_eq!(
            reason,
            InvalidReason::NotRaw {
                found: "a `Sha256` field".into()
            }
        );
        assert!(reason.to_string().contains("not raw bytes"), "{reason}");
        assert!(!reason.to_string().contains("fields, expected"), "{reason}");
        assert_eq!(serde_json::to_value(&reason).unwrap()["code"], "not_raw");
    }

    #[test]
    fn per_uid_rules() {
        let keys = hotkeys(&["hk0", "hk1", "hk2", "hk3", "hk4"]);
        let verdicts = validate_submissions(
            &keys,
            &[
                commit(0, "hk0", 1_001, &bound("a", "future", "hk0")),
                commit(1, "hk1", 99, &bound("a", "old", "hk1")),
                commit(2, "hk2", 500, "not a commit string"),
                commit(3, "hk3", 100, &bound("a", "ok", "hk3")),
                // A commitment from a hotkey that no longer holds uid 4 is ignored.
                commit(4, "someone-else", 500, &bound("a", "x", "someone-else")),
            ],
            CTX,
        );
        assert_eq!(
            verdicts[0].outcome,
            Err(InvalidReason::FutureBlock {
                block: 1_001,
                current: 1_000
            })
        );
        assert_eq!(
            verdicts[1].outcome,
            Err(InvalidReason::BeforeEpochStart {
                block: 99,
                epoch_start: 100
            })
        );
        assert!(matches!(
            verdicts[2].outcome,
            Err(InvalidReason::Malformed { .. })
        ));
        assert_eq!(verdicts[3].valid().map(|c| c.name.as_str()), Some("ok"));
        assert_eq!(verdicts[4].outcome, Err(InvalidReason::NoCommitment));
    }

    #[test]
    fn duplicate_tie_on_block_goes_to_lower_uid() {
        let verdicts = verdicts(&[
            commit(1, "hk1", 500, &bound("Alice", "RP", "hk1")),
            commit(0, "hk0", 500, &bound("alice", "rp", "hk0")),
        ]);
        assert!(verdicts[0].valid().is_some());
        assert!(matches!(
            verdicts[1].outcome,
            Err(InvalidReason::Duplicate { earlier_uid: 0, .. })
        ));
    }

    #[test]
    fn fingerprint_copies_zero_the_later_submission() {
        let copies = fingerprint_copies(&[
            (3, 700, "f1"),
            (1, 500, "f1"),
            (2, 600, "f2"),
            (4, 500, "f1"),
        ]);
        assert_eq!(copies, vec![4, 3]);
        let a = weights_fingerprint(b"{}", &["b".into(), "a".into()]);
        let b = weights_fingerprint(b"{}", &["a".into(), "b".into()]);
        assert_eq!(a, b, "shard order must not matter");
        assert_ne!(a, weights_fingerprint(b"{ }", &["a".into(), "b".into()]));
    }

    proptest! {
        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = CommitString::parse_bytes(&bytes);
        }

        #[test]
        fn bound_strings_round_trip_and_validate(
            ns in "[A-Za-z0-9_.-]{1,16}",
            name in "[A-Za-z0-9_.-]{1,16}",
            template in "[a-z0-9]{1,8}",
            hotkey in "5[A-Za-z0-9]{10,47}",
        ) {
            let commit = CommitString::bound_to(&ns, &name, &template, &hotkey, None);
            let text = commit.to_string();
            prop_assume!(text.len() <= MAX_COMMIT_BYTES);
            let parsed = CommitString::parse(&text).unwrap();
            prop_assert!(parsed.is_bound_to(&hotkey));
            prop_assert_eq!(parsed, commit);
        }
    }

    #[test]
    fn a_reason_code_is_its_json_tag() {
        let reasons = [
            InvalidReason::NoCommitment,
            InvalidReason::Malformed {
                message: "m".into(),
            },
            InvalidReason::NotRaw { found: "f".into() },
            InvalidReason::HashMismatch { expected: 1 },
            InvalidReason::FutureBlock {
                block: 2,
                current: 1,
            },
            InvalidReason::BeforeEpochStart {
                block: 1,
                epoch_start: 2,
            },
            InvalidReason::Duplicate {
                what: DuplicateKind::Hash,
                earlier_uid: 0,
                earlier_block: 1,
            },
        ];
        for (reason, code) in reasons.iter().zip(InvalidReason::CODES) {
            assert_eq!(reason.code(), code);
            assert_eq!(serde_json::to_value(reason).unwrap()["code"], code);
        }
    }
}
