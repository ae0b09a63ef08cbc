//! From chain verdicts and stored results to a ranked leaderboard and the
//! weights to set. Pure: the caller reads the chain and the store.
//!
//! **A re-commit keeps the miner's score until the new result.** While a
//! miner's new submission is QUEUED or RUNNING (or not yet enqueued), their
//! row carries the score of their last COMPLETED evaluation, with that
//! model's commit block for the earlier-submitter advantage, and the new
//! submission shows as `pending`. When the new job completes, its score
//! replaces the old one; when it FAILS, the miner has no score.

use std::collections::{BTreeMap, HashMap};

use common::chain_weights::{Contender, U16Weights, WeightsParams, compute_weights, to_u16};
use common::job::{DEFAULT_REVISION, JobId, JobOrigin, JobStatus, ModelRef};
use common::result::{ComponentScores, Outcome};
use common::store::JobRecord;
use common::submission::{CommitString, Verdict, fingerprint_copies};
use serde::{Deserialize, Serialize};

/// The model a valid commitment asks to evaluate.
pub fn model_of(commit: &CommitString) -> ModelRef {
    ModelRef {
        namespace: commit.namespace.clone(),
        name: commit.name.clone(),
        revision: DEFAULT_REVISION.to_owned(),
        chat_template: commit.chat_template.clone(),
    }
}

/// One uid's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub uid: u16,
    pub hotkey: String,
    pub block: Option<u64>,
    pub model: Option<ModelRef>,
    pub job_id: Option<JobId>,
    /// `None` when the submission is invalid (see `reason`).
    pub status: Option<JobStatus>,
    pub components: Option<ComponentScores>,
    /// Total as evaluated; `score` is what counts for weights.
    pub total: Option<f64>,
    /// 0 for copies of an earlier model's weights.
    pub score: f64,
    /// Why the submission is invalid, failed, or zeroed.
    pub reason: Option<String>,
    pub weight: f64,
    /// The miner's newer submission while it is evaluated; the fields above
    /// are then their last completed model, whose score still counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

impl Entry {
    /// The row's figures as tables show them: similarity, vibe, latency, size
    /// and total.
    pub fn figures(&self) -> [Option<f64>; 5] {
        let c = self.components;
        [
            c.map(|c| c.similarity),
            c.map(|c| c.vibe),
            c.map(|c| c.latency),
            c.map(|c| c.size),
            self.total,
        ]
    }
}

/// A figure with four decimals (`none` when absent). Random or weak models
/// score similarities far below 1e-4: those keep a visible exponent.
pub fn format_figure(value: Option<f64>, none: &str) -> String {
    match value {
        Some(v) if v > 0.0 && v < 1e-3 => format!("{v:.0e}"),
        Some(v) => format!("{v:.4}"),
        None => none.to_owned(),
    }
}

/// A submission being evaluated while an earlier score still counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub block: Option<u64>,
    pub model: ModelRef,
    pub job_id: JobId,
    /// QUEUED or RUNNING; `None` until the job is enqueued.
    pub status: Option<JobStatus>,
}

/// The last COMPLETED job among a miner's `records` for `profile_version`,
/// other than `current` (what [`build`] takes as `previous`).
pub fn last_completed<'a>(
    records: impl IntoIterator<Item = &'a JobRecord>,
    profile_version: &str,
    current: &JobId,
) -> Option<&'a JobRecord> {
    records
        .into_iter()
        .filter(|r| {
            r.status == JobStatus::Completed
                && r.job.profile == profile_version
                && &r.job.job_id != current
                && r.total().is_some()
        })
        .max_by_key(|r| (r.finished_at_ms, r.queued_at_ms))
}

/// The ranked leaderboard with the weights it implies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    pub block: u64,
    /// Best first: by weight, then score, then uid.
    pub entries: Vec<Entry>,
    pub weights: BTreeMap<u16, f64>,
    pub u16_weights: U16Weights,
}

