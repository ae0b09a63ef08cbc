//! The coordinator's integration tests, one binary: the loop and the HTTP API
//! in process, on the in-memory chain, queue and store.

mod api;
mod reconcile;
mod service;
