//! The deployment artefacts, checked with the tools that consume them:
//!
//! - The Helm chart (`helm/eval-cluster/`): `helm lint --strict` and `helm
//!   template` with the default values and with a production-like values file
//!   (GPU nodes, KEDA, ServiceMonitors, Ingress, persistent state); every
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
//! - The Dockerfiles: `hadolint`, and the build commands they must run.
//!
//! The tools come from `scripts/test`, which installs them (pinned) into
//! `$EVAL_TOOLS_DIR` (default `~/.cache/eval-tools`) when missing. A missing
//! tool fails the test with that hint; nothing is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use tests::sandbox::{Sandbox, binary, eventually};
use tests::tools::{tool, tools_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHART: &str = "helm/eval-cluster";
const PRODUCTION_VALUES: &str = "helm/eval-cluster/ci/gpu-keda-servicemonitor-ingress-values.yaml";
const KUBERNETES_VERSION: &str = "1.33.0";
/// Metric name prefixes the dashboards may use without our binaries exporting
/// them: RabbitMQ's Prometheus plugin and NVIDIA's DCGM exporter.
const EXTERNAL_PREFIXES: [&str; 2] = ["rabbitmq_", "DCGM_FI_"];

// ------------------------------------------------------------------ helpers

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

/// `helm template` with `values` files and `--set` pairs.
fn helm_template(values: &[&str], set: &[&str]) -> Output {
    let mut command = Command::new(tool("helm"));
    command.args(["template", "eval", CHART, "--namespace", "validators"]);
    for file in values {
        command.args(["--values", file]);
    }
    for pair in set {
        command.args(["--set", pair]);
    }
    run(&mut command)
}

/// Rendered objects: the YAML of `helm template`, read by PyYAML (in the
/// tools' virtualenv) and handed over as JSON.
struct Rendered {
    yaml: String,
    objects: Vec<Value>,
}

impl Rendered {
    fn new(values: &[&str]) -> Self {
        let out = helm_template(values, &[]);
        assert!(
            out.status.success(),
            "helm template {values:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = String::from_utf8(out.stdout).unwrap();
        let mut python = Command::new(tools_dir().join("venv/bin/python"));
        python
            .args([
                "-c",
                "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = python
            .spawn()
            .expect("the tools' python (run scripts/test to install it)");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(yaml.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let objects: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        Self { yaml, objects }
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {:#?}", self.names()))
    }

    fn names(&self) -> Vec<String> {
        self.objects
            .iter()
            .map(|o| format!("{}/{}", o["kind"], o["metadata"]["name"]))
            .collect()
    }

    /// Validates every built-in object with kubernetes-validate (strict);
    /// returns the kinds it has no schema for (the CRDs), which the tests
    /// check field by field instead.
    fn validate(&self) -> BTreeSet<String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rendered.yaml");
        std::fs::write(&file, &self.yaml).unwrap();
        let out = run(Command::new(tool("kubernetes-validate"))
            .args(["--strict", "-k", KUBERNETES_VERSION])
            .arg(&file));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
        let mut unchecked = BTreeSet::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if line.contains(" passed for resource ") {
                continue;
            }
            let kind = line
                .split("Couldn't find schema for kind ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("unexpected kubernetes-validate output: {line}"));
            unchecked.insert(kind.to_owned());
        }
        let passed = text.matches(" passed for resource ").count();
        let builtin = self
            .objects
            .iter()
            .filter(|o| !unchecked.contains(o["kind"].as_str().unwrap()))
            .count();
        assert_eq!(passed, builtin, "every built-in object validated:\n{text}");
        unchecked
    }
}

fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no env {name} in {container:#}"))
}

fn volume<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// The volume mounted at `path` (or at a parent of it) in `container`.
fn volume_at<'a>(deployment: &'a Value, container: &Value, path: &str) -> &'a Value {
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| path.starts_with(m["mountPath"].as_str().unwrap()))
        .max_by_key(|m| m["mountPath"].as_str().unwrap().len())
        .unwrap_or_else(|| panic!("nothing mounted at {path}"));
    volume(deployment, mount["name"].as_str().unwrap())
}

fn secret_ref(container: &Value, name: &str) -> (String, String) {
    let var = env(container, name);
    assert!(
        var.get("value").is_none(),
        "{name} must come from a Secret, not inline"
    );
    let r = &var["valueFrom"]["secretKeyRef"];
    (
        r["name"].as_str().unwrap().to_owned(),
        r["key"].as_str().unwrap().to_owned(),
    )
}

/// The secret item a projected volume maps to `path`: (secret, key).
fn projected_item(volume: &Value, path: &str) -> (String, String) {
    for source in volume["projected"]["sources"].as_array().unwrap() {
        for item in source["secret"]["items"].as_array().unwrap() {
            if item["path"] == path {
                return (
                    source["secret"]["name"].as_str().unwrap().to_owned(),
                    item["key"].as_str().unwrap().to_owned(),
                );
            }
        }
    }
    panic!("no projected item {path} in {volume:#}");
}

/// Pod and container security: non-root, read-only root, no privilege escalation.
fn assert_hardened(deployment: &Value, container: &Value) {
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let tmp = volume_at(deployment, container, "/tmp");
    assert!(tmp.get("emptyDir").is_some(), "/tmp is a writable emptyDir");
}

fn assert_probe(container: &Value, probe: &str, path: &str, port: &str) {
    let get = &container[probe]["httpGet"];
    assert_eq!(get["path"], path, "{probe}");
    assert_eq!(get["port"], port, "{probe}");
}

/// The rendered TOML config file of `component`, accepted by the real binary.
fn assert_config_accepted(rendered: &Rendered, component: &str) -> String {
    let map = rendered.one("ConfigMap", &format!("eval-eval-cluster-{component}"));
    let toml = map["data"]["config.toml"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, &toml).unwrap();
    let printed = run_ok(
        Command::new(binary(component).unwrap())
            .arg("config")
            .arg("--config")
            .arg(&file)
            .env_clear(),
    );
    assert!(
        printed.contains("\"eval.jobs\""),
        "{component} config:\n{printed}"
    );
    toml
}

/// Every dashboard ConfigMap carries the sidecar label and exactly the
/// canonical JSON.
fn assert_dashboards(rendered: &Rendered) {
    let canonical = dashboards();
    let maps: Vec<&Value> = rendered
        .all("ConfigMap")
        .into_iter()
        .filter(|m| {
            m["metadata"]["name"]
                .as_str()
                .unwrap()
                .contains("-dashboard-")
        })
        .collect();
    assert_eq!(maps.len(), canonical.len(), "one ConfigMap per dashboard");
    for map in maps {
        assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
        let data = map["data"].as_object().unwrap();
        assert_eq!(data.len(), 1);
        let (file, json) = data.iter().next().unwrap();
        let original = &canonical
            .iter()
            .find(|(path, _)| path.file_name().unwrap().to_str() == Some(file))
            .unwrap_or_else(|| panic!("{file} is not in grafana/dashboards"))
            .1;
        let shipped: Value = serde_json::from_str(json.as_str().unwrap()).unwrap();
        assert_eq!(&shipped, original, "{file}");
    }
}

// ------------------------------------------------------------------ chart

#[test]
fn chart_lints_strictly_with_default_and_production_values() {
    for values in [None, Some(PRODUCTION_VALUES)] {
        let mut command = Command::new(tool("helm"));
        command.args(["lint", "--strict", CHART]);
        if let Some(file) = values {
            command.args(["--values", file]);
        }
        let out = run_ok(&mut command);
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[test]
fn default_values_render_valid_hardened_objects_with_secrets_by_reference() {
    let rendered = Rendered::new(&[]);
    let unchecked = rendered.validate();
    assert!(
        unchecked.is_empty(),
        "the defaults need no CRD: {unchecked:?}"
    );
    assert!(
        rendered.all("Secret").is_empty(),
        "the chart never writes a Secret"
    );
    for kind in [
        "ServiceMonitor",
        "ScaledObject",
        "Ingress",
        "Job",
        "PersistentVolumeClaim",
    ] {
        assert!(rendered.all(kind).is_empty(), "{kind} is opt-in");
    }

    // Coordinator: one replica, Recreate, probes, state volume, secrets by reference.
    let coordinator = rendered.one("Deployment", "eval-eval-cluster-coordinator");
    assert_eq!(coordinator["spec"]["replicas"], 1);
    assert_eq!(coordinator["spec"]["strategy"]["type"], "Recreate");
    let c = container(coordinator, "coordinator");
    assert_eq!(c["args"], serde_json::json!(["run"]));
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["ports"][0]["name"], "http");
    assert_eq!(c["ports"][1]["containerPort"], 9090);
    assert_eq!(c["ports"][1]["name"], "admin");
    for probe in ["startupProbe", "livenessProbe"] {
        assert_probe(c, probe, "/healthz", "admin");
    }
    assert_probe(c, "readinessProbe", "/readyz", "admin");
    assert_eq!(env(c, "EVAL_LISTEN")["value"], "0.0.0.0:8080");
    assert_eq!(env(c, "EVAL_ADMIN_LISTEN")["value"], "0.0.0.0:9090");
    assert_eq!(env(c, "EVAL_LOG_FORMAT")["value"], "json");
    assert_eq!(env(c, "EVAL_SUBTENSOR_NETWORK")["value"], "finney");
    assert_eq!(
        secret_ref(c, "EVAL_AMQP_URL"),
        ("eval-cluster".into(), "amqp-url".into())
    );
    assert_eq!(
        secret_ref(c, "EVAL_REDIS_URL"),
        ("eval-cluster".into(), "redis-url".into())
    );
    let state_dir = env(c, "EVAL_STATE_DIR")["value"].as_str().unwrap();
    assert!(
        volume_at(coordinator, c, state_dir)
            .get("emptyDir")
            .is_some()
    );
    let hotkey_file = env(c, "EVAL_HOTKEY_FILE")["value"].as_str().unwrap();
    let secrets = volume_at(coordinator, c, hotkey_file);
    assert_eq!(
        projected_item(
            secrets,
            Path::new(hotkey_file)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
        ),
        ("eval-cluster".into(), "hotkey".into())
    );
    let config = env(c, "EVAL_CONFIG")["value"].as_str().unwrap();
    assert!(
        volume_at(coordinator, c, config)["configMap"]["name"]
            .as_str()
            .unwrap()
            .ends_with("-coordinator")
    );
    assert_hardened(coordinator, c);
    let service = rendered.one("Service", "eval-eval-cluster-coordinator");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    assert_eq!(service["spec"]["ports"][0]["name"], "http");
    assert_eq!(service["spec"]["ports"][1]["port"], 9090);
    assert_eq!(service["spec"]["ports"][1]["name"], "admin");

    // Workers: GPU, tolerations, grace period, probes on the metrics port.
    let worker = rendered.one("Deployment", "eval-eval-cluster-worker");
    assert_eq!(worker["spec"]["replicas"], 1);
    assert_eq!(
        worker["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 0,
        "a rollout needs no spare GPU"
    );
    let pod = &worker["spec"]["template"]["spec"];
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() >= 60);
    assert_eq!(pod["tolerations"][0]["key"], "nvidia.com/gpu");
    let w = container(worker, "worker");
    assert_eq!(w["resources"]["limits"]["nvidia.com/gpu"], 1);
    assert_eq!(w["ports"][0]["containerPort"], 9090);
    assert_eq!(
        env(w, "EVAL_THREADS")["valueFrom"]["resourceFieldRef"]["resource"],
        "limits.cpu"
    );
    assert_eq!(w["ports"][0]["name"], "metrics");
    assert_eq!(env(w, "EVAL_METRICS_LISTEN")["value"], "0.0.0.0:9090");
    assert_probe(w, "livenessProbe", "/healthz", "metrics");
    assert_probe(w, "readinessProbe", "/readyz", "metrics");
    assert_eq!(
        env(w, "EVAL_WORKER_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    secret_ref(w, "EVAL_AMQP_URL");
    secret_ref(w, "EVAL_REDIS_URL");
    let cache = env(w, "EVAL_HF_CACHE_DIR")["value"].as_str().unwrap();
    assert!(volume_at(worker, w, cache)["emptyDir"]["sizeLimit"].is_string());
    assert_hardened(worker, w);

    // No credential inline anywhere: every *_URL or *TOKEN* variable is a reference.
    for deployment in rendered.all("Deployment") {
        for c in deployment["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
        {
            for var in c["env"].as_array().unwrap() {
                let name = var["name"].as_str().unwrap();
                if name.ends_with("_URL") || (name.contains("TOKEN") && !name.ends_with("_FILE")) {
                    assert!(var.get("value").is_none(), "{name} is inline");
                }
            }
        }
    }

    assert_dashboards(&rendered);
    let coordinator_toml = assert_config_accepted(&rendered, "coordinator");
    assert!(
        coordinator_toml.contains("netuid = 11\n"),
        "{coordinator_toml}"
    );
    let worker_toml = assert_config_accepted(&rendered, "worker");
    assert!(
        worker_toml.contains("memory_budget_gib = 64\n"),
        "{worker_toml}"
    );
}

#[test]
fn production_values_render_gpu_keda_service_monitors_and_ingress() {
    let rendered = Rendered::new(&[PRODUCTION_VALUES]);
    let unchecked = rendered.validate();
    assert_eq!(
        unchecked,
        ["ScaledObject", "ServiceMonitor", "TriggerAuthentication"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>()
    );

    let worker = rendered.one("Deployment", "eval-eval-cluster-worker");
    assert!(
        worker["spec"].get("replicas").is_none(),
        "KEDA owns the replica count"
    );
    let pod = &worker["spec"]["template"]["spec"];
    assert_eq!(pod["terminationGracePeriodSeconds"], 300);
    assert_eq!(pod["nodeSelector"]["nvidia.com/gpu.present"], "true");
    let w = container(worker, "worker");
    assert_eq!(w["resources"]["limits"]["nvidia.com/gpu"], 1);
    assert_eq!(w["resources"]["limits"]["memory"], "64Gi");
    let token_file = env(w, "EVAL_HF_TOKEN_FILE")["value"].as_str().unwrap();
    assert_eq!(
        projected_item(volume_at(worker, w, token_file), "hf-token"),
        ("validator".into(), "hf-token".into())
    );

    // KEDA: the queue length through the management API (protocol http).
    let scaled = rendered.one("ScaledObject", "eval-eval-cluster-worker");
    assert_eq!(scaled["apiVersion"], "keda.sh/v1alpha1");
    assert_eq!(
        scaled["spec"]["scaleTargetRef"]["name"],
        "eval-eval-cluster-worker"
    );
    assert_eq!(scaled["spec"]["minReplicaCount"], 0);
    assert_eq!(scaled["spec"]["maxReplicaCount"], 8);
    let trigger = &scaled["spec"]["triggers"][0];
    assert_eq!(trigger["type"], "rabbitmq");
    assert_eq!(trigger["metadata"]["protocol"], "http");
    assert_eq!(trigger["metadata"]["mode"], "QueueLength");
    assert_eq!(trigger["metadata"]["queueName"], "eval.jobs");
    assert_eq!(trigger["metadata"]["value"], "1");
    let auth_name = trigger["authenticationRef"]["name"].as_str().unwrap();
    let auth = rendered.one("TriggerAuthentication", auth_name);
    assert_eq!(auth["spec"]["secretTargetRef"][0]["parameter"], "host");
    assert_eq!(auth["spec"]["secretTargetRef"][0]["name"], "validator");
    assert_eq!(
        auth["spec"]["secretTargetRef"][0]["key"],
        "rabbitmq-management-url"
    );

    // ServiceMonitors: both components, the extra labels, the right ports.
    let monitors = rendered.all("ServiceMonitor");
    assert_eq!(monitors.len(), 2);
    for (component, port) in [("coordinator", "admin"), ("worker", "metrics")] {
        let monitor = rendered.one("ServiceMonitor", &format!("eval-eval-cluster-{component}"));
        assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(
            monitor["metadata"]["labels"]["release"],
            "kube-prometheus-stack"
        );
        let endpoint = &monitor["spec"]["endpoints"][0];
        assert_eq!(endpoint["port"], port);
        assert_eq!(endpoint["path"], "/metrics");
        let selector = monitor["spec"]["selector"]["matchLabels"]
            .as_object()
            .unwrap();
        let service = rendered.one("Service", &format!("eval-eval-cluster-{component}"));
        for (key, value) in selector {
            assert_eq!(
                &service["metadata"]["labels"][key], value,
                "{component}: {key}"
            );
        }
        assert!(
            service["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == port)
        );
    }

    // Ingress to the coordinator's http port, with TLS.
    let ingress = rendered.one("Ingress", "eval-eval-cluster-coordinator");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "eval.validator.example");
    let backend = &rule["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"], "eval-eval-cluster-coordinator");
    assert_eq!(backend["port"]["name"], "http");
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "eval-tls");

    // Coordinator: persistent state kept on uninstall; own hotkey Secret; operator token.
    let coordinator = rendered.one("Deployment", "eval-eval-cluster-coordinator");
    let c = container(coordinator, "coordinator");
    let state = volume_at(
        coordinator,
        c,
        env(c, "EVAL_STATE_DIR")["value"].as_str().unwrap(),
    );
    let claim = state["persistentVolumeClaim"]["claimName"]
        .as_str()
        .unwrap();
    let pvc = rendered.one("PersistentVolumeClaim", claim);
    assert_eq!(
        pvc["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "2Gi");
    let secrets = volume_at(coordinator, c, "/var/run/secrets/eval/hotkey");
    assert_eq!(
        projected_item(secrets, "hotkey"),
        ("validator-hotkey".into(), "hotkey.json".into())
    );
    assert_eq!(
        projected_item(secrets, "operator-token"),
        ("validator".into(), "operator-token".into())
    );
    assert_eq!(
        env(c, "EVAL_OPERATOR_TOKEN_FILE")["value"],
        "/var/run/secrets/eval/operator-token"
    );

    // The RabbitMQ policy hook: consumer timeout above the job deadline.
    let job = rendered.one("Job", "eval-eval-cluster-rabbitmq-policy");
    assert_eq!(
        job["metadata"]["annotations"]["helm.sh/hook"],
        "post-install,post-upgrade"
    );
    let p = container_in_job(job);
    let policy: Value = serde_json::from_str(env(p, "POLICY")["value"].as_str().unwrap()).unwrap();
    assert_eq!(policy["pattern"], "^eval\\.jobs$");
    assert_eq!(policy["definition"]["consumer-timeout"], 21_600_000);
    assert_eq!(policy["apply-to"], "queues");
    assert_eq!(env(p, "VHOST")["value"], "%2F");
    secret_ref(p, "MANAGEMENT_URL");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
        true
    );

    assert_dashboards(&rendered);
    for map in rendered.all("ConfigMap") {
        if map["metadata"]["name"]
            .as_str()
            .unwrap()
            .contains("-dashboard-")
        {
            assert_eq!(
                map["metadata"]["annotations"]["grafana_folder"],
                "Evaluation"
            );
        }
    }
    let coordinator_toml = assert_config_accepted(&rendered, "coordinator");
    for line in [
        "epoch_start_block = 4200000\n",
        "poll_interval = \"12s\"\n",
        "temperature = 0.075\n",
    ] {
        assert!(coordinator_toml.contains(line), "{coordinator_toml}");
    }
    let worker_toml = assert_config_accepted(&rendered, "worker");
    assert!(worker_toml.contains("lease = \"2m\"\n"), "{worker_toml}");
}

fn container_in_job(job: &Value) -> &Value {
    &job["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn the_values_schema_refuses_bad_values() {
    for (set, complaint) in [
        ("worker.gpu.count=0", "/worker/gpu/count"),
        ("coordinator.replicas=2", "replicas"),
        ("coordinator.network=mainnet", "/coordinator/network"),
        (
            "worker.terminationGracePeriodSeconds=5",
            "terminationGracePeriodSeconds",
        ),
        ("secrets.amqpUrl.key=", "/secrets/amqpUrl/key"),
        ("worker.config.lease[0]=x", "/worker/config/lease"),
    ] {
        let out = helm_template(&[], &[set]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set} was accepted");
        assert!(stderr.contains(complaint), "{set}: {stderr}");
    }
}

// ------------------------------------------------------------------ dashboards

/// The canonical dashboards: (path, parsed JSON).
fn dashboards() -> Vec<(PathBuf, Value)> {
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

const PROMQL_WORDS: &[&str] = &[
    // aggregations
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    // keywords and operators
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
    "Inf",
    "NaN",
];

/// The metric names a PromQL expression reads (not functions, keywords,
/// label names or values).
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Drop string literals, label matchers and ranges.
    fn skip_string(quote: char, chars: &mut std::str::Chars<'_>) {
        while let Some(d) = chars.next() {
            if d == '\\' {
                chars.next();
            } else if d == quote {
                return;
            }
        }
    }
    let mut text = String::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                skip_string(c, &mut chars);
                text.push(' ');
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while let Some(d) = chars.next() {
                    match d {
                        '"' | '\'' | '`' => skip_string(d, &mut chars),
                        _ if d == close => break,
                        _ => {}
                    }
                }
                text.push(' ');
            }
            _ => text.push(c),
        }
    }
    // Tokens; a label list follows by/without/on/ignoring/group_*.
    let mut tokens: Vec<String> = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.' {
            current.push(c);
        } else {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        let starts_like_name = token
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
        if [
            "by",
            "without",
            "on",
            "ignoring",
            "group_left",
            "group_right",
        ]
        .contains(&token.as_str())
            && tokens.get(i + 1).map(String::as_str) == Some("(")
        {
            while i < tokens.len() && tokens[i] != ")" {
                i += 1;
            }
        } else if starts_like_name
            && !PROMQL_WORDS.contains(&token.as_str())
            && tokens.get(i + 1).map(String::as_str) != Some("(")
        {
            names.insert(token.clone());
        }
        i += 1;
    }
    names
}

/// Every metric name the dashboards use.
fn dashboard_metric_names() -> BTreeSet<String> {
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
fn metric_names_are_read_from_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names("histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{route=~\"x|y\"}[5m])))"),
        ["a_bucket"]
    );
    assert_eq!(
        names("max(b) - max(c_total offset 1h) / on(pod) group_left(gpu) d"),
        ["b", "c_total", "d"]
    );
    assert_eq!(
        names("100 * (1 - sum without (gpu) (e{a=\"}\"}) / count(f)) > bool 0.5"),
        ["e", "f"]
    );
    assert_eq!(
        names("label_replace(g, \"pod\", \"$1\", \"exported_pod\", \"(.+)\")"),
        ["g"]
    );
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

/// Series names in a Prometheus text exposition.
fn exposition_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// A plain HTTP/1.1 GET: (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response))
        .await
        .context("no response within 20 s")??;
    let response = String::from_utf8(response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no header end in the response")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    ensure!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked responses are not read here"
    );
    Ok((status, body.to_owned()))
}

/// The first `addr` of a JSON log line with `message`, in the log file.
fn logged_addr(log: &Path, message: &str) -> Option<SocketAddr> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["message"] == message)
        .and_then(|e| e["addr"].as_str()?.parse().ok())
}

