//! The whole cluster end to end, every part a separate OS process on
//! loopback ([`tests::cluster::Cluster`]): miners commit on the chain double,
//! the coordinator schedules, workers download from the local hub endpoint
//! and evaluate with mistral.rs, results land in Redis, the miner status API
//! (with each job's per-sample records) and the page show them, and the
//! weights reach the chain.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::job::{JobId, JobStatus};
use common::queue::JobQueue;
use common::store::ResultStore;
use common::submission::CommitString;
use serde_json::Value;
use tests::cluster::{Cluster, ClusterSettings, Miner, NETUID};
use tests::sandbox::{eventually, exclusive_servers, init_tracing, shared_servers};

fn status_of(body: &Value) -> &str {
    body["status"].as_str().unwrap_or_default()
}

fn is_final(body: &Value) -> bool {
    matches!(status_of(body), "COMPLETED" | "FAILED" | "INVALID")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miners_submit_workers_evaluate_and_weights_reach_the_chain() -> Result<()> {
    init_tracing();
    let _servers = shared_servers().await;
    let cluster = Cluster::start(
        "e2e-happy",
        ClusterSettings {
            samples: 40,
            ..ClusterSettings::default()
        },
    )
    .await?;
    let api = cluster.api()?;

    // Honest miners: two through chain storage, one through `coordinator submit`.
    let alice = cluster.honest_miner("alice", 1).await?;
    let bob = cluster.honest_miner("bob", 2).await?;
    let carol_key =
        common::chain::subtensor::Hotkey::from_file(&tests::hotkey_fixture("other.json"))?;
    let carol_model = cluster.sandbox.tiny_model("miners", "carol", 3).await?;
    let carol_uid: u16 = cluster
        .rpc()
        .request(
            "double_register",
            subxt::rpcs::rpc_params![carol_key.ss58(), false],
        )
        .await?;
    let submit = tokio::process::Command::new(tests::sandbox::binary("coordinator")?)
        .args(["submit", "miners/carol", "--chat-template", "chatml"])
        .args(["--subtensor.network", &cluster.chain_url])
        .args(["--netuid", &NETUID.to_string()])
        .arg("--hotkey-file")
        .arg(tests::hotkey_fixture("other.json"))
        .args(["--coordinator-url", &format!("http://{api}")])
        .output()
        .await?;
    let printed = String::from_utf8_lossy(&submit.stdout);
    ensure!(
        submit.status.success(),
        "coordinator submit failed: {printed}{}",
        String::from_utf8_lossy(&submit.stderr)
    );
    let carol = Miner {
        hotkey: carol_key.ss58().to_owned(),
        uid: carol_uid,
        model: carol_model,
        profile: cluster.profile.version.clone(),
    };
    assert!(
        printed.contains(&format!("http://{api}{}", carol.status_path())),
        "submit prints the status URL: {printed}"
    );

    // Bad inputs.
    let (mallory, _) = cluster.register(20).await?;
    cluster
        .set_commitment(&mallory, "definitely not a commit string")
        .await?;
    let (copycat, _) = cluster.register(21).await?;
    let alice_commit =
        CommitString::bound_to("miners", "alice", "chatml", &alice.hotkey, None).to_string();
    cluster.set_commitment(&copycat, &alice_commit).await?;
    let pickle = cluster
        .miner_with("pickle", 22, "chatml", |dir| {
            std::fs::write(
                dir.join("pytorch_model.bin"),
                b"\x80\x04not really a pickle",
            )?;
            Ok(())
        })
        .await?;
    let oversize = cluster
        .miner_with("oversize", 23, "chatml", |dir| {
            std::fs::write(
                dir.join(tests::hub::DECLARED_SIZES_FILE),
                r#"{"model-00001-of-00002.safetensors": 40000000000}"#,
            )?;
            Ok(())
        })
        .await?;
    let broken_template = cluster
        .miner_with("broken-template", 24, "tokenizer", |dir| {
            let path = dir.join("tokenizer_config.json");
            let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            config["chat_template"] = "{{ raise_exception('this template is broken') }}".into();
            std::fs::write(&path, serde_json::to_vec(&config)?)?;
            Ok(())
        })
        .await?;
    let nan = cluster
        .miner_with("nan", 25, "chatml", |dir| {
            let spec = worker::fixtures::TinyModelSpec {
                nan: true,
                ..worker::fixtures::TinyModelSpec::with_seed(25)
            };
            worker::fixtures::write_tiny_model(dir, &spec)?;
            Ok(())
        })
        .await?;

    // The miners watch their status until it is final.
    let honest = [&alice, &bob, &carol];
    let failing = [
        (&pickle, "forbidden_file"),
        (&oversize, "too_large"),
        (&broken_template, "bad_template"),
        (&nan, "nan_output"),
    ];
    let seen_before_final = std::sync::Mutex::new(BTreeSet::new());
    let everyone: Vec<&Miner> = honest
        .iter()
        .copied()
        .chain(failing.iter().map(|(m, _)| *m))
        .collect();
    let finals = eventually(
        "every evaluation to be final",
        Duration::from_secs(300),
        || async {
            let mut finals = Vec::new();
            for miner in &everyone {
                let answer = cluster.get(&miner.status_path()).await?;
                if answer.status != 200 {
                    // 404 until the coordinator has read the commitment.
                    ensure!(
                        matches!(answer.status, 404 | 503),
                        "unexpected {}",
                        answer.body
                    );
                    return Ok(None);
                }
                let body = answer.json()?;
                if !is_final(&body) {
                    seen_before_final
                        .lock()
                        .unwrap()
                        .insert(status_of(&body).to_owned());
                    return Ok(None);
                }
                finals.push(body);
            }
            Ok(Some(finals))
        },
    )
    .await?;
    let seen_before_final = seen_before_final.into_inner().unwrap();
    eprintln!("statuses seen before the end: {seen_before_final:?}");
    assert!(
        seen_before_final.contains("QUEUED") || seen_before_final.contains("RUNNING"),
        "the miners saw their jobs before the results: {seen_before_final:?}"
    );
    for (miner, body) in everyone.iter().zip(&finals) {
        eprintln!("{}: {body}", miner.model.name);
    }
    for (miner, body) in honest.iter().zip(&finals) {
        assert_eq!(status_of(body), "COMPLETED", "{}: {body}", miner.model.name);
        let total = body["total"].as_f64().context("a total")?;
        assert!(total > 0.0 && total <= 1.0, "{body}");
        assert!(body["scores"]["vibe"].is_number(), "{body}");
        assert_eq!(body["uid"], miner.uid, "{body}");
    }
    // Each sample a real `worker run` scored, through the miner's route: one
    // record per conversation, and the components are their means.
    for (miner, body) in honest.iter().zip(&finals) {
        let answer = cluster
            .get(&format!("/v1/jobs/{}/samples", miner.job_id()))
            .await?;
        ensure!(answer.status == 200, "{}", answer.body);
        let samples = answer.json()?;
        assert_eq!(samples["status"], "COMPLETED", "{samples}");
        let records = samples["samples"].as_array().context("a list")?;
        assert_eq!(records.len(), 40, "{}: {samples}", miner.model.name);
        let similarities: Vec<f64> = records
            .iter()
            .map(|r| r["similarity"].as_f64().context("a similarity"))
            .collect::<Result<_>>()?;
        let mean = similarities.iter().sum::<f64>() / similarities.len() as f64;
        let component = body["scores"]["similarity"]
            .as_f64()
            .context("similarity")?;
        assert!((mean - component).abs() < 1e-12, "{mean} vs {component}");
        // The profile generates one reply (vibe_samples = 1), the first.
        let replies: Vec<&Value> = records
            .iter()
            .filter(|r| r.get("reply").is_some())
            .collect();
        assert_eq!(replies.len(), 1, "{samples}");
        assert_eq!(replies[0]["vibe"], body["scores"]["vibe"], "{samples}");
        assert!(
            records[0]["reply"]
                .as_str()
                .is_some_and(|r| r.chars().count() <= 500),
            "{samples}"
        );
        assert!(
            records.iter().all(|r| r["conversation_id"].is_string()),
            "{samples}"
        );
    }
    for ((miner, code), body) in failing.iter().zip(&finals[honest.len()..]) {
        assert_eq!(status_of(body), "FAILED", "{}: {body}", miner.model.name);
        assert_eq!(body["reason"]["code"], *code, "{body}");
        let samples = cluster
            .get(&format!("/v1/jobs/{}/samples", miner.job_id()))
            .await?
            .json()?;
        assert_eq!(
            (&samples["status"], &samples["samples"]),
            (&Value::from("FAILED"), &serde_json::json!([])),
            "{samples}"
        );
        assert!(
            body["reason"]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 10),
            "{body}"
        );
    }
    // Refused commitments are visible to their miners too.
    for (hotkey, code) in [(&mallory, "malformed"), (&copycat, "hash_mismatch")] {
        let path = format!("/v1/models/miners/alice?hotkey={hotkey}&chat_template=chatml");
        let body = eventually("the invalid verdict", Duration::from_secs(30), || async {
            let answer = cluster.get(&path).await?;
            (answer.status == 200).then(|| answer.json()).transpose()
        })
        .await?;
        assert_eq!(status_of(&body), "INVALID", "{body}");
        assert_eq!(body["reason"]["code"], code, "{body}");
    }

    // Each job ran to a stored result exactly once.
    for miner in &everyone {
        let id: JobId = miner.job_id();
        let record = cluster.sandbox.store.get(&id).await?.context("a record")?;
        assert!(record.status.is_final(), "{record:?}");
        let stored: usize = cluster
            .workers
            .iter()
            .map(|w| w.job_events(&id, "result stored"))
            .sum();
        assert_eq!(stored, 1, "{}: result stored once", miner.model.name);
        if honest.iter().any(|h| h.uid == miner.uid) {
            assert_eq!(record.status, JobStatus::Completed);
        }
    }

    // The page shows the ranked models.
    let page = cluster.get("/").await?;
    assert_eq!(page.status, 200);
    for miner in honest {
        assert!(
            page.body.contains(&miner.model.name),
            "page lists {}",
            miner.model.name
        );
    }

    // The weights on chain are what `common` computes from the stored scores.
    let expected = cluster.expected_weights().await?;
    assert_eq!(
        expected.keys().copied().collect::<BTreeSet<_>>().len(),
        expected.len()
    );
    assert!(!expected.is_empty());
    let on_chain = eventually(
        "the weights on chain to match the stored scores",
        Duration::from_secs(60),
        || async {
            let on_chain = cluster.weights_on_chain().await?;
            Ok((on_chain == expected).then_some(on_chain))
        },
    )
    .await?;
    eprintln!("weights on chain: {on_chain:?}");
    for miner in failing.iter().map(|(m, _)| m) {
        assert!(
            !on_chain.contains_key(&miner.uid),
            "a failed model gets no weight"
        );
    }

    cluster.shutdown().await
}

