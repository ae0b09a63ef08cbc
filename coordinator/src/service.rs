//! The coordinator's loop: read the chain, enqueue jobs, reconcile the queue
//! with the store, aggregate results into a leaderboard and set weights.
//!
//! Each [`Coordinator::tick`] is one pass and is safe to repeat: job ids come
//! from content and `enqueue` is idempotent. The tick only *enqueues* (in the
//! store); the [`Reconciler`] publishes, reclaims and settles dead letters,
//! so a job never depends on the tick that created it. That makes a
//! coordinator restart, a broker outage, or a Redis wipe harmless: the next
//! tick re-creates whatever records are missing, and the reconciler gives
//! every QUEUED job without a message its message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::chain::{Chain, ChainError, ChainSnapshot, WeightsAction};
use common::chain_weights::WeightsParams;
use common::clock::now_ms;
use common::job::{JobId, JobMessage, JobOrigin};
use common::queue::JobQueue;
use common::store::{Enqueued, JobRecord, ResultStore, StoreError};
use common::submission::{ValidationContext, Verdict, validate_submissions};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::leaderboard::{self, Leaderboard, model_of};
use crate::metrics;
use crate::reconcile::{ReconcileError, ReconcileReport, ReconcileSettings, Reconciler};
use crate::view::SharedView;

/// Settings of the loop.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// Version of the scoring profile jobs are evaluated with.
    pub profile_version: String,
    pub epoch_start_block: u64,
    /// Aggregate and set weights every this many blocks.
    pub aggregate_every_blocks: u64,
    pub weights: WeightsParams,
    pub version_key: u64,
    /// Compute and show weights without setting them.
    pub dry_run: bool,
    /// Pause between ticks.
    pub poll_interval: Duration,
}

impl LoopSettings {
    /// Aggregating every `aggregate_every_blocks` from block 0 with the default
    /// weights parameters and version key 1, setting weights (not a dry run):
    /// the embedded mode's settings, and the base tests change.
    pub fn new(
        profile_version: impl Into<String>,
        aggregate_every_blocks: u64,
        poll_interval: Duration,
    ) -> Self {
        Self {
            profile_version: profile_version.into(),
            epoch_start_block: 0,
            aggregate_every_blocks,
            weights: WeightsParams::default(),
            version_key: 1,
            dry_run: false,
            poll_interval,
        }
    }
}

/// Why a tick failed; every cause is transient and the next tick retries.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
}

/// What one tick did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    pub block: u64,
    pub valid: usize,
    /// Jobs the chain named that the store did not know.
    pub enqueued: Vec<JobId>,
    /// What the reconciler did in this tick.
    pub reconciled: ReconcileReport,
    pub aggregated: bool,
}

/// See the module docs.
pub struct Coordinator {
    pub chain: Arc<dyn Chain>,
    pub queue: Arc<dyn JobQueue>,
    pub store: Arc<dyn ResultStore>,
    pub settings: LoopSettings,
    pub view: SharedView,
    reconciler: Reconciler,
    last_aggregated_block: Option<u64>,
}

common::debug_fields!(Coordinator { settings });

impl Coordinator {
    pub fn new(
        chain: Arc<dyn Chain>,
        queue: Arc<dyn JobQueue>,
        store: Arc<dyn ResultStore>,
        settings: LoopSettings,
        view: SharedView,
    ) -> Self {
        let reconciler =
            Reconciler::new(store.clone(), queue.clone(), ReconcileSettings::default());
        Self {
            chain,
            queue,
            store,
            settings,
            view,
            reconciler,
            last_aggregated_block: None,
        }
    }

    /// Replaces the reconciler's settings (the default is
    /// [`ReconcileSettings::default`]).
    pub fn with_reconcile_settings(mut self, settings: ReconcileSettings) -> Self {
        self.reconciler = Reconciler::new(self.store.clone(), self.queue.clone(), settings);
        self
    }

