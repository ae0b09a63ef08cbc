//! A cluster sandbox for cross-process tests: a private RabbitMQ queue and
//! Redis prefix on the local servers, generated tiny models on disk, and real
//! `worker run` processes started from the workspace's own binary.
//!
//! - [`Sandbox`]: one test's queue (random suffix), store prefix, models
//!   directory and profile files; [`Sandbox::cleanup`] deletes the queues and
//!   keys.
//! - [`Process`]: a child process of a workspace binary (`worker run`,
//!   `coordinator run`, …) logging JSON to a file, with SIGKILL / SIGTERM and
//!   a reader of its log events.
//! - [`eventually`]: polls a condition until a deadline (no fixed sleeps).
//! - [`redis_client_ports`]: the local ports of a process's connections to
//!   Redis, so a test can `CLIENT KILL` exactly that process's connections.
//! - [`shared_servers`] / [`exclusive_servers`]: the local RabbitMQ and Redis
//!   are shared by the tests of one binary; the tests that restart them or
//!   change their settings hold them alone.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::job::{JobId, JobMessage, JobOrigin, JobStatus, ModelRef};
use common::queue::{RabbitConfig, RabbitQueue};
use common::scoring::{JudgeSettings, ScoringProfile};
use common::store::{JobRecord, RedisConfig, RedisStore, ResultStore};
use common::testsuite::unique_name;
use coordinator::reconcile::{ReconcileReport, ReconcileSettings, Reconciler};
use serde_json::Value;
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::time::Instant;

/// The local RabbitMQ and Redis, as the tests of one binary share them.
static SERVERS: RwLock<()> = RwLock::const_new(());

/// Shared use of the local RabbitMQ and Redis: every test that talks to them
/// holds this for as long as it does, so that no test restarts them meanwhile.
pub async fn shared_servers() -> RwLockReadGuard<'static, ()> {
    SERVERS.read().await
}

/// Exclusive use of the local RabbitMQ and Redis, for a test that restarts
/// them or changes their settings. Such a test has `restart` in its name, so
/// that `-- --skip restart` leaves the servers alone on a shared machine.
pub async fn exclusive_servers() -> RwLockWriteGuard<'static, ()> {
    SERVERS.write().await
}

/// Logs of the code under test (not lapin's chatter) in the test's output.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,lapin=warn")
        .with_test_writer()
        .try_init();
}

/// `AMQP_URL`, or the local broker.
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// `REDIS_URL`, or the local server.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// The `worker` binary next to this test executable.
pub fn worker_binary() -> Result<PathBuf> {
    binary("worker")
}

/// A workspace binary of the same build as this executable: a test
/// (`target/<profile>/deps/<test>`) or a binary (`target/<profile>/<bin>`)
/// finds it at `target/<profile>/<name>`.
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let dir = exe
        .parent()
        .with_context(|| format!("{} has no parent directory", exe.display()))?;
    let profile_dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let binary = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    ensure!(
        binary.is_file(),
        "the {name} binary is missing at {}: build it first with `cargo build -p {name}` \
         (`cargo test --workspace` builds it)",
        binary.display()
    );
    Ok(binary)
}

/// Polls `check` every 100 ms until it returns `Some`, failing with `what`
/// after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One test's slice of the cluster. Drop does not clean up (it cannot
/// await): call [`Sandbox::cleanup`] at the end of the test.
#[derive(Debug)]
pub struct Sandbox {
    pub name: String,
    pub rabbit: RabbitConfig,
    pub redis: RedisConfig,
    /// The test's own connection, acting as the coordinator.
    pub queue: RabbitQueue,
    pub store: RedisStore,
    pub dir: TempDir,
}

impl Sandbox {
    pub async fn new(test: &str) -> Result<Self> {
        let name = unique_name(test);
        let rabbit = RabbitConfig {
            operation_timeout: Duration::from_secs(120),
            ..RabbitConfig::for_queue(amqp_url(), &name, format!("{test}-publisher"))
        };
        let redis = RedisConfig::for_prefix(redis_url(), name.clone());
        let queue = RabbitQueue::connect(rabbit.clone())
            .await
            .context("RabbitMQ on 127.0.0.1:5672 (start it with `rabbitmq-server -detached`)")?;
        let store = RedisStore::connect(redis.clone())
            .await
            .context("Redis on 127.0.0.1:6379")?;
        let dir = tempfile::Builder::new().prefix("faults-").tempdir()?;
        std::fs::create_dir_all(dir.path().join("models"))?;
        Ok(Self {
            name,
            rabbit,
            redis,
            queue,
            store,
            dir,
        })
    }

    pub fn models_dir(&self) -> PathBuf {
        self.dir.path().join("models")
    }

