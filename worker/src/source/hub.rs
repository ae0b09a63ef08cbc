//! Models from a Hugging Face endpoint (the hub itself, a mirror, or the
//! tests' local endpoint), downloaded into hf-hub's standard cache
//! (`<cache>/models--<namespace>--<name>/{blobs,snapshots,refs}`); and the
//! evaluation dataset, when it is a file of a dataset repository
//! ([`fetch_dataset`]).
//!
//! # Flow
//! 1. The repository and revision names are checked to be plain names.
//! 2. One request, `GET /api/models/{repo}/revision/{revision}?blobs=true`,
//!    resolves the revision to a commit sha and lists every file with its
//!    size. 401/403/404 mean the miner's repo is not accessible (final);
//!    network errors, 5xx and 429 are transient.
//! 3. [`check_listing`], the precheck's first step, runs on that listing: no
//!    pickle, no code, no unsafe path, total size under the limit. Nothing
//!    has been downloaded yet.
//! 4. Every file is downloaded **at the resolved sha**, never at the branch,
//!    so a branch that moves mid-download cannot mix two revisions; a file
//!    the endpoint serves under any other commit is an error. Config and
//!    tokenizer files come first, the safetensors index last; then the whole
//!    precheck ([`precheck::inspect`]: config, chat template, index) runs on
//!    the listing and those small files, and only then are the shards
//!    fetched.
//! 5. Each downloaded file's size must equal the listed size. A download
//!    that receives nothing for [`HubConfig::stall_timeout`] is abandoned as
//!    transient ([`download`]); the CLI shows progress bars.
//! 6. The snapshot directory goes through [`inspect_snapshot`], the same
//!    listing/precheck/fingerprint code as local directories.
//!
//! # Guarantees
//! - No weight byte is fetched for a repository the precheck refuses.
//! - Paths from the listing are joined under the cache only after
//!   [`check_listing`] accepted them as plain relative paths, and the snapshot's
//!   symlinks are followed only into the repository's own cache directory.
//! - Files already in the cache for the same commit are reused (hf-hub's
//!   `get`), but their size is checked like a fresh download; a mismatch
//!   downloads again.
//! - The token is never logged: [`HubSource`]'s `Debug` shows only the
//!   endpoint and the cache directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use common::job::ModelRef;
use common::result::{FailureCode, FailureReason};
use hf_hub::api::tokio::{Api, ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, CacheRepo, Repo, RepoType};
use serde::Deserialize;
use tracing::{debug, info, instrument};

use super::download::{self, DownloadError, ProgressBars};
use super::precheck::{self, CONFIG, ConfigLimits, INDEX, RepoFile, check_listing};
use super::{LocalModel, ModelSource, inspect_snapshot};
use crate::dataset::{Dataset, DatasetError, DatasetLocation, HubDataset};
use crate::error::JobError;
use crate::paths::is_safe_relative_path;

/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// hf-hub's client has no timeouts of its own; the listing is one small
/// request, so a hub that does not answer it in time is treated as down.
const LISTING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A download that receives no byte for this long is abandoned (transient).
pub const DEFAULT_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Where and how to reach the hub.
#[derive(Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Base URL, e.g. `https://huggingface.co`.
    pub endpoint: String,
    /// hf-hub's cache directory (the one holding `models--*` folders).
    pub cache_dir: PathBuf,
    /// Bearer token for gated or private repositories.
    pub token: Option<String>,
    /// A file download that receives nothing for this long is abandoned and
    /// the job retried ([`download`]).
    pub stall_timeout: std::time::Duration,
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("endpoint", &self.endpoint)
            .field("cache_dir", &self.cache_dir)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("stall_timeout", &self.stall_timeout)
            .finish()
    }
}