#[tokio::test]
async fn a_running_worker_exports_every_worker_metric_the_dashboards_use() -> Result<()> {
    let sandbox = Sandbox::new("deploy-worker-metrics").await?;
    let (profile, dataset) = sandbox.slow_profile("metrics", 300)?;
    let model = sandbox.tiny_model("alice", "rp-tiny", 1).await?;
    let (profile, dataset) = (profile.display().to_string(), dataset.display().to_string());
    let mut process =
        sandbox.spawn_worker("metrics-w", &["--profile", &profile, "--dataset", &dataset])?;
    let addr = process.metrics_addr().await?;
    let (status, body) = http_get(addr, "/healthz").await?;
    ensure!(status == 200, "/healthz: {status} {body}");
    eventually("/readyz to answer 200", Duration::from_secs(30), || async {
        Ok((http_get(addr, "/readyz").await?.0 == 200).then_some(()))
    })
    .await?;

    let (status, text) = http_get(addr, "/metrics").await?;
    ensure!(status == 200, "/metrics: {status}");
    // Every outcome is there from the start, at zero; so are busy and info.
    for outcome in worker::metrics::job_outcomes() {
        let line = format!("eval_worker_jobs_total{{outcome=\"{outcome}\"}} 0");
        ensure!(text.contains(&line), "missing `{line}` in\n{text}");
    }
    ensure!(
        text.contains("failed_timeout") && text.contains("failed_forbidden_file"),
        "{text}"
    );
    ensure!(text.lines().any(|l| l == "eval_worker_busy 0"), "{text}");
    let info = format!(
        "eval_worker_info{{device=\"cpu\",version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    ensure!(text.contains(&info), "missing `{info}` in\n{text}");

    // The GPU gauges are labelled by GPU: this CPU host has none, so take
    // their names from the worker's own code after a reading of one GPU.
    worker::metrics::record_gpus(&[worker::gpu::GpuInfo {
        index: 0,
        name: "test".into(),
        total_bytes: 80 << 30,
        free_bytes: 70 << 30,
    }]);
    let mut exported = exposition_names(&text);
    exported.extend(
        exposition_names(&worker::metrics::render())
            .into_iter()
            .filter(|n| n.starts_with("eval_worker_gpu_")),
    );
    let used: BTreeSet<String> = dashboard_metric_names()
        .into_iter()
        .filter(|n| n.starts_with("eval_worker_"))
        .collect();
    let missing: Vec<&String> = used.difference(&exported).collect();
    ensure!(
        missing.is_empty(),
        "the dashboards use worker metrics the worker does not export: {missing:?}"
    );

    // The metrics move with the work: busy while a job runs, then one completion.
    let id = sandbox.submit(model).await?;
    eventually("eval_worker_busy 1", Duration::from_secs(60), || async {
        let (_, text) = http_get(addr, "/metrics").await?;
        Ok(text
            .lines()
            .any(|l| l == "eval_worker_busy 1")
            .then_some(()))
    })
    .await?;
    sandbox
        .wait_record(&id, "the job to complete", Duration::from_secs(120), |r| {
            r.status == common::job::JobStatus::Completed
        })
        .await?;
    eventually(
        "the completion counted",
        Duration::from_secs(30),
        || async {
            let (_, text) = http_get(addr, "/metrics").await?;
            Ok(
                (text.contains("eval_worker_jobs_total{outcome=\"completed\"} 1")
                    && text.lines().any(|l| l == "eval_worker_busy 0"))
                .then_some(()),
            )
        },
    )
    .await?;
    let (_, text) = http_get(addr, "/metrics").await?;
    let tokens: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("eval_worker_tokens_total "))
        .context("eval_worker_tokens_total")?
        .parse()?;
    ensure!(tokens > 0.0, "tokens counted: {tokens}");
    ensure!(
        text.contains("eval_worker_job_duration_seconds_count 1"),
        "{text}"
    );

    process.stop().await?;
    sandbox.cleanup().await
}

