//! The coordinator: the validator's long-running process.
//!
//! # Layout
//! - [`config`]: layered, validated configuration.
//! - [`chain`]: which chain `coordinator run` uses (subtensor, or a local
//!   chain read from a submissions file).
//! - [`service`]: the loop — read the chain, judge submissions, enqueue jobs,
//!   reconcile, aggregate results and set weights.
//! - [`reconcile`]: the one owner of the job lifecycle between the queue and
//!   the store: publishes, reclaims expired leases, settles dead letters.
//! - [`leaderboard`]: the pure step from verdicts and results to a ranked
//!   leaderboard and weights.
//! - [`view`]: what the coordinator last saw and did, shared with the API.
//! - [`run`]: `coordinator run`, the production coordinator on RabbitMQ and
//!   Redis.
//! - [`submit`]: `coordinator submit`, a miner's on-chain commitment (the
//!   coordinator holds the chain client; the worker has none).
//! - [`metrics`]: the coordinator's Prometheus metrics.
//! - [`api`]: the HTTP API, the leaderboard page and `/metrics`.

pub mod api;
pub mod chain;
pub mod config;
pub mod leaderboard;
pub mod metrics;
pub mod reconcile;
pub mod run;
pub mod service;
pub mod submit;
pub mod view;
