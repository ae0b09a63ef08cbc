//! The repository's file listing: which files may be there, the total size,
//! and the safetensors index against the listed shards.

use std::collections::BTreeSet;

use common::result::{FailureCode, FailureReason};

use super::{RepoFile, refuse};
use crate::paths::is_safe_relative_path;

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

/// Accepts the listing or says what the miner must fix.
pub fn check_listing(files: &[RepoFile], max_bytes: u64) -> Result<(), FailureReason> {
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
        check_listing(&good(), 10_000).unwrap();
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
            let err = check_listing(&listing, 50_000).unwrap_err();
            assert_eq!(err.code, *code, "{path}: {err}");
        }
        let without_config: Vec<_> = good()
            .into_iter()
            .filter(|f| f.path != "config.json")
            .collect();
        assert_eq!(
            check_listing(&without_config, 50_000).unwrap_err().code,
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
