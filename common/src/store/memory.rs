//! An in-process [`ResultStore`] for the embedded mode and unit tests.

use std::collections::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{
    Claim, Enqueued, Finish, JobRecord, Lease, PublishCheck, PublishOutcome, RankedJob, Result,
    ResultStore, StoreError, best_first, sort_oldest_first,
};
use crate::job::{JobId, JobOrigin, JobStatus, JobV1, Transition};
use crate::result::{ResultMessage, SampleRecord};

/// See the module docs.
#[derive(Debug, Default)]
pub struct MemoryStore {
    jobs: Mutex<HashMap<JobId, JobRecord>>,
    /// Per-sample records of completed results, apart from the records as
    /// in Redis. Written while `jobs` is locked; read on its own.
    samples: Mutex<HashMap<JobId, Vec<SampleRecord>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything, as a Redis restart without persistence does.
    pub fn wipe(&self) {
        let mut jobs = self.jobs.lock();
        jobs.clear();
        self.samples.lock().clear();
    }

    /// Both requeues: the same move, counted in the `counter` of the record.
    fn requeue_counted(
        &self,
        id: &JobId,
        published_at_ms: u64,
        counter: fn(&mut JobRecord) -> &mut u32,
    ) -> Result<bool> {
        self.update(id, false, |record| {
            if record.status != JobStatus::Queued || record.published_at_ms != Some(published_at_ms)
            {
                return Ok(false);
            }
            transition(record, Transition::Requeue)?;
            record.published_at_ms = None;
            record.publishing_since_ms = None;
            *counter(record) += 1;
            Ok(true)
        })
    }

    /// Runs `change` on the record of job `id` under the lock; `unknown`
    /// when there is none.
    fn update<T>(
        &self,
        id: &JobId,
        unknown: T,
        change: impl FnOnce(&mut JobRecord) -> Result<T, StoreError>,
    ) -> Result<T> {
        match self.jobs.lock().get_mut(id) {
            Some(record) => change(record),
            None => Ok(unknown),
        }
    }
}

/// Moves `record` along the lifecycle table, or refuses.
fn transition(record: &mut JobRecord, transition: Transition) -> Result<()> {
    let to = transition
        .apply(record.status)
        .ok_or_else(|| StoreError::Corrupt {
            key: record.job.job_id.to_string(),
            message: format!(
                "illegal transition {} from {}",
                transition.as_str(),
                record.status
            ),
        })?;
    record.status = to;
    Ok(())
}

#[async_trait]
impl ResultStore for MemoryStore {
    async fn enqueue(&self, job: &JobV1) -> Result<Enqueued> {
        let mut jobs = self.jobs.lock();
        if let Some(existing) = jobs.get(&job.job_id) {
            return Ok(Enqueued::Exists(Box::new(existing.clone())));
        }
        jobs.insert(job.job_id.clone(), JobRecord::queued(job));
        Ok(Enqueued::Created)
    }

    async fn time_ms(&self) -> Result<u64> {
        Ok(crate::clock::now_ms())
    }

    async fn get(&self, id: &JobId) -> Result<Option<JobRecord>> {
        Ok(self.jobs.lock().get(id).cloned())
    }

    async fn claim(&self, job: &JobV1, lease: Lease<'_>) -> Result<Claim> {
        let Lease {
            worker,
            from_ms: now_ms,
            ..
        } = lease;
        let mut jobs = self.jobs.lock();
        let recreated = !jobs.contains_key(&job.job_id);
        let record = jobs
            .entry(job.job_id.clone())
            .or_insert_with(|| JobRecord::queued(job));
        if record.status.is_final() {
            return Ok(Claim::Finished);
        }
        if record.status == JobStatus::Running
            && !record.lease_expired(now_ms)
            && let (Some(holder), Some(until_ms)) = (&record.worker, record.lease_expires_at_ms)
            && holder != worker
        {
            return Ok(Claim::Leased {
                worker: holder.clone(),
                until_ms,
            });
        }
        transition(record, Transition::Claim)?;
        record.attempts += 1;
        record.worker = Some(worker.to_owned());
        record.started_at_ms = Some(now_ms);
        record.lease_expires_at_ms = Some(lease.until_ms());
        record.progress = 0.0;
        Ok(if recreated {
            Claim::Recreated
        } else {
            Claim::Claimed {
                attempt: record.attempts,
            }
        })
    }

    async fn heartbeat(&self, id: &JobId, lease: Lease<'_>, progress: f64) -> Result<bool> {
        self.update(id, false, |record| {
            if record.status != JobStatus::Running || record.worker.as_deref() != Some(lease.worker)
            {
                return Ok(false);
            }
            record.progress = progress.clamp(0.0, 1.0);
            record.lease_expires_at_ms = Some(lease.until_ms());
            Ok(true)
        })
    }

