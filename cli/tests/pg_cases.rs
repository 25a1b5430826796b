//! The commands on PostgreSQL (`docs/replicas.md` §1, §4, §7, §8), against a throw-away
//! server (`tests/src/support/pg.rs`). Every URL handed to the CLI carries a password
//! (trust authentication ignores it) that no output may show.

use std::path::Path;
use std::sync::Arc;

use agent_cli_proxy_core::usage::TokenColumns;
use agent_cli_proxy_storage::op::{AuditInfo, CostStatus, FinalizeRow, PreLogRow, Terminal};
use agent_cli_proxy_storage::spool::{Doorbell, Record, Spool, SpoolConfig};
use agent_cli_proxy_storage::{DbLock, DbPath};
use serde_json::Value;

use crate::cases::configured;
use crate::pg::TestPg;
use crate::support::{Row, Run, Sandbox, insert_rows, s};

const PASSWORD: &str = "Sesame-4417-not-for-output";

/// The tables `db copy` fills, in its order.
const TABLES: [&str; 6] = [
    "api_keys",
    "request_logs",
    "daily_usage",
    "daily_account_usage",
    "cost_audit",
    "quota_snapshots",
];

/// Creates database `name` and returns its URL with the password in it.
fn secret_url(pg: &TestPg, name: &str) -> String {
    pg.create_database(name);
    format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{}/{name}?sslmode=disable",
        pg.port()
    )
}

fn no_secret(r: &Run) {
    assert!(
        !r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD),
        "the password was printed: {r:?}"
    );
}

fn one_error_line(r: &Run) -> &str {
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr: {r:?}");
    lines[0]
}

/// Rows per table and the `daily_usage` sums (requests, tokens, nano-USD) of a SQLite file.
fn sqlite_figures(db: &Path) -> (Vec<i64>, [i64; 3]) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let counts = TABLES
        .iter()
        .map(|t| {
            conn.query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
                .unwrap()
        })
        .collect();
    let sums = conn
        .query_row(
            "SELECT COALESCE(SUM(request_count), 0), COALESCE(SUM(total_tokens), 0),
                    COALESCE(SUM(cost_nanousd), 0) FROM daily_usage",
            [],
            |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]),
        )
        .unwrap();
    (counts, sums)
}

/// The same figures read from PostgreSQL.
fn pg_figures(url: &str) -> (Vec<i64>, [i64; 3]) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let counts = TABLES
        .iter()
        .map(|t| {
            client
                .query_one(&format!("SELECT COUNT(*) FROM {t}"), &[])
                .unwrap()
                .get(0)
        })
        .collect();
    let r = client
        .query_one(
            "SELECT COALESCE(SUM(request_count), 0)::bigint, COALESCE(SUM(total_tokens), 0)::bigint,
                    COALESCE(SUM(cost_nanousd), 0)::bigint FROM daily_usage",
            &[],
        )
        .unwrap();
    (counts, [r.get(0), r.get(1), r.get(2)])
}

/// One printed line of `db copy`: name, SQLite's figure, PostgreSQL's.
type Line = (String, i64, i64);

/// The printed table of `db copy`: the tables' lines, then the sums'.
fn printed(stdout: &str) -> (Vec<Line>, Vec<Line>) {
    let mut tables = Vec::new();
    let mut sums = Vec::new();
    let mut section = 0;
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["table", "SQLite", "PostgreSQL"] => section = 1,
            ["daily_usage", "sums", "SQLite", "PostgreSQL"] => section = 2,
            [name, a, b] if section > 0 => {
                let row = (name.to_string(), a.parse().unwrap(), b.parse().unwrap());
                if section == 1 { &mut tables } else { &mut sums }.push(row);
            }
            _ => {}
        }
    }
    (tables, sums)
}