#[tokio::test]
async fn a_worker_without_its_broker_is_alive_but_not_ready() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("worker.log");
    // Port 1 on loopback: connection refused, retried until the operation timeout.
    let mut child = tokio::process::Command::new(binary("worker")?)
        .args(["--log-format", "json", "run", "--name", "unready"])
        .args(["--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2f"])
        .args(["--redis-url", &tests::sandbox::redis_url()])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--models-dir", &dir.path().display().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()?;
    let addr = eventually("the metrics address", Duration::from_secs(30), || async {
        Ok(logged_addr(&log, "metrics listening"))
    })
    .await?;
    let (status, _) = http_get(addr, "/healthz").await?;
    ensure!(status == 200, "/healthz: {status}");
    let (status, body) = http_get(addr, "/readyz").await?;
    // It names what is missing (the broker), not what is there (Redis).
    ensure!(
        status == 503 && body.contains("rabbitmq") && !body.contains("redis"),
        "/readyz: {status} {body}"
    );
    let (status, text) = http_get(addr, "/metrics").await?;
    ensure!(
        status == 200 && text.contains("eval_worker_jobs_total{outcome=\"poison\"} 0"),
        "/metrics before connecting: {status}\n{text}"
    );
    child.start_kill()?;
    child.wait().await?;
    Ok(())
}

