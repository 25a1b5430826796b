//! Golden fixtures (`reliability.md` §3): every `tests/fixtures/<api>/<case>.{sse,ndjson,json}`
//! runs through the core and must match `<case>.expect.json`: the usage record, actual model,
//! `usage_incomplete` (with the generation-path rule of `accounting.md` §2.6 for a 2xx
//! response), terminal byte offset and the SHA-256 of the client bytes (with and without
//! usage-chunk removal). Streams are also checked in 7-byte chunks and in CRLF and CR
//! framings.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;
use crate::usage::{UsageRecord, extract_plain};

struct Outcome {
    record: Option<UsageRecord>,
    model: Option<String>,
    skipped: bool,
    terminal: Option<u64>,
    client: Vec<u8>,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn record_json(r: Option<UsageRecord>) -> Value {
    r.map_or(Value::Null, |r| {
        json!({
            "convention": r.convention.as_str(),
            "input_uncached": r.input_uncached,
            "cache_read": r.cache_read,
            "cache_write_5m": r.cache_write_5m,
            "cache_write_1h": r.cache_write_1h,
            "output": r.output,
            "reasoning": r.reasoning,
        })
    })
}

fn stream(kind: BodyKind, remove: bool, data: &[u8], chunk: usize) -> Outcome {
    let cfg = RelayConfig {
        line_cap: DEFAULT_LINE_CAP,
        remove_usage_chunk: remove,
    };
    let mut relay = Relay::new(kind, cfg);
    let mut client = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        client.extend(relay.push(Bytes::copy_from_slice(c)).release.concat());
    }
    client.extend(relay.finish().release.concat());
    client.extend(relay.release_held().concat());
    let u = relay.usage();
    Outcome {
        record: u.record,
        model: u.actual_model.map(str::to_owned),
        skipped: u.usage_incomplete,
        terminal: relay.terminal_offset(),
        client,
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn golden_fixtures_match_their_expectations() {
    let mut checked = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        // `db` holds databases and `client-heads` request heads, not response bodies.
        .filter(|p| {
            p.is_dir()
                && !["db", "client-heads"].contains(&&*p.file_name().unwrap().to_string_lossy())
        })
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let Some(ext) = ["sse", "ndjson", "json"]
                .into_iter()
                .find(|e| name.ends_with(&format!(".{e}")) && !name.ends_with(".expect.json"))
            else {
                continue;
            };
            let case = name.trim_end_matches(&format!(".{ext}"));
            let expect: Value = serde_json::from_slice(
                &std::fs::read(dir.join(format!("{case}.expect.json"))).unwrap(),
            )
            .unwrap();
            let data = std::fs::read(&file).unwrap();
            check(&name, ext, &data, &expect);
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} fixtures found");
}

fn check(name: &str, ext: &str, data: &[u8], expect: &Value) {
    let path = expect["path"].as_str().unwrap();
    let generation = crate::route::is_generation_path(path);
    let out = match ext {
        "json" => {
            let e = extract_plain(data);
            Outcome {
                record: e.record,
                model: e.actual_model,
                skipped: false,
                terminal: None,
                client: data.to_vec(),
            }
        }
        "sse" => stream(BodyKind::Sse, false, data, usize::MAX),
        _ => stream(BodyKind::Ndjson, false, data, usize::MAX),
    };
    assert_eq!(record_json(out.record), expect["record"], "{name}: record");
    assert_eq!(
        out.model.as_deref(),
        expect["actual_model"].as_str(),
        "{name}: actual_model"
    );
    let incomplete = out.skipped || (generation && out.record.is_none());
    assert_eq!(
        Value::Bool(incomplete),
        expect["usage_incomplete"],
        "{name}: usage_incomplete"
    );
    assert_eq!(
        sha(&out.client),
        expect["client_sha256"].as_str().unwrap(),
        "{name}: client bytes"
    );
    if ext == "json" {
        // A Gemini stream answered as a JSON array is relayed element by element
        // (`gemini.md` §2): the streamed accounting must equal the whole-body one, in any
        // chunking, byte-exact and with nothing held.
        if BodyKind::for_response(path, 200, Some("application/json")) == BodyKind::JsonArray {
            for chunk in [usize::MAX, 7, 1] {
                let s = stream(BodyKind::JsonArray, false, data, chunk);
                assert_eq!(
                    (s.record, &s.model, s.skipped, s.terminal, &s.client[..]),
                    (out.record, &out.model, false, None, data),
                    "{name}: streamed JSON array, chunk {chunk}"
                );
            }
        }
        return;
    }
    assert_eq!(
        out.terminal.map_or(Value::Null, Value::from),
        expect["terminal_offset"],
        "{name}: terminal"
    );
    let kind = if ext == "sse" {
        BodyKind::Sse
    } else {
        BodyKind::Ndjson
    };
    let chunked = stream(kind, false, data, 7);
    assert_eq!(
        (chunked.record, chunked.terminal, &chunked.client),
        (out.record, out.terminal, &out.client),
        "{name}: chunked"
    );
    if let Some(removed) = expect.get("client_sha256_removed") {
        for chunk in [usize::MAX, 5] {
            let r = stream(kind, true, data, chunk);
            assert_eq!(
                sha(&r.client),
                removed.as_str().unwrap(),
                "{name}: removal, chunk {chunk}"
            );
            assert_eq!(
                r.record, out.record,
                "{name}: removed chunk still accounted"
            );
        }
    }
    if ext == "sse" {
        let text = String::from_utf8(data.to_vec()).unwrap();
        for variant in [text.replace('\n', "\r\n"), text.replace('\n', "\r")] {
            for chunk in [usize::MAX, 3] {
                let v = stream(kind, false, variant.as_bytes(), chunk);
                assert_eq!(
                    (v.record, &v.model),
                    (out.record, &out.model),
                    "{name}: line endings"
                );
                assert_eq!(
                    v.client,
                    variant.as_bytes(),
                    "{name}: line endings byte-exact"
                );
            }
        }
    }
}
