//! The writer thread: group commit, replies after COMMIT, busy retries, concurrency, races,
//! fire-and-forget drops, draining shutdown and `WriterGone`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use agent_cli_proxy_storage::{
    ConnOptions, FailureOp, Op, Readers, Reply, StorageError, Writer, WriterConfig,
};
use futures_lite::future::{block_on, poll_once};
use helpers::*;
use rusqlite::Connection;

fn row_id(r: Reply) -> i64 {
    match r {
        Reply::RowId(id) => id,
        other => panic!("{other:?}"),
    }
}

fn quick_config() -> WriterConfig {
    WriterConfig {
        conn: ConnOptions {
            busy_timeout_ms: 20,
        },
        retry_delays_ms: vec![50, 200, 800],
        ..WriterConfig::default()
    }
}

#[test]
fn writer_thread_is_named() {
    let (_dir, path) = temp_db();
    let (handle, join) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    assert_eq!(join.thread().name(), Some("acp-sqlite-writer"));
    block_on(handle.shutdown()).unwrap();
    join.join().unwrap();
}

#[test]
fn reply_waits_for_commit_while_another_connection_holds_the_lock() {
    let (_dir, path) = temp_db();
    let (handle, join) = Writer::spawn(&path, quick_config()).unwrap();
    let other = Connection::open(path.file().unwrap()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let started = Instant::now();
    let pending = block_on(handle.submit(Op::PreLog(Box::new(prelog(
        "anthropic",
        "m",
        "2026-05-04T10:00:00.000Z",
    )))))
    .unwrap();
    let mut pending = Box::pin(pending);
    std::thread::sleep(Duration::from_millis(150));
    assert!(
        block_on(poll_once(pending.as_mut())).is_none(),
        "replied before COMMIT"
    );
    other.execute_batch("COMMIT").unwrap();
    let id = row_id(block_on(pending).unwrap());
    // First attempt + retries after 50 and 200 ms at least elapsed before the lock was freed.
    assert!(started.elapsed() >= Duration::from_millis(150));
    // Committed: a separate connection sees it as soon as the reply arrived.
    let seen: i64 = other
        .query_row(
            "SELECT COUNT(*) FROM request_logs WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(seen, 1);
    block_on(handle.shutdown()).unwrap();
    join.join().unwrap();
}

#[test]
fn busy_past_every_retry_fails_the_batch_and_counts_it() {
    let (_dir, path) = temp_db();
    let cfg = WriterConfig {
        retry_delays_ms: vec![10, 20, 40],
        ..quick_config()
    };
    let (handle, join) = Writer::spawn(&path, cfg).unwrap();
    let other = Connection::open(path.file().unwrap()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = Instant::now();
    let err = block_on(handle.send(Op::PreLog(Box::new(prelog(
        "anthropic",
        "m",
        "2026-05-04T10:00:00.000Z",
    )))))
    .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err, StorageError::Busy);
    // 4 attempts of >= 20 ms busy timeout plus 70 ms of delays.
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert_eq!(handle.stats().failures(FailureOp::Prelog), 1);
    assert_eq!(handle.stats().failures(FailureOp::Finalize), 0);
    other.execute_batch("ROLLBACK").unwrap();
    // The writer continues with the next batch.
    let id = row_id(
        block_on(handle.send(Op::PreLog(Box::new(prelog(
            "anthropic",
            "m",
            "2026-05-04T10:00:00.000Z",
        )))))
        .unwrap(),
    );
    assert!(id > 0);
    block_on(handle.shutdown()).unwrap();
    join.join().unwrap();
}

#[test]
fn eight_concurrent_producers_lose_nothing_and_batches_group() {
    let (_dir, path) = temp_db();
    let (handle, join) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    let per_producer = 300;
    let producers: Vec<_> = (0..8)
        .map(|p| {
            let h = handle.clone();
            std::thread::spawn(move || {
                block_on(async {
                    // Keep many commands in flight so groups form.
                    let mut pending = Vec::new();
                    for i in 0..per_producer {
                        let row =
                            prelog("anthropic", "m", &format!("2026-05-04T10:{p:02}:{i:03}Z"));
                        pending.push(h.submit(Op::PreLog(Box::new(row))).await.unwrap());
                    }
                    let mut ids = Vec::new();
                    for p in pending {
                        let id = row_id(p.await.unwrap());
                        let fin = finalize(id, tokens(10, 5), 3);
                        assert_eq!(
                            h.send(Op::Finalize(Box::new(fin))).await.unwrap(),
                            Reply::Finalized(true)
                        );
                        ids.push(id);
                    }
                    ids
                })
            })
        })
        .collect();
    let mut all: Vec<i64> = producers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 8 * per_producer);
    let stats = handle.stats().clone();
    block_on(handle.shutdown()).unwrap();
    join.join().unwrap();
    assert_eq!(stats.commands() as usize, 2 * 8 * per_producer);
    assert!(
        stats.batches() < stats.commands(),
        "no grouping: {} batches for {} commands",
        stats.batches(),
        stats.commands()
    );
    let store = migrated(&path);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'completed'"
        ),
        (8 * per_producer) as i64
    );
    assert_eq!(
        count(&store, "SELECT request_count FROM daily_usage"),
        (8 * per_producer) as i64
    );
    assert_aggregate(&store);
}

