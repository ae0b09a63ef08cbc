//! `config.json`'s dimensions and the memory the model needs: the estimate
//! of its parameters from the dimensions, in the engine's dtype on this
//! build's device, against the cluster's memory budget.

use common::result::FailureReason;
use serde_json::{Map, Value};

use super::architecture::check_architecture;
use super::bad_config;

/// Where the weights will live, which sets the bytes per parameter: the CPU
/// engine runs in F32 (BF16 fails and F16 gave NaN there, docs/architecture.md §12), the
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
    let Value::Object(mut config) = value else {
        return Err(bad_config("config.json must be a JSON object".into()));
    };
    // Read the file as the engine will (transformers 5 forms, omitted defaults). A config
    // the engine cannot read at all is its limitation, reported when it loads, not here.
    let _ = crate::model_config::normalise(&mut config);

    let architecture = check_architecture(&config)?;

    // A positive integer field with no default, at most `max`.
    let field = |name: &str, max: u64| bounded_field(&config, name, None, max);
    let hidden = field("hidden_size", limits.max_hidden_size)?;
    let layers = field("num_hidden_layers", limits.max_hidden_layers)?;
    let heads = field("num_attention_heads", limits.max_attention_heads)?;
    let kv_heads = bounded_field(&config, "num_key_value_heads", Some(heads), heads)?;
    let vocab = field("vocab_size", limits.max_vocab_size)?;
    let positions = field("max_position_embeddings", limits.max_position_embeddings)?;
    // Without an explicit head_dim, the heads split the hidden size.
    let head_dim = match integer_field(&config, "head_dim")? {
        Some(_) => field("head_dim", limits.max_head_dim)?,
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
        Some(_) if experts > 1 => field("moe_intermediate_size", limits.max_intermediate_size)?,
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

#[cfg(test)]
mod tests {
    use common::result::FailureCode;

    use super::*;
    use crate::source::precheck::test_configs::{check, cpu, tiny, with};

    #[test]
    fn the_tiny_model_is_counted_exactly() {
        // Per layer: q,o 2*64*64 = 8192; k,v 2*64*32 = 4096; MLP 3*64*128 = 24576;
        // norms 128 -> 36992, x2 layers = 73984. Embeddings and lm_head 2*512*64 = 65536,
        // final norm 64. Total 139584: the generated model's tensors hold exactly that.
        let shape = check(&tiny(), &cpu(1 << 30)).unwrap();
        assert_eq!(shape.estimated_params, 139_584);
        assert_eq!(shape.estimated_bytes, 139_584 * 4);
        assert_eq!(shape.architecture, "LlamaForCausalLM");
        assert_eq!(shape.head_dim, 16);
        assert_eq!(shape.num_experts, 1);
        assert_eq!(shape.torch_dtype.as_deref(), Some("float32"));
        let gpu = ConfigLimits {
            device: ComputeDevice::Gpu,
            ..cpu(1 << 30)
        };
        assert_eq!(check(&tiny(), &gpu).unwrap().estimated_bytes, 139_584 * 2);
        // Tied embeddings drop the output layer; without head_dim it is hidden / heads.
        let tied = with("tie_word_embeddings", true.into());
        assert_eq!(
            check(&tied, &cpu(1 << 30)).unwrap().estimated_params,
            139_584 - 512 * 64
        );
        let implicit = with("head_dim", serde_json::Value::Null);
        assert_eq!(check(&implicit, &cpu(1 << 30)).unwrap().head_dim, 16);
        // Exactly at the budget passes, one byte under fails.
        check(&tiny(), &cpu(139_584 * 4)).unwrap();
        assert!(check(&tiny(), &cpu(139_584 * 4 - 1)).is_err());
    }

    #[test]
    fn real_models_match_their_published_parameter_counts() {
        let llama3_8b = serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
            "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "vocab_size": 128256, "max_position_embeddings": 8192,
            "tie_word_embeddings": false, "torch_dtype": "bfloat16",
        });
        let shape = check(&llama3_8b, &cpu(64 << 30)).unwrap();
        assert_eq!(shape.estimated_params, 8_030_261_248);
        assert_eq!(shape.torch_dtype.as_deref(), Some("bfloat16"));
        // 32.1 GB in F32: too much for a 16 GiB CPU budget, fine in BF16 on a 24 GiB GPU.
        let err = check(&llama3_8b, &cpu(16 << 30)).unwrap_err();
        assert_eq!(err.code, FailureCode::BadConfig);
        assert!(err.message.contains("8.03B parameters"), "{err}");
        assert!(err.message.contains("32.1 GB in F32"), "{err}");
        assert!(err.message.contains("smaller model"), "{err}");
        let gpu = ConfigLimits {
            device: ComputeDevice::Gpu,
            memory_budget_bytes: 24 << 30,
            ..ConfigLimits::default()
        };
        assert_eq!(
            check(&llama3_8b, &gpu).unwrap().estimated_bytes,
            16_060_522_496
        );

        let mixtral = serde_json::json!({
            "architectures": ["MixtralForCausalLM"], "hidden_size": 4096,
            "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 8, "vocab_size": 32000, "max_position_embeddings": 32768,
            "num_local_experts": 8, "num_experts_per_tok": 2,
        });
        // The engine does not run Mixtral (yet): refused by name. The estimate itself does
        // not depend on the architecture, so it is checked under a supported name.
        let err = check(&mixtral, &cpu(u64::MAX)).unwrap_err();
        assert!(err.message.contains("MixtralForCausalLM"), "{err}");
        let mut moe = mixtral;
        moe["architectures"] = serde_json::json!(["MistralForCausalLM"]);
        let shape = check(&moe, &cpu(u64::MAX)).unwrap();
        assert_eq!(shape.num_experts, 8);
        assert_eq!(shape.estimated_params, 46_702_792_704);
    }

    #[test]
    fn hostile_configs_are_bad_config_with_a_reason() {
        use serde_json::{Value, json};
        let raw: &[(&[u8], &str)] = &[
            (b"nope", "not valid JSON"),
            (b"", "not valid JSON"),
            (br#"{"hidden_size": NaN}"#, "not valid JSON"),
            (br#"{"hidden_size": 1e400}"#, "not valid JSON"),
            (b"[1, 2]", "must be a JSON object"),
            (b"\"LlamaForCausalLM\"", "must be a JSON object"),
            (b"null", "must be a JSON object"),
            (b"{}", "`architectures` is missing"),
        ];
        for (bytes, expected) in raw {
            let err = check_config(bytes, &ConfigLimits::default()).unwrap_err();
            assert_eq!(err.code, FailureCode::BadConfig);
            assert!(err.message.contains(expected), "{expected}: {err}");
        }
        let huge = json!(u64::MAX);
        let cases: Vec<(&str, Value, &str)> = vec![
            ("architectures", json!([]), "exactly one"),
            ("architectures", json!("LlamaForCausalLM"), "exactly one"),
            (
                "architectures",
                json!(["LlamaForCausalLM", "MistralForCausalLM"]),
                "exactly one",
            ),
            ("architectures", json!([7]), "architecture name"),
            (
                "architectures",
                json!(["BertModel"]),
                "`BertModel` is not supported",
            ),
            (
                "architectures",
                json!(["LlamaForCausalLM\n"]),
                "not supported",
            ),
            ("hidden_size", Value::Null, "`hidden_size` is missing"),
            ("hidden_size", json!(0), "must be positive"),
            ("hidden_size", json!(-64), "non-negative integer, not -64"),
            ("hidden_size", json!(64.5), "non-negative integer, not 64.5"),
            (
                "hidden_size",
                json!("NaN"),
                "non-negative integer, not \"NaN\"",
            ),
            ("hidden_size", json!("64"), "non-negative integer"),
            ("hidden_size", json!([64]), "non-negative integer"),
            ("hidden_size", huge.clone(), "more than the limit"),
            ("num_hidden_layers", json!(100_000), "more than the limit"),
            ("num_attention_heads", json!(0), "must be positive"),
            (
                "num_key_value_heads",
                json!(3),
                "must divide num_attention_heads",
            ),
            ("num_key_value_heads", json!(8), "more than the limit of 4"),
            (
                "vocab_size",
                json!(1_000_000_000_000_u64),
                "more than the limit",
            ),
            ("vocab_size", json!(-1), "non-negative integer"),
            (
                "max_position_embeddings",
                huge.clone(),
                "more than the limit",
            ),
            ("max_position_embeddings", Value::Null, "is missing"),
            ("intermediate_size", json!(1e9), "non-negative integer"),
            ("head_dim", json!(0), "must be positive"),
            ("head_dim", huge.clone(), "more than the limit"),
            ("num_local_experts", huge, "experts, more than the limit"),
            ("num_experts", json!(-8), "non-negative integer"),
            ("tie_word_embeddings", json!("yes"), "true or false"),
            ("torch_dtype", json!(16), "dtype name"),
            ("torch_dtype", json!("x".repeat(100)), "dtype name"),
        ];
        for (field, value, expected) in cases {
            let config = with(field, value.clone());
            let err = check(&config, &ConfigLimits::default()).unwrap_err();
            assert_eq!(err.code, FailureCode::BadConfig, "{field}={value}");
            assert!(err.message.contains(expected), "{field}={value}: {err}");
        }
        // Heads that do not split the hidden size, without an explicit head_dim.
        let mut config = with("head_dim", Value::Null);
        config["num_attention_heads"] = json!(5);
        config["num_key_value_heads"] = json!(5);
        let err = check(&config, &ConfigLimits::default()).unwrap_err();
        assert!(
            err.message.contains("(5) must divide hidden_size (64)"),
            "{err}"
        );
        // Every dimension at its limit: accepted by the bounds, refused by the memory check
        // (no overflow on the way).
        let limits = ConfigLimits::default();
        let mut config = tiny();
        for (field, max) in [
            ("hidden_size", limits.max_hidden_size),
            ("intermediate_size", limits.max_intermediate_size),
            ("num_hidden_layers", limits.max_hidden_layers),
            ("num_attention_heads", limits.max_attention_heads),
            ("num_key_value_heads", limits.max_attention_heads),
            ("head_dim", limits.max_head_dim),
            ("vocab_size", limits.max_vocab_size),
            ("num_local_experts", limits.max_experts),
        ] {
            config[field] = json!(max);
        }
        let err = check(&config, &limits).unwrap_err();
        assert!(err.message.contains("memory budget"), "{err}");
    }

    #[test]
    fn transformers_5_configs_pass_as_the_engine_reads_them() {
        let mut config = with("torch_dtype", serde_json::Value::Null);
        config["dtype"] = "bfloat16".into();
        config["rope_parameters"] = serde_json::json!({"rope_type": "default", "rope_theta": 1e4});
        config["num_key_value_heads"] = serde_json::Value::Null;
        let shape = check(&config, &cpu(1 << 30)).unwrap();
        assert_eq!(shape.torch_dtype.as_deref(), Some("bfloat16"));
        assert_eq!(shape.num_key_value_heads, 4);
    }
}