/// A successful copy printed, logged and stored the source's figures.
fn check_copy(r: &Run, source: &Path, target_url: &str, dbname: &str) {
    r.expect_code(0);
    no_secret(r);
    let (counts, sums) = sqlite_figures(source);
    assert!(
        counts[1] > 0 && sums[0] > 0,
        "the source has rows: {counts:?}"
    );
    assert!(
        r.stdout.contains(&format!(
            "Copied {} to PostgreSQL database {dbname} on 127.0.0.1:",
            s(source)
        )),
        "{r:?}"
    );
    let (tables, printed_sums) = printed(&r.stdout);
    let expected: Vec<Line> = TABLES
        .iter()
        .zip(&counts)
        .map(|(t, n)| (t.to_string(), *n, *n))
        .collect();
    assert_eq!(tables, expected, "{}", r.stdout);
    let expected_sums: Vec<Line> = ["request_count", "total_tokens", "cost_nanousd"]
        .iter()
        .zip(sums)
        .map(|(n, v)| (n.to_string(), v, v))
        .collect();
    assert_eq!(printed_sums, expected_sums, "{}", r.stdout);
    assert_eq!(pg_figures(target_url), (counts.clone(), sums));
    let log: Value = r
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["event"] == "db.copy")
        .unwrap_or_else(|| panic!("no db.copy log line: {r:?}"));
    assert_eq!(log["dbname"], dbname);
    assert_eq!(log["tables"]["request_logs"], counts[1]);
    assert_eq!(log["daily_usage"]["cost_nanousd"], sums[2]);
}

fn load_fixture(sb: &Sandbox, name: &str) -> std::path::PathBuf {
    let sql = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/db")
            .join(name),
    )
    .unwrap();
    std::fs::create_dir_all(sb.data_dir()).unwrap();
    let db = sb.data_dir().join("proxy.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(&sql)
        .unwrap();
    db
}

/// The original's 0.1 and 0.2 databases (the storage-pg copy tests' fixtures), upgraded in
/// place and copied; a second copy into the filled target is refused and changes nothing.
pub fn db_copy_takes_the_originals_databases() {
    let pg = TestPg::start();
    for (fixture, dbname, explicit_from) in [
        ("v01.sql", "from_v01", true),
        ("v02.sql", "from_v02", false),
    ] {
        let sb = configured();
        let db = load_fixture(&sb, fixture);
        let url = secret_url(&pg, dbname);
        let mut args = vec!["db", "copy", "--to", &url];
        let from = s(&db);
        if explicit_from {
            args.extend(["--from", &from]);
        }
        let r = sb.run(&args);
        check_copy(&r, &db, &pg.url_for(dbname), dbname);
        let before = pg_figures(&pg.url_for(dbname));
        let r = sb.run(&args);
        r.expect_code(1);
        no_secret(&r);
        let line = one_error_line(&r);
        assert!(
            line.starts_with(&format!(
                "error: --to (PostgreSQL database {dbname} on 127.0.0.1:{})",
                pg.port()
            )) && line.contains("not empty"),
            "{r:?}"
        );
        assert_eq!(pg_figures(&pg.url_for(dbname)), before);
    }
}

/// Rows of a database made by `db init`, with the `daily_usage` they would have produced.
fn product_rows(sb: &Sandbox) -> std::path::PathBuf {
    let db = sb.data_dir().join("proxy.db");
    sb.run(&["db", "init"]).expect_code(0);
    let mut claude = Row::new("2026-11-23T12:00:00.000Z", "opencode");
    claude.provider = "anthropic";
    claude.model = "claude-sonnet-4-5";
    claude.meta_json = None;
    claude.cache_creation = 300;
    claude.total = 3_800;
    claude.cost_nanousd = 10_500_000;
    let mut aborted = Row::new("2026-11-24T09:00:00.000Z", "codex");
    aborted.cost_status = "pending";
    aborted.cost_nanousd = 0;
    aborted.lifecycle = "aborted";
    let mut in_flight = Row::new("2026-11-24T11:00:00.000Z", "codex");
    in_flight.lifecycle = "pending";
    in_flight.cost_status = "unresolved";
    insert_rows(
        &db,
        &[
            Row::new("2026-11-23T10:00:00.000Z", "codex"),
            claude,
            aborted,
            in_flight,
            Row::new("2026-11-30T09:00:00.000Z", "gemini"),
            Row::new("2026-12-01T09:00:00.000Z", "codex"),
        ],
    );
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "INSERT INTO daily_usage (day, provider, model, request_count, prompt_tokens,
               completion_tokens, cache_creation_tokens, cache_read_tokens, total_tokens,
               cost_usd, cost_nanousd)
             SELECT substr(started_at, 1, 10), provider, model, COUNT(*), SUM(prompt_tokens),
               SUM(completion_tokens), SUM(cache_creation_tokens), SUM(cache_read_tokens),
               SUM(total_tokens), SUM(cost_usd), SUM(cost_nanousd)
             FROM request_logs WHERE lifecycle_status != 'pending' GROUP BY 1, 2, 3",
        )
        .unwrap();
    db
}

