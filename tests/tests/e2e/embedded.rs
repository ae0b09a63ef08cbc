//! The embedded cluster end to end: generated miners commit on the in-memory
//! chain, the coordinator schedules, a worker evaluates the generated tiny
//! models with mistral.rs, and weights land on the chain.

use std::time::Duration;

use common::chain_weights::WeightsParams;
use common::job::JobStatus;
use embedded::{EmbeddedOptions, run_with_engine};
use tokio_util::sync::CancellationToken;

fn options(seed: u64) -> EmbeddedOptions {
    EmbeddedOptions {
        miners: 2,
        workers: 1,
        seed,
        work_dir: None,
        samples: 2,
        timeout: Duration::from_secs(600),
        listen: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_cluster_scores_miners_refuses_bad_ones_and_sets_weights() {
    let options = EmbeddedOptions {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..options(7)
    };
    let report = run_with_engine(&options, CancellationToken::new())
        .await
        .unwrap();
    let board = &report.leaderboard;
    let by_hotkey = |hotkey: &str| board.entries.iter().find(|e| e.hotkey == hotkey).unwrap();

    let honest: Vec<_> = ["5Miner00", "5Miner01"]
        .map(by_hotkey)
        .into_iter()
        .collect();
    for entry in &honest {
        assert_eq!(entry.status, Some(JobStatus::Completed), "{entry:?}");
        let c = entry.components.unwrap();
        assert!(c.is_well_formed(), "{c:?}");
        assert!(
            c.similarity > 0.0 && entry.total.unwrap() > 0.0,
            "{entry:?}"
        );
    }
    assert_ne!(
        honest[0].total, honest[1].total,
        "different models must score differently"
    );

    let copycat = by_hotkey("5Copycat");
    assert_eq!(copycat.status, None);
    assert!(
        copycat
            .reason
            .as_deref()
            .unwrap()
            .contains("bound to another hotkey"),
        "{copycat:?}"
    );
    let mallory = by_hotkey("5Mallory");
    assert_eq!(mallory.status, Some(JobStatus::Failed));
    assert!(
        mallory
            .reason
            .as_deref()
            .unwrap()
            .contains("pytorch_model.bin"),
        "{mallory:?}"
    );

    // The weights on chain are exactly what common's pure functions give.
    let (_, on_chain) = report.weights_on_chain.clone().expect("weights were set");
    assert_eq!(
        on_chain,
        tests::expected_weights(board, &WeightsParams::default())
    );
    assert_eq!(on_chain, board.u16_weights);
    // The leader always gets the largest weight; a share that rounds to 0 is dropped.
    assert_eq!(on_chain.uids[0], board.entries[0].uid);
    assert_eq!(on_chain.weights.iter().max(), Some(&u16::MAX));

    // `--listen`: the API serves the same leaderboard and weights after the run.
    let api = report.api.expect("--listen serves the API");
    let served = tests::http::get(api.addr, "/v1/leaderboard")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(served["entries"][0]["uid"], board.entries[0].uid);
    assert_eq!(
        served["entries"].as_array().unwrap().len(),
        board.entries.len()
    );
    let weights = tests::http::get(api.addr, "/v1/weights")
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(weights["set"]["uids"], serde_json::json!(on_chain.uids));
    // And each honest job's per-sample records (two samples, as configured),
    // once the status index (refreshed every second) has seen it finish.
    for entry in &honest {
        let id = entry.job_id.as_ref().expect("a completed entry has a job");
        let path = format!("/v1/jobs/{id}/samples");
        let samples = tests::sandbox::eventually(
            "the job COMPLETED in the index",
            Duration::from_secs(10),
            || async {
                let answer = tests::http::get(api.addr, &path).await?.json()?;
                Ok((answer["status"] == "COMPLETED").then_some(answer))
            },
        )
        .await
        .unwrap();
        assert_eq!(samples["samples"].as_array().unwrap().len(), 2, "{samples}");
    }
    api.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_scores_are_deterministic() {
    let first = run_with_engine(&options(21), CancellationToken::new())
        .await
        .unwrap();
    let second = run_with_engine(&options(21), CancellationToken::new())
        .await
        .unwrap();
    let totals = |r: &embedded::EmbeddedReport| {
        r.leaderboard
            .entries
            .iter()
            .map(|e| (e.hotkey.clone(), e.components))
            .collect::<Vec<_>>()
    };
    // Latency is measured wall time; every other component must match exactly.
    let strip = |v: Vec<(String, Option<common::result::ComponentScores>)>| {
        v.into_iter()
            .map(|(h, c)| (h, c.map(|c| (c.similarity, c.vibe, c.size))))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(totals(&first)), strip(totals(&second)));
}
