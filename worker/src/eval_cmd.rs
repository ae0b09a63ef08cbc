//! `worker eval`: a miner scores a model locally with the cluster's code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use common::job::{DEFAULT_REVISION, JobMessage, JobOrigin, ModelRef};
use common::scoring::ScoringProfile;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::dataset::DatasetLocation;
use crate::engine::judge::JudgeSlot;
use crate::error::JobError;
use crate::eval::{EvalTask, Evaluator, Phase, PhaseObserver, Progress};
use crate::source::{
    ConfigLimits, HubConfig, HubSource, LocalModel, ModelSource, ProgressBars, fetch_dataset,
    spawn_inspect_dir,
};

#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// A model directory (config.json, tokenizer, safetensors), or a Hugging
    /// Face repository `namespace/name[@revision]` fetched as the cluster does
    /// (HF_ENDPOINT, HF_HOME and HF_TOKEN are honoured)
    pub model: String,
    /// Chat template: a built-in name or `tokenizer`
    #[arg(long, default_value = "chatml")]
    pub chat_template: String,
    /// Evaluation dataset (JSONL): a path, or a file of a Hugging Face dataset
    /// repository `hf://datasets/<namespace>/<name>[@<revision>]/<file>`
    /// [default: the built-in sample set]
    #[arg(long, default_value_t)]
    pub dataset: DatasetLocation,
    /// Scoring profile: a built-in one (`v1`, or `v2` with its LLM judge,
    /// fetched from the hub like the model) or a profile file (TOML)
    /// [default: v1]
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// A local copy of the profile's judge (config.json, tokenizer,
    /// safetensors), used instead of fetching it from the hub; prechecked
    /// like any model. The judge's revision is then the copy's content hash
    #[arg(long)]
    pub judge_dir: Option<PathBuf>,
    /// Conversations to score (overrides the profile's counts)
    #[arg(long)]
    pub samples: Option<usize>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
    /// Evaluate this many times back to back in this process (load, score,
    /// unload each time), to measure repeatability and that memory is given
    /// back between jobs; `--json` lists every run under `repeats`
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeat: u32,
    /// Vibe replies generated together as one batch, for GPUs (on the CPU,
    /// mistral.rs 0.8.1 returns wrong continuations when batched)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub generation_batch: u16,
}

/// The judge from `--judge-dir`: that directory, whatever repository the judge
/// slot names (it names only its judge).
#[derive(Debug)]
struct JudgeCopy(PathBuf);

#[async_trait::async_trait]
impl ModelSource for JudgeCopy {
    async fn fetch(&self, model: &ModelRef, max_bytes: u64) -> Result<LocalModel, JobError> {
        spawn_inspect_dir(
            self.0.clone(),
            max_bytes,
            ConfigLimits::default(),
            &model.chat_template,
        )
        .await
    }
}

