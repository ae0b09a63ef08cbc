//! The container images: the Dockerfiles pass `hadolint` and build what the
//! chart runs; the crates they build link only what their role needs.

use std::process::Command;

use tests::tools::tool;

use super::{repo, run};

#[test]
fn dockerfiles_pass_hadolint_and_build_what_the_chart_runs() {
    let files = ["docker/coordinator.Dockerfile", "docker/worker.Dockerfile"];
    let out = run(Command::new(tool("hadolint")).args(files));
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |f: &str| std::fs::read_to_string(repo().join(f)).unwrap();
    let coordinator = read(files[0]);
    assert!(coordinator.contains("cargo build --release --locked -p coordinator \\\n"));
    let worker = read(files[1]);
    // The image builds with the script a validator runs (the same pinned CUDA wheels and
    // the same cargo command), and carries the CUDA libraries the script gathers.
    assert!(worker.contains("\nRUN scripts/build-cuda-worker"));
    assert!(worker.contains("COPY --from=build /out/lib/ /opt/cuda/lib/"));
    let script = read("scripts/build-cuda-worker");
    assert!(script.contains(
        "cargo build --release --locked -p worker --features cuda --no-default-features"
    ));
    assert!(script.contains("--require-hashes"));
    // Multi-stage, and the last stage runs as the chart's non-root user.
    let values = read("helm/eval-cluster/values.yaml");
    assert!(values.contains("runAsUser: 10001"));
    for text in [&coordinator, &worker] {
        assert!(text.matches("\nFROM ").count() >= 2, "multi-stage");
        let last_user = text.lines().rfind(|l| l.starts_with("USER ")).unwrap();
        assert_eq!(last_user, "USER 10001:10001");
    }
    let ignore = read(".dockerignore");
    assert!(
        ignore.lines().any(|l| l == "target/"),
        "the build context skips target/"
    );
}

/// The layering the images rely on: the coordinator links no inference engine and
/// the worker no chain client; only the composition root (`embedded`) and the
/// tests link both.
#[test]
fn coordinator_and_worker_depend_on_common_only() {
    let tree = |package: &str| {
        let out = std::process::Command::new(env!("CARGO"))
            .args([
                "tree",
                "--locked",
                "--offline",
                "-e",
                "normal",
                "--prefix",
                "none",
            ])
            .args(["-p", package])
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo tree -p {package}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let has = |tree: &str, name: &str| tree.lines().any(|l| l.starts_with(&format!("{name} v")));
    let coordinator = tree("coordinator");
    assert!(
        has(&coordinator, "common") && has(&coordinator, "subxt"),
        "{coordinator}"
    );
    for absent in ["worker", "embedded", "mistralrs", "candle-core"] {
        assert!(
            !has(&coordinator, absent),
            "coordinator depends on {absent}"
        );
    }
    let worker = tree("worker");
    assert!(
        has(&worker, "common") && has(&worker, "mistralrs"),
        "{worker}"
    );
    for absent in ["coordinator", "embedded", "subxt", "subxt-signer"] {
        assert!(!has(&worker, absent), "worker depends on {absent}");
    }
}
