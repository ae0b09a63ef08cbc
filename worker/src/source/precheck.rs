//! Checks on a repository before any weight is downloaded or loaded.
//! Pure: the listing comes from the hub API or a directory walk, and the
//! small JSON files are passed in as bytes.
//!
//! - [`precheck`]: the file list (only safetensors and plain config, bounded
//!   size, no path escaping the directory).
//! - [`check_index`]: the safetensors index names exactly the listed shards.
//! - [`check_config`]: `config.json` names one architecture mistral.rs 0.8.1
//!   loads, has sane dimensions, and describes a model that fits the memory
//!   budget (an estimate from the dimensions, see [`ModelShape`]).
//! - [`check_chat_template`]: the job's chat template is a built-in one, or
//!   (`tokenizer`) the repository ships one.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use common::result::{FailureCode, FailureReason};
use serde_json::{Map, Value};

use crate::eval::template::{BUILTIN_NAMES, FROM_TOKENIZER, builtin};

/// One file of a repository, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    pub size: u64,
}

/// Plain files a model repo may carry besides weights.
const ALLOWED_EXACT: &[&str] = &[
    "config.json",
    "generation_config.json",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "README.md",
    "LICENSE",
    ".gitattributes",
];

/// Extensions that are never accepted: pickled weights and code.
const FORBIDDEN_EXTENSIONS: &[&str] = &[
    "bin", "pt", "pth", "pkl", "pickle", "ckpt", "h5", "msgpack", "py", "pyc", "so", "sh", "gguf",
    "onnx",
];

fn refuse(code: FailureCode, message: String) -> FailureReason {
    FailureReason::new(code, message)
}

/// A path is safe when it is relative, has only normal components and plain
/// characters, so it can never escape the directory it is joined to.
pub fn is_safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Accepts the listing or says what the miner must fix.
pub fn precheck(files: &[RepoFile], max_bytes: u64) -> Result<(), FailureReason> {
    if files.is_empty() {
        return Err(refuse(
            FailureCode::NotAccessible,
            "the repository has no files".into(),
        ));
    }
    let mut names = BTreeSet::new();
    let mut total: u64 = 0;
    for file in files {
        if !is_safe_relative_path(&file.path) {
            return Err(refuse(
                FailureCode::ForbiddenFile,
                format!(
                    "file path `{}` is not a plain relative path",
                    file.path.escape_debug()
                ),
            ));
        }
        let extension = file
            .path
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase());
        if let Some(ext) = extension.as_deref()
            && FORBIDDEN_EXTENSIONS.contains(&ext)
        {
            return Err(refuse(
                FailureCode::ForbiddenFile,
                format!(
                    "`{}` is not allowed: only safetensors weights and JSON/text config are accepted (no pickle, no code)",
                    file.path
                ),
            ));
        }
        let allowed = extension.as_deref() == Some("safetensors")
            || ALLOWED_EXACT.contains(&file.path.as_str())
            || file.path.ends_with(".md");
        if !allowed {
            return Err(refuse(
                FailureCode::ForbiddenFile,
                format!(
                    "unexpected file `{}`: remove it from the repository",
                    file.path
                ),
            ));
        }
        total = total.saturating_add(file.size);
        names.insert(file.path.as_str());
    }
    if total > max_bytes {
        return Err(refuse(
            FailureCode::TooLarge,
            format!("the repository holds {total} bytes, more than the {max_bytes}-byte limit"),
        ));
    }
    if !names.contains("config.json") {
        return Err(refuse(
            FailureCode::BadConfig,
            "config.json is missing".into(),
        ));
    }
    if !names.iter().any(|n| n.ends_with(".safetensors")) {
        return Err(refuse(
            FailureCode::BadConfig,
            "no .safetensors weights found".into(),
        ));
    }
    Ok(())
}

