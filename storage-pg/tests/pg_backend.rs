//! The PostgreSQL backend against a real server started by the test (`docs/replicas.md` §8):
//! migrations, exactly-once ingestion per replica, the `daily_usage` invariant, and reads
//! equal to the SQLite backend's for the same spool records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Barrier};

use agent_cli_proxy_core::usage::TokenColumns;
use agent_cli_proxy_storage::ingest::{IngestConfig, Ingester};
use agent_cli_proxy_storage::op::{AuditInfo, CostStatus, FinalizeRow, PreLogRow, Terminal};
use agent_cli_proxy_storage::queries::LogFilter;
use agent_cli_proxy_storage::spool::{Cursor, Doorbell, Record, Spool, SpoolConfig};
use agent_cli_proxy_storage::{DbPath, Store};
use agent_cli_proxy_storage_pg::schema::MIGRATIONS;
use agent_cli_proxy_storage_pg::{LoopLock, PgIngester, PgStore};

use support::pg::TestPg;

const DAY: &str = "2026-12-07";
const NOW: &str = "2026-12-07T12:00:00.000Z";

fn begin(id: &str, model: &str, started_at: &str) -> Record {
    Record::Begin(Box::new(PreLogRow {
        request_id: id.to_owned(),
        provider: "anthropic".to_owned(),
        model: model.to_owned(),
        tool: "claude-code".to_owned(),
        client_id: "laptop".to_owned(),
        agent: Some("builder".to_owned()),
        user_agent: Some("claude-cli/1.0".to_owned()),
        source_ip: Some("127.0.0.1".to_owned()),
        msg_id: None,
        path: "/v1/messages".to_owned(),
        streamed: false,
        proxy_api_key_id: None,
        started_at: started_at.to_owned(),
        meta_json: PreLogRow::meta("POST", Some("cli"), None),
    }))
}

fn tokens(prompt: u64) -> TokenColumns {
    TokenColumns {
        prompt_tokens: prompt,
        completion_tokens: 7,
        cache_read_tokens: 3,
        cache_creation_tokens: 2,
        cache_write_1h_tokens: 1,
        reasoning_tokens: 0,
        total_tokens: prompt + 12,
    }
}

fn end(id: &str, model: &str, prompt: u64, cost: u64, outcome: Terminal) -> Record {
    Record::End {
        request_id: id.to_owned(),
        row: Box::new(FinalizeRow {
            id: 0,
            lifecycle_status: outcome,
            actual_model: Some(format!("{model}-20261201")),
            actual_provider: Some("anthropic".to_owned()),
            proxy_api_key_id: None,
            streamed: true,
            status: Some(if outcome == Terminal::Completed {
                200
            } else {
                502
            }),
            tokens: tokens(prompt),
            usage_incomplete: outcome != Terminal::Completed,
            cost_nanousd: cost,
            cost_status: if cost > 0 {
                CostStatus::Ok
            } else {
                CostStatus::Pending
            },
            error_code: (outcome != Terminal::Completed).then(|| "upstream_error".to_owned()),
            error_message: None,
            latency_ms: Some(321),
            now: NOW.to_owned(),
            meta_json: r#"{"method":"POST","originator":"cli","session_id":null}"#.to_owned(),
            audit: AuditInfo {
                model: Some(model.to_owned()),
                provider: Some("anthropic".to_owned()),
                source: "pricing".to_owned(),
            },
        }),
    }
}

/// Calls covering every record kind and both paths of a `Begin` (its `End` in the same
/// batch or a later one), two days, and models whose byte order differs from a locale's.
fn workload() -> Vec<Record> {
    let at = |h: u32| format!("{DAY}T{h:02}:00:00.000Z");
    vec![
        begin("r1", "claude-sonnet", &at(1)),
        end("r1", "claude-sonnet", 100, 1_234_567, Terminal::Completed),
        begin("r2", "claude-sonnet", &at(2)),
        Record::Usage {
            request_id: "r2".to_owned(),
            tokens: tokens(40),
        },
        begin("r3", "Zeta", &at(3)),
        begin("r4", "alpha", &at(4)),
        end("r2", "claude-sonnet", 50, 333_333_333, Terminal::Completed),
        end("r3", "Zeta", 5, 0, Terminal::Error),
        Record::Fallback {
            request_id: "r4".to_owned(),
            message: "disk I/O error".to_owned(),
            now: NOW.to_owned(),
        },
        begin("r5", "claude-sonnet", &at(5)),
        begin("r6", "claude-sonnet", "2026-12-06T23:59:59.999Z"),
        end("r6", "claude-sonnet", 10, 42, Terminal::Completed),
    ]
}

/// The workload written to a real (in-memory) spool and read back in batches of `size`,
/// with the cursor after each batch: exactly what a replica's reader hands to PostgreSQL.
fn spooled_batches(records: &[Record], size: usize) -> Vec<(Vec<(u64, Record)>, Cursor)> {
    let opened = Spool::open(SpoolConfig::memory(), 0, Arc::new(Doorbell::default())).unwrap();
    for r in records {
        opened.spool.append(r).unwrap();
    }
    let mut cursor = opened.cursor;
    let mut out = Vec::new();
    loop {
        let mut buf = Vec::new();
        let next = opened.spool.read(cursor, size, &mut buf).unwrap();
        if buf.is_empty() {
            return out;
        }
        cursor = next;
        out.push((buf, next));
    }
}

fn migrated(pg: &TestPg) -> PgStore {
    let mut store = PgStore::connect(&pg.url()).unwrap();
    store.migrate().unwrap();
    store
}

fn ingest_all(store: &mut PgStore, replica: &str, batches: &[(Vec<(u64, Record)>, Cursor)]) {
    for (batch, next) in batches {
        let outcome = store.apply_batch(replica, batch, Some(*next), NOW).unwrap();
        assert!(outcome.orphans.is_empty(), "{outcome:?}");
    }
}

fn count(store: &mut PgStore, sql: &str) -> i64 {
    store.client().query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn migrations_run_once_and_are_recorded_by_name() {
    let pg = TestPg::start();
    let mut store = PgStore::connect(&pg.url()).unwrap();
    store.ping().unwrap();
    let first = store.migrate().unwrap();
    let names: Vec<&str> = MIGRATIONS.iter().map(|(n, _)| *n).collect();
    assert_eq!(first.applied, names);
    let again = store.migrate().unwrap();
    assert!(again.applied.is_empty(), "{again:?}");
    assert_eq!(store.recorded_migrations().unwrap(), names);
    // The schema the SQLite assertion requires is there, plus the replica tables.
    agent_cli_proxy_storage_pg::schema::assert_schema(store.client()).unwrap();
}

#[test]
fn replicas_starting_together_migrate_once() {
    let pg = TestPg::start();
    let url = pg.url();
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut store = PgStore::connect(&url).unwrap();
                barrier.wait();
                store.migrate().map(|r| r.applied)
            })
        })
        .collect();
    let mut applied: Vec<&str> = Vec::new();
    for t in threads {
        applied.extend(t.join().unwrap().unwrap());
    }
    applied.sort_unstable();
    let names: Vec<&str> = MIGRATIONS.iter().map(|(n, _)| *n).collect();
    assert_eq!(applied, names, "every migration ran exactly once overall");
    let mut store = PgStore::connect(&url).unwrap();
    assert_eq!(
        count(&mut store, "SELECT COUNT(*) FROM schema_migrations"),
        MIGRATIONS.len() as i64
    );
}

#[test]
fn a_batch_applied_twice_lands_once_and_end_may_come_in_a_later_batch() {
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    let records = vec![
        begin("a", "claude-sonnet", "2026-12-07T01:00:00.000Z"),
        begin("b", "claude-sonnet", "2026-12-07T01:00:01.000Z"),
        end("a", "claude-sonnet", 100, 1_000, Terminal::Completed),
        end("b", "claude-sonnet", 200, 2_000, Terminal::Completed),
    ];
    let batches = spooled_batches(&records, 2);
    assert_eq!(batches.len(), 2);
    let first = store
        .apply_batch("rep-1", &batches[0].0, Some(batches[0].1), NOW)
        .unwrap();
    assert_eq!((first.applied, first.skipped, first.applied_seq), (2, 0, 2));
    assert_eq!(
        count(
            &mut store,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'pending'"
        ),
        2
    );
    // A crash after COMMIT and before the spool learned it: the same batch comes again.
    let replay = store
        .apply_batch("rep-1", &batches[0].0, Some(batches[0].1), NOW)
        .unwrap();
    assert_eq!((replay.applied, replay.skipped), (0, 2));
    for _ in 0..2 {
        store
            .apply_batch("rep-1", &batches[1].0, Some(batches[1].1), NOW)
            .unwrap();
    }
    assert_eq!(count(&mut store, "SELECT COUNT(*) FROM request_logs"), 2);
    assert_eq!(
        count(
            &mut store,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'completed'
               AND replica = 'rep-1'"
        ),
        2
    );
    assert_eq!(count(&mut store, "SELECT COUNT(*) FROM cost_audit"), 2);
    assert_eq!(
        count(
            &mut store,
            "SELECT request_count FROM daily_usage WHERE day = '2026-12-07'"
        ),
        2
    );
    assert_eq!(
        count(
            &mut store,
            "SELECT cost_nanousd FROM daily_usage WHERE day = '2026-12-07'"
        ),
        3_000
    );
    assert_eq!(store.applied_seq("rep-1").unwrap(), 4);
    let (segment, offset): (i64, i64) = {
        let r = store
            .client()
            .query_one(
                "SELECT segment, \"offset\" FROM spool_position WHERE replica = 'rep-1'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        (segment as u64, offset as u64),
        (batches[1].1.segment, batches[1].1.offset)
    );
}

#[test]
fn replicas_keep_their_own_positions_and_rows() {
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    // Both replicas' spools start at sequence 1; neither position hides the other's rows.
    let a = spooled_batches(
        &[
            begin("a1", "m", "2026-12-07T01:00:00.000Z"),
            end("a1", "m", 1, 10, Terminal::Completed),
        ],
        10,
    );
    let b = spooled_batches(
        &[
            begin("b1", "m", "2026-12-07T02:00:00.000Z"),
            end("b1", "m", 2, 20, Terminal::Completed),
            begin("b2", "m", "2026-12-07T03:00:00.000Z"),
        ],
        10,
    );
    ingest_all(&mut store, "A", &a);
    ingest_all(&mut store, "B", &b);
    ingest_all(&mut store, "A", &a);
    assert_eq!(store.applied_seq("A").unwrap(), 2);
    assert_eq!(store.applied_seq("B").unwrap(), 3);
    assert_eq!(
        count(
            &mut store,
            "SELECT COUNT(*) FROM request_logs WHERE replica = 'B'"
        ),
        2
    );
    assert_eq!(count(&mut store, "SELECT COUNT(*) FROM request_logs"), 3);
    store.register_replica("A", "host-a", "0.1.0", NOW).unwrap();
    store
        .register_replica("A", "host-a", "0.1.0", "2026-12-07T12:00:30.000Z")
        .unwrap();
    let r = store
        .client()
        .query_one(
            "SELECT started_at, seen_at FROM replicas WHERE replica = 'A'",
            &[],
        )
        .unwrap();
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, String>(1)),
        (NOW.to_owned(), "2026-12-07T12:00:30.000Z".to_owned())
    );
}

