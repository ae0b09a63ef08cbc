//! Helpers for the binaries' layered configuration: a TOML file, then the
//! environment, then flags, each layer overriding the one before. Each binary
//! declares its options once as a struct of `Option`s deriving both
//! `clap::Args` (flags and environment) and `Deserialize` (file), merges the
//! layers with [`Layered::over`], then validates into its typed config.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;

/// Environment variables, passed to validation as a value (quickwit's
/// `load_node_config_with_env`), so tests never touch the process
/// environment.
pub type Env = HashMap<String, String>;

/// The process environment, read once by a binary's `main`.
pub fn process_env() -> Env {
    std::env::vars().collect()
}

/// A configuration problem, said so an operator can fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: String, message: String },
    #[error("invalid setting `{field}`: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("cannot read secret {what} from {path}: {source}")]
    Secret {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{field} ({env}) is required by `{command}`")]
    Required {
        field: &'static str,
        env: &'static str,
        command: &'static str,
    },
    /// A client refused its settings (e.g. a malformed Redis prefix).
    #[error("{what}")]
    Client {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ConfigError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// Checks that `url`, when given, starts with one of `schemes`.
pub fn check_scheme(
    field: &'static str,
    url: Option<&str>,
    schemes: &[&str],
) -> Result<(), ConfigError> {
    match url {
        Some(url) if !schemes.iter().any(|s| url.starts_with(s)) => Err(ConfigError::invalid(
            field,
            format!("must start with {}", schemes.join(" or ")),
        )),
        _ => Ok(()),
    }
}

/// Reads a TOML file into the options struct (unknown keys are errors).
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Reads a secret from a file (a mounted Kubernetes secret), trimming the
/// trailing newline editors add.
pub fn read_secret(what: &'static str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Secret {
        what,
        path: path.display().to_string(),
        source,
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Options that can be layered: `self` wins wherever it has a value.
pub trait Layered: Sized {
    fn over(self, lower: Self) -> Self;

    /// Merges `self` (flags and environment) over the TOML file at `file`,
    /// if any.
    fn with_file(self, file: Option<&Path>) -> Result<Self, ConfigError>
    where
        Self: DeserializeOwned,
    {
        Ok(match file {
            Some(path) => self.over(load_toml(path)?),
            None => self,
        })
    }
}

/// Implements [`Layered`] for a struct whose fields are `Option`s, and
/// (after `flatten`) option groups that are [`Layered`] themselves.
#[macro_export]
macro_rules! layered {
    ($ty:ty { $($field:ident),* $(,)? } $(flatten { $($group:ident),* $(,)? })?) => {
        impl $crate::config::Layered for $ty {
            fn over(self, lower: Self) -> Self {
                Self {
                    $($field: self.$field.or(lower.$field),)*
                    $($($group: $crate::config::Layered::over(self.$group, lower.$group),)*)?
                }
            }
        }
    };
}
