//! Fuzz bodies of the `json_edit` module's targets.

use serde_json::Value;

use crate::json_edit::{ObjectIndex, remove_member, set_include_usage, set_member};

/// Fuzz body of `json_edit`: every object `serde_json` accepts is accepted; removing,
/// replacing and appending a member change only bytes of that member (and one separator),
/// and the result is valid JSON with the expected value.
pub fn json_edit(data: &[u8]) {
    let serde = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    let parsed = ObjectIndex::parse(data);
    if serde.is_some() {
        assert!(
            parsed.is_ok(),
            "serde accepts an object the tokenizer refuses"
        );
    }
    let Ok(index) = parsed else {
        return;
    };
    let mut keys: Vec<&str> = index.members.iter().map(|m| m.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys.iter().take(8) {
        let count = index.members.iter().filter(|m| m.key == *key).count();
        check_remove(data, &index, key, count, serde.as_ref());
        check_replace(data, &index, key, count);
    }
    check_append(data, &index);
    if let Ok(Some(out)) = set_include_usage(data) {
        assert!(
            ObjectIndex::parse(&out).is_ok(),
            "include_usage edit broke the body"
        );
        if serde.is_some() {
            let v: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
            assert_eq!(v["stream_options"]["include_usage"], Value::Bool(true));
        }
    }
}

fn check_remove(
    data: &[u8],
    index: &ObjectIndex,
    key: &str,
    count: usize,
    serde: Option<&serde_json::Map<String, Value>>,
) {
    let Ok(Some(out)) = remove_member(data, key) else {
        panic!("removing a present member failed");
    };
    assert!(ObjectIndex::parse(&out).is_ok(), "removal broke the body");
    if count == 1 {
        // One contiguous window was cut, no longer than the member plus its separators.
        let p = common_prefix(data, &out);
        let s = common_suffix(data, &out);
        assert!(p + s >= out.len(), "bytes outside the member changed");
        let pos = index.members.iter().position(|m| m.key == key).unwrap_or(0);
        let lo = if pos == 0 {
            index.open + 1
        } else {
            index.members[pos - 1].value_span.end
        };
        let hi = index
            .members
            .get(pos + 1)
            .map_or(index.close, |m| m.key_span.start);
        assert!(
            data.len() - out.len() <= hi - lo,
            "removed more than the member"
        );
    }
    if let Some(map) = serde {
        let mut want = map.clone();
        want.shift_remove(key);
        let got: Value = serde_json::from_slice(&out).unwrap_or(Value::Null);
        assert_eq!(got, Value::Object(want), "removal changed another member");
    }
}

fn check_replace(data: &[u8], index: &ObjectIndex, key: &str, count: usize) {
    let Ok(out) = set_member(data, key, "[1]") else {
        panic!("replacing a member failed");
    };
    assert!(
        ObjectIndex::parse(&out).is_ok(),
        "replacement broke the body"
    );
    if count == 1 {
        let Some(m) = index.get(key) else { return };
        let (a, b) = (m.value_span.start, m.value_span.end);
        assert_eq!(&out[..a], &data[..a]);
        assert_eq!(&out[a..a + 3], b"[1]");
        assert_eq!(&out[a + 3..], &data[b..]);
    }
}

fn check_append(data: &[u8], index: &ObjectIndex) {
    let fresh = "\u{1}fuzz-fresh-key";
    if index.get(fresh).is_some() {
        return;
    }
    let Ok(out) = set_member(data, fresh, "null") else {
        panic!("appending a member failed");
    };
    let at = index
        .members
        .last()
        .map_or(index.open + 1, |m| m.value_span.end);
    assert_eq!(&out[..at], &data[..at]);
    assert_eq!(&out[out.len() - (data.len() - at)..], &data[at..]);
    assert!(ObjectIndex::parse(&out).is_ok(), "append broke the body");
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "the test replays committed fixture files; reading them is the test's IO, not the core's"
)]
mod tests {
    use proptest::prelude::*;

    fn corpus() -> Vec<Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/json_edit");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap() != ".keep")
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    #[test]
    fn committed_corpus_replays() {
        let inputs = corpus();
        assert!(inputs.len() >= 4, "seed corpus is missing");
        for input in inputs {
            super::json_edit(&input);
        }
    }

    proptest! {
        #[test]
        fn mutated_corpus_keeps_the_oracle(pick in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>(), insert in "[{}\\[\\]\",:a-z0-9=\\n \\\\]{0,6}") {
            let inputs = corpus();
            let mut input = inputs[pick.index(inputs.len())].clone();
            let at = cut.index(input.len() + 1);
            input.splice(at..at, insert.bytes());
            super::json_edit(&input);
        }
    }
}
