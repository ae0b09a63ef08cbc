//! The one retry policy: exponential backoff with jitter, from `backon`.
//!
//! The RabbitMQ queue (reconnects), the Redis store (commands) and the
//! subtensor client (reconnects) all wait between tries by [`Delays`]. Each
//! keeps its own loop: what it logs and counts between tries, what it
//! repairs, when it gives up and how shutdown cancels it; this module only
//! says how long to wait.
//!
//! # The delays
//! Before try `n + 1` the nominal delay is `d = min(first * 2^(n-1), max)`,
//! the doubling the hand-written loops had. The pause is drawn uniformly from
//! `[d/2, d]` ("equal jitter"): never longer than `max` (the configured
//! "longest pause" stays true), never shorter than half the nominal delay,
//! and clients that failed together (every worker when the broker restarts)
//! spread out instead of retrying in step.
//!
//! backon's jitter adds up to 100% on top of its delay, so the builder runs on
//! half the nominal values; [`Delays`] clamps to `max` besides, because
//! backon computes in `f32`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Growth of the nominal delay per try.
pub const FACTOR: f32 = 2.0;

/// The policy as a backon builder: jitter on, no limit on the number of
/// tries (callers stop on their own conditions), nominal delays from
/// `first` doubling up to `max` (`first` above `max` is taken as `max`).
pub fn exponential(first: Duration, max: Duration) -> ExponentialBuilder {
    let (min_delay, max_delay) = jittered_bounds(first, max);
    ExponentialBuilder::new()
        .with_min_delay(min_delay)
        .with_max_delay(max_delay)
        .with_factor(FACTOR)
        .with_jitter()
        .without_max_times()
}

/// The min and max delay for a jittered backon builder made elsewhere (a
/// library's own reconnects, configured by min, max and factor) so that its
/// pauses follow this policy too.
pub fn jittered_bounds(first: Duration, max: Duration) -> (Duration, Duration) {
    (first.min(max) / 2, max / 2)
}

/// The pauses of one run of retries; start a new one after a success.
#[derive(Debug)]
pub struct Delays {
    backoff: ExponentialBackoff,
    max: Duration,
}

impl Delays {
    /// Nominal delays from `first` doubling up to `max`, jittered (see the
    /// module docs).
    pub fn new(first: Duration, max: Duration) -> Self {
        Self::from_builder(exponential(first, max), max)
    }

    fn from_builder(builder: ExponentialBuilder, max: Duration) -> Self {
        Self {
            backoff: builder.build(),
            max,
        }
    }

    /// How long to wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        // The builder sets no limit on tries, so `None` never comes; the cap
        // is the right answer if it did.
        self.backoff.next().unwrap_or(self.max).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Nominal delays of the hand-written loops this policy replaced.
    fn nominal(first: Duration, max: Duration, tries: usize) -> Vec<Duration> {
        std::iter::successors(Some(first.min(max)), |d| Some((*d * 2).min(max)))
            .take(tries)
            .collect()
    }

    /// Within `[d/2, d]`, allowing for backon's `f32` arithmetic below.
    fn assert_within(delay: Duration, d: Duration) {
        let slack = ms(1);
        assert!(delay <= d, "{delay:?} above {d:?}");
        assert!(delay + slack >= d / 2, "{delay:?} below half of {d:?}");
    }

    #[test]
    fn delays_double_within_jitter_bounds_and_stop_at_the_cap() {
        for (first, max) in [
            (ms(100), ms(5_000)),
            (ms(50), ms(2_000)),
            (ms(1_000), ms(60_000)),
        ] {
            for seed in 0..50 {
                let mut delays =
                    Delays::from_builder(exponential(first, max).with_jitter_seed(seed), max);
                for d in nominal(first, max, 20) {
                    assert_within(delays.next_delay(), d);
                }
                // Long after reaching the cap, still capped and still jittered.
                for _ in 0..1_000 {
                    assert_within(delays.next_delay(), max);
                }
            }
        }
    }

    #[test]
    fn delays_are_jittered() {
        let firsts: Vec<Duration> = (0..64)
            .map(|seed| {
                Delays::from_builder(
                    exponential(ms(100), ms(5_000)).with_jitter_seed(seed),
                    ms(5_000),
                )
                .next_delay()
            })
            .collect();
        let distinct: std::collections::HashSet<_> = firsts.iter().collect();
        assert!(distinct.len() > 32, "{firsts:?}");
        // Spread over the range, not bunched at one end.
        assert!(firsts.iter().any(|d| *d < ms(70)), "{firsts:?}");
        assert!(firsts.iter().any(|d| *d > ms(80)), "{firsts:?}");
    }

    #[test]
    fn a_first_delay_above_the_cap_is_the_cap() {
        let mut delays = Delays::new(ms(100), ms(40));
        for _ in 0..100 {
            assert_within(delays.next_delay(), ms(40));
        }
    }

    #[test]
    fn a_zero_cap_never_waits() {
        let mut delays = Delays::new(ms(100), Duration::ZERO);
        for _ in 0..10 {
            assert_eq!(delays.next_delay(), Duration::ZERO);
        }
    }
}
