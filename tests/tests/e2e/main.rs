//! The end-to-end tests, one binary (linking mistral.rs and subxt once): the
//! real binaries, the chain double, the local hub endpoint and the local
//! RabbitMQ and Redis. The shared helpers are the `tests` library
//! (`tests/src/`).
//!
//! Tests that talk to the local RabbitMQ or Redis hold
//! [`tests::sandbox::shared_servers`] while they do; the ones that restart
//! those servers or change their settings hold
//! [`tests::sandbox::exclusive_servers`], so they never overlap.

mod api;
mod chain;
mod cluster;
mod config;
mod deploy;
mod embedded;
mod faults;
mod hub;
mod judge;
mod real_models;
mod retries;
