//! Checks on a repository before any weight is downloaded or loaded, in one
//! pipeline every model source runs: [`inspect`]. Pure: the listing comes
//! from the hub API or a directory walk, and the source reads the few small
//! files the checks need.
//!
//! The pipeline, in order (the first refusal is the job's failure):
//! 1. the listing ([`check_listing`], [`files`]): only safetensors weights and
//!    plain config/tokenizer files (no pickle, no code), a bounded total size,
//!    no path escaping the directory, a `config.json` and some weights;
//! 2. `config.json` ([`check_config`]): names one architecture the engine
//!    runs ([`architecture`]), has sane dimensions, and describes a model that
//!    fits the memory budget ([`memory`], an estimate from the dimensions, see
//!    [`ModelShape`]);
//! 3. the job's chat template ([`check_chat_template`], [`template`]): a
//!    built-in one, or (`tokenizer`) one the repository ships;
//! 4. the safetensors index ([`check_index`]): names exactly the listed
//!    shards, and is required when there are several.
//!
//! A source that downloads runs step 1 alone ([`check_listing`]) before it
//! fetches anything, then [`inspect`] once the small files are on disk, and
//! fetches the weights only after that.

pub mod architecture;
pub mod files;
pub mod memory;
pub mod template;

use common::result::{FailureCode, FailureReason};

pub use self::architecture::SUPPORTED_ARCHITECTURES;
pub use self::files::{check_index, check_listing};
pub use self::memory::{
    ComputeDevice, ConfigLimits, DEFAULT_MEMORY_BUDGET_BYTES, ModelShape, check_config,
};
pub use self::template::check_chat_template;

/// One file of a repository, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    pub size: u64,
}

/// The model's configuration, read by every engine.
pub const CONFIG: &str = "config.json";
/// Where a repository's own chat template usually is.
pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
/// The other place the engine reads a repository's chat template from.
pub const CHAT_TEMPLATE_JINJA: &str = "chat_template.jinja";
/// Which tensor is in which safetensors shard.
pub const INDEX: &str = "model.safetensors.index.json";

/// What [`inspect`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// What `config.json` says, with the memory estimate.
    pub shape: ModelShape,
    /// The safetensors index as read, or empty for a single shard without
    /// one (for [`common::submission::weights_fingerprint`]).
    pub index: Vec<u8>,
}

/// Runs the pipeline of the module docs on a repository's listing. `read`
/// returns the content of a listed small file (`config.json`,
/// `tokenizer_config.json`, the index); it is called only once the listing
/// passed, and only for files the listing holds. A refusal converts into the
/// source's error type, which also carries `read`'s own failures.
pub fn inspect<E: From<FailureReason>>(
    files: &[RepoFile],
    max_bytes: u64,
    limits: &ConfigLimits,
    chat_template: &str,
    mut read: impl FnMut(&str) -> Result<Vec<u8>, E>,
) -> Result<Inspection, E> {
    check_listing(files, max_bytes)?;
    let listed = |name: &str| files.iter().any(|f| f.path == name);
    let shape = check_config(&read(CONFIG)?, limits)?;
    let tokenizer_config = if listed(TOKENIZER_CONFIG) {
        Some(read(TOKENIZER_CONFIG)?)
    } else {
        None
    };
    check_chat_template(
        chat_template,
        tokenizer_config.as_deref(),
        listed(CHAT_TEMPLATE_JINJA),
    )?;
    let shards = files
        .iter()
        .filter(|f| f.path.ends_with(".safetensors"))
        .count();
    let index = if listed(INDEX) {
        let index = read(INDEX)?;
        check_index(&index, files)?;
        index
    } else if shards == 1 {
        Vec::new()
    } else {
        return Err(FailureReason::new(
            FailureCode::BadConfig,
            "several safetensors shards but no model.safetensors.index.json",
        )
        .into());
    };
    Ok(Inspection { shape, index })
}

fn refuse(code: FailureCode, message: String) -> FailureReason {
    FailureReason::new(code, message)
}

fn bad_config(message: String) -> FailureReason {
    refuse(FailureCode::BadConfig, message)
}

/// `config.json` values for the submodules' tests.
#[cfg(test)]
mod test_configs {
    use common::result::FailureReason;

    use super::{ComputeDevice, ConfigLimits, ModelShape, check_config};