    /// Writes a generated tiny model at `<models>/<namespace>/<name>/` and
    /// returns its reference.
    pub async fn tiny_model(&self, namespace: &str, name: &str, seed: u64) -> Result<ModelRef> {
        let dir = self.models_dir().join(namespace).join(name);
        let spec = worker::fixtures::TinyModelSpec::with_seed(seed);
        tokio::task::spawn_blocking(move || worker::fixtures::write_tiny_model(&dir, &spec))
            .await??;
        Ok(ModelRef {
            namespace: namespace.into(),
            name: name.into(),
            revision: "main".into(),
            chat_template: "chatml".into(),
        })
    }

    /// Writes a profile `v1` file whose evaluations score `samples`
    /// conversations of a dataset of `samples` conversations (the built-in
    /// set, repeated), and returns `(profile, dataset)` paths. About 8 ms
    /// per sample on the tiny model.
    pub fn slow_profile(&self, label: &str, samples: usize) -> Result<(PathBuf, PathBuf)> {
        Ok(self.profile_files(label, samples, None)?.1)
    }

    /// [`Self::slow_profile`], and with `judge` a v2 profile (v2's weights)
    /// judging the one vibe sample; returns the profile with its files.
    pub fn profile_files(
        &self,
        label: &str,
        samples: usize,
        judge: Option<JudgeSettings>,
    ) -> Result<(ScoringProfile, (PathBuf, PathBuf))> {
        let mut profile = ScoringProfile {
            similarity_samples: samples,
            vibe_samples: 1,
            ..ScoringProfile::v1()
        };
        if let Some(judge) = judge {
            let v2 = ScoringProfile::v2();
            profile.version = v2.version;
            profile.weights = v2.weights;
            profile.judge = Some(judge);
        }
        profile.validate().map_err(anyhow::Error::msg)?;
        let profile_path = self.dir.path().join(format!("{label}.profile.toml"));
        std::fs::write(&profile_path, toml::to_string(&profile)?)?;
        let builtin: Vec<&str> = worker::dataset::BUILTIN
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        let dataset: String = builtin
            .iter()
            .cycle()
            .take(samples.max(1))
            .map(|line| format!("{line}\n"))
            .collect();
        let dataset_path = self.dir.path().join(format!("{label}.dataset.jsonl"));
        std::fs::write(&dataset_path, dataset)?;
        Ok((profile, (profile_path, dataset_path)))
    }

    /// Acts as the coordinator: records the job as QUEUED and publishes it.
    pub async fn submit(&self, model: ModelRef) -> Result<JobId> {
        let message = JobMessage::v1(
            model,
            "v1",
            JobOrigin::Operator {
                requested_by: "faults-test".into(),
            },
            common::clock::now_ms(),
        );
        self.store.enqueue(message.job()).await?;
        // Published as the coordinator does, so its reconciler sees the
        // message as outstanding and sends no second one.
        let mut report = ReconcileReport::default();
        self.reconciler()
            .publish_if_needed(message.id(), &mut report)
            .await?;
        // A reconciler the test runs beside may have published it first.
        let record = self.record(message.id()).await?;
        ensure!(
            record.published_at_ms.is_some(),
            "job {} was not published: {report:?}",
            message.id()
        );
        Ok(message.id().clone())
    }

    /// A reconciler over this sandbox's queue and store.
    pub fn reconciler(&self) -> Reconciler {
        self.reconciler_with(ReconcileSettings::default())
    }

    /// [`Self::reconciler`] with `settings`.
    pub fn reconciler_with(&self, settings: ReconcileSettings) -> Reconciler {
        Reconciler::new(
            std::sync::Arc::new(self.store.clone()),
            std::sync::Arc::new(self.queue.clone()),
            settings,
        )
    }

    pub async fn record(&self, id: &JobId) -> Result<JobRecord> {
        self.store
            .get(id)
            .await?
            .with_context(|| format!("no record of job {id}"))
    }

    /// Waits until `id` has a record that satisfies `accept`.
    pub async fn wait_record(
        &self,
        id: &JobId,
        what: &str,
        timeout: Duration,
        accept: impl Fn(&JobRecord) -> bool,
    ) -> Result<JobRecord> {
        eventually(what, timeout, || async {
            Ok(self.store.get(id).await?.filter(|r| accept(r)))
        })
        .await
    }

    /// Waits until `id` is final (`what` names the wait), whatever its outcome.
    pub async fn wait_final(&self, id: &JobId, what: &str, timeout: Duration) -> Result<JobRecord> {
        self.wait_record(id, what, timeout, |r| r.status.is_final())
            .await
    }