impl HubConfig {
    /// The standard Hugging Face settings from an environment map:
    /// `HF_ENDPOINT`; the cache from `HF_HUB_CACHE`, else `$HF_HOME/hub`,
    /// else `$HOME/.cache/huggingface/hub`; the token from `HF_TOKEN`.
    pub fn from_env(env: &HashMap<String, String>) -> Self {
        let get = |key: &str| env.get(key).filter(|v| !v.trim().is_empty()).cloned();
        let cache_dir = get("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| get("HF_HOME").map(|home| Path::new(&home).join("hub")))
            .unwrap_or_else(|| {
                Path::new(&get("HOME").unwrap_or_else(|| "/root".into()))
                    .join(".cache/huggingface/hub")
            });
        Self {
            endpoint: get("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.into()),
            cache_dir,
            token: get("HF_TOKEN").map(|t| t.trim().to_owned()),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        }
    }
}

/// See the module docs.
#[derive(Clone)]
pub struct HubSource {
    api: Api,
    config: HubConfig,
    limits: ConfigLimits,
    bars: Option<ProgressBars>,
}

impl std::fmt::Debug for HubSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSource")
            .field("endpoint", &self.config.endpoint)
            .field("cache_dir", &self.config.cache_dir)
            .finish_non_exhaustive()
    }
}

impl HubSource {
    pub fn new(config: HubConfig, limits: ConfigLimits) -> Result<Self, ApiError> {
        let mut builder = ApiBuilder::from_cache(Cache::new(config.cache_dir.clone()))
            .with_endpoint(config.endpoint.trim_end_matches('/').to_owned())
            .with_progress(false);
        if let Some(token) = &config.token {
            builder = builder.with_token(Some(token.clone()));
        }
        Ok(Self {
            api: builder.build()?,
            config,
            limits,
            bars: None,
        })
    }

    /// Where and how this source reaches the hub.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Shows a progress bar per downloaded file among `bars` (for the CLI).
    pub fn with_progress_bars(mut self, bars: ProgressBars) -> Self {
        self.bars = Some(bars);
        self
    }

