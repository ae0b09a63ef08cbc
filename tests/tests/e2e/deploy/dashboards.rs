//! The Grafana dashboards (`grafana/dashboards/`): a `datasource` variable
//! and no `__inputs`, the chart's copies identical, every PromQL expression
//! parsed by `promtool`, every metric name ours or a documented external one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use tests::promql::metric_names;
use tests::tools::tool;

use super::{repo, run, run_ok};

/// Metric name prefixes the dashboards may use without our binaries exporting
/// them: RabbitMQ's Prometheus plugin and NVIDIA's DCGM exporter.
const EXTERNAL_PREFIXES: [&str; 2] = ["rabbitmq_", "DCGM_FI_"];

/// The canonical dashboards: (path, parsed JSON).
pub(super) fn dashboards() -> Vec<(PathBuf, Value)> {
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(repo().join("grafana/dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let json = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, json)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 3, "operator, workers and miners dashboards");
    out
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Every PromQL expression of a dashboard, with where it is.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((format!("panel `{}`", panel["title"]), expr.to_owned()));
            }
        }
    }
    out
}

/// Metric names of the dashboards' query variables (`label_values(metric, label)`).
fn variable_metrics(dashboard: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .unwrap();
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("unsupported variable query {query}"));
        let (selector, _label) = inner.rsplit_once(',').unwrap();
        out.extend(metric_names(selector));
    }
    out
}

/// Grafana's variables replaced by values PromQL accepts.
fn substitute(expr: &str) -> String {
    let mut out = expr.to_owned();
    for (var, value) in [
        ("$__rate_interval", "5m"),
        ("$__interval", "1m"),
        ("$__range", "1d"),
        ("$window", "6h"),
        ("$queue", "eval.jobs"),
        ("$pod", ".*"),
    ] {
        out = out.replace(var, value);
    }
    assert!(!out.contains('$'), "an unknown variable in {expr}");
    out
}

/// Every metric name the dashboards use.
pub(super) fn dashboard_metric_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, dashboard) in dashboards() {
        for (_, expr) in expressions(&dashboard) {
            names.extend(metric_names(&expr));
        }
        names.extend(variable_metrics(&dashboard));
    }
    names
}

#[test]
fn dashboards_use_a_datasource_variable_and_no_inputs() {
    let mut uids = BTreeSet::new();
    for (path, dashboard) in dashboards() {
        let file = path.display();
        assert!(dashboard.get("__inputs").is_none(), "{file} has __inputs");
        assert!(uids.insert(dashboard["uid"].as_str().unwrap().to_owned()));
        let text = serde_json::to_string(&dashboard).unwrap();
        assert!(!text.contains("DS_PROMETHEUS"), "{file}");
        let vars = dashboard["templating"]["list"].as_array().unwrap();
        let datasource = vars
            .iter()
            .find(|v| v["name"] == "datasource")
            .unwrap_or_else(|| panic!("{file} has no datasource variable"));
        assert_eq!(datasource["type"], "datasource");
        assert_eq!(datasource["query"], "prometheus");
        let mut ids = BTreeSet::new();
        for panel in panels(&dashboard) {
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{file}: duplicate panel id"
            );
            if panel["type"] == "row" || panel["type"] == "text" {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{file}: {}",
                panel["title"]
            );
            let targets = panel["targets"].as_array().unwrap();
            assert!(
                !targets.is_empty(),
                "{file}: {} has no query",
                panel["title"]
            );
            for target in targets {
                assert_eq!(target["datasource"]["uid"], "${datasource}");
            }
        }
        for var in vars.iter().filter(|v| v["type"] == "query") {
            assert_eq!(var["datasource"]["uid"], "${datasource}", "{file}");
        }
    }
}

#[test]
fn the_chart_ships_exactly_the_canonical_dashboards() {
    let listing = |dir: &str| -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(repo().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
    };
    let canonical = listing("grafana/dashboards");
    let shipped = listing("helm/eval-cluster/dashboards");
    assert_eq!(
        canonical.keys().collect::<Vec<_>>(),
        shipped.keys().collect::<Vec<_>>(),
        "sync with: cp grafana/dashboards/*.json helm/eval-cluster/dashboards/"
    );
    for (name, bytes) in &canonical {
        assert!(
            bytes == &shipped[name],
            "helm/eval-cluster/dashboards/{name} differs from grafana/dashboards/{name}: \
             cp grafana/dashboards/*.json helm/eval-cluster/dashboards/"
        );
    }
}

#[test]
fn dashboard_promql_passes_promtool() {
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut count = 0;
    for (path, dashboard) in dashboards() {
        for (place, expr) in expressions(&dashboard) {
            count += 1;
            let expr = substitute(&expr);
            rules.push_str(&format!(
                "      # {} {place}\n      - record: dashboard_check_{count}\n        expr: {}\n",
                path.file_name().unwrap().to_string_lossy(),
                serde_json::to_string(&expr).unwrap()
            ));
        }
    }
    assert!(count > 40, "{count} expressions");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboards.rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = run_ok(
        Command::new(tool("promtool"))
            .args(["check", "rules"])
            .arg(&file),
    );
    assert!(
        out.contains(&format!("SUCCESS: {count} rules found")),
        "{out}"
    );

    // And promtool does fail on a broken expression.
    std::fs::write(
        &file,
        "groups:\n  - name: x\n    rules:\n      - record: y\n        expr: \"sum(rate(a[5m])\"\n",
    )
    .unwrap();
    assert!(
        !run(Command::new(tool("promtool"))
            .args(["check", "rules"])
            .arg(&file))
        .status
        .success()
    );
}

#[test]
fn dashboard_metrics_are_ours_or_documented_external_ones() {
    let names = dashboard_metric_names();
    assert!(names.len() > 20, "{names:?}");
    for name in &names {
        assert!(
            name.starts_with("eval_worker_")
                || name.starts_with("eval_coordinator_")
                || EXTERNAL_PREFIXES.iter().any(|p| name.starts_with(p)),
            "{name}: not a metric of ours nor a documented external one"
        );
    }
    for prefix in [
        "eval_worker_",
        "eval_coordinator_",
        "rabbitmq_",
        "DCGM_FI_DEV_",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(prefix)),
            "no {prefix} metric on the dashboards"
        );
    }
}
