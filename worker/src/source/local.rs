//! Models from a local directory laid out as `<root>/<namespace>/<name>/`:
//! the embedded mode's generated models, and a miner's local checkout.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use common::job::ModelRef;
use common::result::{FailureCode, FailureReason};
use common::submission::weights_fingerprint;
use sha2::{Digest, Sha256};

use super::precheck::{self, ConfigLimits, RepoFile};
use super::{LocalModel, ModelSource};
use crate::error::JobError;
use crate::paths::is_safe_relative_path;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct LocalDirSource {
    root: PathBuf,
    limits: ConfigLimits,
}

impl LocalDirSource {
    /// A source over `root` with the default [`ConfigLimits`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_limits(root, ConfigLimits::default())
    }

    pub fn with_limits(root: impl Into<PathBuf>, limits: ConfigLimits) -> Self {
        Self {
            root: root.into(),
            limits,
        }
    }
}

#[async_trait]
impl ModelSource for LocalDirSource {
    async fn fetch(&self, model: &ModelRef, max_bytes: u64) -> Result<LocalModel, JobError> {
        for part in [&model.namespace, &model.name] {
            if !is_safe_relative_path(part) || part.contains('/') {
                return Err(FailureReason::new(
                    FailureCode::NotAccessible,
                    format!("`{}` is not a valid repository name", part.escape_debug()),
                )
                .into());
            }
        }
        let dir = self.root.join(&model.namespace).join(&model.name);
        spawn_inspect_dir(dir, max_bytes, self.limits.clone(), &model.chat_template).await
    }
}

/// [`inspect_dir`] on a blocking thread (it reads and hashes every file), for
/// async callers.
pub async fn spawn_inspect_dir(
    dir: PathBuf,
    max_bytes: u64,
    limits: ConfigLimits,
    chat_template: &str,
) -> Result<LocalModel, JobError> {
    let template = chat_template.to_owned();
    tokio::task::spawn_blocking(move || inspect_dir(&dir, max_bytes, &limits, &template))
        .await
        .map_err(|e| JobError::transient_from("model inspection task failed", e))?
}

/// Lists, prechecks and fingerprints a model directory: the file list,
/// `config.json` against `limits`, the chat template the job names and the
/// shard index ([`precheck::inspect`]).
pub fn inspect_dir(
    dir: &Path,
    max_bytes: u64,
    limits: &ConfigLimits,
    chat_template: &str,
) -> Result<LocalModel, JobError> {
    inspect(dir, None, max_bytes, limits, chat_template)
}

/// [`inspect_dir`] for a Hugging Face cache snapshot, whose files are
/// symlinks into the repository's `blobs/`: a symlink is followed only when
/// its target is a regular file inside `links_within` (the repository's cache
/// directory); any other symlink is refused as in [`inspect_dir`].
pub fn inspect_snapshot(
    dir: &Path,
    links_within: &Path,
    max_bytes: u64,
    limits: &ConfigLimits,
    chat_template: &str,
) -> Result<LocalModel, JobError> {
    inspect(dir, Some(links_within), max_bytes, limits, chat_template)
}

fn inspect(
    dir: &Path,
    links_within: Option<&Path>,
    max_bytes: u64,
    limits: &ConfigLimits,
    chat_template: &str,
) -> Result<LocalModel, JobError> {
    if !dir.is_dir() {
        return Err(FailureReason::new(
            FailureCode::NotAccessible,
            format!("no model directory at {}", dir.display()),
        )
        .into());
    }
    let files = list_files(dir, links_within)
        .map_err(|e| JobError::transient_from(format!("listing {}", dir.display()), e))?;
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .map_err(|e| JobError::transient_from(format!("reading {name}"), e))
    };
    let precheck::Inspection { shape, index } =
        precheck::inspect(&files, max_bytes, limits, chat_template, read)?;
    tracing::info!(
        dir = %dir.display(),
        architecture = %shape.architecture,
        torch_dtype = shape.torch_dtype.as_deref().unwrap_or("unset"),
        estimated_params = shape.estimated_params,
        estimated_bytes = shape.estimated_bytes,
        device = ?limits.device,
        "model config accepted"
    );
    let mut content = Sha256::new();
    let mut shard_hashes = Vec::new();
    for file in &files {
        let digest = hex::encode(Sha256::digest(read(&file.path)?));
        content.update(file.path.as_bytes());
        content.update(digest.as_bytes());
        if file.path.ends_with(".safetensors") {
            shard_hashes.push(digest);
        }
    }
    Ok(LocalModel {
        dir: dir.to_path_buf(),
        revision_sha: hex::encode(&content.finalize()[..20]),
        size_bytes: files.iter().map(|f| f.size).sum(),
        weights_fingerprint: weights_fingerprint(&index, &shard_hashes),
        shape,
    })
}

