//! The chart's alerting rules (`templates/prometheusrule.yaml`), rendered with
//! the production-like values: parsed by `promtool check rules`, their firing
//! checked by `promtool test rules` against the cases of `alerts.test.yml`,
//! each alert annotated for the operator, and every metric they use on a
//! dashboard (whose metrics [`super::endpoints`] checks the binaries export).

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;
use tests::promql::metric_names;
use tests::tools::tool;

use super::chart::Rendered;
use super::dashboards::dashboard_metric_names;
use super::{PRODUCTION_VALUES, repo, run_ok};

const ALERTS: [&str; 5] = [
    "EvalChainNotRead",
    "EvalJobsHandedBackWithoutCompleting",
    "EvalJobsWaitingWithoutWorkers",
    "EvalJobsWithoutMessage",
    "EvalWeightsNotSet",
];

/// The rules of every group of a PrometheusRule's `spec`.
fn rules(spec: &Value) -> Vec<&Value> {
    spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap())
        .collect()
}

#[test]
fn alerts_fire_on_the_validators_trouble_in_its_namespace_only() {
    let rendered = Rendered::new(&[PRODUCTION_VALUES]);
    let rule = rendered.one("PrometheusRule", "eval-eval-cluster");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        rule["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let spec = &rule["spec"];
    let alerts: BTreeSet<&str> = rules(spec)
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    assert_eq!(alerts, BTreeSet::from(ALERTS));

    let on_dashboards = dashboard_metric_names();
    for rule in rules(spec) {
        let alert = &rule["alert"];
        for key in ["summary", "description"] {
            let text = rule["annotations"][key].as_str().unwrap_or_default();
            assert!(text.len() > 20, "{alert}: {key} {text:?}");
        }
        let expr = rule["expr"].as_str().unwrap();
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{alert}: {expr}");
        for name in &names {
            assert!(
                on_dashboards.contains(name),
                "{alert} uses {name}, which no dashboard shows"
            );
            assert!(
                expr.contains(&format!(r#"{name}{{namespace="validators""#)),
                "{alert}: {name} not scoped to the release's namespace: {expr}"
            );
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("alerts.rules.yml");
    // JSON is YAML: the spec is a rule file as it is.
    std::fs::write(&rules_file, serde_json::to_string(spec).unwrap()).unwrap();
    let out = run_ok(
        Command::new(tool("promtool"))
            .args(["check", "rules"])
            .arg(&rules_file),
    );
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", ALERTS.len())),
        "{out}"
    );

    // promtool compares annotations too; the cases are about when alerts
    // fire, so they run on the rules without them.
    let mut bare = spec.clone();
    for group in bare["groups"].as_array_mut().unwrap() {
        for rule in group["rules"].as_array_mut().unwrap() {
            rule.as_object_mut().unwrap().remove("annotations");
        }
    }
    std::fs::write(&rules_file, serde_json::to_string(&bare).unwrap()).unwrap();
    let cases = dir.path().join("alerts.test.yml");
    std::fs::copy(
        repo().join("tests/tests/e2e/deploy/alerts.test.yml"),
        &cases,
    )
    .unwrap();
    let out = run_ok(
        Command::new(tool("promtool"))
            .args(["test", "rules"])
            .arg(&cases),
    );
    assert!(out.contains("SUCCESS"), "{out}");
}
