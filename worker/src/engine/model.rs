//! A model loaded with mistral.rs (on the CPU; on the GPU in BF16 with the `cuda` feature),
//! and the operations the v1 scoring profile needs:
//! teacher-forced top-k probabilities, greedy generation and forward-pass latency.
//!
//! Notes that shape this module (docs/architecture.md §12, mistral.rs 0.8.1):
//! - A model path that does not exist is taken as a hub repo id, so [`LoadedModel::load`]
//!   checks the directory first and never lets mistral.rs reach for the network
//!   (`TokenSource::None`).
//! - CPU needs `F32`: BF16 fails at the first matmul and `Auto` picks F16, which gave NaN.
//!   The `cuda` build loads in BF16 on the GPU instead (`on_device`); the notes on
//!   batching below were seen on the CPU and are kept on the GPU until checked there.
//! - The prefix cache is off: with it on, raw-logit rows of cached tokens went missing.
//! - Batched generation on CPU returns wrong continuations, and mixing a scoring request with
//!   a generation request in one batch panicked the engine thread. By default the scheduler
//!   runs one sequence at a time and this module sends one request at a time per model.
//! - Every request is sent as token ids (`RequestMessage::CompletionTokens`): mistral.rs
//!   adds nothing (no BOS), so what is scored is exactly what was rendered and tokenized here.
//!
//! mistral.rs runs inference on its own engine thread; the public API here is async and
//! keeps CPU-heavy work of its own (model loading, logits post-processing, `malloc_trim`) on
//! the blocking pool, never on the runtime's worker threads.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mistralrs::core::{NormalRequest, Request, RequestMessage, Response};
use mistralrs::{
    DType, ModelDType, MultimodalModelBuilder, SamplingParams, Tensor, TextModelBuilder,
    TokenSource,
};
use serde::Deserialize;
use tokenizers::Tokenizer;
use tokio::sync::{Mutex, mpsc};

use common::result::LatencyStats;
use common::scoring::{NonFiniteLogits, median, top_k_probability};

use crate::model_config::Builder;

/// Untimed passes before the latency probe's timed ones.
const LATENCY_WARMUP: usize = 2;

/// How long [`LoadedModel::unload`] waits for the engine thread to let go of the weights.
const ENGINE_EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the inference engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model directory is missing (mistral.rs would treat the path as a hub repo id).
    #[error("model directory {0} does not exist or is not a directory")]
    MissingModelDir(PathBuf),
    /// A file of the model directory could not be read or parsed.
    #[error("model file {path}: {reason}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// mistral.rs failed to load the model.
    #[error("loading the model failed: {0}")]
    Load(String),
    /// mistral.rs could not read `config.json` even after normalising it: the engine's
    /// limitation (a form of the file it does not know), not the model's fault.
    #[error(
        "the engine (mistral.rs 0.8.1) cannot read this config.json: {0}; \
         an engine limitation, not the model's fault"
    )]
    UnreadableConfig(String),
    /// The temporary directory holding a normalised `config.json` could not be made.
    #[error("preparing the model directory for the engine: {0}")]
    DerivedDir(String),
    /// Tokenizing or detokenizing failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An input that must not be empty was empty.
    #[error("{0} must not be empty")]
    EmptyInput(&'static str),
    /// The request is longer than the model's context.
    #[error("{len} tokens exceed the model's maximum sequence length of {max}")]
    SequenceTooLong {
        /// Tokens requested.
        len: usize,
        /// The model's limit.
        max: usize,
    },
    /// A token id is outside the model's vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab_size}")]
    TokenOutOfVocabulary {
        /// The id.
        id: u32,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// The model produced NaN or infinite logits (a broken or hostile model).
    #[error("non-finite logits at reference position {position} (vocabulary index {index})")]
    NonFiniteLogits {
        /// Index into the reference tokens.
        position: usize,
        /// First offending vocabulary index in that row.
        index: usize,
    },
    /// The raw logits did not have the expected shape.
    #[error("unexpected logits: {0}")]
    LogitsShape(String),
    /// mistral.rs reported an error for the request.
    #[error("inference failed: {0}")]
    Inference(String),
    /// mistral.rs answered with a response of the wrong kind.
    #[error("unexpected response from the engine (expected {0})")]
    UnexpectedResponse(&'static str),
    /// The engine thread is gone (it exited or panicked).
    #[error("the engine thread is gone")]
    EngineGone,
    /// A tensor operation on the logits failed.
    #[error("tensor: {0}")]
    Tensor(String),
    /// A blocking task panicked or was cancelled.
    #[error("blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// How a model is run.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Sequences the scheduler may batch together. Keep 1 on CPU (docs/architecture.md §12: batched
    /// generations came back with another sequence's continuation).
    pub max_num_seqs: usize,
    /// Send one request at a time to the model. Keep `true`: mixing a scoring request with
    /// a generation request panicked the engine thread. `false` exists only so a test can
    /// observe the batching bug.
    pub serialize_requests: bool,
    /// Logit rows converted to host `f32` at a time while scoring, which bounds the extra
    /// memory to `rows * vocab * 4` bytes.
    pub logits_rows_per_step: usize,
    /// Vibe replies generated together, as one batch ([`EngineOptions::batched`]). 1 (the
    /// default) generates them one after the other, which is right everywhere; batching
    /// is for GPUs (on the CPU, mistral.rs 0.8.1 returns wrong continuations when batched).
    pub generation_batch: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_num_seqs: 1,
            serialize_requests: true,
            logits_rows_per_step: 32,
            generation_batch: 1,
        }
    }
}

