#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::op::{AuditInfo, CostStatus, FinalizeRow, PreLogRow, Terminal};
use agent_cli_proxy_core::usage::TokenColumns;

fn begin(id: &str) -> Record {
    Record::Begin(Box::new(PreLogRow {
        request_id: id.to_owned(),
        provider: "anthropic".into(),
        model: "claude-sonnet-4".into(),
        tool: "claude-code".into(),
        client_id: "claude-code-a".into(),
        agent: Some("a".into()),
        user_agent: Some("claude-cli/2.1".into()),
        source_ip: None,
        msg_id: Some("m1".into()),
        path: "/v1/messages".into(),
        streamed: true,
        proxy_api_key_id: Some(7),
        started_at: "2026-12-07T10:00:00.000Z".into(),
        meta_json: "{}".into(),
    }))
}

fn end(id: &str) -> Record {
    Record::End {
        request_id: id.to_owned(),
        row: Box::new(FinalizeRow {
            id: 0,
            lifecycle_status: Terminal::Completed,
            actual_model: Some("claude-sonnet-4".into()),
            actual_provider: None,
            proxy_api_key_id: None,
            streamed: true,
            status: Some(200),
            tokens: TokenColumns {
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
                ..TokenColumns::default()
            },
            usage_incomplete: false,
            cost_nanousd: 123_456,
            cost_status: CostStatus::Ok,
            error_code: None,
            error_message: Some("é ✓".into()),
            latency_ms: Some(42),
            now: "2026-12-07T10:00:01.000Z".into(),
            meta_json: "{\"a\":1}".into(),
            audit: AuditInfo {
                model: Some("claude-sonnet-4".into()),
                provider: Some("anthropic".into()),
                source: "pricing".into(),
            },
        }),
    }
}

fn open(dir: &Path, applied: u64) -> Result<Opened, SpoolError> {
    Spool::open(
        SpoolConfig::in_dir(dir),
        applied,
        Arc::new(Doorbell::default()),
    )
}

fn read_all(spool: &Spool, cur: Cursor) -> Vec<(u64, Record)> {
    let mut out = Vec::new();
    spool.read(cur, usize::MAX, &mut out).unwrap();
    out
}

#[test]
fn every_kind_round_trips_through_the_codec() {
    let recs = [
        begin("r1"),
        Record::Usage {
            request_id: "r1".into(),
            tokens: TokenColumns {
                prompt_tokens: 3,
                ..TokenColumns::default()
            },
        },
        end("r1"),
        Record::Fallback {
            request_id: "r1".into(),
            message: "disk".into(),
            now: "t".into(),
        },
    ];
    for (i, rec) in recs.iter().enumerate() {
        let mut frame = Vec::new();
        codec::encode(rec, &mut frame);
        codec::seal(&mut frame, 1000 + i as u64);
        let (seq, back, n) = codec::decode(&frame).unwrap();
        assert_eq!((seq, &back, n), (1000 + i as u64, rec, frame.len()));
    }
}

#[test]
fn appended_records_are_read_back_in_order_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opened = open(dir.path(), 0).unwrap();
    let cur = opened.cursor;
    for i in 0..50 {
        assert_eq!(
            opened.spool.append(&begin(&format!("r{i}"))).unwrap(),
            i + 1
        );
    }
    let got = read_all(&opened.spool, cur);
    assert_eq!(got.len(), 50);
    drop(opened);
    let again = open(dir.path(), 20).unwrap();
    assert_eq!(again.cursor.seq, 21);
    let got = read_all(&again.spool, again.cursor);
    assert_eq!(got.len(), 30);
    assert_eq!(got[0].1.request_id(), "r20");
    assert_eq!(again.spool.append(&end("r0")).unwrap(), 51);
}

#[test]
fn a_record_without_request_id_or_over_the_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let opened = open(dir.path(), 0).unwrap();
    assert_eq!(
        opened.spool.append(&begin("")),
        Err(SpoolError::NoRequestId)
    );
    let huge = Record::Fallback {
        request_id: "r".into(),
        message: "x".repeat(RECORD_CAP + 1),
        now: "t".into(),
    };
    assert!(matches!(
        opened.spool.append(&huge),
        Err(SpoolError::TooLarge(_))
    ));
    // Nothing was numbered for them.
    assert_eq!(opened.spool.append(&begin("ok")).unwrap(), 1);
}

#[test]
fn rotation_and_release_delete_only_applied_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SpoolConfig::in_dir(dir.path());
    cfg.segment_bytes = 2_000;
    let opened = Spool::open(cfg.clone(), 0, Arc::new(Doorbell::default())).unwrap();
    for i in 0..40 {
        opened.spool.append(&begin(&format!("r{i}"))).unwrap();
    }
    let count = || std::fs::read_dir(dir.path()).unwrap().count();
    let before = count();
    assert!(before > 3, "{before} segments");
    let got = read_all(&opened.spool, opened.cursor);
    assert_eq!(got.len(), 40);
    opened.spool.release_through(20);
    let after = count();
    assert!(after < before && after > 1, "{before} -> {after}");
    // Records after 20 are all still readable after a restart.
    drop(opened);
    let again = Spool::open(cfg, 20, Arc::new(Doorbell::default())).unwrap();
    let got = read_all(&again.spool, again.cursor);
    assert_eq!(
        got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (21..=40).collect::<Vec<_>>()
    );
    again.spool.release_through(40);
    assert_eq!(count(), 1, "the active segment stays");
}

