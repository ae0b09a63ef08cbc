//! The cluster's clock: the result store's.
//!
//! Leases and publications are compared across machines: a worker stamps
//! `lease_expires_at_ms`, the coordinator's reconciler reclaims the job once
//! its own clock passes it. Machine clocks drift apart; a worker whose clock
//! ran a lease's length behind would see every job reclaimed under it and,
//! after `max_reclaims`, failed as the model's fault. So every participant
//! stamps times with a [`ClusterClock`]: the store's time
//! ([`ResultStore::time_ms`], the Redis server's `TIME`) as last read, plus
//! the time elapsed since on this machine's monotonic clock, which a step of
//! its wall clock does not move. It reads the store's time again once a
//! minute, before a claim or a reconciler pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::{info, warn};

use super::{ResultStore, StoreError, millis};

/// How long a reading of the store's time is used before the next.
const REFRESH_AFTER: Duration = Duration::from_secs(60);

/// A reading whose round trip took longer than this says too little (the
/// store's time is known only to within half the round trip); the last one
/// is kept.
const MAX_ROUND_TRIP: Duration = Duration::from_secs(1);

/// A wall clock this far off the store's is logged: the machine needs its
/// time sync fixed, even though the cluster clock does not depend on it.
const NOTABLE_OFFSET_MS: i64 = 1_000;

/// See the module docs. Clones share their readings.
#[derive(Debug, Clone)]
pub struct ClusterClock {
    wall: fn() -> u64,
    reading: Arc<Mutex<Option<Reading>>>,
}

/// The store's time, and when on this machine's monotonic clock it held.
#[derive(Debug, Clone, Copy)]
struct Reading {
    store_ms: u64,
    at: Instant,
    /// The store's time minus this machine's wall clock.
    offset_ms: i64,
}

impl Default for ClusterClock {
    /// The store's time once read; this machine's wall clock until then.
    fn default() -> Self {
        Self::with_wall_clock(crate::clock::now_ms)
    }
}

impl ClusterClock {
    /// A clock whose machine reads `wall` as its wall clock (tests pass a
    /// skewed one).
    pub fn with_wall_clock(wall: fn() -> u64) -> Self {
        Self {
            wall,
            reading: Arc::default(),
        }
    }

    /// Unix ms on the store's clock.
    pub fn now_ms(&self) -> u64 {
        match *self.reading.lock() {
            Some(r) => r.store_ms.saturating_add(millis(r.at.elapsed())),
            None => (self.wall)(),
        }
    }

    /// How far the store's clock was ahead of this machine's wall clock at
    /// the last reading, in ms (0 before the first).
    pub fn offset_ms(&self) -> i64 {
        self.reading.lock().map_or(0, |r| r.offset_ms)
    }

    /// Reads the store's time unless the last reading is recent.
    pub async fn refresh(&self, store: &dyn ResultStore) -> Result<(), StoreError> {
        let fresh = self
            .reading
            .lock()
            .is_some_and(|r| r.at.elapsed() < REFRESH_AFTER);
        if fresh {
            return Ok(());
        }
        self.read(store).await
    }

    /// Reads the store's time, taking it to hold halfway through the round
    /// trip. A slow round trip keeps the last reading.
    pub async fn read(&self, store: &dyn ResultStore) -> Result<(), StoreError> {
        let sent = Instant::now();
        let wall_sent = (self.wall)();
        let store_ms = store.time_ms().await?;
        let round_trip = sent.elapsed();
        if round_trip > MAX_ROUND_TRIP {
            return Ok(());
        }
        let wall_midpoint = wall_sent.saturating_add(millis(round_trip / 2));
        let offset_ms =
            i64::try_from(i128::from(store_ms) - i128::from(wall_midpoint)).unwrap_or(i64::MAX);
        let reading = Reading {
            store_ms,
            at: sent + round_trip / 2,
            offset_ms,
        };
        let previous = self
            .reading
            .lock()
            .replace(reading)
            .map_or(0, |r| r.offset_ms);
        let notable = |offset: i64| offset.abs() >= NOTABLE_OFFSET_MS;
        if notable(offset_ms) && (offset_ms - previous).abs() >= NOTABLE_OFFSET_MS {
            warn!(
                offset_ms,
                "this machine's clock is off the result store's; times are stamped with the store's (fix the machine's time sync)"
            );
        } else if notable(previous) && !notable(offset_ms) {
            info!(
                offset_ms,
                "this machine's clock agrees with the result store's again"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    const BEHIND_MS: u64 = 10 * 60 * 1000;

    fn ten_minutes_behind() -> u64 {
        crate::clock::now_ms() - BEHIND_MS
    }

    #[tokio::test]
    async fn a_wall_clock_behind_the_store_is_not_used_once_the_store_was_read() {
        let store = MemoryStore::new();
        let clock = ClusterClock::with_wall_clock(ten_minutes_behind);
        assert!(crate::clock::now_ms() - clock.now_ms() >= BEHIND_MS - 1_000);
        clock.refresh(&store).await.unwrap();
        let offset = clock.offset_ms();
        assert!(
            offset.abs_diff(BEHIND_MS as i64) < 1_000,
            "offset {offset} ms, expected about {BEHIND_MS}"
        );
        assert!(clock.now_ms().abs_diff(crate::clock::now_ms()) < 1_000);
        // Clones share the reading; time moves on from it.
        let clone = clock.clone();
        let before = clone.now_ms();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(clone.now_ms() >= before + 20);
        assert_eq!(clone.offset_ms(), offset);
    }

    #[tokio::test]
    async fn a_recent_reading_is_kept() {
        let clock = ClusterClock::default();
        clock.refresh(&MemoryStore::new()).await.unwrap();
        let first = clock.reading.lock().unwrap().at;
        clock.refresh(&MemoryStore::new()).await.unwrap();
        assert_eq!(clock.reading.lock().unwrap().at, first);
        clock.read(&MemoryStore::new()).await.unwrap();
        assert!(clock.reading.lock().unwrap().at > first);
    }
}
