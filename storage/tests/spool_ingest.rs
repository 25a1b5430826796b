//! Ingestion of the spool (`docs/spool.md` §4): every record lands exactly once, in order,
//! across restarts and refusals; `Begin` and `End` in different batches still meet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/helpers.rs"]
mod helpers;

use std::sync::Arc;
use std::time::Duration;

use agent_cli_proxy_storage::ingest::IngestConfig;
use agent_cli_proxy_storage::spool::{Doorbell, Record, Spool, SpoolConfig};
use agent_cli_proxy_storage::{
    ConnOptions, DbPath, Op, Reply, Spooled, Store, Writer, WriterConfig,
};
use futures_lite::future::block_on;
use helpers::*;
use rusqlite::Connection;

fn spool_dir(path: &DbPath) -> std::path::PathBuf {
    let mut p = path.file().unwrap().as_os_str().to_owned();
    p.push(".spool");
    p.into()
}

fn start(path: &DbPath, batch: usize) -> Spooled {
    Writer::spawn_with_spool(
        path,
        WriterConfig {
            conn: ConnOptions {
                busy_timeout_ms: 20,
            },
            ..WriterConfig::default()
        },
        SpoolConfig::in_dir(spool_dir(path)),
        IngestConfig {
            batch,
            max_delay: Duration::from_millis(5),
        },
    )
    .unwrap()
}

fn call(i: usize) -> (Record, Record) {
    let started = format!("2026-05-04T10:00:{:02}.{:03}Z", i / 1000 % 60, i % 1000);
    let mut row = prelog("anthropic", "m", &started);
    row.request_id = format!("req-{i}");
    let begin = Record::Begin(Box::new(row));
    let end = Record::End {
        request_id: format!("req-{i}"),
        row: Box::new(finalize(0, tokens(10 + i as u64, 5), 3)),
    };
    (begin, end)
}

fn flush(s: &Spooled) -> (u64, u64) {
    match block_on(s.writer.send(Op::SpoolFlush)).unwrap() {
        Reply::Flushed { behind, lag_ms } => (behind, lag_ms),
        other => panic!("{other:?}"),
    }
}

fn stop(s: Spooled) {
    block_on(s.writer.shutdown()).unwrap();
    s.join.join().unwrap();
}

fn applied(store: &Store) -> i64 {
    count(store, "SELECT applied_seq FROM spool_position")
}

#[test]
fn spooled_calls_land_once_each_with_the_aggregate_kept() {
    let (_dir, path) = temp_db();
    let s = start(&path, 4_096);
    for i in 0..300 {
        let (b, e) = call(i);
        s.spool.append(&b).unwrap();
        s.spool.append(&e).unwrap();
    }
    assert_eq!(flush(&s), (0, 0));
    stop(s);
    let store = migrated(&path);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM request_logs"), 300);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'completed'"
        ),
        300
    );
    assert_eq!(applied(&store), 600);
    assert_aggregate(&store);
    // Ids follow spool order.
    let first: String = store
        .connection()
        .query_row(
            "SELECT request_id FROM request_logs ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(first, "req-0");
}

#[test]
fn begin_and_end_in_different_batches_meet_by_request_id() {
    let (_dir, path) = temp_db();
    let s = start(&path, 1);
    let (b, e) = call(1);
    s.spool.append(&b).unwrap();
    assert_eq!(flush(&s).0, 0);
    s.spool
        .append(&Record::Usage {
            request_id: "req-1".into(),
            tokens: tokens(4, 1),
        })
        .unwrap();
    s.spool.append(&e).unwrap();
    assert_eq!(flush(&s).0, 0);
    stop(s);
    // And across a restart: the in-flight map is gone, the indexed lookup finds the row.
    let s = start(&path, 1);
    let (b2, e2) = call(2);
    s.spool.append(&b2).unwrap();
    flush(&s);
    stop(s);
    let s = start(&path, 1);
    s.spool.append(&e2).unwrap();
    flush(&s);
    stop(s);
    let store = migrated(&path);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'completed'"
        ),
        2
    );
    assert_aggregate(&store);
}

#[test]
fn records_left_by_a_killed_process_are_applied_at_the_next_start_and_never_twice() {
    let (_dir, path) = temp_db();
    migrated(&path);
    // A process that spooled and died before its ingester ran.
    {
        let opened = Spool::open(
            SpoolConfig::in_dir(spool_dir(&path)),
            0,
            Arc::new(Doorbell::default()),
        )
        .unwrap();
        for i in 0..50 {
            let (b, e) = call(i);
            opened.spool.append(&b).unwrap();
            if i % 2 == 0 {
                opened.spool.append(&e).unwrap();
            }
        }
    }
    let s = start(&path, 7);
    assert_eq!(s.boot_ingested, 75);
    stop(s);
    let s = start(&path, 7);
    assert_eq!(s.boot_ingested, 0);
    stop(s);
    let store = migrated(&path);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM request_logs"), 50);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'pending'"
        ),
        25
    );
    assert_eq!(applied(&store), 75);
}