#[test]
fn a_torn_tail_at_every_offset_of_the_last_record_is_cut_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let opened = open(dir.path(), 0).unwrap();
    opened.spool.append(&begin("a")).unwrap();
    opened.spool.append(&end("a")).unwrap();
    drop(opened);
    let path = segment_path(dir.path(), 1);
    let full = std::fs::read(&path).unwrap();
    let mut frame = Vec::new();
    codec::encode(&end("a"), &mut frame);
    let last_start = full.len() - frame.len();
    for cut in last_start..full.len() {
        std::fs::write(&path, &full[..cut]).unwrap();
        let again = open(dir.path(), 0).unwrap();
        let torn = again.torn.clone();
        if cut == last_start {
            assert_eq!(torn, None);
        } else {
            let t = torn.unwrap();
            assert_eq!(
                (t.offset, t.bytes),
                (last_start as u64, (cut - last_start) as u64)
            );
        }
        let got = read_all(&again.spool, again.cursor);
        assert_eq!(got.len(), 1, "cut at {cut}");
        // The next append continues the numbering where the valid records end.
        assert_eq!(again.spool.append(&end("a")).unwrap(), 2);
    }
}

#[test]
fn zeros_or_garbage_after_the_last_record_are_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let opened = open(dir.path(), 0).unwrap();
    opened.spool.append(&begin("a")).unwrap();
    drop(opened);
    let path = segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&path).unwrap();
    let valid = bytes.len();
    bytes.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&path, &bytes).unwrap();
    let again = open(dir.path(), 0).unwrap();
    assert_eq!(again.torn.as_ref().unwrap().offset, valid as u64);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), valid as u64);
}

#[test]
fn a_flipped_bit_in_the_middle_stops_the_start_with_segment_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let opened = open(dir.path(), 0).unwrap();
    opened.spool.append(&begin("a")).unwrap();
    opened.spool.append(&begin("b")).unwrap();
    opened.spool.append(&begin("c")).unwrap();
    drop(opened);
    let path = segment_path(dir.path(), 1);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = HEADER_LEN as usize + 30;
    bytes[at] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    match open(dir.path(), 0) {
        Err(SpoolError::Corrupt {
            segment, offset, ..
        }) => {
            assert_eq!(segment, "00000000000000000001.seg");
            assert_eq!(offset, HEADER_LEN);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn the_database_ahead_of_the_directory_starts_a_new_segment_numbered_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let opened = open(dir.path(), 500).unwrap();
    assert_eq!(opened.spool.append(&begin("a")).unwrap(), 501);
    drop(opened);
    let again = open(dir.path(), 500).unwrap();
    let got = read_all(&again.spool, again.cursor);
    assert_eq!(got[0].0, 501);
}

#[test]
fn the_memory_spool_reads_what_was_appended() {
    let opened = Spool::open(SpoolConfig::memory(), 9, Arc::new(Doorbell::default())).unwrap();
    opened.spool.append(&begin("a")).unwrap();
    opened.spool.append(&end("a")).unwrap();
    let got = read_all(&opened.spool, opened.cursor);
    assert_eq!(
        got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![10, 11]
    );
    assert_eq!(opened.spool.stats().unapplied(), 2);
    opened.spool.release_through(11);
    assert_eq!(opened.spool.stats().unapplied(), 0);
}

#[test]
fn a_begin_over_the_byte_limit_is_refused_and_an_end_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SpoolConfig::in_dir(dir.path());
    let mut frame = Vec::new();
    codec::encode(&begin("a"), &mut frame);
    cfg.max_bytes = HEADER_LEN + frame.len() as u64 + 1;
    let opened = Spool::open(cfg, 0, Arc::new(Doorbell::default())).unwrap();
    opened.spool.append(&begin("a")).unwrap();
    assert!(matches!(
        opened.spool.append(&begin("b")),
        Err(SpoolError::Full { .. })
    ));
    assert!(opened.spool.stats().refusing());
    opened.spool.append(&end("a")).unwrap();
}

#[test]
fn concurrent_appends_with_every_fsync_mode_are_numbered_and_read_back_in_order() {
    for fsync in [Fsync::Off, Fsync::Batch, Fsync::Always] {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = SpoolConfig::in_dir(dir.path());
        cfg.fsync = fsync;
        cfg.segment_bytes = 8_192;
        let opened = Spool::open(cfg, 0, Arc::new(Doorbell::default())).unwrap();
        let spool = Arc::clone(&opened.spool);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let spool = Arc::clone(&spool);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        spool.append(&begin(&format!("t{t}-{i}"))).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let got = read_all(&opened.spool, opened.cursor);
        assert_eq!(
            got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (1..=100).collect::<Vec<_>>(),
            "{fsync:?}"
        );
    }
}
