//! SSE scan + usage extraction throughput on a realistic 40-event Anthropic stream, against a
//! memchr line count over the same bytes as the baseline (`reliability.md` §5 goal ≥ 1 GB/s).
#![allow(missing_docs)]

use std::hint::black_box;

use agent_cli_proxy_core::exchange::relay::{BodyKind, Relay, RelayConfig};
use agent_cli_proxy_core::sse::{SseEvent, SseScanner, SseSink};
use agent_cli_proxy_core::usage::UsageState;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn stream() -> Vec<u8> {
    let mut s = String::new();
    s.push_str("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":2000,\"cache_creation_input_tokens\":10000,\"cache_read_input_tokens\":50000,\"cache_creation\":{\"ephemeral_5m_input_tokens\":10000,\"ephemeral_1h_input_tokens\":0},\"output_tokens\":1,\"service_tier\":\"standard\"}}}\n\n");
    s.push_str("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    s.push_str("event: ping\ndata: {\"type\": \"ping\"}\n\n");
    for i in 0..34 {
        s.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"Chunk {i} of the answer: here is some ordinary prose with a few words and \\\"quotes\\\".\\n\"}}}}\n\n"
        ));
    }
    s.push_str(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    );
    s.push_str("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":812}}\n\n");
    s.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    s.into_bytes()
}

struct Acct(UsageState);

impl SseSink for Acct {
    fn event(&mut self, e: &SseEvent<'_>) {
        self.0.observe_sse_event(e.name, e.data);
    }
}

struct Nop;

impl SseSink for Nop {}

fn bench(c: &mut Criterion) {
    let data = stream();
    let mut g = c.benchmark_group("sse_usage");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("baseline_memchr_lines", |b| {
        b.iter(|| black_box(memchr::memchr_iter(b'\n', black_box(&data)).count()))
    });
    g.bench_function("scan_and_usage", |b| {
        b.iter(|| {
            let mut scanner = SseScanner::default();
            let mut acct = Acct(UsageState::new());
            scanner.push(black_box(&data), &mut acct);
            scanner.finish(&mut acct);
            black_box(acct.0.record())
        })
    });
    g.bench_function("scan_only", |b| {
        b.iter(|| {
            let mut scanner = SseScanner::default();
            let mut sink = Nop;
            scanner.push(black_box(&data), &mut sink);
            scanner.finish(&mut sink);
        })
    });
    let chunks: Vec<Bytes> = data.chunks(1024).map(Bytes::copy_from_slice).collect();
    g.bench_function("relay_1k_chunks", |b| {
        b.iter(|| {
            let mut relay = Relay::new(BodyKind::Sse, RelayConfig::default());
            let mut n = 0;
            for c in &chunks {
                n += relay.push(c.clone()).release.len();
            }
            n += relay.release_held().len();
            black_box((n, relay.usage().record))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
