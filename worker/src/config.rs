//! The worker's configuration: a TOML file (`--config`), then `EVAL_*`
//! environment variables, then flags, validated into [`WorkerConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::config::{ConfigError, Env, check_scheme};
use common::layered;
use common::options::{ClusterConfig, ClusterOptions, ScoringOptions};
use common::scoring::ScoringProfile;
use serde::Deserialize;

use crate::consumer::LoopTimings;
use crate::dataset::DatasetLocation;
use crate::source::{ConfigLimits, HubConfig};

/// Settings shared by every worker command; each may also come from the
/// config file or the environment.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerOptions {
    /// Name recorded with results [default: <hostname>-<pid>]
    #[arg(long, env = "EVAL_WORKER_NAME")]
    pub name: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub cluster: ClusterOptions,
    /// Directory of local models laid out as <namespace>/<name>/; without
    /// it, models are downloaded from the Hugging Face endpoint
    #[arg(long, env = "EVAL_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// Hugging Face endpoint [default: $HF_ENDPOINT, else https://huggingface.co]
    #[arg(long, env = "EVAL_HF_ENDPOINT")]
    pub hf_endpoint: Option<String>,
    /// Hugging Face cache directory [default: $HF_HUB_CACHE, else $HF_HOME/hub,
    /// else ~/.cache/huggingface/hub]
    #[arg(long, env = "EVAL_HF_CACHE_DIR")]
    pub hf_cache_dir: Option<PathBuf>,
    /// File holding the Hugging Face token [default: the HF_TOKEN variable]
    #[arg(long, env = "EVAL_HF_TOKEN_FILE")]
    pub hf_token_file: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub scoring: ScoringOptions,
    /// Evaluation dataset (JSONL): a path, or a file of a Hugging Face dataset
    /// repository `hf://datasets/<namespace>/<name>[@<revision>]/<file>`
    /// [default: the built-in sample set]
    #[arg(long, env = "EVAL_DATASET")]
    pub dataset: Option<String>,
    /// Abandon (and retry later) a hub download that receives nothing for
    /// this long [default: 2m]
    #[arg(long, env = "EVAL_HF_STALL_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub hf_stall_timeout: Option<Duration>,
    /// Lease on a running job, renewed by heartbeats [default: 2m]
    #[arg(long, env = "EVAL_LEASE", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub lease: Option<Duration>,
    /// Interval of lease renewals and progress reports [default: 15s]
    #[arg(long, env = "EVAL_HEARTBEAT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub heartbeat: Option<Duration>,
    /// Memory the estimated weights of a model may take, in GiB, in the engine's dtype (F32
    /// on CPU, BF16 with the `cuda` feature); a larger config fails as `bad_config`. Keep it
    /// the same on every worker of a cluster [default: 64]
    #[arg(long, env = "EVAL_MEMORY_BUDGET_GIB")]
    pub memory_budget_gib: Option<u64>,
    /// Address of the HTTP endpoint serving /metrics, /healthz and /readyz
    /// (`worker run`); port 0 picks a free port [default: 0.0.0.0:9090]
    #[arg(long, env = "EVAL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Vibe replies generated together as one batch, for GPUs; keep 1 on the CPU,
    /// where mistral.rs 0.8.1 returns wrong continuations when batched [default: 1]
    #[arg(long, env = "EVAL_GENERATION_BATCH")]
    pub generation_batch: Option<usize>,
}

layered!(WorkerOptions {
    name,
    models_dir,
    hf_endpoint,
    hf_cache_dir,
    hf_token_file,
    dataset,
    hf_stall_timeout,
    lease,
    heartbeat,
    memory_budget_gib,
    metrics_listen,
    generation_batch,
} flatten {
    cluster,
    scoring,
});

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub name: String,
    pub cluster: ClusterConfig,
    pub models_dir: Option<PathBuf>,
    /// The hub source's settings, used when `models_dir` is not set.
    pub hub: HubConfig,
    pub profile: ScoringProfile,
    pub dataset: DatasetLocation,
    pub timings: LoopTimings,
    /// Bounds on a model's `config.json`, the memory budget included.
    pub config_limits: ConfigLimits,
    /// Where `worker run` serves /metrics, /healthz and /readyz.
    pub metrics_listen: SocketAddr,
    /// Vibe replies generated as one batch (1: one after the other).
    pub generation_batch: usize,
}

