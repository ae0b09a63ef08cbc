//! Where models come from. A [`ModelSource`] turns a [`ModelRef`] into a
//! directory of checked files on local disk.
//!
//! Every source runs the same [`precheck`] on the repository's file list
//! *before* downloading any weights: only safetensors weights and plain
//! config/tokenizer files are accepted (no pickle, no code), the total size is
//! bounded, and no path may leave the model's directory. `config.json` and the
//! chat template are checked before the weights too ([`precheck::check_config`],
//! [`precheck::check_chat_template`]): a hub source fetches those small files
//! first.

mod download;
mod hub;
mod local;
pub mod precheck;

use std::path::PathBuf;

use async_trait::async_trait;
use common::job::ModelRef;

pub use self::download::ProgressBars;
pub use self::hub::{
    DEFAULT_ENDPOINT, DEFAULT_STALL_TIMEOUT, HubConfig, HubSource, fetch_hub_dataset,
};
pub use self::local::{LocalDirSource, inspect_dir, inspect_snapshot};
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
