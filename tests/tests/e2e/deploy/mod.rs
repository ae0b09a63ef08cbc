//! The deployment artefacts, checked with the tools that consume them:
//!
//! - The Helm chart (`helm/eval-cluster/`): `helm lint --strict` and `helm
//!   template` with the default values and with a production-like values file
//!   (GPU nodes, KEDA, ServiceMonitors and alert rules, Ingress, persistent state); every
//!   rendered built-in object validated offline by `kubernetes-validate`
//!   against the Kubernetes 1.33 schemas (strict: unknown fields refused);
//!   the fields that matter asserted one by one; the rendered TOML config
//!   files accepted by the real binaries (`coordinator config`, `worker
//!   config`); bad values refused by `values.schema.json`.
//! - The Grafana dashboards (`grafana/dashboards/`): a `datasource` variable
//!   and no `__inputs`; the chart's copies identical; every PromQL expression
//!   parsed by `promtool check rules`; every metric name they use exported by
//!   a running `worker run` / `coordinator run` (scraped from `/metrics`),
//!   except the documented external ones (`rabbitmq_*`, `DCGM_FI_*`).
//! - The chart's alerting rules: `promtool check rules`, and `promtool test
//!   rules` with the cases of `alerts.test.yml` (each alert fires on its
//!   trouble, only in the release's namespace, and not without it); every
//!   alert annotated, every metric it uses on a dashboard.
//! - The Dockerfiles: `hadolint`, and the build commands they must run.
//!
//! The tools come from `scripts/test`, which installs them (pinned) into
//! `$EVAL_TOOLS_DIR` (default `~/.cache/eval-tools`) when missing. A missing
//! tool fails the test with that hint; nothing is skipped.
//!
//! One module per concern: [`chart`], [`alerts`], [`dashboards`], [`images`]
//! and [`endpoints`] (the probes and metrics of the running binaries).

mod alerts;
mod chart;
mod dashboards;
mod endpoints;
mod images;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CHART: &str = "helm/eval-cluster";
const PRODUCTION_VALUES: &str = "helm/eval-cluster/ci/gpu-keda-servicemonitor-ingress-values.yaml";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn run(command: &mut Command) -> Output {
    command
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

fn run_ok(command: &mut Command) -> String {
    let out = run(command);
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}