#[test]
fn an_end_without_its_begin_is_reported_not_applied() {
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    let batches = spooled_batches(&[end("ghost", "m", 1, 1, Terminal::Completed)], 10);
    let outcome = store
        .apply_batch("A", &batches[0].0, Some(batches[0].1), NOW)
        .unwrap();
    assert_eq!(outcome.orphans, vec![1]);
    assert_eq!(outcome.applied_seq, 1);
    assert_eq!(count(&mut store, "SELECT COUNT(*) FROM daily_usage"), 0);
}

#[test]
fn daily_usage_equals_the_aggregate_of_final_rows() {
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    for size in [1, 3, 100] {
        // Three replicas with different batch sizes over the same calls (ids made unique).
        let records: Vec<Record> = workload()
            .into_iter()
            .map(|r| rename(r, &format!("-{size}")))
            .collect();
        ingest_all(
            &mut store,
            &format!("rep-{size}"),
            &spooled_batches(&records, size),
        );
    }
    let diff = count(
        &mut store,
        "SELECT COUNT(*) FROM (
           (SELECT day, provider, model, request_count, prompt_tokens, completion_tokens,
              cache_creation_tokens, cache_read_tokens, total_tokens, cost_nanousd
            FROM daily_usage
            EXCEPT
            SELECT substr(started_at, 1, 10), provider, model, COUNT(*), SUM(prompt_tokens),
              SUM(completion_tokens), SUM(cache_creation_tokens), SUM(cache_read_tokens),
              SUM(total_tokens), SUM(cost_nanousd)
            FROM request_logs WHERE lifecycle_status <> 'pending'
            GROUP BY 1, 2, 3)
           UNION ALL
           (SELECT substr(started_at, 1, 10), provider, model, COUNT(*), SUM(prompt_tokens),
              SUM(completion_tokens), SUM(cache_creation_tokens), SUM(cache_read_tokens),
              SUM(total_tokens), SUM(cost_nanousd)
            FROM request_logs WHERE lifecycle_status <> 'pending'
            GROUP BY 1, 2, 3
            EXCEPT
            SELECT day, provider, model, request_count, prompt_tokens, completion_tokens,
              cache_creation_tokens, cache_read_tokens, total_tokens, cost_nanousd
            FROM daily_usage)) d",
    );
    assert_eq!(diff, 0);
    assert_eq!(
        count(
            &mut store,
            "SELECT SUM(request_count)::bigint FROM daily_usage"
        ),
        3 * 5
    );
}

fn rename(r: Record, suffix: &str) -> Record {
    match r {
        Record::Begin(mut row) => {
            row.request_id.push_str(suffix);
            Record::Begin(row)
        }
        Record::Usage { request_id, tokens } => Record::Usage {
            request_id: request_id + suffix,
            tokens,
        },
        Record::End { request_id, row } => Record::End {
            request_id: request_id + suffix,
            row,
        },
        Record::Fallback {
            request_id,
            message,
            now,
        } => Record::Fallback {
            request_id: request_id + suffix,
            message,
            now,
        },
    }
}

