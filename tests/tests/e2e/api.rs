//! The HTTP API through the real `coordinator run` binary on the local
//! RabbitMQ and Redis: the miner's status query follows a job from QUEUED to
//! COMPLETED as a worker (this test, acting on Redis) moves it, and the
//! job's per-sample records follow; a refused commitment answers INVALID;
//! the operator route checks its token; the process stops in order on
//! SIGTERM (loop first, then the API drains).
//! And schemathesis, with all its checks, against the API served on a
//! loopback port: the OpenAPI document states what the routes accept and
//! answer.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::clock::now_ms;
use common::job::JobId;
use common::queue::MemoryQueue;
use common::result::{ComponentScores, Outcome, ResultMessage, ResultV1, Scores};
use common::store::testsuite::sample_records;
use common::store::{Lease, MemoryStore, ResultStore};
use common::submission::CommitString;
use coordinator::api::{ApiSettings, ApiState, OperatorToken};
use coordinator::leaderboard::model_of;
use coordinator::view::SharedView;
use serde_json::Value;
use tests::http;
use tests::sandbox::{Sandbox, binary, eventually, log_events, logged_addr, shared_servers};
use tests::tools::tool;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "an-operator-token-of-some-length";

/// Polls the status query at `path` until it answers `status`.
async fn wait_for_status(addr: SocketAddr, path: &str, status: &str) -> Result<Value> {
    eventually(status, Duration::from_secs(10), || async {
        let answer = http::get(addr, path).await?.json()?;
        Ok((answer["status"] == status).then_some(answer))
    })
    .await
}

