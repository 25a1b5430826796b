use proptest::prelude::*;
use serde_json::Value;

use super::*;

fn s(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

#[test]
fn remove_member_keeps_every_other_byte() {
    let cases: &[(&str, &str, &str)] = &[
        (
            r#"{"a":1,"provider":"x","b":2}"#,
            "provider",
            r#"{"a":1,"b":2}"#,
        ),
        (
            r#"{ "provider" : "x" , "b" :2 }"#,
            "provider",
            r#"{ "b" :2 }"#,
        ),
        (
            r#"{"a":1.50 ,  "provider":{"n":[1]}}"#,
            "provider",
            r#"{"a":1.50}"#,
        ),
        (r#"{ "provider":1 }"#, "provider", r#"{  }"#),
        (
            r#"{"provider":1,"a":2,"provider":3}"#,
            "provider",
            r#"{"a":2}"#,
        ),
        (r#"{"provider":1,"provider":3}"#, "provider", r#"{}"#),
        (
            "{\n  \"a\": 1e5,\n  \"provider\": \"p\"\n}\n",
            "provider",
            "{\n  \"a\": 1e5\n}\n",
        ),
        (r#"{"prov\u0069der":1,"x":2}"#, "provider", r#"{"x":2}"#),
    ];
    for (body, key, want) in cases {
        let got = remove_member(body.as_bytes(), key).unwrap().unwrap();
        assert_eq!(s(&got), *want, "removing {key} from {body}");
        serde_json::from_slice::<Value>(&got).unwrap();
    }
    assert_eq!(remove_member(br#"{"a":1}"#, "provider").unwrap(), None);
}

#[test]
fn set_member_replaces_in_place_or_appends() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            r#"{"model":"anthropic/claude","reasoning_effort":"xhigh"}"#,
            "model",
            r#""claude""#,
            r#"{"model":"claude","reasoning_effort":"xhigh"}"#,
        ),
        (r#"{ "a" : 1 }"#, "b", "true", r#"{ "a" : 1,"b":true }"#),
        (r#"{}"#, "b", "[1]", r#"{"b":[1]}"#),
        (r#"  { }  "#, "b", "null", r#"  {"b":null }  "#),
        (r#"{"a":1,"a":2}"#, "a", "3", r#"{"a":3,"a":3}"#),
        (r#"{"k\"ey":1}"#, "k\"ey", "2", r#"{"k\"ey":2}"#),
    ];
    for (body, key, raw, want) in cases {
        let got = set_member(body.as_bytes(), key, raw).unwrap();
        assert_eq!(s(&got), *want);
    }
    assert!(
        set_member(b"{}", "a", "{").is_err(),
        "raw value is validated"
    );
}

#[test]
fn include_usage_injection_rules() {
    let cases: &[(&str, Option<&str>)] = &[
        (
            r#"{"stream":true}"#,
            Some(r#"{"stream":true,"stream_options":{"include_usage":true}}"#),
        ),
        (
            r#"{"stream":true,"stream_options":null}"#,
            Some(r#"{"stream":true,"stream_options":{"include_usage":true}}"#),
        ),
        (
            r#"{"stream_options":{ "x" : 1 },"stream":true}"#,
            Some(r#"{"stream_options":{ "x" : 1,"include_usage":true },"stream":true}"#),
        ),
        (
            r#"{"stream_options":{"include_usage":false,"y":2}}"#,
            Some(r#"{"stream_options":{"include_usage":true,"y":2}}"#),
        ),
        (
            r#"{"stream_options":{}}"#,
            Some(r#"{"stream_options":{"include_usage":true}}"#),
        ),
        (r#"{"stream_options":{"include_usage":true}}"#, None),
    ];
    for (body, want) in cases {
        let got = set_include_usage(body.as_bytes()).unwrap();
        assert_eq!(got.as_deref().map(s), *want, "{body}");
        assert_eq!(include_usage_is_true(body.as_bytes()), want.is_none());
    }
}

#[test]
fn get_str_decodes_escapes_and_takes_the_last_occurrence() {
    let body = br#"{"model":"a","model":"gpt-\u00e9\n","n":1}"#;
    assert_eq!(get_str(body, "model").unwrap().as_deref(), Some("gpt-é\n"));
    assert_eq!(get_str(body, "n").unwrap(), None);
    assert_eq!(get_str(body, "missing").unwrap(), None);
    let pair = br#"{"m":"\ud83d\ude00","lone":"\ud800x"}"#;
    assert_eq!(get_str(pair, "m").unwrap().as_deref(), Some("😀"));
    assert_eq!(get_str(pair, "lone").unwrap().as_deref(), Some("\u{FFFD}x"));
    assert_eq!(
        get_raw(br#"{"a": [1, 2] }"#, "a").unwrap(),
        Some(&b"[1, 2]"[..])
    );
}

#[test]
fn invalid_and_non_object_bodies_are_refused() {
    let invalid: &[&[u8]] = &[
        b"",
        b"{",
        b"{\"a\":}",
        b"{\"a\":1,}",
        b"{\"a\" 1}",
        b"{\"a\":01}",
        b"{\"a\":1.}",
        b"{\"a\":1e}",
        b"{\"a\":-}",
        b"{\"a\":tru}",
        b"{\"a\":\"\\x\"}",
        b"{\"a\":\"\\u12g4\"}",
        b"{\"a\":\"tab\there\"}",
        b"{\"a\":[1,]}",
        b"{\"a\":[1 2]}",
        b"{\"a\":{\"b\"}}",
        b"{} {}",
        b"{\"a\":1}x",
        b"\xEF\xBB\xBF{}",
        b"{'a':1}",
    ];
    for body in invalid {
        let err = ObjectIndex::parse(body).unwrap_err();
        assert!(
            matches!(err, JsonEditError::Invalid { .. } | JsonEditError::NotUtf8),
            "{:?} gave {err:?}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(
        ObjectIndex::parse(b"{\"a\":\"\xff\"}"),
        Err(JsonEditError::NotUtf8)
    );
    for body in [&b"[1,2]"[..], b" 3 ", b"\"s\"", b"null"] {
        assert_eq!(ObjectIndex::parse(body), Err(JsonEditError::NotAnObject));
    }
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let depth = 200_000;
    let mut body = String::from("{\"a\":");
    body.push_str(&"[".repeat(depth));
    body.push_str(&"]".repeat(depth));
    body.push('}');
    let index = ObjectIndex::parse(body.as_bytes()).unwrap();
    assert_eq!(index.members.len(), 1);
    let got = remove_member(body.as_bytes(), "a").unwrap().unwrap();
    assert_eq!(s(&got), "{}");
}

// ---- property: edits are surgical -------------------------------------------------------

/// A rendered object and, for each member, the byte span of `key : value`.
#[derive(Debug)]
struct Rendered {
    text: String,
    keys: Vec<String>,
    member_spans: Vec<(usize, usize)>,
    value_spans: Vec<(usize, usize)>,
}

fn ws_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec![' ', '\t', '\n', '\r']), 0..3)
        .prop_map(|v| v.into_iter().collect())
}

fn scalar_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("1.50".to_owned()),
        Just("-0e+7".to_owned()),
        Just("[ 1 ,{\"x\" : \"}\"} ]".to_owned()),
        Just("{\"a,b\":\"\\\"\"}".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[a-z ,:{}\\[\\]é]{0,8}".prop_map(|t| serde_json::to_string(&t).unwrap()),
    ]
}

fn object_strategy() -> impl Strategy<Value = Rendered> {
    let member = (
        "[a-z\"\\\\]{0,6}",
        scalar_text(),
        ws_strategy(),
        ws_strategy(),
        ws_strategy(),
        ws_strategy(),
    );
    (
        prop::collection::vec(member, 1..6),
        ws_strategy(),
        ws_strategy(),
    )
        .prop_map(|(members, lead, trail)| {
            let mut text = format!("{lead}{{");
            let mut keys = Vec::new();
            let mut member_spans = Vec::new();
            let mut value_spans = Vec::new();
            for (i, (key, value, w1, w2, w3, w4)) in members.into_iter().enumerate() {
                // Unique keys, so the expected result is unambiguous.
                let key = format!("{key}{i}");
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&w1);
                let start = text.len();
                text.push_str(&serde_json::to_string(&key).unwrap());
                text.push_str(&w2);
                text.push(':');
                text.push_str(&w3);
                let vstart = text.len();
                text.push_str(&value);
                member_spans.push((start, text.len()));
                value_spans.push((vstart, text.len()));
                text.push_str(&w4);
                keys.push(key);
            }
            text.push('}');
            text.push_str(&trail);
            Rendered {
                text,
                keys,
                member_spans,
                value_spans,
            }
        })
}

proptest! {
    #[test]
    fn removing_a_member_leaves_all_other_bytes(obj in object_strategy(), pick in any::<prop::sample::Index>()) {
        let k = pick.index(obj.keys.len());
        let out = remove_member(obj.text.as_bytes(), &obj.keys[k]).unwrap().unwrap();
        let out = String::from_utf8(out).unwrap();
        // Every other member's text appears unchanged and in order.
        let mut from = 0;
        for (i, &(a, b)) in obj.member_spans.iter().enumerate() {
            if i == k { continue; }
            let found = out[from..].find(&obj.text[a..b]);
            prop_assert!(found.is_some(), "member {i} lost in {out:?}");
            from += found.unwrap() + (b - a);
        }
        // Only bytes of the removed member, one comma and whitespace went away.
        let removed = obj.text.len() - out.len();
        let (a, b) = obj.member_spans[k];
        prop_assert!(removed >= b - a);
        prop_assert!(out.starts_with(&obj.text[..a.min(obj.member_spans[0].0)]));
        let mut want: Value = serde_json::from_str(&obj.text).unwrap();
        want.as_object_mut().unwrap().shift_remove(&obj.keys[k]);
        prop_assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), want);
    }

    #[test]
    fn replacing_a_value_changes_only_that_value(obj in object_strategy(), pick in any::<prop::sample::Index>()) {
        let k = pick.index(obj.keys.len());
        let out = set_member(obj.text.as_bytes(), &obj.keys[k], "{\"new\":true}").unwrap();
        let (a, b) = obj.value_spans[k];
        let want = format!("{}{}{}", &obj.text[..a], "{\"new\":true}", &obj.text[b..]);
        prop_assert_eq!(s(&out), want.as_str());
        serde_json::from_slice::<Value>(&out).unwrap();
    }

    #[test]
    fn appending_a_member_keeps_the_prefix_and_suffix(obj in object_strategy()) {
        let out = set_member(obj.text.as_bytes(), "fresh", "1").unwrap();
        let last_end = obj.value_spans.last().unwrap().1;
        let want = format!("{},\"fresh\":1{}", &obj.text[..last_end], &obj.text[last_end..]);
        prop_assert_eq!(s(&out), want.as_str());
        let v: Value = serde_json::from_slice(&out).unwrap();
        prop_assert_eq!(&v["fresh"], &Value::from(1));
    }

    #[test]
    fn tokenizer_agrees_with_serde_on_objects(text in "[{}\\[\\]\",:0-9a-z\\\\ .eE+-]{0,24}") {
        let ours = ObjectIndex::parse(text.as_bytes());
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(_)) => prop_assert!(ours.is_ok(), "{text:?}: {ours:?}"),
            Ok(_) => prop_assert_eq!(ours, Err(JsonEditError::NotAnObject)),
            // Grammar-valid text that serde refuses for its meaning (see the module docs).
            Err(e) if e.to_string().contains("out of range") || e.to_string().contains("surrogate") => {}
            Err(_) => prop_assert!(ours.is_err(), "{text:?} accepted"),
        }
    }
}
