//! The coordinator's configuration: a TOML file (`--config`), then `EVAL_*`
//! environment variables, then flags, validated into [`CoordinatorConfig`].

use std::path::PathBuf;
use std::time::Duration;

use common::chain_weights::{Burn, WeightsParams};
use common::config::{ConfigError, Env};
use common::layered;
use common::options::{ClusterConfig, ClusterOptions, ScoringOptions};
use common::scoring::ScoringProfile;
use serde::Deserialize;

use crate::api::server::MAX_CONNECTIONS_LIMIT;
use crate::api::{ApiSettings, ConnectionLimits, OperatorToken, RateLimit};
use crate::reconcile::ReconcileSettings;
use crate::service::LoopSettings;

/// The shortest operator token accepted.
const MIN_OPERATOR_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorOptions {
    /// Subnet id [default: 11]
    #[arg(long, env = "EVAL_NETUID")]
    pub netuid: Option<u16>,
    #[command(flatten)]
    #[serde(flatten)]
    pub cluster: ClusterOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub scoring: ScoringOptions,
    /// Commitments before this block are ignored [default: 0]
    #[arg(long, env = "EVAL_EPOCH_START_BLOCK")]
    pub epoch_start_block: Option<u64>,
    /// Aggregate results and set weights every this many blocks [default: 100]
    #[arg(long, env = "EVAL_AGGREGATE_EVERY_BLOCKS")]
    pub aggregate_every_blocks: Option<u64>,
    /// Pause between reads of the chain [default: 12s]
    #[arg(long, env = "EVAL_POLL_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub poll_interval: Option<Duration>,
    /// Softmax temperature over win rates [default: 0.075]
    #[arg(long, env = "EVAL_TEMPERATURE")]
    pub temperature: Option<f64>,
    /// Score factor taken off the later of two submissions [default: 0.03]
    #[arg(long, env = "EVAL_EARLIER_ADVANTAGE")]
    pub earlier_advantage: Option<f64>,
    /// Uid that receives `burn_fraction` of the weights
    #[arg(long, env = "EVAL_BURN_UID")]
    pub burn_uid: Option<u16>,
    /// Fraction of the weights given to `burn_uid` [default: 0]
    #[arg(long, env = "EVAL_BURN_FRACTION")]
    pub burn_fraction: Option<f64>,
    /// Version key sent with weights [default: 1]
    #[arg(long, env = "EVAL_VERSION_KEY")]
    pub version_key: Option<u64>,
    /// Compute and show weights without setting them on chain
    #[arg(long, env = "EVAL_DRY_RUN")]
    pub dry_run: Option<bool>,
    /// Address of the HTTP API, page and /metrics [default: 0.0.0.0:8080]
    #[arg(long, env = "EVAL_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// File holding the operator token for POST /v1/evaluations [default: the
    /// EVAL_OPERATOR_TOKEN variable; neither: the route answers 403]
    #[arg(long, env = "EVAL_OPERATOR_TOKEN_FILE")]
    pub operator_token_file: Option<PathBuf>,
    /// Requests per second per client address on the public routes; 0 turns
    /// the limit off [default: 10]
    #[arg(long, env = "EVAL_API_RATE_LIMIT")]
    pub api_rate_limit: Option<f64>,
    /// Requests a client may send at once before the rate applies [default: 40]
    #[arg(long, env = "EVAL_API_RATE_BURST")]
    pub api_rate_burst: Option<u32>,
    /// Time a client has to send a complete request head, from connecting and
    /// between requests on a kept-alive connection [default: 10s]
    #[arg(long, env = "EVAL_API_HEADER_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub api_header_timeout: Option<Duration>,
    /// Time a request body has to arrive in full [default: 10s]
    #[arg(long, env = "EVAL_API_BODY_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub api_body_timeout: Option<Duration>,
    /// A read or write on an API connection that makes no progress for this
    /// long closes it [default: 30s]
    #[arg(long, env = "EVAL_API_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub api_idle_timeout: Option<Duration>,
    /// API connections served at once; more are answered 503 and closed
    /// [default: 1024]
    #[arg(long, env = "EVAL_API_MAX_CONNECTIONS")]
    pub api_max_connections: Option<usize>,
    /// Also serve /healthz, /readyz and /metrics alone on this address, under
    /// a connection cap of their own (point probes and scrapers here)
    #[arg(long, env = "EVAL_ADMIN_LISTEN")]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// How often the miner status index is rebuilt from the store [default: 1s]
    #[arg(long, env = "EVAL_STATUS_REFRESH", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub status_refresh: Option<Duration>,
    /// Subtensor network: finney, test, local, or a ws:// / wss:// URL. Without
    /// it, `coordinator run --submissions FILE` runs on a local chain
    #[arg(long = "subtensor.network", env = "EVAL_SUBTENSOR_NETWORK")]
    pub subtensor_network: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub wallet: WalletOptions,
    /// Directory for state that must survive restarts (pending weight commits) [default: ./state]
    #[arg(long = "state-dir", env = "EVAL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// A publish begun this long ago without finishing is taken over by
    /// another pass (its coordinator died mid-way); also how old a lost
    /// message must be before it is replaced [default: 2m]
    #[arg(long, env = "EVAL_PUBLISH_STALE_AFTER", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub publish_stale_after: Option<Duration>,
    /// Times a dead-lettered job is queued again before it fails as
    /// `delivery_limit` [default: 5]
    #[arg(long, env = "EVAL_MAX_REQUEUES")]
    pub max_requeues: Option<u32>,
    /// Times a job whose worker died is taken back before it fails as
    /// `delivery_limit` [default: 3]
    #[arg(long, env = "EVAL_MAX_RECLAIMS")]
    pub max_reclaims: Option<u32>,
}

