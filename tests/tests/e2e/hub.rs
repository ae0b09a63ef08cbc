//! The worker's Hugging Face source against the local endpoint
//! (`tests::hub::HubServer`): the real hf-hub download path into a temp
//! cache, the prechecks before any weight byte moves, and error classes.

use std::path::Path;

use common::job::{JobMessage, JobOrigin, ModelRef};
use common::result::FailureCode;
use common::scoring::ScoringProfile;
use tests::hub::HubServer;
use worker::dataset::{Dataset, DatasetError, DatasetLocation};
use worker::engine::MistralEvaluator;
use worker::error::JobError;
use worker::eval::{EvalTask, Evaluator, Progress};
use worker::fixtures::{TinyModelSpec, write_tiny_model};
use worker::source::{
    ConfigLimits, DEFAULT_STALL_TIMEOUT, HubConfig, HubSource, LocalModel, ModelSource,
    fetch_dataset, inspect_dir,
};

const LIMIT: u64 = 1 << 30;

fn model(namespace: &str, name: &str) -> ModelRef {
    ModelRef {
        namespace: namespace.into(),
        name: name.into(),
        revision: "main".into(),
        chat_template: "chatml".into(),
    }
}

fn source(server: &HubServer, cache: &Path, token: Option<&str>) -> HubSource {
    HubSource::new(
        HubConfig {
            endpoint: server.url.clone(),
            cache_dir: cache.to_path_buf(),
            token: token.map(Into::into),
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        },
        ConfigLimits::default(),
    )
    .unwrap()
}

fn write_model(root: &Path, repo: &str, seed: u64) -> std::path::PathBuf {
    let dir = root.join(repo);
    write_tiny_model(&dir, &TinyModelSpec::with_seed(seed)).unwrap();
    dir
}

/// An empty directory of repositories served by a hub endpoint, and an
/// empty cache: (root, cache, server).
async fn empty_hub() -> (tempfile::TempDir, tempfile::TempDir, HubServer) {
    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let server = HubServer::start(root.path()).await.unwrap();
    (root, cache, server)
}

