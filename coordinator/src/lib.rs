//! The coordinator: the validator's long-running process.
//!
//! # Layout
//! - [`config`]: layered, validated configuration.
//! - [`chain`]: which chain `coordinator run` uses (subtensor or local).
//! - [`service`]: the loop — read the chain, judge submissions, enqueue jobs,
//!   reconcile, aggregate results and set weights.
//! - [`reconcile`]: the one owner of the job lifecycle between the queue and
//!   the store: publishes, reclaims expired leases, settles dead letters.
//! - [`leaderboard`]: the pure step from verdicts and results to a ranked
//!   leaderboard and weights.
//! - [`view`]: what the coordinator last saw and did, shared with the API.
//! - [`embedded`] (feature `embedded`): the whole validator in one process.
//! - [`local`]: `coordinator run` on RabbitMQ and Redis with submissions from a file.
//! - [`metrics`]: the coordinator's Prometheus metrics.
//! - [`api`]: the HTTP API, the leaderboard page and `/metrics`.

pub mod api;
pub mod chain;
pub mod config;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod leaderboard;
pub mod local;
pub mod metrics;
pub mod reconcile;
pub mod service;
pub mod view;