/// The largest [`WorkerOptions::generation_batch`]: more sequences than any
/// profile generates for vibe.
pub const MAX_GENERATION_BATCH: usize = 64;

/// Default of [`WorkerOptions::metrics_listen`]: the port the chart's pod
/// template and ServiceMonitor name.
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9090);

impl WorkerOptions {
    /// Validates; `env` supplies `HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE` and
    /// `HF_TOKEN`, which the explicit `hf_*` options override.
    pub fn validate(self, env: &Env) -> Result<WorkerConfig, ConfigError> {
        let defaults = LoopTimings::default();
        let lease = self.lease.unwrap_or(defaults.lease);
        let heartbeat = self.heartbeat.unwrap_or(defaults.heartbeat);
        if heartbeat.is_zero() || heartbeat * 2 > lease {
            return Err(ConfigError::invalid(
                "heartbeat",
                format!(
                    "must be positive and at most half the lease ({}), or the lease expires between renewals",
                    humantime::format_duration(lease)
                ),
            ));
        }
        let profile = self.scoring.validate()?;
        let cluster = self.cluster.validate()?;
        if let Some(dir) = &self.models_dir
            && !dir.is_dir()
        {
            return Err(ConfigError::invalid(
                "models_dir",
                format!("{} is not a directory", dir.display()),
            ));
        }
        let mut config_limits = ConfigLimits::default();
        if let Some(gib) = self.memory_budget_gib {
            config_limits.memory_budget_bytes = gib
                .checked_mul(1 << 30)
                .filter(|&bytes| bytes > 0)
                .ok_or_else(|| {
                    ConfigError::invalid("memory_budget_gib", "must be between 1 and 2^34")
                })?;
        }
        let generation_batch = self.generation_batch.unwrap_or(1);
        if !(1..=MAX_GENERATION_BATCH).contains(&generation_batch) {
            return Err(ConfigError::invalid(
                "generation_batch",
                format!("must be between 1 and {MAX_GENERATION_BATCH}"),
            ));
        }
        let mut hub = HubConfig::from_env(env);
        if let Some(endpoint) = &self.hf_endpoint {
            hub.endpoint = endpoint.clone();
        }
        check_scheme("hf_endpoint", Some(&hub.endpoint), &["http://", "https://"])?;
        if let Some(dir) = &self.hf_cache_dir {
            hub.cache_dir = dir.clone();
        }
        if let Some(stall) = self.hf_stall_timeout {
            if stall.is_zero() {
                return Err(ConfigError::invalid("hf_stall_timeout", "must be positive"));
            }
            hub.stall_timeout = stall;
        }
        let dataset = match &self.dataset {
            Some(value) => value
                .parse()
                .map_err(|m| ConfigError::invalid("dataset", m))?,
            None => DatasetLocation::Builtin,
        };
        if let DatasetLocation::File(path) = &dataset
            && !path.is_file()
        {
            return Err(ConfigError::invalid(
                "dataset",
                format!("{} is not a file", path.display()),
            ));
        }
        if let Some(file) = &self.hf_token_file {
            let token = std::fs::read_to_string(file).map_err(|e| {
                ConfigError::invalid("hf_token_file", format!("reading {}: {e}", file.display()))
            })?;
            let token = token.trim();
            hub.token = (!token.is_empty()).then(|| token.to_owned());
        }
        Ok(WorkerConfig {
            name: self.name.unwrap_or_else(default_name),
            cluster,
            models_dir: self.models_dir,
            hub,
            profile,
            dataset,
            timings: LoopTimings {
                lease,
                heartbeat,
                ..defaults
            },
            config_limits,
            metrics_listen: self.metrics_listen.unwrap_or(DEFAULT_METRICS_LISTEN),
            generation_batch,
        })
    }
}

fn default_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    format!(
        "{}-{}",
        if host.is_empty() { "worker" } else { host },
        std::process::id()
    )
}

#[cfg(test)]
mod tests {
    use common::config::Layered;

    use super::*;

    fn valid(options: WorkerOptions) -> WorkerConfig {
        options.validate(&Env::new()).unwrap()
    }

    /// Asserts that `options` are refused under `env`, naming `field`.
    fn refused(options: WorkerOptions, env: &Env, field: &str) {
        let err = options.validate(env).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }

