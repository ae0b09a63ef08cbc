//! The worker's integration tests, one binary (linking mistral.rs once): the
//! consumer loop on the in-memory queue and store, and the engine on
//! generated tiny models of every supported family.

mod consumer;
mod engine;
mod families;
mod support;