#[test]
fn a_locked_database_delays_ingestion_and_loses_nothing() {
    let (_dir, path) = temp_db();
    let s = start(&path, 16);
    let blocker = Connection::open(path.file().unwrap()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    for i in 0..40 {
        let (b, e) = call(i);
        s.spool.append(&b).unwrap();
        s.spool.append(&e).unwrap();
    }
    let (behind, _) = flush(&s);
    assert!(
        behind > 0,
        "the flush cannot reach the end while the lock is held"
    );
    std::thread::sleep(Duration::from_millis(300));
    blocker.execute_batch("COMMIT").unwrap();
    // The ingester retries on its own after the backoff.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.spool.stats().unapplied() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "ingestion never resumed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(s);
    let store = migrated(&path);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'completed'"
        ),
        40
    );
    assert_aggregate(&store);
}

#[test]
fn a_record_the_database_rejects_is_set_aside_and_the_rest_applied() {
    let (_dir, path) = temp_db();
    let s = start(&path, 64);
    // An End whose Begin never existed: no row to finalize.
    let (_, orphan) = call(99);
    let (b, e) = call(1);
    s.spool.append(&b).unwrap();
    s.spool.append(&orphan).unwrap();
    s.spool.append(&e).unwrap();
    assert_eq!(flush(&s).0, 0);
    assert_eq!(s.ingest.rejected(), 1);
    let copy = spool_dir(&path)
        .join("rejected")
        .join(format!("{:020}.rec", 2));
    assert!(copy.exists(), "{} missing", copy.display());
    stop(s);
    let store = migrated(&path);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'completed'"
        ),
        1
    );
}

/// The single `INSERT` of a `Begin`+`End` in one batch writes the same row, audit and bucket
/// as the pre-log, checkpoint and finalize it replaces (batches of one record take that
/// path).
#[test]
fn a_pair_in_one_batch_writes_what_insert_then_finalize_writes() {
    let dump = |batch: usize| {
        let (_dir, path) = temp_db();
        let s = start(&path, batch);
        for i in 0..3 {
            let (b, e) = call(i);
            s.spool.append(&b).unwrap();
            // A streamed call's checkpoint: applied when the batch splits the call, skipped
            // when its `End` is in the same batch (the `End` sets every token column).
            s.spool
                .append(&Record::Usage {
                    request_id: format!("req-{i}"),
                    tokens: tokens(7, 1),
                })
                .unwrap();
            s.spool.append(&e).unwrap();
        }
        assert_eq!(flush(&s).0, 0);
        stop(s);
        let store = migrated(&path);
        let conn = store.connection();
        let mut out = Vec::new();
        for sql in [
            "SELECT * FROM request_logs ORDER BY id",
            "SELECT request_log_id, model, provider, source, base_cost_usd, cost_nanousd FROM cost_audit ORDER BY id",
            "SELECT * FROM daily_usage ORDER BY day, provider, model",
        ] {
            let mut stmt = conn.prepare(sql).unwrap();
            let names: Vec<String> = stmt.column_names().iter().map(|n| n.to_string()).collect();
            let rows = stmt
                .query_map([], |r| {
                    let mut line = Vec::new();
                    for (k, name) in names.iter().enumerate() {
                        if name == "created_at" || name == "calc_at" {
                            continue;
                        }
                        let v: rusqlite::types::Value = r.get(k)?;
                        line.push(format!("{name}={v:?}"));
                    }
                    Ok(line.join(","))
                })
                .unwrap();
            for row in rows {
                out.push(row.unwrap());
            }
        }
        assert_aggregate(&store);
        out
    };
    let merged = dump(4_096);
    let split = dump(1);
    assert_eq!(merged, split);
    assert!(
        merged
            .iter()
            .any(|l| l.contains("lifecycle_status=Text(\"completed\")"))
    );
}

/// Appends racing the ingester's reads must never leave it asleep with records behind: with
/// no command to wake it, every record still lands (the bell is re-armed before each sleep,
/// `Ingester::rearm`). A stress check: the race it guards (an append between the ingester's
/// disarm and its read) is a few instructions wide, so this run does not hit it every time.
#[test]
fn records_appended_while_the_ingester_reads_are_never_left_behind() {
    let (_dir, path) = temp_db();
    let s = Writer::spawn_with_spool(
        &path,
        WriterConfig::default(),
        SpoolConfig::in_dir(spool_dir(&path)),
        IngestConfig {
            batch: 8,
            max_delay: Duration::from_millis(1),
        },
    )
    .unwrap();
    for round in 0..40 {
        for i in 0..25 {
            let (b, e) = call(round * 100 + i);
            s.spool.append(&b).unwrap();
            s.spool.append(&e).unwrap();
        }
        // Stop appending: whatever is behind must be applied without any command.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while s.spool.stats().unapplied() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: {} records left behind with the ingester asleep",
                s.spool.stats().unapplied()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    stop(s);
}