impl EngineOptions {
    /// Generates up to `batch` vibe replies at once: the scheduler runs that many
    /// sequences together and generation requests are sent concurrently. Scoring requests
    /// still go one at a time (the evaluation sends them in sequence, never beside a
    /// generation). `batch` 1 is the default.
    pub fn batched(batch: usize) -> Self {
        let batch = batch.max(1);
        Self {
            max_num_seqs: batch,
            serialize_requests: batch == 1,
            generation_batch: batch,
            ..Self::default()
        }
    }
}

/// What the model directory says about the model, beyond what mistral.rs exposes.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The (canonical) model directory.
    pub dir: PathBuf,
    /// Rows of the output layer.
    pub vocab_size: usize,
    /// Longest sequence (context plus reference or generation) the model accepts.
    pub max_seq_len: usize,
    /// The chat template from `tokenizer_config.json`, if any.
    pub chat_template: Option<String>,
    /// `bos_token` string for the template, empty if the model has none.
    pub bos_token: String,
    /// `eos_token` string for the template, empty if the model has none.
    pub eos_token: String,
}

/// Puts a builder (text or multimodal; they share these methods but no trait) on this
/// build's device, with the settings every model gets: no hub token (the files are local),
/// no prefix cache, and `max_num_seqs` sequences in the scheduler.
///
/// CPU build: the CPU in F32 (BF16 fails at the first matmul there, and `Auto` picks F16,
/// which gave NaN).
///
/// `cuda` build: mistral.rs's default device (the first CUDA GPU) in BF16. Explicit rather
/// than `Auto`, which falls back to F16 on GPUs without BF16: every worker then scores in
/// the same dtype (scores stay comparable across workers) and the memory estimate of
/// [`crate::source::precheck::check_config`] (2 bytes a parameter) holds. The cluster's
/// GPUs must support BF16 (Ampere or newer).
macro_rules! on_device {
    ($builder:expr, $max_num_seqs:expr) => {{
        #[cfg(not(feature = "cuda"))]
        let builder = $builder.with_force_cpu().with_dtype(ModelDType::F32);
        #[cfg(feature = "cuda")]
        let builder = $builder.with_dtype(ModelDType::BF16);
        builder
            .with_token_source(TokenSource::None)
            .with_prefix_cache_n(None)
            .with_max_num_seqs($max_num_seqs)
    }};
}

/// What the engine loads from: the model directory itself, or, when `config.json` needed
/// normalising ([`crate::model_config::normalise`]), a temporary directory of links to its
/// files beside the normalised `config.json` (the model's own directory is never written).
struct LoadDir {
    path: PathBuf,
    builder: Builder,
    /// Keeps the derived directory until the model is unloaded.
    _derived: Option<tempfile::TempDir>,
}

