//! The whole validator in one process: an in-memory chain with generated
//! miners, the in-memory queue and store, workers running the real engine on
//! generated tiny models, and the real coordinator loop.
//!
//! This crate is the composition root: the one place that links both the
//! coordinator and the worker, so that neither depends on the other (the
//! coordinator image carries no inference engine, the worker image no chain
//! client).
//!
//! It is the quickest way to see the product work end to end, and what the
//! README's first command runs. The miners it creates exercise the rules: a
//! few honest submissions, a copied commit string (invalid), and a repository
//! carrying a pickle file (FAILED before any weight is read).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use common::chain::MemoryChain;
use common::chain_weights::U16Weights;
use common::job::JobStatus;
use common::queue::MemoryQueue;
use common::store::{ClusterClock, MemoryStore, ResultStore};
use common::submission::CommitString;
use tokio_util::sync::CancellationToken;
use tracing::info;
use worker::consumer::{LoopTimings, Worker};
use worker::dataset::Dataset;
use worker::eval::Evaluator;
use worker::fixtures::{TinyModelSpec, write_tiny_model};
use worker::source::LocalDirSource;

use coordinator::api::{self, ApiSettings, ApiState};
use coordinator::leaderboard::{Leaderboard, model_of};
use coordinator::service::{Coordinator, LoopSettings};
use coordinator::view::SharedView;

const VALIDATOR_HOTKEY: &str = "5Validator";

/// Options of the embedded run.
#[derive(Debug, Clone, clap::Args)]
pub struct EmbeddedOptions {
    /// Honest miners, each with its own generated model
    #[arg(long, default_value_t = 3)]
    pub miners: usize,
    /// Workers evaluating in parallel
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Seed of the generated models
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Keep the generated models in this directory instead of a temporary one
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Conversations scored per model (the v1 profile's count is for real models)
    #[arg(long, default_value_t = 6)]
    pub samples: usize,
    /// Give up after this long
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Serve the HTTP API and leaderboard page here during the run and after
    /// it, until Ctrl-C (e.g. 127.0.0.1:8080)
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

/// What the embedded run produced.
#[derive(Debug)]
pub struct EmbeddedReport {
    pub leaderboard: Leaderboard,
    /// Weights as the chain recorded them.
    pub weights_on_chain: Option<(u64, U16Weights)>,
    /// The HTTP API, still serving, when `--listen` was given.
    pub api: Option<ServedApi>,
}

/// The HTTP API of an embedded run, serving until [`ServedApi::stop`].
#[derive(Debug)]
pub struct ServedApi {
    pub addr: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl ServedApi {
    /// Stops taking connections and waits for requests in flight.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await??;
        Ok(())
    }
}

/// Runs the embedded cluster with `evaluator` until every valid submission
/// has a final result, then aggregates and sets weights once.
pub async fn run(
    options: &EmbeddedOptions,
    evaluator: Arc<dyn Evaluator>,
    shutdown: CancellationToken,
) -> anyhow::Result<EmbeddedReport> {
    let temp;
    let work_dir = match &options.work_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let models_dir = work_dir.join("models");
    let chain = Arc::new(MemoryChain::new(1_000, VALIDATOR_HOTKEY, 100));
    chain.register(VALIDATOR_HOTKEY, true);
    populate(&chain, &models_dir, options).await?;
    chain.advance(5);

    let mut profile = common::scoring::ScoringProfile::v1();
    profile.similarity_samples = options.samples;
    profile.vibe_samples = options.samples.div_ceil(2);
    profile.latency_repeats = 2;
    profile.latency_input_tokens = 64;
    profile.max_model_bytes = 1 << 30;
    let queue = Arc::new(MemoryQueue::new(3));
    let store = Arc::new(MemoryStore::new());
    let view = SharedView::default();
    let settings = LoopSettings::new(profile.version.clone(), 100, Duration::from_millis(200));
    let api = match options.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the HTTP API to {addr}"))?;
            let state = ApiState::new(
                store.clone(),
                queue.clone(),
                view.clone(),
                &settings.profile_version,
                settings.dry_run,
                ApiSettings::default(),
            );
            let stop = CancellationToken::new();
            let addr = listener.local_addr()?;
            let task = tokio::spawn(api::serve(listener, state, stop.clone()));
            Some(ServedApi { addr, stop, task })
        }
        None => None,
    };
    let mut coordinator =
        Coordinator::new(chain.clone(), queue.clone(), store.clone(), settings, view);