layered!(CoordinatorOptions {
    netuid,
    epoch_start_block,
    aggregate_every_blocks,
    poll_interval,
    temperature,
    earlier_advantage,
    burn_uid,
    burn_fraction,
    version_key,
    dry_run,
    listen,
    operator_token_file,
    api_rate_limit,
    api_rate_burst,
    api_header_timeout,
    api_body_timeout,
    api_idle_timeout,
    api_max_connections,
    admin_listen,
    status_refresh,
    subtensor_network,
    state_dir,
    publish_stale_after,
    max_requeues,
    max_reclaims,
} flatten {
    cluster,
    scoring,
    wallet,
});

/// The hotkey that signs: a Bittensor wallet's, or a hotkey file. Taken by
/// `coordinator run` (the validator's hotkey) and `coordinator submit` (the
/// miner's).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct WalletOptions {
    /// Bittensor wallets directory [default: ~/.bittensor/wallets]
    #[arg(long = "wallet.path", env = "EVAL_WALLET_PATH")]
    pub wallet_path: Option<String>,
    /// Wallet name (the hotkey file is <wallet.path>/<wallet.name>/hotkeys/<wallet.hotkey>)
    #[arg(long = "wallet.name", env = "EVAL_WALLET_NAME")]
    pub wallet_name: Option<String>,
    /// Hotkey name within the wallet [default: default]
    #[arg(long = "wallet.hotkey", env = "EVAL_WALLET_HOTKEY")]
    pub wallet_hotkey: Option<String>,
    /// A Bittensor hotkey JSON file (e.g. a mounted Kubernetes Secret), instead of the wallet flags
    #[arg(long = "hotkey-file", env = "EVAL_HOTKEY_FILE")]
    pub hotkey_file: Option<PathBuf>,
}

layered!(WalletOptions {
    wallet_path,
    wallet_name,
    wallet_hotkey,
    hotkey_file,
});

