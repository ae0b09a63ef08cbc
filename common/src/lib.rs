//! Shared ground of the evaluation cluster: the domain and one trait per
//! external system.
//!
//! # Layout
//! Pure domain logic (no I/O, unit-tested on hand-computed cases):
//! - [`submission`]: commit strings, the hotkey hash binding, validity and
//!   duplicate rules.
//! - [`job`], [`result`]: content-derived job ids, job status, and the
//!   versioned wire types (golden fixtures in `testdata/`).
//! - [`scoring`]: scoring profiles as data and the v1 formulas.
//! - [`chain_weights`]: pairwise wins, softmax and u16 scaling.
//!
//! External systems, each a trait with an in-memory implementation (the real
//! ones plug in behind the same trait, and the `testsuite` modules hold the
//! contract both must pass):
//! - [`chain::Chain`]: metagraph, commitments, set_weights (commit-reveal
//!   through `reveal_due`); the subxt client is `chain::subtensor` (feature
//!   `subtensor`), with the hotkey files and the pending-commit state.
//! - [`queue::JobQueue`]: at-least-once job delivery.
//! - [`store::ResultStore`]: job state, leases, results, leaderboard.
//!
//! Process plumbing both binaries use: [`config`], [`options`] (the option
//! groups and `main` they share), [`metrics`], [`secret_url`], [`shutdown`],
//! [`telemetry`], [`clock`]; and `retry`, the one backoff policy of the real
//! queue, store and chain clients (with any of their features).

pub mod chain;
pub mod chain_weights;
pub mod clock;
pub mod config;
pub mod job;
pub mod metrics;
pub mod options;
pub mod queue;
pub mod result;
#[cfg(any(feature = "rabbitmq", feature = "redis", feature = "subtensor"))]
pub mod retry;
pub mod scoring;
pub mod secret_url;
pub mod shutdown;
pub mod store;
pub mod submission;
pub mod telemetry;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

/// `Debug` for a struct that also holds handles with nothing useful to print
/// (trait objects, engine handles, locks): the named fields, then `..`.
/// `debug_fields!(Reconciler { settings })`.
#[macro_export]
macro_rules! debug_fields {
    ($type:ident { $($field:ident),+ $(,)? }) => {
        impl ::std::fmt::Debug for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($type))
                    $(.field(stringify!($field), &self.$field))+
                    .finish_non_exhaustive()
            }
        }
    };
}
