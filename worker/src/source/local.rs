//! Models from a local directory laid out as `<root>/<namespace>/<name>/`:
//! the embedded mode's generated models, and a miner's local checkout.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use common::job::ModelRef;
use common::result::{FailureCode, FailureReason};
use common::submission::weights_fingerprint;
use sha2::{Digest, Sha256};

use super::precheck::{RepoFile, check_index, is_safe_relative_path, precheck};
use super::{LocalModel, ModelSource};
use crate::error::JobError;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct LocalDirSource {
    root: PathBuf,
}

impl LocalDirSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
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
        tokio::task::spawn_blocking(move || inspect_dir(&dir, max_bytes))
            .await
            .map_err(|e| JobError::Transient(format!("model inspection task failed: {e}")))?
    }
}

/// Lists, prechecks and fingerprints a model directory.
pub fn inspect_dir(dir: &Path, max_bytes: u64) -> Result<LocalModel, JobError> {
    inspect(dir, None, max_bytes)
}

/// [`inspect_dir`] for a Hugging Face cache snapshot, whose files are
/// symlinks into the repository's `blobs/`: a symlink is followed only when
/// its target is a regular file inside `links_within` (the repository's cache
/// directory); any other symlink is refused as in [`inspect_dir`].
pub fn inspect_snapshot(
    dir: &Path,
    links_within: &Path,
    max_bytes: u64,
) -> Result<LocalModel, JobError> {
    inspect(dir, Some(links_within), max_bytes)
}

fn inspect(
    dir: &Path,
    links_within: Option<&Path>,
    max_bytes: u64,
) -> Result<LocalModel, JobError> {
    if !dir.is_dir() {
        return Err(FailureReason::new(
            FailureCode::NotAccessible,
            format!("no model directory at {}", dir.display()),
        )
        .into());
    }
    let files = list_files(dir, links_within)
        .map_err(|e| JobError::Transient(format!("listing {}: {e}", dir.display())))?;
    precheck(&files, max_bytes)?;
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .map_err(|e| JobError::Transient(format!("reading {name}: {e}")))
    };
    let shards: Vec<&RepoFile> = files
        .iter()
        .filter(|f| f.path.ends_with(".safetensors"))
        .collect();
    let index = if files
        .iter()
        .any(|f| f.path == "model.safetensors.index.json")
    {
        let index = read("model.safetensors.index.json")?;
        check_index(&index, &files)?;
        index
    } else if shards.len() == 1 {
        Vec::new()
    } else {
        return Err(FailureReason::new(
            FailureCode::BadConfig,
            "several safetensors shards but no model.safetensors.index.json",
        )
        .into());
    };
    let mut content = Sha256::new();
    let mut shard_hashes = Vec::with_capacity(shards.len());
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
