//! Path safety, shared by the model sources (listed file names, repository
//! names) and the dataset locations (a file inside a hub repository). A leaf:
//! it depends on no other module of the crate.

use std::path::{Component, Path};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_safe() {
        for safe in ["config.json", "sub/dir/x.safetensors", "a.b"] {
            assert!(is_safe_relative_path(safe), "{safe}");
        }
        for unsafe_path in [
            "",
            "/abs",
            "../x",
            "a/../../b",
            "./x",
            "a\\b",
            "a\nb",
            "C:\\x",
        ] {
            assert!(!is_safe_relative_path(unsafe_path), "{unsafe_path:?}");
        }
    }
}