impl WalletOptions {
    /// The hotkey file: `hotkey_file`, or
    /// `<wallet.path>/<wallet.name>/hotkeys/<wallet.hotkey>` when a wallet is
    /// named; `None` when neither is given.
    pub fn hotkey_file(&self) -> Result<Option<PathBuf>, ConfigError> {
        match (&self.hotkey_file, &self.wallet_name) {
            (Some(_), Some(_)) => Err(ConfigError::invalid(
                "hotkey_file",
                "give either hotkey_file or wallet.name, not both",
            )),
            (Some(file), None) => Ok(Some(file.clone())),
            (None, Some(name)) => Ok(Some(common::chain::subtensor::wallet_hotkey_path(
                self.wallet_path
                    .as_deref()
                    .unwrap_or("~/.bittensor/wallets"),
                name,
                self.wallet_hotkey.as_deref().unwrap_or("default"),
            ))),
            (None, None) => Ok(None),
        }
    }
}

/// Where the chain is and who signs for the validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainConfig {
    /// Endpoint of `subtensor_network`; `None` runs on a local chain.
    pub subtensor_url: Option<String>,
    /// The validator's hotkey file, from `hotkey_file` or the wallet flags.
    pub hotkey_file: Option<PathBuf>,
    pub state_dir: PathBuf,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub netuid: u16,
    pub cluster: ClusterConfig,
    pub profile: ScoringProfile,
    pub settings: LoopSettings,
    pub api: ApiSettings,
    pub chain: ChainConfig,
    pub reconcile: ReconcileSettings,
}

impl CoordinatorOptions {
    /// Validates; `env` supplies `EVAL_OPERATOR_TOKEN` (see
    /// [`Self::api_settings`]).
    pub fn validate(self, env: &Env) -> Result<CoordinatorConfig, ConfigError> {
        let profile = self.scoring.validate()?;
        let defaults = WeightsParams::default();
        let burn = match (self.burn_uid, self.burn_fraction) {
            (Some(uid), fraction) => Some(Burn {
                uid,
                fraction: fraction.unwrap_or(0.0),
            }),
            (None, Some(f)) if f > 0.0 => {
                return Err(ConfigError::invalid(
                    "burn_fraction",
                    "is set but burn_uid is not",
                ));
            }
            (None, _) => None,
        };
        let weights = WeightsParams {
            temperature: self.temperature.unwrap_or(defaults.temperature),
            earlier_advantage: self.earlier_advantage.unwrap_or(defaults.earlier_advantage),
            burn,
        };
        weights
            .validate()
            .map_err(|m| ConfigError::invalid("weights", m))?;
        let aggregate_every_blocks = self.aggregate_every_blocks.unwrap_or(100);
        if aggregate_every_blocks == 0 {
            return Err(ConfigError::invalid(
                "aggregate_every_blocks",
                "must be at least 1",
            ));
        }
        let poll_interval = self.poll_interval.unwrap_or(Duration::from_secs(12));
        if poll_interval.is_zero() {
            return Err(ConfigError::invalid("poll_interval", "must be positive"));
        }
        let cluster = self.cluster.clone().validate()?;
        let api = self.api_settings(env, poll_interval)?;
        let chain = self.chain_config()?;
        let reconcile = self.reconcile_settings()?;
        Ok(CoordinatorConfig {
            api,
            chain,
            reconcile,
            netuid: self.netuid.unwrap_or(11),
            cluster,
            settings: LoopSettings {
                profile_version: profile.version.clone(),
                epoch_start_block: self.epoch_start_block.unwrap_or(0),
                aggregate_every_blocks,
                weights,
                version_key: self.version_key.unwrap_or(1),
                dry_run: self.dry_run.unwrap_or(false),
                poll_interval,
            },
            profile,
        })
    }
}