#[test]
fn reads_equal_the_sqlite_backend_for_the_same_records() {
    let records = workload();
    // SQLite through the storage crate's own spool ingester.
    let mut sqlite = Store::open(&DbPath::memory()).unwrap();
    sqlite.migrate().unwrap();
    let opened = Spool::open(SpoolConfig::memory(), 0, Arc::new(Doorbell::default())).unwrap();
    for r in &records {
        opened.spool.append(r).unwrap();
    }
    let mut ingester = Ingester::new(
        Arc::clone(&opened.spool),
        opened.cursor,
        IngestConfig {
            batch: 4,
            ..IngestConfig::default()
        },
    );
    ingester.drain(sqlite.connection()).unwrap();

    let pg = TestPg::start();
    let mut store = migrated(&pg);
    ingest_all(&mut store, "A", &spooled_batches(&records, 4));

    for day in [DAY, "2026-12-06", "2026-12-05"] {
        assert_eq!(
            store.usage_today(day).unwrap(),
            sqlite.usage_today(day).unwrap(),
            "{day}"
        );
    }
    let today = store.usage_today(DAY).unwrap();
    let models: Vec<&str> = today.breakdown.iter().map(|b| b.model.as_str()).collect();
    assert_eq!(models, ["Zeta", "alpha", "claude-sonnet"], "byte order");
    assert_eq!(store.stats().unwrap(), sqlite.stats().unwrap());
    assert_eq!(store.stats().unwrap().total_requests, 6);
    let filters = [
        LogFilter::default(),
        LogFilter {
            model: Some("claude-sonnet".to_owned()),
            status_min: Some(200),
            ..LogFilter::default()
        },
        LogFilter {
            lifecycle_status: Some("error".to_owned()),
            ..LogFilter::default()
        },
        LogFilter {
            tool: Some("nope".to_owned()),
            ..LogFilter::default()
        },
    ];
    for f in &filters {
        for (limit, offset) in [(100, 0), (2, 1)] {
            let pg_rows = store.logs(f, limit, offset).unwrap();
            let lite_rows = sqlite.logs(f, limit, offset).unwrap();
            assert_eq!(pg_rows, lite_rows, "{f:?} {limit} {offset}");
        }
    }
    assert_eq!(store.logs(&LogFilter::default(), 100, 0).unwrap().len(), 6);
    for (from, to) in [
        ("2026-12-01", "2026-12-31"),
        (DAY, DAY),
        ("2027-01-01", "2027-01-31"),
    ] {
        assert_eq!(
            store.usage_range(from, to).unwrap(),
            sqlite.usage_range(from, to).unwrap()
        );
        assert_eq!(
            store.usage_models_range(from, to).unwrap(),
            sqlite.usage_models_range(from, to).unwrap()
        );
        assert_eq!(
            store.usage_providers(from, to).unwrap(),
            sqlite.usage_providers(from, to).unwrap()
        );
    }
    assert_eq!(
        store.usage_range("2026-12-01", "2026-12-31").unwrap().len(),
        2
    );
    assert_eq!(
        store.usage_models_day(DAY).unwrap(),
        sqlite.usage_models_day(DAY).unwrap()
    );
    for id in 0..=7 {
        assert_eq!(store.log_by_id(id).unwrap(), sqlite.log_by_id(id).unwrap());
        // Audit rows match but for `calc_at`, each server's own clock.
        let strip = |rows: Option<Vec<agent_cli_proxy_storage::queries::CostAuditRow>>| {
            rows.map(|v| {
                v.into_iter()
                    .map(|mut r| {
                        assert_eq!(r.calc_at.len(), "2026-12-07 12:00:00".len(), "{r:?}");
                        r.calc_at.clear();
                        r
                    })
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            strip(store.cost_audit(id).unwrap()),
            strip(sqlite.cost_audit(id).unwrap()),
            "{id}"
        );
    }
    assert_eq!(store.cost_audit(1).unwrap().map(|v| v.len()), Some(1));
}

#[test]
fn an_empty_database_reads_as_sqlite_does() {
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    let mut sqlite = Store::open(&DbPath::memory()).unwrap();
    sqlite.migrate().unwrap();
    assert_eq!(store.stats().unwrap(), sqlite.stats().unwrap());
    assert_eq!(
        store.usage_today(DAY).unwrap(),
        sqlite.usage_today(DAY).unwrap()
    );
}

#[test]
fn connection_errors_never_show_the_password() {
    // Nothing listens on port 1: refused, with or without TLS.
    for url in [
        "postgres://u:hunter2@127.0.0.1:1/db",
        "postgres://u:hunter2@127.0.0.1:1/db?sslmode=require",
        "postgres://u:hunter2@127.0.0.1:1/db?sslmode=verify-ca",
    ] {
        let err = PgStore::connect(url).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    }
    assert!(agent_cli_proxy_storage_pg::is_postgres_url(
        "postgresql://h/db"
    ));
    assert!(!agent_cli_proxy_storage_pg::is_postgres_url(
        "sqlite:///tmp/x.db"
    ));
}

#[test]
fn tls_is_used_and_verified_when_asked_for() {
    let pg = TestPg::start_with_tls();
    let base = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    let ssl_in_use = |store: &mut PgStore| -> bool {
        store
            .client()
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let ca = pg.ca_path();
    for mode in ["require", "verify-full"] {
        let url = format!("{base}?sslmode={mode}&sslrootcert={}", ca.display());
        let mut store = PgStore::connect(&url).unwrap();
        assert!(ssl_in_use(&mut store), "{mode}");
        store.migrate().unwrap();
    }
    let mut plain = PgStore::connect(&format!("{base}?sslmode=disable")).unwrap();
    assert!(!ssl_in_use(&mut plain));
    // Without the CA the server's certificate cannot be verified: refused, not downgraded.
    let err = PgStore::connect(&format!("{base}?sslmode=require")).unwrap_err();
    assert!(
        format!("{err}").to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[test]
fn a_record_the_server_refuses_alone_is_set_aside_and_the_batch_lands() {
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    // PostgreSQL text cannot hold NUL (SQLite can): a refusal that belongs to one record.
    let batches = spooled_batches(
        &[
            begin("good-1", "m", "2026-12-07T01:00:00.000Z"),
            begin("bad", "m\0", "2026-12-07T01:00:01.000Z"),
            end("good-1", "m", 1, 10, Terminal::Completed),
            begin("good-2", "m", "2026-12-07T01:00:02.000Z"),
        ],
        10,
    );
    let outcome = store
        .apply_batch("A", &batches[0].0, Some(batches[0].1), NOW)
        .unwrap();
    assert_eq!(outcome.rejected.len(), 1, "{outcome:?}");
    assert_eq!(outcome.rejected[0].0, 2);
    assert!(outcome.rejected[0].1.contains("0x00"), "{outcome:?}");
    assert_eq!((outcome.applied, outcome.applied_seq), (3, 4));
    assert_eq!(
        count(
            &mut store,
            "SELECT COUNT(*) FROM request_logs WHERE request_id IN ('good-1', 'good-2')"
        ),
        2
    );
    assert_eq!(
        count(
            &mut store,
            "SELECT request_count FROM daily_usage WHERE model = 'm'"
        ),
        1
    );
}

fn spool_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .count()
}

#[test]
fn the_ingester_resumes_from_the_database_position_after_a_crash() {
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        // Small segments, so that releasing them is visible.
        segment_bytes: 512,
        ..SpoolConfig::in_dir(dir.path())
    };
    let records = workload();
    {
        let opened = PgIngester::open(
            &mut store,
            "A",
            config.clone(),
            5,
            Arc::new(Doorbell::default()),
        )
        .unwrap();
        let mut ing = opened.ingester;
        for r in &records {
            ing.spool().append(r).unwrap();
        }
        assert_eq!(ing.step(&mut store, NOW).unwrap(), 5);
        // The next batch commits, then the process dies before the spool hears of it.
        let mut buf = Vec::new();
        let spool = Spool::open(
            SpoolConfig::in_dir(dir.path()),
            5,
            Arc::new(Doorbell::default()),
        )
        .unwrap();
        let next = spool.spool.read(spool.cursor, 4, &mut buf).unwrap();
        store.apply_batch("A", &buf, Some(next), NOW).unwrap();
        assert_eq!(store.applied_seq("A").unwrap(), 9);
    }
    let opened =
        PgIngester::open(&mut store, "A", config, 5, Arc::new(Doorbell::default())).unwrap();
    let mut ing = opened.ingester;
    assert_eq!(ing.behind(), records.len() as u64 - 9);
    assert!(spool_segments(dir.path()) > 1);
    assert_eq!(
        ing.drain(&mut store, NOW).unwrap(),
        records.len() as u64 - 9
    );
    assert_eq!(store.applied_seq("A").unwrap(), records.len() as u64);
    assert_eq!(count(&mut store, "SELECT COUNT(*) FROM request_logs"), 6);
    assert_eq!(
        count(
            &mut store,
            "SELECT SUM(request_count)::bigint FROM daily_usage"
        ),
        5
    );
    assert_eq!(
        spool_segments(dir.path()),
        1,
        "passed segments are released"
    );
}

#[test]
fn the_ingester_waits_out_a_server_outage_and_loses_nothing() {
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    let opened = PgIngester::open(
        &mut store,
        "A",
        SpoolConfig::memory(),
        100,
        Arc::new(Doorbell::default()),
    )
    .unwrap();
    let mut ing = opened.ingester;
    let records = workload();
    let (first, second) = records.split_at(4);
    for r in first {
        ing.spool().append(r).unwrap();
    }
    assert_eq!(ing.drain(&mut store, NOW).unwrap(), 4);
    pg.stop();
    // The data path keeps appending while the database is away.
    for r in second {
        ing.spool().append(r).unwrap();
    }
    assert!(store.ping().is_err(), "the server is down");
    assert!(ing.step(&mut store, NOW).is_err());
    assert!(ing.step(&mut store, NOW).is_err());
    assert_eq!(ing.stats().failures(), 2);
    assert_eq!(ing.behind(), second.len() as u64);
    assert!(
        !ing.due(std::time::Instant::now()),
        "backoff before the next attempt"
    );
    pg.restart();
    assert_eq!(ing.drain(&mut store, NOW).unwrap(), second.len() as u64);
    assert_eq!(ing.behind(), 0);
    assert_eq!(count(&mut store, "SELECT COUNT(*) FROM request_logs"), 6);
    assert_eq!(
        count(
            &mut store,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'pending'"
        ),
        1
    );
}

#[test]
fn one_replica_at_a_time_holds_a_loop_and_it_moves_when_the_holder_dies() {
    use agent_cli_proxy_storage_pg::once::keys;
    let pg = TestPg::start();
    let mut a = LoopLock::new(&pg.url(), keys::CORRELATOR).unwrap();
    let mut b = LoopLock::new(&pg.url(), keys::CORRELATOR).unwrap();
    let mut other_loop = LoopLock::new(&pg.url(), keys::BACKFILL).unwrap();
    assert!(a.try_acquire().unwrap());
    assert!(!b.try_acquire().unwrap(), "standby while A holds it");
    assert!(
        a.try_acquire().unwrap(),
        "the holder keeps it tick after tick"
    );
    assert!(other_loop.try_acquire().unwrap(), "loops are independent");
    // The holder's process dies: its session ends and the server frees the lock.
    drop(a);
    assert!(wait_until(|| b.try_acquire().unwrap()));
    // A session killed under a live holder loses the lock; it notices at its next tick.
    let mut admin = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND objsubid = 1
               AND classid::bigint = $1 AND objid::bigint = $2",
            &[&(keys::CORRELATOR >> 32), &(keys::CORRELATOR & 0xffff_ffff)],
        )
        .unwrap();
    let mut c = LoopLock::new(&pg.url(), keys::CORRELATOR).unwrap();
    assert!(wait_until(|| c.try_acquire().unwrap()));
    assert!(
        !b.try_acquire().unwrap(),
        "the killed holder is now standby"
    );
    c.release().unwrap();
    assert!(b.try_acquire().unwrap());
}

fn wait_until(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// A flat price: 1 000 nano-USD per token.
struct Flat;

impl agent_cli_proxy_storage::op::Recoster for Flat {
    fn recost(
        &self,
        row: &agent_cli_proxy_storage::op::RecostRow,
    ) -> agent_cli_proxy_storage::op::RecostResult {
        agent_cli_proxy_storage::op::RecostResult {
            cost_nanousd: row.tokens.total_tokens * 1_000,
            cost_status: CostStatus::Ok,
            audit: AuditInfo {
                model: Some(row.model.clone()),
                provider: Some(row.provider.clone()),
                source: "pricing".to_owned(),
            },
        }
    }
}

#[test]
fn boot_recovery_aborts_only_its_own_replica_and_matches_sqlite() {
    use agent_cli_proxy_storage::op::Op;
    use agent_cli_proxy_storage_pg::recovery;
    const LATER: &str = "2026-12-07T13:00:00.000Z";
    let mut records = workload();
    records.push(Record::Usage {
        request_id: "r5".to_owned(),
        tokens: tokens(30),
    });
    let mut sqlite = Store::open(&DbPath::memory()).unwrap();
    sqlite.migrate().unwrap();
    let opened = Spool::open(SpoolConfig::memory(), 0, Arc::new(Doorbell::default())).unwrap();
    for r in &records {
        opened.spool.append(r).unwrap();
    }
    Ingester::new(
        Arc::clone(&opened.spool),
        opened.cursor,
        IngestConfig::default(),
    )
    .drain(sqlite.connection())
    .unwrap();
    sqlite
        .execute(Op::BootRecovery {
            now: LATER.to_owned(),
            recoster: Arc::new(Flat),
        })
        .unwrap();

    let pg = TestPg::start();
    let mut store = migrated(&pg);
    ingest_all(&mut store, "A", &spooled_batches(&records, 5));
    let b_records = [
        begin("b-live", "claude-sonnet", "2026-12-07T11:59:00.000Z"),
        Record::Usage {
            request_id: "b-live".to_owned(),
            tokens: tokens(9),
        },
    ];
    ingest_all(&mut store, "B", &spooled_batches(&b_records, 5));
    let aborted = recovery::boot_recovery(store.client(), "A", LATER, &Flat).unwrap();
    assert_eq!(aborted, 1);
    assert_eq!(
        count(
            &mut store,
            "SELECT COUNT(*) FROM request_logs WHERE replica = 'B'
               AND lifecycle_status = 'pending'"
        ),
        1,
        "another replica's call in flight is left alone"
    );
    let aborted_filter = LogFilter {
        lifecycle_status: Some("aborted".to_owned()),
        ..LogFilter::default()
    };
    let pg_rows = store.logs(&aborted_filter, 10, 0).unwrap();
    assert_eq!(pg_rows, sqlite.logs(&aborted_filter, 10, 0).unwrap());
    assert_eq!(pg_rows.len(), 1);
    assert_eq!(pg_rows[0].cost_nanousd, 42_000);
    for day in [DAY, "2026-12-06"] {
        assert_eq!(
            store.usage_today(day).unwrap(),
            sqlite.usage_today(day).unwrap()
        );
    }

    // B stops being seen; the holder of the retention loop aborts its calls as lost.
    store
        .register_replica("B", "host-b", "0.1.0", "2026-12-07T11:59:00.000Z")
        .unwrap();
    store
        .register_replica("A", "host-a", "0.1.0", LATER)
        .unwrap();
    let cutoff = "2026-12-07T12:50:00.000Z";
    let lost = recovery::lost_replicas(store.client(), "A", cutoff).unwrap();
    assert_eq!(lost, ["B"]);
    assert_eq!(
        recovery::abort_lost(store.client(), &lost, LATER, &Flat).unwrap(),
        1
    );
    assert_eq!(
        count(
            &mut store,
            "SELECT COUNT(*) FROM request_logs WHERE replica = 'B'
               AND error_message = 'replica-lost' AND lifecycle_status = 'aborted'"
        ),
        1
    );
    assert!(
        recovery::lost_replicas(store.client(), "A", cutoff)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        count(
            &mut store,
            "SELECT COUNT(*) FROM cost_audit a JOIN request_logs l ON l.id = a.request_log_id
             WHERE l.lifecycle_status = 'aborted'"
        ),
        2
    );
}

fn sqlite_file_from(sql_fixture: &str) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy.db");
    let sql = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/db")
            .join(sql_fixture),
    )
    .unwrap();
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
    let mut store = Store::open(&DbPath::File(file)).unwrap();
    store.migrate().unwrap();
    (dir, store)
}

#[test]
fn db_copy_takes_the_originals_databases_whole_and_refuses_a_full_target() {
    use agent_cli_proxy_storage_pg::copy::copy_sqlite;
    let pg = TestPg::start();
    for (fixture, db) in [("v02.sql", "from_v02"), ("v01.sql", "from_v01")] {
        let (_dir, sqlite) = sqlite_file_from(fixture);
        let url = pg.create_database(db);
        let mut store = PgStore::connect(&url).unwrap();
        let report = copy_sqlite(sqlite.connection(), store.client()).unwrap();
        for t in &report.tables {
            assert_eq!(t.source, t.target, "{fixture} {t:?}");
        }
        let rows = |name: &str| {
            report
                .tables
                .iter()
                .find(|t| t.table == name)
                .unwrap()
                .target
        };
        assert!(rows("request_logs") > 0, "{fixture}: {report:?}");
        assert!(rows("daily_usage") > 0, "{fixture}: {report:?}");
        assert_eq!(report.source_daily, report.target_daily);
        assert_eq!(store.stats().unwrap(), sqlite.stats().unwrap(), "{fixture}");
        let all = LogFilter::default();
        assert_eq!(
            store.logs(&all, 1000, 0).unwrap(),
            sqlite.logs(&all, 1000, 0).unwrap(),
            "{fixture}"
        );
        if fixture == "v01.sql" {
            assert!(!report.skipped_tables.is_empty(), "{report:?}");
        }
        // Ids were kept and the sequence moved past them: a new row follows the last one.
        let max: i64 = count(&mut store, "SELECT MAX(id) FROM request_logs");
        let batches = spooled_batches(&[begin("after-copy", "m", NOW)], 10);
        ingest_all(&mut store, "A", &batches);
        assert_eq!(
            count(
                &mut store,
                "SELECT id FROM request_logs WHERE request_id = 'after-copy'"
            ),
            max + 1
        );
        let err = copy_sqlite(sqlite.connection(), store.client()).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
    }
}

#[test]
fn db_copy_of_a_product_database_answers_as_sqlite_did() {
    use agent_cli_proxy_storage_pg::copy::copy_sqlite;
    let records = workload();
    let mut sqlite = Store::open(&DbPath::memory()).unwrap();
    sqlite.migrate().unwrap();
    let opened = Spool::open(SpoolConfig::memory(), 0, Arc::new(Doorbell::default())).unwrap();
    for r in &records {
        opened.spool.append(r).unwrap();
    }
    Ingester::new(
        Arc::clone(&opened.spool),
        opened.cursor,
        IngestConfig::default(),
    )
    .drain(sqlite.connection())
    .unwrap();
    let pg = TestPg::start();
    let mut store = PgStore::connect(&pg.url()).unwrap();
    let report = copy_sqlite(sqlite.connection(), store.client()).unwrap();
    assert_eq!(report.pending_rows, 1);
    assert_eq!(report.source_daily.request_count, 5);
    assert_eq!(store.stats().unwrap(), sqlite.stats().unwrap());
    assert_eq!(
        store.usage_range("2026-01-01", "2026-12-31").unwrap(),
        sqlite.usage_range("2026-01-01", "2026-12-31").unwrap()
    );
    let all = LogFilter::default();
    assert_eq!(
        store.logs(&all, 100, 0).unwrap(),
        sqlite.logs(&all, 100, 0).unwrap()
    );
    for id in 1..=6 {
        assert_eq!(
            store.cost_audit(id).unwrap().map(|v| v.len()),
            sqlite.cost_audit(id).unwrap().map(|v| v.len())
        );
    }
}

fn thread_config(replica: &str) -> agent_cli_proxy_storage_pg::ThreadConfig {
    agent_cli_proxy_storage_pg::ThreadConfig {
        replica: replica.to_owned(),
        batch: 64,
        max_delay: std::time::Duration::from_millis(20),
        heartbeat: std::time::Duration::from_millis(100),
        host: "test-host".to_owned(),
        version: "0.1.0".to_owned(),
    }
}

fn fixed_clock() -> agent_cli_proxy_storage_pg::thread::Clock {
    Arc::new(|| NOW.to_owned())
}

/// The lost wake-up: an append landing between the ingester's disarm and its read finds the
/// bell armed and does not ring; without the re-arm before sleeping, the thread slept until
/// its heartbeat (30 s in `serve`; here 60 s, far past the 3 s allowed). The race is a few
/// instructions wide: many short rounds give it many chances, but a run without the fix can
/// still pass; the replicas outage case (`tests/tests/replicas.rs`) failed about one run in
/// three without it, through the real daemons.
#[test]
fn records_appended_while_the_pg_ingester_reads_are_never_left_behind() {
    use agent_cli_proxy_storage_pg::PgIngestHandle;
    use std::time::Duration;
    let pg = TestPg::start();
    let store = migrated(&pg);
    let dir = tempfile::tempdir().unwrap();
    let config = agent_cli_proxy_storage_pg::ThreadConfig {
        batch: 8,
        max_delay: Duration::from_millis(1),
        heartbeat: Duration::from_secs(60),
        ..thread_config("A")
    };
    let (handle, _) = PgIngestHandle::spawn(
        store,
        SpoolConfig::in_dir(dir.path()),
        config,
        fixed_clock(),
    )
    .unwrap();
    let spool = Arc::clone(handle.spool());
    for round in 0..40 {
        for i in 0..10 {
            let id = format!("r{round}-{i}");
            spool.append(&begin(&id, "m", NOW)).unwrap();
            spool
                .append(&end(&id, "m", 10, 1_000, Terminal::Completed))
                .unwrap();
        }
        // Stop appending: whatever is behind must be applied without a flush.
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while spool.stats().unapplied() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: {} records left behind with the ingester asleep",
                spool.stats().unapplied()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(handle.shutdown(), 0);
}

#[test]
fn the_ingest_thread_applies_concurrent_appends_once_and_flushes_on_demand() {
    use agent_cli_proxy_storage_pg::PgIngestHandle;
    use std::time::Duration;
    let pg = TestPg::start();
    let store = migrated(&pg);
    let dir = tempfile::tempdir().unwrap();
    let (handle, torn) = PgIngestHandle::spawn(
        store,
        SpoolConfig::in_dir(dir.path()),
        thread_config("A"),
        fixed_clock(),
    )
    .unwrap();
    assert!(torn.is_none());
    let spool = Arc::clone(handle.spool());
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let spool = Arc::clone(&spool);
            std::thread::spawn(move || {
                for i in 0..50 {
                    let id = format!("t{t}-{i}");
                    spool.append(&begin(&id, "m", NOW)).unwrap();
                    spool
                        .append(&end(&id, "m", 10, 1_000, Terminal::Completed))
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(handle.flush(Duration::from_secs(10)), 0);
    let mut check = PgStore::connect(&pg.url()).unwrap();
    assert_eq!(
        count(
            &mut check,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'completed'"
        ),
        200
    );
    assert_eq!(
        count(
            &mut check,
            "SELECT request_count FROM daily_usage WHERE model = 'm'"
        ),
        200
    );
    assert_eq!(check.applied_seq("A").unwrap(), 400);
    // The heartbeat recorded the replica.
    assert!(wait_until(|| count(
        &mut check,
        "SELECT COUNT(*) FROM replicas WHERE replica = 'A' AND host = 'test-host'"
    ) == 1));
    // Records appended after the last flush are applied by the shutdown.
    spool.append(&begin("late", "m", NOW)).unwrap();
    assert_eq!(handle.shutdown(), 0);
    assert_eq!(
        count(
            &mut check,
            "SELECT COUNT(*) FROM request_logs WHERE request_id = 'late'"
        ),
        1
    );
}

#[test]
fn the_ingest_thread_rides_out_an_outage_and_catches_up() {
    use agent_cli_proxy_storage_pg::PgIngestHandle;
    use std::time::Duration;
    let pg = TestPg::start();
    let store = migrated(&pg);
    let (handle, _) = PgIngestHandle::spawn(
        store,
        SpoolConfig::memory(),
        thread_config("A"),
        fixed_clock(),
    )
    .unwrap();
    pg.stop();
    for r in workload() {
        handle.spool().append(&r).unwrap();
    }
    assert!(
        handle.flush(Duration::from_millis(300)) > 0,
        "nothing can land yet"
    );
    assert!(handle.stats().failures() > 0);
    pg.restart();
    assert_eq!(handle.flush(Duration::from_secs(20)), 0);
    let mut check = PgStore::connect(&pg.url()).unwrap();
    assert_eq!(count(&mut check, "SELECT COUNT(*) FROM request_logs"), 6);
    assert_eq!(handle.shutdown(), 0);
}

#[test]
fn order_is_bytewise_even_in_a_database_with_a_language_collation() {
    let pg = TestPg::start();
    let mut admin = PgStore::connect(&pg.url()).unwrap();
    admin
        .client()
        .batch_execute(
            "CREATE DATABASE icu TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'
               LOCALE 'C'",
        )
        .unwrap();
    let mut store = PgStore::connect(&pg.url_for("icu")).unwrap();
    // The language collation orders these differently from SQLite's bytes…
    let natural: Vec<String> = store
        .client()
        .query(
            "SELECT m FROM (VALUES ('alpha'), ('Zeta')) v(m) ORDER BY m COLLATE \"default\"",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(natural, ["alpha", "Zeta"]);
    // …but the schema's columns are byte-ordered, so the answers stay SQLite's.
    store.migrate().unwrap();
    ingest_all(&mut store, "A", &spooled_batches(&workload(), 100));
    let models: Vec<String> = store
        .usage_today(DAY)
        .unwrap()
        .breakdown
        .into_iter()
        .map(|b| b.model)
        .collect();
    assert_eq!(models, ["Zeta", "alpha", "claude-sonnet"]);
}

#[test]
fn control_commands_give_sqlites_replies_and_reads() {
    use agent_cli_proxy_core::secret::Secret;
    use agent_cli_proxy_storage::op::{Correlation, NewApiKey, Op, QuotaSnapshotRow, Reply};
    let records = workload();
    let mut sqlite = Store::open(&DbPath::memory()).unwrap();
    sqlite.migrate().unwrap();
    let opened = Spool::open(SpoolConfig::memory(), 0, Arc::new(Doorbell::default())).unwrap();
    for r in &records {
        opened.spool.append(r).unwrap();
    }
    Ingester::new(
        Arc::clone(&opened.spool),
        opened.cursor,
        IngestConfig::default(),
    )
    .drain(sqlite.connection())
    .unwrap();
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    ingest_all(&mut store, "A", &spooled_batches(&records, 4));

    let correlate = |id: i64, source: Option<&str>, auth: Option<&str>| {
        Op::Correlate(Correlation {
            id,
            source: source.map(str::to_owned),
            auth_index: auth.map(str::to_owned),
            now: NOW.to_owned(),
        })
    };
    let quota = |ts: &str, account: &str| QuotaSnapshotRow {
        timestamp: ts.to_owned(),
        provider: "anthropic".to_owned(),
        account: account.to_owned(),
        quota_type: "5h".to_owned(),
        model: None,
        used_pct: Some(12.5),
        remaining: Some(87.5),
        remaining_raw: Some("87.50%".to_owned()),
        resets_at: None,
        raw_json: Some("{}".to_owned()),
    };
    let list = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let ops = vec![
        Op::CreateApiKey(NewApiKey {
            key: Secret::new("k".repeat(64)),
            name: "laptop".to_owned(),
            allowed_accounts: list(&[" a@x ", "a@x", "", "b@x"]),
            allowed_providers: None,
        }),
        Op::CreateApiKey(NewApiKey {
            key: Secret::new("z".repeat(64)),
            name: "ci \"runner\"".to_owned(),
            allowed_accounts: None,
            allowed_providers: list(&["anthropic"]),
        }),
        Op::UpdateApiKey {
            id: 1,
            allowed_accounts: Some(None),
            allowed_providers: Some(list(&["openai", "anthropic"])),
        },
        Op::TouchApiKey {
            id: 2,
            at: NOW.to_owned(),
        },
        Op::RevokeApiKey {
            id: 2,
            now: NOW.to_owned(),
        },
        Op::RevokeApiKey {
            id: 2,
            now: "2026-12-08T00:00:00.000Z".to_owned(),
        },
        Op::RevokeApiKey {
            id: 99,
            now: NOW.to_owned(),
        },
        Op::UpdateApiKey {
            id: 2,
            allowed_accounts: Some(list(&["late"])),
            allowed_providers: None,
        },
        correlate(1, Some("acct@x"), Some("7")),
        correlate(1, Some("other"), None),
        correlate(6, Some("acct@x"), Some("7")),
        correlate(3, Some("acct@y"), None),
        correlate(4, Some("acct@y"), Some("9")),
        correlate(2, Some(""), None),
        correlate(42, Some("acct@x"), None),
        Op::InsertQuotaSnapshots(vec![
            quota("2026-12-01T00:00:00.000Z", "acct@x"),
            quota(NOW, "acct@y"),
        ]),
        Op::PruneQuotaSnapshots {
            before: "2026-12-05T00:00:00.000Z".to_owned(),
        },
    ];
    for op in ops {
        let name = op.name();
        let mut lite = sqlite.execute(op.clone()).unwrap();
        let mut mine = store.execute("A", &op).unwrap();
        // `created_at` is each database's own clock.
        for reply in [&mut lite, &mut mine] {
            if let Reply::ApiKeyCreated(k) = reply {
                assert_eq!(k.created_at.len(), "2026-12-07 12:00:00".len());
                k.created_at.clear();
            }
        }
        assert_eq!(format!("{mine:?}"), format!("{lite:?}"), "{name}");
    }
    let strip = |mut keys: Vec<agent_cli_proxy_storage::queries::ApiKeyInfo>| {
        for k in &mut keys {
            k.created_at.clear();
        }
        keys
    };
    // Newest first: key 2 was created after key 1 (or in the same second, then by id).
    assert_eq!(
        strip(store.api_keys().unwrap()),
        strip(sqlite.api_keys().unwrap())
    );
    for id in [1, 2, 3] {
        assert_eq!(
            store.api_key_usage(id).unwrap(),
            sqlite.api_key_usage(id).unwrap()
        );
    }
    for key in ["k".repeat(64), "z".repeat(64), "nope".to_owned()] {
        assert_eq!(
            store.verify_api_key(&key).unwrap(),
            sqlite.verify_api_key(&key).unwrap()
        );
    }
    assert!(store.verify_api_key(&"k".repeat(64)).unwrap().is_some());
    for day in [DAY, "2026-12-06"] {
        assert_eq!(
            store.usage_accounts_day(day).unwrap(),
            sqlite.usage_accounts_day(day).unwrap()
        );
    }
    let (from, to) = ("2026-12-01", "2026-12-31");
    assert_eq!(
        store.usage_accounts_range(from, to).unwrap(),
        sqlite.usage_accounts_range(from, to).unwrap()
    );
    let summary = store.usage_accounts_summary(from, to).unwrap();
    assert_eq!(summary, sqlite.usage_accounts_summary(from, to).unwrap());
    let order: Vec<(String, Option<String>)> = summary
        .iter()
        .map(|s| (s.cliproxy_account.clone(), s.cliproxy_auth_index.clone()))
        .collect();
    assert_eq!(
        order,
        [
            ("acct@x".to_owned(), Some("7".to_owned())),
            ("acct@y".to_owned(), None),
            ("acct@y".to_owned(), Some("9".to_owned())),
        ],
        "cost first, then NULL before a value as in SQLite"
    );
    let all = LogFilter::default();
    assert_eq!(
        store.logs(&all, 100, 0).unwrap(),
        sqlite.logs(&all, 100, 0).unwrap()
    );
    assert_eq!(count(&mut store, "SELECT COUNT(*) FROM quota_snapshots"), 1);
    assert!(matches!(
        store.execute(
            "A",
            &Op::CheckpointUsage {
                id: 1,
                tokens: tokens(1)
            }
        ),
        Err(agent_cli_proxy_storage_pg::PgError::Unsupported(
            "CheckpointUsage"
        ))
    ));
}

#[test]
fn trend_quota_and_correlator_reads_equal_sqlites() {
    use agent_cli_proxy_core::admin::{DateRange, Span};
    use agent_cli_proxy_core::time::UnixMillis;
    use agent_cli_proxy_storage::op::{Correlation, Op, QuotaSnapshotRow};
    use agent_cli_proxy_storage::queries::TrendFilter;
    let mut records = workload();
    // A timestamp neither backend can read: left out of every bucket on both.
    records.push(begin(
        "bad-time",
        "claude-sonnet",
        "2026-12-07T25:99:00.000Z",
    ));
    records.push(end("bad-time", "claude-sonnet", 1, 1, Terminal::Completed));
    let mut sqlite = Store::open(&DbPath::memory()).unwrap();
    sqlite.migrate().unwrap();
    let opened = Spool::open(SpoolConfig::memory(), 0, Arc::new(Doorbell::default())).unwrap();
    for r in &records {
        opened.spool.append(r).unwrap();
    }
    Ingester::new(
        Arc::clone(&opened.spool),
        opened.cursor,
        IngestConfig::default(),
    )
    .drain(sqlite.connection())
    .unwrap();
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    ingest_all(&mut store, "A", &spooled_batches(&records, 4));
    let quota = |ts: &str, account: &str, used: f64| QuotaSnapshotRow {
        timestamp: ts.to_owned(),
        provider: "anthropic".to_owned(),
        account: account.to_owned(),
        quota_type: "5h".to_owned(),
        model: None,
        used_pct: Some(used),
        remaining: Some(100.0 - used),
        remaining_raw: None,
        resets_at: Some("2026-12-07T15:00:00.000Z".to_owned()),
        raw_json: None,
    };
    let ops = [
        Op::Correlate(Correlation {
            id: 2,
            source: Some("acct@x".to_owned()),
            auth_index: None,
            now: NOW.to_owned(),
        }),
        Op::InsertQuotaSnapshots(vec![
            quota("2026-12-07T09:00:00.000Z", "acct@x", 10.0),
            quota("2026-12-07T09:30:00.000Z", "acct@x", 20.0),
            quota("2026-12-07T10:10:00.000Z", "acct@x", 30.0),
            quota("2026-12-07T10:20:00.000Z", "acct@y", 5.0),
            quota("2026-12-07T10:20:00.000Z", "acct@y", 6.0),
        ]),
    ];
    for op in ops {
        sqlite.execute(op.clone()).unwrap();
        store.execute("A", &op).unwrap();
    }
    let now = UnixMillis(1_796_644_800_000); // 2026-12-07T12:00:00Z
    assert_eq!(now.to_iso(), NOW);
    let spans = [
        Span::ending_at(now, 5 * 3_600_000),
        Span::ending_at(now, 48 * 3_600_000),
        Span::of_range(&DateRange::new("2026-12-06", DAY).unwrap()),
    ];
    let filters = [
        TrendFilter::default(),
        TrendFilter {
            model: Some("claude-sonnet".to_owned()),
            ..TrendFilter::default()
        },
    ];
    for span in &spans {
        for f in &filters {
            let mine = store.usage_trend(span, f).unwrap();
            assert_eq!(mine, sqlite.usage_trend(span, f).unwrap(), "{span:?} {f:?}");
        }
        for (p, a) in [(None, None), (Some("anthropic"), Some("acct@y"))] {
            assert_eq!(
                store.quota_history(span, p, a).unwrap(),
                sqlite.quota_history(span, p, a).unwrap()
            );
        }
    }
    let requests: u64 = store
        .usage_trend(&spans[2], &TrendFilter::default())
        .unwrap()
        .buckets
        .iter()
        .map(|b| b.requests)
        .sum();
    assert_eq!(requests, 5, "the unreadable timestamp is in no bucket");
    for since in ["2026-12-01T00:00:00.000Z", "2026-12-07T10:15:00.000Z"] {
        assert_eq!(
            store.quotas_latest(since).unwrap(),
            sqlite.quotas_latest(since).unwrap()
        );
        assert_eq!(
            store.correlation_candidates(since, 10).unwrap(),
            sqlite.correlation_candidates(since, 10).unwrap()
        );
        assert_eq!(
            store.local_usage("acct@x", "anthropic", since).unwrap(),
            sqlite.local_usage("acct@x", "anthropic", since).unwrap()
        );
    }
    assert_eq!(store.quotas_latest("2026-12-01").unwrap().len(), 2);
    assert_eq!(
        store
            .local_usage("acct@x", "anthropic", "2026-12-01")
            .unwrap()
            .requests,
        1
    );
}

#[test]
fn the_cost_backfill_chunks_give_sqlites_outcomes() {
    use agent_cli_proxy_storage::op::{BackfillChunk, Correlation, Op, Reply};
    let records = workload();
    let mut sqlite = Store::open(&DbPath::memory()).unwrap();
    sqlite.migrate().unwrap();
    let opened = Spool::open(SpoolConfig::memory(), 0, Arc::new(Doorbell::default())).unwrap();
    for r in &records {
        opened.spool.append(r).unwrap();
    }
    Ingester::new(
        Arc::clone(&opened.spool),
        opened.cursor,
        IngestConfig::default(),
    )
    .drain(sqlite.connection())
    .unwrap();
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    ingest_all(&mut store, "A", &spooled_batches(&records, 4));
    // r3 (cost pending) gets an account, so its account bucket moves too.
    let correlate = Op::Correlate(Correlation {
        id: 3,
        source: Some("acct@y".to_owned()),
        auth_index: None,
        now: NOW.to_owned(),
    });
    sqlite.execute(correlate.clone()).unwrap();
    store.execute("A", &correlate).unwrap();
    let mut after_id = 0;
    let mut max_id = None;
    let mut chunks = 0;
    loop {
        let op = Op::BackfillChunk(BackfillChunk {
            after_id,
            max_id,
            limit: 1,
            since: None,
            recoster: Arc::new(Flat),
        });
        let lite = sqlite.execute(op.clone()).unwrap();
        let mine = store.execute("A", &op).unwrap();
        assert_eq!(format!("{mine:?}"), format!("{lite:?}"));
        let Reply::Backfill(outcome) = mine else {
            panic!("{mine:?}")
        };
        chunks += 1;
        max_id = outcome.max_id;
        match outcome.last_id {
            Some(last) => after_id = last,
            None => break,
        }
    }
    // r3 is the one candidate: r4 (the fallback) recorded no token, so nothing can change it.
    assert_eq!(chunks, 2);
    let all = LogFilter::default();
    assert_eq!(
        store.logs(&all, 100, 0).unwrap(),
        sqlite.logs(&all, 100, 0).unwrap()
    );
    assert_eq!(
        count(
            &mut store,
            "SELECT COUNT(*) FROM request_logs WHERE cost_status = 'ok' AND id = 3
               AND cost_nanousd = 17000"
        ),
        1
    );
    assert_eq!(
        store.usage_today(DAY).unwrap(),
        sqlite.usage_today(DAY).unwrap()
    );
    assert_eq!(
        store.usage_accounts_day(DAY).unwrap(),
        sqlite.usage_accounts_day(DAY).unwrap()
    );
    for id in 1..=6 {
        assert_eq!(
            store.cost_audit(id).unwrap().map(|v| v.len()),
            sqlite.cost_audit(id).unwrap().map(|v| v.len())
        );
    }
}

#[test]
fn two_replicas_ingesting_the_same_buckets_at_once_land_every_call_once() {
    use agent_cli_proxy_storage_pg::PgIngestHandle;
    use std::time::Duration;
    let pg = TestPg::start();
    migrated(&pg);
    let models = ["m-a", "m-b", "m-c", "m-d"];
    let replicas: Vec<PgIngestHandle> = ["A", "B"]
        .iter()
        .map(|r| {
            let config = agent_cli_proxy_storage_pg::ThreadConfig {
                batch: 16,
                max_delay: Duration::from_millis(1),
                ..thread_config(r)
            };
            PgIngestHandle::spawn(
                PgStore::connect(&pg.url()).unwrap(),
                SpoolConfig::memory(),
                config,
                fixed_clock(),
            )
            .unwrap()
            .0
        })
        .collect();
    std::thread::scope(|s| {
        for (r, handle) in replicas.iter().enumerate() {
            for t in 0..3 {
                let spool = Arc::clone(handle.spool());
                s.spawn(move || {
                    for i in 0..100usize {
                        let id = format!("{r}-{t}-{i}");
                        // Each writer walks the buckets in its own order.
                        let model = models[(i * (t + 1) + r) % models.len()];
                        spool.append(&begin(&id, model, NOW)).unwrap();
                        spool
                            .append(&end(&id, model, 5, 1_001, Terminal::Completed))
                            .unwrap();
                    }
                });
            }
        }
    });
    for handle in &replicas {
        assert_eq!(handle.flush(Duration::from_secs(60)), 0);
    }
    let mut check = PgStore::connect(&pg.url()).unwrap();
    assert_eq!(
        count(
            &mut check,
            "SELECT COUNT(DISTINCT request_id) FROM request_logs
             WHERE lifecycle_status = 'completed'"
        ),
        600
    );
    assert_eq!(count(&mut check, "SELECT COUNT(*) FROM request_logs"), 600);
    assert_eq!(
        count(
            &mut check,
            "SELECT COUNT(*) FROM daily_usage d WHERE (request_count, total_tokens,
               cost_nanousd) <> (SELECT COUNT(*), SUM(total_tokens), SUM(cost_nanousd)
               FROM request_logs l WHERE l.model = d.model)"
        ),
        0
    );
    assert_eq!(
        count(
            &mut check,
            "SELECT SUM(request_count)::bigint FROM daily_usage"
        ),
        600
    );
    for handle in replicas {
        // Buckets are written in one order by every replica: no deadlock, no retried batch.
        assert_eq!(handle.stats().failures(), 0);
        assert_eq!(handle.shutdown(), 0);
    }
}

/// `rec` with its call renamed `id`, made by `tool` on `client`, or its final `meta_json`
/// replaced by `meta`.
fn restyle(rec: Record, id: &str, tool: &str, client: &str, meta: Option<&str>) -> Record {
    match rename(rec, id) {
        Record::Begin(mut row) => {
            row.tool = tool.to_owned();
            row.client_id = client.to_owned();
            Record::Begin(row)
        }
        Record::End {
            request_id,
            mut row,
        } => {
            if let Some(meta) = meta {
                row.meta_json = meta.to_owned();
            }
            Record::End { request_id, row }
        }
        other => other,
    }
}

#[test]
fn dashboard_summary_and_series_equal_sqlites() {
    use agent_cli_proxy_storage::op::{Correlation, Op};
    use agent_cli_proxy_storage::queries::SeriesDimension;
    let mut records = workload();
    // Both ways of counting processed input (OpenAI's prompt includes the cache), text that
    // is not JSON, and other tools and clients to group by.
    for (id, tool, client, meta) in [
        (
            "o1",
            "codex",
            "ci",
            r#"{"usage_convention":"openai","x":1}"#,
        ),
        ("o2", "codex", "laptop", "not json {"),
        ("o3", "aider", "ci", r#"{"usage_convention":"anthropic"}"#),
        ("o4", "aider", "ci", r#"[{"usage_convention":"openai"}]"#),
    ] {
        let at = format!("{DAY}T20:00:00.000Z");
        records.push(restyle(begin("", "gpt", &at), id, tool, client, None));
        records.push(restyle(
            end("", "gpt", 1_000, 5_000, Terminal::Completed),
            id,
            tool,
            client,
            Some(meta),
        ));
    }
    let mut sqlite = Store::open(&DbPath::memory()).unwrap();
    sqlite.migrate().unwrap();
    let opened = Spool::open(SpoolConfig::memory(), 0, Arc::new(Doorbell::default())).unwrap();
    for r in &records {
        opened.spool.append(r).unwrap();
    }
    Ingester::new(
        Arc::clone(&opened.spool),
        opened.cursor,
        IngestConfig {
            batch: 4,
            ..IngestConfig::default()
        },
    )
    .drain(sqlite.connection())
    .unwrap();
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    ingest_all(&mut store, "A", &spooled_batches(&records, 4));
    // Accounts for the account series: ids are each backend's, found by request id.
    let all = LogFilter::default();
    for (request_id, account) in [("r1", "acct@x"), ("o1", "acct@y"), ("o3", "acct@x")] {
        let id_in = |rows: Vec<agent_cli_proxy_storage::queries::LogRow>| {
            rows.iter()
                .find(|r| r.request_id.as_deref() == Some(request_id))
                .map(|r| r.id)
                .unwrap()
        };
        let op = |id| {
            Op::Correlate(Correlation {
                id,
                source: Some(account.to_owned()),
                auth_index: None,
                now: NOW.to_owned(),
            })
        };
        let lite_id = id_in(sqlite.logs(&all, 100, 0).unwrap());
        sqlite.execute(op(lite_id)).unwrap();
        let pg_id = id_in(store.logs(&all, 100, 0).unwrap());
        store.execute("A", &op(pg_id)).unwrap();
    }

    let ranges = [
        ("2026-12-01", "2026-12-31"),
        (DAY, DAY),
        ("2026-12-06", "2026-12-06"),
        ("2027-01-01", "2027-01-31"),
    ];
    for (from, to) in ranges {
        assert_eq!(
            store.usage_summary(from, to).unwrap(),
            sqlite.usage_summary(from, to).unwrap(),
            "{from}..{to}"
        );
        for by in [
            SeriesDimension::Tool,
            SeriesDimension::Model,
            SeriesDimension::Provider,
            SeriesDimension::Client,
            SeriesDimension::Account,
        ] {
            assert_eq!(
                store.usage_series(from, to, by).unwrap(),
                sqlite.usage_series(from, to, by).unwrap(),
                "{from}..{to} {by:?}"
            );
        }
    }
    let month = store.usage_summary("2026-12-01", "2026-12-31").unwrap();
    // r5 is pending: left out.
    assert_eq!(month.requests, 9);
    // The OpenAI row counts its prompt alone (1 000); the others, text that is not JSON or
    // has no top-level convention included, add the cache (3 + 2); r4 has no usage.
    assert_eq!(
        month.input_processed_tokens,
        105 + 55 + 10 + 15 + 1_000 + 3 * 1_005
    );
    let tools = store
        .usage_series("2026-12-01", "2026-12-31", SeriesDimension::Tool)
        .unwrap();
    let names: Vec<&str> = tools.iter().map(|k| k.key.as_str()).collect();
    assert_eq!(
        names,
        ["claude-code", "aider", "codex"],
        "cost, then requests, then key"
    );
}

#[test]
fn the_read_pool_reopens_its_sessions_after_a_server_restart() {
    use agent_cli_proxy_storage::{Queries, StorageError};
    use agent_cli_proxy_storage_pg::PgReaders;
    use agent_cli_proxy_storage_pg::pool::IDLE_CHECK;
    use std::time::{Duration, Instant};
    let pg = TestPg::start();
    migrated(&pg);
    let readers = PgReaders::new(&pg.url(), 2).unwrap();
    assert_eq!(
        readers.open_connections(),
        0,
        "nothing opened before a read"
    );
    assert_eq!(readers.with(Queries::stats).unwrap().total_requests, 0);
    assert_eq!(readers.open_connections(), 1);

    // A session left idle across a restart is found dead at checkout and reopened: the
    // first read after the restart already succeeds.
    pg.stop();
    pg.restart();
    std::thread::sleep(IDLE_CHECK + Duration::from_millis(100));
    readers.with(Queries::ping).unwrap();
    assert_eq!(readers.open_connections(), 1);

    // Server down: reads fail at once (no hang), and a session that failed is not kept.
    pg.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let err = readers.with(Queries::ping).unwrap_err();
        assert!(matches!(err, StorageError::Server { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(6), "bounded");
    }
    assert_eq!(readers.open_connections(), 0);

    pg.restart();
    assert_eq!(readers.with(Queries::stats).unwrap().total_requests, 0);
    // Two callers at once get two sessions, never more than the pool's size.
    let clones: Vec<_> = (0..4)
        .map(|_| {
            let readers = readers.clone();
            std::thread::spawn(move || {
                readers.with(|s| {
                    s.client()
                        .batch_execute("SELECT pg_sleep(0.2)")
                        .map_err(|e| StorageError::Server {
                            message: e.to_string(),
                        })
                })
            })
        })
        .collect();
    for c in clones {
        c.join().unwrap().unwrap();
    }
    assert_eq!(readers.open_connections(), 2);
}

/// A started backend for replica `A` with its spool in `dir`.
fn backend(pg: &TestPg, dir: &std::path::Path) -> agent_cli_proxy_storage_pg::PgBackend {
    agent_cli_proxy_storage_pg::PgBackend::start(
        &pg.url(),
        "A",
        SpoolConfig::in_dir(dir),
        thread_config("replaced by A"),
        fixed_clock(),
    )
    .unwrap()
}

#[test]
fn the_backend_serves_commands_reads_and_flushes_and_stops_with_nothing_behind() {
    use agent_cli_proxy_core::secret::Secret;
    use agent_cli_proxy_storage::op::{CheckpointInfo, NewApiKey, Op, Reply};
    use agent_cli_proxy_storage::{Queries, StorageError, hash_key};
    use futures_lite::future::block_on;
    let pg = TestPg::start();
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&pg, dir.path());
    assert_eq!(b.boot_ingested, 0);
    assert!(b.torn.is_none());

    b.spool.append(&begin("r1", "m", NOW)).unwrap();
    b.spool
        .append(&end("r1", "m", 10, 1_000, Terminal::Completed))
        .unwrap();
    assert_eq!(
        block_on(b.writer.send(Op::SpoolFlush)).unwrap(),
        Reply::Flushed {
            behind: 0,
            lag_ms: 0
        }
    );
    // Read-your-writes through the pool and the read trait.
    let rows = b
        .readers
        .with(|s| Queries::logs(s, &LogFilter::default(), 10, 0))
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].request_id.as_deref(), Some("r1"));
    assert_eq!(rows[0].lifecycle_status, "completed");
    let summary = b
        .readers
        .with(|s| Queries::usage_summary(s, DAY, DAY))
        .unwrap();
    assert_eq!(summary.requests, 1);
    // The storage crate's counters, as `/metrics` reads them.
    assert_eq!(b.ingest.records(), 2);
    assert!(b.ingest.batches() >= 1);
    assert_eq!(b.ingest.failures(), 0);

    let key = "k".repeat(64);
    let Reply::ApiKeyCreated(created) = block_on(b.writer.send(Op::CreateApiKey(NewApiKey {
        key: Secret::new(key.clone()),
        name: "laptop".to_owned(),
        allowed_accounts: None,
        allowed_providers: None,
    })))
    .unwrap() else {
        panic!("not a created key")
    };
    let grant = b
        .readers
        .with(|s| Queries::verify_api_key_hash(s, &hash_key(&key)))
        .unwrap()
        .unwrap();
    assert_eq!(grant.id, created.id);
    // Fire-and-forget, as the data path sends it.
    b.writer
        .try_send(Op::TouchApiKey {
            id: created.id,
            at: "2026-12-07 12:00:00".to_owned(),
        })
        .unwrap();

    assert_eq!(
        block_on(b.writer.send(Op::WalCheckpoint)).unwrap(),
        Reply::Checkpoint(CheckpointInfo {
            busy: 0,
            log_frames: -1,
            checkpointed_frames: -1
        })
    );
    let err = block_on(b.writer.send(Op::CheckpointUsage {
        id: 1,
        tokens: tokens(1),
    }))
    .unwrap_err();
    assert!(
        matches!(&err, StorageError::Server { message } if message.contains("CheckpointUsage")),
        "{err:?}"
    );

    // Boot recovery judges pending rows only after the spool is in: r2's pre-log, still
    // spooled when the command is sent, is aborted; r1 is not touched.
    b.spool.append(&begin("r2", "m", NOW)).unwrap();
    let recovered = block_on(b.writer.send(Op::BootRecovery {
        now: NOW.to_owned(),
        recoster: Arc::new(Flat),
    }))
    .unwrap();
    assert_eq!(recovered, Reply::Count(1));
    let mut check = PgStore::connect(&pg.url()).unwrap();
    assert_eq!(
        count(
            &mut check,
            "SELECT COUNT(*) FROM request_logs WHERE request_id = 'r2'
               AND lifecycle_status = 'aborted' AND replica = 'A'"
        ),
        1
    );
    assert_eq!(
        count(
            &mut check,
            "SELECT COUNT(*) FROM api_keys WHERE last_used_at IS NOT NULL"
        ),
        1
    );

    // Shutdown applies what is still spooled and stops the thread; later commands find the
    // writer gone.
    b.spool.append(&begin("r3", "m", NOW)).unwrap();
    b.spool
        .append(&end("r3", "m", 10, 1_000, Terminal::Completed))
        .unwrap();
    assert_eq!(block_on(b.writer.send(Op::Shutdown)).unwrap(), Reply::Done);
    b.join.join().unwrap();
    assert_eq!(b.spool.stats().unapplied(), 0);
    assert_eq!(
        count(
            &mut check,
            "SELECT COUNT(*) FROM request_logs WHERE request_id = 'r3'
               AND lifecycle_status = 'completed'"
        ),
        1
    );
    assert_eq!(check.applied_seq("A").unwrap(), 5);
    assert!(matches!(
        block_on(b.writer.send(Op::SpoolFlush)),
        Err(StorageError::WriterGone)
    ));
}

#[test]
fn the_backend_answers_in_time_while_the_server_is_down_and_lands_everything_once_after() {
    use agent_cli_proxy_core::secret::Secret;
    use agent_cli_proxy_storage::op::{NewApiKey, Op, Reply};
    use agent_cli_proxy_storage::{Queries, StorageError};
    use agent_cli_proxy_storage_pg::backend::FLUSH_TIMEOUT;
    use futures_lite::future::block_on;
    use std::time::{Duration, Instant};
    let pg = TestPg::start();
    let dir = tempfile::tempdir().unwrap();
    let b = backend(&pg, dir.path());
    let new_key = |name: &str| {
        Op::CreateApiKey(NewApiKey {
            key: Secret::new(name.repeat(64)),
            name: name.to_owned(),
            allowed_accounts: None,
            allowed_providers: None,
        })
    };

    pg.stop();
    for r in workload() {
        b.spool.append(&r).unwrap();
    }
    let started = Instant::now();
    let reply = block_on(b.writer.send(Op::SpoolFlush)).unwrap();
    assert!(started.elapsed() < FLUSH_TIMEOUT + Duration::from_secs(1));
    let Reply::Flushed { behind, lag_ms } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(behind, 12, "every record still spooled");
    assert!(lag_ms > 0);
    let started = Instant::now();
    let err = block_on(b.writer.send(new_key("a"))).unwrap_err();
    assert!(matches!(err, StorageError::Server { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(6), "no hang");
    assert!(b.readers.with(Queries::ping).is_err());
    assert!(b.ingest.failures() > 0);

    pg.restart();
    let mut caught_up = false;
    for _ in 0..10 {
        if block_on(b.writer.send(Op::SpoolFlush)).unwrap()
            == (Reply::Flushed {
                behind: 0,
                lag_ms: 0,
            })
        {
            caught_up = true;
            break;
        }
    }
    assert!(caught_up, "the spool drains once the server is back");
    // The control session is reopened: commands work again.
    assert!(matches!(
        block_on(b.writer.send(new_key("b"))).unwrap(),
        Reply::ApiKeyCreated(_)
    ));
    assert_eq!(b.readers.with(Queries::stats).unwrap().total_requests, 6);
    let mut check = PgStore::connect(&pg.url()).unwrap();
    assert_eq!(
        count(
            &mut check,
            "SELECT COUNT(DISTINCT request_id) FROM request_logs"
        ),
        6
    );
    assert_eq!(
        count(
            &mut check,
            "SELECT SUM(request_count)::bigint FROM daily_usage"
        ),
        count(
            &mut check,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status != 'pending'"
        )
    );
    // The refused command did not land; the later one did.
    assert_eq!(count(&mut check, "SELECT COUNT(*) FROM api_keys"), 1);
    assert_eq!(block_on(b.writer.send(Op::Shutdown)).unwrap(), Reply::Done);
    b.join.join().unwrap();
    assert_eq!(b.spool.stats().unapplied(), 0);
}

/// Everything ingestion writes (rows, audit rows, `daily_usage`), with the ids left out (a
/// refused insert still takes an id from the sequence) but in id order, audit rows named by
/// their call.
fn ingested(store: &mut PgStore) -> [Vec<String>; 3] {
    let mut out: [Vec<String>; 3] = Default::default();
    for (part, sql) in [
        "SELECT (to_jsonb(r) - 'id')::text FROM request_logs r ORDER BY id",
        "SELECT (to_jsonb(a) - 'id' - 'request_log_id' - 'calc_at'
           || jsonb_build_object('call', l.request_id))::text
         FROM cost_audit a JOIN request_logs l ON l.id = a.request_log_id ORDER BY a.id",
        "SELECT to_jsonb(d)::text FROM daily_usage d ORDER BY day, provider, model",
    ]
    .into_iter()
    .enumerate()
    {
        for row in store.client().query(sql, &[]).unwrap() {
            out[part].push(row.get(0));
        }
    }
    out
}

/// Pairs, lone `Begin`s, a `Usage` inside a pair, `End`s and a `Fallback` of calls begun in
/// an earlier batch (or the same one, by batch size), and a second `End` of a call.
fn mixed_workload() -> Vec<Record> {
    let mut records = workload();
    records.extend([
        begin("p1", "claude-sonnet", "2026-12-07T06:00:00.000Z"),
        begin("p2", "Zeta", "2026-12-07T06:00:01.000Z"),
        end("p1", "claude-sonnet", 70, 7_000, Terminal::Completed),
        Record::Usage {
            request_id: "p2".to_owned(),
            tokens: tokens(9),
        },
        end("p2", "Zeta", 80, 8_000, Terminal::Aborted),
        end("r5", "claude-sonnet", 90, 9_000, Terminal::Completed),
        begin("p3", "alpha", "2026-12-07T06:00:02.000Z"),
        end("p1", "claude-sonnet", 71, 7_100, Terminal::Completed),
        Record::Fallback {
            request_id: "p3".to_owned(),
            message: "disk I/O error".to_owned(),
            now: NOW.to_owned(),
        },
        begin("p4", "alpha", "2026-12-07T06:00:03.000Z"),
    ]);
    records
}

/// The multi-row path leaves the database as one record at a time does: the same batches at
/// sizes from 1 (every `Begin` alone, every `End` a later one) to all at once, and the same
/// batch forced through the per-record path by a record the server refuses.
#[test]
fn a_batch_mixing_pairs_lone_begins_and_later_ends_lands_as_one_record_at_a_time_does() {
    let pg = TestPg::start();
    let records = mixed_workload();
    let mut dumps = Vec::new();
    for size in [1, 3, 5, records.len()] {
        let mut store = PgStore::connect(&pg.create_database(&format!("size_{size}"))).unwrap();
        store.migrate().unwrap();
        ingest_all(&mut store, "A", &spooled_batches(&records, size));
        assert_eq!(store.applied_seq("A").unwrap(), records.len() as u64);
        // Ids keep the order the calls began in.
        let order: Vec<String> = store
            .client()
            .query("SELECT request_id FROM request_logs ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            order,
            ["r1", "r2", "r3", "r4", "r5", "r6", "p1", "p2", "p3", "p4"],
            "size {size}"
        );
        dumps.push((size, ingested(&mut store)));
    }
    // The refused record sends the whole batch through the per-record path (one savepoint
    // per record), the behaviour before the multi-row statements.
    let mut refused = records.clone();
    refused.insert(14, begin("bad", "m\0", "2026-12-07T06:00:00.500Z"));
    let mut store = PgStore::connect(&pg.create_database("refused")).unwrap();
    store.migrate().unwrap();
    let batches = spooled_batches(&refused, refused.len());
    let outcome = store
        .apply_batch("A", &batches[0].0, Some(batches[0].1), NOW)
        .unwrap();
    assert_eq!(outcome.rejected.len(), 1, "{outcome:?}");
    assert_eq!(outcome.rejected[0].0, 15);
    assert!(outcome.orphans.is_empty(), "{outcome:?}");
    assert_eq!(
        (outcome.applied, outcome.applied_seq),
        (refused.len() - 1, refused.len() as u64)
    );
    let per_record = ingested(&mut store);
    assert_eq!(per_record[0].len(), 10, "{per_record:?}");
    for (size, dump) in &dumps {
        if *size == records.len() {
            assert_eq!(dump, &per_record, "the same batch");
        } else {
            // An `End` in a later batch writes its audit row with that batch, so only the
            // audit rows' order depends on where batches end (one record at a time too).
            let sorted = |v: &Vec<String>| {
                let mut v = v.clone();
                v.sort_unstable();
                v
            };
            assert_eq!(dump[0], per_record[0], "batch size {size}");
            assert_eq!(
                sorted(&dump[1]),
                sorted(&per_record[1]),
                "batch size {size}"
            );
            assert_eq!(dump[2], per_record[2], "batch size {size}");
        }
    }
}

/// A `Begin` and its `End` in one batch meeting the call's pending row from an earlier batch
/// (the conflict branch of the multi-row insert): finalized once, audited once, counted once.
#[test]
fn a_pair_meeting_its_pending_row_from_an_earlier_batch_finalizes_it_once() {
    let pg = TestPg::start();
    let mut store = migrated(&pg);
    let at = "2026-12-07T01:00:00.000Z";
    let first = spooled_batches(&[begin("q", "m", at), begin("lone", "m", at)], 10);
    ingest_all(&mut store, "A", &first);
    let second = [
        begin("q", "m", at),
        begin("new", "m", at),
        end("q", "m", 5, 500, Terminal::Completed),
        end("new", "m", 6, 600, Terminal::Completed),
        begin("lone", "m", at),
    ];
    let opened = Spool::open(SpoolConfig::memory(), 2, Arc::new(Doorbell::default())).unwrap();
    for r in &second {
        opened.spool.append(r).unwrap();
    }
    let mut buf = Vec::new();
    let next = opened.spool.read(opened.cursor, 10, &mut buf).unwrap();
    assert_eq!(buf.first().map(|(s, _)| *s), Some(3));
    let outcome = store.apply_batch("A", &buf, Some(next), NOW).unwrap();
    assert_eq!(
        (outcome.applied, outcome.applied_seq),
        (5, 7),
        "{outcome:?}"
    );
    let rows: Vec<(String, String, i64)> = store
        .client()
        .query(
            "SELECT request_id, lifecycle_status, prompt_tokens FROM request_logs ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        [
            ("q".to_owned(), "completed".to_owned(), 5),
            ("lone".to_owned(), "pending".to_owned(), 0),
            ("new".to_owned(), "completed".to_owned(), 6),
        ]
    );
    assert_eq!(count(&mut store, "SELECT COUNT(*) FROM cost_audit"), 2);
    assert_eq!(
        count(
            &mut store,
            "SELECT request_count + cost_nanousd FROM daily_usage WHERE model = 'm'"
        ),
        2 + 1_100
    );
}

/// A backlog larger than the shutdown's bound: the stop returns in time, says how much is
/// left, and the next start applies the rest, every call exactly once.
#[test]
fn shutdown_is_bounded_and_the_next_start_applies_the_rest_once() {
    use agent_cli_proxy_storage_pg::PgIngestHandle;
    use std::time::{Duration, Instant};
    let pg = TestPg::start();
    let dir = tempfile::tempdir().unwrap();
    // Small batches, so the backlog takes many of them.
    let config = agent_cli_proxy_storage_pg::ThreadConfig {
        batch: 16,
        max_delay: Duration::from_millis(1),
        ..thread_config("A")
    };
    let (handle, _) = PgIngestHandle::spawn(
        migrated(&pg),
        SpoolConfig::in_dir(dir.path()),
        config.clone(),
        fixed_clock(),
    )
    .unwrap();
    let calls = 20_000;
    for i in 0..calls {
        let id = format!("c{i}");
        handle.spool().append(&begin(&id, "m", NOW)).unwrap();
        handle
            .spool()
            .append(&end(&id, "m", 1, 10, Terminal::Completed))
            .unwrap();
    }
    let budget = Duration::from_millis(300);
    let started = Instant::now();
    let left = handle.shutdown_within(budget);
    let took = started.elapsed();
    // The bound plus the batch running when it passed, with room for a loaded machine.
    assert!(took < budget + Duration::from_secs(2), "{took:?}");
    assert!(left > 0, "the backlog should outlast {budget:?}");
    let mut store = migrated(&pg);
    let applied = store.applied_seq("A").unwrap();
    assert_eq!(applied + left, 2 * calls);
    let (handle, _) = PgIngestHandle::spawn(
        migrated(&pg),
        SpoolConfig::in_dir(dir.path()),
        config,
        fixed_clock(),
    )
    .unwrap();
    assert_eq!(handle.boot_ingested(), left);
    assert_eq!(handle.shutdown(), 0);
    assert_eq!(store.applied_seq("A").unwrap(), 2 * calls);
    assert_eq!(
        count(
            &mut store,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'completed'"
        ),
        calls as i64
    );
    assert_eq!(
        count(&mut store, "SELECT request_count FROM daily_usage"),
        calls as i64
    );
}
