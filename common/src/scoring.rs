//! Scoring profiles and their pure formulas: profile `v1` (docs/architecture.md §7)
//! and the judge of profile `v2` (§7.1).
//!
//! A profile is data: component weights, sample counts and limits. The engine
//! measures raw quantities (token probabilities, reply lengths, latencies,
//! bytes on disk); the functions here turn them into components in `[0, 1]`
//! and a weighted total, with no I/O, so they are tested on hand-computed
//! numbers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::result::{AnswerProbabilities, ComponentScores, SampleVerdict, VerdictOutcome};

/// Weight of each component in the total. They sum to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentWeights {
    pub similarity: f64,
    pub vibe: f64,
    pub latency: f64,
    pub size: f64,
    /// The LLM judge (profile v2); 0, and absent from the file, without one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub judge: f64,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

/// The local LLM judge of a profile (docs/architecture.md §7.1): which model
/// judges, pinned, and how much it judges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeSettings {
    /// The judge model's Hugging Face repository, `namespace/name`.
    pub repo: String,
    /// The commit sha (40 hex digits) the judge is pinned to, so every worker
    /// judges with the same weights, today and next month.
    pub revision: String,
    /// Chat template the judge's prompt is rendered with: a built-in name or
    /// `tokenizer` (the judge repository's own).
    pub chat_template: String,
    /// Conversations judged: the first this many vibe samples, whose greedy
    /// replies the judge compares with the reference replies.
    pub samples: usize,
    /// Tokens (of the judge's tokenizer) of each reply the judge sees: the
    /// candidate's and the reference are both cut to it, so that length
    /// alone cannot win.
    pub reply_tokens: usize,
}

impl JudgeSettings {
    fn validate(&self, vibe_samples: usize) -> Result<(), String> {
        let parts: Vec<&str> = self.repo.split('/').collect();
        if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "judge.repo must be `namespace/name`, not `{}`",
                self.repo
            ));
        }
        let pinned = self.revision.len() == 40
            && self
                .revision
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !pinned {
            return Err(format!(
                "judge.revision must be a commit sha (40 lowercase hex digits), not `{}`: \
                 a branch would let the judge change under the cluster",
                self.revision
            ));
        }
        if self.chat_template.trim().is_empty() {
            return Err("judge.chat_template must name a template".into());
        }
        if self.samples == 0 || self.reply_tokens == 0 {
            return Err("judge.samples and judge.reply_tokens must be positive".into());
        }
        if self.samples > vibe_samples {
            return Err(format!(
                "judge.samples ({}) must not exceed vibe_samples ({vibe_samples}): \
                 the judge compares the vibe replies",
                self.samples
            ));
        }
        Ok(())
    }
}

/// Everything that defines how a model is scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringProfile {
    /// Recorded with every result; a new version re-evaluates every model.
    pub version: String,
    pub weights: ComponentWeights,
    /// Seed of the fixed sample drawn from the dataset.
    pub sample_seed: u64,
    /// Conversations scored for similarity.
    pub similarity_samples: usize,
    /// Conversations generated for vibe.
    pub vibe_samples: usize,
    /// Reference replies are cut to this many tokens.
    pub max_reference_tokens: usize,
    /// Only the top-k tokens of a position count; others get `floor_probability`.
    pub top_k: usize,
    pub floor_probability: f64,
    /// Similarity averages n-gram products for n = 1..=max_ngram.
    pub max_ngram: usize,
    /// Generation budget as a multiple of the last user message's length in
    /// characters ([`ScoringProfile::vibe_budget`]).
    pub vibe_budget_factor: f64,
    /// Cap of the generation budget, in tokens.
    #[serde(default = "default_vibe_max_tokens")]
    pub vibe_max_tokens: usize,
    /// Input length of the fixed-shape latency probe.
    pub latency_input_tokens: usize,
    /// Timed forward passes of the latency probe; their median is the latency
    /// (after untimed warm-up passes), so one noisy pass cannot move it.
    pub latency_repeats: usize,
    /// Mean forward latency that scores 0.
    pub latency_reference_ms: f64,
    /// Largest accepted model on disk; larger is refused before download.
    pub max_model_bytes: u64,
    /// Hard deadline of one evaluation.
    #[serde(with = "humantime_serde")]
    pub job_deadline: Duration,
    /// The LLM judge (profile v2); absent in profiles without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeSettings>,
}

