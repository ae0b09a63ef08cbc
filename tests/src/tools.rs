//! External tools the tests run (Helm, kubernetes-validate, hadolint,
//! promtool, schemathesis): `scripts/test` installs them, pinned, into
//! `$EVAL_TOOLS_DIR` (default `~/.cache/eval-tools`) when missing. A missing
//! tool fails the test with that hint; nothing is skipped.

use std::path::PathBuf;

/// Where `scripts/test` installs the tools.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("EVAL_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/eval-tools")
        })
}

/// A tool, from the tools directory or `PATH`.
pub fn tool(name: &str) -> PathBuf {
    let installed = tools_dir().join("bin").join(name);
    if installed.is_file() {
        return installed;
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if dir.join(name).is_file() {
            return dir.join(name);
        }
    }
    panic!(
        "`{name}` is not installed: run the tests through scripts/test, which installs it into {}",
        tools_dir().display()
    );
}
