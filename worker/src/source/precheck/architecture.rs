//! The architectures the engine runs, named in `config.json`.

use common::result::FailureReason;
use serde_json::{Map, Value};

use super::bad_config;

/// The `architectures` values the engine loads, each tested on a generated
/// tiny model ([`crate::model_config::ARCHITECTURES`]). mistral.rs's automatic
/// loader also requires exactly one name.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &crate::model_config::ARCHITECTURE_NAMES;

/// The one architecture `config.json` names, if the engine runs it.
pub(super) fn check_architecture(config: &Map<String, Value>) -> Result<&str, FailureReason> {
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
            "config.json: architecture `{}` is not supported: the validators' engine \
             (mistral.rs 0.8.1) does not run it; use one of {SUPPORTED_ARCHITECTURES:?}",
            architecture.escape_debug()
        )));
    }
    Ok(architecture)
}

#[cfg(test)]
mod tests {
    use common::result::FailureCode;

    use super::*;
    use crate::source::precheck::test_configs::{check, cpu, with};

    #[test]
    fn families_the_engine_cannot_run_are_refused_by_name() {
        for arch in ["MixtralForCausalLM", "Phi3ForCausalLM", "GPT2LMHeadModel"] {
            let config = with("architectures", serde_json::json!([arch]));
            let err = check(&config, &cpu(1 << 30)).unwrap_err();
            assert_eq!(err.code, FailureCode::BadConfig);
            assert!(err.message.contains(arch), "{err}");
            assert!(err.message.contains("engine"), "{err}");
        }
        for arch in [
            "LlamaForCausalLM",
            "MistralForCausalLM",
            "Qwen2ForCausalLM",
            "Qwen3ForCausalLM",
            "Gemma2ForCausalLM",
            "Gemma3ForCausalLM",
        ] {
            assert!(SUPPORTED_ARCHITECTURES.contains(&arch), "{arch}");
        }
    }

    #[test]
    fn every_supported_architecture_passes() {
        for arch in SUPPORTED_ARCHITECTURES {
            let config = with("architectures", serde_json::json!([arch]));
            assert_eq!(check(&config, &cpu(1 << 30)).unwrap().architecture, *arch);
        }
    }
}
