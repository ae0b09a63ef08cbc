//! `config.json` as the engine reads it: the architectures it runs and the
//! variations of the file that tooling writes.
//!
//! - [`ARCHITECTURES`]: the `architectures` values the engine loads, with the
//!   mistral.rs builder each one goes through. Every entry is loaded and scored
//!   on a generated tiny model of its family in `worker/tests/integration/families.rs`; a
//!   family not listed is refused before download ([`crate::source::precheck`]).
//! - [`normalise`]: rewrites known variations of `config.json` into the form
//!   mistral.rs 0.8.1's config structs deserialize. transformers writes the same
//!   model several ways (its version 5 nests RoPE settings in `rope_parameters`
//!   and writes `dtype` for `torch_dtype`; old files say `type` for `rope_type`;
//!   many omit fields that have class defaults in transformers), while
//!   mistral.rs's structs read one form and fail with `missing field …` on the
//!   others. Failing the miner for that would blame them for the validator's
//!   limits, so the engine loads the normalised form instead.

use serde_json::{Map, Value};

/// The mistral.rs model builder an architecture loads through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// `TextModelBuilder` (mistral.rs's normal loaders).
    Text,
    /// `MultimodalModelBuilder`: mistral.rs 0.8.1's text loaders have no Gemma 3;
    /// its multimodal Gemma 3 loader reads a text-only config (`Gemma3Config::Text`,
    /// the Gemma 3 1B case) and then builds the language model alone, with the
    /// same raw-logits and completion paths as a text model.
    Multimodal,
}

/// An architecture the engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Architecture {
    /// The `architectures` entry of `config.json`.
    pub name: &'static str,
    /// Family, for defaults and messages (`model_type` of transformers).
    pub family: Family,
    pub builder: Builder,
}

/// Model families with their own config defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Gemma2,
    Gemma3,
}

impl Family {
    /// Every family, in a fixed order.
    pub const ALL: [Self; 6] = [
        Self::Llama,
        Self::Mistral,
        Self::Qwen2,
        Self::Qwen3,
        Self::Gemma2,
        Self::Gemma3,
    ];
}

/// The architectures the engine loads, each tested on a generated tiny model
/// (`worker/tests/integration/families.rs`). mistral.rs 0.8.1 has loaders for more
/// (Mixtral, Phi, DeepSeek, GLM…), but none is listed until it is tested here.
pub const ARCHITECTURES: &[Architecture] = &[
    Architecture {
        name: "LlamaForCausalLM",
        family: Family::Llama,
        builder: Builder::Text,
    },
    Architecture {
        name: "MistralForCausalLM",
        family: Family::Mistral,
        builder: Builder::Text,
    },
    Architecture {
        name: "Qwen2ForCausalLM",
        family: Family::Qwen2,
        builder: Builder::Text,
    },
    Architecture {
        name: "Qwen3ForCausalLM",
        family: Family::Qwen3,
        builder: Builder::Text,
    },
    Architecture {
        name: "Gemma2ForCausalLM",
        family: Family::Gemma2,
        builder: Builder::Text,
    },
    Architecture {
        name: "Gemma3ForCausalLM",
        family: Family::Gemma3,
        builder: Builder::Multimodal,
    },
];

/// The names of [`ARCHITECTURES`], in order.
pub const ARCHITECTURE_NAMES: [&str; ARCHITECTURES.len()] = {
    let mut names = [""; ARCHITECTURES.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = ARCHITECTURES[i].name;
        i += 1;
    }
    names
};

/// The architecture named `name`, if the engine runs it.
pub fn architecture(name: &str) -> Option<&'static Architecture> {
    ARCHITECTURES.iter().find(|a| a.name == name)
}

/// The architecture named by a parsed `config.json` (exactly one entry).
pub fn architecture_of(config: &Map<String, Value>) -> Option<&'static Architecture> {
    match config.get("architectures") {
        Some(Value::Array(list)) if list.len() == 1 => list[0].as_str().and_then(architecture),
        _ => None,
    }
}

