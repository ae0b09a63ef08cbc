//! sr25519 hotkeys from Bittensor wallet files.
//!
//! The Python SDK writes a hotkey as plain JSON at
//! `<wallet.path>/<wallet.name>/hotkeys/<wallet.hotkey>`:
//! `{"secretPhrase": "...", "secretSeed": "0x<32 bytes>", "publicKey": "0x...",
//! "privateKey": "0x<64 bytes>", "accountId": "0x...", "ss58Address": "5..."}`.
//! The key is derived from `secretSeed` (the mini secret key) or, without it,
//! from `secretPhrase` (BIP-39, substrate derivation, no password); the derived
//! address must equal `ss58Address` when the file names one. A key made from
//! a `//URI` has neither (a hard derivation leaves no seed behind): the SDK
//! writes only `privateKey`, the 64-byte sr25519 secret key (scalar and
//! nonce, schnorrkel's canonical bytes), which is then used as is and must
//! give `ss58Address`, which such a file must name. Secrets never leave this
//! module except as signatures: [`Hotkey`]'s `Debug` shows only the address.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use subxt::PolkadotConfig;
use subxt::utils::{AccountId32, MultiSignature};
use subxt_signer::sr25519::Keypair;

/// The signing context of substrate's sr25519 signatures.
const SIGNING_CONTEXT: &[u8] = b"substrate";

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
    #[error("hotkey file {path} has neither `secretSeed`, `secretPhrase` nor `privateKey`")]
    NoSecret { path: PathBuf },
    #[error(
        "hotkey file {path} holds only `privateKey`, without the `ss58Address` to check it against"
    )]
    NoAddress { path: PathBuf },
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
    private_key: Option<String>,
    ss58_address: Option<String>,
}

/// A validator's or miner's hotkey: signs extrinsics, prints as its address.
#[derive(Clone)]
pub struct Hotkey {
    secret: Secret,
    ss58: String,
}

#[derive(Clone)]
enum Secret {
    /// From a seed or a phrase (subxt-signer derives and signs).
    Derived(Keypair),
    /// The SDK's `privateKey`: an expanded secret key with no seed behind it,
    /// which subxt-signer cannot hold, so schnorrkel signs directly.
    Expanded(schnorrkel::Keypair),
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
        let hotkey = if let Some(seed) = &file.secret_seed {
            let bytes =
                hex::decode(seed.trim().trim_start_matches("0x")).map_err(|_| bad("secretSeed"))?;
            let seed: [u8; 32] = bytes.try_into().map_err(|_| bad("secretSeed"))?;
            Self::from_keypair(Keypair::from_secret_key(seed).map_err(|_| bad("secretSeed"))?)
        } else if let Some(phrase) = &file.secret_phrase {
            Self::from_keypair(
                Self::keypair_from_phrase(phrase).ok_or_else(|| bad("secretPhrase"))?,
            )
        } else if let Some(private) = &file.private_key {
            // Nothing else vouches for these bytes: the address must.
            if file.ss58_address.is_none() {
                return Err(KeyError::NoAddress {
                    path: path.to_owned(),
                });
            }
            let bytes = hex::decode(private.trim().trim_start_matches("0x"))
                .map_err(|_| bad("privateKey"))?;
            let secret =
                schnorrkel::SecretKey::from_bytes(&bytes).map_err(|_| bad("privateKey"))?;
            Self::from_expanded(secret.to_keypair())
        } else {
            return Err(KeyError::NoSecret {
                path: path.to_owned(),
            });
        };
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
        let ss58 = AccountId32(keypair.public_key().0).to_string();
        Self {
            secret: Secret::Derived(keypair),
            ss58,
        }
    }

    fn from_expanded(keypair: schnorrkel::Keypair) -> Self {
        let ss58 = AccountId32(keypair.public.to_bytes()).to_string();
        Self {
            secret: Secret::Expanded(keypair),
            ss58,
        }
    }

    /// The SS58 address (prefix 42), as the chain and commit strings name it.
    pub fn ss58(&self) -> &str {
        &self.ss58
    }

    pub fn public_key(&self) -> [u8; 32] {
        match &self.secret {
            Secret::Derived(keypair) => keypair.public_key().0,
            Secret::Expanded(keypair) => keypair.public.to_bytes(),
        }
    }

    /// An sr25519 signature of `message`, as `MultiSignature::Sr25519` carries it.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        match &self.secret {
            Secret::Derived(keypair) => keypair.sign(message).0,
            Secret::Expanded(keypair) => keypair
                .sign(schnorrkel::signing_context(SIGNING_CONTEXT).bytes(message))
                .to_bytes(),
        }
    }
}

impl subxt::transactions::Signer<PolkadotConfig> for Hotkey {
    fn account_id(&self) -> AccountId32 {
        AccountId32(self.public_key())
    }

