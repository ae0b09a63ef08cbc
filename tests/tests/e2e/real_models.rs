//! The evaluator on real models, SmolLM2-135M-Instruct and Gemma 3 270M
//! (`tests::real_models`, built by `scripts/real-models/build`): the real
//! mistral.rs load and scoring path on CPU, checked against a random model,
//! against itself (seed, dtype) and against an independent numpy forward pass,
//! and the `worker eval` command fetching it from the local hub endpoint.
//!
//! Kept lean: a SmolLM2 conversation costs 1-3 s to score on two cores, so
//! each evaluation scores two short conversations and probes latency on a few
//! tokens only.

use std::path::Path;

use common::job::{JobMessage, JobOrigin, ModelRef};
use common::scoring::ScoringProfile;
use tests::hub::HubServer;
use tests::real_models::{GEMMA3, SMOLLM2, SMOLLM2_F32, reference_logprobs, repo};
use worker::dataset::{BUILTIN, Dataset, Message, Role};
use worker::engine::{EngineOptions, LoadedModel, MistralEvaluator};
use worker::eval::{EvalTask, Evaluation, Evaluator, Progress};
use worker::fixtures::{TinyModelSpec, write_tiny_model};
use worker::source::{ConfigLimits, inspect_dir};
use worker::template::ChatTemplate;

/// The shortest conversations of the built-in set (one system, user and
/// assistant turn each): the cheapest real samples to score.
pub(crate) const SHORT: [&str; 2] = ["knight-aldric", "witch-elowen"];

pub(crate) fn short_dataset_text() -> String {
    BUILTIN
        .lines()
        .filter(|line| SHORT.iter().any(|id| line.contains(&format!("\"{id}\""))))
        .map(|line| format!("{line}\n"))
        .collect()
}

pub(crate) fn short_dataset() -> Dataset {
    let dataset = Dataset::parse(&short_dataset_text()).unwrap();
    assert_eq!(dataset.conversations.len(), SHORT.len());
    dataset
}

/// v1 with `samples` similarity and `vibe` generation samples, and a latency
/// probe of a few tokens (latency is wall time, not what these tests check).
pub(crate) fn profile(samples: usize, vibe: usize) -> ScoringProfile {
    let mut p = ScoringProfile::v1();
    p.similarity_samples = samples;
    p.vibe_samples = vibe;
    p.latency_input_tokens = 8;
    p.latency_repeats = 1;
    p
}

pub(crate) async fn evaluate(dir: &Path, dataset: Dataset, profile: &ScoringProfile) -> Evaluation {
    evaluate_with(dir, "chatml", dataset, profile).await
}

