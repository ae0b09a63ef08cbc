//! The real-model fixtures built by `scripts/real-models/build` (see
//! `scripts/real-models/README.md`): small real LLMs as Hugging Face
//! repositories under `$EVAL_REAL_MODELS_DIR/repos/`, and the venv that runs
//! the numpy reference forward pass `scripts/real-models/reference.py`.
//!
//! A missing fixture is a failure with the command that builds it, never a
//! skipped test: `scripts/test` builds them before running the tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// SmolLM2-135M-Instruct in BF16 (Llama, ChatML template).
pub const SMOLLM2: &str = "smollm2-135m-instruct";
/// The same model in F32.
pub const SMOLLM2_F32: &str = "smollm2-135m-instruct-f32";
/// Gemma 3 270M base in BF16, three shards (`Gemma3ForCausalLM`).
pub const GEMMA3: &str = "gemma3-270m";

/// `$EVAL_REAL_MODELS_DIR`, or `~/.cache/eval-real-models` (the build
/// script's default).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("EVAL_REAL_MODELS_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/eval-real-models")
        }
    }
}

/// The repository `name` (e.g. [`SMOLLM2`]).
///
/// # Panics
/// When it is not built, with the command that builds it.
pub fn repo(name: &str) -> PathBuf {
    let dir = fixtures_dir().join("repos").join(name);
    assert!(
        dir.join("config.json").is_file() && dir.join("model.safetensors.index.json").is_file(),
        "the real-model fixture {} is missing: run scripts/real-models/build \
         (scripts/test does) and set EVAL_REAL_MODELS_DIR to the directory it prints",
        dir.display()
    );
    dir
}

/// The Python of the fixtures' venv, which has numpy for `reference.py`.
///
/// # Panics
/// When the venv is not built, with the command that builds it.
pub fn python() -> PathBuf {
    let python = fixtures_dir().join("venv/bin/python");
    assert!(
        python.is_file(),
        "the real-model venv {} is missing: run scripts/real-models/build",
        python.display()
    );
    python
}

/// `scripts/real-models/reference.py` of this checkout.
pub fn reference_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/real-models/reference.py")
}

/// The numpy reference's natural-log probabilities of each next token (in
/// float64): entry `i` of a sequence is ln p(token i+1 | tokens 0..=i).
pub async fn reference_logprobs(repo: &Path, sequences: &[Vec<u32>]) -> Result<Vec<Vec<f64>>> {
    let mut child = tokio::process::Command::new(python())
        .arg(reference_script())
        .args(["logprobs", "--dtype", "float64"])
        .arg(repo)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting reference.py")?;
    let input = serde_json::to_vec(sequences)?;
    let mut stdin = child.stdin.take().context("reference.py stdin")?;
    stdin.write_all(&input).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    ensure!(
        out.status.success(),
        "reference.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let value: Value = serde_json::from_slice(&out.stdout).context("reference.py output")?;
    let logprobs: Vec<Vec<f64>> = serde_json::from_value(value["logprobs"].clone())
        .context("reference.py output has no `logprobs`")?;
    ensure!(
        logprobs.len() == sequences.len()
            && logprobs
                .iter()
                .zip(sequences)
                .all(|(l, s)| l.len() + 1 == s.len()),
        "reference.py returned {} sequences of the wrong lengths",
        logprobs.len()
    );
    Ok(logprobs)
}
