//! Embeds the dashboard (`docs/dashboard.md` §1): every file under `assets/dashboard/` is
//! compiled into the binary with a gzip twin made here, at build time, so the core's runtime
//! code never touches a file or compresses anything.
//!
//! Assets are served under `/dashboard/assets/<build id>/…`, where the build id is a hash of
//! every asset's path and bytes. Any change to any asset changes every asset URL, which is
//! what makes `cache-control: immutable` safe, and keeps relative `import` specifiers between
//! the ES modules working without rewriting them. `index.html` is the only file that names
//! the build id; it is rendered here with the id substituted.

#![allow(
    clippy::disallowed_methods,
    reason = "a build script runs at compile time: reading the assets and writing the generated table is its job; core/clippy.toml bans files for the daemon's runtime code"
)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

const ROOT: &str = "assets/dashboard";
const PAGE: &str = "index.html";
const ID_PLACEHOLDER: &str = "__ASSETS__";

fn main() {
    println!("cargo:rerun-if-changed={ROOT}");
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env("OUT_DIR"));
    let root = manifest.join(ROOT);
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();

    let mut hasher = Sha256::new();
    for rel in &files {
        let bytes = read(&root.join(rel));
        hasher.update(rel.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    let digest = hasher.finalize();
    let build_id: String = digest[..6].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });

    let gz_dir = out.join("dashboard-gz");
    std::fs::create_dir_all(&gz_dir).unwrap_or_else(|e| panic!("{}: {e}", gz_dir.display()));
    let mut table = String::new();
    let _ = writeln!(
        table,
        "/// Hash of every asset: the directory name of asset URLs."
    );
    let _ = writeln!(table, "pub const BUILD_ID: &str = {build_id:?};");
    let _ = writeln!(table, "/// The page, rendered with [`BUILD_ID`].");
    let _ = writeln!(table, "pub static PAGE: Asset = {};", {
        let raw = String::from_utf8(read(&root.join(PAGE)))
            .unwrap_or_else(|e| panic!("{PAGE} is not UTF-8: {e}"))
            .replace(ID_PLACEHOLDER, &build_id);
        let page_path = out.join("index.html");
        write_file(&page_path, raw.as_bytes());
        entry(PAGE, &page_path, &gz_dir)
    });
    let _ = writeln!(table, "/// Every other asset, sorted by path.");
    let _ = writeln!(table, "pub static ASSETS: &[Asset] = &[");
    for rel in files.iter().filter(|r| r.as_str() != PAGE) {
        let _ = writeln!(table, "    {},", entry(rel, &root.join(rel), &gz_dir));
    }
    let _ = writeln!(table, "];");
    write_file(&out.join("dashboard_assets.rs"), table.as_bytes());
}

/// One `Asset { .. }` literal; the gzip twin is written next to the others.
fn entry(rel: &str, src: &Path, gz_dir: &Path) -> String {
    let bytes = read(src);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&bytes)
        .unwrap_or_else(|e| panic!("gzip {rel}: {e}"));
    let gz = enc.finish().unwrap_or_else(|e| panic!("gzip {rel}: {e}"));
    let gz_path = gz_dir.join(format!("{}.gz", rel.replace('/', "__")));
    write_file(&gz_path, &gz);
    format!(
        "Asset {{ path: {rel:?}, content_type: {ct:?}, raw: include_bytes!({src:?}), gzip: include_bytes!({gz:?}) }}",
        ct = content_type(rel),
        src = src.display().to_string(),
        gz = gz_path.display().to_string(),
    )
}

fn content_type(rel: &str) -> &'static str {
    match rel.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "text/plain; charset=utf-8",
    }
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            walk(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            files.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

// A build script learns its directories from Cargo's environment; there is no CLI here.
#[allow(clippy::disallowed_methods)]
fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}
