//! The HTTP API through the real `coordinator run` binary on the local
//! RabbitMQ and Redis: the miner's status query follows a job from QUEUED to
//! COMPLETED as a worker (this test, acting on Redis) moves it; a refused
//! commitment answers INVALID; the operator route checks its token; the
//! process stops in order on SIGTERM (loop first, then the API drains).

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::clock::now_ms;
use common::job::JobId;
use common::result::{ComponentScores, Outcome, ResultMessage, ResultV1, Scores};
use common::store::ResultStore;
use common::submission::CommitString;
use coordinator::leaderboard::model_of;
use serde_json::Value;
use tests::http;
use tests::sandbox::{Sandbox, binary, eventually};
use tokio::process::Command;

const TOKEN: &str = "an-operator-token-of-some-length";

fn events(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test]
async fn status_query_through_coordinator_run() -> Result<()> {
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
        .arg(&sandbox.rabbit.url)
        .arg("--redis-url")
        .arg(&sandbox.redis.url)
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
        Ok(events(&log)
            .iter()
            .find(|e| e["message"] == "http api listening")
            .and_then(|e| e["addr"].as_str()?.parse().ok()))
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
            "test-worker",
            Duration::from_secs(60),
            now_ms(),
        )
        .await?;
    sandbox
        .store
        .heartbeat(&id, "test-worker", 0.25, Duration::from_secs(60), now_ms())
        .await?;
    let running = eventually("RUNNING at 25 %", Duration::from_secs(10), || async {
        let answer = http::get(addr, status_path).await?.json()?;
        Ok((answer["status"] == "RUNNING").then_some(answer))
    })
    .await?;
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
                },
                total: 0.618,
                weights_fingerprint: "fp".into(),
                dataset_sha256: String::new(),
                revision_sha: "abc".into(),
                tokens: 5_000,
                samples_context_cut: None,
                latency: None,
            }),
            worker: "test-worker".into(),
            attempt: 1,
            started_at_ms: now_ms() - 5_000,
            finished_at_ms: now_ms(),
        }))
        .await?;
    let completed = eventually("COMPLETED", Duration::from_secs(10), || async {
        let answer = http::get(addr, status_path).await?.json()?;
        Ok((answer["status"] == "COMPLETED").then_some(answer))
    })
    .await?;
    assert_eq!(completed["total"], 0.618);
    assert_eq!(completed["scores"]["latency"], 0.9);

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
    let order: Vec<String> = events(&log)
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .filter(|m| m == "coordinator loop stopped" || m == "http api stopped")
        .collect();
    assert_eq!(order, ["coordinator loop stopped", "http api stopped"]);

    sandbox.cleanup().await
}