async fn evaluate_with(
    dir: &Path,
    chat_template: &str,
    dataset: Dataset,
    profile: &ScoringProfile,
) -> Evaluation {
    let model = inspect_dir(dir, 1 << 32, &ConfigLimits::default(), chat_template).unwrap();
    let message = JobMessage::v1(
        ModelRef {
            namespace: "real".into(),
            name: "model".into(),
            revision: "main".into(),
            chat_template: chat_template.into(),
        },
        &profile.version,
        JobOrigin::Operator {
            requested_by: "test".into(),
        },
        0,
    );
    let (progress, _) = Progress::new();
    let started = std::time::Instant::now();
    let evaluation = MistralEvaluator::new(dataset)
        .evaluate(EvalTask {
            progress,
            ..EvalTask::new(message.job(), &model, profile)
        })
        .await
        .unwrap_or_else(|e| panic!("evaluating {}: {e}", dir.display()));
    eprintln!(
        "real-models: {} evaluated in {:.1} s: {:?}",
        dir.display(),
        started.elapsed().as_secs_f64(),
        evaluation.components
    );
    assert!(evaluation.components.is_well_formed(), "{evaluation:?}");
    evaluation
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_model_scores_orders_of_magnitude_above_a_random_one() {
    let real = evaluate(&repo(SMOLLM2), short_dataset(), &profile(2, 0)).await;
    // The generated random-weight Llama (worker::fixtures), scored on the same
    // conversations. Its own 512-token tokenizer splits them differently, but
    // similarity is a per-reference-token mean, so the two stay comparable:
    // near-uniform logits put a reference token in the top 10 about 2% of the
    // time, at p ~ 1/512, and the floor (1e-9) elsewhere.
    let random_dir = tempfile::tempdir().unwrap();
    write_tiny_model(random_dir.path(), &TinyModelSpec::with_seed(1)).unwrap();
    let random = evaluate(random_dir.path(), short_dataset(), &profile(2, 0)).await;

    let (r, x) = (real.components.similarity, random.components.similarity);
    eprintln!(
        "real-models: similarity real {r:.6e}, random {x:.6e}, ratio {:.0}",
        r / x
    );
    // Measured: 0.050 against 2.3e-5, about 2000 times. Two orders of
    // magnitude leave room for profile and dataset changes; an engine that
    // scrambles the real model's computation lands near the random score.
    assert!(x > 0.0, "{random:?}");
    assert!(r > 100.0 * x, "real {r} is not far above random {x}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemma3_text_checkpoints_are_scored_with_their_own_template() {
    // Gemma 3 270M base: `Gemma3ForCausalLM`, BF16, three shards, a
    // 262,144-token vocabulary, sliding-window layers. mistral.rs 0.8.1's
    // text loader has no Gemma 3 entry; the worker loads it through the
    // multimodal one (worker/src/engine/model.rs).
    let gemma = evaluate_with(&repo(GEMMA3), "tokenizer", short_dataset(), &profile(2, 1)).await;
    let c = gemma.components;
    // A base model is no roleplay partner, but it predicts English: measured
    // similarity 0.03-0.04, against 2.3e-5 for a random model.
    assert!(c.similarity > 1e-2, "{gemma:?}");
    assert!(
        c.vibe > 0.0,
        "a greedy reply was generated and scored: {gemma:?}"
    );
    assert_eq!(gemma.details.samples.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_scores_the_same_twice() {
    // The whole built-in set: the seed picks which two conversations are
    // scored, and one is also generated from (vibe).
    let p = profile(2, 1);
    let first = evaluate(&repo(SMOLLM2), Dataset::builtin(), &p).await;
    let second = evaluate(&repo(SMOLLM2), Dataset::builtin(), &p).await;
    // Latency is wall time; everything else repeats bit for bit.
    assert_eq!(first.components.similarity, second.components.similarity);
    assert_eq!(first.components.vibe, second.components.vibe);
    assert_eq!(first.components.size, second.components.size);
    assert_eq!(first.tokens, second.tokens);
    assert!(first.components.vibe > 0.0, "{first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bf16_and_f32_copies_score_within_a_thousandth() {
    let bf16 = evaluate(&repo(SMOLLM2), short_dataset(), &profile(2, 0)).await;
    let f32 = evaluate(&repo(SMOLLM2_F32), short_dataset(), &profile(2, 0)).await;
    let diff = (bf16.components.similarity - f32.components.similarity).abs();
    eprintln!(
        "real-models: similarity bf16 {:.6}, f32 {:.6}, |diff| {diff:.2e}",
        bf16.components.similarity, f32.components.similarity
    );
    // Not equal: the BF16 copy is the F32 weights rounded to 8 mantissa bits.
    assert!(diff < 1e-3, "bf16 {bf16:?} vs f32 {f32:?}");
}

#[test]
fn the_tokenizer_template_renders_like_chatml_for_smollm2() {
    let dir = repo(SMOLLM2);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("tokenizer_config.json")).unwrap()).unwrap();
    let own_source = config["chat_template"].as_str().unwrap();
    let token = |key: &str| config[key].as_str().unwrap_or_default().to_owned();
    let (bos, eos) = (token("bos_token"), token("eos_token"));
    let own = ChatTemplate::select("tokenizer", Some(own_source), &bos, &eos).unwrap();
    let chatml = ChatTemplate::select("chatml", Some(own_source), &bos, &eos).unwrap();
    // The worker's prechecks accept the repository's template.
    inspect_dir(&dir, 1 << 32, &ConfigLimits::default(), "tokenizer").unwrap();

    // Every built-in conversation opens with a character card (a system
    // message), so SmolLM2's template renders exactly ChatML.
    for conversation in &Dataset::builtin().conversations {
        for generation_prompt in [true, false] {
            assert_eq!(
                own.render(conversation.context(), generation_prompt)
                    .unwrap(),
                chatml
                    .render(conversation.context(), generation_prompt)
                    .unwrap(),
                "{}",
                conversation.id
            );
        }
    }
    // Without one, SmolLM2's template adds its default system prompt: the
    // comparison above really ran the repository's template.
    let user_only = [Message {
        role: Role::User,
        content: "Hello!".into(),
    }];
    let rendered = own.render(&user_only, true).unwrap();
    assert!(
        rendered.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"),
        "{rendered}"
    );
    assert!(rendered.ends_with(&chatml.render(&user_only, true).unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_probabilities_match_the_numpy_reference() {
    let dir = repo(SMOLLM2);
    let loaded = LoadedModel::load(&dir, EngineOptions::default())
        .await
        .unwrap();
    // Rendered conversations with their reference replies, as scored, cut
    // to 48 tokens (the reference pass is slow).
    let chatml = ChatTemplate::select("chatml", None, "", "").unwrap();
    let dataset = short_dataset();
    let sequences: Vec<Vec<u32>> = dataset
        .conversations
        .iter()
        .map(|c| {
            let text = chatml.render(c.context(), true).unwrap() + c.reference();
            let mut ids = loaded.tokenize(&text).unwrap();
            assert!(ids.len() >= 48, "{} is {} tokens", c.id, ids.len());
            ids.truncate(48);
            ids
        })
        .collect();

    // k = the vocabulary: every token is "in the top k", so the engine
    // returns the full-softmax probability at every position (the profile's
    // top-10 cut only replaces some of these values by the floor).
    let vocab = loaded.info().vocab_size;
    let mut engine = Vec::new();
    for ids in &sequences {
        let probs = loaded
            .teacher_forced_top_k_probs(&ids[..1], &ids[1..], vocab, 0.0)
            .await
            .unwrap();
        engine.push(probs);
    }
    loaded.unload().await;

    let reference = reference_logprobs(&dir, &sequences).await.unwrap();
    let (mut max_p, mut max_log, mut positions) = (0.0f64, 0.0f64, 0);
    for (engine, reference) in engine.iter().zip(&reference) {
        assert_eq!(engine.len(), reference.len());
        for (i, (&p, &lp)) in engine.iter().zip(reference).enumerate() {
            let diff = (p - lp.exp()).abs();
            assert!(
                diff < 1e-4,
                "position {i}: engine p {p}, reference p {}",
                lp.exp()
            );
            max_p = max_p.max(diff);
            // Log space only where the probability is not tiny (a relative
            // error of f32 logits is large there and harmless to the score).
            if lp.exp() > 1e-3 {
                max_log = max_log.max((p.ln() - lp).abs());
            }
            positions += 1;
        }
    }
    eprintln!(
        "real-models: engine vs numpy reference over {positions} positions: \
         max |dp| {max_p:.2e}, max |dlog p| (p > 1e-3) {max_log:.2e}"
    );
    // Measured 2e-5 (f32 against float64). A broken engine (wrong rotary,
    // off-by-one row) differs by whole units.
    assert!(max_log < 1e-3, "{max_log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_eval_scores_a_real_model_fetched_from_the_hub() {
    let model_dir = repo(SMOLLM2);
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("HuggingFaceTB")).unwrap();
    std::os::unix::fs::symlink(
        &model_dir,
        root.path().join("HuggingFaceTB/SmolLM2-135M-Instruct"),
    )
    .unwrap();
    let server = HubServer::start(root.path()).await.unwrap();
    let (printed, _) = worker_eval_json(&server, &profile(2, 2)).await;
    eprintln!("real-models: worker eval printed {printed}");

    // The downloaded weights are the fixture's, scored on the given dataset.
    let local = inspect_dir(&model_dir, 1 << 32, &ConfigLimits::default(), "chatml").unwrap();
    assert_eq!(printed["weights_fingerprint"], local.weights_fingerprint);
    assert_eq!(
        printed["dataset_sha256"],
        Dataset::parse(&short_dataset_text()).unwrap().sha256
    );
    assert!(
        server.downloads_of("HuggingFaceTB/SmolLM2-135M-Instruct", ".safetensors") >= 3,
        "{:?}",
        server.requests()
    );
    let components = &printed["components"];
    for name in ["similarity", "vibe", "latency", "size"] {
        let score = components[name].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "{name} = {score}");
    }
    // A random model scores about 2e-5 (see the test above), SmolLM2 0.05.
    assert!(
        components["similarity"].as_f64().unwrap() > 1e-2,
        "{printed}"
    );
    assert!(printed["tokens"].as_u64().unwrap() > 0);
    let total = printed["total"].as_f64().unwrap();
    assert!(total > 0.0 && total <= 1.0, "{printed}");
}

/// `worker eval HuggingFaceTB/SmolLM2-135M-Instruct --json` on the short
/// dataset under `profile`, fetching from `server`: what it printed, and its
/// stderr (the progress bars).
pub(crate) async fn worker_eval_json(
    server: &HubServer,
    profile: &ScoringProfile,
) -> (serde_json::Value, String) {
    let work = tempfile::tempdir().unwrap();
    let dataset = work.path().join("short.jsonl");
    std::fs::write(&dataset, short_dataset_text()).unwrap();
    let profile_path = work.path().join("profile.toml");
    std::fs::write(&profile_path, toml::to_string(profile).unwrap()).unwrap();
    let out = tokio::process::Command::new(tests::sandbox::binary("worker").unwrap())
        .args(["eval", "HuggingFaceTB/SmolLM2-135M-Instruct", "--json"])
        .arg("--dataset")
        .arg(&dataset)
        .arg("--profile")
        .arg(&profile_path)
        .env("HF_ENDPOINT", &server.url)
        .env("HF_HOME", work.path().join("hf"))
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "worker eval failed: {stderr}");
    let printed = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (printed, stderr)
}

/// The CPU half of `scripts/gpu-check`, the script a lent GPU machine runs:
/// it must stay true while no GPU is here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gpu_check_script_runs_its_cpu_half_on_the_real_models() {
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gpu-check");
    let run = tokio::process::Command::new(&script)
        .arg("--cpu-only")
        .env("EVAL_CPU_WORKER", tests::sandbox::binary("worker").unwrap())
        .env("EVAL_REAL_MODELS_DIR", tests::real_models::fixtures_dir())
        .env("EVAL_GPU_CHECK_SAMPLES", "1")
        .env("OUT", out.path())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("gpu-check.json")).unwrap()).unwrap();
    assert_eq!(report["failures"], serde_json::json!([]));
    for model in [SMOLLM2, GEMMA3] {
        let cpu = &report["models"][model]["cpu"];
        assert!(cpu["similarity"].as_f64().unwrap() > 1e-2, "{model}: {cpu}");
        assert_eq!(
            cpu["samples"].as_array().unwrap().len(),
            1,
            "{model}: {cpu}"
        );
        assert!(
            cpu["similarity_tokens_per_s"].as_f64().unwrap() > 0.0,
            "{model}: {cpu}"
        );
        assert!(
            cpu["peak_rss_mib"].as_f64().unwrap() > 100.0,
            "{model}: {cpu}"
        );
    }
    // The batched-against-one-by-one comparison ran on the first model. On the
    // CPU it is recorded, not required (mistral.rs 0.8.1 batches wrongly there).
    let cpu = &report["models"][SMOLLM2]["cpu"];
    eprintln!(
        "real-models: CPU batched replies match one by one: {}",
        cpu["batched_replies_match"]
    );
    assert!(cpu["batched_replies_match"].is_boolean(), "{cpu}");
    assert_eq!(cpu["batched_replies"], 2, "{cpu}");
    assert!(
        cpu["generated_tokens_per_s_batched"].as_f64().unwrap() > 0.0,
        "{cpu}"
    );
    let table = std::fs::read_to_string(out.path().join("gpu-check.md")).unwrap();
    assert!(table.contains("| smollm2-135m-instruct | CPU |"), "{table}");
    assert!(table.contains("failures: none"), "{table}");
}