/// Builds the leaderboard at `block`. `records` holds the store's records
/// of the valid submissions' jobs (missing ones are not evaluated yet);
/// `previous`, by uid, the last completed job of a miner whose current
/// submission is not final (see the module docs).
pub fn build(
    block: u64,
    verdicts: &[Verdict],
    records: &HashMap<JobId, JobRecord>,
    previous: &HashMap<u16, JobRecord>,
    profile_version: &str,
    params: &WeightsParams,
) -> Leaderboard {
    // The record whose score counts for each entry's job id.
    let mut scored: HashMap<JobId, &JobRecord> =
        records.iter().map(|(k, v)| (k.clone(), v)).collect();
    let mut entries: Vec<Entry> = verdicts
        .iter()
        .map(|verdict| {
            let mut entry = Entry {
                uid: verdict.uid,
                hotkey: verdict.hotkey.clone(),
                block: verdict.block,
                model: None,
                job_id: None,
                status: None,
                components: None,
                total: None,
                score: 0.0,
                reason: None,
                weight: 0.0,
                pending: None,
            };
            let commit = match &verdict.outcome {
                Ok(commit) => commit,
                Err(reason) => {
                    entry.reason = Some(reason.to_string());
                    return entry;
                }
            };
            let model = model_of(commit);
            let job_id = JobId::for_model(&model, profile_version);
            let current = records.get(&job_id);
            if !current.is_some_and(|r| r.status.is_final())
                && let Some(kept) = previous.get(&verdict.uid)
            {
                entry.pending = Some(Pending {
                    block: verdict.block,
                    model,
                    job_id,
                    status: current.map(|r| r.status),
                });
                entry.block = match &kept.job.origin {
                    JobOrigin::Chain { block, .. } => Some(*block),
                    JobOrigin::Operator { .. } => verdict.block,
                };
                entry.model = Some(kept.job.model.clone());
                entry.status = Some(kept.status);
                if let Some(Outcome::Completed(scores)) = kept.result.as_ref().map(|r| &r.outcome) {
                    entry.components = Some(scores.components);
                    entry.total = Some(scores.total);
                    entry.score = scores.total;
                }
                entry.job_id = Some(kept.job.job_id.clone());
                scored.insert(kept.job.job_id.clone(), kept);
                return entry;
            }
            entry.model = Some(model);
            if let Some(record) = current {
                entry.status = Some(record.status);
                match record.result.as_ref().map(|r| &r.outcome) {
                    Some(Outcome::Completed(scores)) => {
                        entry.components = Some(scores.components);
                        entry.total = Some(scores.total);
                        entry.score = scores.total;
                    }
                    Some(Outcome::Failed(reason)) => entry.reason = Some(reason.to_string()),
                    None => {}
                }
            }
            entry.job_id = Some(job_id);
            entry
        })
        .collect();

    // The later of two submissions with identical weights scores 0.
    let fingerprints: Vec<(u16, u64, String)> = entries
        .iter()
        .filter_map(|e| {
            let record = scored.get(e.job_id.as_ref()?)?;
            match &record.result.as_ref()?.outcome {
                Outcome::Completed(scores) => {
                    Some((e.uid, e.block?, scores.weights_fingerprint.clone()))
                }
                Outcome::Failed(_) => None,
            }
        })
        .collect();
    let borrowed: Vec<(u16, u64, &str)> = fingerprints
        .iter()
        .map(|(u, b, f)| (*u, *b, f.as_str()))
        .collect();
    for uid in fingerprint_copies(&borrowed) {
        if let Some(entry) = entries.iter_mut().find(|e| e.uid == uid) {
            entry.score = 0.0;
            entry.reason = Some("an earlier submission has identical weights".into());
        }
    }

    let contenders: Vec<Contender> = entries
        .iter()
        .map(|e| Contender {
            uid: e.uid,
            score: e.score,
            block: e.block.unwrap_or(u64::MAX),
            valid: e.model.is_some(),
        })
        .collect();
    let weights = compute_weights(&contenders, params);
    for entry in &mut entries {
        entry.weight = weights.get(&entry.uid).copied().unwrap_or(0.0);
    }
    entries.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then_with(|| b.score.total_cmp(&a.score))
            .then_with(|| a.uid.cmp(&b.uid))
    });
    Leaderboard {
        block,
        entries,
        u16_weights: to_u16(&weights),
        weights,
    }
}

