//! The binaries' configuration layers, through the real command lines: a
//! TOML file, then `EVAL_*` environment variables, then flags.

use std::path::PathBuf;
use std::process::Command;

use tests::sandbox::binary;

fn effective(
    bin: &str,
    file: &std::path::Path,
    env: &[(&str, &str)],
    flags: &[&str],
) -> (bool, String) {
    let mut command = Command::new(binary(bin).unwrap());
    command
        .arg("config")
        .arg("--config")
        .arg(file)
        .args(flags)
        .env_clear();
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().unwrap();
    let text = String::from_utf8_lossy(if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    })
    .into_owned();
    (out.status.success(), text)
}

/// A config file `name` holding `text`, in a directory of its own.
fn config_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

/// `bin`'s effective config from a file `<bin>.toml` holding `text` alone (no
/// environment, no flags), checked to be accepted; with the file's directory
/// and path, for further layers.
fn accepted_config(bin: &str, text: &str) -> (tempfile::TempDir, PathBuf, String) {
    let (dir, file) = config_file(&format!("{bin}.toml"), text);
    let (ok, out) = effective(bin, &file, &[], &[]);
    assert!(ok, "{out}");
    (dir, file, out)
}

#[test]
fn file_then_environment_then_flags() {
    let (dir, file, out) = accepted_config(
        "coordinator",
        "netuid = 5\nqueue = \"q.file\"\nversion_key = 3\n",
    );
    assert!(
        out.contains("netuid: 5") && out.contains("\"q.file\"") && out.contains("version_key: 3"),
        "{out}"
    );

    let (ok, out) = effective("coordinator", &file, &[("EVAL_NETUID", "7")], &[]);
    assert!(
        ok && out.contains("netuid: 7") && out.contains("\"q.file\""),
        "{out}"
    );

    let (ok, out) = effective(
        "coordinator",
        &file,
        &[("EVAL_NETUID", "7")],
        &["--netuid", "9"],
    );
    assert!(ok && out.contains("netuid: 9"), "{out}");

    let worker_file = dir.path().join("worker.toml");
    std::fs::write(&worker_file, "name = \"from-file\"\nlease = \"10m\"\n").unwrap();
    let (ok, out) = effective(
        "worker",
        &worker_file,
        &[("EVAL_WORKER_NAME", "from-env")],
        &[],
    );
    assert!(
        ok && out.contains("\"from-env\"") && out.contains("lease: 600s"),
        "{out}"
    );
}

#[test]
fn bad_settings_fail_at_start_naming_the_setting() {
    let (_dir, file) = config_file("coordinator.toml", "netuid = 5\ntemprature = 0.1\n");
    let (ok, out) = effective("coordinator", &file, &[], &[]);
    assert!(!ok && out.contains("temprature"), "{out}");

    std::fs::write(&file, "netuid = 5\n").unwrap();
    let (ok, out) = effective("coordinator", &file, &[("EVAL_BURN_FRACTION", "0.5")], &[]);
    assert!(!ok && out.contains("burn_uid"), "{out}");
    let (ok, out) = effective("coordinator", &file, &[], &["--redis-url", "localhost"]);
    assert!(!ok && out.contains("redis_url"), "{out}");
}

#[test]
fn secrets_never_appear_in_the_printed_config() {
    let (_dir, _, out) = accepted_config(
        "worker",
        "amqp_url = \"amqp://eval:hunter2@rabbit:5672/%2f\"\n",
    );
    assert!(!out.contains("hunter2"), "the password leaked: {out}");
}