    /// Ticks until `shutdown`; a failed tick is logged and retried.
    pub async fn run(mut self, shutdown: CancellationToken) {
        info!(profile = %self.settings.profile_version, dry_run = self.settings.dry_run, "coordinator loop started");
        loop {
            match self.tick().await {
                Ok(report)
                    if !report.enqueued.is_empty()
                        || !report.reconciled.is_empty()
                        || report.aggregated =>
                {
                    let r = &report.reconciled;
                    info!(
                        block = report.block,
                        valid = report.valid,
                        enqueued = report.enqueued.len(),
                        published = r.published.len(),
                        publish_failures = r.publish_failures,
                        reclaimed = r.reclaimed.len(),
                        requeued = r.requeued.len(),
                        lost = r.lost.len(),
                        failed = r.failed.len(),
                        aggregated = report.aggregated,
                        "tick"
                    );
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "tick failed, retrying next interval"),
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        info!("coordinator loop stopped");
    }

    /// One pass: schedule, reclaim, and aggregate when due.
    pub async fn tick(&mut self) -> Result<TickReport, TickError> {
        let snapshot = self.chain.snapshot().await?;
        metrics::CHAIN_BLOCK.set(snapshot.block as i64);
        self.view
            .update(|view| view.chain_read_at_ms = Some(now_ms()));
        if let Some(ts) = snapshot.timestamp_ms {
            metrics::CHAIN_BLOCK_LAG.set(now_ms().saturating_sub(ts) as f64 / 1000.0);
        }
        self.reveal_due().await;
        let verdicts = self.judge(&snapshot);
        let mut report = TickReport {
            block: snapshot.block,
            valid: verdicts.iter().filter(|v| v.valid().is_some()).count(),
            ..TickReport::default()
        };
        report.enqueued = self.schedule(&verdicts).await?;
        report.reconciled = self.reconciler.run_once().await?;
        if let Ok(depth) = self.queue.depth().await {
            metrics::QUEUE_DEPTH.set(depth.ready as i64);
        }
        let due = self
            .last_aggregated_block
            .is_none_or(|last| snapshot.block >= last + self.settings.aggregate_every_blocks);
        if due {
            self.aggregate(snapshot.block, &verdicts).await?;
            self.last_aggregated_block = Some(snapshot.block);
            report.aggregated = true;
        }
        self.view.update(|view| {
            view.block = snapshot.block;
            view.verdicts = verdicts;
        });
        Ok(report)
    }

    fn judge(&self, snapshot: &ChainSnapshot) -> Vec<Verdict> {
        let ctx = ValidationContext {
            current_block: snapshot.block,
            epoch_start_block: self.settings.epoch_start_block,
        };
        let verdicts = validate_submissions(&snapshot.hotkeys(), &snapshot.commitments, ctx);
        metrics::zero_submissions();
        for verdict in &verdicts {
            let label = match &verdict.outcome {
                Ok(_) => metrics::VALID,
                Err(reason) => reason.code(),
            };
            metrics::SUBMISSIONS.with_label_values(&[label]).inc();
        }
        verdicts
    }

    /// Enqueues the job of every valid submission the store does not know
    /// yet; the reconciler publishes it. Already known jobs (any status) are
    /// left alone: a model is evaluated once per profile.
    async fn schedule(&self, verdicts: &[Verdict]) -> Result<Vec<JobId>, TickError> {
        let mut enqueued = Vec::new();
        for verdict in verdicts {
            let Some(commit) = verdict.valid() else {
                continue;
            };
            let message = JobMessage::v1(
                model_of(commit),
                &self.settings.profile_version,
                JobOrigin::Chain {
                    uid: verdict.uid,
                    hotkey: verdict.hotkey.clone(),
                    block: verdict.block.unwrap_or_default(),
                },
                now_ms(),
            );
            if self.store.enqueue(message.job()).await? == Enqueued::Created {
                info!(job_id = %message.id(), uid = verdict.uid, model = %message.job().model, "job enqueued");
                enqueued.push(message.id().clone());
            }
        }
        Ok(enqueued)
    }

    /// Builds the leaderboard from stored results and sets weights.
    pub async fn aggregate(
        &self,
        block: u64,
        verdicts: &[Verdict],
    ) -> Result<Leaderboard, TickError> {
        let profile = &self.settings.profile_version;
        let mut records: HashMap<JobId, JobRecord> = HashMap::new();
        let mut previous: HashMap<u16, JobRecord> = HashMap::new();
        for verdict in verdicts {
            let Some(commit) = verdict.valid() else {
                continue;
            };
            let id = JobId::for_model(&model_of(commit), profile);
            let current = self.store.get(&id).await?;
            if !current.as_ref().is_some_and(|r| r.status.is_final()) {
                // Re-committed: the last completed model's score counts until
                // the new one's result.
                let history = self.store.jobs_of_hotkey(&verdict.hotkey).await?;
                if let Some(kept) = leaderboard::last_completed(&history, profile, &id) {
                    previous.insert(verdict.uid, kept.clone());
                }
            }
            if let Some(record) = current {
                records.insert(id, record);
            }
        }
        let board = leaderboard::build(
            block,
            verdicts,
            &records,
            &previous,
            profile,
            &self.settings.weights,
        );
        self.set_weights(block, &board).await;
        self.view.update(|view| view.leaderboard = board.clone());
        Ok(board)
    }

    /// Reveals committed weights whose window is open (commit-reveal subnets).
    async fn reveal_due(&self) {
        if self.settings.dry_run {
            return;
        }
        match self.chain.reveal_due().await {
            Ok(outcomes) => {
                for outcome in outcomes {
                    match outcome {
                        Ok(receipt) => {
                            info!(block = receipt.block, "committed weights revealed");
                            metrics::WEIGHT_COMMITS
                                .with_label_values(&["revealed"])
                                .inc();
                            metrics::LAST_WEIGHTS_BLOCK.set(receipt.block as i64);
                            self.view.update(|view| {
                                view.weights.set_at_block = Some(receipt.block);
                                view.weights.last_error = None;
                            });
                        }
                        Err(e) => {
                            warn!(error = %e, "revealing weights failed");
                            metrics::WEIGHT_COMMITS
                                .with_label_values(&["refused"])
                                .inc();
                            self.view
                                .update(|view| view.weights.last_error = Some(e.to_string()));
                        }
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "could not check pending weight commits");
                metrics::WEIGHT_COMMITS
                    .with_label_values(&["unavailable"])
                    .inc();
            }
        }
    }

    async fn set_weights(&self, block: u64, board: &Leaderboard) {
        let weights = &board.u16_weights;
        self.view.update(|view| {
            view.weights.computed = Some(weights.clone());
            view.weights.computed_at_block = Some(block);
        });
        let result = if weights.uids.is_empty() {
            info!(block, "no model scored yet, no weights to set");
            "empty"
        } else if self.settings.dry_run {
            info!(block, uids = ?weights.uids, weights = ?weights.weights, "dry run: weights not set");
            "dry_run"
        } else {
            match self
                .chain
                .set_weights(weights, self.settings.version_key)
                .await
            {
                Ok(receipt) if receipt.action == WeightsAction::Committed => {
                    info!(block = receipt.block, uids = ?weights.uids, weights = ?weights.weights, "weights committed, reveal follows in the reveal window");
                    metrics::WEIGHT_COMMITS
                        .with_label_values(&["committed"])
                        .inc();
                    self.view.update(|view| {
                        view.weights.set = Some(weights.clone());
                        view.weights.last_error = None;
                    });
                    "set"
                }
                Ok(receipt) => {
                    info!(block = receipt.block, uids = ?weights.uids, weights = ?weights.weights, "weights set");
                    metrics::LAST_WEIGHTS_BLOCK.set(receipt.block as i64);
                    self.view.update(|view| {
                        view.weights.set = Some(weights.clone());
                        view.weights.set_at_block = Some(receipt.block);
                        view.weights.last_error = None;
                    });
                    "set"
                }
                Err(e) => {
                    warn!(error = %e, "setting weights failed");
                    self.view
                        .update(|view| view.weights.last_error = Some(e.to_string()));
                    if e.is_transient() {
                        "unavailable"
                    } else {
                        "refused"
                    }
                }
            }
        };
        metrics::WEIGHT_SETS.with_label_values(&[result]).inc();
    }
}
