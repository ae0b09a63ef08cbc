//! The mistral.rs evaluator on generated tiny models: the real load, score
//! and generate path, on CPU.

use std::path::Path;

use common::result::FailureCode;
use common::scoring::ScoringProfile;
use worker::dataset::Dataset;
use worker::error::JobError;
use worker::eval::Evaluation;
use worker::fixtures::{TinyModelSpec, write_tiny_model};

use crate::support::{TeacherForced, small_profile};

fn profile() -> ScoringProfile {
    small_profile(3, 2, 32, 2)
}

async fn evaluate(dir: &Path, template: &str) -> Result<Evaluation, JobError> {
    crate::support::evaluate(dir, template, Dataset::builtin(), &profile()).await
}

fn model(seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), &TinyModelSpec::with_seed(seed)).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_are_deterministic_and_differ_between_models() {
    let (a, b) = (model(1), model(2));
    let a1 = evaluate(a.path(), "chatml").await.unwrap();
    let a2 = evaluate(a.path(), "chatml").await.unwrap();
    let b1 = evaluate(b.path(), "chatml").await.unwrap();
    for e in [&a1, &b1] {
        assert!(e.components.is_well_formed(), "{e:?}");
        assert!(e.components.similarity > 0.0 && e.tokens > 0, "{e:?}");
    }
    // Latency is measured wall time; everything else must repeat exactly.
    assert_eq!(a1.components.similarity, a2.components.similarity);
    assert_eq!(a1.components.vibe, a2.components.vibe);
    assert_eq!(a1.components.size, a2.components.size);
    assert_eq!(a1.dataset_sha256, Dataset::builtin().sha256);
    assert_ne!(a1.components.similarity, b1.components.similarity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_template_and_builtins_both_work() {
    let dir = model(3);
    let own = evaluate(dir.path(), "tokenizer").await.unwrap();
    let builtin = evaluate(dir.path(), "chatml").await.unwrap();
    // The generated model ships a ChatML template: both render the same prompts.
    assert_eq!(own.components.similarity, builtin.components.similarity);
    let llama3 = evaluate(dir.path(), "llama3").await.unwrap();
    assert!(llama3.components.is_well_formed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_weights_and_broken_templates_fail_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(
        dir.path(),
        &TinyModelSpec {
            nan: true,
            ..TinyModelSpec::with_seed(4)
        },
    )
    .unwrap();
    match evaluate(dir.path(), "chatml").await {
        Err(JobError::Model(reason)) => assert_eq!(reason.code, FailureCode::NanOutput, "{reason}"),
        other => panic!("expected a NaN failure, got {other:?}"),
    }

    let dir = model(5);
    match evaluate(dir.path(), "no-such-template").await {
        Err(JobError::Model(reason)) => {
            assert_eq!(reason.code, FailureCode::BadTemplate);
            assert!(reason.message.contains("no-such-template"), "{reason}");
        }
        other => panic!("expected a template failure, got {other:?}"),
    }
    // A repository template that raises.
    let config = dir.path().join("tokenizer_config.json");
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    value["chat_template"] = "{{ raise_exception('roles must alternate user/assistant') }}".into();
    std::fs::write(&config, serde_json::to_vec(&value).unwrap()).unwrap();
    match evaluate(dir.path(), "tokenizer").await {
        Err(JobError::Model(reason)) => {
            assert_eq!(reason.code, FailureCode::BadTemplate);
            assert!(reason.message.contains("alternate"), "{reason}");
        }
        other => panic!("expected a template failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teacher_forcing_reads_the_row_that_predicts_each_token() {
    let dir = model(6);
    let forced = TeacherForced::load(dir.path()).await;
    let full = &forced.full;
    assert!(full.iter().all(|p| *p > 0.0 && *p <= 1.0), "{full:?}");
    // Scoring a prefix of the reference gives the same leading probabilities:
    // position j depends only on the tokens before it.
    let prefix = forced.prefix(1).await;
    assert!((prefix[0] - full[0]).abs() < 1e-6, "{prefix:?} vs {full:?}");
    // Greedy generation is deterministic.
    let one = forced
        .loaded
        .generate_greedy(&forced.context, 8)
        .await
        .unwrap();
    let two = forced
        .loaded
        .generate_greedy(&forced.context, 8)
        .await
        .unwrap();
    assert_eq!(one, two);
    forced.loaded.unload().await;
}
