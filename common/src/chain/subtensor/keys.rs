//! sr25519 hotkeys from Bittensor wallet files.
//!
//! The Python SDK writes a hotkey as plain JSON at
//! `<wallet.path>/<wallet.name>/hotkeys/<wallet.hotkey>`:
//! `{"secretPhrase": "...", "secretSeed": "0x<32 bytes>", "publicKey": "0x...",
//! "privateKey": "0x<64 bytes>", "accountId": "0x...", "ss58Address": "5..."}`.
//! The key is derived from `secretSeed` (the mini secret key) or, without it,
//! from `secretPhrase` (BIP-39, substrate derivation, no password); the derived
//! address must equal `ss58Address` when the file names one. Secrets never
//! leave this module except as signatures: [`Hotkey`]'s `Debug` shows only the
//! address.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use subxt_signer::sr25519::Keypair;

/// Why a hotkey could not be loaded. Messages never contain secret material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read hotkey file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "hotkey file {path} is not a plain JSON key file (encrypted key files are not supported for hotkeys)"
    )]
    NotJson { path: PathBuf },
    #[error("hotkey file {path} has neither `secretSeed` nor `secretPhrase`")]
    NoSecret { path: PathBuf },
    #[error("hotkey file {path}: `{field}` is invalid")]
    BadSecret { path: PathBuf, field: &'static str },
    #[error("hotkey file {path} says {expected} but its secret gives {derived}")]
    AddressMismatch {
        path: PathBuf,
        expected: String,
        derived: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyFile {
    secret_phrase: Option<String>,
    secret_seed: Option<String>,
    ss58_address: Option<String>,
}

/// A validator's or miner's hotkey: signs extrinsics, prints as its address.
#[derive(Clone)]
pub struct Hotkey {
    keypair: Keypair,
    ss58: String,
}

impl std::fmt::Debug for Hotkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hotkey")
            .field("ss58", &self.ss58)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Hotkey {
    /// Loads a hotkey file in the Python SDK's format.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|_| KeyError::NotJson {
            path: path.to_owned(),
        })?;
        let bad = |field| KeyError::BadSecret {
            path: path.to_owned(),
            field,
        };
        let keypair = if let Some(seed) = &file.secret_seed {
            let bytes =
                hex::decode(seed.trim().trim_start_matches("0x")).map_err(|_| bad("secretSeed"))?;
            let seed: [u8; 32] = bytes.try_into().map_err(|_| bad("secretSeed"))?;
            Keypair::from_secret_key(seed).map_err(|_| bad("secretSeed"))?
        } else if let Some(phrase) = &file.secret_phrase {
            Self::keypair_from_phrase(phrase).ok_or_else(|| bad("secretPhrase"))?
        } else {
            return Err(KeyError::NoSecret {
                path: path.to_owned(),
            });
        };
        let hotkey = Self::from_keypair(keypair);
        if let Some(expected) = file.ss58_address
            && expected != hotkey.ss58
        {
            return Err(KeyError::AddressMismatch {
                path: path.to_owned(),
                expected,
                derived: hotkey.ss58,
            });
        }
        Ok(hotkey)
    }

    /// A hotkey from a BIP-39 phrase (substrate derivation, no password).
    pub fn from_phrase(phrase: &str) -> Option<Self> {
        Self::keypair_from_phrase(phrase).map(Self::from_keypair)
    }

    fn keypair_from_phrase(phrase: &str) -> Option<Keypair> {
        let mnemonic = subxt_signer::bip39::Mnemonic::parse(phrase.trim()).ok()?;
        Keypair::from_phrase(&mnemonic, None).ok()
    }

    pub fn from_keypair(keypair: Keypair) -> Self {
        let ss58 = subxt::utils::AccountId32(keypair.public_key().0).to_string();
        Self { keypair, ss58 }
    }

    /// The SS58 address (prefix 42), as the chain and commit strings name it.
    pub fn ss58(&self) -> &str {
        &self.ss58
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.keypair.public_key().0
    }

    pub(crate) fn keypair(&self) -> &Keypair {
        &self.keypair
    }
}

/// `<wallet_path>/<name>/hotkeys/<hotkey>`, with a leading `~` expanded.
pub fn wallet_hotkey_path(wallet_path: &str, name: &str, hotkey: &str) -> PathBuf {
    let base = match wallet_path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(rest))
            .unwrap_or_else(|| PathBuf::from(wallet_path)),
        None => PathBuf::from(wallet_path),
    };
    base.join(name).join("hotkeys").join(hotkey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_address() {
        let key = Hotkey::from_phrase(subxt_signer::DEV_PHRASE).unwrap();
        let printed = format!("{key:?}");
        assert!(printed.contains(key.ss58()));
        assert!(printed.contains("<redacted>"));
        assert!(!printed.contains("bottom"));
    }

    #[test]
    fn wallet_path_expands_home() {
        let path = wallet_hotkey_path("/w", "validator", "default");
        assert_eq!(path, PathBuf::from("/w/validator/hotkeys/default"));
    }
}
