//! CI-9: schema assertion, PRAGMAs on every connection kind, migrations from empty, 0.2.x
//! and 0.1.x databases with every row kept, and `db init` twice as a no-op.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/helpers.rs"]
mod helpers;

use agent_cli_proxy_storage::schema::{self, Layout};
use agent_cli_proxy_storage::{ConnOptions, DbPath, Readers, StorageError, Store};
use helpers::*;
use rusqlite::Connection;

const TABLES: &[&str] = &[
    "request_logs",
    "daily_usage",
    "daily_account_usage",
    "cost_audit",
    "quota_snapshots",
];

fn build(sql: &str) -> (tempfile::TempDir, DbPath) {
    let (dir, path) = temp_db();
    let conn = Connection::open(path.file().unwrap()).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    (dir, path)
}

fn counts(store: &Store) -> Vec<i64> {
    TABLES
        .iter()
        .map(|t| count(store, &format!("SELECT COUNT(*) FROM {t}")))
        .collect()
}

#[test]
fn empty_database_gets_every_migration_and_passes_the_assertion() {
    let (_dir, path) = temp_db();
    let (store, report) = Store::open_and_migrate(&path).unwrap();
    assert_eq!(report.layout, Layout::Empty);
    assert_eq!(
        report.applied,
        vec![schema::M001, schema::M002, schema::M003, schema::M004]
    );
    store.assert_schema().unwrap();
    assert_eq!(
        schema::recorded_migrations(store.connection()).unwrap(),
        vec![schema::M001, schema::M002, schema::M003, schema::M004]
    );
}