/// The leaderboard as a plain-text table for terminals.
pub fn render_table(board: &Leaderboard) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>4} {:>4}  {:<12} {:<28} {:<10} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7}",
        "rank", "uid", "hotkey", "model", "status", "sim", "vibe", "lat", "size", "total", "weight"
    );
    for (rank, e) in board.entries.iter().enumerate() {
        let model = e
            .model
            .as_ref()
            .map(ModelRef::repo_id)
            .unwrap_or_else(|| "-".into());
        let status = e.status.map(|s| s.as_str()).unwrap_or("INVALID");
        let [sim, vibe, lat, size, total] = e.figures().map(|v| format_figure(v, "-"));
        let _ = writeln!(
            out,
            "{:>4} {:>4}  {:<12} {:<28} {:<10} {sim:>6} {vibe:>6} {lat:>6} {size:>6} {total:>7} {:>7.4}",
            rank + 1,
            e.uid,
            truncate(&e.hotkey, 12),
            truncate(&model, 28),
            status,
            e.weight,
        );
        if let Some(reason) = &e.reason {
            let _ = writeln!(out, "{:>11}└ {reason}", "");
        }
        if let Some(p) = &e.pending {
            let status = p.status.map(|s| s.as_str()).unwrap_or("SUBMITTED");
            let _ = writeln!(
                out,
                "{:>11}└ pending: {} {status}; the score above counts until its result",
                "",
                p.model.repo_id()
            );
        }
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max - 1).chain(['…']).collect()
    }
}

#[cfg(test)]
mod tests {
    use common::job::{JobMessage, JobOrigin};
    use common::result::{ResultV1, Scores};
    use common::submission::{
        InvalidReason, RawCommitment, ValidationContext, validate_submissions,
    };

    use super::*;

    /// The verdicts on `raw` at block 1000.
    fn judge(hotkeys: &BTreeMap<u16, String>, raw: &[RawCommitment]) -> Vec<Verdict> {
        let ctx = ValidationContext {
            current_block: 1_000,
            epoch_start_block: 0,
        };
        validate_submissions(hotkeys, raw, ctx)
    }

    fn record(commit: &CommitString, total: f64, fingerprint: &str) -> JobRecord {
        let message = JobMessage::v1(
            model_of(commit),
            "v1",
            JobOrigin::Operator {
                requested_by: "test".into(),
            },
            0,
        );
        let mut record = JobRecord::queued(message.job());
        record.status = JobStatus::Completed;
        record.result = Some(ResultV1 {
            job_id: message.id().clone(),
            profile: "v1".into(),
            outcome: Outcome::Completed(Scores {
                components: ComponentScores {
                    similarity: total,
                    vibe: 0.0,
                    latency: 0.0,
                    size: 0.0,
                    judge: None,
                },
                total,
                weights_fingerprint: fingerprint.into(),
                dataset_sha256: String::new(),
                revision_sha: String::new(),
                tokens: 0,
                samples_context_cut: None,
                latency: None,
                samples: Vec::new(),
                judge: None,
            }),
            worker: "w".into(),
            attempt: 1,
            started_at_ms: 0,
            finished_at_ms: 0,
        });
        record
    }

