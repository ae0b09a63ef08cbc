//! The whole cluster as separate OS processes on loopback, the way a
//! validator runs it: the chain double (`chain-double`), the local Hugging
//! Face endpoint (`hub-server`) serving generated models, the coordinator
//! (`coordinator run` on the double, with its HTTP API) and workers (`worker
//! run` downloading from the endpoint), against the real RabbitMQ and Redis
//! under the [`Sandbox`]'s own queue and key prefix, so clusters of several
//! tests run side by side and leave nothing behind ([`Cluster::cleanup`]).
//!
//! The test drives the chain through the double's `double_*` RPC methods
//! (register hotkeys, write commitments, read weights), reads what a miner
//! sees through the API, and checks results in Redis.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use common::chain::Chain;
use common::chain::subtensor::{SubtensorChain, SubtensorOptions};
use common::chain_weights::{Contender, U16Weights, WeightsParams, compute_weights, to_u16};
use common::job::{JobId, ModelRef};
use common::result::Outcome;
use common::scoring::{JudgeSettings, ScoringProfile};
use common::store::ResultStore;
use common::submission::{CommitString, ValidationContext, validate_submissions};
use serde_json::Value;
use subxt::rpcs::{RpcClient, rpc_params};

use crate::http::{Answer, request};
use crate::sandbox::{Process, Sandbox, eventually};

/// The subnet the double holds.
pub const NETUID: u16 = 11;

/// How the cluster is set up.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    pub workers: usize,
    /// Conversations scored per model (the tiny models take ~10 ms each).
    pub samples: usize,
    /// The chain makes a block every this often.
    pub block_time: Duration,
    /// `WeightsSetRateLimit` of the double, in blocks.
    pub weights_rate_limit: u64,
    /// The coordinator aggregates and sets weights every this many blocks.
    pub aggregate_every_blocks: u64,
    /// Worker lease (a killed worker's job is re-published after it).
    pub lease: Duration,
    /// A model directory served by the hub as `judges/judge`: the coordinator
    /// and the workers then score with a v2 profile whose judge is it,
    /// pinned to the hub's commit.
    pub judge: Option<PathBuf>,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            samples: 8,
            block_time: Duration::from_millis(500),
            weights_rate_limit: 2,
            aggregate_every_blocks: 2,
            lease: Duration::from_secs(3),
            judge: None,
        }
    }
}

/// The repository id the judge of [`ClusterSettings::judge`] is served under.
pub const JUDGE_REPO: &str = "judges/judge";

/// A miner of the test: a registered hotkey and the model it commits.
#[derive(Debug, Clone)]
pub struct Miner {
    pub hotkey: String,
    pub uid: u16,
    pub model: ModelRef,
    /// The cluster's scoring profile version.
    pub profile: String,
}

impl Miner {
    pub fn job_id(&self) -> JobId {
        JobId::for_model(&self.model, &self.profile)
    }

