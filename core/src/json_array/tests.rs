use proptest::prelude::*;

use super::*;

type Item = (Option<Vec<u8>>, u64, u64, u64);

fn split(chunks: &[&[u8]], cap: usize) -> Vec<Item> {
    let mut s = JsonArraySplitter::new(cap);
    let mut out = Vec::new();
    let mut f =
        |e: &JsonElement<'_>| out.push((e.content.map(<[u8]>::to_vec), e.start, e.end, e.length));
    for c in chunks {
        s.push(c, &mut f);
    }
    s.finish(&mut f);
    out
}

fn contents(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|(c, ..)| {
            c.as_deref().map_or("<long>".to_owned(), |c| {
                String::from_utf8_lossy(c).into_owned()
            })
        })
        .collect()
}

#[test]
fn gemini_array_elements_are_reported_with_offsets() {
    let body = b"[{\"a\":1}\r\n,\r\n{\"b\":[2,{\"c\":\"}]\"}]}\r\n]";
    let out = split(&[body], 1000);
    assert_eq!(contents(&out), ["{\"a\":1}", "{\"b\":[2,{\"c\":\"}]\"}]}"]);
    assert_eq!((out[0].1, out[0].2, out[0].3), (1, 8, 7));
    let second = &body[out[1].1 as usize..out[1].2 as usize];
    assert_eq!(second, out[1].0.as_deref().unwrap());
}

#[test]
fn strings_with_escaped_quotes_and_brackets_do_not_end_an_element() {
    let out = split(&[br#"[{"t":"a\"}]\\"},"x\"y",12,true]"#], 1000);
    assert_eq!(
        contents(&out),
        [r#"{"t":"a\"}]\\"}"#, r#""x\"y""#, "12", "true"]
    );
}

#[test]
fn a_body_that_is_not_an_array_is_one_element() {
    let out = split(&[b"  {\"error\":{\"code\":400}}\n"], 1000);
    assert_eq!(contents(&out), ["{\"error\":{\"code\":400}}"]);
}

#[test]
fn bytes_after_the_closing_bracket_are_ignored() {
    let out = split(&[b"[{\"a\":1}] {\"b\":2}"], 1000);
    assert_eq!(contents(&out), ["{\"a\":1}"]);
}

#[test]
fn an_element_over_the_cap_is_reported_without_content_and_not_buffered() {
    let mut s = JsonArraySplitter::new(8);
    let mut seen = Vec::new();
    s.push(b"[{\"abc\":", |e| seen.push(e.length));
    s.push(b"\"defghij\"", |e| seen.push(e.length));
    assert_eq!(s.buffered(), 0, "an over-long element is not kept");
    s.push(b"},{\"k\":1}]", |e| seen.push(e.length));
    assert_eq!(seen, [17, 7]);
    let out = split(&[b"[{\"abc\":\"defghij\"},{\"k\":1}]"], 8);
    assert_eq!(contents(&out), ["<long>", "{\"k\":1}"]);
}

#[test]
fn an_unterminated_element_is_reported_at_finish() {
    let out = split(&[b"[{\"a\":1},{\"usageMetadata\":"], 1000);
    assert_eq!(contents(&out), ["{\"a\":1}", "{\"usageMetadata\":"]);
    let out = split(&[b"[1,23"], 1000);
    assert_eq!(contents(&out), ["1", "23"]);
}

fn chunked(body: &[u8], cuts: &[usize], cap: usize) -> Vec<Item> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    let mut pieces = Vec::new();
    let mut last = 0;
    for c in cuts {
        pieces.push(&body[last..c]);
        last = c;
    }
    pieces.push(&body[last..]);
    split(&pieces, cap)
}

fn gemini_like() -> impl Strategy<Value = Vec<u8>> {
    let element = prop_oneof![
        Just(r#"{"candidates":[{"content":{"parts":[{"text":"a]}\"["}]}}]}"#.to_owned()),
        (0u32..5000).prop_map(|n| format!(r#"{{"usageMetadata":{{"promptTokenCount":{n}}}}}"#)),
        Just("[1,[2,{}]]".to_owned()),
        Just("\"s\\\\\"".to_owned()),
        Just("-12.5e3".to_owned()),
    ];
    (
        prop::collection::vec(element, 0..6),
        prop::sample::select(vec![",", ",\r\n", "\n,\n", " , "]),
    )
        .prop_map(|(els, sep)| format!("[{}]", els.join(sep)).into_bytes())
}

proptest! {
    /// `accounting.md` §8 chunking invariance for the JSON-array scanner: any split of the
    /// stream reports the same elements at the same offsets as feeding it whole.
    #[test]
    fn chunk_split_invariance_on_gemini_like_streams(
        body in gemini_like(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        cap in prop::sample::select(vec![8usize, 40, 1 << 20]),
    ) {
        prop_assert_eq!(chunked(&body, &cuts, cap), split(&[&body], cap));
    }

    #[test]
    fn chunk_split_invariance_on_arbitrary_bytes(
        body in prop::collection::vec(prop::sample::select(b"[]{}\",\\ \n1a".to_vec()), 0..80),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let whole = split(&[&body], 16);
        prop_assert_eq!(chunked(&body, &cuts, 16), whole.clone());
        for (content, start, end, length) in whole {
            prop_assert_eq!(end - start, length);
            prop_assert!(end <= body.len() as u64);
            if let Some(c) = content {
                prop_assert_eq!(&body[start as usize..end as usize], &c[..]);
            }
        }
    }
}