    /// The generated tiny Llama's config (fixtures.rs).
    pub(super) fn tiny() -> serde_json::Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
            "vocab_size": 512, "max_position_embeddings": 512,
            "tie_word_embeddings": false, "torch_dtype": "float32",
        })
    }

    pub(super) fn cpu(budget: u64) -> ConfigLimits {
        ConfigLimits {
            device: ComputeDevice::Cpu,
            memory_budget_bytes: budget,
            ..ConfigLimits::default()
        }
    }

    pub(super) fn check(
        config: &serde_json::Value,
        limits: &ConfigLimits,
    ) -> Result<ModelShape, FailureReason> {
        check_config(config.to_string().as_bytes(), limits)
    }

    pub(super) fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
        let mut config = tiny();
        if value.is_null() {
            config.as_object_mut().unwrap().remove(field);
        } else {
            config[field] = value;
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A listing of `files` whose small files hold `contents`; reading a file
    /// that has none is a test failure.
    fn run(
        files: &[(&str, u64)],
        contents: &[(&str, String)],
        template: &str,
    ) -> (Result<Inspection, FailureReason>, Vec<String>) {
        let listing: Vec<RepoFile> = files
            .iter()
            .map(|(path, size)| RepoFile {
                path: (*path).into(),
                size: *size,
            })
            .collect();
        let contents: BTreeMap<&str, &String> = contents.iter().map(|(n, c)| (*n, c)).collect();
        let mut reads = Vec::new();
        let result = inspect(
            &listing,
            10_000,
            &ConfigLimits::default(),
            template,
            |name: &str| {
                reads.push(name.to_owned());
                Ok(contents[name].as_bytes().to_vec())
            },
        );
        (result, reads)
    }

    fn config() -> String {
        test_configs::tiny().to_string()
    }

    const INDEX_OF_TWO: &str = r#"{"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#;

    const SHARDED: [(&str, u64); 5] = [
        ("config.json", 10),
        ("tokenizer_config.json", 10),
        (INDEX, 10),
        ("model-00001-of-00002.safetensors", 10),
        ("model-00002-of-00002.safetensors", 10),
    ];

    #[test]
    fn a_sharded_repository_passes_with_its_index() {
        let contents = [
            ("config.json", config()),
            ("tokenizer_config.json", r#"{"chat_template": "x"}"#.into()),
            (INDEX, INDEX_OF_TWO.into()),
        ];
        let (result, reads) = run(&SHARDED, &contents, "tokenizer");
        let inspection = result.unwrap();
        assert_eq!(inspection.index, INDEX_OF_TWO.as_bytes());
        assert_eq!(inspection.shape.architecture, "LlamaForCausalLM");
        assert_eq!(reads, ["config.json", "tokenizer_config.json", INDEX]);
        // A single shard needs no index.
        let (result, _) = run(
            &[("config.json", 10), ("model.safetensors", 10)],
            &contents,
            "chatml",
        );
        assert!(result.unwrap().index.is_empty());
    }

    #[test]
    fn the_first_failing_step_is_the_failure() {
        let mut contents = [
            (
                "config.json",
                r#"{"architectures": ["GPT2LMHeadModel"]}"#.to_owned(),
            ),
            ("tokenizer_config.json", "{}".into()),
            (INDEX, "nope".into()),
        ];
        // The listing first: nothing is read.
        let (result, reads) = run(
            &[
                ("config.json", 10),
                ("model.bin", 10),
                ("model.safetensors", 10),
            ],
            &contents,
            "nope",
        );
        assert_eq!(result.unwrap_err().code, FailureCode::ForbiddenFile);
        assert!(reads.is_empty(), "{reads:?}");
        // Then config.json, the chat template, the index.
        let (result, reads) = run(&SHARDED, &contents, "tokenizer");
        assert_eq!(result.unwrap_err().code, FailureCode::BadConfig);
        assert_eq!(reads, ["config.json"]);
        contents[0].1 = config();
        let (result, _) = run(&SHARDED, &contents, "tokenizer");
        assert_eq!(result.unwrap_err().code, FailureCode::BadTemplate);
        let (result, _) = run(&SHARDED, &contents, "chatml");
        let err = result.unwrap_err();
        assert_eq!(err.code, FailureCode::BadConfig);
        assert!(err.message.contains("not valid JSON"), "{err}");
        // Several shards need an index.
        let unindexed = [SHARDED[0], SHARDED[3], SHARDED[4]];
        let (result, _) = run(&unindexed, &contents, "chatml");
        let err = result.unwrap_err();
        assert_eq!(err.code, FailureCode::BadConfig);
        assert!(
            err.message.contains("no model.safetensors.index.json"),
            "{err}"
        );
    }
}