fn prepare_load_dir(dir: &Path) -> Result<LoadDir, EngineError> {
    let config_path = dir.join("config.json");
    let mut config: serde_json::Map<String, serde_json::Value> = read_json(&config_path)?;
    let changes = crate::model_config::normalise(&mut config)
        .map_err(|e| EngineError::UnreadableConfig(e.0))?;
    let builder =
        crate::model_config::architecture_of(&config).map_or(Builder::Text, |a| a.builder);
    if changes.is_empty() {
        return Ok(LoadDir {
            path: dir.to_path_buf(),
            builder,
            _derived: None,
        });
    }
    tracing::info!(dir = %dir.display(), ?changes, "config.json normalised for the engine");
    let io = |path: &Path, e: std::io::Error| {
        EngineError::DerivedDir(format!("{}: {e}", path.display()))
    };
    let derived = tempfile::Builder::new()
        .prefix("engine-model-")
        .tempdir()
        .map_err(|e| io(&std::env::temp_dir(), e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name();
        if name == "config.json" {
            continue;
        }
        let link = derived.path().join(&name);
        std::os::unix::fs::symlink(entry.path(), &link).map_err(|e| io(&link, e))?;
    }
    let path = derived.path().join("config.json");
    let text =
        serde_json::to_vec_pretty(&config).map_err(|e| EngineError::DerivedDir(e.to_string()))?;
    std::fs::write(&path, text).map_err(|e| io(&path, e))?;
    Ok(LoadDir {
        path: derived.path().to_path_buf(),
        builder,
        _derived: Some(derived),
    })
}

/// A greedy completion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Generation {
    pub text: String,
    /// Tokens generated.
    pub tokens: usize,
}

/// A model loaded with mistral.rs (CPU, or GPU with the `cuda` feature).
pub struct LoadedModel {
    model: mistralrs::Model,
    /// The directory mistral.rs loaded from, kept while the model lives.
    _load_dir: LoadDir,
    tokenizer: Tokenizer,
    info: ModelInfo,
    options: EngineOptions,
    request_lock: Mutex<()>,
}

common::debug_fields!(LoadedModel { info, options });

