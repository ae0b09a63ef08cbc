//! The in-memory status index behind the miner's status query.
//!
//! The status route is the one miners poll, so it never touches Redis: a
//! refresher task reads every job from the store once per
//! [`super::ApiSettings::refresh_interval`] (1 s by default), joins them with
//! the coordinator's last verdicts, and swaps in a new [`StatusIndex`] whose
//! answers are already serialised. A request then costs one hash lookup and
//! a copy of prepared bytes.
//!
//! **Staleness:** an answer is at most one refresh interval plus one store
//! read old (`as_of_ms` in the body says when it was built); progress is as
//! fresh as the worker's last heartbeat; INVALID verdicts are as fresh as the
//! coordinator's last chain read (one poll interval). If the store is
//! unreachable the previous index keeps being served (and `/readyz` fails).
//!
//! The refresher also keeps the job gauges and counters of
//! [`crate::metrics`] (`eval_coordinator_jobs`, `_failed_jobs`,
//! `_jobs_finished_total`, `_job_duration_seconds`,
//! `_eval_tokens_per_second`): a job is counted as finished once, when a
//! refresh first sees it final after having seen it unfinished.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use common::clock::now_ms;
use common::job::{JobId, JobStatus};
use common::result::Outcome;
use common::store::{JobRecord, ResultStore, StoreError};
use common::submission::Verdict;
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::types::{Model, ModelStatus, Reason, SubmissionStatus};
use crate::metrics;
use crate::view::SharedView;

/// One job, with its prepared answer.
#[derive(Debug)]
pub struct IndexedJob {
    pub record: JobRecord,
    pub status: ModelStatus,
    /// `status` as JSON.
    pub body: Bytes,
}

/// A refused commitment, with its prepared answer.
#[derive(Debug)]
pub struct InvalidSubmission {
    pub status: ModelStatus,
    pub body: Bytes,
}

/// Everything the status query needs, built at once.
#[derive(Debug, Default)]
pub struct StatusIndex {
    pub built_at_ms: u64,
    pub jobs: HashMap<JobId, Arc<IndexedJob>>,
    /// Lowercased `namespace/name` → its jobs (any revision or template).
    pub by_repo: HashMap<String, Vec<JobId>>,
    /// Hotkeys whose commitment the coordinator refused.
    pub invalid: HashMap<String, InvalidSubmission>,
    /// Hotkeys with a registered uid (valid or not).
    pub registered: HashSet<String>,
}

impl StatusIndex {
    /// Builds the index from every job record and the last verdicts.
    pub fn build(records: Vec<JobRecord>, verdicts: &[Verdict], now_ms: u64) -> Self {
        // Queue positions: QUEUED jobs in the order they were queued.
        let mut queued: Vec<(u64, &JobId)> = records
            .iter()
            .filter(|r| r.status == JobStatus::Queued)
            .map(|r| (r.queued_at_ms, &r.job.job_id))
            .collect();
        queued.sort();
        let queue_length = queued.len() as u64;
        let positions: HashMap<JobId, u64> = queued
            .iter()
            .enumerate()
            .map(|(i, (_, id))| ((*id).clone(), i as u64 + 1))
            .collect();
        let owners: HashMap<String, (u16, String)> = verdicts
            .iter()
            .filter_map(|v| {
                let commit = v.valid()?;
                Some((commit.repo_id().to_lowercase(), (v.uid, v.hotkey.clone())))
            })
            .collect();

        let mut index = Self {
            built_at_ms: now_ms,
            ..Self::default()
        };
        for record in records {
            let id = record.job.job_id.clone();
            let repo = record.job.model.repo_id().to_lowercase();
            let (uid, hotkey) = match owners.get(&repo) {
                Some((uid, hotkey)) => (Some(*uid), Some(hotkey.clone())),
                None => (None, None),
            };
            let status = job_status(&record, positions.get(&id).copied(), queue_length, now_ms);
            let status = ModelStatus {
                uid,
                hotkey,
                ..status
            };
            let body = Bytes::from(serde_json::to_vec(&status).expect("status serialises"));
            index.by_repo.entry(repo).or_default().push(id.clone());
            index.jobs.insert(
                id,
                Arc::new(IndexedJob {
                    record,
                    status,
                    body,
                }),
            );
        }
        for verdict in verdicts {
            index.registered.insert(verdict.hotkey.clone());
            let Err(reason) = &verdict.outcome else {
                continue;
            };
            let status = ModelStatus {
                status: SubmissionStatus::Invalid,
                job_id: None,
                model: None,
                profile: None,
                uid: Some(verdict.uid),
                hotkey: Some(verdict.hotkey.clone()),
                queue_position: None,
                queue_length: None,
                progress: None,
                attempts: None,
                queued_at_ms: None,
                started_at_ms: None,
                finished_at_ms: None,
                scores: None,
                total: None,
                judge: None,
                reason: Some(Reason {
                    code: reason.code().to_owned(),
                    message: reason.to_string(),
                }),
                as_of_ms: now_ms,
            };
            let body = Bytes::from(serde_json::to_vec(&status).expect("status serialises"));
            index
                .invalid
                .insert(verdict.hotkey.clone(), InvalidSubmission { status, body });
        }
        index
    }

    /// The job of `repo` (lowercased `namespace/name`) with `revision`
    /// (any, if `None`) most recently queued.
    pub fn latest_of_repo(&self, repo: &str, revision: Option<&str>) -> Option<&Arc<IndexedJob>> {
        self.by_repo
            .get(repo)?
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .filter(|job| revision.is_none_or(|r| job.record.job.model.revision == r))
            .max_by_key(|job| job.record.queued_at_ms)
    }
}

