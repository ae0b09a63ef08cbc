//! `coordinator submit`: a miner commits its model on chain.
//!
//! Builds the commit string `namespace:name:chat_template:hotkey:hash:competition_id`
//! with `common` (checking the 128-byte limit), signs
//! `Commitments.set_commitment(netuid, Raw)` with the miner's hotkey, waits for
//! the block that includes it, and prints that block and the coordinator's
//! status URL for the model. The string carries no revision: the cluster
//! evaluates the revision the repository points at when it fetches the model,
//! pinned to that commit.

use std::io::{self, Write};

use anyhow::Context;
use common::chain::subtensor::{self, Hotkey, SubtensorChain, SubtensorOptions};
use common::submission::{CommitString, MAX_COMMIT_BYTES};

use crate::config::WalletOptions;

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
    #[command(flatten)]
    pub wallet: WalletOptions,
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

impl Submitted {
    /// Writes what `coordinator submit` prints: the commit, the hotkey, the
    /// block (or that nothing was submitted) and the status URL.
    pub fn report(&self, out: &mut impl Write, dry_run: bool) -> io::Result<()> {
        writeln!(out, "commit: {}", self.commit)?;
        writeln!(out, "hotkey: {}", self.hotkey)?;
        match self.block {
            Some(block) => writeln!(out, "included in block {block}")?,
            None if dry_run => writeln!(out, "dry run: not submitted")?,
            None => {}
        }
        writeln!(out, "status: {}", self.status_url)?;
        out.flush()
    }
}

/// Prints `submitted`'s report on stdout. A reader that went away
/// (`coordinator submit … | head -2`) is not an error: the commitment is made
/// either way, and like other command-line tools the command stops writing
/// quietly instead of panicking on EPIPE as `println!` would.
pub fn print_report(submitted: &Submitted, dry_run: bool) -> io::Result<()> {
    report_unless_closed(submitted, &mut io::stdout().lock(), dry_run)
}

fn report_unless_closed(
    submitted: &Submitted,
    out: &mut impl Write,
    dry_run: bool,
) -> io::Result<()> {
    match submitted.report(out, dry_run) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
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

/// Runs `coordinator submit`.
pub async fn submit(args: SubmitArgs) -> anyhow::Result<Submitted> {
    let Some(key_path) = args.wallet.hotkey_file()? else {
        anyhow::bail!("give --wallet.name (and --wallet.hotkey) or --hotkey-file");
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

    /// Takes `room` bytes, then fails like a pipe whose reader is gone.
    struct ClosesAfter {
        room: usize,
        written: Vec<u8>,
        error: io::ErrorKind,
    }

    impl Write for ClosesAfter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(self.error.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stdout_ends_the_report_quietly() {
        let submitted = Submitted {
            commit: "a:b:chatml:5Abc:1:None".into(),
            hotkey: "5Abc".into(),
            block: Some(7),
            status_url: "http://c/v1/models/a/b".into(),
        };
        let mut full = Vec::new();
        submitted.report(&mut full, false).unwrap();
        assert_eq!(
            String::from_utf8(full.clone()).unwrap(),
            "commit: a:b:chatml:5Abc:1:None\nhotkey: 5Abc\nincluded in block 7\nstatus: http://c/v1/models/a/b\n"
        );
        // `| head -2`: the reader leaves after two lines.
        let room = full
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(1)
            .unwrap()
            .0
            + 1;
        let mut pipe = ClosesAfter {
            room,
            written: Vec::new(),
            error: io::ErrorKind::BrokenPipe,
        };
        report_unless_closed(&submitted, &mut pipe, false).unwrap();
        assert_eq!(pipe.written, full[..room]);
        // Any other write error is still an error.
        let mut full_disk = ClosesAfter {
            room: 0,
            written: Vec::new(),
            error: io::ErrorKind::StorageFull,
        };
        assert_eq!(
            report_unless_closed(&submitted, &mut full_disk, false)
                .unwrap_err()
                .kind(),
            io::ErrorKind::StorageFull
        );
    }

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