#[tokio::test]
async fn status_query_through_coordinator_run() -> Result<()> {
    let _servers = shared_servers().await;
    let sandbox = Sandbox::new("api").await?;
    let dir = sandbox.dir.path();
    let alice = CommitString::bound_to("alice", "rp-7b", "chatml", "5Alice", None);
    std::fs::write(
        dir.join("submissions.toml"),
        format!(
            "[[miner]]\nhotkey = \"5Alice\"\ncommit = \"{alice}\"\n\n\
             [[miner]]\nhotkey = \"5Copycat\"\ncommit = \"{alice}\"\n"
        ),
    )?;
    std::fs::write(dir.join("token"), format!("{TOKEN}\n"))?;
    let log = dir.join("coordinator.log");
    let mut child = Command::new(binary("coordinator")?)
        .args(["--log-format", "json", "run", "--block-time", "1s"])
        .arg("--submissions")
        .arg(dir.join("submissions.toml"))
        .arg("--operator-token-file")
        .arg(dir.join("token"))
        .args(["--listen", "127.0.0.1:0", "--poll-interval", "200ms"])
        .args(["--status-refresh", "200ms", "--aggregate-every-blocks", "1"])
        .arg("--amqp-url")
        .arg(sandbox.rabbit.url.expose())
        .arg("--redis-url")
        .arg(sandbox.redis.url.expose())
        .arg("--redis-prefix")
        .arg(&sandbox.redis.prefix)
        .arg("--queue")
        .arg(&sandbox.rabbit.queue)
        .env("RUST_LOG", "info")
        .env_remove("EVAL_OPERATOR_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .context("starting the coordinator binary")?;
    let addr: SocketAddr = eventually("the API to listen", Duration::from_secs(30), || async {
        Ok(logged_addr(&log, "http api listening"))
    })
    .await
    .with_context(|| std::fs::read_to_string(&log).unwrap_or_default())?;

    // QUEUED, first in line (no worker runs).
    let status_path = "/v1/models/alice/rp-7b?hotkey=5Alice&chat_template=chatml";
    let queued = eventually("the job to be QUEUED", Duration::from_secs(20), || async {
        let answer = http::get(addr, status_path).await?;
        (answer.status == 200).then(|| answer.json()).transpose()
    })
    .await?;
    assert_eq!(queued["status"], "QUEUED", "{queued}");
    assert_eq!(queued["queue_position"], 1, "{queued}");
    let id: JobId = queued["job_id"].as_str().unwrap().parse()?;
    assert_eq!(id, JobId::for_model(&model_of(&alice), "v1"));
    let samples_path = format!("/v1/jobs/{id}/samples");
    let waiting = http::get(addr, &samples_path).await?.json()?;
    assert_eq!(waiting["status"], "QUEUED", "{waiting}");
    assert_eq!(waiting["samples"], serde_json::json!([]), "{waiting}");
    let unknown = http::get(addr, &format!("/v1/jobs/{}/samples", "0".repeat(32))).await?;
    assert_eq!(unknown.status, 404, "{}", unknown.body);

    // The copied commitment is INVALID with its reason (verdicts reach the
    // index at the refresh after the coordinator's tick).
    let invalid = eventually(
        "the copy to be INVALID",
        Duration::from_secs(10),
        || async {
            let answer = http::get(addr, "/v1/models/alice/rp-7b?hotkey=5Copycat")
                .await?
                .json()?;
            Ok((answer["status"] == "INVALID").then_some(answer))
        },
    )
    .await?;
    assert_eq!(invalid["reason"]["code"], "hash_mismatch");

    // Unknown model, malformed parameter.
    let missing = http::get(addr, "/v1/models/bob/none?chat_template=chatml").await?;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let bad = http::get(addr, "/v1/models/alice/rp-7b?hotkey=%3Cx%3E").await?;
    assert_eq!(
        (bad.status, bad.json()?["error"]["field"].clone()),
        (400, "hotkey".into())
    );

    // A worker (this test) runs and finishes the job in Redis.
    let record = sandbox.record(&id).await?;
    sandbox
        .store
        .claim(
            &record.job,
            Lease::new("test-worker", now_ms(), Duration::from_secs(60)),
        )
        .await?;
    sandbox
        .store
        .heartbeat(
            &id,
            Lease::new("test-worker", now_ms(), Duration::from_secs(60)),
            0.25,
        )
        .await?;
    let running = wait_for_status(addr, status_path, "RUNNING").await?;
    assert_eq!(running["progress"], 0.25);
    sandbox
        .store
        .finish(&ResultMessage::V1(ResultV1 {
            job_id: id.clone(),
            profile: "v1".into(),
            outcome: Outcome::Completed(Scores {
                components: ComponentScores {
                    similarity: 0.6,
                    vibe: 0.5,
                    latency: 0.9,
                    size: 0.7,
                    judge: None,
                },
                total: 0.618,
                weights_fingerprint: "fp".into(),
                dataset_sha256: String::new(),
                revision_sha: "abc".into(),
                tokens: 5_000,
                samples_context_cut: Some(1),
                latency: None,
                samples: sample_records(3),
                judge: None,
            }),
            worker: "test-worker".into(),
            attempt: 1,
            started_at_ms: now_ms() - 5_000,
            finished_at_ms: now_ms(),
        }))
        .await?;
    let completed = wait_for_status(addr, status_path, "COMPLETED").await?;
    assert_eq!(completed["total"], 0.618);
    assert_eq!(completed["scores"]["latency"], 0.9);
    // The per-sample records, stored apart in Redis, served by id.
    let samples = http::get(addr, &samples_path).await?;
    assert_eq!(samples.status, 200, "{}", samples.body);
    let samples = samples.json()?;
    assert_eq!(samples["status"], "COMPLETED", "{samples}");
    assert_eq!(
        samples["samples"],
        serde_json::to_value(sample_records(3))?,
        "{samples}"
    );

    // The aggregation picks it up: leaderboard and page.
    eventually(
        "alice on top of the leaderboard",
        Duration::from_secs(10),
        || async {
            let board = http::get(addr, "/v1/leaderboard").await?.json()?;
            Ok(
                (board["entries"][0]["hotkey"] == "5Alice"
                    && board["entries"][0]["total"] == 0.618)
                    .then_some(()),
            )
        },
    )
    .await?;
    let page = http::get(addr, "/").await?;
    ensure!(
        page.status == 200 && page.body.contains("alice/rp-7b"),
        "{}",
        page.body
    );

    // Operator route: refused without the token, accepted with it.
    let body = r#"{"namespace":"ops","name":"manual","chat_template":"chatml"}"#;
    let json = ("Content-Type", "application/json");
    let refused = http::request(addr, "POST", "/v1/evaluations", &[json], body).await?;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let wrong = http::request(
        addr,
        "POST",
        "/v1/evaluations",
        &[json, ("Authorization", "Bearer not-the-token")],
        body,
    )
    .await?;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let bearer = format!("Bearer {TOKEN}");
    let accepted = http::request(
        addr,
        "POST",
        "/v1/evaluations",
        &[json, ("Authorization", &bearer)],
        body,
    )
    .await?;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let manual: JobId = accepted.json()?["job_id"].as_str().unwrap().parse()?;
    assert!(sandbox.store.get(&manual).await?.is_some());

    // Readiness, metrics, the OpenAPI document.
    let ready = http::get(addr, "/readyz").await?;
    assert_eq!(ready.status, 200, "{}", ready.body);
    let metrics = http::get(addr, "/metrics").await?.body;
    for name in [
        "eval_coordinator_jobs{status=\"completed\"} 1",
        "eval_coordinator_jobs_finished_total{outcome=\"completed\"} 1",
        "eval_coordinator_http_requests_total",
        "eval_coordinator_chain_block",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let doc = http::get(addr, "/openapi.json").await?.json()?;
    assert!(doc["paths"]["/v1/models/{namespace}/{name}"].is_object());

    // SIGTERM: the loop stops, then the API drains, and the process exits 0.
    let pid = child.id().context("coordinator exited early")?;
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    ensure!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait()).await??;
    assert!(exit.success(), "coordinator exited with {exit}");
    let order: Vec<String> = log_events(&log)
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .filter(|m| m == "coordinator loop stopped" || m == "http api stopped")
        .collect();
    assert_eq!(order, ["coordinator loop stopped", "http api stopped"]);

    sandbox.cleanup().await
}

/// Schemathesis (pinned in scripts/test) runs every check it has against the
/// served `/openapi.json`: no 5xx, every status and body as documented, data
/// the document calls valid accepted and data it calls invalid refused, auth
/// not ignored, wrong methods answered 405. The store and queue are the
/// in-memory ones (this checks the HTTP contract, not the backends); the
/// rate limit is off so that no 429 stands in for the answer under test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_against_the_openapi_document() -> Result<()> {
    // Ready: the in-memory backends answer and the chain was just read (a
    // 503 from /readyz would be a server error to schemathesis).
    let view = SharedView::default();
    view.update(|v| v.chain_read_at_ms = Some(now_ms()));
    let state = ApiState::new(
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryQueue::new(3)),
        view,
        "v1",
        false,
        ApiSettings {
            rate_limit: None,
            operator_token: Some(OperatorToken::new(TOKEN)),
            ..ApiSettings::default()
        },
    );
    state.refresh_index().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let server = tokio::spawn(coordinator::api::serve(listener, state, stop.clone()));
    let work = tempfile::tempdir()?;
    let output = Command::new(tool("st"))
        .arg("run")
        .arg(format!("http://{addr}/openapi.json"))
        .args(["--checks", "all"])
        .arg("--header")
        .arg(format!("Authorization: Bearer {TOKEN}"))
        // Deterministic and bounded: one seed, a fixed number of cases, one
        // worker (Python 3.11's `ast` is not thread-safe, and hypothesis
        // parses lambdas with it: two workers fail now and then with
        // "AST constructor recursion depth mismatch").
        .args(["--seed", "1", "--max-examples", "60", "--workers", "1"])
        .args(["--request-timeout", "10"])
        // Its example database and report go to a scratch directory.
        .current_dir(work.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .context("running schemathesis")?;
    stop.cancel();
    server.await??;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(output.status.success(), "schemathesis failed:\n{text}");
    // It tested every operation (an empty document would pass too); the
    // document's own route is left out when the document is read from it.
    let doc: Value = serde_json::from_slice(&coordinator::api::openapi_json())?;
    let operations: usize = doc["paths"]
        .as_object()
        .context("paths")?
        .iter()
        .filter(|(path, _)| *path != "/openapi.json")
        .map(|(_, methods)| methods.as_object().map_or(0, |m| m.len()))
        .sum();
    ensure!(
        text.contains(&format!("Tested: {operations}\n")),
        "not all {operations} operations tested:\n{text}"
    );
    Ok(())
}