/// A `config.json` the engine cannot read in any form it knows: the engine's
/// limitation, not the model's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the engine cannot read config.json: {0}")]
pub struct Unreadable(pub String);

/// Rewrites `config` into the form mistral.rs 0.8.1 reads and returns what was
/// changed (empty when nothing was). Idempotent. Only fills or moves fields;
/// a value already in the engine's form is never overwritten.
pub fn normalise(config: &mut Map<String, Value>) -> Result<Vec<String>, Unreadable> {
    let mut changes = Vec::new();
    // `null` fails serde for fields with defaults, while a missing field gets
    // the default (and a missing `Option` is `None`): drop them.
    let nulls: Vec<String> = config
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    for key in nulls {
        config.remove(&key);
        changes.push(format!("dropped null `{key}`"));
    }
    // transformers 5 writes `dtype`; older files and our precheck say `torch_dtype`.
    if let Some(dtype) = config.get("dtype").cloned()
        && !config.contains_key("torch_dtype")
    {
        config.insert("torch_dtype".into(), dtype);
        changes.push("`dtype` copied to `torch_dtype`".into());
    }
    rope_parameters(config, &mut changes)?;
    rope_scaling(config, &mut changes);

    let Some(arch) = architecture_of(config) else {
        return Ok(changes);
    };
    if let Some(heads) = config.get("num_attention_heads").cloned()
        && !config.contains_key("num_key_value_heads")
    {
        // transformers' default: one key/value head per attention head.
        config.insert("num_key_value_heads".into(), heads);
        changes.push("`num_key_value_heads` set to `num_attention_heads`".into());
    }
    activation(config, arch.family, &mut changes);
    for (key, value) in family_defaults(arch.family) {
        if !config.contains_key(*key) {
            config.insert((*key).into(), value.clone());
            changes.push(format!("`{key}` set to transformers' default {value}"));
        }
    }
    if arch.family == Family::Gemma3 {
        gemma3_sliding_pattern(config, &mut changes)?;
    }
    Ok(changes)
}