/// A coordinator started while the broker is unreachable serves its API,
/// says on `/readyz` that the queue is what is missing, and records the
/// miners' jobs, which it publishes once the broker comes (the reconciler).
#[tokio::test]
async fn a_coordinator_without_its_broker_serves_its_api_but_is_not_ready() -> Result<()> {
    let sandbox = Sandbox::new("deploy-no-broker").await?;
    let outcome = async {
        let submissions = sandbox.dir.path().join("submissions.toml");
        let commit = common::submission::CommitString::bound_to(
            "alice", "rp-early", "chatml", "5Alice", None,
        );
        std::fs::write(
            &submissions,
            format!("[[miner]]\nhotkey = \"5Alice\"\ncommit = \"{commit}\"\n"),
        )?;
        let log = sandbox.dir.path().join("coordinator.log");
        let mut child = tokio::process::Command::new(binary("coordinator")?)
            .args(["--log-format", "json", "run", "--block-time", "1s"])
            .arg("--submissions")
            .arg(&submissions)
            .args(["--listen", "127.0.0.1:0"])
            // Port 1 on loopback: connection refused for as long as it runs.
            .args(["--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2f"])
            .args(["--redis-url", &sandbox.redis.url])
            .args(["--redis-prefix", &sandbox.redis.prefix])
            .args(["--queue", &sandbox.rabbit.queue])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()?;
        let addr = eventually("the API address", Duration::from_secs(30), || async {
            Ok(logged_addr(&log, "http api listening"))
        })
        .await?;
        let (status, _) = http_get(addr, "/healthz").await?;
        ensure!(status == 200, "/healthz: {status}");
        let job = eventually(
            "the job recorded in Redis",
            Duration::from_secs(30),
            || async {
                Ok(
                    common::store::ResultStore::jobs_of_hotkey(&sandbox.store, "5Alice")
                        .await?
                        .pop(),
                )
            },
        )
        .await?;
        ensure!(
            job.status == common::job::JobStatus::Queued && job.published_at_ms.is_none(),
            "{job:?}"
        );
        let (status, body) = http_get(addr, "/readyz").await?;
        let readiness: serde_json::Value = serde_json::from_str(&body)?;
        ensure!(
            status == 503 && readiness["queue"]["ok"] == false && readiness["store"]["ok"] == true,
            "/readyz: {status} {body}"
        );
        // Still up after its publisher's first retries ran out.
        tokio::time::sleep(Duration::from_secs(3)).await;
        ensure!(
            child.try_wait()?.is_none(),
            "the coordinator exited without its broker"
        );
        child.start_kill()?;
        child.wait().await?;
        Ok(())
    }
    .await;
    sandbox.cleanup().await?;
    outcome
}