impl CoordinatorOptions {
    /// The API's settings. The operator token comes from
    /// `operator_token_file`, else from the `EVAL_OPERATOR_TOKEN` variable
    /// in `env`.
    fn api_settings(&self, env: &Env, poll_interval: Duration) -> Result<ApiSettings, ConfigError> {
        let defaults = ApiSettings::default();
        let token = match &self.operator_token_file {
            Some(path) => Some((
                "operator_token_file",
                common::config::read_secret("operator token", path)?,
            )),
            None => env
                .get("EVAL_OPERATOR_TOKEN")
                .map(|t| ("EVAL_OPERATOR_TOKEN", t.trim().to_owned())),
        };
        let operator_token = match token {
            None => None,
            Some((field, token)) if token.len() < MIN_OPERATOR_TOKEN_LEN => {
                return Err(ConfigError::invalid(
                    field,
                    format!(
                        "the operator token is {} characters, fewer than {MIN_OPERATOR_TOKEN_LEN} \
                         (e.g. `openssl rand -hex 32`)",
                        token.len()
                    ),
                ));
            }
            Some((_, token)) => Some(OperatorToken::new(token)),
        };
        let per_second = self.api_rate_limit.unwrap_or(10.0);
        if !per_second.is_finite() || per_second < 0.0 {
            return Err(ConfigError::invalid(
                "api_rate_limit",
                "must be a non-negative number (0 turns the limit off)",
            ));
        }
        let burst = self.api_rate_burst.unwrap_or(40);
        if burst == 0 {
            return Err(ConfigError::invalid("api_rate_burst", "must be at least 1"));
        }
        let refresh_interval = self.status_refresh.unwrap_or(defaults.refresh_interval);
        if refresh_interval < Duration::from_millis(100) {
            return Err(ConfigError::invalid(
                "status_refresh",
                "must be at least 100ms",
            ));
        }
        let timeout = |field: &'static str, value: Option<Duration>, default: Duration| {
            let value = value.unwrap_or(default);
            if value < Duration::from_millis(10) {
                return Err(ConfigError::invalid(field, "must be at least 10ms"));
            }
            Ok(value)
        };
        let max_connections = self
            .api_max_connections
            .unwrap_or(defaults.connections.max_connections);
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&max_connections) {
            return Err(ConfigError::invalid(
                "api_max_connections",
                format!("must be between 1 and {MAX_CONNECTIONS_LIMIT}"),
            ));
        }
        let connections = ConnectionLimits {
            max_connections,
            header_timeout: timeout(
                "api_header_timeout",
                self.api_header_timeout,
                defaults.connections.header_timeout,
            )?,
            idle_timeout: timeout(
                "api_idle_timeout",
                self.api_idle_timeout,
                defaults.connections.idle_timeout,
            )?,
        };
        let listen = self.listen.unwrap_or(defaults.listen);
        if self.admin_listen.is_some_and(|admin| admin == listen) {
            return Err(ConfigError::invalid(
                "admin_listen",
                "must differ from listen",
            ));
        }
        Ok(ApiSettings {
            listen,
            admin_listen: self.admin_listen,
            operator_token,
            rate_limit: (per_second > 0.0).then_some(RateLimit { per_second, burst }),
            refresh_interval,
            body_timeout: timeout(
                "api_body_timeout",
                self.api_body_timeout,
                defaults.body_timeout,
            )?,
            connections,
            // Readiness tolerates a few failed chain reads in a row.
            chain_stale_after: (poll_interval * 5).max(defaults.chain_stale_after),
            ..defaults
        })
    }

    fn reconcile_settings(&self) -> Result<ReconcileSettings, ConfigError> {
        let defaults = ReconcileSettings::default();
        let publish_stale_after = self
            .publish_stale_after
            .unwrap_or(defaults.publish_stale_after);
        if publish_stale_after < Duration::from_secs(1) {
            // A live publisher must finish (its broker confirm) well within it.
            return Err(ConfigError::invalid(
                "publish_stale_after",
                "must be at least 1s",
            ));
        }
        let max_reclaims = self.max_reclaims.unwrap_or(defaults.max_reclaims);
        if max_reclaims == 0 {
            return Err(ConfigError::invalid(
                "max_reclaims",
                "must be at least 1: one dead worker is never the model's fault",
            ));
        }
        Ok(ReconcileSettings {
            publish_stale_after,
            max_requeues: self.max_requeues.unwrap_or(defaults.max_requeues),
            max_reclaims,
            ..defaults
        })
    }

    fn chain_config(&self) -> Result<ChainConfig, ConfigError> {
        let subtensor_url = self
            .subtensor_network
            .as_deref()
            .map(common::chain::subtensor::network_url)
            .transpose()
            .map_err(|m| ConfigError::invalid("subtensor_network", m))?;
        let hotkey_file = self.wallet.hotkey_file()?;
        if subtensor_url.is_some() && hotkey_file.is_none() && self.dry_run != Some(true) {
            return Err(ConfigError::invalid(
                "hotkey_file",
                "setting weights on subtensor needs the validator's hotkey: give wallet.name (and wallet.hotkey) or hotkey_file, or run with dry_run",
            ));
        }
        Ok(ChainConfig {
            subtensor_url,
            hotkey_file,
            state_dir: self
                .state_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("./state")),
        })
    }
}

