//! Generated tiny models: random-weight models of each family the engine runs (Llama,
//! Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3) written to disk in the Hugging Face layout.
//!
//! The worker's tests cannot download a real model, so they generate one (architecture §11):
//! sharded safetensors with an index, `config.json`, a byte-level BPE `tokenizer.json` built
//! with the `tokenizers` crate, `tokenizer_config.json` with a ChatML template, and
//! `generation_config.json`. The same [`TinyModelSpec`] (seed included) always produces
//! byte-identical files; a different seed gives different weights (the tokenizer does not
//! depend on the seed).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use safetensors::{Dtype, tensor::TensorView};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::model_config::ARCHITECTURES;

/// Special tokens, in id order: they take ids `0..SPECIAL_TOKENS.len()`.
pub const SPECIAL_TOKENS: [&str; 5] = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"];
/// Id of `<unk>`.
pub const UNK_ID: u32 = 0;
/// Id of `<s>`.
pub const BOS_ID: u32 = 1;
/// Id of `</s>`.
pub const EOS_ID: u32 = 2;
/// Id of `<|im_start|>`.
pub const IM_START_ID: u32 = 3;
/// Id of `<|im_end|>` (end of a ChatML turn; the model's `eos_token`).
pub const IM_END_ID: u32 = 4;

/// Smallest vocabulary that holds the special tokens and all 256 byte tokens.
pub const MIN_VOCAB_SIZE: usize = SPECIAL_TOKENS.len() + 256;

/// The tensor that [`TinyModelSpec::nan`] fills with NaN.
pub const NAN_TENSOR: &str = "model.layers.0.mlp.down_proj.weight";

/// The ChatML chat template written into `tokenizer_config.json`. It emits no BOS.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}\
{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\
{% endfor %}\
{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Words whose prefixes become BPE merges, so that common English is a few tokens per word.
/// Byte fallback is complete without them (every byte is a token); they only shorten text.
const MERGE_WORDS: &str = "the and you to of a in is it that was for on are with as I his he be at \
by this had not but what all were when we there can an your which their said if do will each \
about how up out them then she many some so these would other into has more her two like him see \
time could no make than first been its who now people my made over did down only way find use may \
water long little very after words called just where most know get through back much before go \
good new write our used me man too any day same right look think also around another came come \
work three word must because does part even place well such here take why things help put years \
different away again off went old number great tell men say small every found still between name \
should home big give air line set own under read last never us left end along while might next \
sound below saw something thought both few those always looked show large often together asked \
house world going want school important until form food keep children feet land side without boy \
once animals life enough took sometimes four head above kind began almost live page got earth need \
far hand high year mother light parts country father let night following picture being study second \
eyes soon times story boys since white days ever paper hard near sentence better best across during \
today others however sure means knew try told young miles sun ways thing whole hear example heard \
several change answer room sea against top turned learn point city play toward five using himself \
usually smile smiled sword castle dragon magic tavern whisper whispered laugh laughed nods eyes \
gently softly quietly voice door hello hey yes yeah okay please thank thanks sorry";

/// The model family a generated model belongs to: its `config.json` and
/// tensor names. Qwen 2 adds biases on the query, key and value projections
/// to Llama's tensors, Qwen 3 per-head RMS norms of queries and keys; Gemma 2
/// has four norms a layer, tied embeddings and logit soft-capping, Gemma 3
/// adds query/key norms (a text-only `Gemma3ForCausalLM`).
pub use crate::model_config::Family as TinyFamily;

impl TinyFamily {
    /// The `architectures` entry of its `config.json`: the family's
    /// architecture in [`ARCHITECTURES`].
    pub fn architecture(self) -> &'static str {
        ARCHITECTURES
            .iter()
            .find(|a| a.family == self)
            .map(|a| a.name)
            .expect("every family has an architecture")
    }

    fn is_gemma(self) -> bool {
        matches!(self, Self::Gemma2 | Self::Gemma3)
    }
}

/// How `config.json` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfigStyle {
    /// Flat fields (`rope_theta`, `torch_dtype`), as transformers 4 writes them.
    #[default]
    Transformers4,
    /// transformers 5: `rope_parameters` (per layer type for Gemma 3, with `layer_types`),
    /// `dtype`.
    Transformers5,
}