/// Our own database, copied with the target from `DATABASE_URL`; then every `usage` report
/// prints the same bytes from either backend.
pub fn db_copy_of_our_database_and_usage_on_both_backends() {
    let pg = TestPg::start();
    let mut sb = configured();
    let db = product_rows(&sb);
    let url = secret_url(&pg, "acp");
    sb.set("DATABASE_URL", &url);
    let r = sb.run(&["db", "copy"]);
    check_copy(&r, &db, &pg.url_for("acp"), "acp");
    assert!(
        r.stdout
            .contains("Pending rows copied as they are (no replica will finalize them): 1"),
        "{r:?}"
    );
    let reports: &[&[&str]] = &[
        &["usage", "--since", "2026-11-01", "--until", "2026-12-31"],
        &["usage", "weekly"],
        &["usage", "monthly", "--by", "model"],
        &["usage", "monthly", "--by", "provider", "--json"],
        &[
            "usage",
            "session",
            "--since",
            "2026-11-01",
            "--until",
            "2026-12-31",
        ],
        &[
            "usage",
            "daily",
            "--by",
            "client",
            "--json",
            "--since",
            "2026-11-24",
            "--until",
            "2026-11-30",
        ],
    ];
    for args in reports {
        sb.set("DATABASE_URL", &url);
        let on_pg = sb.run(args);
        sb.unset("DATABASE_URL");
        let on_sqlite = sb.run(args);
        on_sqlite.expect_code(0);
        on_pg.expect_code(0);
        no_secret(&on_pg);
        assert!(!on_sqlite.stdout.contains("No usage"), "{on_sqlite:?}");
        assert_eq!(on_pg.stdout, on_sqlite.stdout, "{args:?}");
    }
    // The empty report names the database, not the URL.
    sb.set("DATABASE_URL", &url);
    let r = sb.run(&["usage", "--since", "2020-01-01", "--until", "2020-01-31"]);
    r.expect_code(0);
    no_secret(&r);
    assert_eq!(
        r.stdout.trim(),
        format!(
            "No usage recorded in 2020-01-01..2020-01-31 (PostgreSQL database acp on 127.0.0.1:{}).",
            pg.port()
        )
    );
}

