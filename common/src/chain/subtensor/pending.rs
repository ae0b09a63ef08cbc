//! Weight commits waiting for their reveal window, kept durably.
//!
//! A commit-reveal (v2) commit is useless without its salt, and the salt
//! exists only here: a coordinator restarted between commit and reveal must
//! still reveal. The file is `<state_dir>/weight_commits.json`, rewritten
//! whole on every change through a temporary file and a rename, so a crash
//! leaves either the old or the new content, never a torn one. A commit is
//! written *before* its extrinsic is submitted (a commit included on chain
//! without a salt on disk could never be revealed).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use subxt::ext::codec::Encode;

/// One committed weight vector and what its reveal needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCommit {
    pub netuid: u16,
    /// SS58 address of the committing hotkey.
    pub hotkey: String,
    /// Hex of the 32-byte commit hash ([`WeightReveal::hash`]).
    pub hash: String,
    /// Flattened: the file keeps the fields at the top of each commit.
    #[serde(flatten)]
    pub reveal: WeightReveal,
    /// Block the commit was made at (the chain's view decides the window).
    pub commit_block: Option<u64>,
}

/// What a commit-reveal commit hides and its reveal discloses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightReveal {
    pub uids: Vec<u16>,
    pub values: Vec<u16>,
    pub salt: Vec<u16>,
    pub version_key: u64,
}

impl WeightReveal {
    /// The v2 commit hash of `account` on `netuid`: blake2_256 of
    /// SCALE(account, netuid, uids, values, salt, version_key).
    pub fn hash(&self, account: &[u8; 32], netuid: u16) -> [u8; 32] {
        let Self {
            uids,
            values,
            salt,
            version_key,
        } = self;
        let encoded = (account, netuid, uids, values, salt, version_key).encode();
        sp_crypto_hashing::blake2_256(&encoded)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    commits: Vec<PendingCommit>,
}

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The pending commits of one state directory.
#[derive(Debug)]
pub struct PendingCommits {
    /// `None`: kept in memory only (clients that never commit weights).
    path: Option<PathBuf>,
    commits: Vec<PendingCommit>,
}

impl PendingCommits {
    pub const FILE_NAME: &'static str = "weight_commits.json";

    /// Opens (or starts) the file under `state_dir`, creating the directory.
    pub fn open(state_dir: &Path) -> Result<Self, PendingError> {
        let path = state_dir.join(Self::FILE_NAME);
        std::fs::create_dir_all(state_dir).map_err(|source| PendingError::Write {
            path: path.clone(),
            source,
        })?;
        let commits = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let file: File = serde_json::from_str(&text).map_err(|e| PendingError::Read {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                file.commits
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(PendingError::Read {
                    path,
                    message: e.to_string(),
                });
            }
        };
        Ok(Self {
            path: Some(path),
            commits,
        })
    }

    /// Pending commits that are not saved anywhere.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            commits: Vec::new(),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn all(&self) -> &[PendingCommit] {
        &self.commits
    }

    pub fn add(&mut self, commit: PendingCommit) -> Result<(), PendingError> {
        self.commits.push(commit);
        self.save()
    }

    /// Removes the commit with `hash`; saving only if it was there.
    pub fn remove(&mut self, hash: &str) -> Result<(), PendingError> {
        let before = self.commits.len();
        self.commits.retain(|c| c.hash != hash);
        if self.commits.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// Records the block a commit was included in.
    pub fn set_commit_block(&mut self, hash: &str, block: u64) -> Result<(), PendingError> {
        for c in &mut self.commits {
            if c.hash == hash {
                c.commit_block = Some(block);
            }
        }
        self.save()
    }

    fn save(&self) -> Result<(), PendingError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let write_err = |source| PendingError::Write {
            path: path.clone(),
            source,
        };
        let file = File {
            version: 1,
            commits: self.commits.clone(),
        };
        let text = serde_json::to_string_pretty(&file).expect("pending commits serialize");
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(write_err)?;
            f.write_all(text.as_bytes()).map_err(write_err)?;
            f.sync_all().map_err(write_err)?;
        }
        std::fs::rename(&tmp, path).map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(hash: &str) -> PendingCommit {
        PendingCommit {
            netuid: 11,
            hotkey: "5Validator".into(),
            hash: hash.into(),
            reveal: WeightReveal {
                uids: vec![1, 2],
                values: vec![65535, 100],
                salt: vec![7; 8],
                version_key: 3,
            },
            commit_block: None,
        }
    }

    #[test]
    fn a_commit_is_stored_flat_as_files_written_before_the_reveal_type() {
        let stored = serde_json::to_value(commit("aa")).unwrap();
        let expected = serde_json::json!({
            "netuid": 11, "hotkey": "5Validator", "hash": "aa", "uids": [1, 2],
            "values": [65535, 100], "salt": [7, 7, 7, 7, 7, 7, 7, 7], "version_key": 3,
            "commit_block": null,
        });
        assert_eq!(stored, expected);
        let read: PendingCommit = serde_json::from_value(expected).unwrap();
        assert_eq!(read, commit("aa"));
    }

    #[test]
    fn survives_reopening_and_removal() {
        let dir = std::env::temp_dir().join(format!("pending-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut pending = PendingCommits::open(&dir).unwrap();
        pending.add(commit("aa")).unwrap();
        pending.add(commit("bb")).unwrap();
        pending.set_commit_block("aa", 1234).unwrap();
        let mut reopened = PendingCommits::open(&dir).unwrap();
        assert_eq!(reopened.all().len(), 2);
        assert_eq!(reopened.all()[0].commit_block, Some(1234));
        reopened.remove("aa").unwrap();
        let again = PendingCommits::open(&dir).unwrap();
        assert_eq!(again.all(), &[commit("bb")]);
        assert!(!dir.join("weight_commits.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_list() {
        let dir = std::env::temp_dir().join(format!("pending-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(PendingCommits::FILE_NAME), "{not json").unwrap();
        assert!(matches!(
            PendingCommits::open(&dir),
            Err(PendingError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
