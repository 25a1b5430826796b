//! Reading the proxy's database from a test: rows as JSON objects keyed by column name, and
//! polling until the writer thread has committed what the test waits for.
//!
//! Every call opens a fresh read-only connection, so each poll sees the latest commit of the
//! writer (WAL readers see the snapshot of their own transaction only).

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{OpenFlags, ToSql};
use serde_json::{Map, Value};

/// Runs `sql` with `params` and returns every row as a JSON object keyed by column name
/// (integers and reals as numbers, text as strings, blobs as lower-case hex, NULL as null).
/// An unreadable database (not created yet, locked past the busy timeout) gives an error.
pub fn query(db: &Path, sql: &str, params: &[&dyn ToSql]) -> rusqlite::Result<Vec<Value>> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(db, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut stmt = conn.prepare(sql)?;
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let rows = stmt.query_map(params, |row| {
        let mut object = Map::new();
        for (i, name) in names.iter().enumerate() {
            object.insert(name.clone(), json_of(row.get_ref(i)?));
        }
        Ok(Value::Object(object))
    })?;
    rows.collect()
}

/// [`query`] that panics (failing the test) on a database error.
pub fn rows(db: &Path, sql: &str, params: &[&dyn ToSql]) -> Vec<Value> {
    match query(db, sql, params) {
        Ok(rows) => rows,
        Err(err) => panic!("query {sql:?} on {} failed: {err}", db.display()),
    }
}

/// The single integer `sql` returns (for `SELECT COUNT(*) …`); panics on error.
pub fn scalar(db: &Path, sql: &str, params: &[&dyn ToSql]) -> i64 {
    let found = rows(db, sql, params);
    let value = found
        .first()
        .and_then(Value::as_object)
        .and_then(|o| o.values().next())
        .and_then(Value::as_i64);
    match value {
        Some(n) => n,
        None => panic!("query {sql:?} returned no integer: {found:?}"),
    }
}

/// The integer `sql` returns once it has held still for 300 ms: rows reach the database from
/// the spool within `SPOOL_INGEST_MAX_DELAY_MS` (50 ms by default, `docs/spool.md` S7), so a
/// count read at once could miss rows still on their way. Gives up after 10 s.
pub fn settled_scalar(db: &Path, sql: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = query(db, sql, &[]).ok().and_then(|r| first_int(&r));
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(25));
        let now = query(db, sql, &[]).ok().and_then(|r| first_int(&r));
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_millis(300) || Instant::now() >= deadline {
            return last.unwrap_or_else(|| panic!("query {sql:?} returned no integer"));
        }
    }
}

fn first_int(rows: &[Value]) -> Option<i64> {
    rows.first()
        .and_then(Value::as_object)
        .and_then(|o| o.values().next())
        .and_then(Value::as_i64)
}

/// Where `daily_usage` differs from the aggregate of the finalized rows (`docs/accounting.md`
/// §6.1), one line per bucket; empty when they agree.
pub fn aggregate_mismatches(db: &Path) -> Vec<String> {
    rows(
        db,
        "WITH agg AS (
           SELECT substr(started_at, 1, 10) AS day, provider, model, COUNT(*) AS n,
             SUM(total_tokens) AS t, SUM(cost_nanousd) AS cost
           FROM request_logs WHERE lifecycle_status != 'pending' GROUP BY 1, 2, 3)
         SELECT a.day, a.provider, a.model, a.n, d.request_count, a.t, d.total_tokens,
                a.cost, d.cost_nanousd
         FROM agg a LEFT JOIN daily_usage d
           ON d.day = a.day AND d.provider = a.provider AND d.model = a.model
         WHERE d.day IS NULL OR d.request_count != a.n OR d.total_tokens != a.t
           OR d.cost_nanousd != a.cost",
        &[],
    )
    .into_iter()
    .map(|r| format!("daily_usage differs from the rows: {r}"))
    .collect()
}

/// Every `request_logs` row whose `msg_id` is `msg_id`, oldest first.
pub fn rows_by_msg_id(db: &Path, msg_id: &str) -> Vec<Value> {
    rows(
        db,
        "SELECT * FROM request_logs WHERE msg_id = ?1 ORDER BY id",
        &[&msg_id],
    )
}

/// Polls every 20 ms until `pred` holds for the rows `sql` returns, or `timeout` passes;
/// returns the last rows read and whether `pred` held. Database errors count as "not yet".
pub fn wait_rows(
    db: &Path,
    sql: &str,
    params: &[&dyn ToSql],
    timeout: Duration,
    pred: impl Fn(&[Value]) -> bool,
) -> (Vec<Value>, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        let found = query(db, sql, params).unwrap_or_default();
        if pred(&found) {
            return (found, true);
        }
        if Instant::now() >= deadline {
            return (found, false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits up to `timeout` for exactly one row with `msg_id` that has left `pending`, and
/// returns it; panics with what was found otherwise.
pub fn final_row(db: &Path, msg_id: &str, timeout: Duration) -> Value {
    let (found, ok) = wait_rows(
        db,
        "SELECT * FROM request_logs WHERE msg_id = ?1 ORDER BY id",
        &[&msg_id],
        timeout,
        |rows| rows.len() == 1 && rows[0]["lifecycle_status"] != "pending",
    );
    match (ok, found.into_iter().next()) {
        (true, Some(row)) => row,
        (_, row) => panic!("no finalized row for msg_id {msg_id} within {timeout:?}: {row:?}"),
    }
}

/// Async form of [`final_row`] for cases on a tokio runtime (the polling runs on the
/// blocking pool so the runtime's other tasks keep going).
pub async fn final_row_async(db: &Path, msg_id: &str, timeout: Duration) -> Value {
    let db = db.to_path_buf();
    let msg_id = msg_id.to_owned();
    match tokio::task::spawn_blocking(move || final_row(&db, &msg_id, timeout)).await {
        Ok(row) => row,
        Err(err) => panic!("row polling task failed: {err}"),
    }
}

/// `meta_json` of a row parsed as JSON (null when absent or not JSON).
pub fn meta(row: &Value) -> Value {
    row["meta_json"]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}

fn json_of(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::from(n),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::from(hex::encode(b)),
    }
}