/// `db init`, `doctor`, `paths` and `db backup` with a PostgreSQL `DATABASE_URL`, and every
/// command's failure when the server is down.
pub fn db_init_doctor_and_refusals_on_postgres() {
    let pg = TestPg::start();
    let mut sb = configured();
    let url = secret_url(&pg, "acp");
    sb.set("DATABASE_URL", &url);
    let host = format!("127.0.0.1:{}", pg.port());

    let r = sb.run(&["doctor", "--json"]);
    no_secret(&r);
    let fresh = &r.json()["checks"]["database"];
    assert_eq!(fresh["status"], "PASS", "{r:?}");
    assert_eq!(fresh["details"]["appliedMigrations"], serde_json::json!([]));
    assert!(
        !fresh["details"]["pendingMigrations"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    for _ in 0..2 {
        let r = sb.run(&["db", "init"]);
        r.expect_code(0);
        no_secret(&r);
        assert_eq!(
            r.stdout.trim(),
            format!("Initialized PostgreSQL database acp on {host}")
        );
    }
    assert!(
        !sb.data_dir().join("proxy.db").exists(),
        "db init left SQLite alone"
    );
    let mut client = postgres::Client::connect(&pg.url_for("acp"), postgres::NoTls).unwrap();
    let recorded: Vec<String> = client
        .query("SELECT name FROM schema_migrations ORDER BY name DESC", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(recorded.len() >= 6, "{recorded:?}");

    let r = sb.run(&["doctor", "--json"]);
    no_secret(&r);
    let db = &r.json()["checks"]["database"];
    assert_eq!(db["status"], "PASS", "{r:?}");
    assert_eq!(db["details"]["kind"], "postgres");
    assert_eq!(db["details"]["host"], host);
    assert_eq!(db["details"]["dbname"], "acp");
    assert_eq!(
        db["details"]["appliedMigrations"],
        serde_json::json!(recorded.iter().take(10).collect::<Vec<_>>())
    );
    assert_eq!(db["details"]["pendingMigrations"], serde_json::json!([]));
    let r = sb.run(&["doctor"]);
    no_secret(&r);
    assert!(r.stdout.contains("PASS database"), "{r:?}");

    let v = sb.run(&["paths"]).expect_code(0).json();
    assert_eq!(v["databaseKind"], "postgres");
    assert_eq!(v["spoolDir"], s(&sb.data_dir().join("spool")));
    assert_eq!(v["dbPath"], s(&sb.data_dir().join("proxy.db")));

    let r = sb.run(&["db", "backup", "--output", &s(&sb.path("b.db"))]);
    r.expect_code(1);
    no_secret(&r);
    let line = one_error_line(&r);
    assert!(
        line.contains(&format!("PostgreSQL database acp on {host}")) && line.contains("pg_dump"),
        "{r:?}"
    );

    // The cost backfill is the replicas' loop; the command refuses instead of opening DB_PATH.
    let r = sb.run(&["backfill-costs"]);
    r.expect_code(1);
    no_secret(&r);
    let line = one_error_line(&r);
    assert!(
        line.contains(&format!("PostgreSQL database acp on {host}"))
            && line.contains("cost-backfill loop"),
        "{r:?}"
    );
    // This replica's spool, and the position PostgreSQL holds for its id.
    let spool = sb.data_dir().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join("replica-id"), "replica-zz1\n").unwrap();
    client
        .execute(
            "INSERT INTO spool_position (replica, applied_seq, segment, \"offset\", updated_at)
             VALUES ('replica-zz1', 7, 0, 0, '2026-12-07T00:00:00.000Z')",
            &[],
        )
        .unwrap();
    let v = sb
        .run(&["db", "spool", "status", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(v["dir"], s(&spool));
    assert_eq!(v["applied"], 7, "{v}");

    // A SQLite database to copy while the server is down.
    sb.unset("DATABASE_URL");
    sb.run(&["db", "init"]).expect_code(0);
    sb.set("DATABASE_URL", &url);
    pg.stop();
    let down = format!("(PostgreSQL database acp on {host}): ");
    let r = sb.run(&["doctor", "--json"]);
    r.expect_code(1);
    no_secret(&r);
    let db = &r.json()["checks"]["database"];
    assert_eq!(db["status"], "FAIL");
    let issue = db["issues"][0].as_str().unwrap();
    assert!(
        issue.starts_with(&format!("DATABASE_URL {down}")),
        "{issue}"
    );
    for args in [
        &["db", "init"][..],
        &["db", "copy"][..],
        &["db", "copy", "--to", &url][..],
        &["usage"][..],
    ] {
        let r = sb.run(args);
        r.expect_code(1);
        no_secret(&r);
        let source = if args.contains(&"--to") {
            "--to"
        } else {
            "DATABASE_URL"
        };
        assert!(
            one_error_line(&r).starts_with(&format!("error: {source} {down}")),
            "{args:?}: {r:?}"
        );
    }
}

/// `db copy` argument errors: no target at all, a target that is not a PostgreSQL URL, a
/// source that does not exist.
pub fn db_copy_usage_errors() {
    let mut sb = configured();
    let r = sb.run(&["db", "copy"]);
    r.expect_code(2);
    assert!(one_error_line(&r).contains("--to is required"), "{r:?}");
    let r = sb.run(&["db", "copy", "--to", "mysql://root:hunter2@db/x"]);
    r.expect_code(2);
    assert!(!r.stderr.contains("hunter2"), "{r:?}");
    assert!(one_error_line(&r).contains("postgres:// URL"), "{r:?}");
    sb.set(
        "DATABASE_URL",
        &format!("postgres://u:{PASSWORD}@127.0.0.1:9/acp"),
    );
    let r = sb.run(&["db", "copy"]);
    r.expect_code(1);
    no_secret(&r);
    assert_eq!(
        one_error_line(&r),
        format!(
            "error: DB_PATH {}: no SQLite database there to copy",
            s(&sb.data_dir().join("proxy.db"))
        )
    );
}

/// One call as a stopped daemon leaves it in the spool: its `Begin` and its `End`.
fn spooled_call(id: &str, started_at: &str) -> [Record; 2] {
    let begin = Record::Begin(Box::new(PreLogRow {
        request_id: id.to_owned(),
        provider: "openai".to_owned(),
        model: "gpt-5".to_owned(),
        tool: "codex".to_owned(),
        client_id: "codex-client".to_owned(),
        agent: None,
        user_agent: None,
        source_ip: None,
        msg_id: None,
        path: "/v1/responses".to_owned(),
        streamed: true,
        proxy_api_key_id: None,
        started_at: started_at.to_owned(),
        meta_json: PreLogRow::meta("POST", None, None),
    }));
    let end = Record::End {
        request_id: id.to_owned(),
        row: Box::new(FinalizeRow {
            id: 0,
            lifecycle_status: Terminal::Completed,
            actual_model: None,
            actual_provider: None,
            proxy_api_key_id: None,
            streamed: true,
            status: Some(200),
            tokens: TokenColumns {
                prompt_tokens: 700,
                completion_tokens: 70,
                total_tokens: 770,
                ..TokenColumns::default()
            },
            usage_incomplete: false,
            cost_nanousd: 7_000_000,
            cost_status: CostStatus::Ok,
            error_code: None,
            error_message: None,
            latency_ms: Some(70),
            now: started_at.to_owned(),
            meta_json: PreLogRow::meta("POST", None, None),
            audit: AuditInfo {
                model: Some("gpt-5".to_owned()),
                provider: Some("openai".to_owned()),
                source: "pricing".to_owned(),
            },
        }),
    };
    [begin, end]
}

/// A spool a stopped daemon left is applied before the copy, so its calls reach PostgreSQL;
/// a database whose lock a daemon holds is refused before anything is read or written.
pub fn db_copy_applies_the_leftover_spool_and_respects_the_lock() {
    let pg = TestPg::start();
    let sb = configured();
    let db = product_rows(&sb);
    let (rows_before, sums_before) = sqlite_figures(&db);
    let spool_dir = sb.data_dir().join("proxy.db.spool");
    {
        let opened = Spool::open(
            SpoolConfig::in_dir(&spool_dir),
            0,
            Arc::new(Doorbell::default()),
        )
        .unwrap();
        for r in spooled_call("left-behind", "2026-11-25T08:00:00.000Z") {
            opened.spool.append(&r).unwrap();
        }
    }
    let url = secret_url(&pg, "acp");
    let held = DbLock::acquire(&DbPath::from_config(&s(&db))).unwrap();
    let r = sb.run(&["db", "copy", "--to", &url]);
    r.expect_code(1);
    no_secret(&r);
    assert!(
        one_error_line(&r).contains("stop the daemon that uses it before db copy"),
        "{r:?}"
    );
    let untouched: bool = postgres::Client::connect(&pg.url_for("acp"), postgres::NoTls)
        .unwrap()
        .query_one("SELECT to_regclass('request_logs') IS NULL", &[])
        .unwrap()
        .get(0);
    assert!(
        untouched,
        "the refused copy did not even migrate the target"
    );
    drop(held);
    let r = sb.run(&["db", "copy", "--to", &url]);
    assert!(
        r.stderr.contains("Applied 2 spooled records"),
        "the spool was applied: {r:?}"
    );
    check_copy(&r, &db, &pg.url_for("acp"), "acp");
    let (rows_after, sums_after) = sqlite_figures(&db);
    assert_eq!(rows_after[1], rows_before[1] + 1);
    assert_eq!(sums_after[0], sums_before[0] + 1);
    assert_eq!(sums_after[2], sums_before[2] + 7_000_000);
}