impl ScoringProfile {
    /// Profile `v1`: the seed subnet's criteria.
    pub fn v1() -> Self {
        Self {
            version: "v1".into(),
            weights: ComponentWeights {
                similarity: 0.82,
                vibe: 0.06,
                latency: 0.06,
                size: 0.06,
                judge: 0.0,
            },
            sample_seed: 11,
            similarity_samples: 64,
            vibe_samples: 16,
            max_reference_tokens: 200,
            top_k: 10,
            floor_probability: 1e-9,
            max_ngram: 4,
            vibe_budget_factor: 1.5,
            vibe_max_tokens: 200,
            latency_input_tokens: 256,
            latency_repeats: 9,
            latency_reference_ms: 10_000.0,
            max_model_bytes: 18_000_000_000,
            job_deadline: Duration::from_secs(3 * 3600),
            judge: None,
        }
    }

    /// Profile `v2`: v1's components with a local LLM judge beside them
    /// (docs/architecture.md §7.1). The judge is Qwen2.5-7B-Instruct, pinned:
    /// about 15 GB in BF16 beside the candidate on the GPU.
    pub fn v2() -> Self {
        let v1 = Self::v1();
        Self {
            version: "v2".into(),
            weights: ComponentWeights {
                similarity: 0.40,
                vibe: 0.06,
                latency: 0.06,
                size: 0.06,
                judge: 0.42,
            },
            judge: Some(JudgeSettings {
                repo: "Qwen/Qwen2.5-7B-Instruct".into(),
                revision: "a09a35458c702b33eeacc393d103063234e8bc28".into(),
                chat_template: "tokenizer".into(),
                samples: v1.vibe_samples,
                reply_tokens: 200,
            }),
            ..v1
        }
    }

    /// The built-in profile called `name` (`v1`, `v2`).
    pub fn builtin(name: &str) -> Option<Self> {
        match name {
            "v1" => Some(Self::v1()),
            "v2" => Some(Self::v2()),
            _ => None,
        }
    }

    /// Conversations the judge compares under this profile when `vibe` samples
    /// were generated: 0 without a judge.
    pub fn judged_samples(&self, vibe: usize) -> usize {
        self.judge.as_ref().map_or(0, |j| j.samples.min(vibe))
    }

