//! From scores to chain weights (docs/architecture.md §8). Pure and deterministic.
//!
//! 1. Every pair of eligible uids plays a match: the higher score wins, but the
//!    later submission's score is first multiplied by `1 - earlier_advantage`.
//! 2. `win_rate = wins / (n - 1)`.
//! 3. Weights are `softmax(win_rate / temperature)` over eligible uids;
//!    ineligible uids (invalid, zero or non-finite score) get nothing.
//! 4. Optionally a burn uid receives a fixed fraction.
//! 5. For the extrinsic, weights are scaled to u16 with the largest at 65535.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One uid as the aggregator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Contender {
    pub uid: u16,
    /// Total score of the uid's evaluated model (0 when none).
    pub score: f64,
    /// Submission block; earlier submitters get the advantage.
    pub block: u64,
    /// Whether the submission passed the validity rules.
    pub valid: bool,
}

impl Contender {
    fn eligible(&self) -> bool {
        self.valid && self.score.is_finite() && self.score > 0.0
    }
}

/// A uid that receives a fixed share of the weights, e.g. the subnet owner's burn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Burn {
    pub uid: u16,
    /// In `[0, 1]`.
    pub fraction: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsParams {
    pub temperature: f64,
    /// Factor knocked off the later submitter's score in each match.
    pub earlier_advantage: f64,
    pub burn: Option<Burn>,
}

impl Default for WeightsParams {
    fn default() -> Self {
        Self {
            temperature: 0.075,
            earlier_advantage: 0.03,
            burn: None,
        }
    }
}

impl WeightsParams {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err("temperature must be positive".into());
        }
        if !(0.0..1.0).contains(&self.earlier_advantage) {
            return Err("earlier_advantage must be in [0, 1)".into());
        }
        if let Some(burn) = self.burn
            && !(0.0..=1.0).contains(&burn.fraction)
        {
            return Err("burn fraction must be in [0, 1]".into());
        }
        Ok(())
    }
}

/// Whether `a` beats `b` in their match.
fn beats(a: &Contender, b: &Contender, advantage: f64) -> bool {
    let penalty = 1.0 - advantage;
    let a_score = if a.block > b.block {
        a.score * penalty
    } else {
        a.score
    };
    let b_score = if b.block > a.block {
        b.score * penalty
    } else {
        b.score
    };
    a_score > b_score
}

/// Win rate of every eligible uid (ineligible uids are absent).
pub fn win_rates(contenders: &[Contender], params: &WeightsParams) -> BTreeMap<u16, f64> {
    let eligible: Vec<&Contender> = contenders.iter().filter(|c| c.eligible()).collect();
    let opponents = eligible.len().saturating_sub(1);
    eligible
        .iter()
        .map(|a| {
            if opponents == 0 {
                return (a.uid, 1.0);
            }
            let wins = eligible
                .iter()
                .filter(|b| b.uid != a.uid && beats(a, b, params.earlier_advantage))
                .count();
            (a.uid, wins as f64 / opponents as f64)
        })
        .collect()
}

/// Normalised weights (summing to 1, or empty when nobody is eligible and
/// there is no burn) for every uid that gets a share.
pub fn compute_weights(contenders: &[Contender], params: &WeightsParams) -> BTreeMap<u16, f64> {
    let rates = win_rates(contenders, params);
    let mut weights = BTreeMap::new();
    if !rates.is_empty() {
        // Subtract the max before exponentiating: same result, no overflow.
        let max = rates.values().fold(f64::NEG_INFINITY, |m, r| m.max(*r));
        let exps: Vec<(u16, f64)> = rates
            .iter()
            .map(|(&uid, r)| (uid, ((r - max) / params.temperature).exp()))
            .collect();
        let sum: f64 = exps.iter().map(|(_, e)| e).sum();
        weights.extend(exps.into_iter().map(|(uid, e)| (uid, e / sum)));
    }
    match params.burn {
        Some(burn) if weights.is_empty() => {
            weights.insert(burn.uid, 1.0);
        }
        Some(burn) => {
            for w in weights.values_mut() {
                *w *= 1.0 - burn.fraction;
            }
            *weights.entry(burn.uid).or_insert(0.0) += burn.fraction;
        }
        None => {}
    }
    weights.retain(|_, w| *w > 0.0);
    weights
}

/// Weights as the `set_weights` extrinsic takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct U16Weights {
    pub uids: Vec<u16>,
    pub weights: Vec<u16>,
}