/// Moves transformers 5's `rope_parameters` into `rope_theta` and `rope_scaling`
/// (and, for Gemma 3's per-layer-type form, `rope_local_base_freq`). mistral.rs
/// reads `rope_parameters` itself only for Mistral, and the flat fields too.
fn rope_parameters(
    config: &mut Map<String, Value>,
    changes: &mut Vec<String>,
) -> Result<(), Unreadable> {
    let Some(Value::Object(params)) = config.get("rope_parameters").cloned() else {
        return Ok(());
    };
    // Per layer type (Gemma 3): {"full_attention": {...}, "sliding_attention": {...}}.
    let (global, local) = if params.values().all(Value::is_object) && !params.is_empty() {
        let layer = |name: &str| params.get(name).and_then(Value::as_object).cloned();
        let Some(global) = layer("full_attention") else {
            return Err(Unreadable(format!(
                "`rope_parameters` has per-layer-type entries {:?} but no `full_attention`",
                params.keys().collect::<Vec<_>>()
            )));
        };
        (global, layer("sliding_attention"))
    } else {
        (params, None)
    };
    if let Some(theta) = global.get("rope_theta").filter(|v| v.is_number())
        && !config.contains_key("rope_theta")
    {
        config.insert("rope_theta".into(), theta.clone());
        changes.push("`rope_parameters.rope_theta` moved to `rope_theta`".into());
    }
    if let Some(theta) = local
        .as_ref()
        .and_then(|l| l.get("rope_theta"))
        .filter(|v| v.is_number())
        && !config.contains_key("rope_local_base_freq")
    {
        config.insert("rope_local_base_freq".into(), theta.clone());
        changes.push(
            "`rope_parameters.sliding_attention.rope_theta` moved to `rope_local_base_freq`".into(),
        );
    }
    let kind = global
        .get("rope_type")
        .or_else(|| global.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    if kind != "default" && !config.contains_key("rope_scaling") {
        let mut scaling = global.clone();
        scaling.remove("rope_theta");
        config.insert("rope_scaling".into(), Value::Object(scaling));
        changes.push(format!(
            "`rope_parameters` of type `{kind}` moved to `rope_scaling`"
        ));
    }
    Ok(())
}

/// `rope_scaling` as mistral.rs reads it: `rope_type` (older files say `type`),
/// and none at all for the default RoPE (its structs then require a `factor`).
fn rope_scaling(config: &mut Map<String, Value>, changes: &mut Vec<String>) {
    let Some(Value::Object(scaling)) = config.get_mut("rope_scaling") else {
        return;
    };
    if !scaling.contains_key("rope_type")
        && let Some(kind) = scaling.get("type").cloned()
    {
        scaling.insert("rope_type".into(), kind);
        changes.push("`rope_scaling.type` copied to `rope_type`".into());
    }
    if scaling.get("rope_type").and_then(Value::as_str) == Some("default") {
        config.remove("rope_scaling");
        changes.push("default `rope_scaling` dropped".into());
    }
}

/// Llama-style structs read `hidden_act`, Gemma's read either; Gemma configs
/// often carry only `hidden_activation`.
fn activation(config: &mut Map<String, Value>, family: Family, changes: &mut Vec<String>) {
    let (wanted, other) = match family {
        Family::Gemma2 | Family::Gemma3 => ("hidden_activation", "hidden_act"),
        _ => ("hidden_act", "hidden_activation"),
    };
    if !config.contains_key(wanted)
        && let Some(value) = config.get(other).cloned()
    {
        config.insert(wanted.into(), value);
        changes.push(format!("`{other}` copied to `{wanted}`"));
    }
}

/// Defaults of transformers' config classes for fields mistral.rs requires.
fn family_defaults(family: Family) -> &'static [(&'static str, Value)] {
    use std::sync::LazyLock;
    static LLAMA: LazyLock<Vec<(&str, Value)>> = LazyLock::new(|| {
        vec![
            ("hidden_act", "silu".into()),
            ("rms_norm_eps", 1e-6.into()),
            ("rope_theta", 10_000.0.into()),
        ]
    });
    static MISTRAL: LazyLock<Vec<(&str, Value)>> =
        LazyLock::new(|| vec![("hidden_act", "silu".into()), ("rms_norm_eps", 1e-6.into())]);
    static QWEN2: LazyLock<Vec<(&str, Value)>> = LazyLock::new(|| {
        vec![
            ("hidden_act", "silu".into()),
            ("rms_norm_eps", 1e-6.into()),
            ("rope_theta", 10_000.0.into()),
        ]
    });
    static QWEN3: LazyLock<Vec<(&str, Value)>> = LazyLock::new(|| {
        vec![
            ("hidden_act", "silu".into()),
            ("rms_norm_eps", 1e-6.into()),
            ("rope_theta", 10_000.0.into()),
            ("max_window_layers", 28.into()),
            ("use_sliding_window", false.into()),
        ]
    });
    static GEMMA2: LazyLock<Vec<(&str, Value)>> = LazyLock::new(|| {
        vec![
            ("hidden_activation", "gelu_pytorch_tanh".into()),
            ("attention_bias", false.into()),
            ("head_dim", 256.into()),
            ("query_pre_attn_scalar", 256.into()),
            ("sliding_window", 4096.into()),
            ("rms_norm_eps", 1e-6.into()),
            ("rope_theta", 10_000.0.into()),
        ]
    });
    static GEMMA3: LazyLock<Vec<(&str, Value)>> =
        LazyLock::new(|| vec![("sliding_window", 4096.into())]);
    match family {
        Family::Llama => &LLAMA,
        Family::Mistral => &MISTRAL,
        Family::Qwen2 => &QWEN2,
        Family::Qwen3 => &QWEN3,
        Family::Gemma2 => &GEMMA2,
        Family::Gemma3 => &GEMMA3,
    }
}

