//! Evaluation: turning a model on disk into the components of a scoring
//! profile.
//!
//! [`Evaluator`] is the seam: the mistral.rs engine implements it for real
//! models. Evaluation is long and blocking; implementations run it off the
//! async runtime, report progress through [`Progress`], and stop between
//! steps when the cancellation token fires (deadline, lost lease, shutdown).

pub mod dataset;
pub mod template;

use async_trait::async_trait;
use common::job::JobV1;
use common::result::ComponentScores;
use common::scoring::ScoringProfile;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::JobError;
use crate::source::LocalModel;

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub components: ComponentScores,
    /// Tokens scored or generated.
    pub tokens: u64,
    /// sha256 of the dataset the samples came from.
    pub dataset_sha256: String,
}

/// A handle to report a job's progress in `[0, 1]`; cheap to clone and
/// usable from blocking threads.
#[derive(Debug, Clone)]
pub struct Progress(watch::Sender<f64>);

impl Progress {
    pub fn new() -> (Self, watch::Receiver<f64>) {
        let (tx, rx) = watch::channel(0.0);
        (Self(tx), rx)
    }

    pub fn set(&self, fraction: f64) {
        self.0.send_replace(fraction.clamp(0.0, 1.0));
    }
}

/// Scores a model under a profile.
#[async_trait]
pub trait Evaluator: Send + Sync + 'static {
    async fn evaluate(
        &self,
        job: &JobV1,
        model: &LocalModel,
        profile: &ScoringProfile,
        progress: Progress,
        cancel: CancellationToken,
    ) -> Result<Evaluation, JobError>;
}
