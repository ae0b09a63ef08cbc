//! Helpers for the binaries' layered configuration: a TOML file, then the
//! environment, then flags, each layer overriding the one before. Each binary
//! declares its options once as a struct of `Option`s deriving both
//! `clap::Args` (flags and environment) and `Deserialize` (file), merges the
//! layers with [`Layered::over`], then validates into its typed config.

use std::path::Path;

use serde::de::DeserializeOwned;

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
}

impl ConfigError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
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
}

/// Implements [`Layered`] for a struct whose fields are all `Option`s.
#[macro_export]
macro_rules! layered {
    ($ty:ty { $($field:ident),* $(,)? }) => {
        impl $crate::config::Layered for $ty {
            fn over(self, lower: Self) -> Self {
                Self { $($field: self.$field.or(lower.$field)),* }
            }
        }
    };
}