/// mistral.rs's Gemma 3 slides every layer except each `sliding_window_pattern`-th
/// (`(i + 1) % pattern != 0`); transformers 5 writes `layer_types` instead (and
/// 4.5x an underscored `_sliding_window_pattern`).
fn gemma3_sliding_pattern(
    config: &mut Map<String, Value>,
    changes: &mut Vec<String>,
) -> Result<(), Unreadable> {
    let types: Option<Vec<&str>> = match config.get("layer_types") {
        Some(Value::Array(list)) => list.iter().map(Value::as_str).collect(),
        _ => None,
    };
    if let Some(types) = types {
        // The one pattern the engine can express: full attention exactly at every p-th layer.
        let layers = types.len();
        let pattern = types
            .iter()
            .position(|t| *t == "full_attention")
            .map_or(layers + 1, |i| i + 1);
        let fits = types.iter().enumerate().all(|(i, t)| {
            let full = (i + 1) % pattern == 0;
            *t == if full {
                "full_attention"
            } else {
                "sliding_attention"
            }
        });
        if !fits {
            return Err(Unreadable(format!(
                "`layer_types` {types:?} is not a repeating pattern of sliding layers \
                 followed by one full-attention layer, the only one mistral.rs 0.8.1 runs"
            )));
        }
        match config.get("sliding_window_pattern").and_then(Value::as_u64) {
            Some(p) if p as usize == pattern => {}
            Some(p) => {
                return Err(Unreadable(format!(
                    "`sliding_window_pattern` {p} contradicts `layer_types` (pattern {pattern})"
                )));
            }
            None => {
                config.insert("sliding_window_pattern".into(), pattern.into());
                changes.push(format!(
                    "`sliding_window_pattern` {pattern} derived from `layer_types`"
                ));
            }
        }
    } else if !config.contains_key("sliding_window_pattern")
        && let Some(p) = config.get("_sliding_window_pattern").cloned()
    {
        config.insert("sliding_window_pattern".into(), p);
        changes.push("`_sliding_window_pattern` copied to `sliding_window_pattern`".into());
    }
    Ok(())
}