/// Checks that a safetensors index names only shards present in the listing,
/// and that every listed shard is named.
pub fn check_index(index_json: &[u8], files: &[RepoFile]) -> Result<(), FailureReason> {
    let bad = |m: String| refuse(FailureCode::BadConfig, m);
    let index: serde_json::Value = serde_json::from_slice(index_json).map_err(|e| {
        bad(format!(
            "model.safetensors.index.json is not valid JSON: {e}"
        ))
    })?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| bad("model.safetensors.index.json has no `weight_map` object".into()))?;
    let listed: BTreeSet<&str> = files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| p.ends_with(".safetensors"))
        .collect();
    let mut named = BTreeSet::new();
    for shard in map.values() {
        let shard = shard
            .as_str()
            .ok_or_else(|| bad("weight_map values must be file names".into()))?;
        if !is_safe_relative_path(shard) {
            return Err(bad(format!(
                "weight_map names `{}`, not a plain relative path",
                shard.escape_debug()
            )));
        }
        if !listed.contains(shard) {
            return Err(bad(format!(
                "weight_map names shard `{shard}`, which the repository does not have"
            )));
        }
        named.insert(shard);
    }
    if let Some(extra) = listed.difference(&named).next() {
        return Err(bad(format!(
            "shard `{extra}` is not named in model.safetensors.index.json"
        )));
    }
    Ok(())
}

/// The `architectures` values mistral.rs 0.8.1 loads through `TextModelBuilder`
/// (`NormalLoaderType::from_causal_lm_name` in mistralrs-core). Its automatic
/// loader also requires exactly one name.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "MistralForCausalLM",
    "MixtralForCausalLM",
    "GemmaForCausalLM",
    "Gemma2ForCausalLM",
    "PhiForCausalLM",
    "Phi3ForCausalLM",
    "LlamaForCausalLM",
    "Qwen2ForCausalLM",
    "Starcoder2ForCausalLM",
    "PhiMoEForCausalLM",
    "DeepseekV2ForCausalLM",
    "DeepseekV3ForCausalLM",
    "Qwen3ForCausalLM",
    "Glm4ForCausalLM",
    "Glm4MoeLiteForCausalLM",
    "Glm4MoeForCausalLM",
    "Qwen3MoeForCausalLM",
    "SmolLM3ForCausalLM",
    "GraniteMoeHybridForCausalLM",
    "GptOssForCausalLM",
    "Qwen3NextForCausalLM",
];

/// Where the weights will live, which sets the bytes per parameter: the CPU
/// engine runs in F32 (BF16 fails and F16 gave NaN there, DESIGN §11), the
/// GPU engine in BF16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeDevice {
    Cpu,
    Gpu,
}

impl ComputeDevice {
    /// The device this build's engine uses: the GPU with the `cuda` feature.
    pub const fn of_this_build() -> Self {
        if cfg!(feature = "cuda") {
            Self::Gpu
        } else {
            Self::Cpu
        }
    }

    /// Bytes per parameter in the dtype the engine loads on this device.
    pub const fn bytes_per_param(self) -> u64 {
        match self {
            Self::Cpu => 4,
            Self::Gpu => 2,
        }
    }

    /// The dtype name, for messages.
    pub const fn dtype(self) -> &'static str {
        match self {
            Self::Cpu => "F32",
            Self::Gpu => "BF16",
        }
    }
}

/// Bounds on `config.json`. The dimension bounds are far above any real model
/// and only stop absurd values early; the memory budget is the real limit.
///
/// The memory budget makes a model FAILED (final), so it should be the same on
/// every worker of a cluster: a per-worker value would make the outcome depend
/// on which worker took the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLimits {
    /// Device the weights are loaded on.
    pub device: ComputeDevice,
    /// Bytes the estimated weights may take in the device's dtype.
    pub memory_budget_bytes: u64,
    pub max_hidden_size: u64,
    pub max_intermediate_size: u64,
    pub max_hidden_layers: u64,
    pub max_attention_heads: u64,
    pub max_head_dim: u64,
    pub max_vocab_size: u64,
    pub max_position_embeddings: u64,
    pub max_experts: u64,
}

/// Default memory budget: 64 GiB.
pub const DEFAULT_MEMORY_BUDGET_BYTES: u64 = 64 << 30;

impl Default for ConfigLimits {
    fn default() -> Self {
        Self {
            device: ComputeDevice::of_this_build(),
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
            max_hidden_size: 1 << 16,
            max_intermediate_size: 1 << 18,
            max_hidden_layers: 512,
            max_attention_heads: 1024,
            max_head_dim: 1024,
            max_vocab_size: 1 << 20,
            max_position_embeddings: 1 << 22,
            max_experts: 1024,
        }
    }
}