    /// Waits until `id` is final (`what` names the wait) and checks that it
    /// completed.
    pub async fn wait_completed(
        &self,
        id: &JobId,
        what: &str,
        timeout: Duration,
    ) -> Result<JobRecord> {
        let done = self.wait_final(id, what, timeout).await?;
        ensure!(
            done.status == JobStatus::Completed,
            "{what}: not completed: {done:?}"
        );
        Ok(done)
    }

    /// Starts `worker run` on this sandbox's queue and prefix.
    pub fn spawn_worker(&self, name: &str, extra: &[&str]) -> Result<WorkerProcess> {
        Process::spawn_worker(self, name, extra)
    }

    /// `--amqp-url`, `--redis-url`, `--redis-prefix` and `--queue` of this
    /// sandbox, as both binaries take them.
    pub fn connection_args(&self) -> Vec<std::ffi::OsString> {
        [
            "--amqp-url",
            self.rabbit.url.expose(),
            "--redis-url",
            self.redis.url.expose(),
            "--redis-prefix",
            &self.redis.prefix,
            "--queue",
            &self.rabbit.queue,
        ]
        .iter()
        .map(Into::into)
        .collect()
    }

    /// Deletes this sandbox's queues, exchange and keys.
    pub async fn cleanup(self) -> Result<()> {
        self.queue.delete_topology().await?;
        self.store.delete_everything().await?;
        Ok(())
    }
}

/// A child process of a workspace binary logging JSON to a file. Killed
/// (SIGKILL) on drop if still running.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    child: Child,
    log: PathBuf,
}

/// A `worker run` process.
pub type WorkerProcess = Process;