    fn sign(&self, signer_payload: &[u8]) -> MultiSignature {
        MultiSignature::Sr25519(Hotkey::sign(self, signer_payload))
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
    fn an_expanded_key_signs_like_the_derived_one() {
        // One key held both ways: signatures of either verify under the one
        // public key (sr25519 signatures are randomised: compare by verifying).
        let seed = [7u8; 32];
        let derived = Hotkey::from_keypair(Keypair::from_secret_key(seed).unwrap());
        let mini = schnorrkel::MiniSecretKey::from_bytes(&seed).unwrap();
        let expanded =
            Hotkey::from_expanded(mini.expand_to_keypair(schnorrkel::ExpansionMode::Ed25519));
        assert_eq!(expanded.public_key(), derived.public_key());
        assert_eq!(expanded.ss58(), derived.ss58());
        let public = subxt_signer::sr25519::PublicKey(derived.public_key());
        for key in [&derived, &expanded] {
            let signature = subxt_signer::sr25519::Signature(key.sign(b"payload"));
            assert!(subxt_signer::sr25519::verify(
                &signature, b"payload", &public
            ));
            assert!(!subxt_signer::sr25519::verify(
                &signature, b"other", &public
            ));
        }
    }

    #[test]
    fn wallet_path_expands_home() {
        let path = wallet_hotkey_path("/w", "validator", "default");
        assert_eq!(path, PathBuf::from("/w/validator/hotkeys/default"));
    }
}

/// `Hotkey::from_file` on the files the Python SDK writes
/// (`tests/fixtures/hotkeys/`, made by `make_hotkeys.py` there).
#[cfg(test)]
mod sdk_files {
    use subxt_signer::sr25519::dev;

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hotkeys")
            .join(name)
    }

    #[test]
    fn hotkey_files_of_the_python_sdk_load_with_their_address() {
        // Written by bittensor_wallet's own serializer (fixtures/hotkeys/make_hotkeys.py).
        let dev_key = Hotkey::from_file(&fixture("dev.json")).unwrap();
        assert_eq!(
            dev_key.ss58(),
            "5DfhGyQdFobKM8NsWvEeAKk5EQQgYe9AydgJ7rMB6E1EqRzV"
        );
        let other = Hotkey::from_file(&fixture("other.json")).unwrap();
        assert_eq!(
            other.ss58(),
            "5EHgWw2Af1pnoc7f1A8bfmM97W3DAYW8xr82RfhLL9oAabAe"
        );
        // The phrase alone and the seed alone give the same key.
        for file in ["dev-phrase-only.json", "dev-seed-only.json"] {
            let key = Hotkey::from_file(&fixture(file)).unwrap();
            assert_eq!(key.public_key(), dev_key.public_key(), "{file}");
        }
        assert!(matches!(
            Hotkey::from_file(&fixture("wrong-address.json")),
            Err(KeyError::AddressMismatch { .. })
        ));
        // A `//URI` key: the SDK writes only `privateKey` (no seed, no phrase).
        let alice = Hotkey::from_file(&fixture("alice-uri.json")).unwrap();
        assert_eq!(alice.public_key(), dev::alice().public_key().0);
        assert_eq!(
            alice.ss58(),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        let private_only = Hotkey::from_file(&fixture("dev-private-only.json")).unwrap();
        assert_eq!(private_only.public_key(), dev_key.public_key());
        // `privateKey` is checked against the address, which must be there.
        let dir = tempfile::tempdir().unwrap();
        let alice_file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(fixture("alice-uri.json")).unwrap())
                .unwrap();
        let mut wrong = alice_file.clone();
        wrong["ss58Address"] = other.ss58().into();
        let mut unaddressed = alice_file.clone();
        unaddressed.as_object_mut().unwrap().remove("ss58Address");
        let mut garbled = alice_file;
        garbled["privateKey"] = "0x1234".into();
        for (name, value) in [
            ("wrong", wrong),
            ("unaddressed", unaddressed),
            ("garbled", garbled),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, value.to_string()).unwrap();
            let err = Hotkey::from_file(&path).unwrap_err();
            match name {
                "wrong" => assert!(matches!(err, KeyError::AddressMismatch { .. }), "{err}"),
                "unaddressed" => assert!(matches!(err, KeyError::NoAddress { .. }), "{err}"),
                _ => assert!(
                    matches!(
                        err,
                        KeyError::BadSecret {
                            field: "privateKey",
                            ..
                        }
                    ),
                    "{err}"
                ),
            }
            assert!(!err.to_string().contains("33a6f309"), "{err}");
        }
        assert!(matches!(
            Hotkey::from_file(&fixture("make_hotkeys.py")),
            Err(KeyError::NotJson { .. })
        ));
        // Nothing secret in what can be printed.
        let printed = format!("{dev_key:?}");
        assert!(
            !printed.contains("bottom") && !printed.contains("fac7959d"),
            "{printed}"
        );
    }
}