    #[test]
    fn flags_override_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("worker.toml");
        std::fs::write(
            &file,
            "name = \"from-file\"\nqueue = \"q.file\"\nlease = \"10m\"\n",
        )
        .unwrap();
        let flags = WorkerOptions {
            name: Some("from-flag".into()),
            ..Default::default()
        };
        let config = valid(flags.with_file(Some(&file)).unwrap());
        assert_eq!(config.name, "from-flag");
        assert_eq!(config.cluster.queue, "q.file");
        assert_eq!(config.timings.lease, Duration::from_secs(600));
        assert_eq!(config.cluster.redis_prefix, "eval");
        assert_eq!(config.profile, ScoringProfile::v1());
        assert_eq!(config.metrics_listen, DEFAULT_METRICS_LISTEN);
        let file_listen = dir.path().join("listen.toml");
        std::fs::write(&file_listen, "metrics_listen = \"127.0.0.1:0\"\n").unwrap();
        let config = valid(
            WorkerOptions::default()
                .with_file(Some(&file_listen))
                .unwrap(),
        );
        assert_eq!(config.metrics_listen, "127.0.0.1:0".parse().unwrap());
    }

    #[test]
    fn hub_settings_layer_over_the_hf_variables() {
        let env: Env = [
            ("HF_HOME", "/hf"),
            ("HF_ENDPOINT", "http://mirror.local"),
            ("HF_TOKEN", "from-env"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        let config = WorkerOptions::default().validate(&env).unwrap();
        assert_eq!(config.hub.endpoint, "http://mirror.local");
        assert_eq!(config.hub.cache_dir, PathBuf::from("/hf/hub"));
        assert_eq!(config.hub.token.as_deref(), Some("from-env"));
        assert!(!format!("{config:?}").contains("from-env"));

        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "from-file\n").unwrap();
        let config = WorkerOptions {
            hf_endpoint: Some("https://hub.example".into()),
            hf_cache_dir: Some(dir.path().join("cache")),
            hf_token_file: Some(token_file),
            ..Default::default()
        }
        .validate(&env)
        .unwrap();
        assert_eq!(config.hub.endpoint, "https://hub.example");
        assert_eq!(config.hub.cache_dir, dir.path().join("cache"));
        assert_eq!(config.hub.token.as_deref(), Some("from-file"));

        refused(
            WorkerOptions {
                hf_token_file: Some(dir.path().join("missing")),
                ..Default::default()
            },
            &env,
            "hf_token_file",
        );
        refused(
            WorkerOptions {
                hf_endpoint: Some("ftp://x".into()),
                ..Default::default()
            },
            &env,
            "hf_endpoint",
        );
    }

    #[test]
    fn bad_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("worker.toml");
        std::fs::write(&file, "nmae = \"typo\"\n").unwrap();
        let err = WorkerOptions::default()
            .with_file(Some(&file))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nmae"), "{err}");
        let amqp_url = ClusterOptions {
            amqp_url: Some("http://x".into()),
            ..Default::default()
        };
        let bad = [
            (
                WorkerOptions {
                    heartbeat: Some(Duration::from_secs(90)),
                    ..Default::default()
                },
                "heartbeat",
            ),
            (
                WorkerOptions {
                    cluster: amqp_url,
                    ..Default::default()
                },
                "amqp_url",
            ),
        ];
        let budgets = [0, u64::MAX].map(|gib| {
            let options = WorkerOptions {
                memory_budget_gib: Some(gib),
                ..Default::default()
            };
            (options, "memory_budget_gib")
        });
        let batches = [0, MAX_GENERATION_BATCH + 1].map(|batch| {
            let options = WorkerOptions {
                generation_batch: Some(batch),
                ..Default::default()
            };
            (options, "generation_batch")
        });
        for (options, field) in bad.into_iter().chain(budgets).chain(batches) {
            refused(options, &Env::new(), field);
        }
    }

    #[test]
    fn memory_budget_is_read_in_gib() {
        let config = valid(WorkerOptions {
            memory_budget_gib: Some(24),
            ..Default::default()
        });
        assert_eq!(config.config_limits.memory_budget_bytes, 24 << 30);
        let default = valid(WorkerOptions::default());
        assert_eq!(default.config_limits, ConfigLimits::default());
        assert_eq!(default.generation_batch, 1);
    }
}