/// What `config.json` says about the model, with an estimate of its size.
///
/// The parameter estimate assumes a decoder of the Llama family, per layer:
/// the query and output projections (`2 * hidden * heads * head_dim`), key and
/// value (`2 * hidden * kv_heads * head_dim`), a gated MLP per expert
/// (`3 * hidden * intermediate`), a router for mixtures of experts
/// (`hidden * experts`) and two norms (`2 * hidden`); plus the embeddings
/// (`vocab * hidden`), an untied output layer (another `vocab * hidden` unless
/// `tie_word_embeddings` is `true`) and the final norm. Biases, shared experts
/// and dense layers of mixtures are ignored; the gated MLP over-counts
/// architectures with a plain one. Good to a few percent on real models, which
/// is what a memory check needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelShape {
    pub architecture: String,
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub num_hidden_layers: u64,
    pub num_attention_heads: u64,
    pub num_key_value_heads: u64,
    pub head_dim: u64,
    pub vocab_size: u64,
    pub max_position_embeddings: u64,
    /// Experts per MoE layer; 1 for a dense model.
    pub num_experts: u64,
    pub tie_word_embeddings: bool,
    /// `torch_dtype` as written, if any (informative: the engine picks its own).
    pub torch_dtype: Option<String>,
    /// Estimated parameters (see the type docs).
    pub estimated_params: u64,
    /// Estimated bytes of the weights in the engine's dtype.
    pub estimated_bytes: u64,
}

/// Reads an optional non-negative integer field. A float, a negative number,
/// a string or any other type is refused (JSON has no NaN, so `"NaN"` arrives
/// as a string and is refused here).
fn integer_field(config: &Map<String, Value>, name: &str) -> Result<Option<u64>, FailureReason> {
    match config.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            let mut shown = value.to_string();
            if shown.len() > 40 {
                let cut = (0..=40)
                    .rev()
                    .find(|&i| shown.is_char_boundary(i))
                    .unwrap_or(0);
                shown.truncate(cut);
                shown.push('…');
            }
            bad_config(format!(
                "config.json: `{name}` must be a non-negative integer, not {shown}"
            ))
        }),
    }
}

fn bad_config(message: String) -> FailureReason {
    refuse(FailureCode::BadConfig, message)
}

/// A field that must be present, positive and at most `max`.
fn bounded_field(
    config: &Map<String, Value>,
    name: &str,
    default: Option<u64>,
    max: u64,
) -> Result<u64, FailureReason> {
    let value = match (integer_field(config, name)?, default) {
        (Some(v), _) => v,
        (None, Some(d)) => d,
        (None, None) => return Err(bad_config(format!("config.json: `{name}` is missing"))),
    };
    if value == 0 {
        return Err(bad_config(format!(
            "config.json: `{name}` must be positive"
        )));
    }
    if value > max {
        return Err(bad_config(format!(
            "config.json: `{name}` is {value}, more than the limit of {max}"
        )));
    }
    Ok(value)
}