/// A small deterministic generator for the fault schedule; the seed is
/// printed so a failing schedule can be replayed with `EVAL_FAULT_SEED`.
struct Schedule(u64);

impl Schedule {
    fn new() -> Self {
        let seed = std::env::var("EVAL_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("fault schedule seed: EVAL_FAULT_SEED={seed}");
        Self(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Jobs of `miners` without a final record (or not readable right now).
async fn unfinished(cluster: &Cluster, miners: &[Miner]) -> BTreeSet<JobId> {
    let mut out = BTreeSet::new();
    for miner in miners {
        let id = miner.job_id();
        let done =
            matches!(cluster.sandbox.store.get(&id).await, Ok(Some(r)) if r.status.is_final());
        if !done {
            out.insert(id);
        }
    }
    out
}

/// Waits until some job is being evaluated.
async fn wait_running(cluster: &Cluster) -> Result<()> {
    eventually("a job to run", Duration::from_secs(90), || async {
        let running = cluster
            .sandbox
            .store
            .jobs_with_status(JobStatus::Running)
            .await
            .unwrap_or_default();
        Ok((!running.is_empty()).then_some(()))
    })
    .await
}

/// Profile v2 through the whole cluster: the coordinator queues v2 jobs, a
/// worker judges with its real judge model (SmolLM2, served by the hub at a
/// pinned commit) kept loaded between jobs, and the verdicts reach the
/// stored result, the miner's routes and the weights.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_profile_judges_through_the_whole_cluster() -> Result<()> {
    init_tracing();
    let _servers = shared_servers().await;
    let judge_dir = tests::real_models::repo(tests::real_models::SMOLLM2);
    let cluster = Cluster::start(
        "e2e-judge",
        ClusterSettings {
            workers: 1,
            samples: 2,
            judge: Some(judge_dir.clone()),
            ..ClusterSettings::default()
        },
    )
    .await?;
    assert_eq!(cluster.profile.version, "v2");
    let alice = cluster.honest_miner("alice", 1).await?;
    let bob = cluster.honest_miner("bob", 2).await?;
    for miner in [&alice, &bob] {
        let body = cluster
            .wait_status(
                miner,
                "a final v2 status",
                Duration::from_secs(240),
                is_final,
            )
            .await?;
        assert_eq!(status_of(&body), "COMPLETED", "{body}");
        assert_eq!(body["profile"], "v2", "{body}");
        let judge = body["scores"]["judge"]
            .as_f64()
            .context("a judge component")?;
        assert!(
            [0.0, 0.5, 1.0].contains(&judge),
            "one judged sample: {body}"
        );

        let samples = cluster
            .get(&format!("/v1/jobs/{}/samples", miner.job_id()))
            .await?
            .json()?;
        let records = samples["samples"].as_array().context("a list")?;
        assert_eq!(records.len(), 2, "{samples}");
        let verdict = &records[0]["verdict"];
        assert!(
            ["win", "tie", "loss"].contains(&verdict["outcome"].as_str().unwrap_or_default()),
            "{samples}"
        );
        let points = match verdict["outcome"].as_str() {
            Some("win") => 1.0,
            Some("tie") => 0.5,
            _ => 0.0,
        };
        assert_eq!(points, judge, "{samples}");
        assert!(records[1].get("verdict").is_none(), "{samples}");

        // The stored result names the judge, at the hub's commit, by fingerprint.
        let record = cluster
            .sandbox
            .store
            .get(&miner.job_id())
            .await?
            .context("a record")?;
        let Some(common::result::Outcome::Completed(scores)) = record.result.map(|r| r.outcome)
        else {
            anyhow::bail!("{} has no scores", miner.model.name);
        };
        let summary = scores.judge.context("the judge summary")?;
        let local = worker::source::inspect_dir(
            &judge_dir,
            1 << 32,
            &worker::source::ConfigLimits::default(),
            "chatml",
        )?;
        assert_eq!(summary.repo, tests::cluster::JUDGE_REPO);
        assert_eq!(
            summary.revision,
            tests::hub::HubServer::commit_of(tests::cluster::JUDGE_REPO)
        );
        assert_eq!(summary.weights_fingerprint, local.weights_fingerprint);
        assert!((scores.total - cluster.profile.total(&scores.components)).abs() < 1e-12);
        // The miner's status names the judge too.
        assert_eq!(body["judge"]["repo"], tests::cluster::JUDGE_REPO, "{body}");
        assert_eq!(
            body["judge"]["revision"],
            summary.revision.as_str(),
            "{body}"
        );
        assert_eq!(
            body["judge"]["weights_fingerprint"],
            local.weights_fingerprint.as_str(),
            "{body}"
        );
        assert_eq!(body["judge"]["samples"], 1, "{body}");
    }
    // Loaded once, kept between the two jobs.
    assert_eq!(
        cluster.workers[0]
            .events()
            .iter()
            .filter(|e| e["message"] == "judge loaded")
            .count(),
        1,
        "the judge is loaded once per worker"
    );
    // The weights on chain come from the v2 totals.
    assert!(!cluster.wait_weights_on_chain().await?.is_empty());
    cluster.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_loses_nothing_to_killed_workers_and_restarted_servers() -> Result<()> {
    let _servers = exclusive_servers().await;
    init_tracing();
    let mut schedule = Schedule::new();
    let mut cluster = Cluster::start(
        "e2e-faults",
        ClusterSettings {
            samples: 150,
            ..ClusterSettings::default()
        },
    )
    .await?;
    let mut miners = Vec::new();
    for i in 0..8u8 {
        miners.push(cluster.honest_miner(&format!("m{i}"), 40 + i).await?);
    }

    // The hub fails every request: workers hand back each job they take.
    // A hand-back is the validator's trouble and counts toward no delivery
    // limit: a job is taken more times than the limit allows deliveries, and
    // none is dead-lettered or requeued. Then the hub returns.
    eprintln!("hub outage until a job is handed back past the delivery limit");
    cluster.hub.signal("USR1").await?;
    let limit = cluster.sandbox.rabbit.delivery_limit;
    let store = &cluster.sandbox.store;
    let handed_back = eventually(
        "a job handed back more times than the delivery limit",
        Duration::from_secs(180),
        || async {
            let mut jobs = store.jobs_with_status(JobStatus::Queued).await?;
            jobs.extend(store.jobs_with_status(JobStatus::Running).await?);
            Ok(jobs.into_iter().find(|r| r.attempts > limit))
        },
    )
    .await?;
    ensure!(
        (handed_back.requeues, handed_back.reclaims) == (0, 0),
        "hand-backs were counted: {handed_back:?}"
    );
    ensure!(cluster.sandbox.queue.dead_letter_depth().await? == 0);
    tokio::time::sleep(Duration::from_millis(schedule.below(3_000))).await;
    cluster.hub.signal("USR1").await?;
    // Someone purges the queue: every waiting job loses its message, and
    // the reconciler must notice and publish each again.
    let purged = cluster.sandbox.queue.depth().await?.ready;
    eprintln!("purging the job queue (about {purged} messages)");
    tests::sandbox::rabbitmqctl(&["purge_queue", &cluster.sandbox.rabbit.queue]).await?;

    // Workers SIGKILLed at random points of their jobs, each replaced.
    for round in 0..3 {
        wait_running(&cluster).await?;
        tokio::time::sleep(Duration::from_millis(schedule.below(1_500))).await;
        let alive: Vec<usize> = (0..cluster.workers.len())
            .filter(|&i| cluster.workers[i].is_running())
            .collect();
        let victim = alive[schedule.below(alive.len() as u64) as usize];
        eprintln!("round {round}: SIGKILL {}", cluster.workers[victim].name);
        cluster.workers[victim].kill().await?;
        cluster.start_worker(&format!("worker-r{round}"))?;
    }
    // The broker restarts under running jobs, and a miner commits while it
    // is down: the coordinator enqueues the job, and its reconciler
    // publishes it once the broker is back.
    wait_running(&cluster).await?;
    eprintln!("stopping RabbitMQ; a miner commits meanwhile");
    tests::sandbox::rabbitmqctl(&["stop_app"]).await?;
    miners.push(cluster.honest_miner("late", 60).await?);
    tokio::time::sleep(Duration::from_millis(1_000 + schedule.below(3_000))).await;
    tests::sandbox::rabbitmqctl(&["start_app"]).await?;
    tests::sandbox::rabbitmqctl(&["await_startup"]).await?;
    // Redis restarts with its data, then without. A result written between
    // the snapshot and the restart is lost like one in the wipe: its job is
    // evaluated and stored again, which the count below allows.
    wait_running(&cluster).await?;
    let unfinished_at_save = unfinished(&cluster, &miners).await;
    eprintln!("restarting Redis with its data");
    tests::sandbox::restart_redis(true).await?;
    wait_running(&cluster).await?;
    let unfinished_at_wipe = unfinished(&cluster, &miners).await;
    let finished_before_wipe: BTreeSet<JobId> = miners
        .iter()
        .map(Miner::job_id)
        .filter(|id| !unfinished_at_wipe.contains(id))
        .collect();
    eprintln!(
        "restarting Redis without its data ({} results to redo)",
        finished_before_wipe.len()
    );
    tests::sandbox::restart_redis(false).await?;
    // The coordinator dies and a new one takes over.
    tokio::time::sleep(Duration::from_millis(schedule.below(2_000))).await;
    let mut retired = Vec::new();
    if let Some(mut old) = cluster.coordinator.take() {
        eprintln!("SIGKILL the coordinator");
        old.kill().await?;
        retired.push(old);
    }
    cluster.start_coordinator().await?;

    for miner in &miners {
        let body = cluster
            .wait_status(
                miner,
                "every job to complete after the faults",
                Duration::from_secs(300),
                is_final,
            )
            .await?;
        assert_eq!(
            status_of(&body),
            "COMPLETED",
            "{}: {body}",
            miner.model.name
        );
    }
    for miner in &miners {
        let id = miner.job_id();
        let stored: usize = cluster
            .workers
            .iter()
            .map(|w| w.job_events(&id, "result stored"))
            .sum();
        let allowed = 1
            + usize::from(finished_before_wipe.contains(&id))
            + usize::from(unfinished_at_save.contains(&id));
        assert!(
            (1..=allowed).contains(&stored),
            "{}: result stored {stored} times (at most {allowed}: once, plus once for each \
             Redis restart that could have lost it)",
            miner.model.name
        );
    }
    assert_eq!(
        cluster.sandbox.store.leaderboard(100).await?.len(),
        miners.len(),
        "one leaderboard entry per job"
    );
    let repairs = |message: &str| {
        let coordinators = cluster.coordinator.iter().chain(&retired);
        coordinators
            .map(|c| {
                c.events()
                    .iter()
                    .filter(|e| e["message"] == message)
                    .count()
            })
            .sum::<usize>()
    };
    eprintln!(
        "repairs: {} dead-lettered jobs queued again, {} lost messages replaced, {} leases reclaimed",
        repairs("dead-lettered job queued again"),
        repairs("message lost; publishing the job again"),
        repairs("lease expired, job taken back for a new worker"),
    );
    // Nothing is left behind: no job in the store is QUEUED or RUNNING.
    for status in [JobStatus::Queued, JobStatus::Running] {
        let left = cluster.sandbox.store.jobs_with_status(status).await?;
        assert!(
            left.is_empty(),
            "{status} jobs left after the faults: {left:?}"
        );
    }
    cluster.wait_weights_on_chain().await?;
    cluster.shutdown().await
}
