//! One file downloaded through hf-hub, watched: a progress bar for people at a
//! terminal, and a stall timeout for everyone.
//!
//! hf-hub's client has no timeouts, so a hub that stops sending bytes would
//! hold a job until its deadline and then blame the model. Here every chunk
//! hf-hub receives is reported through its `Progress` hook; when none arrives
//! for `stall_timeout` the download is abandoned as a transient failure (the
//! job goes back to the queue, the model is not at fault). Dropping the
//! download future stops the wait; hf-hub's chunk tasks already spawned finish
//! or fail on their own, and its partial file is resumed by the next attempt.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hf_hub::api::tokio::{ApiError, ApiRepo, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// Why a watched download did not produce a file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DownloadError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("no data received for {}s", .0.as_secs_f64())]
    Stalled(Duration),
}

/// Progress bars of the downloads of one command, drawn on stderr (hidden
/// when stderr is not a terminal).
#[derive(Debug, Clone, Default)]
pub struct ProgressBars(MultiProgress);

impl ProgressBars {
    /// Adds `bar` to this display.
    pub fn add(&self, bar: ProgressBar) -> ProgressBar {
        self.0.add(bar)
    }

    fn bar(&self) -> ProgressBar {
        let style = ProgressStyle::with_template(
            "{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        self.0.add(ProgressBar::no_length().with_style(style))
    }
}

/// The `Progress` hook: remembers when the last bytes arrived and moves the
/// bar, if any.
#[derive(Clone)]
struct Watch {
    started: Instant,
    /// Milliseconds after `started` of the last sign of life.
    last_activity_ms: Arc<AtomicU64>,
    bar: Option<ProgressBar>,
}

impl Watch {
    fn new(bar: Option<ProgressBar>) -> Self {
        Self {
            started: Instant::now(),
            last_activity_ms: Arc::new(AtomicU64::new(0)),
            bar,
        }
    }

    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_activity_ms.fetch_max(now, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

impl Progress for Watch {
    async fn init(&mut self, size: usize, filename: &str) {
        self.touch();
        if let Some(bar) = &self.bar {
            bar.set_length(size as u64);
            bar.set_message(filename.to_owned());
        }
    }

    async fn update(&mut self, size: usize) {
        self.touch();
        if let Some(bar) = &self.bar {
            bar.inc(size as u64);
        }
    }

    async fn finish(&mut self) {
        self.touch();
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// Downloads `file` of `repo` into the hub cache, giving up when no bytes
/// arrive for `stall_timeout`.
pub(crate) async fn download(
    repo: &ApiRepo,
    file: &str,
    bars: Option<&ProgressBars>,
    stall_timeout: Duration,
) -> Result<PathBuf, DownloadError> {
    let watch = Watch::new(bars.map(ProgressBars::bar));
    let download = repo.download_with_progress(file, watch.clone());
    tokio::pin!(download);
    let mut check = tokio::time::interval((stall_timeout / 4).max(Duration::from_millis(50)));
    loop {
        tokio::select! {
            result = &mut download => return Ok(result?),
            _ = check.tick() => {
                if watch.idle() >= stall_timeout {
                    if let Some(bar) = &watch.bar {
                        bar.abandon_with_message(format!("{file}: stalled"));
                    }
                    return Err(DownloadError::Stalled(stall_timeout));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn activity_resets_the_idle_time() {
        let mut watch = Watch::new(None);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(watch.idle() >= Duration::from_millis(30));
        watch.update(10).await;
        assert!(watch.idle() < Duration::from_millis(30));
        // Clones share the clock: hf-hub hands a clone to every chunk task.
        let clone = watch.clone();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let mut other = clone.clone();
        other.update(1).await;
        assert!(watch.idle() < Duration::from_millis(30));
    }
}