/// Checks `config.json` and estimates the memory the model needs on
/// `limits.device`. Every refusal is a `bad_config` failure with a message the
/// miner can act on.
pub fn check_config(
    config_json: &[u8],
    limits: &ConfigLimits,
) -> Result<ModelShape, FailureReason> {
    let value: Value = serde_json::from_slice(config_json)
        .map_err(|e| bad_config(format!("config.json is not valid JSON: {e}")))?;
    let Value::Object(config) = value else {
        return Err(bad_config("config.json must be a JSON object".into()));
    };

    let architecture = match config.get("architectures") {
        Some(Value::Array(list)) if list.len() == 1 => list[0].as_str().ok_or_else(|| {
            bad_config("config.json: `architectures` must hold an architecture name".into())
        })?,
        Some(_) => {
            return Err(bad_config(
                "config.json: `architectures` must be a list of exactly one architecture name"
                    .into(),
            ));
        }
        None => {
            return Err(bad_config(format!(
                "config.json: `architectures` is missing; name one of {SUPPORTED_ARCHITECTURES:?}"
            )));
        }
    };
    if !SUPPORTED_ARCHITECTURES.contains(&architecture) {
        return Err(bad_config(format!(
            "config.json: architecture `{}` is not supported; use one of {SUPPORTED_ARCHITECTURES:?}",
            architecture.escape_debug()
        )));
    }

    let hidden = bounded_field(&config, "hidden_size", None, limits.max_hidden_size)?;
    let layers = bounded_field(&config, "num_hidden_layers", None, limits.max_hidden_layers)?;
    let heads = bounded_field(
        &config,
        "num_attention_heads",
        None,
        limits.max_attention_heads,
    )?;
    let kv_heads = bounded_field(&config, "num_key_value_heads", Some(heads), heads)?;
    let vocab = bounded_field(&config, "vocab_size", None, limits.max_vocab_size)?;
    let positions = bounded_field(
        &config,
        "max_position_embeddings",
        None,
        limits.max_position_embeddings,
    )?;
    // Without an explicit head_dim, the heads split the hidden size.
    let head_dim = match integer_field(&config, "head_dim")? {
        Some(_) => bounded_field(&config, "head_dim", None, limits.max_head_dim)?,
        None if hidden.is_multiple_of(heads) => hidden / heads,
        None => {
            return Err(bad_config(format!(
                "config.json: num_attention_heads ({heads}) must divide hidden_size ({hidden})"
            )));
        }
    };
    if !heads.is_multiple_of(kv_heads) {
        return Err(bad_config(format!(
            "config.json: num_key_value_heads ({kv_heads}) must divide num_attention_heads ({heads})"
        )));
    }
    let experts = ["num_local_experts", "num_experts", "n_routed_experts"]
        .into_iter()
        .map(|name| integer_field(&config, name))
        .find_map(Result::transpose)
        .transpose()?
        .unwrap_or(1)
        .max(1);
    if experts > limits.max_experts {
        return Err(bad_config(format!(
            "config.json: {experts} experts, more than the limit of {}",
            limits.max_experts
        )));
    }
    let dense_intermediate = bounded_field(
        &config,
        "intermediate_size",
        Some(hidden.saturating_mul(4)),
        limits.max_intermediate_size,
    )?;
    let intermediate = match integer_field(&config, "moe_intermediate_size")? {
        Some(_) if experts > 1 => bounded_field(
            &config,
            "moe_intermediate_size",
            None,
            limits.max_intermediate_size,
        )?,
        _ => dense_intermediate,
    };
    let tie_word_embeddings = match config.get("tie_word_embeddings") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(bad_config(
                "config.json: `tie_word_embeddings` must be true or false".into(),
            ));
        }
    };
    let torch_dtype = match config.get("torch_dtype").or_else(|| config.get("dtype")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= 32 => Some(s.clone()),
        Some(_) => {
            return Err(bad_config(
                "config.json: `torch_dtype` must be a dtype name such as \"bfloat16\"".into(),
            ));
        }
    };

    // All factors are bounded above, so u128 cannot overflow.
    let (h, l, e) = (u128::from(hidden), u128::from(layers), u128::from(experts));
    let attention = 2 * h * u128::from(heads * head_dim) + 2 * h * u128::from(kv_heads * head_dim);
    let mlp = 3 * h * u128::from(intermediate) * e;
    let router = if experts > 1 { h * e } else { 0 };
    let per_layer = attention + mlp + router + 2 * h;
    let embeddings = u128::from(vocab) * h * if tie_word_embeddings { 1 } else { 2 };
    let params = l * per_layer + embeddings + h;
    let bytes = params * u128::from(limits.device.bytes_per_param());
    let estimated_params = u64::try_from(params).unwrap_or(u64::MAX);
    let estimated_bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
    if estimated_bytes > limits.memory_budget_bytes {
        return Err(bad_config(format!(
            "config.json describes about {:.2}B parameters, {:.1} GB in {} on this cluster's {}, \
             more than its {:.1} GB memory budget: submit a smaller model",
            estimated_params as f64 / 1e9,
            estimated_bytes as f64 / 1e9,
            limits.device.dtype(),
            match limits.device {
                ComputeDevice::Cpu => "CPU",
                ComputeDevice::Gpu => "GPU",
            },
            limits.memory_budget_bytes as f64 / 1e9,
        )));
    }
    Ok(ModelShape {
        architecture: architecture.to_owned(),
        hidden_size: hidden,
        intermediate_size: intermediate,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim,
        vocab_size: vocab,
        max_position_embeddings: positions,
        num_experts: experts,
        tie_word_embeddings,
        torch_dtype,
        estimated_params,
        estimated_bytes,
    })
}