/// Shape and content of a generated model.
#[derive(Debug, Clone, PartialEq)]
pub struct TinyModelSpec {
    /// The family (tensor names and config).
    pub family: TinyFamily,
    /// How `config.json` is written.
    pub config_style: ConfigStyle,
    /// Seed of the ChaCha20 generator that draws the weights.
    pub seed: u64,
    /// Vocabulary size (tokenizer and embedding rows); at least [`MIN_VOCAB_SIZE`].
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads; must divide `hidden_size`.
    pub num_attention_heads: usize,
    /// Number of key/value heads; must divide `num_attention_heads`.
    pub num_key_value_heads: usize,
    /// Context length written to the config.
    pub max_position_embeddings: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// Standard deviation of the normal distribution the projection weights are drawn from.
    pub init_std: f32,
    /// Number of safetensors shards (at least 1).
    pub num_shards: usize,
    /// Fill [`NAN_TENSOR`] with NaN: a hostile model for error-path tests.
    pub nan: bool,
}

impl Default for TinyModelSpec {
    fn default() -> Self {
        Self {
            family: TinyFamily::default(),
            config_style: ConfigStyle::default(),
            seed: 0,
            vocab_size: 512,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            max_position_embeddings: 512,
            rope_theta: 10_000.0,
            init_std: 0.02,
            num_shards: 2,
            nan: false,
        }
    }
}

impl TinyModelSpec {
    /// The default spec with another seed.
    #[must_use]
    pub fn with_seed(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }

    /// The default spec of `family` with `seed`.
    #[must_use]
    pub fn of_family(family: TinyFamily, seed: u64) -> Self {
        Self {
            family,
            seed,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            self.vocab_size >= MIN_VOCAB_SIZE,
            "vocab_size {} is below the minimum {MIN_VOCAB_SIZE}",
            self.vocab_size
        );
        ensure!(
            self.hidden_size > 0 && self.intermediate_size > 0,
            "sizes must be positive"
        );
        ensure!(self.num_hidden_layers > 0, "at least one layer is needed");
        ensure!(
            self.num_attention_heads > 0
                && self.hidden_size.is_multiple_of(self.num_attention_heads),
            "num_attention_heads must divide hidden_size"
        );
        ensure!(
            self.num_key_value_heads > 0
                && self
                    .num_attention_heads
                    .is_multiple_of(self.num_key_value_heads),
            "num_key_value_heads must divide num_attention_heads"
        );
        ensure!(self.num_shards > 0, "at least one shard is needed");
        ensure!(
            self.init_std.is_finite() && self.init_std > 0.0,
            "init_std must be positive"
        );
        Ok(())
    }

    fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// What [`write_tiny_model`] wrote.
#[derive(Debug, Clone)]
pub struct TinyModelFiles {
    /// The model directory.
    pub dir: PathBuf,
    /// Every file written, in a fixed order (the shards first).
    pub files: Vec<PathBuf>,
    /// Number of parameters.
    pub parameters: usize,
}

impl TinyModelFiles {
    /// SHA-256 over every written file (name, length and content, in order), hex encoded:
    /// equal specs give equal digests.
    pub fn sha256(&self) -> Result<String> {
        let mut hasher = Sha256::new();
        for path in &self.files {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
        Ok(hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }
}

/// Writes a random-weight model of `spec.family` into `dir` (created if missing). Existing files of the
/// same names are overwritten; nothing else in `dir` is touched.
pub fn write_tiny_model(dir: &Path, spec: &TinyModelSpec) -> Result<TinyModelFiles> {
    spec.validate()?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let tensors = random_tensors(spec);
    let parameters = tensors.iter().map(|t| t.data.len()).sum();
    let mut files = write_shards(dir, &tensors, spec.num_shards)?;

    let tokenizer = build_tokenizer(spec.vocab_size)?;
    let tokenizer_path = dir.join("tokenizer.json");
    tokenizer
        .save(&tokenizer_path, true)
        .map_err(|e| anyhow::anyhow!("writing tokenizer.json: {e}"))?;
    files.push(tokenizer_path);

    for (name, value) in [
        ("config.json", config_json(spec)),
        ("tokenizer_config.json", tokenizer_config_json(spec)),
        ("generation_config.json", generation_config_json()),
    ] {
        files.push(write_json(dir, name, &value)?);
    }
    tracing::debug!(dir = %dir.display(), seed = spec.seed, parameters, "wrote tiny model");
    Ok(TinyModelFiles {
        dir: dir.to_path_buf(),
        files,
        parameters,
    })
}

/// Builds the byte-level BPE tokenizer of a tiny model with exactly `vocab_size` tokens:
/// the special tokens (ids 0..5), the 256 byte tokens, then merges of common English words.
/// Any UTF-8 text round-trips through it.
pub fn build_tokenizer(vocab_size: usize) -> Result<Tokenizer> {
    ensure!(
        vocab_size >= MIN_VOCAB_SIZE,
        "vocab_size {vocab_size} is below {MIN_VOCAB_SIZE}"
    );
    let mut vocab: Vec<String> = SPECIAL_TOKENS.iter().map(|s| (*s).to_owned()).collect();
    let byte_chars = gpt2_byte_chars();
    vocab.extend(byte_chars.iter().map(char::to_string));
    let mut known: HashSet<String> = vocab.iter().cloned().collect();
    let mut merges: Vec<(String, String)> = Vec::new();

    // A merge is (left, right) -> left+right; prefixes of each word, with and without the
    // leading-space marker, then letter pairs if the word list runs out.
    let space = byte_chars[usize::from(b' ')];
    let words = MERGE_WORDS
        .split_whitespace()
        .flat_map(|w| [format!("{space}{w}"), w.to_owned()]);
    let letters: Vec<char> = ('a'..='z').collect();
    let pairs = std::iter::once(space)
        .chain(letters.iter().copied())
        .flat_map(|a| letters.iter().map(move |b| format!("{a}{b}")));
    'fill: for word in words.chain(pairs) {
        let chars: Vec<char> = word.chars().collect();
        for end in 2..=chars.len() {
            if vocab.len() == vocab_size {
                break 'fill;
            }
            let merged: String = chars[..end].iter().collect();
            if known.insert(merged.clone()) {
                let left: String = chars[..end - 1].iter().collect();
                merges.push((left, chars[end - 1].to_string()));
                vocab.push(merged);
            }
        }
    }
    ensure!(
        vocab.len() == vocab_size,
        "could not fill a vocabulary of {vocab_size} tokens"
    );

    let ids: ahash::AHashMap<String, u32> = vocab
        .into_iter()
        .enumerate()
        .map(|(id, token)| (token, u32::try_from(id).expect("vocab fits in u32")))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(ids, merges)
        .unk_token(SPECIAL_TOKENS[UNK_ID as usize].to_owned())
        .build()
        .map_err(|e| anyhow::anyhow!("building BPE model: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevelDecoder::default()));
    let specials: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    tokenizer.add_special_tokens(&specials);
    ensure!(
        tokenizer.get_vocab_size(true) == vocab_size,
        "tokenizer has {} tokens, expected {vocab_size}",
        tokenizer.get_vocab_size(true)
    );
    Ok(tokenizer)
}

/// The GPT-2 byte-to-character table used by byte-level BPE: index = byte value.
fn gpt2_byte_chars() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut shifted = 0;
    (0..=255u32)
        .map(|b| {
            let code = if printable(b) {
                b
            } else {
                shifted += 1;
                255 + shifted
            };
            char::from_u32(code).expect("valid code point")
        })
        .collect()
}

/// One named f32 tensor.
struct NamedTensor {
    name: String,
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// Draws every tensor of the model, in a fixed order, from one seeded generator.
fn random_tensors(spec: &TinyModelSpec) -> Vec<NamedTensor> {
    let mut rng = ChaCha20Rng::seed_from_u64(spec.seed);
    let (h, i, v) = (spec.hidden_size, spec.intermediate_size, spec.vocab_size);
    let kv = spec.num_key_value_heads * spec.head_dim();
    let std = spec.init_std;

    let mut out = Vec::new();
    let mut normal = |name: String, shape: Vec<usize>| {
        let data = (0..shape.iter().product::<usize>())
            .map(|_| std * standard_normal(&mut rng))
            .collect();
        NamedTensor { name, shape, data }
    };
    out.push(normal("model.embed_tokens.weight".into(), vec![v, h]));
    for layer in 0..spec.num_hidden_layers {
        let p = format!("model.layers.{layer}");
        for (proj, rows) in [("q_proj", h), ("k_proj", kv), ("v_proj", kv), ("o_proj", h)] {
            out.push(normal(
                format!("{p}.self_attn.{proj}.weight"),
                vec![rows, h],
            ));
        }
        out.push(normal(format!("{p}.mlp.gate_proj.weight"), vec![i, h]));
        out.push(normal(format!("{p}.mlp.up_proj.weight"), vec![i, h]));
        out.push(normal(format!("{p}.mlp.down_proj.weight"), vec![h, i]));
    }
    // Gemma ties the output layer to the embeddings.
    if !spec.family.is_gemma() {
        out.push(normal("lm_head.weight".into(), vec![v, h]));
    }

    // Norms scale by `w` (Llama, Qwen) or `1 + w` (Gemma): both start as the identity.
    let norm_init = if spec.family.is_gemma() { 0.0 } else { 1.0 };
    let norm = |name: String, len: usize| NamedTensor {
        name,
        shape: vec![len],
        data: vec![norm_init; len],
    };
    let mut layer_norms = vec!["input_layernorm", "post_attention_layernorm"];
    if spec.family.is_gemma() {
        layer_norms.extend(["pre_feedforward_layernorm", "post_feedforward_layernorm"]);
    }
    for layer in 0..spec.num_hidden_layers {
        for name in &layer_norms {
            out.push(norm(format!("model.layers.{layer}.{name}.weight"), h));
        }
    }
    out.push(norm("model.norm.weight".into(), h));
    for layer in 0..spec.num_hidden_layers {
        let p = format!("model.layers.{layer}.self_attn");
        match spec.family {
            TinyFamily::Qwen2 => {
                for (proj, rows) in [("q_proj", h), ("k_proj", kv), ("v_proj", kv)] {
                    out.push(NamedTensor {
                        name: format!("{p}.{proj}.bias"),
                        shape: vec![rows],
                        data: vec![0.0; rows],
                    });
                }
            }
            TinyFamily::Qwen3 | TinyFamily::Gemma3 => {
                out.push(norm(format!("{p}.q_norm.weight"), spec.head_dim()));
                out.push(norm(format!("{p}.k_norm.weight"), spec.head_dim()));
            }
            TinyFamily::Llama | TinyFamily::Mistral | TinyFamily::Gemma2 => {}
        }
    }

    if spec.nan
        && let Some(t) = out.iter_mut().find(|t| t.name == NAN_TENSOR)
    {
        t.data.fill(f32::NAN);
    }
    out
}

/// A standard normal sample (Box-Muller), so the weights depend on nothing but the seed.
fn standard_normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Splits the tensors into `num_shards` contiguous shards of about equal size and writes
/// them with `model.safetensors.index.json`.
fn write_shards(dir: &Path, tensors: &[NamedTensor], num_shards: usize) -> Result<Vec<PathBuf>> {
    if tensors.len() < num_shards {
        bail!("{} tensors cannot fill {num_shards} shards", tensors.len());
    }
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let total_size: usize = bytes.iter().map(Vec::len).sum();

    // Start a new shard whenever the running size passes the next equal share.
    let mut shard_of = Vec::with_capacity(tensors.len());
    let mut running = 0;
    for (idx, b) in bytes.iter().enumerate() {
        let remaining_tensors = tensors.len() - idx;
        let current = shard_of.last().copied().unwrap_or(0);
        let remaining_shards = num_shards - 1 - current;
        let by_size = running * num_shards >= (current + 1) * total_size;
        let forced = remaining_tensors == remaining_shards;
        let shard = if idx > 0 && remaining_shards > 0 && (by_size || forced) {
            current + 1
        } else {
            current
        };
        shard_of.push(shard);
        running += b.len();
    }

    let shard_name = |s: usize| format!("model-{:05}-of-{num_shards:05}.safetensors", s + 1);
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    let mut weight_map = BTreeMap::new();
    let mut files = Vec::with_capacity(num_shards + 1);
    for shard in 0..num_shards {
        let mut views = Vec::new();
        for (idx, t) in tensors
            .iter()
            .enumerate()
            .filter(|(idx, _)| shard_of[*idx] == shard)
        {
            let view = TensorView::new(Dtype::F32, t.shape.clone(), &bytes[idx])
                .with_context(|| format!("tensor {}", t.name))?;
            views.push((t.name.clone(), view));
            weight_map.insert(t.name.clone(), shard_name(shard));
        }
        let path = dir.join(shard_name(shard));
        safetensors::serialize_to_file(views, Some(metadata.clone()), &path)
            .with_context(|| format!("writing {}", path.display()))?;
        files.push(path);
    }
    let index = json!({ "metadata": { "total_size": total_size }, "weight_map": weight_map });
    files.push(write_json(dir, "model.safetensors.index.json", &index)?);
    Ok(files)
}

fn config_json(spec: &TinyModelSpec) -> serde_json::Value {
    let family = spec.family;
    let mut config = json!({
        "architectures": [family.architecture()],
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_hidden_layers,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim(),
        "vocab_size": spec.vocab_size,
        "max_position_embeddings": spec.max_position_embeddings,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": family.is_gemma(),
        "bos_token_id": BOS_ID,
        "eos_token_id": IM_END_ID,
        "use_cache": true,
    });
    let extra = match family {
        TinyFamily::Llama => json!({
            "model_type": "llama", "hidden_act": "silu", "rope_scaling": null,
            "attention_bias": false, "mlp_bias": false,
        }),
        TinyFamily::Mistral => json!({
            "model_type": "mistral", "hidden_act": "silu", "sliding_window": null,
        }),
        TinyFamily::Qwen2 => json!({
            "model_type": "qwen2", "hidden_act": "silu", "sliding_window": null,
            "use_sliding_window": false, "max_window_layers": spec.num_hidden_layers,
        }),
        TinyFamily::Qwen3 => json!({
            "model_type": "qwen3", "hidden_act": "silu", "sliding_window": null,
            "use_sliding_window": false, "max_window_layers": spec.num_hidden_layers,
            "attention_bias": false,
        }),
        TinyFamily::Gemma2 => json!({
            "model_type": "gemma2", "hidden_activation": "gelu_pytorch_tanh",
            "attention_bias": false, "query_pre_attn_scalar": spec.head_dim(),
            "sliding_window": 64, "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0,
        }),
        TinyFamily::Gemma3 => json!({
            "model_type": "gemma3_text", "hidden_activation": "gelu_pytorch_tanh",
            "attention_bias": false, "query_pre_attn_scalar": spec.head_dim(),
            "sliding_window": 64, "attn_logit_softcapping": null,
            "final_logit_softcapping": null, "rope_scaling": null,
        }),
    };
    let map = config.as_object_mut().expect("an object");
    map.extend(extra.as_object().expect("an object").clone());
    // Gemma 3 alternates sliding and full attention: two sliding layers, then one full.
    let gemma3_pattern = 3;
    match spec.config_style {
        ConfigStyle::Transformers4 => {
            map.insert("rope_theta".into(), spec.rope_theta.into());
            map.insert("torch_dtype".into(), "float32".into());
            if family == TinyFamily::Gemma3 {
                map.insert("rope_local_base_freq".into(), 10_000.0.into());
                map.insert("sliding_window_pattern".into(), gemma3_pattern.into());
            }
        }
        ConfigStyle::Transformers5 => {
            map.insert("dtype".into(), "float32".into());
            map.remove("rope_scaling");
            let global = json!({"rope_type": "default", "rope_theta": spec.rope_theta});
            let rope = if family == TinyFamily::Gemma3 {
                let types: Vec<&str> = (0..spec.num_hidden_layers)
                    .map(|i| {
                        if (i + 1) % gemma3_pattern == 0 {
                            "full_attention"
                        } else {
                            "sliding_attention"
                        }
                    })
                    .collect();
                map.insert("layer_types".into(), json!(types));
                json!({
                    "full_attention": global,
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                })
            } else {
                global
            };
            map.insert("rope_parameters".into(), rope);
        }
    }
    config
}

fn tokenizer_config_json(spec: &TinyModelSpec) -> serde_json::Value {
    let added_tokens_decoder: BTreeMap<String, serde_json::Value> = SPECIAL_TOKENS
        .iter()
        .enumerate()
        .map(|(id, content)| {
            let entry = json!({
                "content": content, "lstrip": false, "normalized": false,
                "rstrip": false, "single_word": false, "special": true,
            });
            (id.to_string(), entry)
        })
        .collect();
    json!({
        "add_bos_token": false,
        "add_eos_token": false,
        "added_tokens_decoder": added_tokens_decoder,
        "bos_token": SPECIAL_TOKENS[BOS_ID as usize],
        "eos_token": SPECIAL_TOKENS[IM_END_ID as usize],
        "unk_token": SPECIAL_TOKENS[UNK_ID as usize],
        "pad_token": SPECIAL_TOKENS[EOS_ID as usize],
        "chat_template": CHATML_TEMPLATE,
        "clean_up_tokenization_spaces": false,
        "model_max_length": spec.max_position_embeddings,
        "tokenizer_class": "PreTrainedTokenizerFast",
    })
}

fn generation_config_json() -> serde_json::Value {
    json!({
        "bos_token_id": BOS_ID,
        "eos_token_id": [IM_END_ID, EOS_ID],
        "do_sample": false,
    })
}

fn write_json(dir: &Path, name: &str, value: &serde_json::Value) -> Result<PathBuf> {
    let path = dir.join(name);
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection() {
        let chars = gpt2_byte_chars();
        assert_eq!(chars.iter().collect::<HashSet<_>>().len(), 256);
        assert_eq!(chars[usize::from(b' ')], 'Ġ');
        assert_eq!(chars[usize::from(b'A')], 'A');
    }

    #[test]
    fn tokenizer_round_trips_text_and_keeps_special_ids() {
        let tok = build_tokenizer(512).unwrap();
        assert_eq!(tok.get_vocab_size(true), 512);
        for (id, t) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(tok.token_to_id(t), Some(u32::try_from(id).unwrap()));
        }
        let text = "Hello there, traveller! The dragon's gold — 42 coins, née café. 🐉\n\tOK?";
        let enc = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(enc.get_ids(), false).unwrap(), text);

        let chat = "<|im_start|>user\nhi<|im_end|>\n";
        let ids = tok.encode(chat, false).unwrap().get_ids().to_vec();
        assert_eq!(ids[0], IM_START_ID);
        assert!(ids.contains(&IM_END_ID));
        // Merges shorten common words: " the" is one token.
        assert_eq!(tok.encode(" the", false).unwrap().get_ids().len(), 1);
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_weights() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        let written = write_tiny_model(&a, &TinyModelSpec::with_seed(7)).unwrap();
        let same = write_tiny_model(&b, &TinyModelSpec::with_seed(7)).unwrap();
        let other = write_tiny_model(&c, &TinyModelSpec::with_seed(8)).unwrap();
        assert_eq!(written.sha256().unwrap(), same.sha256().unwrap());
        assert_ne!(written.sha256().unwrap(), other.sha256().unwrap());
        let read = |dir: &Path, name: &str| fs::read(dir.join(name)).unwrap();
        let names: Vec<String> = written
            .files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert!(
            names
                .iter()
                .any(|n| n == "model-00002-of-00002.safetensors")
        );
        for name in &names {
            assert_eq!(
                read(&a, name),
                read(&b, name),
                "{name} differs for the same seed"
            );
        }
        let shard = "model-00001-of-00002.safetensors";
        assert_ne!(read(&a, shard), read(&c, shard));
        assert_eq!(read(&a, "tokenizer.json"), read(&c, "tokenizer.json"));
    }

    #[test]
    fn shards_hold_every_tensor_once_and_nan_lands_in_one_tensor() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let spec = TinyModelSpec {
            nan: true,
            num_shards: 3,
            ..TinyModelSpec::default()
        };
        write_tiny_model(dir, &spec).unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("model.safetensors.index.json")).unwrap())
                .unwrap();
        let map = index["weight_map"].as_object().unwrap();
        let mut seen = 0;
        for shard in 1..=3 {
            let name = format!("model-{shard:05}-of-00003.safetensors");
            let bytes = fs::read(dir.join(&name)).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            assert!(!st.names().is_empty(), "{name} is empty");
            for (tname, view) in st.tensors() {
                assert_eq!(map[&tname], name.as_str());
                let nan = view
                    .data()
                    .chunks_exact(4)
                    .any(|c| f32::from_le_bytes(c.try_into().unwrap()).is_nan());
                assert_eq!(nan, tname == NAN_TENSOR, "{tname}");
                seen += 1;
            }
        }
        assert_eq!(seen, map.len());
    }
}