    async fn release(&self, id: &JobId, worker: &str) -> Result<()> {
        self.update(id, (), |record| {
            if record.status == JobStatus::Running && record.worker.as_deref() == Some(worker) {
                transition(record, Transition::HandBack)?;
                record.lease_expires_at_ms = None;
                record.progress = 0.0;
            }
            Ok(())
        })
    }

    async fn begin_publish(&self, id: &JobId, check: PublishCheck) -> Result<Option<u32>> {
        self.update(id, None, |record| {
            if !record.needs_publish(check) {
                return Ok(None);
            }
            record.publish_attempts += 1;
            record.publishing_since_ms = Some(check.now_ms);
            Ok(Some(record.publish_attempts))
        })
    }

    async fn end_publish(&self, id: &JobId, attempt: u32, outcome: PublishOutcome) -> Result<()> {
        self.update(id, (), |record| {
            if record.publish_attempts == attempt && record.publishing_since_ms.is_some() {
                record.publishing_since_ms = None;
                if let PublishOutcome::Confirmed { at_ms } = outcome {
                    record.published_at_ms = Some(at_ms);
                }
            }
            Ok(())
        })
    }

    async fn reclaim(&self, id: &JobId, lease_expires_at_ms: u64, now_ms: u64) -> Result<bool> {
        self.update(id, false, |record| {
            if !record.lease_expired(now_ms)
                || record.lease_expires_at_ms != Some(lease_expires_at_ms)
            {
                return Ok(false);
            }
            transition(record, Transition::Reclaim)?;
            record.lease_expires_at_ms = None;
            record.progress = 0.0;
            record.published_at_ms = None;
            record.publishing_since_ms = None;
            record.reclaims += 1;
            Ok(true)
        })
    }

    async fn requeue(&self, id: &JobId, published_at_ms: u64) -> Result<bool> {
        self.requeue_counted(id, published_at_ms, |record| &mut record.requeues)
    }

    async fn requeue_lost(&self, id: &JobId, published_at_ms: u64) -> Result<bool> {
        self.requeue_counted(id, published_at_ms, |record| &mut record.lost_messages)
    }

    async fn jobs_of_hotkey(&self, hotkey: &str) -> Result<Vec<JobRecord>> {
        let jobs = self.jobs.lock();
        let mut out: Vec<JobRecord> = jobs
            .values()
            .filter(|r| matches!(&r.job.origin, JobOrigin::Chain { hotkey: h, .. } if h == hotkey))
            .cloned()
            .collect();
        sort_oldest_first(&mut out);
        Ok(out)
    }

    async fn finish(&self, message: &ResultMessage) -> Result<Finish> {
        let mut result = message.result().clone();
        let samples = result.take_samples();
        let mut jobs = self.jobs.lock();
        let Some(record) = jobs.get_mut(&result.job_id) else {
            return Err(StoreError::Corrupt {
                key: result.job_id.to_string(),
                message: "finishing a job the store has never seen".into(),
            });
        };
        if record.status.is_final() {
            return Ok(Finish::AlreadyFinished);
        }
        transition(
            record,
            match result.outcome {
                crate::result::Outcome::Completed(_) => Transition::Complete,
                crate::result::Outcome::Failed(_) => Transition::Fail,
            },
        )?;
        record.worker = Some(result.worker.clone());
        record.finished_at_ms = Some(result.finished_at_ms);
        record.lease_expires_at_ms = None;
        record.progress = 1.0;
        if !samples.is_empty() {
            self.samples.lock().insert(result.job_id.clone(), samples);
        }
        record.result = Some(result);
        Ok(Finish::Recorded)
    }

    async fn samples(&self, id: &JobId) -> Result<Vec<SampleRecord>> {
        Ok(self.samples.lock().get(id).cloned().unwrap_or_default())
    }

    async fn jobs_with_status(&self, status: JobStatus) -> Result<Vec<JobRecord>> {
        let jobs = self.jobs.lock();
        let mut out: Vec<JobRecord> = jobs
            .values()
            .filter(|r| r.status == status)
            .cloned()
            .collect();
        sort_oldest_first(&mut out);
        Ok(out)
    }

    async fn leaderboard(&self, limit: usize) -> Result<Vec<RankedJob>> {
        let jobs = self.jobs.lock();
        let ranked = jobs
            .values()
            .filter_map(|r| {
                Some(RankedJob {
                    job_id: r.job.job_id.clone(),
                    total: r.total()?,
                })
            })
            .collect();
        Ok(best_first(ranked, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn contract_suite() {
        super::super::testsuite::run(|| async { MemoryStore::new() }).await;
    }
}
