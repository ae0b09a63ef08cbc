//! A local Hugging Face-compatible endpoint: serves model repositories from a
//! directory laid out as `<root>/<namespace>/<name>/` (as written by
//! `worker::fixtures::write_tiny_model`) on `127.0.0.1:0`, with exactly the
//! routes the worker's hub source and hf-hub use:
//!
//! - `GET /api/models/{namespace}/{name}/revision/{revision}`: model info
//!   with the commit sha and the file listing with sizes (as `?blobs=true`
//!   returns them on the real hub).
//! - `GET /{namespace}/{name}/resolve/{revision}/{file}`: the file, with the
//!   headers hf-hub requires (`x-repo-commit`, `etag`, `content-range` for
//!   range requests, `content-length`).
//! - `GET /datasets/{namespace}/{name}/resolve/{revision}/{file}`: the same
//!   for dataset repositories, kept under `<root>/datasets/<namespace>/<name>/`.
//!
//! Each repository has a fixed fake commit sha (sha1-sized, derived from its
//! id); the revision may be `main` or that sha. Unknown repositories are 404;
//! repositories marked private answer 401 without the right bearer token.
//! Every request path is recorded, so tests can assert what was (not)
//! downloaded. Tests can also make the listing lie (declared sizes, extra
//! names), make every request fail with a status, or make the body of a file
//! stall forever after its headers.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

/// A repository file `{"<file>": <size>, …}` that makes the listing declare
/// those sizes (it is not listed itself): [`HubServer::declare_size`] for a
/// server in another process.
pub const DECLARED_SIZES_FILE: &str = ".declared-sizes.json";

/// A running endpoint; stops when dropped.
#[derive(Debug)]
pub struct HubServer {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    state: Arc<HubState>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct HubState {
    root: PathBuf,
    requests: Mutex<Vec<String>>,
    private: Mutex<BTreeMap<String, String>>,
    declared_sizes: Mutex<BTreeMap<(String, String), u64>>,
    extra_listing: Mutex<BTreeMap<String, Vec<(String, u64)>>>,
    fail_with: Mutex<Option<u16>>,
    stalled_files: Mutex<Vec<String>>,
}

impl HubServer {
    /// Serves the repositories under `root`.
    pub async fn start(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let state = Arc::new(HubState {
            root: root.into(),
            ..HubState::default()
        });
        let app = Router::new()
            .route(
                "/api/models/{namespace}/{name}/revision/{*revision}",
                get(model_info),
            )
            .route(
                "/{namespace}/{name}/resolve/{revision}/{*file}",
                resolve_route(RepoKind::Model),
            )
            .route(
                "/datasets/{namespace}/{name}/resolve/{revision}/{*file}",
                resolve_route(RepoKind::Dataset),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, state, task })
    }

    /// The fake commit sha of `namespace/name`.
    pub fn commit_of(repo_id: &str) -> String {
        hex::encode(&Sha256::digest(repo_id.as_bytes())[..20])
    }