#[cfg(test)]
mod tests {
    use common::config::Layered;

    use super::*;

    /// The options layered over a TOML file holding `file`.
    fn over_file(options: CoordinatorOptions, file: &str) -> CoordinatorOptions {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("coordinator.toml");
        std::fs::write(&path, file).unwrap();
        options.with_file(Some(&path)).unwrap()
    }

    fn valid(options: CoordinatorOptions) -> CoordinatorConfig {
        options.validate(&Env::new()).unwrap()
    }

    /// Asserts that `options` are refused naming `field`.
    fn refused(options: CoordinatorOptions, field: &str) {
        let err = options.validate(&Env::new()).unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
    }

    #[test]
    fn layers_and_validation() {
        let flags = CoordinatorOptions {
            temperature: Some(0.2),
            ..Default::default()
        };
        let config = valid(over_file(
            flags,
            "netuid = 5\ntemperature = 0.1\npoll_interval = \"30s\"\n",
        ));
        assert_eq!(config.netuid, 5);
        assert_eq!(config.settings.weights.temperature, 0.2);
        assert_eq!(config.settings.poll_interval, Duration::from_secs(30));
        assert_eq!(config.settings.profile_version, "v1");
    }

    #[test]
    fn the_operator_token_comes_from_the_given_environment() {
        let env: Env = [("EVAL_OPERATOR_TOKEN".into(), " 0123456789abcdef\n".into())].into();
        let config = CoordinatorOptions::default().validate(&env).unwrap();
        assert!(config.api.operator_token.is_some());
        assert!(
            valid(CoordinatorOptions::default())
                .api
                .operator_token
                .is_none()
        );
        let env: Env = [("EVAL_OPERATOR_TOKEN".into(), "short".into())].into();
        let err = CoordinatorOptions::default().validate(&env).unwrap_err();
        assert!(err.to_string().contains("EVAL_OPERATOR_TOKEN"), "{err}");
    }

    #[test]
    fn api_connection_settings() {
        let flags = CoordinatorOptions {
            api_body_timeout: Some(Duration::from_secs(3)),
            api_max_connections: Some(200),
            ..Default::default()
        };
        let api = valid(over_file(
            flags,
            "api_header_timeout = \"5s\"\napi_max_connections = 100\napi_idle_timeout = \"1m\"\n",
        ))
        .api;
        assert_eq!(
            api.connections,
            ConnectionLimits {
                max_connections: 200,
                header_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(60),
            }
        );
        assert_eq!(api.body_timeout, Duration::from_secs(3));
        let defaults = valid(CoordinatorOptions::default()).api;
        assert_eq!(defaults.connections, ApiSettings::default().connections);
    }

