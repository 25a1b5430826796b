//! Records the git commit the binary was built from, for `--version`.
//!
//! Order: `ACP_GIT_COMMIT` from the environment (set by `scripts/package.sh` and the release
//! workflow, and the only source when building from an unpacked source tarball), else
//! `git rev-parse`, else `unknown`. Rebuilt when HEAD moves, so the commit never goes stale.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=ACP_GIT_COMMIT");
    for name in ["HEAD", "logs/HEAD"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("ACP_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ACP_GIT_COMMIT={commit}");
}
