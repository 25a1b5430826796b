//! CI-10: every committed fuzz corpus file replays through the fuzz body of its target, so a
//! regression found by the fuzzer is caught by `cargo test` without a fuzzer.
use std::path::{Path, PathBuf};

use agent_cli_proxy_core::fuzzing::TARGETS;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

#[test]
fn every_target_has_a_corpus_directory() {
    for (name, _) in TARGETS {
        assert!(
            corpus_dir().join(name).is_dir(),
            "fuzz/corpus/{name} is missing"
        );
    }
}

#[test]
fn corpus_replays_without_oracle_failures() {
    let mut replayed = 0usize;
    for (name, body) in TARGETS {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join(name))
            .expect("corpus dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().is_some_and(|n| n != ".keep"))
            .collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).expect("read corpus file");
            let result = std::panic::catch_unwind(|| body(&data));
            assert!(result.is_ok(), "{name}: {} failed", file.display());
            replayed += 1;
        }
    }
    println!("replayed {replayed} corpus inputs");
}