    /// Checks the invariants a profile loaded from a file must hold.
    pub fn validate(&self) -> Result<(), String> {
        let w = self.weights;
        let parts = [w.similarity, w.vibe, w.latency, w.size, w.judge];
        if parts.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err("component weights must be finite and non-negative".into());
        }
        if (parts.iter().sum::<f64>() - 1.0).abs() > 1e-9 {
            return Err(format!(
                "component weights sum to {}, not 1",
                parts.iter().sum::<f64>()
            ));
        }
        if self.similarity_samples == 0 || self.top_k == 0 || self.max_ngram == 0 {
            return Err("similarity_samples, top_k and max_ngram must be positive".into());
        }
        if !(self.floor_probability > 0.0 && self.floor_probability < 1.0) {
            return Err("floor_probability must be in (0, 1)".into());
        }
        if self.latency_reference_ms <= 0.0 || self.max_model_bytes == 0 {
            return Err("latency_reference_ms and max_model_bytes must be positive".into());
        }
        if self.job_deadline.is_zero() {
            return Err("job_deadline must be positive".into());
        }
        match &self.judge {
            Some(judge) => judge.validate(self.vibe_samples)?,
            None if w.judge > 0.0 => {
                return Err(
                    "the judge component has a weight but the profile has no [judge]".into(),
                );
            }
            None => {}
        }
        Ok(())
    }

    /// The weighted total of the components (a missing judge component
    /// counts 0).
    pub fn total(&self, c: &ComponentScores) -> f64 {
        let w = self.weights;
        w.similarity * c.similarity
            + w.vibe * c.vibe
            + w.latency * c.latency
            + w.size * c.size
            + w.judge * c.judge.unwrap_or(0.0)
    }

    /// Similarity of one sample from the per-position probabilities of its
    /// reference tokens (already floored outside the top-k): the mean over
    /// n = 1..=max_ngram of (sum of products of n consecutive probabilities)
    /// divided by the number of reference tokens.
    pub fn sample_similarity(&self, probabilities: &[f64]) -> f64 {
        let len = probabilities.len();
        if len == 0 {
            return 0.0;
        }
        let per_n = (1..=self.max_ngram).map(|n| {
            let sum: f64 = probabilities
                .windows(n)
                .map(|w| w.iter().product::<f64>())
                .sum();
            sum / len as f64
        });
        per_n.sum::<f64>() / self.max_ngram as f64
    }

    /// Generation budget in tokens for a last user message of `user_chars`
    /// characters: `min(factor * user_chars, vibe_max_tokens)`, at least 1.
    ///
    /// The seed's validator: `max_tokens = min(int(len(last_user_message) * 1.5), 200)`,
    /// `len` of the string (characters), and the generated reply is compared with the
    /// user message untrimmed ([`sample_vibe`] on the reply's raw character count).
    pub fn vibe_budget(&self, user_chars: usize) -> usize {
        let budget = (user_chars as f64 * self.vibe_budget_factor).floor() as usize;
        budget.min(self.vibe_max_tokens).max(1)
    }

    /// Latency component from the probe's median forward latency.
    pub fn latency_score(&self, median_forward_ms: f64) -> f64 {
        clamp01(1.0 - median_forward_ms / self.latency_reference_ms)
    }

    pub fn size_score(&self, bytes_on_disk: u64) -> f64 {
        clamp01(1.0 - bytes_on_disk as f64 / self.max_model_bytes as f64)
    }
}

fn default_vibe_max_tokens() -> usize {
    200
}

/// The text whose tokens are scored teacher-forced: the reference reply followed by the
/// model's EOS token, so a model is also scored on ending its turn. It is tokenized without
/// adding special tokens (the EOS in the text is still matched as the special token) and cut
/// to the profile's `max_reference_tokens`.
///
/// The seed's validator:
/// `target_ids = tokenizer(reference + tokenizer.eos_token, add_special_tokens=False)
/// .input_ids[:max_reference_tokens]`.
pub fn reference_target(reference: &str, eos_token: &str) -> String {
    format!("{reference}{eos_token}")
}

/// Median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// A logits row contained NaN or an infinity: the model is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("logits contain a non-finite value at vocabulary index {index}")]
pub struct NonFiniteLogits {
    /// First vocabulary index whose logit is not finite.
    pub index: usize,
}

/// The model's probability of `target` at one position if `target` ranks in
/// the top `k` of that position's logits, else `floor`.
///
/// The probability is the full-vocabulary softmax (not renormalised over the
/// top k), computed in f64. "In the top k" means fewer than `k` tokens have a
/// strictly larger logit, so ties at the boundary count for the target. A
/// target outside the row counts as outside the top k.
pub fn top_k_probability(
    logits: &[f32],
    target: u32,
    k: usize,
    floor: f64,
) -> Result<f64, NonFiniteLogits> {
    if let Some(index) = logits.iter().position(|x| !x.is_finite()) {
        return Err(NonFiniteLogits { index });
    }
    let Some(&target_logit) = usize::try_from(target).ok().and_then(|t| logits.get(t)) else {
        return Ok(floor);
    };
    if logits.iter().filter(|&&x| x > target_logit).count() >= k {
        return Ok(floor);
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&x| f64::from(x - max).exp()).sum();
    Ok(f64::from(target_logit - max).exp() / sum)
}

/// Vibe of one sample: `exp(-2 |len(reply) - len(user)| / len(user))` in
/// characters, 0 for an empty user message.
pub fn sample_vibe(reply_chars: usize, user_chars: usize) -> f64 {
    if user_chars == 0 {
        return 0.0;
    }
    let diff = reply_chars.abs_diff(user_chars) as f64;
    (-2.0 * diff / user_chars as f64).exp()
}