    #[test]
    fn a_bad_setting_is_refused_by_name() {
        let redis_url = ClusterOptions {
            redis_url: Some("localhost:6379".into()),
            ..Default::default()
        };
        for (options, field) in [
            (
                CoordinatorOptions {
                    burn_fraction: Some(0.5),
                    ..Default::default()
                },
                "burn_uid",
            ),
            (
                CoordinatorOptions {
                    temperature: Some(0.0),
                    ..Default::default()
                },
                "temperature",
            ),
            (
                CoordinatorOptions {
                    cluster: redis_url,
                    ..Default::default()
                },
                "redis_url",
            ),
            (
                CoordinatorOptions {
                    api_max_connections: Some(0),
                    ..Default::default()
                },
                "api_max_connections",
            ),
            (
                CoordinatorOptions {
                    api_header_timeout: Some(Duration::ZERO),
                    ..Default::default()
                },
                "api_header_timeout",
            ),
            (
                CoordinatorOptions {
                    api_body_timeout: Some(Duration::from_millis(1)),
                    ..Default::default()
                },
                "api_body_timeout",
            ),
            (
                CoordinatorOptions {
                    max_reclaims: Some(0),
                    ..Default::default()
                },
                "max_reclaims",
            ),
            (
                CoordinatorOptions {
                    publish_stale_after: Some(Duration::from_millis(500)),
                    ..Default::default()
                },
                "publish_stale_after",
            ),
            (
                CoordinatorOptions {
                    subtensor_network: Some("mainnet".into()),
                    ..Default::default()
                },
                "subtensor_network",
            ),
            (
                CoordinatorOptions {
                    subtensor_network: Some("ws://127.0.0.1:9944".into()),
                    ..Default::default()
                },
                "hotkey",
            ),
        ] {
            refused(options, field);
        }
    }

    #[test]
    fn reconcile_settings() {
        let flags = CoordinatorOptions {
            max_requeues: Some(7),
            ..Default::default()
        };
        let config = valid(over_file(
            flags,
            "publish_stale_after = \"30s\"\nmax_requeues = 2\nmax_reclaims = 4\n",
        ));
        assert_eq!(
            config.reconcile,
            ReconcileSettings {
                publish_stale_after: Duration::from_secs(30),
                max_requeues: 7,
                max_reclaims: 4,
                ..ReconcileSettings::default()
            }
        );
        let defaults = valid(CoordinatorOptions::default());
        assert_eq!(defaults.reconcile, ReconcileSettings::default());
    }

    #[test]
    fn chain_options() {
        let config = valid(CoordinatorOptions {
            subtensor_network: Some("finney".into()),
            wallet: WalletOptions {
                wallet_path: Some("/wallets".into()),
                wallet_name: Some("validator".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        assert_eq!(
            config.chain.subtensor_url.as_deref(),
            Some("wss://entrypoint-finney.opentensor.ai:443")
        );
        assert_eq!(
            config.chain.hotkey_file,
            Some(PathBuf::from("/wallets/validator/hotkeys/default"))
        );
        let dry = valid(CoordinatorOptions {
            subtensor_network: Some("local".into()),
            dry_run: Some(true),
            ..Default::default()
        });
        assert_eq!(dry.chain.hotkey_file, None);
        assert_eq!(dry.chain.state_dir, PathBuf::from("./state"));
    }

    #[test]
    fn the_hotkey_is_a_wallet_or_a_file_never_both() {
        let wallet = over_file(
            CoordinatorOptions::default(),
            "wallet_path = \"/w\"\nwallet_name = \"v\"\nwallet_hotkey = \"h\"\n",
        )
        .wallet;
        assert_eq!(
            wallet.hotkey_file().unwrap(),
            Some(PathBuf::from("/w/v/hotkeys/h"))
        );
        let file = over_file(CoordinatorOptions::default(), "hotkey_file = \"/k.json\"\n").wallet;
        assert_eq!(file.hotkey_file().unwrap(), Some(PathBuf::from("/k.json")));
        assert_eq!(WalletOptions::default().hotkey_file().unwrap(), None);
        let both = WalletOptions {
            wallet_name: Some("v".into()),
            ..file
        };
        let err = both.hotkey_file().unwrap_err().to_string();
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn the_shared_groups_read_their_flat_toml_keys() {
        let options = over_file(
            CoordinatorOptions::default(),
            "queue = \"q.file\"\nredis_prefix = \"p\"\namqp_url = \"amqp://h\"\n",
        );
        let config = valid(options);
        assert_eq!(config.cluster.queue, "q.file");
        assert_eq!(config.cluster.redis_prefix, "p");
        assert_eq!(config.cluster.amqp_url.unwrap().expose(), "amqp://h");
        let defaults = valid(CoordinatorOptions::default());
        assert_eq!(defaults.cluster.queue, "eval.jobs");
        assert_eq!(defaults.cluster.redis_prefix, "eval");
    }
}
