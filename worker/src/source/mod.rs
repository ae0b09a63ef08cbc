//! Where models come from. A [`ModelSource`] turns a [`ModelRef`] into a
//! directory of checked files on local disk.
//!
//! A source only lists and fetches files: every source runs the same
//! precheck pipeline, [`precheck::inspect`], on the repository's file list and
//! its small config files *before* downloading any weights: only safetensors
//! weights and plain config/tokenizer files are accepted (no pickle, no code),
//! the total size is bounded, no path may leave the model's directory, and
//! `config.json`, the chat template and the shard index are checked. A hub
//! source fetches those small files first.
//!
//! - `local.rs`: a directory of repositories; also lists, prechecks and
//!   fingerprints any model directory ([`inspect_dir`], [`inspect_snapshot`]).
//! - `hub.rs`: a Hugging Face endpoint, and the evaluation dataset's file on it
//!   ([`fetch_dataset`]).
//! - [`precheck`]: the pipeline and its rules, one file per concern.

mod download;
mod hub;
mod local;
pub mod precheck;

use std::path::PathBuf;

use async_trait::async_trait;
use common::job::ModelRef;

pub use self::download::ProgressBars;
pub use self::hub::{DEFAULT_ENDPOINT, DEFAULT_STALL_TIMEOUT, HubConfig, HubSource, fetch_dataset};
pub use self::local::{LocalDirSource, inspect_dir, inspect_snapshot, spawn_inspect_dir};
pub use self::precheck::{ComputeDevice, ConfigLimits, ModelShape};
use crate::error::JobError;

/// A model ready on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalModel {
    pub dir: PathBuf,
    /// Commit sha the revision resolved to (a content hash for local dirs).
    pub revision_sha: String,
    /// Bytes of all files.
    pub size_bytes: u64,
    /// [`common::submission::weights_fingerprint`] of the weights.
    pub weights_fingerprint: String,
    /// What `config.json` says, with the memory estimate ([`precheck::check_config`]).
    pub shape: ModelShape,
}

/// Fetches models. Implementations: [`LocalDirSource`] (a directory of repos,
/// for the embedded mode and tests) and [`HubSource`] (a Hugging Face
/// endpoint, downloading into the standard hub cache).
#[async_trait]
pub trait ModelSource: Send + Sync + 'static {
    /// Prechecks and fetches `model`, refusing anything over `max_bytes`.
    async fn fetch(&self, model: &ModelRef, max_bytes: u64) -> Result<LocalModel, JobError>;
}
