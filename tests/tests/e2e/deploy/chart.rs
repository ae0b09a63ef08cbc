//! The Helm chart (`helm/eval-cluster/`): lint, the rendered objects with the
//! default and the production-like values (validated offline, then asserted
//! field by field), the rendered config files accepted by the binaries, the
//! values schema and the install notes.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tests::sandbox::binary;
use tests::tools::{tool, tools_dir};

use super::dashboards::dashboards;
use super::{CHART, PRODUCTION_VALUES, run, run_ok};

const KUBERNETES_VERSION: &str = "1.33.0";

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
pub(super) struct Rendered {
    yaml: String,
    objects: Vec<Value>,
}

impl Rendered {
    pub(super) fn new(values: &[&str]) -> Self {
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

    pub(super) fn one(&self, kind: &str, name: &str) -> &Value {
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

/// The element of a JSON list whose `name` is `name`.
fn named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array().unwrap().iter().find(|v| v["name"] == name)
}

fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    named(&deployment["spec"]["template"]["spec"]["containers"], name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env<'a>(container: &'a Value, name: &str) -> &'a Value {
    named(&container["env"], name).unwrap_or_else(|| panic!("no env {name} in {container:#}"))
}

fn volume<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    named(&deployment["spec"]["template"]["spec"]["volumes"], name)
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
    for (var, secret, key) in [
        ("EVAL_AMQP_URL", "eval-cluster", "amqp-url"),
        ("EVAL_REDIS_URL", "eval-cluster", "redis-url"),
    ] {
        assert_eq!(secret_ref(c, var), (secret.into(), key.into()), "{var}");
    }
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
        [
            "PrometheusRule",
            "ScaledObject",
            "ServiceMonitor",
            "TriggerAuthentication"
        ]
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
    for (path, secret, key) in [
        ("hotkey", "validator-hotkey", "hotkey.json"),
        ("operator-token", "validator", "operator-token"),
    ] {
        assert_eq!(
            projected_item(secrets, path),
            (secret.into(), key.into()),
            "{path}"
        );
    }
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
