//! `worker eval`: a miner scores a model locally with the cluster's code.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use common::job::{DEFAULT_REVISION, JobMessage, JobOrigin, ModelRef};
use common::scoring::ScoringProfile;
use tokio_util::sync::CancellationToken;

use crate::error::JobError;
use crate::eval::dataset::{Dataset, DatasetLocation};
use crate::eval::{Evaluator, Progress};
use crate::source::{
    ConfigLimits, HubConfig, HubSource, LocalModel, ModelSource, ProgressBars, inspect_dir,
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
    /// Scoring profile file (TOML) [default: v1]
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Conversations to score (overrides the profile's counts)
    #[arg(long)]
    pub samples: Option<usize>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

pub async fn eval(args: EvalArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut profile = match &args.profile {
        Some(path) => common::config::load_toml::<ScoringProfile>(path)?,
        None => ScoringProfile::v1(),
    };
    if let Some(samples) = args.samples {
        profile.similarity_samples = samples;
        profile.vibe_samples = samples;
    }
    profile
        .validate()
        .map_err(|m| anyhow::anyhow!("invalid profile: {m}"))?;
    let env: HashMap<String, String> = std::env::vars().collect();
    let hub = HubConfig::from_env(&env);
    let bars = ProgressBars::default();
    let dataset = Dataset::fetch(&args.dataset, &hub, Some(&bars)).await?;
    let (model, reference) = fetch(
        &args.model,
        &args.chat_template,
        profile.max_model_bytes,
        hub,
        bars,
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
    let evaluator: Arc<dyn Evaluator> = Arc::new(crate::engine::MistralEvaluator::new(dataset));
    let (progress, _) = Progress::new();
    let evaluation = evaluator
        .evaluate(message.job(), &model, &profile, progress, shutdown)
        .await
        .map_err(describe)
        .context("evaluation failed")?;
    let total = profile.total(&evaluation.components);
    let c = evaluation.components;
    if args.json {
        let out = serde_json::json!({
            "components": c,
            "total": total,
            "profile": profile.version,
            "dataset_sha256": evaluation.dataset_sha256,
            "weights_fingerprint": model.weights_fingerprint,
            "tokens": evaluation.tokens,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let w = profile.weights;
        println!("component    score   weight");
        for (name, score, weight) in [
            ("similarity", c.similarity, w.similarity),
            ("vibe", c.vibe, w.vibe),
            ("latency", c.latency, w.latency),
            ("size", c.size, w.size),
        ] {
            println!("{name:<10} {score:>7.4} {weight:>8.2}");
        }
        println!("total      {total:>7.4}   (profile {})", profile.version);
    }
    Ok(())
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
        let template = chat_template.to_owned();
        let local = tokio::task::spawn_blocking(move || {
            inspect_dir(&dir, max_bytes, &ConfigLimits::default(), &template)
        })
        .await?
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

fn describe(e: JobError) -> anyhow::Error {
    match e {
        JobError::Model(reason) => anyhow::anyhow!("the model was refused: {reason}"),
        other => anyhow::anyhow!(other),
    }
}
