use proptest::prelude::*;

use super::*;

fn scan_chunks(chunks: &[&[u8]], cap: usize) -> Vec<SseItem> {
    let mut s = SseScanner::new(cap);
    let mut out = Vec::new();
    for c in chunks {
        s.push(c, &mut out);
    }
    s.finish(&mut out);
    out
}

fn events(items: &[SseItem]) -> Vec<(Option<String>, String, Skipped)> {
    items
        .iter()
        .filter_map(|i| match i {
            SseItem::Event {
                name,
                data,
                skipped,
            } => Some((
                name.as_ref()
                    .map(|n| String::from_utf8_lossy(n).into_owned()),
                String::from_utf8_lossy(data).into_owned(),
                *skipped,
            )),
            SseItem::Line { .. } => None,
        })
        .collect()
}

fn ev(name: Option<&str>, data: &str) -> (Option<String>, String, Skipped) {
    (name.map(str::to_owned), data.to_owned(), Skipped::No)
}

#[test]
fn data_lines_join_with_lf_and_one_leading_space_is_dropped() {
    let items = scan_chunks(&[b"event: a\ndata:  x\ndata:y\n\n"], 100);
    assert_eq!(events(&items), vec![ev(Some("a"), " x\ny")]);
}

#[test]
fn cr_crlf_and_lf_all_end_lines() {
    for input in [
        &b"data: 1\n\ndata: 2\n\n"[..],
        b"data: 1\r\n\r\ndata: 2\r\n\r\n",
        b"data: 1\r\rdata: 2\r\r",
    ] {
        let items = scan_chunks(&[input], 100);
        assert_eq!(events(&items), vec![ev(None, "1"), ev(None, "2")]);
    }
}

#[test]
fn crlf_split_across_chunks_counts_once() {
    let whole = scan_chunks(&[b"data: 1\r\n\r\ndata: 2\r\n\r\n"], 100);
    let split = scan_chunks(&[b"data: 1\r", b"\n\r", b"\ndata: 2\r\n\r\n"], 100);
    assert_eq!(whole, split);
    assert_eq!(events(&split).len(), 2);
}

#[test]
fn leading_bom_is_ignored_even_when_split() {
    let items = scan_chunks(&[b"\xEF\xBB", b"\xBFdata: x\n\n"], 100);
    assert_eq!(events(&items), vec![ev(None, "x")]);
    // Only at the stream start: a later BOM makes an unknown field.
    let items = scan_chunks(&[b"data: a\n\n\xEF\xBB\xBFdata: x\n\n"], 100);
    assert_eq!(
        events(&items),
        vec![ev(None, "a"), (None, String::new(), Skipped::No)]
    );
}

#[test]
fn comments_and_unknown_fields_are_ignored() {
    let items = scan_chunks(&[b": ping\nid: 7\nretry: 10\nfoo\ndata: x\n\n"], 100);
    assert_eq!(events(&items), vec![ev(None, "x")]);
}

#[test]
fn invalid_utf8_is_replaced() {
    let items = scan_chunks(&[b"data: a\xFFb\n\n"], 100);
    assert_eq!(events(&items), vec![ev(None, "a\u{FFFD}b")]);
}

#[test]
fn finish_examines_the_unterminated_line_and_pending_event() {
    let items = scan_chunks(&[b"data: 1\n\nevent: x\ndata: 2"], 100);
    assert_eq!(events(&items), vec![ev(None, "1"), ev(Some("x"), "2")]);
}

#[test]
fn line_offsets_cover_the_stream() {
    let items = scan_chunks(&[b"data: a\r\n\r\ndata: b\rx"], 100);
    let lines: Vec<(u64, u64)> = items
        .iter()
        .filter_map(|i| match i {
            SseItem::Line { start, end, .. } => Some((*start, *end)),
            SseItem::Event { .. } => None,
        })
        .collect();
    assert_eq!(lines, vec![(0, 9), (9, 11), (11, 19), (19, 20)]);
}

#[test]
fn over_long_line_is_reported_and_its_event_skipped_with_memory_bounded() {
    let cap = 16;
    let mut s = SseScanner::new(cap);
    let mut out = Vec::new();
    s.push(b"event: big\ndata: ", &mut out);
    for _ in 0..100 {
        s.push(b"0123456789", &mut out);
        assert!(s.buffered() <= cap + 16, "buffered {}", s.buffered());
    }
    s.push(b"\n\ndata: ok\n\n", &mut out);
    s.finish(&mut out);
    let long = out.iter().find_map(|i| match i {
        SseItem::Line { kind, start, end } if kind.0 == "too_long" => Some((*start, *end)),
        _ => None,
    });
    assert_eq!(long, Some((11, 11 + 6 + 1000 + 1)));
    let evs = events(&out);
    assert_eq!(evs[0].2, Skipped::LongLine);
    assert_eq!(evs[1], ev(None, "ok"));
}

#[test]
fn event_data_over_the_cap_is_skipped() {
    let items = scan_chunks(&[b"data: 0123456789\ndata: 0123456789\n\ndata: ok\n\n"], 16);
    let evs = events(&items);
    assert_eq!(evs[0].2, Skipped::LongData { length: 21 });
    assert_eq!(evs[1], ev(None, "ok"));
}

fn split_at_points(data: &[u8], points: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (data.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts {
        out.push(data[prev..c].to_vec());
        prev = c;
    }
    out.push(data[prev..].to_vec());
    out
}

proptest! {
    #[test]
    fn chunking_never_changes_what_is_reported(
        data in proptest::collection::vec(prop_oneof![
            Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), Just(b'a'), Just(0xEF), Just(0xBB), Just(0xBF),
            any::<u8>(),
        ], 0..300),
        points in proptest::collection::vec(any::<usize>(), 0..8),
        cap in 1usize..64,
    ) {
        let whole = scan_chunks(&[&data], cap);
        let chunks = split_at_points(&data, &points);
        let refs: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(whole, scan_chunks(&refs, cap));
    }

    #[test]
    fn scanner_memory_stays_within_the_cap(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..40),
        cap in 1usize..48,
    ) {
        let mut s = SseScanner::new(cap);
        let mut sink = Vec::new();
        for c in &chunks {
            s.push(c, &mut sink);
            // partial line ≤ cap, event data ≤ cap, event name ≤ cap
            prop_assert!(s.buffered() <= 3 * cap);
        }
    }
}