pub async fn eval(args: EvalArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut profile = match &args.profile {
        Some(path) => common::options::load_profile(path)?,
        None => ScoringProfile::v1(),
    };
    if let Some(samples) = args.samples {
        profile.similarity_samples = samples;
        profile.vibe_samples = samples;
        if let Some(judge) = &mut profile.judge {
            judge.samples = judge.samples.min(samples);
        }
    }
    profile
        .validate()
        .map_err(|m| anyhow::anyhow!("invalid profile: {m}"))?;
    let env: HashMap<String, String> = std::env::vars().collect();
    let hub = HubConfig::from_env(&env);
    let bars = ProgressBars::default();
    let dataset = fetch_dataset(&args.dataset, &hub, Some(&bars)).await?;
    let (model, reference) = fetch(
        &args.model,
        &args.chat_template,
        profile.max_model_bytes,
        hub,
        bars.clone(),
    )
    .await?;
    let message = JobMessage::v1(
        reference,
        &profile.version,
        JobOrigin::Operator {
            requested_by: "worker eval".into(),
        },
        common::clock::now_ms(),
    );
    let sample_count = profile.similarity_samples.min(dataset.conversations.len());
    let vibe_count = profile.vibe_samples.min(sample_count);
    let mut engine = crate::engine::MistralEvaluator::with_options(
        dataset,
        crate::engine::EngineOptions::batched(usize::from(args.generation_batch)),
    );
    match (&profile.judge, &args.judge_dir) {
        (Some(settings), judge_dir) => {
            let source: Arc<dyn ModelSource> = match judge_dir {
                Some(dir) => Arc::new(JudgeCopy(dir.clone())),
                None => Arc::new(
                    HubSource::new(HubConfig::from_env(&env), ConfigLimits::default())?
                        .with_progress_bars(bars.clone()),
                ),
            };
            engine = engine.with_judge(JudgeSlot::new(
                settings.clone(),
                source,
                profile.max_model_bytes,
            ));
        }
        (None, Some(_)) => {
            anyhow::bail!("--judge-dir: profile {} has no judge", profile.version)
        }
        (None, None) => {}
    }
    let evaluator: Arc<dyn Evaluator> = Arc::new(engine);
    let phases = PhaseBars::new(
        &bars,
        sample_count,
        vibe_count,
        profile.judged_samples(vibe_count),
    );
    let (progress, _) = Progress::new();
    let progress = progress.with_observer(phases.observer());
    let evaluation = evaluator
        .evaluate(EvalTask {
            progress,
            cancel: shutdown,
            ..EvalTask::new(message.job(), &model, &profile)
        })
        .await
        .map_err(describe)
        .context("evaluation failed")?;
    phases.finish();
    let total = profile.total(&evaluation.components);
    let mut repeats = vec![run_summary(total, &evaluation)];
    for _ in 1..args.repeat {
        let again = evaluator
            .evaluate(EvalTask::new(message.job(), &model, &profile))
            .await
            .map_err(describe)
            .context("evaluation failed")?;
        repeats.push(run_summary(profile.total(&again.components), &again));
    }
    let c = evaluation.components;
    if args.json {
        let mut out = serde_json::json!({
            "components": c,
            "total": total,
            "profile": profile.version,
            "dataset_sha256": evaluation.dataset_sha256,
            "weights_fingerprint": model.weights_fingerprint,
            "tokens": evaluation.tokens,
            "samples_context_cut": evaluation.details.samples_context_cut,
            "latency": evaluation.details.latency,
            "samples": evaluation.details.samples,
            "judge": evaluation.details.judge,
            "timings": evaluation.details.timings,
            "similarity_tokens_per_s": evaluation.details.timings.similarity_tokens_per_s(),
            "generated_tokens_per_s": evaluation.details.timings.generated_tokens_per_s(),
            "peak_rss_bytes": peak_rss_bytes(),
        });
        if args.repeat > 1 {
            out["repeats"] = serde_json::Value::Array(repeats);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let w = profile.weights;
        println!("component    score   weight");
        for (name, score, weight) in [
            ("similarity", Some(c.similarity), w.similarity),
            ("vibe", Some(c.vibe), w.vibe),
            ("latency", Some(c.latency), w.latency),
            ("size", Some(c.size), w.size),
            ("judge", c.judge, w.judge),
        ] {
            if let Some(score) = score {
                println!("{name:<10} {score:>7.4} {weight:>8.2}");
            }
        }
        println!("total      {total:>7.4}   (profile {})", profile.version);
        let details = &evaluation.details;
        if let Some(latency) = details.latency {
            println!(
                "latency: median {:.1} ms over {} passes (min {:.1}, max {:.1})",
                latency.median_ms, latency.repeats, latency.min_ms, latency.max_ms
            );
        }
        if let Some(judge) = &details.judge {
            println!(
                "judge {}@{}: {} wins, {} ties, {} losses over {} samples; mean preference {:.3}; \
                 length correlation {}",
                judge.repo,
                judge.revision,
                judge.wins,
                judge.ties,
                judge.losses,
                judge.samples,
                judge.mean_preference,
                judge
                    .length_correlation
                    .map_or("undefined".to_owned(), |r| format!("{r:+.2}")),
            );
        }
        let t = details.timings;
        println!(
            "time: load {:.1} s, scoring {:.1} s ({:.0} tokens/s), generation {:.1} s ({:.1} tokens/s), latency probe {:.1} s, judge {:.1} s",
            t.load_ms / 1000.0,
            t.similarity_ms / 1000.0,
            t.similarity_tokens_per_s(),
            t.generation_ms / 1000.0,
            t.generated_tokens_per_s(),
            t.latency_probe_ms / 1000.0,
            t.judge_ms / 1000.0,
        );
        for (i, run) in repeats.iter().enumerate().skip(1) {
            println!(
                "repeat {}: total {:.4}",
                i + 1,
                run["total"].as_f64().unwrap_or_default()
            );
        }
        if details.samples_context_cut > 0 {
            println!(
                "{} of {} conversations were cut to fit the model's window",
                details.samples_context_cut,
                details.samples.len()
            );
        }
    }
    Ok(())
}

/// One run of `--repeat`: its scores, timings, and the GPUs' free memory
/// after its model was unloaded (absent without CUDA).
fn run_summary(total: f64, evaluation: &crate::eval::Evaluation) -> serde_json::Value {
    serde_json::json!({
        "total": total,
        "components": evaluation.components,
        "latency": evaluation.details.latency,
        "timings": evaluation.details.timings,
        "peak_rss_bytes": peak_rss_bytes(),
        "gpu_free_bytes_after_unload": crate::gpu::gpus()
            .map(|gpus| gpus.iter().map(|g| g.free_bytes).collect::<Vec<_>>()),
    })
}

/// This process's peak resident memory (Linux `VmHWM`), if readable.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The model named on the command line: a local directory if one exists at
/// that path, else a hub repository, checked exactly as a worker checks it.
async fn fetch(
    model: &str,
    chat_template: &str,
    max_bytes: u64,
    hub: HubConfig,
    bars: ProgressBars,
) -> anyhow::Result<(LocalModel, ModelRef)> {
    let dir = PathBuf::from(model);
    if dir.is_dir() {
        let local = spawn_inspect_dir(dir, max_bytes, ConfigLimits::default(), chat_template)
            .await
            .map_err(describe)?;
        let name = Path::new(model)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let reference = ModelRef {
            namespace: "local".into(),
            name,
            revision: local.revision_sha.clone(),
            chat_template: chat_template.to_owned(),
        };
        return Ok((local, reference));
    }
    let (repo, revision) = model.split_once('@').unwrap_or((model, DEFAULT_REVISION));
    let Some((namespace, name)) = repo.split_once('/') else {
        anyhow::bail!(
            "`{model}` is neither a model directory nor a repository `namespace/name[@revision]`"
        );
    };
    let reference = ModelRef {
        namespace: namespace.into(),
        name: name.into(),
        revision: revision.into(),
        chat_template: chat_template.to_owned(),
    };
    let source = HubSource::new(hub, ConfigLimits::default())?.with_progress_bars(bars);
    eprintln!("fetching {repo}@{revision} …");
    let local = source
        .fetch(&reference, max_bytes)
        .await
        .map_err(describe)?;
    Ok((local, reference))
}

/// One progress bar per evaluation phase (similarity, vibe, latency, and the
/// judge under profile v2), on the same display as the download bars.
struct PhaseBars {
    similarity: ProgressBar,
    vibe: ProgressBar,
    latency: ProgressBar,
    judge: Option<ProgressBar>,
}

impl PhaseBars {
    fn new(bars: &ProgressBars, similarity: usize, vibe: usize, judged: usize) -> Self {
        let bar = |name: &str, len: usize| {
            let style = ProgressStyle::with_template("{msg:12} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = bars.add(ProgressBar::new(len as u64).with_style(style));
            bar.set_message(name.to_owned());
            bar
        };
        Self {
            similarity: bar("similarity", similarity),
            vibe: bar("vibe", vibe),
            latency: bar("latency", 1),
            judge: (judged > 0).then(|| bar("judge", judged)),
        }
    }

    fn observer(&self) -> PhaseObserver {
        let (similarity, vibe, latency, judge) = (
            self.similarity.clone(),
            self.vibe.clone(),
            self.latency.clone(),
            self.judge.clone(),
        );
        Arc::new(move |phase| match phase {
            Phase::Similarity => similarity.inc(1),
            Phase::Vibe => vibe.inc(1),
            Phase::Latency => latency.inc(1),
            Phase::Judge => {
                if let Some(judge) = &judge {
                    judge.inc(1);
                }
            }
        })
    }

    fn finish(&self) {
        for bar in [&self.similarity, &self.vibe, &self.latency]
            .into_iter()
            .chain(&self.judge)
        {
            bar.finish();
        }
    }
}

fn describe(e: JobError) -> anyhow::Error {
    match e {
        JobError::Model(reason) => anyhow::anyhow!("the model was refused: {reason}"),
        other => anyhow::anyhow!(other),
    }
}
