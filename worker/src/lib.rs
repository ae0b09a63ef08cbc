//! The evaluation worker: consumes jobs, fetches models, scores them with
//! mistral.rs and stores the results.
//!
//! # Layout
//! - [`run`]: `worker run`, the deployed worker on RabbitMQ and Redis,
//!   with its `/metrics`, `/healthz` and `/readyz` endpoint.
//! - [`eval_cmd`]: `worker eval`, a miner's local scoring.
//! - [`engine`]: the mistral.rs evaluator.
//! - [`fixtures`]: generated tiny models for tests and demos.
//! - [`consumer`]: the job loop (claim, fetch, evaluate, finish, ack) and its
//!   failure handling.
//! - [`source`]: the [`source::ModelSource`] trait, the local-directory and
//!   Hugging Face sources, the dataset download, and the precheck pipeline
//!   every source runs before downloading weights ([`source::precheck`]: file
//!   rules, architectures, memory estimate, chat template).
//! - [`eval`]: the [`eval::Evaluator`] trait and the context fitting.
//! - [`dataset`]: the evaluation dataset (parsing and validation only).
//! - [`template`]: chat templates, rendered in a sandbox.
//! - [`paths`]: path safety, a leaf shared by sources and datasets.
//! - [`error`]: job errors classified by what happens next.
//! - [`metrics`]: the worker's Prometheus metrics.
//! - [`model_config`]: the architectures the engine runs and the `config.json`
//!   variations it reads.
//! - [`gpu`]: the host's GPUs (name, total and free memory), if any.

// The CUDA build takes cudarc's bindings from the toolkit it is built with; the
// default feature pins them to CUDA 12.8 for the CPU build's run-time loading.
#[cfg(all(feature = "cuda", feature = "cuda-12080-bindings"))]
compile_error!(
    "build the `cuda` feature with `--no-default-features` (scripts/build-cuda-worker does): \
     the default `cuda-12080-bindings` would bind cudarc to CUDA 12.8 whatever the toolkit is"
);

pub mod config;
pub mod consumer;
pub mod dataset;
pub mod engine;
pub mod error;
pub mod eval;
pub mod eval_cmd;
pub mod fixtures;
pub mod gpu;
pub mod metrics;
pub mod model_config;
#[cfg(test)]
mod module_graph;
pub mod paths;
pub mod run;
pub mod source;
pub mod template;
