//! `db backup` (`control.md` §3.6): every refusal with its exact message, parent directory
//! creation, and a snapshot taken while the writer thread commits in a loop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/helpers.rs"]
mod helpers;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agent_cli_proxy_storage::{
    BackupError, DbPath, Op, Readers, Reply, Store, Writer, WriterConfig, backup,
};
use futures_lite::future::block_on;
use helpers::*;

fn rows(store: &Store) -> i64 {
    count(store, "SELECT COUNT(*) FROM request_logs")
}

#[test]
fn in_memory_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = backup(&DbPath::from_config(":memory:"), &dir.path().join("b.db")).unwrap_err();
    assert!(matches!(err, BackupError::InMemory));
    assert_eq!(err.to_string(), "cannot back up in-memory database");
}

#[test]
fn missing_database_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nope.db");
    let err = backup(&DbPath::File(db.clone()), &dir.path().join("b.db")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("database does not exist: {}", db.display())
    );
    assert!(!db.exists(), "the refusal must not create the database");
}

#[test]
fn output_resolving_to_the_database_is_refused() {
    let (dir, path) = temp_db();
    drop(migrated(&path));
    let db = path.file().unwrap().to_path_buf();
    // The same file reached through `sub/..`, and through a symlink.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let dotted = dir.path().join("sub").join("..").join("acp.db");
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&db, &link).unwrap();
    for output in [db.clone(), dotted, link] {
        let err = backup(&path, &output).unwrap_err();
        assert!(matches!(err, BackupError::SameAsDatabase), "{output:?}");
        assert_eq!(err.to_string(), "backup output must differ from DB_PATH");
    }
}

#[test]
fn existing_output_is_refused_with_its_absolute_path() {
    let (dir, path) = temp_db();
    drop(migrated(&path));
    let output = dir.path().join("taken.db");
    std::fs::write(&output, b"keep me").unwrap();
    let err = backup(&path, &output).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("backup output already exists: {}", output.display())
    );
    assert_eq!(std::fs::read(&output).unwrap(), b"keep me");

    // A relative output is reported absolute.
    let cwd = std::env::current_dir().unwrap();
    let relative = PathBuf::from(format!("acp-backup-test-{}.db", std::process::id()));
    std::fs::write(&relative, b"x").unwrap();
    let err = backup(&path, &relative).unwrap_err();
    std::fs::remove_file(&relative).unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "backup output already exists: {}",
            cwd.join(&relative).display()
        )
    );
}

#[test]
fn backup_creates_parent_directories_and_leaves_no_temporary_file() {
    let (dir, path) = temp_db();
    let mut store = migrated(&path);
    for i in 0..5 {
        store
            .execute(Op::PreLog(Box::new(prelog(
                "anthropic",
                "m",
                &format!("2026-05-04T10:00:0{i}.000Z"),
            ))))
            .unwrap();
    }
    let output = dir.path().join("a").join("b").join("c").join("backup.db");
    let report = backup(&path, &output).unwrap();
    assert_eq!(report.path, output);
    assert_eq!(
        report.source_path,
        path.file().unwrap().canonicalize().unwrap()
    );
    assert_eq!(report.size, std::fs::metadata(&output).unwrap().len());
    assert!(report.size > 0);
    let leftovers: Vec<_> = std::fs::read_dir(output.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("backup.db")]);
    let copy = Store::open_read_only(&DbPath::File(output)).unwrap();
    copy.assert_schema().unwrap();
    assert_eq!(copy.integrity_check().unwrap(), "ok");
    assert_eq!(rows(&copy), 5);
}

#[test]
fn backup_taken_while_the_writer_commits_is_consistent() {
    let (dir, path) = temp_db();
    let (handle, join) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let handle = handle.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let at = format!("2026-05-04T10:{:02}:{:02}.000Z", n / 60 % 60, n % 60);
                let Reply::RowId(id) =
                    block_on(handle.send(Op::PreLog(Box::new(prelog("anthropic", "m", &at)))))
                        .unwrap()
                else {
                    panic!("prelog reply");
                };
                let reply =
                    block_on(handle.send(Op::Finalize(Box::new(finalize(id, tokens(10, 5), 2)))))
                        .unwrap();
                assert_eq!(reply, Reply::Finalized(true));
            }
            n
        })
    };
    let readers = Readers::new(path.clone(), Default::default());
    // Let the producer get going so the snapshot races real commits.
    while readers.with(|s| Ok(rows(s))).unwrap() < 50 {
        std::thread::yield_now();
    }
    let before = readers.with(|s| Ok(rows(s))).unwrap();
    let output = dir.path().join("live").join("backup.db");
    let report = backup(&path, &output).unwrap();
    let after = readers.with(|s| Ok(rows(s))).unwrap();
    stop.store(true, Ordering::Relaxed);
    let written = producer.join().unwrap();
    block_on(handle.shutdown()).unwrap();
    join.join().unwrap();

    let copy = Store::open_read_only(&DbPath::File(report.path)).unwrap();
    assert_eq!(copy.integrity_check().unwrap(), "ok");
    copy.assert_schema().unwrap();
    let copied = rows(&copy);
    println!("rows before {before}, in backup {copied}, after {after}");
    assert!(
        (before..=after).contains(&copied),
        "backup holds {copied} rows, outside {before}..={after}"
    );
    // A snapshot is transactional: every copied finalized row has its bucket and audit.
    assert_aggregate(&copy);
    assert!(written as i64 >= after);
}