#[test]
fn finalize_racing_finalize_has_exactly_one_winner() {
    finalize_race(20);
}

/// SK-3 (soak tier): the same race `ACP_RACE_ROUNDS` times (default 10 000).
#[test]
#[ignore = "soak tier: 10 000 finalize races (ACP_RACE_ROUNDS)"]
fn soak_finalize_race() {
    let rounds = std::env::var("ACP_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(10_000);
    let started = std::time::Instant::now();
    finalize_race(rounds);
    println!(
        "SK-3: {rounds} rounds of 4 racing finalizes, exactly one winner each, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// RQ-D2: four finalizes of one row race `rounds` times; exactly one wins each round and the
/// aggregate counts each row once.
fn finalize_race(rounds: usize) {
    let (_dir, path) = temp_db();
    let (handle, join) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    for round in 0..rounds {
        let id = row_id(
            block_on(handle.send(Op::PreLog(Box::new(prelog(
                "anthropic",
                "m",
                "2026-05-04T10:00:00.000Z",
            )))))
            .unwrap(),
        );
        let racers: Vec<_> = (0..4)
            .map(|k| {
                let h = handle.clone();
                std::thread::spawn(move || {
                    let mut fin = finalize(id, tokens(100 + k, 1), 2);
                    fin.error_message = Some(format!("racer {k}"));
                    block_on(h.send(Op::Finalize(Box::new(fin)))).unwrap()
                })
            })
            .collect();
        let wins = racers
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|r| *r == Reply::Finalized(true))
            .count();
        assert_eq!(wins, 1, "round {round}");
    }
    block_on(handle.shutdown()).unwrap();
    join.join().unwrap();
    let store = migrated(&path);
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM cost_audit"),
        rounds as i64
    );
    assert_eq!(
        count(&store, "SELECT request_count FROM daily_usage"),
        rounds as i64
    );
    assert_aggregate(&store);
}

#[test]
fn full_queue_drops_fire_and_forget_and_counts_it() {
    let (_dir, path) = temp_db();
    let cfg = WriterConfig {
        capacity: 2,
        ..quick_config()
    };
    let (handle, join) = Writer::spawn(&path, cfg).unwrap();
    // Block the writer so the queue fills up.
    let other = Connection::open(path.file().unwrap()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let touch = || Op::TouchApiKey {
        id: 1,
        at: "2026-05-04 10:00:00".into(),
    };
    handle.try_send(touch()).unwrap();
    std::thread::sleep(Duration::from_millis(30)); // the writer takes the first one
    handle.try_send(touch()).unwrap();
    handle.try_send(touch()).unwrap();
    assert_eq!(handle.try_send(touch()), Err(StorageError::QueueFull));
    assert_eq!(handle.stats().dropped(), 1);
    other.execute_batch("ROLLBACK").unwrap();
    block_on(handle.shutdown()).unwrap();
    join.join().unwrap();
}

#[test]
fn shutdown_drains_then_later_commands_get_writer_gone() {
    let (_dir, path) = temp_db();
    let (handle, join) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    let pending: Vec<_> = (0..50)
        .map(|i| {
            block_on(handle.submit(Op::PreLog(Box::new(prelog(
                "anthropic",
                "m",
                &format!("2026-05-04T10:00:{i:02}.000Z"),
            )))))
            .unwrap()
        })
        .collect();
    block_on(handle.shutdown()).unwrap();
    for p in pending {
        assert!(matches!(block_on(p).unwrap(), Reply::RowId(_)));
    }
    join.join().unwrap();
    assert!(handle.is_closed());
    let err = block_on(handle.send(Op::WalCheckpoint)).unwrap_err();
    assert_eq!(err, StorageError::WriterGone);
    assert_eq!(
        handle.try_send(Op::TouchApiKey {
            id: 1,
            at: "x".into()
        }),
        Err(StorageError::WriterGone)
    );
    let store = migrated(&path);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM request_logs"), 50);
}

#[test]
fn failing_command_rolls_back_alone_and_wal_checkpoint_truncates() {
    let (_dir, path) = temp_db();
    let (handle, join) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    let mut bad = prelog("anthropic", "m", "2026-05-04T10:00:00.000Z");
    bad.provider = "p".into();
    // Two keys with the same hash: the second violates UNIQUE and fails alone.
    let key = |name: &str| {
        Op::CreateApiKey(agent_cli_proxy_storage::NewApiKey {
            key: agent_cli_proxy_core::secret::Secret::new("a".repeat(64)),
            name: name.into(),
            allowed_accounts: None,
            allowed_providers: None,
        })
    };
    let (a, b, c) = block_on(async {
        let a = handle.submit(key("one")).await.unwrap();
        let b = handle.submit(key("two")).await.unwrap();
        let c = handle.submit(Op::PreLog(Box::new(bad))).await.unwrap();
        (a.await, b.await, c.await)
    });
    assert!(matches!(a, Ok(Reply::ApiKeyCreated(_))));
    assert!(matches!(b, Err(StorageError::Sqlite { .. })), "{b:?}");
    assert!(matches!(c, Ok(Reply::RowId(_))));
    assert_eq!(handle.stats().failures(FailureOp::Other), 1);
    let cp = block_on(handle.send(Op::WalCheckpoint)).unwrap();
    assert!(
        matches!(cp, Reply::Checkpoint(info) if info.busy == 0),
        "{cp:?}"
    );
    block_on(handle.shutdown()).unwrap();
    join.join().unwrap();
    let wal = std::fs::metadata(format!("{}-wal", path.file().unwrap().display()))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(wal, 0);
    let readers = Readers::new(path.clone(), ConnOptions::default());
    assert_eq!(readers.with(|s| s.api_keys()).unwrap().len(), 1);
}

/// A group whose middle command fails: the group's first, savepoint-free run is rolled back
/// and the group re-run with one savepoint per command, so the others commit with the right
/// replies and the failing one leaves nothing behind.
#[test]
fn a_failing_command_inside_one_group_fails_alone() {
    let (_dir, path) = temp_db();
    let (handle, join) = Writer::spawn(&path, WriterConfig::default()).unwrap();
    let key = |name: &str| {
        Op::CreateApiKey(agent_cli_proxy_storage::NewApiKey {
            key: agent_cli_proxy_core::secret::Secret::new("b".repeat(64)),
            name: name.into(),
            allowed_accounts: None,
            allowed_providers: None,
        })
    };
    // Hold the write lock so the writer blocks on its first command while the group queues.
    let other = Connection::open(path.file().unwrap()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (first, a, b, c) = block_on(async {
        let first = handle
            .submit(Op::PreLog(Box::new(prelog(
                "p",
                "m",
                "2026-05-04T09:00:00.000Z",
            ))))
            .await
            .unwrap();
        // Let the writer take `first` alone and block on BEGIN.
        std::thread::sleep(Duration::from_millis(100));
        let a = handle.submit(key("one")).await.unwrap();
        let b = handle.submit(key("two")).await.unwrap();
        let c = handle
            .submit(Op::PreLog(Box::new(prelog(
                "p",
                "m",
                "2026-05-04T10:00:00.000Z",
            ))))
            .await
            .unwrap();
        (first, a, b, c)
    });
    let batches_before = handle.stats().batches();
    other.execute_batch("COMMIT").unwrap();
    let first = row_id(block_on(first).unwrap());
    let a = block_on(a);
    let b = block_on(b);
    let c = row_id(block_on(c).unwrap());
    // `first` was its own group; a, b and c made exactly one more.
    assert_eq!(handle.stats().batches(), batches_before + 1);
    assert!(matches!(a, Ok(Reply::ApiKeyCreated(_))), "{a:?}");
    assert!(matches!(b, Err(StorageError::Sqlite { .. })), "{b:?}");
    assert_eq!(c, first + 1);
    assert_eq!(handle.stats().failures(FailureOp::Other), 1);
    block_on(handle.shutdown()).unwrap();
    join.join().unwrap();
    let readers = Readers::new(path.clone(), ConnOptions::default());
    let keys = readers.with(|s| s.api_keys()).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].name, "one");
    let started = readers
        .with(|s| s.log_by_id(c))
        .unwrap()
        .map(|r| r.started_at);
    assert_eq!(started.as_deref(), Some("2026-05-04T10:00:00.000Z"));
}