/// Mean of per-sample scores, 0 when there are none.
pub fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// The verdict on one sample from the judge's answer probabilities in both
/// orders: `candidate_first` with the candidate's reply as A, `candidate_second`
/// with it as B.
///
/// In each order the candidate's preference is its answer's share of the two
/// answers' probability mass. It wins the sample only if it is preferred
/// (share above 0.5) in both orders, loses only if the reference is preferred
/// in both, and ties otherwise: a judge that always answers "A" (position
/// bias) produces ties, not wins. A candidate identical to the reference
/// always ties, since both orders show the judge the same prompt.
pub fn judge_verdict(
    candidate_first: AnswerProbabilities,
    candidate_second: AnswerProbabilities,
) -> SampleVerdict {
    let first = candidate_first.prefers_a();
    let second = 1.0 - candidate_second.prefers_a();
    let outcome = if first > 0.5 && second > 0.5 {
        VerdictOutcome::Win
    } else if first < 0.5 && second < 0.5 {
        VerdictOutcome::Loss
    } else {
        VerdictOutcome::Tie
    };
    SampleVerdict {
        candidate_first,
        candidate_second,
        preference: (first + second) / 2.0,
        outcome,
    }
}

/// The judge component: `(wins + ties / 2) / samples`, 0 with no samples.
pub fn judge_score(outcomes: impl IntoIterator<Item = VerdictOutcome>) -> f64 {
    let points: Vec<f64> = outcomes
        .into_iter()
        .map(|o| match o {
            VerdictOutcome::Win => 1.0,
            VerdictOutcome::Tie => 0.5,
            VerdictOutcome::Loss => 0.0,
        })
        .collect();
    mean(&points)
}