    /// Every request path served so far, in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state.requests).clone()
    }

    /// Requests for files of `repo_id` whose name ends with `suffix`.
    pub fn downloads_of(&self, repo_id: &str, suffix: &str) -> usize {
        let prefix = format!("/{repo_id}/resolve/");
        self.requests()
            .iter()
            .filter(|p| p.starts_with(&prefix) && p.ends_with(suffix))
            .count()
    }

    /// Makes `repo_id` answer 401 unless the request carries `Bearer <token>`.
    pub fn make_private(&self, repo_id: &str, token: &str) {
        lock(&self.state.private).insert(repo_id.into(), token.into());
    }

    /// Makes the listing of `repo_id` declare `size` bytes for `file`.
    pub fn declare_size(&self, repo_id: &str, file: &str, size: u64) {
        lock(&self.state.declared_sizes).insert((repo_id.into(), file.into()), size);
    }

    /// Adds a name to the listing of `repo_id` that is not on disk.
    pub fn add_to_listing(&self, repo_id: &str, file: &str, size: u64) {
        lock(&self.state.extra_listing)
            .entry(repo_id.into())
            .or_default()
            .push((file.into(), size));
    }

    /// Makes downloads of files named `file` send their headers and then no
    /// byte, ever (the metadata probe hf-hub makes first still answers).
    pub fn stall(&self, file: &str) {
        lock(&self.state.stalled_files).push(file.into());
    }

    /// Makes every request fail with `status` (`None`: serve normally).
    pub fn fail_with(&self, status: Option<u16>) {
        *lock(&self.state.fail_with) = status;
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HubState {
    /// Records the request, then applies the failure switch, the repository
    /// lookup, the privacy check and the revision check.
    fn admit(
        &self,
        path: String,
        headers: &HeaderMap,
        kind: RepoKind,
        namespace: &str,
        name: &str,
        revision: &str,
    ) -> Result<(String, PathBuf, String), (StatusCode, &'static str)> {
        lock(&self.requests).push(path);
        if let Some(status) = *lock(&self.fail_with) {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Err((status, "injected failure"));
        }
        let repo_id = format!("{namespace}/{name}");
        let plain = |s: &str| !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\\']);
        let dir = match kind {
            RepoKind::Model => self.root.join(namespace).join(name),
            RepoKind::Dataset => self.root.join("datasets").join(namespace).join(name),
        };
        if !plain(namespace) || !plain(name) || !dir.is_dir() {
            return Err((StatusCode::NOT_FOUND, "Repository not found"));
        }
        if let Some(token) = lock(&self.private).get(&repo_id) {
            let expected = format!("Bearer {token}");
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if given != Some(expected.as_str()) {
                return Err((StatusCode::UNAUTHORIZED, "Invalid credentials"));
            }
        }
        let sha = HubServer::commit_of(&repo_id);
        if revision != "main" && revision != sha {
            return Err((StatusCode::NOT_FOUND, "Revision not found"));
        }
        Ok((repo_id, dir, sha))
    }
}

async fn model_info(
    State(state): State<Arc<HubState>>,
    UrlPath((namespace, name, revision)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/api/models/{namespace}/{name}/revision/{revision}");
    let admitted = state.admit(
        path,
        &headers,
        RepoKind::Model,
        &namespace,
        &name,
        &revision,
    );
    let (repo_id, dir, sha) = match admitted {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    let mut files = match list(&dir) {
        Ok(files) => files,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    // Sizes declared through the API, or by a sidecar file in the
    // repository (for a server in another process).
    let mut declared: BTreeMap<String, u64> = lock(&state.declared_sizes)
        .iter()
        .filter(|((repo, _), _)| *repo == repo_id)
        .map(|((_, file), size)| (file.clone(), *size))
        .collect();
    if let Ok(text) = std::fs::read_to_string(dir.join(DECLARED_SIZES_FILE)) {
        match serde_json::from_str::<BTreeMap<String, u64>>(&text) {
            Ok(sizes) => declared.extend(sizes),
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
    files.retain(|(file, _)| file != DECLARED_SIZES_FILE);
    for (file, size) in &mut files {
        if let Some(d) = declared.get(file) {
            *size = *d;
        }
    }
    files.extend(
        lock(&state.extra_listing)
            .get(&repo_id)
            .cloned()
            .unwrap_or_default(),
    );
    let siblings: Vec<_> = files
        .iter()
        .map(|(f, size)| serde_json::json!({ "rfilename": f, "size": size }))
        .collect();
    axum::Json(serde_json::json!({
        "id": repo_id,
        "modelId": repo_id,
        "sha": sha,
        "private": false,
        "siblings": siblings,
    }))
    .into_response()
}

#[derive(Debug, Clone, Copy)]
enum RepoKind {
    Model,
    Dataset,
}

/// `GET` of a file of a `kind` repository: the model and dataset routes differ only in that.
fn resolve_route(kind: RepoKind) -> MethodRouter<Arc<HubState>> {
    get(
        move |State(state): State<Arc<HubState>>,
              UrlPath(parts): UrlPath<(String, String, String, String)>,
              headers: HeaderMap| async move { resolve(&state, kind, parts, &headers).await },
    )
}

async fn resolve(
    state: &HubState,
    kind: RepoKind,
    (namespace, name, revision, file): (String, String, String, String),
    headers: &HeaderMap,
) -> Response {
    let prefix = match kind {
        RepoKind::Model => "",
        RepoKind::Dataset => "/datasets",
    };
    let path = format!("{prefix}/{namespace}/{name}/resolve/{revision}/{file}");
    let (_, dir, sha) = match state.admit(path, headers, kind, &namespace, &name, &revision) {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    let safe = Path::new(&file)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    let bytes = match safe {
        true => tokio::fs::read(dir.join(&file)).await.ok(),
        false => None,
    };
    let Some(bytes) = bytes else {
        return (StatusCode::NOT_FOUND, "Entry not found").into_response();
    };
    let len = bytes.len() as u64;
    let etag = format!("\"{}\"", hex::encode(Sha256::digest(&bytes)));
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_range);
    let stalled = lock(&state.stalled_files).contains(&file);
    let builder = Response::builder()
        .header("x-repo-commit", &sha)
        .header(header::ETAG, etag)
        .header(header::ACCEPT_RANGES, "bytes");
    let response = match range {
        // hf-hub's metadata probe asks for the first byte; the real
        // download asks for more.
        Some((start, end)) if stalled && end > start => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
            .body(Body::from_stream(futures::stream::pending::<
                Result<Vec<u8>, std::io::Error>,
            >())),
        Some((start, end)) if len > 0 && start < len => {
            let end = end.min(len - 1);
            let body = bytes[start as usize..=end as usize].to_vec();
            builder
                .status(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
                .header(header::CONTENT_LENGTH, body.len())
                .body(Body::from(body))
        }
        Some(_) => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes 0-0/{len}"))
            .header(header::CONTENT_LENGTH, 0)
            .body(Body::empty()),
        None => builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, len)
            .body(Body::from(bytes)),
    };
    response.unwrap_or_else(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

/// `bytes=a-b` (or `bytes=a-`) as an inclusive range.
fn parse_range(value: &str) -> Option<(u64, u64)> {
    let (start, end) = value.strip_prefix("bytes=")?.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => u64::MAX,
        e => e.parse().ok()?,
    };
    (start <= end).then_some((start, end))
}

/// Every regular file under `dir` with its size, `/`-separated and sorted.
fn list(dir: &Path) -> std::io::Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = HashSet::new();
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                if seen.insert(path.clone()) {
                    stack.push(path);
                }
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((relative, entry.metadata()?.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("bytes=0-0"), Some((0, 0)));
        assert_eq!(parse_range("bytes=5-"), Some((5, u64::MAX)));
        assert_eq!(parse_range("bytes=5-2"), None);
        assert_eq!(parse_range("items=0-1"), None);
    }
}
