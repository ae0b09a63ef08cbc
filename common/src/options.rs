//! What the coordinator and worker binaries share on the command line: the
//! option groups both take (each flattened into a binary's options with
//! `#[command(flatten)]` and `#[serde(flatten)]`, so a flag, its `EVAL_*`
//! variable and its TOML key are spelled once), `--config`, and the body of
//! `main`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::{ConfigError, Layered, check_scheme, load_toml};
use crate::layered;
use crate::queue::DEFAULT_QUEUE;
use crate::scoring::ScoringProfile;
use crate::secret_url::SecretUrl;
use crate::telemetry::{self, LogFormat};

/// Where the job queue and the result store are.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct ClusterOptions {
    /// RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f
    #[arg(long, env = "EVAL_AMQP_URL")]
    pub amqp_url: Option<String>,
    /// Redis URL, e.g. redis://127.0.0.1:6379/0
    #[arg(long, env = "EVAL_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key [default: eval]
    #[arg(long, env = "EVAL_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Job queue name [default: eval.jobs]
    #[arg(long, env = "EVAL_QUEUE")]
    pub queue: Option<String>,
}

layered!(ClusterOptions {
    amqp_url,
    redis_url,
    redis_prefix,
    queue,
});

/// The validated [`ClusterOptions`].
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub amqp_url: Option<SecretUrl>,
    pub redis_url: Option<SecretUrl>,
    pub redis_prefix: String,
    pub queue: String,
}

impl ClusterOptions {
    pub fn validate(self) -> Result<ClusterConfig, ConfigError> {
        check_scheme(
            "amqp_url",
            self.amqp_url.as_deref(),
            &["amqp://", "amqps://"],
        )?;
        check_scheme(
            "redis_url",
            self.redis_url.as_deref(),
            &["redis://", "rediss://"],
        )?;
        Ok(ClusterConfig {
            amqp_url: self.amqp_url.map(SecretUrl::new),
            redis_url: self.redis_url.map(SecretUrl::new),
            redis_prefix: self.redis_prefix.unwrap_or_else(|| "eval".into()),
            queue: self.queue.unwrap_or_else(|| DEFAULT_QUEUE.into()),
        })
    }
}

#[cfg(all(feature = "rabbitmq", feature = "redis"))]
impl ClusterConfig {
    /// The RabbitMQ queue (consuming as `consumer_tag`) and the Redis store,
    /// both connecting lazily; `command` (e.g. `worker run`) is named when a
    /// URL is missing.
    pub fn connect(
        &self,
        consumer_tag: impl Into<String>,
        command: &'static str,
    ) -> Result<(crate::queue::RabbitQueue, crate::store::RedisStore), ConfigError> {
        let required = |url: &Option<SecretUrl>, field, env| {
            url.clone().ok_or(ConfigError::Required {
                field,
                env,
                command,
            })
        };
        let amqp_url = required(&self.amqp_url, "amqp_url", "EVAL_AMQP_URL")?;
        let redis_url = required(&self.redis_url, "redis_url", "EVAL_REDIS_URL")?;
        let queue = crate::queue::RabbitQueue::lazy(crate::queue::RabbitConfig::for_queue(
            amqp_url.clone(),
            &self.queue,
            consumer_tag,
        ))
        .map_err(|e| ConfigError::Client {
            what: "the RabbitMQ settings",
            source: Box::new(e),
        })?;
        let store = crate::store::RedisStore::lazy(crate::store::RedisConfig::for_prefix(
            redis_url.clone(),
            self.redis_prefix.clone(),
        ))
        .map_err(|e| ConfigError::Client {
            what: "the Redis settings",
            source: Box::new(e),
        })?;
        Ok((queue, store))
    }
}

/// The scoring profile.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct ScoringOptions {
    /// Scoring profile: a built-in one (`v1`, `v2`) or a profile file (TOML)
    /// [default: v1]
    #[arg(long, env = "EVAL_PROFILE")]
    pub profile: Option<PathBuf>,
}

layered!(ScoringOptions { profile });

impl ScoringOptions {
    /// The profile named or read from the file, validated; v1 by default.
    pub fn validate(&self) -> Result<ScoringProfile, ConfigError> {
        match &self.profile {
            None => Ok(ScoringProfile::v1()),
            Some(path) => load_profile(path),
        }
    }
}

/// The built-in profile `value` names (`v1`, `v2`) unless a file of that name
/// exists, else the profile file at `value`; validated.
pub fn load_profile(value: &Path) -> Result<ScoringProfile, ConfigError> {
    let builtin = value.to_str().and_then(ScoringProfile::builtin);
    let profile = match builtin {
        Some(profile) if !value.exists() => profile,
        _ => load_toml(value)?,
    };
    profile
        .validate()
        .map_err(|m| ConfigError::invalid("profile", m))?;
    Ok(profile)
}

/// `--config FILE` and the options it lies under, as every command that
/// reads the configuration takes them.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs<T: clap::Args> {
    /// TOML config file
    #[arg(long, env = "EVAL_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub options: T,
}

impl<T: clap::Args + Layered + DeserializeOwned> ConfigArgs<T> {
    /// The options layered over the file: file < environment < flags.
    pub fn layered(self) -> Result<T, ConfigError> {
        self.options.with_file(self.config.as_deref())
    }
}

/// The body of a binary's `main`: sets up logging (`RUST_LOG`, else the
/// binaries' common filter), runs `future` to completion on a multi-threaded
/// runtime, and prints its error, with its causes, on failure.
pub fn run_main<E: std::fmt::Display>(
    log_format: LogFormat,
    future: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    telemetry::init(
        log_format,
        "info,mistralrs_core=warn,mistralrs=warn,candle_core=warn",
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(future) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_is_a_builtin_name_or_a_file() {
        assert_eq!(load_profile(Path::new("v2")).unwrap(), ScoringProfile::v2());
        assert_eq!(load_profile(Path::new("v1")).unwrap(), ScoringProfile::v1());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custom.toml");
        let mut custom = ScoringProfile::v2();
        custom.version = "v2-custom".into();
        std::fs::write(&path, toml::to_string(&custom).unwrap()).unwrap();
        assert_eq!(load_profile(&path).unwrap(), custom);
        // A file is validated: a judge on a branch is refused, naming the setting.
        custom.judge.as_mut().unwrap().revision = "main".into();
        std::fs::write(&path, toml::to_string(&custom).unwrap()).unwrap();
        let refused = load_profile(&path).unwrap_err().to_string();
        assert!(
            refused.contains("profile") && refused.contains("commit sha"),
            "{refused}"
        );
        assert!(load_profile(Path::new("v3")).is_err());
    }
}