/// Scales weights so the largest is 65535, rounding, and drops zeros.
///
/// Rounds exact halves to even, as Python's `round` in the bittensor SDK's
/// `convert_weights_and_uids_for_emit` does: validators that disagree on a
/// tie send different uids.
pub fn to_u16(weights: &BTreeMap<u16, f64>) -> U16Weights {
    let max = weights.values().fold(0.0f64, |m, w| m.max(*w));
    let mut out = U16Weights::default();
    if max <= 0.0 {
        return out;
    }
    for (&uid, &w) in weights {
        let scaled = (w / max * f64::from(u16::MAX)).round_ties_even();
        if scaled >= 1.0 {
            out.uids.push(uid);
            out.weights.push(scaled.min(f64::from(u16::MAX)) as u16);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn c(uid: u16, score: f64, block: u64) -> Contender {
        Contender {
            uid,
            score,
            block,
            valid: true,
        }
    }

    #[test]
    fn u16_scaling_rounds_halves_to_even_like_the_sdk() {
        // 7.629510948348211e-06 * 65535 is exactly 0.5: Python's round gives
        // 0, so the SDK drops uid 1 (half away from zero would send it as 1).
        let w = BTreeMap::from([(0, 1.0), (1, 7.629510948348211e-06)]);
        assert_eq!(7.629510948348211e-06 * f64::from(u16::MAX), 0.5);
        assert_eq!(
            to_u16(&w),
            U16Weights {
                uids: vec![0],
                weights: vec![65535]
            }
        );
        // 1.5 rounds up to 2 (even), 2.5 down to 2.
        let w = BTreeMap::from([(0, 65535.0), (1, 1.5), (2, 2.5)]);
        assert_eq!(
            to_u16(&w),
            U16Weights {
                uids: vec![0, 1, 2],
                weights: vec![65535, 2, 2]
            }
        );
    }

    #[test]
    fn three_uids_hand_computed() {
        // uid0 0.80 @100, uid1 0.82 @200, uid2 0.50 @50.
        // 0 vs 1: 0.82*0.97 = 0.7954 < 0.80 -> 0 wins; 0 vs 2: 0.80*0.97 = 0.776 > 0.5 -> 0;
        // 1 vs 2: 0.7954 > 0.5 -> 1. Win rates 1, 0.5, 0.
        let contenders = [c(0, 0.80, 100), c(1, 0.82, 200), c(2, 0.50, 50)];
        let params = WeightsParams::default();
        let rates = win_rates(&contenders, &params);
        assert_eq!(rates, BTreeMap::from([(0, 1.0), (1, 0.5), (2, 0.0)]));
        // softmax([1, .5, 0] / 0.075), computed independently in Python.
        let w = compute_weights(&contenders, &params);
        let expected = [
            0.9987273682571907,
            0.0012710142071672508,
            1.6175356420241606e-06,
        ];
        for (uid, e) in expected.iter().enumerate() {
            assert!(
                (w[&(uid as u16)] - e).abs() < 1e-15,
                "uid {uid}: {} vs {e}",
                w[&(uid as u16)]
            );
        }
        // 65535 * 1.6e-6 / 0.9987 rounds to 0: uid 2 is dropped.
        assert_eq!(
            to_u16(&w),
            U16Weights {
                uids: vec![0, 1],
                weights: vec![65535, 83]
            }
        );
    }

    #[test]
    fn earlier_advantage_decides_close_scores() {
        // uid1 scores 2% better but came later: uid0 still wins.
        let params = WeightsParams::default();
        let rates = win_rates(&[c(0, 0.50, 10), c(1, 0.51, 20)], &params);
        assert_eq!(rates, BTreeMap::from([(0, 1.0), (1, 0.0)]));
        // 4% better is enough.
        let rates = win_rates(&[c(0, 0.50, 10), c(1, 0.52, 20)], &params);
        assert_eq!(rates, BTreeMap::from([(0, 0.0), (1, 1.0)]));
    }

    #[test]
    fn invalid_and_zero_scores_get_nothing_and_burn_takes_its_share() {
        let contenders = [
            c(0, 0.5, 1),
            Contender {
                valid: false,
                ..c(1, 0.9, 1)
            },
            c(2, 0.0, 1),
            c(3, f64::NAN, 1),
        ];
        let params = WeightsParams {
            burn: Some(Burn {
                uid: 9,
                fraction: 0.25,
            }),
            ..Default::default()
        };
        let w = compute_weights(&contenders, &params);
        assert_eq!(w, BTreeMap::from([(0, 0.75), (9, 0.25)]));
        // Nobody eligible: everything burns; without burn, nothing to set.
        assert_eq!(
            compute_weights(&contenders[1..], &params),
            BTreeMap::from([(9, 1.0)])
        );
        assert!(compute_weights(&contenders[1..], &WeightsParams::default()).is_empty());
        assert_eq!(to_u16(&BTreeMap::new()), U16Weights::default());
    }

    fn arb_contenders() -> impl Strategy<Value = Vec<Contender>> {
        proptest::collection::vec((0.0f64..1.0, 0u64..1_000, any::<bool>()), 1..24).prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(uid, (score, block, valid))| Contender {
                    uid: uid as u16,
                    score,
                    block,
                    valid,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn weights_sum_to_one_and_only_eligible_uids_get_any(contenders in arb_contenders()) {
            let w = compute_weights(&contenders, &WeightsParams::default());
            let any_eligible = contenders.iter().any(Contender::eligible);
            if any_eligible {
                prop_assert!((w.values().sum::<f64>() - 1.0).abs() < 1e-9);
            } else {
                prop_assert!(w.is_empty());
            }
            for c in &contenders {
                if !c.eligible() {
                    prop_assert!(!w.contains_key(&c.uid));
                }
            }
            let scaled = to_u16(&w);
            if any_eligible {
                prop_assert_eq!(scaled.weights.iter().max(), Some(&u16::MAX));
            }
            prop_assert!(scaled.weights.iter().all(|&x| x > 0));
        }

        #[test]
        fn strictly_better_earlier_model_never_ranks_below_a_later_one(contenders in arb_contenders()) {
            let w = compute_weights(&contenders, &WeightsParams::default());
            for a in contenders.iter().filter(|c| c.eligible()) {
                for b in contenders.iter().filter(|c| c.eligible()) {
                    if a.block < b.block && a.score > b.score {
                        prop_assert!(w[&a.uid] >= w[&b.uid], "{a:?} ranked below {b:?}");
                    }
                }
            }
        }
    }
}