fn job_status(
    record: &JobRecord,
    position: Option<u64>,
    queue_length: u64,
    now_ms: u64,
) -> ModelStatus {
    let (scores, total, judge, reason) = match record.result.as_ref().map(|r| &r.outcome) {
        Some(Outcome::Completed(s)) => (
            Some(s.components),
            Some(s.total),
            s.judge.as_deref().cloned(),
            None,
        ),
        Some(Outcome::Failed(reason)) => (None, None, None, Some(Reason::from(reason))),
        None => (None, None, None, None),
    };
    let queued = record.status == JobStatus::Queued;
    ModelStatus {
        status: record.status.into(),
        job_id: Some(record.job.job_id.to_string()),
        model: Some(Model::from(&record.job.model)),
        profile: Some(record.job.profile.clone()),
        uid: None,
        hotkey: None,
        queue_position: if queued { position } else { None },
        queue_length: queued.then_some(queue_length),
        progress: (record.status == JobStatus::Running).then_some(record.progress),
        attempts: Some(record.attempts),
        queued_at_ms: Some(record.queued_at_ms),
        started_at_ms: record.started_at_ms,
        finished_at_ms: record.finished_at_ms,
        scores,
        total,
        judge,
        reason,
        as_of_ms: now_ms,
    }
}

/// A cheaply cloned handle to the current index.
#[derive(Debug, Clone, Default)]
pub struct IndexHandle(Arc<RwLock<Arc<StatusIndex>>>);

impl IndexHandle {
    pub fn load(&self) -> Arc<StatusIndex> {
        self.0.read().clone()
    }

    pub fn store(&self, index: StatusIndex) {
        *self.0.write() = Arc::new(index);
    }
}

/// Reads every job from the store.
pub async fn read_all(store: &dyn ResultStore) -> Result<Vec<JobRecord>, StoreError> {
    let mut records = Vec::new();
    for status in [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
    ] {
        records.extend(store.jobs_with_status(status).await?);
    }
    Ok(records)
}

/// Rebuilds the index and the job metrics from the store and the view.
pub struct Refresher {
    store: Arc<dyn ResultStore>,
    view: SharedView,
    handle: IndexHandle,
    /// Jobs seen unfinished at the last refresh (`None` before the first).
    unfinished: Option<HashSet<JobId>>,
    failing: bool,
}

common::debug_fields!(Refresher { failing });

impl Refresher {
    pub fn new(store: Arc<dyn ResultStore>, view: SharedView, handle: IndexHandle) -> Self {
        Self {
            store,
            view,
            handle,
            unfinished: None,
            failing: false,
        }
    }

    /// One refresh.
    pub async fn refresh(&mut self) -> Result<(), StoreError> {
        let records = read_all(&*self.store).await?;
        self.record_metrics(&records);
        let verdicts = self.view.read().verdicts;
        self.handle
            .store(StatusIndex::build(records, &verdicts, now_ms()));
        Ok(())
    }

    fn record_metrics(&mut self, records: &[JobRecord]) {
        let mut by_status = [0i64; 4];
        let mut failed: HashMap<&'static str, i64> = HashMap::new();
        let mut unfinished = HashSet::new();
        for record in records {
            let slot = match record.status {
                JobStatus::Queued => 0,
                JobStatus::Running => 1,
                JobStatus::Completed => 2,
                JobStatus::Failed => 3,
            };
            by_status[slot] += 1;
            if !record.status.is_final() {
                unfinished.insert(record.job.job_id.clone());
                continue;
            }
            if let Some(Outcome::Failed(reason)) = record.result.as_ref().map(|r| &r.outcome) {
                *failed.entry(reason.code.as_str()).or_default() += 1;
            }
            let newly_finished = self
                .unfinished
                .as_ref()
                .is_some_and(|before| before.contains(&record.job.job_id));
            if newly_finished && let Some(result) = &record.result {
                let seconds =
                    result.finished_at_ms.saturating_sub(result.started_at_ms) as f64 / 1000.0;
                metrics::JOB_DURATION.observe(seconds);
                match &result.outcome {
                    Outcome::Completed(scores) => {
                        metrics::JOBS_FINISHED
                            .with_label_values(&["completed"])
                            .inc();
                        if seconds > 0.0 && scores.tokens > 0 {
                            metrics::EVAL_TOKENS_PER_SECOND.set(scores.tokens as f64 / seconds);
                        }
                    }
                    Outcome::Failed(_) => {
                        metrics::JOBS_FINISHED.with_label_values(&["failed"]).inc();
                    }
                }
            }
        }
        for (status, count) in ["queued", "running", "completed", "failed"]
            .iter()
            .zip(by_status)
        {
            metrics::JOBS.with_label_values(&[status]).set(count);
        }
        for code in common::result::FailureCode::ALL {
            let count = failed.get(code.as_str()).copied().unwrap_or(0);
            metrics::FAILED_JOBS
                .with_label_values(&[code.as_str()])
                .set(count);
        }
        self.unfinished = Some(unfinished);
    }

    /// Refreshes every `interval` until `shutdown`.
    pub async fn run(mut self, interval: Duration, shutdown: CancellationToken) {
        loop {
            match self.refresh().await {
                Ok(()) if self.failing => {
                    info!("status index refreshed again");
                    self.failing = false;
                }
                Ok(()) => {}
                Err(e) if !self.failing => {
                    warn!(error = %e, "status index refresh failed, serving the previous one");
                    self.failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}