/// Pearson's correlation of paired values; `None` with fewer than two pairs
/// or when either side does not vary.
pub fn correlation(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 2 {
        return None;
    }
    let n = pairs.len() as f64;
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

fn clamp01(v: f64) -> f64 {
    if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn v1_profile_is_valid_and_totals_as_designed() {
        let p = ScoringProfile::v1();
        p.validate().unwrap();
        let c = ComponentScores {
            similarity: 0.5,
            vibe: 0.25,
            latency: 0.75,
            size: 0.125,
            judge: None,
        };
        // 0.82*0.5 + 0.06*0.25 + 0.06*0.75 + 0.06*0.125 = 0.41 + 0.015 + 0.045 + 0.0075
        assert!(close(p.total(&c), 0.4775));
        let perfect = ComponentScores {
            similarity: 1.0,
            vibe: 1.0,
            latency: 1.0,
            size: 1.0,
            judge: None,
        };
        assert!(close(p.total(&perfect), 1.0));
    }

    #[test]
    fn similarity_hand_computed() {
        let p = ScoringProfile::v1();
        // probs [0.5, 0.5, 1.0], 3 tokens:
        // n=1: (0.5+0.5+1)/3 = 2/3; n=2: (0.25+0.5)/3 = 0.25; n=3: 0.25/3; n=4: 0.
        // mean = (2/3 + 1/4 + 1/12 + 0)/4 = 1/4
        assert!(close(p.sample_similarity(&[0.5, 0.5, 1.0]), 0.25));
        // A perfect 4-token reply: n-gram sums 4,3,2,1 over 4 tokens -> (1+.75+.5+.25)/4.
        assert!(close(p.sample_similarity(&[1.0; 4]), 0.625));
        assert_eq!(p.sample_similarity(&[]), 0.0);
    }

    #[test]
    fn top_k_probability_hand_computed() {
        // logits [0, ln 2, ln 3, ln 4] -> softmax [0.1, 0.2, 0.3, 0.4]
        let logits = [0.0, 2f32.ln(), 3f32.ln(), 4f32.ln()];
        let p = |t, k| top_k_probability(&logits, t, k, 1e-9).unwrap();
        assert!((p(3, 1) - 0.4).abs() < 1e-6);
        assert!((p(1, 3) - 0.2).abs() < 1e-6);
        assert_eq!(p(1, 2), 1e-9);
        assert_eq!(p(0, 0), 1e-9);
        assert_eq!(p(9, 10), 1e-9);
        // Ties at the boundary count for the target.
        assert!(
            (top_k_probability(&[1.0, 1.0, 1.0], 2, 1, 1e-9).unwrap() - 1.0 / 3.0).abs() < 1e-9
        );
        // Stable for large logits.
        let p = top_k_probability(&[1000.0, 999.0], 0, 1, 1e-9).unwrap();
        assert!((p - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-9);
        assert_eq!(
            top_k_probability(&[0.0, f32::NAN], 0, 10, 1e-9),
            Err(NonFiniteLogits { index: 1 })
        );
        assert_eq!(
            top_k_probability(&[f32::INFINITY, 0.0], 1, 10, 1e-9),
            Err(NonFiniteLogits { index: 0 })
        );
    }

    #[test]
    fn vibe_latency_size_hand_computed() {
        assert!(close(sample_vibe(100, 100), 1.0));
        assert!(close(sample_vibe(150, 100), (-1.0f64).exp()));
        assert!(close(sample_vibe(50, 100), (-1.0f64).exp()));
        assert_eq!(sample_vibe(10, 0), 0.0);
        let p = ScoringProfile::v1();
        assert!(close(p.latency_score(2_500.0), 0.75));
        assert_eq!(p.latency_score(20_000.0), 0.0);
        assert_eq!(p.latency_score(f64::NAN), 0.0);
        assert!(close(p.size_score(4_500_000_000), 0.75));
        assert_eq!(p.size_score(20_000_000_000), 0.0);
        // 1.5 x characters, floored, capped at 200 tokens.
        assert_eq!(p.vibe_budget(10), 15);
        assert_eq!(p.vibe_budget(11), 16);
        assert_eq!(p.vibe_budget(133), 199);
        assert_eq!(p.vibe_budget(134), 200);
        assert_eq!(p.vibe_budget(5_000), 200);
        assert_eq!(p.vibe_budget(0), 1);
        assert_eq!(reference_target("Aye.", "</s>"), "Aye.</s>");
        assert_eq!(reference_target("Aye.", ""), "Aye.");
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 100.0]), 3.0);
        assert!(median(&[]).is_nan());
    }

    fn answers(a: f64, b: f64) -> AnswerProbabilities {
        AnswerProbabilities { a, b }
    }

    #[test]
    fn a_verdict_counts_only_when_both_orders_agree() {
        // Candidate preferred as A (0.8 of the mass) and as B (0.6): a win.
        let v = judge_verdict(answers(0.4, 0.1), answers(0.2, 0.3));
        assert_eq!(v.outcome, VerdictOutcome::Win);
        assert!(close(v.preference, (0.8 + 0.6) / 2.0));
        // Position bias: the judge prefers A in both orders, so the candidate
        // wins as A and loses as B. A tie, not a win.
        let v = judge_verdict(answers(0.9, 0.1), answers(0.7, 0.3));
        assert_eq!(v.outcome, VerdictOutcome::Tie);
        assert!(close(v.preference, (0.9 + 0.3) / 2.0));
        let v = judge_verdict(answers(0.1, 0.3), answers(0.5, 0.2));
        assert_eq!(v.outcome, VerdictOutcome::Loss);
        // Swapping the candidate and the reference swaps the orders: a win
        // becomes a loss and the preference its complement.
        let (x, y) = (answers(0.4, 0.1), answers(0.2, 0.3));
        let (win, loss) = (judge_verdict(x, y), judge_verdict(y, x));
        assert_eq!(loss.outcome, VerdictOutcome::Loss);
        assert!(close(win.preference + loss.preference, 1.0));
        // Identical replies show the judge one prompt in both orders: a tie
        // at exactly 0.5, whatever the judge answers.
        for p in [answers(0.7, 0.2), answers(0.0, 0.0), answers(0.3, 0.3)] {
            let v = judge_verdict(p, p);
            assert_eq!((v.outcome, v.preference), (VerdictOutcome::Tie, 0.5));
        }
        use VerdictOutcome::{Loss, Tie, Win};
        assert!(close(judge_score([Win, Tie, Tie, Loss]), 0.5));
        assert!(close(judge_score([Win, Win, Tie, Loss]), 0.625));
        assert_eq!(judge_score([]), 0.0);
    }

    #[test]
    fn correlation_hand_computed() {
        assert_eq!(correlation(&[(1.0, 2.0)]), None);
        assert_eq!(correlation(&[(1.0, 2.0), (1.0, 3.0)]), None);
        let up = correlation(&[(1.0, 1.0), (2.0, 3.0), (3.0, 5.0)]).unwrap();
        assert!(close(up, 1.0));
        let down = correlation(&[(1.0, 1.0), (2.0, 0.0), (3.0, -1.0)]).unwrap();
        assert!(close(down, -1.0));
        // x = [1, 2, 3], y = [1, 3, 2]: sxy = 1, sxx = syy = 2, r = 1 / sqrt(2 * 2).
        let some = correlation(&[(1.0, 1.0), (2.0, 3.0), (3.0, 2.0)]).unwrap();
        assert!(close(some, 0.5));
    }

    #[test]
    fn v2_has_a_pinned_judge_and_v1_totals_as_before() {
        let v2 = ScoringProfile::v2();
        v2.validate().unwrap();
        assert_eq!(ScoringProfile::builtin("v2"), Some(v2.clone()));
        assert_eq!(ScoringProfile::builtin("v1"), Some(ScoringProfile::v1()));
        assert_eq!(ScoringProfile::builtin("v3"), None);
        let c = ComponentScores {
            similarity: 0.5,
            vibe: 0.5,
            latency: 0.5,
            size: 0.5,
            judge: Some(1.0),
        };
        // 0.58 * 0.5 + 0.42 * 1.0
        assert!(close(v2.total(&c), 0.71));
        // v1 ignores a judge component it did not ask for.
        assert!(close(ScoringProfile::v1().total(&c), 0.5));
        assert_eq!(v2.judged_samples(3), 3);
        assert_eq!(v2.judged_samples(100), 16);
        assert_eq!(ScoringProfile::v1().judged_samples(100), 0);

        // v1 serializes as it did before v2 existed: no judge keys.
        let v1 = serde_json::to_string(&ScoringProfile::v1()).unwrap();
        assert!(!v1.contains("judge"), "{v1}");
    }

    #[test]
    fn the_readme_shows_v2_as_it_is() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("```toml\nversion = \"v2\"")
            .expect("the v2 profile in README.md");
        let block = &readme[start + "```toml\n".len()..];
        let block = &block[..block.find("```").unwrap()];
        let shown: ScoringProfile = toml::from_str(block).unwrap();
        assert_eq!(shown, ScoringProfile::v2());
    }

    #[test]
    fn judge_settings_are_checked() {
        let invalid = |edit: fn(&mut ScoringProfile)| {
            let mut p = ScoringProfile::v2();
            edit(&mut p);
            p.validate().unwrap_err()
        };
        assert!(
            invalid(|p| p.judge.as_mut().unwrap().revision = "main".into()).contains("commit sha")
        );
        assert!(
            invalid(|p| p.judge.as_mut().unwrap().repo = "qwen".into()).contains("namespace/name")
        );
        assert!(invalid(|p| p.judge.as_mut().unwrap().samples = 17).contains("vibe_samples"));
        assert!(invalid(|p| p.judge.as_mut().unwrap().reply_tokens = 0).contains("positive"));
        assert!(invalid(|p| p.judge = None).contains("no [judge]"));
    }

    #[test]
    fn profile_validation_catches_bad_weights() {
        let mut p = ScoringProfile::v1();
        p.weights.vibe = 0.5;
        assert!(p.validate().unwrap_err().contains("sum to"));
    }

    #[test]
    fn profiles_written_before_vibe_max_tokens_still_load() {
        let mut json = serde_json::to_value(ScoringProfile::v1()).unwrap();
        json.as_object_mut().unwrap().remove("vibe_max_tokens");
        let p: ScoringProfile = serde_json::from_value(json).unwrap();
        assert_eq!(p.vibe_max_tokens, 200);
    }

    #[test]
    fn profile_round_trips_through_toml_like_json() {
        let p = ScoringProfile::v1();
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"job_deadline\":\"3h\""));
        assert_eq!(serde_json::from_str::<ScoringProfile>(&json).unwrap(), p);
    }
}
