//! Every architecture the engine claims to run ([`worker::model_config::ARCHITECTURES`]),
//! loaded and scored on a generated tiny model of its family, in both the transformers 4
//! and transformers 5 forms of `config.json`; plus what happens with conversations longer
//! than the window and with configs the engine cannot read.

use std::path::Path;

use common::result::SampleRecord;
use common::scoring::ScoringProfile;
use worker::dataset::Dataset;
use worker::error::JobError;
use worker::eval::Evaluation;
use worker::fixtures::{ConfigStyle, TinyFamily, TinyModelSpec, write_tiny_model};
use worker::model_config::ARCHITECTURES;

use crate::support::{TeacherForced, small_profile};

fn profile() -> ScoringProfile {
    small_profile(2, 1, 16, 3)
}

async fn evaluate(
    dir: &Path,
    dataset: Dataset,
    profile: &ScoringProfile,
) -> Result<Evaluation, JobError> {
    crate::support::evaluate(dir, "chatml", dataset, profile).await
}

fn spec(family: TinyFamily, style: ConfigStyle) -> TinyModelSpec {
    TinyModelSpec {
        config_style: style,
        // Three layers: Gemma 3's third layer is its full-attention one.
        num_hidden_layers: 3,
        num_shards: 1,
        ..TinyModelSpec::of_family(family, 11)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_supported_family_loads_and_scores_in_both_config_styles() {
    let families: Vec<&str> = TinyFamily::ALL.iter().map(|f| f.architecture()).collect();
    let claimed: Vec<&str> = ARCHITECTURES.iter().map(|a| a.name).collect();
    assert_eq!(
        families, claimed,
        "every claimed architecture has a fixture"
    );
    for family in TinyFamily::ALL {
        let mut similarity = None;
        for style in [ConfigStyle::Transformers4, ConfigStyle::Transformers5] {
            let dir = tempfile::tempdir().unwrap();
            write_tiny_model(dir.path(), &spec(family, style)).unwrap();
            let before = std::fs::read(dir.path().join("config.json")).unwrap();
            let e = evaluate(dir.path(), Dataset::builtin(), &profile())
                .await
                .unwrap_or_else(|err| panic!("{family:?} {style:?}: {err}"));
            assert!(e.components.is_well_formed(), "{family:?} {style:?}: {e:?}");
            assert!(e.components.similarity > 0.0, "{family:?} {style:?}: {e:?}");
            assert_eq!(e.details.samples.len(), 2);
            assert!(e.details.latency.is_some());
            // The model's own directory is never rewritten.
            assert_eq!(
                std::fs::read(dir.path().join("config.json")).unwrap(),
                before
            );
            // Both styles describe the same model: the same scores.
            match similarity {
                None => similarity = Some(e.components.similarity),
                Some(s) => assert_eq!(s, e.components.similarity, "{family:?} {style:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemma3_text_gives_teacher_forced_raw_logits() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(
        dir.path(),
        &spec(TinyFamily::Gemma3, ConfigStyle::Transformers5),
    )
    .unwrap();
    let forced = TeacherForced::load(dir.path()).await;
    let full = &forced.full;
    assert!(full.iter().all(|p| *p > 0.0 && *p < 1.0), "{full:?}");
    let prefix = forced.prefix(2).await;
    assert!((prefix[0] - full[0]).abs() < 1e-6, "{prefix:?} vs {full:?}");
    assert!((prefix[1] - full[1]).abs() < 1e-6, "{prefix:?} vs {full:?}");
    forced.loaded.unload().await;
}

/// A conversation whose context alone is several windows long.
fn long_dataset(turns: usize) -> Dataset {
    let mut messages =
        vec![serde_json::json!({"role": "system", "content": "You are Bram, a tavern keeper."})];
    for i in 0..turns {
        messages.push(serde_json::json!({"role": "user", "content": format!("Tell me the story of the dragon number {i}, all of it, with every detail you know.")}));
        messages.push(serde_json::json!({"role": "assistant", "content": format!("Ah, dragon {i}! It came over the hills at night and the whole town woke to its roar.")}));
    }
    messages.push(serde_json::json!({"role": "user", "content": "And the last one?"}));
    messages.push(serde_json::json!({"role": "assistant", "content": "The last one still sleeps under the castle."}));
    let short = serde_json::json!({"id": "short", "messages": [
        {"role": "user", "content": "Hello there!"},
        {"role": "assistant", "content": "Hello, traveller."}]});
    let long = serde_json::json!({"id": "long", "messages": messages});
    Dataset::parse(&format!("{long}\n{short}\n")).unwrap()
}

/// The record of the sample of conversation `id`.
fn sample<'a>(e: &'a Evaluation, id: &str) -> &'a SampleRecord {
    e.details
        .samples
        .iter()
        .find(|s| s.conversation_id == id)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_longer_than_the_window_are_cut_not_failed() {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinyModelSpec {
        max_position_embeddings: 256,
        ..TinyModelSpec::with_seed(12)
    };
    write_tiny_model(dir.path(), &spec).unwrap();
    let mut profile = profile();
    profile.vibe_samples = 2;
    let e = evaluate(dir.path(), long_dataset(40), &profile)
        .await
        .expect("a long dataset must not fail the model");
    assert!(e.components.is_well_formed(), "{e:?}");
    assert_eq!(e.details.samples_context_cut, 1, "{:?}", e.details.samples);
    let long = sample(&e, "long");
    assert!(long.context_cut && long.similarity > 0.0, "{long:?}");
    assert!(long.vibe.is_some());
    let short = sample(&e, "short");
    assert!(!short.context_cut);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_the_engine_cannot_read_is_its_limitation_not_the_models_fault() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), &TinyModelSpec::with_seed(13)).unwrap();
    // YaRN scaling is valid transformers, but mistral.rs 0.8.1's Llama does not know it.
    let path = dir.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0,
        "original_max_position_embeddings": 128});
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    match evaluate(dir.path(), Dataset::builtin(), &profile()).await {
        Err(JobError::Transient { message, .. }) => {
            assert!(message.contains("yarn"), "{message}");
            assert!(message.contains("engine"), "{message}");
        }
        other => panic!("expected an engine limitation, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_a_steady_median_and_totals_repeat() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), &TinyModelSpec::with_seed(14)).unwrap();
    let profile = profile();
    let a = evaluate(dir.path(), Dataset::builtin(), &profile)
        .await
        .unwrap();
    let b = evaluate(dir.path(), Dataset::builtin(), &profile)
        .await
        .unwrap();
    let (ta, tb) = (profile.total(&a.components), profile.total(&b.components));
    assert!((ta - tb).abs() <= 0.005 * ta.max(tb), "{ta} vs {tb}");
    for e in [&a, &b] {
        let latency = e.details.latency.unwrap();
        assert_eq!(latency.repeats, 3);
        assert!(latency.min_ms <= latency.median_ms && latency.median_ms <= latency.max_ms);
        assert!(latency.min_ms > 0.0, "{latency:?}");
    }
}