    /// Resolves `revision` to a commit sha and lists the files with sizes.
    async fn listing(&self, repo_id: &str, revision: &str) -> Result<Listing, JobError> {
        let repo = Repo::with_revision(repo_id.to_owned(), RepoType::Model, revision.to_owned());
        let request = self
            .api
            .repo(repo)
            .info_request()
            .query(&[("blobs", "true")])
            .timeout(LISTING_TIMEOUT)
            .send();
        let response = request
            .await
            .map_err(|e| JobError::transient_from(format!("listing {repo_id}@{revision}"), e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(http_failure(
                status,
                format!("listing {repo_id}@{revision}"),
            ));
        }
        let body = response.bytes().await.map_err(|e| {
            JobError::transient_from(format!("reading the listing of {repo_id}"), e)
        })?;
        let info: ModelInfo = serde_json::from_slice(&body).map_err(|e| {
            JobError::transient_from(format!("the hub's listing of {repo_id} is malformed"), e)
        })?;
        if info.sha.len() != 40 || !info.sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(JobError::transient(format!(
                "the hub resolved {repo_id}@{revision} to `{}`, not a commit sha",
                info.sha.escape_debug()
            )));
        }
        let files = info
            .siblings
            .into_iter()
            .map(|s| match s.size {
                Some(size) => Ok(RepoFile {
                    path: s.rfilename,
                    size,
                }),
                None => Err(JobError::transient(format!(
                    "the hub's listing of {repo_id} gives no size for `{}`",
                    s.rfilename.escape_debug()
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Listing {
            sha: info.sha.to_ascii_lowercase(),
            files,
        })
    }

    /// Downloads (or reuses from the cache) one listed file of the pinned
    /// snapshot and checks where it landed and its size.
    async fn fetch_file(
        &self,
        repo: &ApiRepo,
        cached: &CacheRepo,
        snapshot: &Path,
        file: &RepoFile,
    ) -> Result<(), JobError> {
        let expected = snapshot.join(&file.path);
        let path = match cached.get(&file.path) {
            Some(path) if file_size(&path) == Some(file.size) => path,
            stale => {
                if stale.is_some() {
                    debug!(file = %file.path, "cached file has the wrong size, downloading again");
                }
                download::download(
                    repo,
                    &file.path,
                    self.bars.as_ref(),
                    self.config.stall_timeout,
                )
                .await
                .map_err(|e| classify_download_error(e, &file.path))?
            }
        };
        if path != expected {
            return Err(JobError::transient(format!(
                "the hub served `{}` outside the pinned snapshot ({}), as if from another commit",
                file.path,
                path.display()
            )));
        }
        match file_size(&path) {
            Some(size) if size == file.size => {
                debug!(file = %file.path, size, "downloaded");
                Ok(())
            }
            got => Err(JobError::transient(format!(
                "`{}` has {} bytes on disk but the listing says {}",
                file.path,
                got.map_or_else(|| "no".into(), |s| s.to_string()),
                file.size
            ))),
        }
    }
}

#[async_trait]
impl ModelSource for HubSource {
    #[instrument(skip_all, fields(model = %model, endpoint = %self.config.endpoint))]
    async fn fetch(&self, model: &ModelRef, max_bytes: u64) -> Result<LocalModel, JobError> {
        check_names(model)?;
        let repo_id = model.repo_id();
        let listing = self.listing(&repo_id, &model.revision).await?;
        info!(sha = %listing.sha, files = listing.files.len(), "resolved revision");
        check_listing(&listing.files, max_bytes)?;

        let pinned = Repo::with_revision(repo_id, RepoType::Model, listing.sha.clone());
        let repo_dir = self.config.cache_dir.join(pinned.folder_name());
        let snapshot = repo_dir.join("snapshots").join(&listing.sha);
        let cached = Cache::new(self.config.cache_dir.clone()).repo(pinned.clone());
        let api_repo = self.api.repo(pinned);

        let (shards, others): (Vec<&RepoFile>, Vec<&RepoFile>) = listing
            .files
            .iter()
            .partition(|f| f.path.ends_with(".safetensors"));
        let mut others = others;
        // config.json first, the index last among the small files.
        others.sort_by_key(|f| (f.path != CONFIG, f.path == INDEX, f.path.clone()));
        for file in others {
            self.fetch_file(&api_repo, &cached, &snapshot, file).await?;
        }
        // The small files decide whether the weights are worth fetching.
        let read = |name: &str| {
            std::fs::read(snapshot.join(name))
                .map_err(|e| JobError::transient_from(format!("reading {name}"), e))
        };
        precheck::inspect(
            &listing.files,
            max_bytes,
            &self.limits,
            &model.chat_template,
            read,
        )?;
        for file in shards {
            self.fetch_file(&api_repo, &cached, &snapshot, file).await?;
        }

        let sha = listing.sha;
        let (limits, template) = (self.limits.clone(), model.chat_template.clone());
        let mut local = tokio::task::spawn_blocking(move || {
            inspect_snapshot(&snapshot, &repo_dir, max_bytes, &limits, &template)
        })
        .await
        .map_err(|e| JobError::transient_from("model inspection task failed", e))??;
        local.revision_sha = sha;
        info!(
            sha = %local.revision_sha,
            size_bytes = local.size_bytes,
            fingerprint = %local.weights_fingerprint,
            "model ready"
        );
        Ok(local)
    }
}

/// Loads the evaluation dataset at `location`, downloading a hub file
/// through `config` (into its cache, with progress bars when given). A hub
/// file is fetched anew at every start (a branch may have moved; pin a
/// commit sha for a fixed dataset); the file's sha256, recorded with each
/// result, says which content was used.
pub async fn fetch_dataset(
    location: &DatasetLocation,
    config: &HubConfig,
    bars: Option<&ProgressBars>,
) -> Result<Dataset, DatasetError> {
    match location {
        DatasetLocation::Builtin => Ok(Dataset::builtin()),
        DatasetLocation::File(path) => Dataset::load(path),
        DatasetLocation::Hub(dataset) => {
            let path = fetch_hub_dataset(config, dataset, bars)
                .await
                .map_err(|message| DatasetError::Fetch {
                    location: location.to_string(),
                    message,
                })?;
            Dataset::load(&path)
        }
    }
}

/// Downloads the dataset file `dataset` into the cache of `config` and
/// returns its local path.
async fn fetch_hub_dataset(
    config: &HubConfig,
    dataset: &HubDataset,
    bars: Option<&ProgressBars>,
) -> Result<PathBuf, String> {
    let source = HubSource::new(config.clone(), ConfigLimits::default())
        .map_err(|e| format!("building the hub client: {e}"))?;
    let repo = Repo::with_revision(
        dataset.repo_id.clone(),
        RepoType::Dataset,
        dataset.revision.clone(),
    );
    download::download(
        &source.api.repo(repo),
        &dataset.path,
        bars,
        config.stall_timeout,
    )
    .await
    .map_err(|e| e.to_string())
}

struct Listing {
    sha: String,
    files: Vec<RepoFile>,
}

/// The part of the hub's model info we use.
#[derive(Deserialize)]
struct ModelInfo {
    sha: String,
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
}

fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Namespace, name and revision must be plain names: they end up in URLs and
/// cache paths.
fn check_names(model: &ModelRef) -> Result<(), FailureReason> {
    let invalid = |what: &str, value: &str| {
        FailureReason::new(
            FailureCode::NotAccessible,
            format!("`{}` is not a valid {what}", value.escape_debug()),
        )
    };
    let plain = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    for part in [&model.namespace, &model.name] {
        if !is_safe_relative_path(part) || !plain(part) || part.starts_with('.') {
            return Err(invalid("repository name", part));
        }
    }
    let revision = &model.revision;
    if revision.len() > 255
        || !is_safe_relative_path(revision)
        || !revision
            .split('/')
            .all(|p| plain(p) && p != "." && p != "..")
    {
        return Err(invalid("revision", revision));
    }
    Ok(())
}

/// 401/403/404 (and other client errors) are the repository's fault: it is
/// private, gated or gone. Server errors and rate limits are transient.
fn http_failure(status: u16, what: String) -> JobError {
    match status {
        401 | 403 | 404 => FailureReason::new(
            FailureCode::NotAccessible,
            format!("{what}: HTTP {status}, the repository or revision is not publicly accessible"),
        )
        .into(),
        400..=499 if status != 408 && status != 429 => {
            FailureReason::new(FailureCode::NotAccessible, format!("{what}: HTTP {status}")).into()
        }
        _ => JobError::transient(format!("{what}: HTTP {status}")),
    }
}

fn classify_download_error(error: DownloadError, file: &str) -> JobError {
    match error {
        DownloadError::Api(e) => classify_api_error(e, file),
        stalled @ DownloadError::Stalled(_) => {
            JobError::transient_from(format!("downloading `{file}`"), stalled)
        }
    }
}

fn classify_api_error(error: ApiError, file: &str) -> JobError {
    match error {
        ApiError::RequestError(e) => match e.status() {
            Some(status) => http_failure(status.as_u16(), format!("downloading `{file}`")),
            None => JobError::transient_from(format!("downloading `{file}`"), e),
        },
        ApiError::TooManyRetries(inner) => classify_api_error(*inner, file),
        other => JobError::transient_from(format!("downloading `{file}`"), other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(namespace: &str, name: &str, revision: &str) -> ModelRef {
        ModelRef {
            namespace: namespace.into(),
            name: name.into(),
            revision: revision.into(),
            chat_template: "chatml".into(),
        }
    }

    #[test]
    fn names_must_be_plain() {
        check_names(&model("org", "m-1.5_b", "main")).unwrap();
        check_names(&model("org", "m", "refs/pr/1")).unwrap();
        for (ns, name, rev) in [
            ("..", "m", "main"),
            ("org", "a/b", "main"),
            ("org", "m", "../../x"),
            ("org", "m", "a b"),
            ("org", "m", ""),
            ("org", "m?x", "main"),
            ("org", ".hidden", "main"),
        ] {
            let err = check_names(&model(ns, name, rev)).unwrap_err();
            assert_eq!(err.code, FailureCode::NotAccessible, "{ns}/{name}@{rev}");
        }
    }

    #[test]
    fn statuses_are_classified() {
        for status in [401, 403, 404, 400] {
            assert!(matches!(
                http_failure(status, "x".into()),
                JobError::Model(r) if r.code == FailureCode::NotAccessible
            ));
        }
        for status in [500, 502, 503, 429, 408] {
            assert!(matches!(
                http_failure(status, "x".into()),
                JobError::Transient { .. }
            ));
        }
    }

    #[test]
    fn env_follows_the_hugging_face_conventions() {
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        };
        let c = HubConfig::from_env(&env(&[("HOME", "/home/u")]));
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(c.cache_dir, Path::new("/home/u/.cache/huggingface/hub"));
        assert_eq!(c.token, None);
        let c = HubConfig::from_env(&env(&[
            ("HF_HOME", "/hf"),
            ("HF_ENDPOINT", "http://mirror"),
            ("HF_TOKEN", "secret\n"),
        ]));
        assert_eq!(c.cache_dir, Path::new("/hf/hub"));
        assert_eq!(c.endpoint, "http://mirror");
        assert_eq!(c.token.as_deref(), Some("secret"));
        assert!(!format!("{c:?}").contains("secret"));
        let c = HubConfig::from_env(&env(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c")]));
        assert_eq!(c.cache_dir, Path::new("/c"));
    }
}