impl Process {
    /// Starts workspace binary `binary` with `args`, its stderr (where the
    /// logs go) in `<dir>/<name>.log`.
    pub fn spawn(
        dir: &Path,
        binary: &str,
        name: &str,
        args: &[std::ffi::OsString],
    ) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(self::binary(binary)?)
            .args(args)
            .env(
                "RUST_LOG",
                "info,mistralrs_core=warn,mistralrs=warn,candle_core=warn,lapin=warn",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the {binary} binary"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// `worker run` on the sandbox's queue and prefix, with models from its
    /// models directory unless `extra` names another source.
    fn spawn_worker(sandbox: &Sandbox, name: &str, extra: &[&str]) -> Result<Self> {
        let mut args: Vec<std::ffi::OsString> =
            vec!["--log-format".into(), "json".into(), "run".into()];
        args.extend(sandbox.connection_args());
        args.extend(["--name".into(), name.into()]);
        // Many workers run at once: each takes a free port (see `metrics_addr`).
        args.extend(["--metrics-listen".into(), "127.0.0.1:0".into()]);
        if !extra.iter().any(|a| a.starts_with("--hf-endpoint")) {
            args.extend(["--models-dir".into(), sandbox.models_dir().into()]);
        }
        args.extend(extra.iter().map(Into::into));
        Self::spawn(sandbox.dir.path(), "worker", name, &args)
    }

    pub fn pid(&self) -> Result<u32> {
        self.child
            .id()
            .with_context(|| format!("{} has exited", self.name))
    }

    /// SIGKILL, then reap.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// Sends SIGTERM (the graceful shutdown signal).
    pub async fn terminate(&self) -> Result<()> {
        self.signal("TERM").await
    }

    /// Sends the signal `name` (`TERM`, `USR1`, …).
    pub async fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid()?.to_string()])
            .status()
            .await?;
        ensure!(status.success(), "kill -{name} failed: {status}");
        Ok(())
    }

    /// Waits for the process to exit, up to `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .with_context(|| format!("{} still running after {timeout:?}", self.name))?
            .map_err(Into::into)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn stop(&mut self) -> Result<()> {
        self.terminate().await?;
        let status = self.wait_exit(Duration::from_secs(20)).await?;
        ensure!(status.success(), "{} exited with {status}", self.name);
        Ok(())
    }

    /// The process's log events so far (one JSON object per line; a partly
    /// written last line is skipped).
    pub fn events(&self) -> Vec<Value> {
        log_events(&self.log)
    }

    /// Log events with `message` about job `id` (from the job span).
    pub fn job_events(&self, id: &JobId, message: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e["message"] == message && e["span"]["job_id"] == id.as_str())
            .count()
    }

    /// Whether the log has an event with `message`.
    pub fn logged(&self, message: &str) -> bool {
        self.events().iter().any(|e| e["message"] == message)
    }

    /// Waits for the first log event with `message` and returns it.
    pub async fn wait_event(&self, message: &str, timeout: Duration) -> Result<Value> {
        eventually(
            &format!("{} to log `{message}`", self.name),
            timeout,
            || async { Ok(self.events().into_iter().find(|e| e["message"] == message)) },
        )
        .await
    }

    /// Waits until the worker consumes from its queue.
    pub async fn wait_consuming(&self) -> Result<()> {
        self.wait_event("consuming", Duration::from_secs(30))
            .await
            .map(drop)
    }

    /// The address the worker serves /metrics on, from its `metrics listening` log event.
    pub async fn metrics_addr(&self) -> Result<std::net::SocketAddr> {
        let event = self
            .wait_event("metrics listening", Duration::from_secs(30))
            .await?;
        event["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("{}: no address in {event}", self.name))
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

/// The JSON events of a log file, in order (lines that are not JSON left out).
pub fn log_events(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The `addr` of the first event with `message` in a JSON log file.
pub fn logged_addr(log: &Path, message: &str) -> Option<std::net::SocketAddr> {
    log_events(log)
        .into_iter()
        .find(|e| e["message"] == message)
        .and_then(|e| e["addr"].as_str()?.parse().ok())
}

/// Local TCP ports of `pid`'s established connections to `remote_port`
/// (Linux: socket inodes from `/proc/<pid>/fd` matched in `/proc/<pid>/net/tcp*`).
pub fn redis_client_ports(pid: u32, remote_port: u16) -> Result<Vec<u16>> {
    let mut inodes = std::collections::HashSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
        {
            inodes.insert(inode.to_owned());
        }
    }
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if fields.len() < 10 || fields[3] != "01" || !inodes.contains(fields[9]) {
                continue;
            }
            let port = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if port(fields[2]) == Some(remote_port)
                && let Some(local) = port(fields[1])
            {
                ports.push(local);
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// The port of [`redis_url`].
pub fn redis_port() -> u16 {
    redis_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').split('/').next()?.parse().ok())
        .unwrap_or(6379)
}

/// Runs `rabbitmqctl` with `args` against the local broker.
pub async fn rabbitmqctl(args: &[&str]) -> Result<()> {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .await
        .context("rabbitmqctl is installed")?;
    ensure!(status.success(), "rabbitmqctl {args:?} failed: {status}");
    Ok(())
}

/// Restarts the local broker's application (connections drop; queues and
/// persistent messages survive).
pub async fn restart_rabbitmq() -> Result<()> {
    rabbitmqctl(&["stop_app"]).await?;
    rabbitmqctl(&["start_app"]).await?;
    rabbitmqctl(&["await_startup"]).await
}

/// Stops the local Redis and starts it again with the command of docs/architecture.md §11
/// (no persistence configured). With `keep_data`, the data set is saved to
/// disk first and loaded again at start, like a restart of a persistent
/// server; without it the server comes back empty.
pub async fn restart_redis(keep_data: bool) -> Result<()> {
    let port = redis_port().to_string();
    let cli = |args: &[&str]| {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &port]).args(args);
        command
    };
    let dir = std::env::temp_dir().join("eval-test-redis");
    std::fs::create_dir_all(&dir)?;
    let dump = dir.join("dump.rdb");
    let _ = std::fs::remove_file(&dump);
    if keep_data {
        // Where the running server writes its snapshot (`dir` cannot be
        // changed at run time on Redis 7).
        let mut config = Vec::new();
        for key in ["dir", "dbfilename"] {
            let out = cli(&["config", "get", key])
                .output()
                .await
                .context("redis-cli is installed")?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let value = text.lines().nth(1).map(str::to_owned);
            config.push(value.with_context(|| format!("CONFIG GET {key}: {text}"))?);
        }
        let out = cli(&["save"]).output().await?;
        ensure!(
            String::from_utf8_lossy(&out.stdout).contains("OK"),
            "SAVE: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let saved = Path::new(&config[0]).join(&config[1]);
        if saved.canonicalize()? != dump.canonicalize().unwrap_or_default() {
            std::fs::copy(&saved, &dump).context("copying the snapshot")?;
        }
    }
    // The server closes the connection as it exits, so the status says nothing.
    let _ = cli(&["shutdown", "nosave"]).output().await?;
    let ping = || async {
        let out = cli(&["ping"]).output().await.ok();
        out.is_some_and(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
    };
    eventually("Redis to stop", Duration::from_secs(10), || async {
        Ok((!ping().await).then_some(()))
    })
    .await?;
    let status = Command::new("redis-server")
        .args([
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            &port,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .status()
        .await
        .context("redis-server is installed")?;
    ensure!(status.success(), "redis-server did not start: {status}");
    eventually("Redis to answer again", Duration::from_secs(30), || async {
        Ok(ping().await.then_some(()))
    })
    .await
}