/// Every regular file under `dir`, sorted, with `/`-separated relative paths.
/// A symlink could point outside the directory: unless it resolves to a
/// regular file inside `links_within`, it is listed under a `../` path so that
/// the precheck refuses it with a clear message.
fn list_files(dir: &Path, links_within: Option<&Path>) -> std::io::Result<Vec<RepoFile>> {
    let links_within = links_within.map(Path::canonicalize).transpose()?;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            let relative = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let contained_link = match (&links_within, kind.is_symlink()) {
                (Some(root), true) => std::fs::canonicalize(&path)
                    .ok()
                    .filter(|target| target.starts_with(root) && target.is_file()),
                _ => None,
            };
            if let Some(target) = contained_link {
                out.push(RepoFile {
                    path: relative,
                    size: std::fs::metadata(target)?.len(),
                });
            } else if kind.is_symlink() {
                out.push(RepoFile {
                    path: format!("../symlink/{relative}"),
                    size: 0,
                });
            } else if kind.is_dir() {
                stack.push(path);
            } else {
                out.push(RepoFile {
                    path: relative,
                    size: entry.metadata()?.len(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{TinyModelSpec, write_tiny_model};

    fn inspect(dir: &Path, template: &str) -> Result<LocalModel, JobError> {
        inspect_dir(dir, 1 << 30, &ConfigLimits::default(), template)
    }

    fn failure(result: Result<LocalModel, JobError>) -> FailureReason {
        match result {
            Err(JobError::Model(reason)) => reason,
            other => panic!("expected a model failure, got {other:?}"),
        }
    }

    #[test]
    fn config_and_template_are_checked_before_fingerprinting() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_model(dir.path(), &TinyModelSpec::default()).unwrap();
        let model = inspect(dir.path(), "tokenizer").unwrap();
        // The estimate counts exactly the tensors the generator wrote (F32 on disk).
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("model.safetensors.index.json")).unwrap(),
        )
        .unwrap();
        let total_size = index["metadata"]["total_size"].as_u64().unwrap();
        assert_eq!(model.shape.estimated_params * 4, total_size);
        assert_eq!(model.shape.torch_dtype.as_deref(), Some("float32"));

        let err = failure(inspect(dir.path(), "no-such-template"));
        assert_eq!(err.code, FailureCode::BadTemplate);

        // A repository without its own template may still use a built-in one.
        let path = dir.path().join("tokenizer_config.json");
        let mut tokenizer_config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        tokenizer_config
            .as_object_mut()
            .unwrap()
            .remove("chat_template");
        std::fs::write(&path, tokenizer_config.to_string()).unwrap();
        inspect(dir.path(), "chatml").unwrap();
        assert_eq!(
            failure(inspect(dir.path(), "tokenizer")).code,
            FailureCode::BadTemplate
        );

        let path = dir.path().join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        config["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
        std::fs::write(&path, config.to_string()).unwrap();
        let err = failure(inspect(dir.path(), "chatml"));
        assert_eq!(err.code, FailureCode::BadConfig);
        assert!(err.message.contains("GPT2LMHeadModel"), "{err}");
    }
}