    /// The miner's status query.
    pub fn status_path(&self) -> String {
        format!(
            "/v1/models/{}/{}?hotkey={}&chat_template={}",
            self.model.namespace, self.model.name, self.hotkey, self.model.chat_template
        )
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct Cluster {
    pub sandbox: Sandbox,
    pub settings: ClusterSettings,
    pub chain: Process,
    pub chain_url: String,
    rpc: RpcClient,
    pub hub: Process,
    pub hub_url: String,
    pub coordinator: Option<Process>,
    /// The coordinator's API address (the last one started).
    pub api: Option<SocketAddr>,
    pub workers: Vec<Process>,
    pub validator_uid: u16,
    /// The profile every process scores with, and its files.
    pub profile: ScoringProfile,
    profile_files: (PathBuf, PathBuf),
    coordinators_started: usize,
}

/// The validator's hotkey file (the well-known development phrase).
pub fn validator_hotkey_file() -> PathBuf {
    crate::hotkey_fixture("dev.json")
}

impl Cluster {
    /// Starts the chain double, the hub endpoint, the coordinator and
    /// `settings.workers` workers.
    pub async fn start(test: &str, settings: ClusterSettings) -> Result<Self> {
        let sandbox = Sandbox::new(test).await?;
        let dir = sandbox.dir.path().to_path_buf();
        let block_ms = settings.block_time.as_millis().to_string();
        let chain = Process::spawn(
            &dir,
            "chain-double",
            "chain",
            &os_args(&[
                "--log-format",
                "json",
                "--listen",
                "127.0.0.1:0",
                "--netuid",
                &NETUID.to_string(),
                "--weights-rate-limit",
                &settings.weights_rate_limit.to_string(),
                "--block-time-ms",
                &block_ms,
            ]),
        )?;
        let event = chain
            .wait_event("chain double listening", Duration::from_secs(30))
            .await?;
        let addr = event["addr"].as_str().context("chain double address")?;
        let chain_url = format!("ws://{addr}");
        let rpc = RpcClient::from_insecure_url(&chain_url)
            .await
            .context("connecting to the chain double")?;
        let validator = common::chain::subtensor::Hotkey::from_file(&validator_hotkey_file())?;
        let validator_uid: u16 = rpc
            .request("double_register", rpc_params![validator.ss58(), true])
            .await?;

        let models = sandbox.models_dir();
        let hub = Process::spawn(
            &dir,
            "hub-server",
            "hub",
            &[
                "--log-format".into(),
                "json".into(),
                "--root".into(),
                models.clone().into(),
            ],
        )?;
        let event = hub
            .wait_event("hub listening", Duration::from_secs(30))
            .await?;
        let hub_url = event["url"].as_str().context("hub url")?.to_owned();

        let judge = match &settings.judge {
            None => None,
            Some(dir) => {
                std::fs::create_dir_all(models.join("judges"))?;
                std::os::unix::fs::symlink(dir, models.join(JUDGE_REPO))?;
                Some(JudgeSettings {
                    repo: JUDGE_REPO.into(),
                    revision: crate::hub::HubServer::commit_of(JUDGE_REPO),
                    chat_template: "chatml".into(),
                    samples: 1,
                    reply_tokens: 64,
                })
            }
        };
        let (profile, profile_files) = sandbox.profile_files("cluster", settings.samples, judge)?;

        let mut cluster = Self {
            sandbox,
            settings,
            chain,
            chain_url,
            rpc,
            hub,
            hub_url,
            coordinator: None,
            api: None,
            workers: Vec::new(),
            validator_uid,
            profile,
            profile_files,
            coordinators_started: 0,
        };
        cluster.start_coordinator().await?;
        for i in 0..cluster.settings.workers {
            cluster.start_worker(&format!("worker-{i}"))?;
        }
        Ok(cluster)
    }

    /// Starts (or restarts) `coordinator run` on the chain double; waits for its API.
    pub async fn start_coordinator(&mut self) -> Result<SocketAddr> {
        self.coordinators_started += 1;
        let name = format!("coordinator-{}", self.coordinators_started);
        let dir = self.sandbox.dir.path();
        let mut args = os_args(&[
            "--log-format",
            "json",
            "run",
            "--subtensor.network",
            &self.chain_url,
            "--netuid",
            &NETUID.to_string(),
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "300ms",
            "--status-refresh",
            "200ms",
            "--aggregate-every-blocks",
            &self.settings.aggregate_every_blocks.to_string(),
            "--api-rate-limit",
            "0",
            // Lost messages (a purged queue) are replaced within seconds.
            "--publish-stale-after",
            "2s",
        ]);
        args.extend(["--hotkey-file".into(), validator_hotkey_file().into()]);
        args.extend(["--state-dir".into(), dir.join("state").into()]);
        if self.profile.judge.is_some() {
            args.extend(["--profile".into(), self.profile_files.0.clone().into()]);
        }
        args.extend(self.sandbox.connection_args());
        let process = Process::spawn(dir, "coordinator", &name, &args)?;
        let event = process
            .wait_event("http api listening", Duration::from_secs(60))
            .await?;
        let addr: SocketAddr = event["addr"].as_str().context("api address")?.parse()?;
        self.coordinator = Some(process);
        self.api = Some(addr);
        Ok(addr)
    }

    /// Starts one more `worker run` fetching from the hub endpoint.
    pub fn start_worker(&mut self, name: &str) -> Result<()> {
        let profile = &self.profile_files;
        let lease = humantime::format_duration(self.settings.lease).to_string();
        let heartbeat = humantime::format_duration(self.settings.lease / 3).to_string();
        let cache = self.sandbox.dir.path().join(format!("hf-cache-{name}"));
        let args = [
            format!("--hf-endpoint={}", self.hub_url),
            format!("--hf-cache-dir={}", cache.display()),
            format!("--lease={lease}"),
            format!("--heartbeat={heartbeat}"),
            format!("--profile={}", profile.0.display()),
            format!("--dataset={}", profile.1.display()),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let worker = self.sandbox.spawn_worker(name, &args)?;
        self.workers.push(worker);
        Ok(())
    }

    /// The JSON-RPC connection to the chain double (its `double_*` methods).
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    /// The coordinator's API address.
    pub fn api(&self) -> Result<SocketAddr> {
        self.api.context("no coordinator started")
    }

    /// `GET path` on the coordinator's API.
    pub async fn get(&self, path: &str) -> Result<Answer> {
        request(self.api()?, "GET", path, &[], "").await
    }

    /// Registers the hotkey of `seed` on the double and returns it with its uid.
    pub async fn register(&self, seed: u8) -> Result<(String, u16)> {
        let keypair = subxt_signer::sr25519::Keypair::from_secret_key([seed; 32])
            .map_err(|e| anyhow::anyhow!("keypair: {e:?}"))?;
        let hotkey = subxt::utils::AccountId32(keypair.public_key().0).to_string();
        let uid: u16 = self
            .rpc
            .request("double_register", rpc_params![hotkey.clone(), false])
            .await?;
        Ok((hotkey, uid))
    }

    /// Writes `data` as `hotkey`'s commitment at the current block (the
    /// storage path; `coordinator submit` is the extrinsic path).
    pub async fn set_commitment(&self, hotkey: &str, data: &str) -> Result<()> {
        let _: Value = self
            .rpc
            .request("double_setCommitment", rpc_params![hotkey, data])
            .await?;
        Ok(())
    }

    /// An honest miner: a generated model on the hub (`seed`), a fresh
    /// hotkey, and the commit string bound to it.
    pub async fn honest_miner(&self, name: &str, seed: u8) -> Result<Miner> {
        self.miner_with(name, seed, "chatml", |_| Ok(())).await
    }

    /// A miner whose repository is the generated model of `seed` changed by
    /// `damage` (given the repository directory), committed with
    /// `chat_template` under a fresh hotkey.
    pub async fn miner_with(
        &self,
        name: &str,
        seed: u8,
        chat_template: &str,
        damage: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Miner> {
        let mut model = self
            .sandbox
            .tiny_model("miners", name, u64::from(seed))
            .await?;
        damage(&self.sandbox.models_dir().join("miners").join(name))?;
        model.chat_template = chat_template.into();
        let (hotkey, uid) = self.register(seed).await?;
        let commit =
            CommitString::bound_to(&model.namespace, &model.name, chat_template, &hotkey, None);
        self.set_commitment(&hotkey, &commit.to_string()).await?;
        Ok(Miner {
            hotkey,
            uid,
            model,
            profile: self.profile.version.clone(),
        })
    }

    /// The validator's weights as the chain stores them, by uid.
    pub async fn weights_on_chain(&self) -> Result<BTreeMap<u16, u16>> {
        let pairs: Vec<(u16, u16)> = self
            .rpc
            .request("double_weights", rpc_params![self.validator_uid])
            .await?;
        Ok(pairs.into_iter().collect())
    }

    /// The weights `common` computes from the chain's commitments and the
    /// scores stored in Redis (independently of the coordinator's
    /// aggregator), as the chain would store them (zeros dropped).
    pub async fn expected_weights(&self) -> Result<BTreeMap<u16, u16>> {
        let chain =
            SubtensorChain::new(SubtensorOptions::new(&self.chain_url, NETUID, None), None)?;
        let snapshot = chain.snapshot().await?;
        let verdicts = validate_submissions(
            &snapshot.hotkeys(),
            &snapshot.commitments,
            ValidationContext {
                current_block: snapshot.block,
                epoch_start_block: 0,
            },
        );
        let mut contenders = Vec::new();
        for verdict in &verdicts {
            let Some(commit) = verdict.valid() else {
                continue;
            };
            let model = coordinator::leaderboard::model_of(commit);
            let record = self
                .sandbox
                .store
                .get(&JobId::for_model(&model, &self.profile.version))
                .await?;
            let score = match record.and_then(|r| r.result).map(|r| r.outcome) {
                Some(Outcome::Completed(scores)) => scores.total,
                _ => 0.0,
            };
            contenders.push(Contender {
                uid: verdict.uid,
                score,
                block: verdict.block.unwrap_or(u64::MAX),
                valid: true,
            });
        }
        let U16Weights { uids, weights } =
            to_u16(&compute_weights(&contenders, &WeightsParams::default()));
        Ok(uids
            .into_iter()
            .zip(weights)
            .filter(|(_, w)| *w > 0)
            .collect())
    }

    /// Waits until the weights on chain are [`Self::expected_weights`] (read
    /// once, now); returns them.
    pub async fn wait_weights_on_chain(&self) -> Result<BTreeMap<u16, u16>> {
        let expected = self.expected_weights().await?;
        eventually(
            "the weights on chain to match the stored scores",
            Duration::from_secs(60),
            || async {
                let on_chain = self.weights_on_chain().await?;
                Ok((on_chain == expected).then_some(on_chain))
            },
        )
        .await
    }

    /// Polls the miner's status query until `accept` takes the answer.
    pub async fn wait_status(
        &self,
        miner: &Miner,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let path = miner.status_path();
        eventually(what, timeout, || async {
            // The coordinator may be restarting: an unanswered request is "not yet".
            let Ok(answer) = self.get(&path).await else {
                return Ok(None);
            };
            if answer.status != 200 {
                return Ok(None);
            }
            let body = answer.json()?;
            Ok(accept(&body).then_some(body))
        })
        .await
    }

    /// Stops every process (coordinator and workers with SIGTERM, checking
    /// they exit cleanly), then deletes the sandbox's queues and keys.
    pub async fn shutdown(mut self) -> Result<()> {
        for worker in &mut self.workers {
            if worker.is_running() {
                worker.stop().await?;
            }
        }
        if let Some(coordinator) = &mut self.coordinator {
            coordinator.stop().await?;
        }
        ensure!(self.chain.is_running(), "the chain double died");
        self.sandbox.cleanup().await
    }
}

fn os_args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(Into::into).collect()
}
