//! The subtensor client through subxt against the chain double
//! (`tests::chain_double`): commitments read and judged, weights set and
//! normalised by the chain, refusals decoded, commit-reveal across a
//! restart, reconnects and `coordinator submit`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::chain::subtensor::{Hotkey, SubtensorChain, SubtensorOptions};
use common::chain::{Chain, ChainError, WeightsAction};
use common::chain_weights::U16Weights;
use common::submission::{
    CommitString, InvalidReason, ValidationContext, Verdict, validate_submissions,
};
use coordinator::config::WalletOptions;
use coordinator::submit::{SubmitArgs, submit};
use subxt_signer::sr25519::dev;
use tests::chain_double::runtime::{Data, max_upscale_to_u16};
use tests::chain_double::{ChainDouble, DoubleConfig};

const NETUID: u16 = 11;

async fn double(config: DoubleConfig) -> ChainDouble {
    ChainDouble::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// A double whose `WeightsSetRateLimit` is `blocks`, for the tests that
/// depend on it.
async fn rate_limited_double(blocks: u64) -> ChainDouble {
    double(DoubleConfig {
        weights_rate_limit: blocks,
        ..DoubleConfig::default()
    })
    .await
}

fn client(
    double: &ChainDouble,
    hotkey: Option<Hotkey>,
    state_dir: Option<&Path>,
) -> SubtensorChain {
    let mut options = SubtensorOptions::new(double.url(), NETUID, state_dir.map(Path::to_owned));
    options.call_timeout = Duration::from_secs(30);
    SubtensorChain::new(options, hotkey).unwrap()
}

/// A client without its own checks before submitting: the chain itself
/// refuses what it refuses.
fn unchecked_client(double: &ChainDouble, hotkey: Hotkey) -> SubtensorChain {
    let mut options = SubtensorOptions::new(double.url(), NETUID, None);
    options.precheck = false;
    SubtensorChain::new(options, Some(hotkey)).unwrap()
}

/// `coordinator submit` of `repo` to the double, signed with `hotkey_file`.
fn submit_args(double: &ChainDouble, repo: &str, hotkey_file: PathBuf) -> SubmitArgs {
    SubmitArgs {
        repo: repo.into(),
        chat_template: "chatml".into(),
        competition_id: None,
        network: double.url(),
        netuid: NETUID,
        wallet: WalletOptions {
            hotkey_file: Some(hotkey_file),
            ..WalletOptions::default()
        },
        coordinator_url: "http://coordinator:8080".into(),
        dry_run: false,
    }
}

fn key(keypair: subxt_signer::sr25519::Keypair) -> Hotkey {
    Hotkey::from_keypair(keypair)
}

/// Registers Alice as the validator (uid 0), then `miners`: Alice's key.
fn validator_and_miners(double: &ChainDouble, miners: &[subxt_signer::sr25519::Keypair]) -> Hotkey {
    let validator = key(dev::alice());
    double.register(validator.public_key(), true);
    for miner in miners {
        double.register(miner.public_key().0, false);
    }
    validator
}

fn judge(snapshot: &common::chain::ChainSnapshot) -> BTreeMap<u16, Verdict> {
    validate_submissions(
        &snapshot.hotkeys(),
        &snapshot.commitments,
        ValidationContext {
            current_block: snapshot.block,
            epoch_start_block: 0,
        },
    )
    .into_iter()
    .map(|v| (v.uid, v))
    .collect()
}

#[tokio::test]
async fn commitments_of_several_miners_are_read_and_judged() {
    let double = double(DoubleConfig::default()).await;
    let (validator, good, copier, garbled, early) = (
        key(dev::alice()),
        key(dev::bob()),
        key(dev::charlie()),
        key(dev::dave()),
        key(dev::eve()),
    );
    assert_eq!(double.register(validator.public_key(), true), 0);
    for miner in [&good, &copier, &garbled, &early] {
        double.register(miner.public_key(), false);
    }
    // Real extrinsics through subxt for the honest miner and the copier.
    let honest = CommitString::bound_to("alice", "rp-7b", "chatml", good.ss58(), None).to_string();
    let good_block = client(&double, Some(good.clone()), None)
        .set_commitment(honest.as_bytes())
        .await
        .unwrap();
    client(&double, Some(copier.clone()), None)
        .set_commitment(honest.as_bytes())
        .await
        .unwrap();
    // Storage written directly: an unparsable string and a block ahead of the chain.
    let now = double.block_number();
    double.set_commitment(garbled.public_key(), b"not a commit string", now);
    let future = CommitString::bound_to("eve", "m", "chatml", early.ss58(), None).to_string();
    double.set_commitment(early.public_key(), future.as_bytes(), now + 50);

    let snapshot = client(&double, None, None).snapshot().await.unwrap();
    assert_eq!(snapshot.block, double.block_number());
    assert_eq!(snapshot.neurons.len(), 5);
    assert_eq!(snapshot.neurons[0].hotkey, validator.ss58());
    assert!(snapshot.neurons[0].validator_permit);
    assert!(!snapshot.neurons[1].validator_permit);
    assert_eq!(snapshot.neurons[1].registered_at_block, 1_000);
    assert!(snapshot.timestamp_ms.is_some());
    assert_eq!(snapshot.commitments.len(), 4);

    let verdicts = judge(&snapshot);
    assert_eq!(verdicts[&0].outcome, Err(InvalidReason::NoCommitment));
    assert_eq!(verdicts[&1].block, Some(good_block));
    assert_eq!(
        verdicts[&1].valid().map(CommitString::repo_id).as_deref(),
        Some("alice/rp-7b")
    );
    assert!(
        matches!(
            verdicts[&2].outcome,
            Err(InvalidReason::HashMismatch { .. })
        ),
        "{:?}",
        verdicts[&2]
    );
    assert!(
        matches!(verdicts[&3].outcome, Err(InvalidReason::Malformed { .. })),
        "{:?}",
        verdicts[&3]
    );
    assert_eq!(
        verdicts[&4].outcome,
        Err(InvalidReason::FutureBlock {
            block: now + 50,
            current: snapshot.block
        })
    );
}

/// Log lines written while the guard lives (this thread only).
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_commitment_that_is_not_raw_is_named_and_warned_about_once() {
    let logs = Logs::default();
    let writer = logs.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let double = double(DoubleConfig::default()).await;
    let miner = key(dev::bob());
    double.register(dev::alice().public_key().0, true);
    let uid = double.register(miner.public_key(), false);
    let block = double.block_number();
    double.set_commitment_field(miner.public_key(), Data::Sha256([7; 32]), block);
    let chain = client(&double, None, None);
    for _ in 0..3 {
        let snapshot = chain.snapshot().await.unwrap();
        let verdict = &judge(&snapshot)[&uid];
        assert_eq!(verdict.block, Some(block));
        let reason = verdict.outcome.clone().unwrap_err();
        assert_eq!(
            reason,
            InvalidReason::NotRaw {
                found: "a `Sha256` field".into()
            }
        );
        assert!(reason.to_string().contains("not raw bytes"), "{reason}");
    }
    assert_eq!(logs.count("commitment is not raw bytes"), 1);
    // Another commitment of the same hotkey is warned about again, once.
    double.set_commitment_field(miner.public_key(), Data::Sha256([8; 32]), block + 1);
    chain.snapshot().await.unwrap();
    chain.snapshot().await.unwrap();
    assert_eq!(logs.count("commitment is not raw bytes"), 2);
}

#[tokio::test]
async fn weights_are_set_normalised_by_the_chain_and_rate_limited() {
    let double = rate_limited_double(100).await;
    let validator = validator_and_miners(&double, &[dev::bob(), dev::charlie(), dev::dave()]);
    let chain = client(&double, Some(validator.clone()), None);
    // Not max-scaled: the chain upscales so the largest is 65535 (truncating) and drops zeros.
    let weights = U16Weights {
        uids: vec![1, 2, 3],
        weights: vec![30_000, 10_001, 0],
    };
    let receipt = chain.set_weights(&weights, 1).await.unwrap();
    assert_eq!(receipt.action, WeightsAction::Set);
    assert_eq!(receipt.block, double.block_number());
    // 10_001 × 65535 / 30_000 = 21847.18…
    assert_eq!(double.weights(0), vec![(1, 65_535), (2, 21_847)]);
    assert_eq!(
        max_upscale_to_u16(&[30_000, 10_001, 0]),
        vec![65_535, 21_847, 0]
    );
    let snapshot = chain.snapshot().await.unwrap();
    assert_eq!(snapshot.neurons[0].last_update, receipt.block);

    // Too soon: the client's own check refuses before paying for an extrinsic.
    let err = chain.set_weights(&weights, 1).await.unwrap_err();
    assert!(
        matches!(&err, ChainError::Refused(m) if m.contains("SettingWeightsTooFast") && m.contains(&format!("next allowed at block {}", receipt.block + 100))),
        "{err}"
    );
    // Without the check, the chain itself refuses and subxt decodes its module error.
    let unchecked = unchecked_client(&double, validator.clone());
    let err = unchecked.set_weights(&weights, 1).await.unwrap_err();
    assert_eq!(
        err,
        ChainError::Refused("SubtensorModule.SettingWeightsTooFast".into())
    );
    assert_eq!(double.weights(0), vec![(1, 65_535), (2, 21_847)]);
    // A miner without a validator permit is refused by the chain too.
    let miner = unchecked_client(&double, key(dev::bob()));
    assert_eq!(
        miner.set_weights(&weights, 1).await.unwrap_err(),
        ChainError::Refused("SubtensorModule.NeuronNoValidatorPermit".into())
    );

    double.advance(100);
    let again = chain.set_weights(&weights, 1).await.unwrap();
    assert!(again.block >= receipt.block + 100);
    let applied = double.applied();
    assert_eq!(
        applied
            .iter()
            .filter(|(_, name, r)| name == "set_weights" && r.is_ok())
            .count(),
        2
    );
}

#[tokio::test]
async fn a_new_client_on_the_same_state_directory_reveals_the_commit() {
    let double = double(DoubleConfig {
        tempo: 10,
        weights_rate_limit: 0,
        ..DoubleConfig::default()
    })
    .await;
    double.set_commit_reveal(true);
    let validator = validator_and_miners(&double, &[dev::bob(), dev::charlie()]);
    let state = tempfile::tempdir().unwrap();
    let weights = U16Weights {
        uids: vec![1, 2],
        weights: vec![65_535, 40_000],
    };

    let first = client(&double, Some(validator.clone()), Some(state.path()));
    let receipt = first.set_weights(&weights, 7).await.unwrap();
    assert_eq!(receipt.action, WeightsAction::Committed);
    let pending = double.pending_commits(validator.public_key());
    assert_eq!(pending.len(), 1);
    let (_, commit_block, first_reveal, last_reveal) = pending[0];
    assert_eq!(commit_block, receipt.block);
    assert!(first_reveal > commit_block && last_reveal >= first_reveal);
    assert!(double.weights(0).is_empty());
    assert!(state.path().join("weight_commits.json").exists());
    // Before the window nothing is revealed.
    assert!(first.reveal_due().await.unwrap().is_empty());
    drop(first);

    // A new client (a restarted coordinator) with the same state directory.
    double.advance(first_reveal - 1 - double.block_number());
    let second = client(&double, Some(validator.clone()), Some(state.path()));
    let outcomes = second.reveal_due().await.unwrap();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    let revealed = outcomes.into_iter().next().unwrap().unwrap();
    assert_eq!(revealed.action, WeightsAction::Revealed);
    assert!(revealed.block >= first_reveal && revealed.block <= last_reveal);
    assert_eq!(double.weights(0), vec![(1, 65_535), (2, 40_000)]);
    assert!(double.pending_commits(validator.public_key()).is_empty());
    // Revealed commits are forgotten: nothing left to do.
    assert!(second.reveal_due().await.unwrap().is_empty());
    let file = std::fs::read_to_string(state.path().join("weight_commits.json")).unwrap();
    assert!(file.contains("\"commits\": []"), "{file}");
}

#[tokio::test]
async fn a_too_early_commit_is_refused_with_the_commit_error() {
    let double = rate_limited_double(100).await;
    double.set_commit_reveal(true);
    let validator = validator_and_miners(&double, &[dev::bob()]);
    let state = tempfile::tempdir().unwrap();
    let weights = U16Weights {
        uids: vec![1],
        weights: vec![65_535],
    };
    let chain = client(&double, Some(validator.clone()), Some(state.path()));
    let receipt = chain.set_weights(&weights, 1).await.unwrap();
    assert_eq!(receipt.action, WeightsAction::Committed);
    // The client's check names the error `commit_weights` would answer…
    let err = chain.set_weights(&weights, 1).await.unwrap_err();
    assert!(
        matches!(&err, ChainError::Refused(m) if m.starts_with("SubtensorModule.CommittingWeightsTooFast (checked before submitting")
            && m.contains(&format!("next allowed at block {}", receipt.block + 100))),
        "{err}"
    );
    // …which is what the chain itself answers without the check.
    let unchecked = unchecked_client(&double, validator);
    assert_eq!(
        unchecked.set_weights(&weights, 1).await.unwrap_err(),
        ChainError::Refused("SubtensorModule.CommittingWeightsTooFast".into())
    );
}

#[tokio::test]
async fn a_uri_key_file_signs_what_the_chain_accepts() {
    let double = double(DoubleConfig::default()).await;
    let alice = Hotkey::from_file(&tests::hotkey_fixture("alice-uri.json")).unwrap();
    double.register(alice.public_key(), true);
    double.register(dev::bob().public_key().0, false);
    let chain = client(&double, Some(alice), None);
    let weights = U16Weights {
        uids: vec![1],
        weights: vec![65_535],
    };
    let receipt = chain.set_weights(&weights, 1).await.unwrap();
    assert_eq!(receipt.action, WeightsAction::Set);
    assert_eq!(double.weights(0), vec![(1, 65_535)]);
}

#[tokio::test]
async fn a_dropped_connection_is_reestablished() {
    let mut double = double(DoubleConfig::default()).await;
    double.register(dev::alice().public_key().0, true);
    let mut options = SubtensorOptions::new(double.url(), NETUID, None);
    let reconnects = prometheus::IntCounter::new("reconnects", "test").unwrap();
    options.reconnects = Some(reconnects.clone());
    options.call_timeout = Duration::from_secs(10);
    let chain = SubtensorChain::new(options, None).unwrap();
    assert_eq!(chain.snapshot().await.unwrap().neurons.len(), 1);

    double.stop_server().await;
    let err = chain.snapshot().await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    double.restart_server().await.unwrap();
    double.advance(3);
    // The first retry waits out the backoff (0.5 to 1 s), then reconnects.
    let mut snapshot = None;
    for _ in 0..50 {
        match chain.snapshot().await {
            Ok(s) => {
                snapshot = Some(s);
                break;
            }
            Err(e) => {
                assert!(e.is_transient(), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let snapshot = snapshot.expect("reconnected");
    assert_eq!(snapshot.block, double.block_number());
    assert_eq!(reconnects.get(), 1);
}

#[tokio::test]
async fn submit_writes_a_commitment_the_watcher_sees() {
    let double = double(DoubleConfig::default()).await;
    let miner = Hotkey::from_file(&tests::hotkey_fixture("dev.json")).unwrap();
    double.register(dev::alice().public_key().0, true);
    let uid = double.register(miner.public_key(), false);
    let submitted = submit(submit_args(
        &double,
        "dippy/roleplay-7b",
        tests::hotkey_fixture("dev.json"),
    ))
    .await
    .unwrap();
    assert_eq!(submitted.hotkey, miner.ss58());
    assert_eq!(
        submitted.status_url,
        format!(
            "http://coordinator:8080/v1/models/dippy/roleplay-7b?hotkey={}&chat_template=chatml",
            miner.ss58()
        )
    );
    let block = submitted.block.unwrap();
    let snapshot = client(&double, None, None).snapshot().await.unwrap();
    let verdicts = judge(&snapshot);
    let verdict = &verdicts[&uid];
    assert_eq!(verdict.block, Some(block));
    let commit = verdict.valid().expect("the submitted commitment is valid");
    assert_eq!(commit.repo_id(), "dippy/roleplay-7b");
    assert!(commit.is_bound_to(miner.ss58()));

    // An unregistered hotkey cannot commit: the chain's refusal is reported.
    let stranger = tests::hotkey_fixture("other.json");
    let err = submit(submit_args(&double, "x/y", stranger))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("Commitments.AccountNotAllowedCommit"),
        "{err:#}"
    );
}

#[test]
fn submit_into_a_closed_pipe_exits_quietly() {
    // `coordinator submit … | head -2` with the reader already gone: every write
    // to stdout fails with EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(tests::sandbox::binary("coordinator").unwrap())
        .args(["submit", "alice/rp-7b", "--dry-run", "--hotkey-file"])
        .arg(tests::hotkey_fixture("dev.json"))
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("error"),
        "{stderr}"
    );
}

#[allow(dead_code)]
fn _assert_send(chain: Arc<SubtensorChain>) -> Arc<dyn Chain> {
    chain
}

mod coordinator_on_subtensor {
    use std::sync::Arc;
    use std::time::Duration;

    use common::chain::subtensor::{Hotkey, SubtensorChain, SubtensorOptions};
    use common::job::JobId;
    use common::queue::MemoryQueue;
    use common::store::testsuite::claim_and_complete;
    use common::store::{Lease, MemoryStore, ResultStore};
    use common::submission::CommitString;
    use coordinator::leaderboard::model_of;
    use coordinator::service::{Coordinator, LoopSettings};
    use coordinator::view::SharedView;
    use subxt_signer::sr25519::dev;
    use tests::chain_double::{ChainDouble, DoubleConfig};

    use super::{NETUID, client, double, key, rate_limited_double};

    /// Two miners (Bob, then Charlie) committed to models `ns/m0` and
    /// `ns/m1`, and a coordinator on the double signing as Alice, with a
    /// store the test completes jobs in.
    struct Subnet {
        miners: [Hotkey; 2],
        ids: Vec<JobId>,
        store: Arc<MemoryStore>,
        coordinator: Coordinator,
    }

    async fn subnet(double: &ChainDouble, precheck: bool) -> Subnet {
        let validator = key(dev::alice());
        double.register(validator.public_key(), true);
        let miners = [key(dev::bob()), key(dev::charlie())];
        let mut ids = Vec::new();
        for (i, miner) in miners.iter().enumerate() {
            double.register(miner.public_key(), false);
            let commit =
                CommitString::bound_to("ns", format!("m{i}"), "chatml", miner.ss58(), None);
            client(double, Some(miner.clone()), None)
                .set_commitment(commit.to_string().as_bytes())
                .await
                .unwrap();
            ids.push(JobId::for_model(&model_of(&commit), "v1"));
        }
        let mut options = SubtensorOptions::new(double.url(), NETUID, None);
        options.precheck = precheck;
        let chain = Arc::new(SubtensorChain::new(options, Some(validator)).unwrap());
        let store = Arc::new(MemoryStore::new());
        let coordinator = Coordinator::new(
            chain,
            Arc::new(MemoryQueue::new(5)),
            store.clone(),
            LoopSettings::new("v1", 1, Duration::from_millis(10)),
            SharedView::default(),
        );
        Subnet {
            miners,
            ids,
            store,
            coordinator,
        }
    }

    #[tokio::test]
    async fn weights_reach_the_chain_and_refusals_reach_the_view_and_metrics() {
        let double = double(DoubleConfig::default()).await;
        // No precheck: let the chain itself refuse.
        let Subnet {
            ids,
            store,
            mut coordinator,
            ..
        } = subnet(&double, false).await;
        let report = coordinator.tick().await.unwrap();
        assert_eq!(report.valid, 2);
        assert_eq!(report.reconciled.published.len(), 2);
        for (id, total) in ids.iter().zip([0.4, 0.9]) {
            claim_and_complete(store.as_ref(), id, total).await;
        }
        double.advance(1);
        let report = coordinator.tick().await.unwrap();
        assert!(report.aggregated);
        let status = coordinator.view.read().weights;
        let set_at = status.set_at_block.expect("weights set");
        let on_chain = double.weights(0);
        assert!(!on_chain.is_empty());
        assert_eq!(on_chain.iter().map(|(_, w)| *w).max(), Some(u16::MAX));
        assert_eq!(
            status.set.as_ref().map(|w| w.uids.clone()),
            Some(on_chain.iter().map(|(u, _)| *u).collect())
        );

        // Again at once: the chain's rate limit refuses; the decoded error is in the view and metrics.
        let refused = coordinator::metrics::WEIGHT_SETS.with_label_values(&["refused"]);
        let before = refused.get();
        let verdicts = coordinator.view.read().verdicts;
        coordinator.aggregate(0, &verdicts).await.unwrap();
        let status = coordinator.view.read().weights;
        assert_eq!(
            status.last_error.as_deref(),
            Some("chain refused the call: SubtensorModule.SettingWeightsTooFast")
        );
        assert_eq!(status.set_at_block, Some(set_at));
        assert_eq!(refused.get(), before + 1);
    }

    #[tokio::test]
    async fn a_miner_who_recommits_keeps_their_weight_until_the_new_result() {
        let double = rate_limited_double(1).await;
        let Subnet {
            miners,
            ids,
            store,
            mut coordinator,
        } = subnet(&double, true).await;
        coordinator.tick().await.unwrap();
        // Bob's model is the better one.
        for (id, total) in ids.iter().zip([0.9, 0.4]) {
            claim_and_complete(store.as_ref(), id, total).await;
        }
        double.advance(2);
        coordinator.tick().await.unwrap();
        let before = double.weights(0);
        let uid_of_bob = coordinator
            .view
            .read()
            .leaderboard
            .entries
            .iter()
            .find(|e| e.hotkey == miners[0].ss58())
            .unwrap()
            .uid;
        let weight_of = |weights: &[(u16, u16)], uid: u16| {
            weights.iter().find(|(u, _)| *u == uid).map(|(_, w)| *w)
        };
        assert_eq!(weight_of(&before, uid_of_bob), Some(u16::MAX));

        // Bob commits a new model: while it waits and runs, his old score
        // still sets his weight, and the API shows both models.
        let recommit = CommitString::bound_to("ns", "m0-v2", "chatml", miners[0].ss58(), None);
        client(&double, Some(miners[0].clone()), None)
            .set_commitment(recommit.to_string().as_bytes())
            .await
            .unwrap();
        let new_id = JobId::for_model(&model_of(&recommit), "v1");
        double.advance(2);
        coordinator.tick().await.unwrap();
        let pending = store.get(&new_id).await.unwrap().unwrap();
        assert_eq!(pending.status, common::job::JobStatus::Queued);
        assert_eq!(weight_of(&double.weights(0), uid_of_bob), Some(u16::MAX));
        let board =
            coordinator::api::routes::leaderboard_response(&coordinator.view.read().leaderboard);
        let bob = board.entries.iter().find(|e| e.uid == uid_of_bob).unwrap();
        assert_eq!(bob.model.as_ref().unwrap().name, "m0");
        assert_eq!(bob.score, 0.9);
        let shown = bob
            .pending
            .as_ref()
            .expect("the new model is shown as pending");
        assert_eq!(
            (shown.model.name.as_str(), shown.job_id.as_str()),
            ("m0-v2", new_id.as_str())
        );

        // The new model fails: Bob loses his weight.
        store
            .claim(
                &pending.job,
                Lease::new("w", common::clock::now_ms(), Duration::from_secs(60)),
            )
            .await
            .unwrap();
        let failed = common::result::ResultMessage::V1(common::result::ResultV1 {
            outcome: common::result::Outcome::Failed(common::result::FailureReason::new(
                common::result::FailureCode::NanOutput,
                "NaN logits",
            )),
            ..common::store::testsuite::completed(&pending.job, 0.0, "w")
                .result()
                .clone()
        });
        store.finish(&failed).await.unwrap();
        double.advance(2);
        coordinator.tick().await.unwrap();
        assert_eq!(weight_of(&double.weights(0), uid_of_bob), None);
        let bob = coordinator
            .view
            .read()
            .leaderboard
            .entries
            .into_iter()
            .find(|e| e.uid == uid_of_bob)
            .unwrap();
        assert_eq!((bob.score, bob.pending.is_none()), (0.0, true));
    }
}
