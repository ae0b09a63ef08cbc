//! Scoring throughput of the mistral.rs engine on a generated tiny model, on
//! whatever device the build targets (CPU by default).
//!
//! `cargo bench -p worker --bench scoring --profile dev` (the one profile the
//! workspace builds; dependencies are optimised in it) — prints tokens/s for teacher-forced
//! scoring (the similarity component) and greedy decoding (the vibe
//! component), over the built-in dataset.

use std::time::Instant;

use common::scoring::ScoringProfile;
use worker::dataset::Dataset;
use worker::engine::{EngineOptions, LoadedModel};
use worker::fixtures::{TinyModelSpec, write_tiny_model};
use worker::template::ChatTemplate;

const ROUNDS: usize = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = TinyModelSpec::with_seed(1);
    let files = write_tiny_model(dir.path(), &spec).expect("tiny model");
    let model = LoadedModel::load(dir.path(), EngineOptions::default())
        .await
        .expect("load");
    let profile = ScoringProfile::v1();
    let dataset = Dataset::builtin();
    let template = ChatTemplate::select("chatml", None, "<s>", "<|im_end|>").expect("template");
    let samples: Vec<(Vec<u32>, Vec<u32>, usize)> = dataset
        .conversations
        .iter()
        .map(|c| {
            let context = model
                .tokenize(&template.render(c.context(), true).expect("render"))
                .expect("tokenize");
            let mut reference = model.tokenize(c.reference()).expect("tokenize");
            reference.truncate(profile.max_reference_tokens);
            let budget = profile.vibe_budget(c.last_user().chars().count());
            (context, reference, budget)
        })
        .collect();

    // Warm-up.
    let (context, reference, _) = &samples[0];
    model
        .teacher_forced_top_k_probs(context, reference, profile.top_k, profile.floor_probability)
        .await
        .expect("score");

    let mut scored_tokens = 0usize;
    let start = Instant::now();
    for _ in 0..ROUNDS {
        for (context, reference, _) in &samples {
            model
                .teacher_forced_top_k_probs(
                    context,
                    reference,
                    profile.top_k,
                    profile.floor_probability,
                )
                .await
                .expect("score");
            scored_tokens += context.len() + reference.len();
        }
    }
    let scoring = start.elapsed();

    let mut decoded_tokens = 0usize;
    let start = Instant::now();
    for (context, _, budget) in &samples {
        let reply = model
            .generate_greedy(context, *budget)
            .await
            .expect("generate");
        decoded_tokens += model.tokenize(&reply).expect("tokenize").len();
    }
    let decoding = start.elapsed();
    let latency = model
        .forward_latency(profile.latency_input_tokens, 10)
        .await
        .expect("latency")
        .median_ms;
    model.unload().await;

    println!(
        "tiny model: {} parameters, hidden {}, {} layers, vocab {}",
        files.parameters, spec.hidden_size, spec.num_hidden_layers, spec.vocab_size
    );
    println!(
        "teacher-forced scoring: {scored_tokens} tokens in {:.3} s = {:.0} tokens/s ({} requests)",
        scoring.as_secs_f64(),
        scored_tokens as f64 / scoring.as_secs_f64(),
        ROUNDS * samples.len()
    );
    println!(
        "greedy decoding: {decoded_tokens} tokens in {:.3} s = {:.0} tokens/s",
        decoding.as_secs_f64(),
        decoded_tokens as f64 / decoding.as_secs_f64()
    );
    println!(
        "forward latency ({} tokens): {latency:.2} ms",
        profile.latency_input_tokens
    );
}