/// Checks that the job's chat template can be selected: a built-in name, or
/// `tokenizer` with a template in `tokenizer_config.json` (`chat_template` as
/// a string, or a list holding a `default` entry) or a `chat_template.jinja`
/// file, as the engine reads them. Whether the template compiles and renders
/// is checked when the model is evaluated.
pub fn check_chat_template(
    name: &str,
    tokenizer_config_json: Option<&[u8]>,
    has_jinja_file: bool,
) -> Result<(), FailureReason> {
    let bad = |m: String| refuse(FailureCode::BadTemplate, m);
    if name != FROM_TOKENIZER {
        return match builtin(name) {
            Some(_) => Ok(()),
            None => Err(bad(format!(
                "unknown chat template `{}`: use one of {BUILTIN_NAMES:?} or `{FROM_TOKENIZER}`",
                name.escape_debug()
            ))),
        };
    }
    let template = match tokenizer_config_json {
        None => None,
        Some(bytes) => {
            let config: Value = serde_json::from_slice(bytes)
                .map_err(|e| bad(format!("tokenizer_config.json is not valid JSON: {e}")))?;
            match config.get("chat_template") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(!s.trim().is_empty()),
                Some(Value::Array(list)) => Some(list.iter().any(|t| {
                    t.get("name").and_then(Value::as_str) == Some("default")
                        && t.get("template").is_some_and(Value::is_string)
                })),
                Some(_) => Some(false),
            }
        }
    };
    match template {
        Some(true) => Ok(()),
        Some(false) => Err(bad(
            "tokenizer_config.json: `chat_template` must be a non-empty template string \
             or a list with a `default` entry"
                .into(),
        )),
        None if has_jinja_file => Ok(()),
        None => Err(bad(format!(
            "chat template `{FROM_TOKENIZER}` chosen but tokenizer_config.json has no \
             `chat_template` (and there is no chat_template.jinja): add one or name a built-in \
             template, one of {BUILTIN_NAMES:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, u64)]) -> Vec<RepoFile> {
        list.iter()
            .map(|(p, s)| RepoFile {
                path: (*p).into(),
                size: *s,
            })
            .collect()
    }

    fn good() -> Vec<RepoFile> {
        files(&[
            ("config.json", 500),
            ("tokenizer.json", 1_000),
            ("tokenizer_config.json", 200),
            ("model.safetensors.index.json", 300),
            ("model-00001-of-00002.safetensors", 4_000),
            ("model-00002-of-00002.safetensors", 4_000),
        ])
    }

    #[test]
    fn a_clean_repo_passes() {
        precheck(&good(), 10_000).unwrap();
    }

    #[test]
    fn hostile_repos_are_refused_with_actionable_reasons() {
        let cases: &[(&str, u64, FailureCode)] = &[
            ("pytorch_model.bin", 10, FailureCode::ForbiddenFile),
            ("weights.PKL", 10, FailureCode::ForbiddenFile),
            ("modeling_custom.py", 10, FailureCode::ForbiddenFile),
            ("../../etc/passwd", 10, FailureCode::ForbiddenFile),
            ("/abs.safetensors", 10, FailureCode::ForbiddenFile),
            ("sub/../../x.safetensors", 10, FailureCode::ForbiddenFile),
            ("run.exe", 10, FailureCode::ForbiddenFile),
            ("huge.safetensors", 100_000, FailureCode::TooLarge),
        ];
        for (path, size, code) in cases {
            let mut listing = good();
            listing.push(RepoFile {
                path: (*path).into(),
                size: *size,
            });
            let err = precheck(&listing, 50_000).unwrap_err();
            assert_eq!(err.code, *code, "{path}: {err}");
        }
        let without_config: Vec<_> = good()
            .into_iter()
            .filter(|f| f.path != "config.json")
            .collect();
        assert_eq!(
            precheck(&without_config, 50_000).unwrap_err().code,
            FailureCode::BadConfig
        );
    }

    #[test]
    fn index_must_match_the_shards() {
        let index = br#"{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#;
        check_index(index, &good()).unwrap();
        let missing = br#"{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00003-of-00003.safetensors"}}"#;
        assert!(
            check_index(missing, &good())
                .unwrap_err()
                .message
                .contains("does not have")
        );
        let unnamed = br#"{"weight_map":{"a":"model-00001-of-00002.safetensors"}}"#;
        assert!(
            check_index(unnamed, &good())
                .unwrap_err()
                .message
                .contains("not named")
        );
        assert!(check_index(b"nope", &good()).is_err());
    }
}