    let workers_stop = shutdown.child_token();
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..options.workers.max(1) {
        let worker = Worker {
            name: format!("embedded-worker-{i}"),
            queue: queue.clone(),
            store: store.clone(),
            source: Arc::new(LocalDirSource::new(&models_dir)),
            evaluator: evaluator.clone(),
            profile: profile.clone(),
            timings: LoopTimings::default(),
            clock: ClusterClock::default(),
        };
        let stop = workers_stop.clone();
        workers.spawn(async move { worker.run(stop).await });
    }

    let deadline = tokio::time::Instant::now() + options.timeout;
    let outcome = loop {
        let report = coordinator.tick().await?;
        let verdicts = coordinator.view.read().verdicts;
        let mut pending = 0;
        for verdict in &verdicts {
            let Some(commit) = verdict.valid() else {
                continue;
            };
            let id = common::job::JobId::for_model(&model_of(commit), &profile.version);
            let status = store.get(&id).await?.map(|r| r.status);
            if !status.is_some_and(JobStatus::is_final) {
                pending += 1;
            }
        }
        if pending == 0 {
            // Block advances so the final aggregation is due and allowed.
            chain.advance(100);
            let board = coordinator.aggregate(report.block + 100, &verdicts).await?;
            break Ok(board);
        }
        if tokio::time::Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "{pending} evaluations still pending after {:?}",
                options.timeout
            ));
        }
        tokio::select! {
            () = shutdown.cancelled() => break Err(anyhow::anyhow!("interrupted")),
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    };
    workers_stop.cancel();
    while workers.join_next().await.is_some() {}
    let leaderboard = match outcome {
        Ok(board) => board,
        Err(e) => {
            if let Some(api) = api {
                api.stop().await?;
            }
            return Err(e);
        }
    };
    Ok(EmbeddedReport {
        leaderboard,
        weights_on_chain: chain.weights_history().last().cloned(),
        api,
    })
}

/// Registers miners and writes their models: honest ones, a copycat, and a
/// repository with a pickle file.
async fn populate(
    chain: &MemoryChain,
    models_dir: &Path,
    options: &EmbeddedOptions,
) -> anyhow::Result<()> {
    let mut first_commit = None;
    for i in 0..options.miners {
        let hotkey = format!("5Miner{i:02}");
        let name = format!("tiny-rp-{i}");
        let spec = TinyModelSpec {
            seed: options.seed + i as u64,
            ..TinyModelSpec::default()
        };
        let dir = models_dir.join("miner").join(&name);
        tokio::task::spawn_blocking(move || write_tiny_model(&dir, &spec)).await??;
        chain.register(&hotkey, false);
        let commit = CommitString::bound_to("miner", &name, "chatml", &hotkey, None).to_string();
        chain.commit(&hotkey, commit.as_bytes())?;
        first_commit.get_or_insert(commit);
        chain.advance(1);
        info!(%hotkey, model = %name, "miner submitted");
    }
    // Copies the first miner's string onto its own hotkey: the hash binding catches it.
    if let Some(copied) = first_commit {
        chain.register("5Copycat", false);
        chain.commit("5Copycat", copied.as_bytes())?;
    }
    // A repository with a pickle file next to its weights: refused before loading.
    let hostile = models_dir.join("mallory").join("pickled");
    let spec = TinyModelSpec {
        seed: options.seed + 1_000,
        ..TinyModelSpec::default()
    };
    let dir = hostile.clone();
    tokio::task::spawn_blocking(move || write_tiny_model(&dir, &spec)).await??;
    std::fs::write(hostile.join("pytorch_model.bin"), b"\x80\x04pickle")?;
    chain.register("5Mallory", false);
    let commit =
        CommitString::bound_to("mallory", "pickled", "chatml", "5Mallory", None).to_string();
    chain.commit("5Mallory", commit.as_bytes())?;
    Ok(())
}

/// Runs [`run`] with the mistral.rs engine on the built-in dataset.
pub async fn run_with_engine(
    options: &EmbeddedOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<EmbeddedReport> {
    let evaluator = worker::engine::MistralEvaluator::new(Dataset::builtin());
    run(options, Arc::new(evaluator), shutdown).await
}

/// The report as printed by the `embedded` binary.
pub fn render(report: &EmbeddedReport) -> String {
    let mut out = format!("\nLeaderboard at block {}\n\n", report.leaderboard.block);
    out.push_str(&coordinator::leaderboard::render_table(&report.leaderboard));
    match &report.weights_on_chain {
        Some((block, weights)) => {
            out.push_str(&format!(
                "\nWeights set on chain at block {block} (uid: u16 weight):\n"
            ));
            for (uid, weight) in weights.uids.iter().zip(&weights.weights) {
                out.push_str(&format!("  {uid:>4}: {weight}\n"));
            }
        }
        None => out.push_str("\nNo weights set: no model completed its evaluation.\n"),
    }
    out
}
