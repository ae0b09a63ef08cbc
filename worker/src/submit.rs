//! `worker submit`: a miner commits its model on chain.
//!
//! Builds the commit string `namespace:name:chat_template:hotkey:hash:competition_id`
//! with `common` (checking the 128-byte limit), signs
//! `Commitments.set_commitment(netuid, Raw)` with the miner's hotkey, waits for
//! the block that includes it, and prints that block and the coordinator's
//! status URL for the model. The string carries no revision: the cluster
//! evaluates the revision the repository points at when it fetches the model,
//! pinned to that commit.

use std::path::PathBuf;

use anyhow::Context;
use common::chain::subtensor::{self, Hotkey, SubtensorChain, SubtensorOptions};
use common::submission::{CommitString, MAX_COMMIT_BYTES};

#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// Hugging Face repository `namespace/name`
    pub repo: String,
    /// Chat template: a built-in name or `tokenizer`
    #[arg(long, default_value = "chatml")]
    pub chat_template: String,
    /// Competition to enter, if the subnet runs several
    #[arg(long)]
    pub competition_id: Option<String>,
    /// Subtensor network: finney, test, local, or a ws:// / wss:// URL
    #[arg(
        long = "subtensor.network",
        env = "EVAL_SUBTENSOR_NETWORK",
        default_value = "finney"
    )]
    pub network: String,
    /// Subnet id
    #[arg(long, env = "EVAL_NETUID", default_value_t = 11)]
    pub netuid: u16,
    /// Bittensor wallets directory
    #[arg(
        long = "wallet.path",
        env = "EVAL_WALLET_PATH",
        default_value = "~/.bittensor/wallets"
    )]
    pub wallet_path: String,
    /// Wallet name
    #[arg(long = "wallet.name", env = "EVAL_WALLET_NAME")]
    pub wallet_name: Option<String>,
    /// Hotkey name within the wallet
    #[arg(
        long = "wallet.hotkey",
        env = "EVAL_WALLET_HOTKEY",
        default_value = "default"
    )]
    pub wallet_hotkey: String,
    /// A hotkey JSON file instead of the wallet flags
    #[arg(long = "hotkey-file", env = "EVAL_HOTKEY_FILE")]
    pub hotkey_file: Option<PathBuf>,
    /// Coordinator base URL, for the status link printed at the end
    #[arg(
        long,
        env = "EVAL_COORDINATOR_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub coordinator_url: String,
    /// Print the commit string and exit without submitting
    #[arg(long)]
    pub dry_run: bool,
}

/// What a submission did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub commit: String,
    pub hotkey: String,
    pub block: Option<u64>,
    pub status_url: String,
}

/// Builds the commit string for `hotkey`, refusing one over 128 bytes.
pub fn commit_string(
    repo: &str,
    chat_template: &str,
    hotkey: &str,
    competition_id: Option<String>,
) -> anyhow::Result<CommitString> {
    let Some((namespace, name)) = repo.split_once('/') else {
        anyhow::bail!("`{repo}` is not a Hugging Face repository `namespace/name`");
    };
    if repo.contains('@') {
        anyhow::bail!(
            "the commit string has no revision: commit `namespace/name`, the cluster pins the revision it evaluates"
        );
    }
    let commit = CommitString::bound_to(namespace, name, chat_template, hotkey, competition_id);
    let text = commit.to_string();
    if text.len() > MAX_COMMIT_BYTES {
        anyhow::bail!(
            "the commit string is {} bytes, more than the chain's {MAX_COMMIT_BYTES}-byte limit: {text}",
            text.len()
        );
    }
    // Round-trip through the parser the validators use (characters, fields).
    let parsed = CommitString::parse(&text).context("the commit string would not parse")?;
    anyhow::ensure!(
        parsed.is_bound_to(hotkey),
        "the commit string is not bound to the hotkey"
    );
    Ok(commit)
}

/// The coordinator's status URL of a model.
pub fn status_url(base: &str, commit: &CommitString, hotkey: &str) -> String {
    format!(
        "{}/v1/models/{}/{}?hotkey={hotkey}&chat_template={}",
        base.trim_end_matches('/'),
        commit.namespace,
        commit.name,
        commit.chat_template
    )
}

/// Runs `worker submit`.
pub async fn submit(args: SubmitArgs) -> anyhow::Result<Submitted> {
    let key_path = match (&args.hotkey_file, &args.wallet_name) {
        (Some(file), _) => file.clone(),
        (None, Some(name)) => {
            subtensor::wallet_hotkey_path(&args.wallet_path, name, &args.wallet_hotkey)
        }
        (None, None) => anyhow::bail!("give --wallet.name (and --wallet.hotkey) or --hotkey-file"),
    };
    let hotkey = Hotkey::from_file(&key_path).context("loading the hotkey")?;
    let commit = commit_string(
        &args.repo,
        &args.chat_template,
        hotkey.ss58(),
        args.competition_id.clone(),
    )?;
    let status_url = status_url(&args.coordinator_url, &commit, hotkey.ss58());
    let mut outcome = Submitted {
        commit: commit.to_string(),
        hotkey: hotkey.ss58().to_owned(),
        block: None,
        status_url,
    };
    if args.dry_run {
        return Ok(outcome);
    }
    let url = subtensor::network_url(&args.network).map_err(anyhow::Error::msg)?;
    let chain = SubtensorChain::new(SubtensorOptions::new(&url, args.netuid, None), Some(hotkey))?;
    let block = chain
        .set_commitment(outcome.commit.as_bytes())
        .await
        .with_context(|| format!("committing on netuid {} at {url}", args.netuid))?;
    outcome.block = Some(block);
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_string_is_bound_and_checked() {
        let hotkey = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
        let commit = commit_string("alice/rp-7b", "chatml", hotkey, None).unwrap();
        assert!(commit.is_bound_to(hotkey));
        assert!(commit.to_string().starts_with("alice:rp-7b:chatml:5Grw"));
        let long = format!("alice/{}", "x".repeat(100));
        let err = commit_string(&long, "chatml", hotkey, None).unwrap_err();
        assert!(err.to_string().contains("128-byte"), "{err}");
        assert!(commit_string("alice", "chatml", hotkey, None).is_err());
        assert!(commit_string("alice/m@main", "chatml", hotkey, None).is_err());
        assert_eq!(
            status_url("http://c:8080/", &commit, hotkey),
            format!("http://c:8080/v1/models/alice/rp-7b?hotkey={hotkey}&chat_template=chatml")
        );
    }
}