/// The serde message of a mistral.rs load error that is a config it could not read
/// (`missing field `rope_theta``, `unknown variant `yarn``…), naming the key.
pub fn unreadable_config_error(load_error: &str) -> Option<String> {
    // Only serde's words for a field or variant the engine's structs do not know: a value
    // of the wrong type (`invalid type`) can as well be a broken file of the model's.
    const PATTERNS: &[&str] = &[
        "missing field `",
        "unknown variant `",
        "data did not match any variant",
    ];
    PATTERNS.iter().find_map(|p| {
        let at = load_error.find(p)?;
        let rest = &load_error[at..];
        // Up to the end of the serde message (it ends before " at line N column M").
        let end = rest.find(" at line ").unwrap_or(rest.len()).min(200);
        let end = (0..=end).rev().find(|&i| rest.is_char_boundary(i))?;
        Some(rest[..end].trim_end().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(value: Value) -> (Map<String, Value>, Vec<String>) {
        let Value::Object(mut config) = value else {
            panic!("object expected")
        };
        let changes = normalise(&mut config).unwrap();
        (config, changes)
    }

    #[test]
    fn transformers_5_rope_parameters_become_flat_fields() {
        let (config, changes) = run(json!({
            "architectures": ["LlamaForCausalLM"], "num_attention_heads": 4,
            "num_key_value_heads": 2, "hidden_act": "silu", "rms_norm_eps": 1e-5,
            "dtype": "bfloat16",
            "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
        }));
        assert_eq!(config["rope_theta"], json!(100000.0));
        assert!(!config.contains_key("rope_scaling"), "{config:?}");
        assert_eq!(config["torch_dtype"], json!("bfloat16"));
        assert_eq!(changes.len(), 2, "{changes:?}");

        // Llama 3 scaling inside rope_parameters becomes rope_scaling.
        let (config, _) = run(json!({
            "architectures": ["LlamaForCausalLM"],
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192},
        }));
        assert_eq!(config["rope_theta"], json!(500000.0));
        assert_eq!(
            config["rope_scaling"],
            json!({"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
        );
    }

    #[test]
    fn gemma3_per_layer_rope_and_layer_types() {
        let mut types = vec!["sliding_attention"; 5];
        types.push("full_attention");
        let types: Vec<&str> = types.iter().cycle().take(18).copied().collect();
        let (config, _) = run(json!({
            "architectures": ["Gemma3ForCausalLM"], "num_attention_heads": 4,
            "layer_types": types,
            "rope_parameters": {
                "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
        }));
        assert_eq!(config["rope_theta"], json!(1000000.0));
        assert_eq!(config["rope_local_base_freq"], json!(10000.0));
        assert_eq!(
            config["rope_scaling"],
            json!({"rope_type": "linear", "factor": 8.0})
        );
        assert_eq!(config["sliding_window_pattern"], json!(6));
        assert_eq!(config["sliding_window"], json!(4096));
        assert_eq!(config["num_key_value_heads"], json!(4));

        // A layout the engine cannot express is its limitation, named.
        let Value::Object(mut odd) = json!({
            "architectures": ["Gemma3ForCausalLM"],
            "layer_types": ["full_attention", "sliding_attention", "sliding_attention"],
        }) else {
            unreachable!()
        };
        let err = normalise(&mut odd).unwrap_err();
        assert!(err.to_string().contains("layer_types"), "{err}");
        // All sliding: a pattern longer than the model.
        let (config, _) = run(json!({
            "architectures": ["Gemma3ForCausalLM"],
            "layer_types": ["sliding_attention", "sliding_attention"],
        }));
        assert_eq!(config["sliding_window_pattern"], json!(3));
        let (config, _) = run(json!({
            "architectures": ["Gemma3ForCausalLM"], "_sliding_window_pattern": 6,
        }));
        assert_eq!(config["sliding_window_pattern"], json!(6));
    }

    #[test]
    fn old_forms_defaults_and_nulls() {
        let (config, _) = run(json!({
            "architectures": ["Qwen3ForCausalLM"], "num_attention_heads": 8,
            "hidden_activation": "silu", "head_dim": null, "sliding_window": null,
            "rope_scaling": {"type": "linear", "factor": 2.0},
        }));
        assert!(!config.contains_key("head_dim") && !config.contains_key("sliding_window"));
        assert_eq!(config["hidden_act"], json!("silu"));
        assert_eq!(config["rope_scaling"]["rope_type"], json!("linear"));
        assert_eq!(config["max_window_layers"], json!(28));
        assert_eq!(config["use_sliding_window"], json!(false));
        assert_eq!(config["rope_theta"], json!(10000.0));
        assert_eq!(config["num_key_value_heads"], json!(8));
        let (config, _) = run(json!({
            "architectures": ["Gemma2ForCausalLM"], "hidden_act": "gelu_pytorch_tanh",
        }));
        assert_eq!(config["hidden_activation"], json!("gelu_pytorch_tanh"));
        assert_eq!(config["query_pre_attn_scalar"], json!(256));
        // Values present are never overwritten, and a second pass changes nothing.
        let (mut config, _) = run(json!({
            "architectures": ["LlamaForCausalLM"], "rope_theta": 5.0, "torch_dtype": "float32",
            "dtype": "bfloat16", "rope_parameters": {"rope_type": "default", "rope_theta": 7.0},
        }));
        assert_eq!(config["rope_theta"], json!(5.0));
        assert_eq!(config["torch_dtype"], json!("float32"));
        assert!(normalise(&mut config).unwrap().is_empty());
    }

    #[test]
    fn unreadable_config_errors_name_the_key() {
        let msg = "loading the model failed: missing field `rope_theta` at line 30 column 1";
        assert_eq!(
            unreadable_config_error(msg).as_deref(),
            Some("missing field `rope_theta`")
        );
        assert_eq!(
            unreadable_config_error("unknown variant `yarn`, expected `default`").as_deref(),
            Some("unknown variant `yarn`, expected `default`")
        );
        assert_eq!(
            unreadable_config_error("cannot find tensor model.norm.weight"),
            None
        );
    }
}
