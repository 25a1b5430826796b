//! A throw-away PostgreSQL server for the tests (`docs/replicas.md` §8): `initdb` into a
//! temporary directory, `pg_ctl start` on a free loopback port with trust authentication,
//! and `pg_ctl stop -m immediate` in `Drop`, which also runs when the test panics.
//!
//! Without the server binaries the test fails with how to install them; it is never
//! skipped. The binaries are found through `PG_BIN`, then `PATH`, then Debian's
//! `/usr/lib/postgresql/<version>/bin` (newest first).
//!
//! PostgreSQL refuses to run as root. When the tests run as root (CI, containers) the server
//! runs as the `postgres` system user that the Debian package creates; the temporary
//! directory is handed to that user, and the child processes switch to it through
//! `std::os::unix::process::CommandExt` (no `sudo`/`runuser` needed).
//!
//! One file for every suite that needs a server: it is a module of the black-box tests
//! crate's support, and `storage-pg`'s tests compile it through `#[path]`, so it uses only
//! crates both packages have (`postgres`, `tempfile`, `rcgen`).
// Each including suite uses a different part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const INSTALL_HINT: &str = "install postgresql (apt-get install postgresql), or set PG_BIN to \
                            the directory holding initdb and pg_ctl";

/// A running server; stopped and deleted when dropped.
pub struct TestPg {
    dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    user: Option<(u32, u32)>,
    /// Extra server options (TLS).
    extra: String,
}

impl TestPg {
    /// Starts a fresh server, or panics saying why (missing binaries: how to install them).
    pub fn start() -> TestPg {
        TestPg::start_inner(false)
    }

    /// Starts a server that also accepts TLS, with a certificate for `127.0.0.1` issued by a
    /// throw-away CA whose PEM is at [`ca_path`](Self::ca_path).
    pub fn start_with_tls() -> TestPg {
        TestPg::start_inner(true)
    }

    /// The test CA's certificate (PEM), for `sslrootcert`.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn start_inner(tls: bool) -> TestPg {
        let bin = find_bin().unwrap_or_else(|| {
            panic!("PostgreSQL server binaries (initdb, pg_ctl) not found: {INSTALL_HINT}")
        });
        let user = server_user();
        let dir = tempfile::Builder::new()
            .prefix("acp-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temporary directory: {e}"));
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", dir.path().display()));
        }
        let data = dir.path().join("data");
        let mut pg = TestPg {
            dir,
            data,
            bin,
            port: 0,
            user,
            extra: String::new(),
        };
        if tls {
            pg.extra = pg.write_certificates();
        }
        let out = pg.run(
            "initdb",
            &[
                "-D".as_ref(),
                pg.data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        assert!(out.status.success(), "initdb failed: {}", describe(&out));
        // A port found free may be taken before the server binds it: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = free_port();
            match pg.pg_ctl_start() {
                Ok(()) => return pg,
                Err(e) => last = e,
            }
        }
        pg.port = 0;
        panic!("pg_ctl start failed: {last}");
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let opts = format!(
            "-k {} -p {} -h 127.0.0.1 -F -c max_connections=40 -c shared_buffers=16MB{}",
            self.dir.path().display(),
            self.port,
            self.extra
        );
        let log = self.dir.path().join("server.log");
        let out = self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-o".as_ref(),
                opts.as_ref(),
                "start".as_ref(),
            ],
        );
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{}\n{}",
            describe(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        ))
    }

    /// Stops the server (an outage); [`restart`](Self::restart) brings it back on the same
    /// port with the same data.
    pub fn stop(&self) {
        let out = self.pg_ctl_stop("fast");
        assert!(out.status.success(), "pg_ctl stop: {}", describe(&out));
    }

    /// Starts the stopped server again.
    pub fn restart(&self) {
        self.pg_ctl_start()
            .unwrap_or_else(|e| panic!("pg_ctl start again: {e}"));
    }

    fn pg_ctl_stop(&self, mode: &str) -> Output {
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                self.data.as_os_str(),
                "-m".as_ref(),
                mode.as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )
    }

    /// Writes the CA, the server certificate and its key (readable by the server's user
    /// only, as PostgreSQL demands); returns the server options that use them.
    fn write_certificates(&self) -> String {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("CA: {e}"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "agent-cli-proxy test CA");
        let ca = ca_params
            .self_signed(&ca_key)
            .unwrap_or_else(|e| panic!("CA: {e}"));
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("server key: {e}"));
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .and_then(|p| p.signed_by(&key, &ca, &ca_key))
            .unwrap_or_else(|e| panic!("server certificate: {e}"));
        let dir = self.dir.path();
        let write = |name: &str, text: &str, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {name}: {e}"));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod {name}: {e}"));
            if let Some((uid, gid)) = self.user {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("chown {name}: {e}"));
            }
            path
        };
        write("ca.pem", &ca.pem(), 0o644);
        let cert_path = write("server.pem", &cert.pem(), 0o644);
        let key_path = write("server.key", &key.serialize_pem(), 0o600);
        format!(
            " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert_path.display(),
            key_path.display()
        )
    }

    /// `postgres://` URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// `postgres://` URL of database `name`.
    pub fn url_for(&self, name: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{name}?sslmode=disable",
            self.port
        )
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        let mut client = postgres::Client::connect(&self.url(), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to the test server: {e}"));
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        self.url_for(name)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Output {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.args(args).current_dir(self.dir.path());
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        cmd.output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin.join(tool).display()))
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        if self.port == 0 {
            return;
        }
        // Already stopped by the test is fine; anything else is worth a line in its output.
        let out = self.pg_ctl_stop("immediate");
        if !out.status.success() && self.data.join("postmaster.pid").exists() {
            eprintln!("pg_ctl stop failed: {}", describe(&out));
        }
    }
}

fn describe(out: &Output) -> String {
    format!(
        "{} {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// The `postgres` user's uid and gid when running as root; `None` otherwise.
fn server_user() -> Option<(u32, u32)> {
    let euid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if euid != 0 {
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    match (id("-u"), id("-g")) {
        (Some(uid), Some(gid)) => Some((uid, gid)),
        _ => panic!(
            "running as root, and PostgreSQL refuses root: no `postgres` user to run it as; \
             {INSTALL_HINT} (the package creates the user)"
        ),
    }
}

fn find_bin() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        return has(&dir).then_some(dir);
    }
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|d| has(d))
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}
