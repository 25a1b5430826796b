//! `scripts/package.sh` and `scripts/install.sh` end to end, in a temporary HOME: the tarball
//! made from this build's binary installs into a temporary prefix, leaves a working binary,
//! an env file and a service unit that `systemd-analyze verify` accepts; a second run
//! changes no file.
//!
//! Needs `bash`, `tar`, `gzip`, `sha256sum` and `systemd-analyze` (Debian: `apt-get install
//! systemd`); a missing one fails the test with that hint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn require(tool: &str, package: &str) -> PathBuf {
    which(tool).unwrap_or_else(|| {
        panic!("{tool} is needed for the install test: apt-get install -y {package}")
    })
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file under `dir` with its bytes, so two snapshots compare contents.
fn snapshot(dir: &Path, into: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            snapshot(&path, into);
        } else {
            into.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
}

#[test]
fn package_then_install_twice_into_a_temporary_home() {
    for (tool, package) in [
        ("bash", "bash"),
        ("tar", "tar"),
        ("gzip", "gzip"),
        ("sha256sum", "coreutils"),
    ] {
        require(tool, package);
    }
    let analyze = require("systemd-analyze", "systemd");
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_agent-cli-proxy"));
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let dist = tmp.path().join("dist");
    let prefix = tmp.path().join("prefix/bin");
    std::fs::create_dir_all(&home).unwrap();
    let env = |c: &mut Command| {
        c.env_clear()
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // No user manager to reach: the script must say so instead of failing.
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
            .env("XDG_RUNTIME_DIR", tmp.path().join("no-runtime"));
    };

    // The tarball: binaries, README, LICENSE, install.sh and their sums.
    let mut package = Command::new(root().join("scripts/package.sh"));
    package.args([
        "--bin",
        exe.to_str().unwrap(),
        "--out",
        dist.to_str().unwrap(),
    ]);
    env(&mut package);
    let out = run(&mut package);
    let tarball = PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap(),
    );
    let name = tarball.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with(&format!("agent-cli-proxy-{}-", env!("CARGO_PKG_VERSION"))),
        "{name}"
    );
    let listing = run(Command::new("tar").args(["-tzf", tarball.to_str().unwrap()]));
    let listing = String::from_utf8_lossy(&listing.stdout);
    let dir = name.trim_end_matches(".tar.gz");
    for file in [
        "bin/agent-cli-proxy",
        "README.md",
        "LICENSE",
        "install.sh",
        "SHA256SUMS",
    ] {
        assert!(
            listing.lines().any(|l| l == format!("{dir}/{file}")),
            "{file} in {listing}"
        );
    }
    let sums = run(Command::new("sha256sum")
        .arg("-c")
        .arg(format!("{name}.sha256"))
        .current_dir(&dist));
    assert!(String::from_utf8_lossy(&sums.stdout).contains(": OK"));

    // Install from the tarball, direct mode, on a port of our choosing.
    let install = || {
        let mut c = Command::new(root().join("scripts/install.sh"));
        c.args([
            "--from-tarball",
            tarball.to_str().unwrap(),
            "--prefix",
            prefix.to_str().unwrap(),
            "--",
            "--direct",
            "--port",
            "3917",
        ]);
        env(&mut c);
        run(&mut c)
    };
    let first = install();
    let said = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(said.contains("no systemd user manager here"), "{said}");

    let bin = prefix.join("agent-cli-proxy");
    let version = run(Command::new(&bin).arg("--version"));
    let version = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.starts_with(&format!(
            "agent-cli-proxy {} (commit ",
            env!("CARGO_PKG_VERSION")
        )) && version.trim_end().ends_with(", tokio build)"),
        "{version}"
    );
    let env_file = home.join(".config/agent-cli-proxy/.env");
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert!(
        text.contains("PROXY_PORT=3917\n") && text.contains("CLI_PROXY_API_URL=\n"),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let unit = home.join(".config/systemd/user/agent-cli-proxy.service");
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        unit_text.contains(&format!(
            "ExecStart={} serve --env {}\n",
            bin.display(),
            env_file.display()
        )),
        "{unit_text}"
    );
    let verify = Command::new(&analyze)
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr);
    // Complaints about this machine (no systemd running) are not about the unit; any line
    // naming the unit is.
    let ours: Vec<&str> = complaints
        .lines()
        .filter(|l| l.contains("agent-cli-proxy.service"))
        .collect();
    assert!(ours.is_empty(), "systemd-analyze verify: {complaints}");
    // The installed binary accepts the configuration it was given.
    let mut doctor = Command::new(&bin);
    doctor.args(["doctor", "--json"]);
    env(&mut doctor);
    let doctor = run(&mut doctor);
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert_eq!(report["status"], "PASS", "{report:#}");

    // A second run changes nothing.
    let mut before = BTreeMap::new();
    snapshot(&home, &mut before);
    snapshot(&prefix, &mut before);
    let second = install();
    let said = String::from_utf8_lossy(&second.stdout).into_owned();
    assert!(said.contains("is already this version"), "{said}");
    assert!(
        said.contains("keeping the existing configuration"),
        "{said}"
    );
    let mut after = BTreeMap::new();
    snapshot(&home, &mut after);
    snapshot(&prefix, &mut after);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "same files"
    );
    for (path, bytes) in &before {
        assert!(after[path] == *bytes, "{} changed", path.display());
    }
}