#[test]
fn db_init_twice_is_a_no_op() {
    let (_dir, path) = temp_db();
    let (store, _) = Store::open_and_migrate(&path).unwrap();
    let before: Vec<(String, String)> = {
        let mut s = store
            .connection()
            .prepare("SELECT name, applied_at FROM schema_migrations ORDER BY name")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let schema_before: Vec<String> = schema_sql(&store);
    drop(store);
    let (store, report) = Store::open_and_migrate(&path).unwrap();
    assert_eq!(report.layout, Layout::V02);
    assert!(report.applied.is_empty(), "{:?}", report.applied);
    assert_eq!(schema_sql(&store), schema_before);
    let after: i64 = count(&store, "SELECT COUNT(*) FROM schema_migrations");
    assert_eq!(after as usize, before.len());
}

fn schema_sql(store: &Store) -> Vec<String> {
    let mut s = store
        .connection()
        .prepare("SELECT COALESCE(sql, name) FROM sqlite_master ORDER BY name")
        .unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn schema_assertion_lists_missing_columns_and_indexes_in_check_order() {
    let (_dir, path) = temp_db();
    let store = migrated(&path);
    store
        .connection()
        .execute_batch(
            "DROP INDEX idx_request_logs_tool; DROP INDEX idx_cost_audit_request_log_id;
             ALTER TABLE request_logs DROP COLUMN usage_incomplete;
             ALTER TABLE api_keys DROP COLUMN last_used_at;",
        )
        .unwrap();
    let err = store.assert_schema().unwrap_err();
    assert_eq!(
        err.to_string(),
        "schema assertion failed: missing request_logs.usage_incomplete, \
         api_keys.last_used_at, index.idx_request_logs_tool, \
         index.idx_cost_audit_request_log_id"
    );
    assert!(matches!(err, StorageError::SchemaAssertion { .. }));
}

#[test]
fn pragmas_read_back_on_writer_and_reader_connections() {
    let (_dir, path) = temp_db();
    let store = migrated(&path);
    let w = store.pragmas().unwrap();
    assert_eq!(w.journal_mode, "wal");
    assert_eq!(w.synchronous, 1);
    assert_eq!(w.busy_timeout, 5000);
    assert_eq!(w.journal_size_limit, 67_108_864);
    assert_eq!(w.foreign_keys, 0);

    let readers = Readers::new(path.clone(), ConnOptions::default());
    let r = readers.with(|s| s.pragmas()).unwrap();
    assert_eq!(r.journal_mode, "wal");
    assert_eq!(r.synchronous, 1);
    assert_eq!(r.busy_timeout, 5000);
    assert_eq!(r.foreign_keys, 0);
    let ro = Store::open_read_only(&path).unwrap();
    assert!(
        ro.connection()
            .execute("DELETE FROM daily_usage", [])
            .is_err()
    );
}

#[test]
fn memory_database_is_shared_between_writer_and_readers() {
    let path = DbPath::from_config(":memory:");
    let mut store = migrated(&path);
    let id = match store
        .execute(agent_cli_proxy_storage::Op::PreLog(Box::new(prelog(
            "anthropic",
            "m",
            "2026-05-04T10:00:00.000Z",
        ))))
        .unwrap()
    {
        agent_cli_proxy_storage::Reply::RowId(id) => id,
        other => panic!("{other:?}"),
    };
    let readers = Readers::new(path.clone(), ConnOptions::default());
    let row = readers.with(|s| s.log_by_id(id)).unwrap().unwrap();
    assert_eq!(row.provider, "anthropic");
    // A second :memory: is a different database.
    assert_ne!(DbPath::from_config(":memory:"), path);
}

#[test]
fn v02_database_is_upgraded_in_place_keeping_every_row() {
    let (_dir, path) = build(&fixture("v02.sql"));
    let before = {
        let s = Store::open_read_only(&path).unwrap();
        assert_eq!(schema::detect_layout(s.connection()).unwrap(), Layout::V02);
        counts(&s)
    };
    let (store, report) = Store::open_and_migrate(&path).unwrap();
    assert_eq!(report.layout, Layout::V02);
    assert_eq!(report.applied, vec![schema::M003, schema::M004]);
    assert_eq!(counts(&store), before);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM api_keys"), 1);
    // Exact costs derived from the REAL ones.
    assert_eq!(
        count(&store, "SELECT cost_nanousd FROM request_logs WHERE id = 1"),
        12_300_000
    );
    assert_eq!(
        count(&store, "SELECT SUM(cost_nanousd) FROM daily_usage"),
        12_300_000
    );
    assert_eq!(
        count(&store, "SELECT cost_nanousd FROM daily_account_usage"),
        12_300_000
    );
    assert_eq!(
        count(&store, "SELECT cost_nanousd FROM cost_audit"),
        12_300_000
    );
    // The unique msg_id index became non-unique.
    let unique = count(
        &store,
        "SELECT \"unique\" FROM pragma_index_list('request_logs')
         WHERE name = 'idx_request_logs_msg_id'",
    );
    assert_eq!(unique, 0);
    assert_eq!(
        schema::recorded_migrations(store.connection()).unwrap(),
        vec![schema::M001, schema::M002, schema::M003, schema::M004]
    );
    assert_eq!(store.pragmas().unwrap().journal_mode, "wal");
    drop(store);
    let (_, again) = Store::open_and_migrate(&path).unwrap();
    assert!(again.applied.is_empty());
}

#[test]
fn v01_database_is_upgraded_in_place_keeping_every_row() {
    let (_dir, path) = build(&fixture("v01.sql"));
    let before = {
        let s = Store::open_read_only(&path).unwrap();
        assert_eq!(schema::detect_layout(s.connection()).unwrap(), Layout::V01);
        assert_eq!(s.pragmas().unwrap().journal_mode, "delete");
        counts(&s)
    };
    let (store, report) = Store::open_and_migrate(&path).unwrap();
    assert_eq!(report.layout, Layout::V01);
    assert_eq!(
        report.applied,
        vec![schema::LEGACY, schema::M003, schema::M004]
    );
    assert_eq!(counts(&store), before);
    store.assert_schema().unwrap();
    // 0.1-only tables and columns stay.
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM account_subscriptions"),
        1
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM request_logs WHERE subscription_code = 'sub-1'"
        ),
        1
    );
    // The original's names are kept; ours are added.
    let names = schema::recorded_migrations(store.connection()).unwrap();
    for n in [
        "001_init.sql",
        "002_agent_attribution.sql",
        "007_drop_msg_id_unique.sql",
        "002_quota_local_usage_index.sql",
        "003_exact_cost.sql",
        "004_spool_position.sql",
        "legacy-0.1-upgrade",
    ] {
        assert!(names.iter().any(|x| x == n), "missing {n} in {names:?}");
    }
    assert_eq!(names.len(), 11);
    assert_eq!(
        count(&store, "SELECT cost_nanousd FROM request_logs WHERE id = 1"),
        12_300_000
    );
    // New columns have their defaults on old rows.
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM request_logs WHERE usage_incomplete = 0
               AND cache_write_1h_tokens = 0 AND actual_provider IS NULL"
        ),
        3
    );
    assert_eq!(store.pragmas().unwrap().journal_mode, "wal");
    drop(store);
    let (store, again) = Store::open_and_migrate(&path).unwrap();
    assert_eq!(again.layout, Layout::V02);
    assert!(again.applied.is_empty());
    assert_eq!(counts(&store), before);
}

#[test]
fn upgraded_v01_rows_take_part_in_boot_recovery() {
    let (_dir, path) = build(&fixture("v01.sql"));
    let mut store = migrated(&path);
    let n = match store
        .execute(agent_cli_proxy_storage::Op::BootRecovery {
            now: "2026-05-04T10:00:00.000Z".into(),
            recoster: flat(10),
        })
        .unwrap()
    {
        agent_cli_proxy_storage::Reply::Count(n) => n,
        other => panic!("{other:?}"),
    };
    assert_eq!(n, 1);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM request_logs WHERE lifecycle_status = 'pending'"
        ),
        0
    );
    assert_eq!(
        count(&store, "SELECT cost_nanousd FROM request_logs WHERE id = 3"),
        5000
    );
}