impl LoadedModel {
    /// Loads the Hugging Face-layout model in `dir`: on the CPU in F32, or with the `cuda`
    /// feature on the GPU in BF16 (see `on_device`).
    pub async fn load(dir: &Path, options: EngineOptions) -> Result<Self, EngineError> {
        let is_dir = tokio::fs::metadata(dir).await.is_ok_and(|m| m.is_dir());
        if !is_dir {
            return Err(EngineError::MissingModelDir(dir.to_path_buf()));
        }
        let dir = tokio::fs::canonicalize(dir)
            .await
            .map_err(|_| EngineError::MissingModelDir(dir.to_path_buf()))?;
        let runtime = tokio::runtime::Handle::current();
        let max_num_seqs = options.max_num_seqs.max(1);
        let started = Instant::now();

        // Reading the tokenizer and mistral.rs's loading are blocking; so is its warm-up
        // run at the end of `build` (it uses `block_in_place`, fine on a blocking thread).
        let (model, tokenizer, mut info, load_dir) = tokio::task::spawn_blocking(move || {
            let info = read_model_info(&dir)?;
            let tokenizer_path = dir.join("tokenizer.json");
            let tokenizer =
                Tokenizer::from_file(&tokenizer_path).map_err(|e| EngineError::ModelFile {
                    path: tokenizer_path,
                    reason: e.to_string(),
                })?;
            let load_dir = prepare_load_dir(&dir)?;
            let model_id = load_dir
                .path
                .to_str()
                .ok_or_else(|| EngineError::ModelFile {
                    path: load_dir.path.clone(),
                    reason: "path is not UTF-8".into(),
                })?;
            let built = match load_dir.builder {
                Builder::Text => runtime
                    .block_on(on_device!(TextModelBuilder::new(model_id), max_num_seqs).build()),
                Builder::Multimodal => runtime.block_on(
                    on_device!(MultimodalModelBuilder::new(model_id), max_num_seqs).build(),
                ),
            };
            let model = built.map_err(|e| {
                let message = format!("{e:#}");
                match crate::model_config::unreadable_config_error(&message) {
                    Some(key) => EngineError::UnreadableConfig(key),
                    None => EngineError::Load(message),
                }
            })?;
            Ok::<_, EngineError>((model, tokenizer, info, load_dir))
        })
        .await??;

        if let Ok(Some(max)) = model.max_sequence_length() {
            info.max_seq_len = info.max_seq_len.min(max);
        }
        tracing::info!(
            dir = %info.dir.display(),
            vocab_size = info.vocab_size,
            max_seq_len = info.max_seq_len,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        Ok(Self {
            model,
            _load_dir: load_dir,
            tokenizer,
            info,
            options,
            request_lock: Mutex::new(()),
        })
    }

    /// What the model directory says about the model.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The model's tokenizer (its `tokenizer.json`).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Token ids of `text`, without adding special tokens: a rendered chat template already
    /// contains whatever BOS the model expects, so adding one would double it.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens included.
    pub fn detokenize(&self, ids: &[u32]) -> Result<String, EngineError> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    /// For each reference position, the model's probability of the reference token if it is
    /// within the top `k` of that position, else `floor` (docs/architecture.md §7).
    ///
    /// One forward pass over `context ++ reference` with raw logits; row `i` of the logits
    /// predicts token `i + 1`, so reference token `j` is read from row `context.len() - 1 + j`.
    pub async fn teacher_forced_top_k_probs(
        &self,
        context_tokens: &[u32],
        reference_tokens: &[u32],
        k: usize,
        floor: f64,
    ) -> Result<Vec<f64>, EngineError> {
        if context_tokens.is_empty() {
            return Err(EngineError::EmptyInput("the context"));
        }
        if reference_tokens.is_empty() {
            return Ok(Vec::new());
        }
        let tokens = [context_tokens, reference_tokens].concat();
        self.check_tokens(&tokens, 0)?;
        let logits_chunks = self.raw_logits(&tokens).await?;

        let first_row = context_tokens.len() - 1;
        let reference = reference_tokens.to_vec();
        let rows_per_step = self.options.logits_rows_per_step.max(1);
        tokio::task::spawn_blocking(move || {
            reference_probabilities(
                &logits_chunks,
                tokens.len(),
                first_row,
                &reference,
                k,
                floor,
                rows_per_step,
            )
        })
        .await?
    }

    /// The model's next-token probabilities (full-vocabulary softmax, in f64) of each of
    /// `ids` after `prompt_tokens`: one forward pass with raw logits, read at the last row.
    /// The judge reads its verdict this way, without decoding anything.
    pub async fn next_token_probs(
        &self,
        prompt_tokens: &[u32],
        ids: &[u32],
    ) -> Result<Vec<f64>, EngineError> {
        if prompt_tokens.is_empty() {
            return Err(EngineError::EmptyInput("the prompt"));
        }
        self.check_tokens(prompt_tokens, 0)?;
        self.check_tokens(ids, 0)?;
        let logits_chunks = self.raw_logits(prompt_tokens).await?;
        let ids = ids.to_vec();
        tokio::task::spawn_blocking(move || last_row_probabilities(&logits_chunks, &ids)).await?
    }

    /// One forward pass over `tokens` with raw logits: the logits of every position, in
    /// chunks (checked tokens only).
    async fn raw_logits(&self, tokens: &[u32]) -> Result<Vec<Tensor>, EngineError> {
        let response = self
            .send(
                RequestMessage::CompletionTokens(tokens.to_vec()),
                raw_sampling(),
                true,
            )
            .await?;
        let (logits_chunks, echoed) = match response {
            Response::Raw {
                logits_chunks,
                tokens,
            } => (logits_chunks, tokens),
            other => return Err(response_error(other, "raw logits")),
        };
        if echoed != tokens {
            return Err(EngineError::LogitsShape(format!(
                "the engine ran {} tokens, {} were sent",
                echoed.len(),
                tokens.len()
            )));
        }
        Ok(logits_chunks)
    }

    /// Greedy (temperature 0) continuation of `prompt_tokens`, at most `max_tokens` tokens,
    /// stopping at the model's EOS tokens. `max_tokens` is cut to what fits in the context.
    pub async fn generate_greedy(
        &self,
        prompt_tokens: &[u32],
        max_tokens: usize,
    ) -> Result<String, EngineError> {
        Ok(self.generate(prompt_tokens, max_tokens).await?.text)
    }

    /// [`Self::generate_greedy`], with the number of tokens generated.
    pub async fn generate(
        &self,
        prompt_tokens: &[u32],
        max_tokens: usize,
    ) -> Result<Generation, EngineError> {
        if prompt_tokens.is_empty() {
            return Err(EngineError::EmptyInput("the prompt"));
        }
        self.check_tokens(prompt_tokens, 1)?;
        let max_tokens = max_tokens.min(self.info.max_seq_len - prompt_tokens.len());
        if max_tokens == 0 {
            return Ok(Generation::default());
        }
        let sampling = SamplingParams {
            max_len: Some(max_tokens),
            ..SamplingParams::deterministic()
        };
        let response = self
            .send(
                RequestMessage::CompletionTokens(prompt_tokens.to_vec()),
                sampling,
                false,
            )
            .await?;
        match response {
            Response::CompletionDone(done) => {
                let tokens = done.usage.completion_tokens;
                done.choices
                    .into_iter()
                    .next()
                    .map(|choice| Generation {
                        text: choice.text,
                        tokens,
                    })
                    .ok_or(EngineError::UnexpectedResponse("a completion choice"))
            }
            other => Err(response_error(other, "a completion")),
        }
    }

    /// Wall-clock latency of a forward pass over a fixed prompt of `n_tokens` tokens (a
    /// one-token greedy completion): [`LATENCY_WARMUP`] untimed passes (caches, allocator and
    /// thread pools settle), then `repeats` timed ones, of which the median is the latency, so
    /// a pass slowed by another process on the host does not move it.
    pub async fn forward_latency(
        &self,
        n_tokens: usize,
        repeats: usize,
    ) -> Result<LatencyStats, EngineError> {
        if n_tokens == 0 || repeats == 0 {
            return Err(EngineError::EmptyInput("the latency probe"));
        }
        let prompt = latency_prompt(n_tokens, self.info.vocab_size);
        self.check_tokens(&prompt, 1)?;
        for _ in 0..LATENCY_WARMUP {
            self.generate_greedy(&prompt, 1).await?;
        }
        let mut times = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let start = Instant::now();
            self.generate_greedy(&prompt, 1).await?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(latency_stats(&times))
    }

    /// Drops the model, waits for mistral.rs's engine thread to exit (it owns the weights),
    /// then returns freed heap to the OS (glibc kept ~1 GB of a 1.7 GB model otherwise).
    pub async fn unload(self) {
        let Self {
            model,
            _load_dir: load_dir,
            ..
        } = self;
        let sender = model.inner().get_sender(None).ok();
        drop(model); // sends `Terminate` to the engine thread
        if let Some(sender) = sender {
            // The engine's receiver is dropped when its thread exits.
            if tokio::time::timeout(ENGINE_EXIT_TIMEOUT, sender.closed())
                .await
                .is_err()
            {
                tracing::warn!("engine thread still running after unload; trimming anyway");
            }
        }
        // The engine thread is gone (or given up on): the derived directory can go.
        drop(load_dir);
        if let Err(e) = tokio::task::spawn_blocking(release_freed_memory).await {
            tracing::warn!(error = %e, "malloc_trim task failed");
        }
        tracing::info!("model unloaded");
    }

    /// Rejects empty, too long (leaving `reserve` positions free) or out-of-vocabulary input.
    fn check_tokens(&self, tokens: &[u32], reserve: usize) -> Result<(), EngineError> {
        let max = self.info.max_seq_len;
        if tokens.len() + reserve > max {
            return Err(EngineError::SequenceTooLong {
                len: tokens.len() + reserve,
                max,
            });
        }
        let vocab_size = self.info.vocab_size;
        match tokens.iter().find(|&&id| id as usize >= vocab_size) {
            Some(&id) => Err(EngineError::TokenOutOfVocabulary { id, vocab_size }),
            None => Ok(()),
        }
    }

    /// Sends one request to the engine thread and waits for its single response.
    async fn send(
        &self,
        message: RequestMessage,
        sampling: SamplingParams,
        return_raw_logits: bool,
    ) -> Result<Response, EngineError> {
        let _guard = if self.options.serialize_requests {
            Some(self.request_lock.lock().await)
        } else {
            None
        };
        let runner = self.model.inner();
        let (tx, mut rx) = mpsc::channel(1);
        let mut request =
            NormalRequest::new_simple(message, sampling, tx, runner.next_request_id(), None, None);
        request.return_raw_logits = return_raw_logits;
        let sender = runner
            .get_sender(None)
            .map_err(|_| EngineError::EngineGone)?;
        sender
            .send(Request::Normal(Box::new(request)))
            .await
            .map_err(|_| EngineError::EngineGone)?;
        rx.recv().await.ok_or(EngineError::EngineGone)
    }
}

/// Sampling for a raw-logits request: the logits come back after the prompt step, before any
/// sampling, so this only has to be valid.
fn raw_sampling() -> SamplingParams {
    SamplingParams {
        max_len: Some(1),
        ..SamplingParams::deterministic()
    }
}

/// Maps a response of the wrong kind (usually an error) to an [`EngineError`].
fn response_error(response: Response, expected: &'static str) -> EngineError {
    match response {
        Response::InternalError(e) | Response::ValidationError(e) => {
            EngineError::Inference(e.to_string())
        }
        Response::ModelError(msg, _) | Response::CompletionModelError(msg, _) => {
            EngineError::Inference(msg)
        }
        _ => EngineError::UnexpectedResponse(expected),
    }
}

/// Reads the reference probabilities out of raw logits: `chunks` together are
/// `[total_rows, vocab]` (mistral.rs may split a long prompt into several chunks; a leading
/// batch dimension of 1 is tolerated), converted `rows_per_step` rows at a time.
fn reference_probabilities(
    chunks: &[Tensor],
    total_rows: usize,
    first_row: usize,
    reference: &[u32],
    k: usize,
    floor: f64,
    rows_per_step: usize,
) -> Result<Vec<f64>, EngineError> {
    let chunks = chunks
        .iter()
        .map(|chunk| match chunk.dims() {
            [_, _] => Ok(chunk.clone()),
            [1, _, _] => chunk.squeeze(0).map_err(tensor_error),
            dims => Err(EngineError::LogitsShape(format!(
                "a chunk has shape {dims:?}"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let rows: usize = chunks.iter().map(|c| c.dims()[0]).sum();
    if rows != total_rows {
        return Err(EngineError::LogitsShape(format!(
            "{rows} rows of logits for {total_rows} tokens"
        )));
    }

    let wanted = first_row..first_row + reference.len();
    let mut probs = Vec::with_capacity(reference.len());
    let mut chunk_start = 0;
    for chunk in &chunks {
        let chunk_rows = chunk.dims()[0];
        let mut row = wanted.start.max(chunk_start);
        let end = wanted.end.min(chunk_start + chunk_rows);
        while row < end {
            let take = rows_per_step.min(end - row);
            let block = chunk
                .narrow(0, row - chunk_start, take)
                .and_then(|b| b.to_dtype(DType::F32))
                .and_then(|b| b.to_vec2::<f32>())
                .map_err(tensor_error)?;
            for (offset, logits) in block.iter().enumerate() {
                let position = row + offset - first_row;
                let p = top_k_probability(logits, reference[position], k, floor).map_err(
                    |NonFiniteLogits { index }| EngineError::NonFiniteLogits { position, index },
                )?;
                probs.push(p);
            }
            row += take;
        }
        chunk_start += chunk_rows;
    }
    Ok(probs)
}

/// Full-softmax probabilities of `ids` in the last row of the raw logits `chunks`.
fn last_row_probabilities(chunks: &[Tensor], ids: &[u32]) -> Result<Vec<f64>, EngineError> {
    let last = chunks
        .last()
        .ok_or(EngineError::LogitsShape("no logits".into()))?;
    let last = match last.dims() {
        [_, _] => last.clone(),
        [1, _, _] => last.squeeze(0).map_err(tensor_error)?,
        dims => {
            return Err(EngineError::LogitsShape(format!(
                "a chunk has shape {dims:?}"
            )));
        }
    };
    let rows = last.dims()[0];
    if rows == 0 {
        return Err(EngineError::LogitsShape("an empty chunk".into()));
    }
    let row = last
        .narrow(0, rows - 1, 1)
        .and_then(|r| r.to_dtype(DType::F32))
        .and_then(|r| r.flatten_all())
        .and_then(|r| r.to_vec1::<f32>())
        .map_err(tensor_error)?;
    if let Some(index) = row.iter().position(|x| !x.is_finite()) {
        return Err(EngineError::NonFiniteLogits { position: 0, index });
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&x| f64::from(x - max).exp()).sum();
    ids.iter()
        .map(|&id| {
            let logit = row
                .get(id as usize)
                .ok_or(EngineError::TokenOutOfVocabulary {
                    id,
                    vocab_size: row.len(),
                })?;
            Ok(f64::from(logit - max).exp() / sum)
        })
        .collect()
}

fn tensor_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Tensor(e.to_string())
}

/// The latency of timed passes of `times` milliseconds (not empty).
fn latency_stats(times: &[f64]) -> LatencyStats {
    LatencyStats {
        median_ms: median(times),
        min_ms: times.iter().copied().fold(f64::INFINITY, f64::min),
        max_ms: times.iter().copied().fold(0.0, f64::max),
        repeats: u32::try_from(times.len()).unwrap_or(u32::MAX),
    }
}

/// The fixed latency probe: `n_tokens` ids spread over the vocabulary, the same for every
/// model of a given vocabulary size.
fn latency_prompt(n_tokens: usize, vocab_size: usize) -> Vec<u32> {
    let vocab = vocab_size.max(1);
    (0..n_tokens)
        .map(|i| u32::try_from((i * 7919 + 17) % vocab).unwrap_or(0))
        .collect()
}

/// Returns freed heap pages to the OS. glibc keeps them after a model is dropped otherwise.
#[allow(unsafe_code)]
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` has no preconditions; it only walks glibc's allocator
        // state under glibc's own locks.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[derive(Deserialize)]
struct ConfigJson {
    vocab_size: Option<usize>,
    max_position_embeddings: Option<usize>,
}

/// A special token in `tokenizer_config.json`: a string or `{ "content": ... }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SpecialToken {
    Text(String),
    Object { content: String },
}

/// `chat_template` in `tokenizer_config.json`: a string or a list of named templates.
#[derive(Deserialize)]
#[serde(untagged)]
enum TemplateField {
    Text(String),
    Named(Vec<NamedTemplate>),
}

#[derive(Deserialize)]
struct NamedTemplate {
    name: String,
    template: String,
}

#[derive(Deserialize, Default)]
struct TokenizerConfigJson {
    chat_template: Option<TemplateField>,
    bos_token: Option<SpecialToken>,
    eos_token: Option<SpecialToken>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EngineError> {
    let bytes = std::fs::read(path).map_err(|e| EngineError::ModelFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| EngineError::ModelFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads `config.json` and (if present) `tokenizer_config.json` and `chat_template.jinja`.
fn read_model_info(dir: &Path) -> Result<ModelInfo, EngineError> {
    let config_path = dir.join("config.json");
    let config: ConfigJson = read_json(&config_path)?;
    let missing = |field: &str| EngineError::ModelFile {
        path: config_path.clone(),
        reason: format!("`{field}` is missing"),
    };
    let vocab_size = config.vocab_size.ok_or_else(|| missing("vocab_size"))?;
    let max_seq_len = config
        .max_position_embeddings
        .ok_or_else(|| missing("max_position_embeddings"))?;

    let tokenizer_config_path = dir.join("tokenizer_config.json");
    let tokenizer_config: TokenizerConfigJson = if tokenizer_config_path.is_file() {
        read_json(&tokenizer_config_path)?
    } else {
        TokenizerConfigJson::default()
    };
    let token = |t: Option<SpecialToken>| match t {
        Some(SpecialToken::Text(s) | SpecialToken::Object { content: s }) => s,
        None => String::new(),
    };
    let jinja_path = dir.join("chat_template.jinja");
    let chat_template = match tokenizer_config.chat_template {
        Some(TemplateField::Text(t)) => Some(t),
        Some(TemplateField::Named(list)) => list
            .into_iter()
            .find(|t| t.name == "default")
            .map(|t| t.template),
        None if jinja_path.is_file() => Some(std::fs::read_to_string(&jinja_path).map_err(
            |e| EngineError::ModelFile {
                path: jinja_path.clone(),
                reason: e.to_string(),
            },
        )?),
        None => None,
    };
    Ok(ModelInfo {
        dir: dir.to_path_buf(),
        vocab_size,
        max_seq_len,
        chat_template,
        bos_token: token(tokenizer_config.bos_token),
        eos_token: token(tokenizer_config.eos_token),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mistralrs::Device;

    #[test]
    fn reference_rows_are_read_across_chunks() {
        // 5 tokens, vocab 3; row r puts all mass on token (r + 1) % 3.
        let rows: Vec<f32> = (0..5)
            .flat_map(|r| (0..3).map(move |v| if v == (r + 1) % 3 { 10.0 } else { 0.0 }))
            .collect();
        let full = Tensor::from_vec(rows, (5, 3), &Device::Cpu).unwrap();
        let chunks = [
            full.narrow(0, 0, 2).unwrap(),
            full.narrow(0, 2, 3).unwrap().unsqueeze(0).unwrap(),
        ];
        // Context of 2 tokens, reference = tokens 2..5, predicted by rows 1..4.
        let reference = [2, 0, 1];
        for step in [1, 2, 32] {
            let p = reference_probabilities(&chunks, 5, 1, &reference, 1, 1e-9, step).unwrap();
            assert_eq!(p.len(), 3);
            assert!(p.iter().all(|&x| x > 0.99), "{p:?}");
        }
        // A wrong reference token is outside the top 1.
        let p = reference_probabilities(&chunks, 5, 1, &[0, 0, 1], 1, 1e-9, 4).unwrap();
        assert_eq!(p[0], 1e-9);
    }

    #[test]
    fn missing_rows_and_nan_are_typed_errors() {
        let t = Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(matches!(
            reference_probabilities(&[t], 4, 0, &[1], 1, 1e-9, 8),
            Err(EngineError::LogitsShape(_))
        ));
        let nan = Tensor::from_vec(vec![0.0, f32::NAN, 0.0, 0.0], (2, 2), &Device::Cpu).unwrap();
        assert!(matches!(
            reference_probabilities(&[nan], 2, 0, &[1], 1, 1e-9, 8),
            Err(EngineError::NonFiniteLogits {
                position: 0,
                index: 1
            })
        ));
    }

    #[test]
    fn next_token_probabilities_come_from_the_last_row() {
        // logits of the last row: [0, ln 2, ln 3, ln 4] -> softmax [0.1, 0.2, 0.3, 0.4].
        let first = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
        let last = Tensor::from_vec(
            vec![9.0f32, 9.0, 9.0, 9.0, 0.0, 2f32.ln(), 3f32.ln(), 4f32.ln()],
            (1, 2, 4),
            &Device::Cpu,
        )
        .unwrap();
        let p = last_row_probabilities(&[first, last], &[3, 1]).unwrap();
        assert!(
            (p[0] - 0.4).abs() < 1e-6 && (p[1] - 0.2).abs() < 1e-6,
            "{p:?}"
        );
        assert!(matches!(
            last_row_probabilities(
                &[Tensor::zeros((1, 4), DType::F32, &Device::Cpu).unwrap()],
                &[4]
            ),
            Err(EngineError::TokenOutOfVocabulary { id: 4, .. })
        ));
    }

    #[test]
    fn one_slow_pass_does_not_move_the_latency() {
        let steady = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.3, 10.1, 9.9];
        let mut noisy = steady;
        noisy[4] = 100.0; // another process took the CPU for one pass
        let (a, b) = (latency_stats(&steady), latency_stats(&noisy));
        assert_eq!(a.median_ms, 10.0);
        // The median moves by at most one rank (here 1 %); the mean would move by 100 %.
        assert!(
            (b.median_ms - a.median_ms).abs() / a.median_ms <= 0.011,
            "{b:?}"
        );
        assert_eq!((b.min_ms, b.max_ms, b.repeats), (9.8, 100.0, 9));
        let mean = |t: &[f64]| t.iter().sum::<f64>() / t.len() as f64;
        assert!((mean(&noisy) - mean(&steady)) / mean(&steady) > 0.9);
    }

    #[test]
    fn latency_prompt_is_fixed_and_in_vocabulary() {
        let p = latency_prompt(64, 512);
        assert_eq!(p, latency_prompt(64, 512));
        assert_eq!(p.len(), 64);
        assert!(p.iter().all(|&id| id < 512));
    }
}