fn refused(result: Result<LocalModel, JobError>) -> FailureCode {
    match result {
        Err(JobError::Model(reason)) => reason.code,
        other => panic!("expected a model failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_model_downloads_pinned_and_scores() {
    let (root, cache, server) = empty_hub().await;
    let local = write_model(root.path(), "t/tiny", 7);
    let hub = source(&server, cache.path(), None);

    let fetched = hub.fetch(&model("t", "tiny"), LIMIT).await.unwrap();
    let expected = inspect_dir(&local, LIMIT, &ConfigLimits::default(), "chatml").unwrap();
    assert_eq!(fetched.weights_fingerprint, expected.weights_fingerprint);
    assert_eq!(fetched.size_bytes, expected.size_bytes);
    assert_eq!(fetched.revision_sha, HubServer::commit_of("t/tiny"));
    assert!(fetched.dir.starts_with(cache.path()), "{fetched:?}");
    assert!(fetched.dir.ends_with(format!(
        "models--t--tiny/snapshots/{}",
        fetched.revision_sha
    )));
    // Every file was fetched at the sha, never at the branch.
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .filter(|r| r.contains("/resolve/"))
            .all(|r| r.contains(&fetched.revision_sha)),
        "{requests:?}"
    );
    assert_eq!(
        server.downloads_of("t/tiny", ".safetensors"),
        4,
        "{requests:?}"
    );

    // A second fetch reuses the cache: only the listing is requested.
    let again = hub.fetch(&model("t", "tiny"), LIMIT).await.unwrap();
    assert_eq!(again, fetched);
    assert_eq!(server.requests().len(), requests.len() + 1);

    // The real engine scores what was downloaded.
    let mut profile = ScoringProfile::v1();
    profile.similarity_samples = 2;
    profile.vibe_samples = 1;
    profile.latency_input_tokens = 16;
    profile.latency_repeats = 1;
    let job = JobMessage::v1(
        model("t", "tiny"),
        "v1",
        JobOrigin::Operator {
            requested_by: "test".into(),
        },
        0,
    );
    let (progress, _rx) = Progress::new();
    let evaluation = MistralEvaluator::new(Dataset::builtin())
        .evaluate(EvalTask {
            progress,
            ..EvalTask::new(job.job(), &fetched, &profile)
        })
        .await
        .unwrap();
    assert!(evaluation.components.is_well_formed(), "{evaluation:?}");
    assert!(evaluation.components.similarity > 0.0, "{evaluation:?}");
}

#[tokio::test]
async fn hostile_repos_are_refused_before_any_weight_download() {
    let (root, cache, server) = empty_hub().await;

    let pickle = write_model(root.path(), "h/pickle", 1);
    std::fs::write(pickle.join("pytorch_model.bin"), b"not really a pickle").unwrap();
    let code = write_model(root.path(), "h/code", 1);
    std::fs::write(code.join("modeling_evil.py"), b"import os").unwrap();
    write_model(root.path(), "h/huge", 1);
    server.declare_size("h/huge", "model-00001-of-00002.safetensors", 40 << 30);
    write_model(root.path(), "h/traversal", 1);
    server.add_to_listing("h/traversal", "../../outside.safetensors", 10);
    let missing = write_model(root.path(), "h/missing", 1);
    let index_path = missing.join("model.safetensors.index.json");
    let index = std::fs::read_to_string(&index_path).unwrap().replace(
        "model-00002-of-00002.safetensors",
        "model-00003-of-00003.safetensors",
    );
    std::fs::write(&index_path, index).unwrap();

    let hub = source(&server, cache.path(), None);
    for (repo, expected) in [
        ("pickle", FailureCode::ForbiddenFile),
        ("code", FailureCode::ForbiddenFile),
        ("huge", FailureCode::TooLarge),
        ("traversal", FailureCode::ForbiddenFile),
        ("missing", FailureCode::BadConfig),
    ] {
        let code = refused(hub.fetch(&model("h", repo), LIMIT).await);
        assert_eq!(code, expected, "{repo}");
        let repo_id = format!("h/{repo}");
        assert_eq!(
            server.downloads_of(&repo_id, ".safetensors"),
            0,
            "{repo}: {:?}",
            server.requests()
        );
    }
    assert!(!root.path().join("outside.safetensors").exists());
    assert!(
        !cache
            .path()
            .parent()
            .unwrap()
            .join("outside.safetensors")
            .exists()
    );
}

#[tokio::test]
async fn inaccessible_repos_are_the_models_fault_and_server_errors_are_transient() {
    let (root, cache, server) = empty_hub().await;
    write_model(root.path(), "p/secret", 3);
    server.make_private("p/secret", "hf_test_token");

    let anonymous = source(&server, cache.path(), None);
    assert_eq!(
        refused(anonymous.fetch(&model("p", "unknown"), LIMIT).await),
        FailureCode::NotAccessible
    );
    assert_eq!(
        refused(anonymous.fetch(&model("p", "secret"), LIMIT).await),
        FailureCode::NotAccessible
    );
    let mut bad_revision = model("p", "secret");
    bad_revision.revision = "no-such-branch".into();
    let authorised = source(&server, cache.path(), Some("hf_test_token"));
    assert_eq!(
        refused(authorised.fetch(&bad_revision, LIMIT).await),
        FailureCode::NotAccessible
    );
    let fetched = authorised
        .fetch(&model("p", "secret"), LIMIT)
        .await
        .unwrap();
    assert_eq!(fetched.revision_sha, HubServer::commit_of("p/secret"));

    server.fail_with(Some(500));
    let fresh_cache = tempfile::tempdir().unwrap();
    let flaky = source(&server, fresh_cache.path(), Some("hf_test_token"));
    let result = flaky.fetch(&model("p", "secret"), LIMIT).await;
    assert!(
        matches!(result, Err(JobError::Transient { .. })),
        "{result:?}"
    );
    server.fail_with(Some(503));
    let result = authorised.fetch(&model("p", "secret"), LIMIT).await;
    assert!(
        matches!(result, Err(JobError::Transient { .. })),
        "{result:?}"
    );

    // A closed port is a network error: transient.
    let gone = HubSource::new(
        HubConfig {
            endpoint: "http://127.0.0.1:9".into(),
            cache_dir: cache.path().to_path_buf(),
            token: None,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
        },
        ConfigLimits::default(),
    )
    .unwrap();
    let result = gone.fetch(&model("p", "secret"), LIMIT).await;
    assert!(
        matches!(result, Err(JobError::Transient { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_stalled_download_is_abandoned_as_transient() {
    let (root, cache, server) = empty_hub().await;
    write_model(root.path(), "s/slow", 5);
    server.stall("model-00002-of-00002.safetensors");
    let hub = HubSource::new(
        HubConfig {
            stall_timeout: std::time::Duration::from_millis(500),
            ..source(&server, cache.path(), None).config().clone()
        },
        ConfigLimits::default(),
    )
    .unwrap();
    match hub.fetch(&model("s", "slow"), LIMIT).await {
        Err(JobError::Transient { message, .. }) => assert!(
            message.contains("model-00002-of-00002.safetensors")
                && message.contains("no data received"),
            "{message}"
        ),
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_dataset_downloads_from_a_dataset_repository() {
    let (root, cache, server) = empty_hub().await;
    let dir = root.path().join("datasets/org/rp-eval/data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("eval.jsonl"), worker::dataset::BUILTIN).unwrap();
    let config = source(&server, cache.path(), None).config().clone();

    let location: DatasetLocation = "hf://datasets/org/rp-eval/data/eval.jsonl".parse().unwrap();
    let dataset = fetch_dataset(&location, &config, None).await.unwrap();
    let builtin = Dataset::builtin();
    assert_eq!(dataset.sha256, builtin.sha256);
    assert_eq!(dataset.conversations, builtin.conversations);
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r == "/datasets/org/rp-eval/resolve/main/data/eval.jsonl"),
        "{:?}",
        server.requests()
    );

    let missing: DatasetLocation = "hf://datasets/org/rp-eval/data/nope.jsonl".parse().unwrap();
    match fetch_dataset(&missing, &config, None).await {
        Err(DatasetError::Fetch { location, .. }) => {
            assert_eq!(location, "hf://datasets/org/rp-eval@main/data/nope.jsonl");
        }
        other => panic!("expected a fetch error, got {other:?}"),
    }
}