    #[test]
    fn a_recommit_keeps_the_last_score_until_its_own_result() {
        let hotkeys: BTreeMap<u16, String> = [(0, "hk0".to_owned()), (1, "hk1".to_owned())].into();
        let old = CommitString::bound_to("m", "old", "chatml", "hk0", None);
        let new = CommitString::bound_to("m", "new", "chatml", "hk0", None);
        let rival = CommitString::bound_to("m", "rival", "chatml", "hk1", None);
        let raw = vec![
            RawCommitment {
                uid: 0,
                hotkey: "hk0".into(),
                block: 500,
                data: new.to_string().into_bytes(),
                not_raw: None,
            },
            RawCommitment {
                uid: 1,
                hotkey: "hk1".into(),
                block: 300,
                data: rival.to_string().into_bytes(),
                not_raw: None,
            },
        ];
        let verdicts = judge(&hotkeys, &raw);
        let mut kept = record(&old, 0.9, "f-old");
        kept.job.origin = JobOrigin::Chain {
            uid: 0,
            hotkey: "hk0".into(),
            block: 100,
        };
        let previous: HashMap<u16, JobRecord> = [(0, kept.clone())].into();
        let rival_record = record(&rival, 0.5, "f-rival");
        let new_id = JobId::for_model(&model_of(&new), "v1");
        let board_with = |current: Option<JobRecord>| {
            let mut records: HashMap<JobId, JobRecord> =
                [(rival_record.job.job_id.clone(), rival_record.clone())].into();
            if let Some(current) = current {
                records.insert(new_id.clone(), current);
            }
            build(
                1_000,
                &verdicts,
                &records,
                &previous,
                "v1",
                &WeightsParams::default(),
            )
        };
        let uid0 = |board: &Leaderboard| board.entries.iter().find(|e| e.uid == 0).unwrap().clone();

        // Not enqueued yet, then QUEUED, then RUNNING: the old score counts,
        // with the old commit's block, and the new model shows as pending.
        let mut queued = record(&new, 0.0, "f-new");
        queued.status = JobStatus::Queued;
        queued.result = None;
        let mut running = queued.clone();
        running.status = JobStatus::Running;
        for (current, status) in [
            (None, None),
            (Some(queued), Some(JobStatus::Queued)),
            (Some(running), Some(JobStatus::Running)),
        ] {
            let board = board_with(current);
            let e = uid0(&board);
            assert_eq!((e.score, e.block), (0.9, Some(100)));
            assert_eq!(e.model.as_ref().unwrap().name, "old");
            let pending = e.pending.expect("the new submission is pending");
            assert_eq!(
                (pending.model.name.as_str(), pending.status),
                ("new", status)
            );
            assert!(e.weight > board.weights[&1], "the kept score still wins");
            assert!(render_table(&board).contains("pending: m/new"));
        }

        // The new result replaces it, good or bad.
        let board = board_with(Some(record(&new, 0.2, "f-new")));
        let e = uid0(&board);
        assert_eq!((e.score, e.pending.is_none()), (0.2, true));
        assert_eq!(e.model.unwrap().name, "new");
        let mut failed = record(&new, 0.0, "f-new");
        failed.status = JobStatus::Failed;
        failed.result.as_mut().unwrap().outcome = Outcome::Failed(
            common::result::FailureReason::new(common::result::FailureCode::NanOutput, "NaN"),
        );
        let board = board_with(Some(failed));
        let e = uid0(&board);
        assert_eq!((e.score, e.weight, e.pending.is_none()), (0.0, 0.0, true));
        assert!(e.reason.unwrap().contains("NaN"));

        // Which earlier job is kept: the latest completed one of the profile.
        let mut older = kept.clone();
        older.finished_at_ms = Some(1);
        older.job.job_id = JobId::for_model(&model_of(&rival), "v1");
        let mut newer = kept.clone();
        newer.finished_at_ms = Some(2);
        let mut other_profile = kept.clone();
        other_profile.finished_at_ms = Some(3);
        other_profile.job.profile = "v0".into();
        let picked = last_completed([&older, &newer, &other_profile], "v1", &new_id).unwrap();
        assert_eq!(picked.finished_at_ms, Some(2));
        assert!(last_completed([&newer], "v1", &newer.job.job_id).is_none());
    }

    #[test]
    fn ranks_weights_and_zeroes_copies() {
        let hotkeys: BTreeMap<u16, String> = (0..5).map(|u| (u, format!("hk{u}"))).collect();
        let commits: Vec<CommitString> = (0..4)
            .map(|u| {
                CommitString::bound_to("m", format!("model{u}"), "chatml", format!("hk{u}"), None)
            })
            .collect();
        let raw: Vec<RawCommitment> = commits
            .iter()
            .enumerate()
            .map(|(u, c)| RawCommitment {
                uid: u as u16,
                hotkey: format!("hk{u}"),
                block: [100, 200, 50, 300][u],
                data: c.to_string().into_bytes(),
                not_raw: None,
            })
            .collect();
        let verdicts = judge(&hotkeys, &raw);
        // Scores of the three-uid hand-computed case; uid 3 copies uid 0's weights.
        let records: HashMap<JobId, JobRecord> = [
            (0, 0.80, "fa"),
            (1, 0.82, "fb"),
            (2, 0.50, "fc"),
            (3, 0.99, "fa"),
        ]
        .iter()
        .map(|&(u, total, fp)| {
            let r = record(&commits[u], total, fp);
            (r.job.job_id.clone(), r)
        })
        .collect();
        let board = build(
            1_000,
            &verdicts,
            &records,
            &HashMap::new(),
            "v1",
            &WeightsParams::default(),
        );
        let order: Vec<u16> = board.entries.iter().map(|e| e.uid).collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
        assert_eq!(
            board.u16_weights,
            U16Weights {
                uids: vec![0, 1],
                weights: vec![65535, 83]
            }
        );
        let copy = board.entries.iter().find(|e| e.uid == 3).unwrap();
        assert_eq!(
            (copy.score, copy.total, copy.weight),
            (0.0, Some(0.99), 0.0)
        );
        assert!(
            copy.reason
                .as_deref()
                .unwrap()
                .contains("identical weights")
        );
        let absent = board.entries.iter().find(|e| e.uid == 4).unwrap();
        assert_eq!(absent.reason, Some(InvalidReason::NoCommitment.to_string()));
        assert!((board.weights.values().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