/// The coordinator half of the metric-name check. Its HTTP server
/// (`--listen`, `/metrics`, the `http api listening` log line) and the
/// metrics the dashboards use come from the `api` and `chain` branches
/// (see the interfaces note): this passes once they are merged.
#[tokio::test]
async fn a_running_coordinator_exports_every_coordinator_metric_the_dashboards_use() -> Result<()> {
    let sandbox = Sandbox::new("deploy-coordinator-metrics").await?;
    // The queue and keys go whatever the outcome (the coordinator declares them).
    let outcome = async {
        let submissions = sandbox.dir.path().join("submissions.toml");
        let commit = common::submission::CommitString::bound_to(
            "alice",
            "rp-tiny",
            "chatml",
            "5Alice",
            None,
        );
        std::fs::write(
            &submissions,
            format!("[[miner]]\nhotkey = \"5Alice\"\ncommit = \"{commit}\"\n"),
        )?;
        let log = sandbox.dir.path().join("coordinator.log");
        let mut child = tokio::process::Command::new(binary("coordinator")?)
            .args(["--log-format", "json", "run", "--block-time", "1s"])
            .arg("--submissions")
            .arg(&submissions)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--amqp-url", &sandbox.rabbit.url])
            .args(["--redis-url", &sandbox.redis.url])
            .args(["--redis-prefix", &sandbox.redis.prefix])
            .args(["--queue", &sandbox.rabbit.queue])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the coordinator exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if let Some(addr) = logged_addr(&log, "http api listening") {
                break addr;
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "no `http api listening` within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (status, body) = http_get(addr, "/healthz").await?;
        ensure!(status == 200, "/healthz: {status} {body}");
        let used: BTreeSet<String> = dashboard_metric_names()
            .into_iter()
            .filter(|n| n.starts_with("eval_coordinator_"))
            .collect();
        // From start: allow the first chain read (1 s blocks) but no finished job and no
        // aggregation (every 100 blocks by default), so the Vec metrics must be
        // pre-initialised.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, text) = http_get(addr, "/metrics").await?;
            ensure!(status == 200, "/metrics: {status}");
            let exported = exposition_names(&text);
            let missing: Vec<&String> = used.difference(&exported).collect();
            if missing.is_empty() {
                break;
            }
            ensure!(
                tokio::time::Instant::now() < deadline,
                "the dashboards use coordinator metrics the coordinator does not export: {missing:?}\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        child.start_kill()?;
        child.wait().await?;
        Ok(())
    }
    .await;
    sandbox.cleanup().await?;
    outcome
}

// ------------------------------------------------------------------ images

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
            .args(["tree", "--locked", "--offline", "-e", "normal", "--prefix", "none"])
            .args(["-p", package])
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(out.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let has = |tree: &str, name: &str| tree.lines().any(|l| l.starts_with(&format!("{name} v")));
    let coordinator = tree("coordinator");
    assert!(has(&coordinator, "common") && has(&coordinator, "subxt"), "{coordinator}");
    for absent in ["worker", "embedded", "mistralrs", "candle-core"] {
        assert!(!has(&coordinator, absent), "coordinator depends on {absent}");
    }
    let worker = tree("worker");
    assert!(has(&worker, "common") && has(&worker, "mistralrs"), "{worker}");
    for absent in ["coordinator", "embedded", "subxt", "subxt-signer"] {
        assert!(!has(&worker, absent), "worker depends on {absent}");
    }
}

#[test]
fn the_install_notes_point_at_the_api_the_page_and_the_dashboards() {
    let notes = |values: &[&str]| {
        let mut command = Command::new(tool("helm"));
        command.args([
            "install",
            "eval",
            CHART,
            "--dry-run=client",
            "--namespace",
            "validators",
        ]);
        for file in values {
            command.args(["--values", file]);
        }
        let out = run_ok(&mut command);
        out.split_once("NOTES:")
            .expect("helm prints the notes")
            .1
            .to_owned()
    };
    let default = notes(&[]);
    for needle in [
        "port-forward svc/eval-eval-cluster-coordinator 8080:8080",
        "/v1/leaderboard",
        "/openapi.json",
        "create secret generic eval-cluster",
        "consumer-timeout",
        "{\"grafana_dashboard\":\"1\"}",
        "metrics.serviceMonitor.enabled=true",
    ] {
        assert!(
            default.contains(needle),
            "`{needle}` not in the notes:\n{default}"
        );
    }
    let production = notes(&[PRODUCTION_VALUES]);
    for needle in [
        "https://eval.validator.example/",
        "KEDA scales eval-eval-cluster-worker between 0 and 8",
        "The hook Job sets policy \"eval-jobs\"",
        "{\"release\":\"kube-prometheus-stack\"}",
    ] {
        assert!(
            production.contains(needle),
            "`{needle}` not in the notes:\n{production}"
        );
    }
}
