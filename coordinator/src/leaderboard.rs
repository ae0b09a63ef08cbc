//! From chain verdicts and stored results to a ranked leaderboard and the
//! weights to set. Pure: the caller reads the chain and the store.

use std::collections::{BTreeMap, HashMap};

use common::job::{DEFAULT_REVISION, JobId, JobStatus, ModelRef};
use common::result::{ComponentScores, Outcome};
use common::store::JobRecord;
use common::submission::{CommitString, Verdict, fingerprint_copies};
use common::weights::{Contender, U16Weights, WeightsParams, compute_weights, to_u16};
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
/// of the valid submissions' jobs (missing ones are not evaluated yet).
pub fn build(
    block: u64,
    verdicts: &[Verdict],
    records: &HashMap<JobId, JobRecord>,
    profile_version: &str,
    params: &WeightsParams,
) -> Leaderboard {
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
            entry.model = Some(model);
            if let Some(record) = records.get(&job_id) {
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
            let record = records.get(e.job_id.as_ref()?)?;
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
        // Random or weak models score similarities far below 1e-4: keep them visible.
        let num = |v: Option<f64>| match v {
            Some(v) if v > 0.0 && v < 1e-3 => format!("{v:.0e}"),
            Some(v) => format!("{v:.4}"),
            None => "-".into(),
        };
        let c = e.components;
        let _ = writeln!(
            out,
            "{:>4} {:>4}  {:<12} {:<28} {:<10} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7.4}",
            rank + 1,
            e.uid,
            truncate(&e.hotkey, 12),
            truncate(&model, 28),
            status,
            num(c.map(|c| c.similarity)),
            num(c.map(|c| c.vibe)),
            num(c.map(|c| c.latency)),
            num(c.map(|c| c.size)),
            num(e.total),
            e.weight,
        );
        if let Some(reason) = &e.reason {
            let _ = writeln!(out, "{:>11}└ {reason}", "");
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
                },
                total,
                weights_fingerprint: fingerprint.into(),
                dataset_sha256: String::new(),
                revision_sha: String::new(),
                tokens: 0,
                samples_context_cut: None,
                latency: None,
            }),
            worker: "w".into(),
            attempt: 1,
            started_at_ms: 0,
            finished_at_ms: 0,
        });
        record
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
            })
            .collect();
        let verdicts = validate_submissions(
            &hotkeys,
            &raw,
            ValidationContext {
                current_block: 1_000,
                epoch_start_block: 0,
            },
        );
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
        let board = build(1_000, &verdicts, &records, "v1", &WeightsParams::default());
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
