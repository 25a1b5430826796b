//! Inspection of one request (`datapath.md` §6.1): header fields, the peer, and a best-effort
//! look at the top level of a JSON body.
//!
//! The body may be 25 MB, so it is never turned into a `serde_json::Value`: a map visitor
//! reads the top-level keys, keeps `model`, `stream` and `provider` (borrowed when they have
//! no escapes) and skips every other value with `IgnoredAny`, which allocates nothing.
//! Choices where the spec is silent: a repeated key keeps its last value (as `JSON.parse`
//! does); a body with trailing garbage is not JSON; `model` is kept verbatim (even if blank);
//! the body `provider` is trimmed and ignored when blank, like the header; a forwarded
//! address that is not an IP address is skipped, so only addresses reach the row.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::Deserializer;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

use super::header_text;
use crate::head::RequestHead;
use crate::route::canonical_peer;

/// The fields read from a request (§6.1), the request id excepted (the shell makes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// `user-agent`.
    pub user_agent: Option<String>,
    /// `x-agent-name`, trimmed.
    pub agent: Option<String>,
    /// `originator`.
    pub originator: Option<String>,
    /// Top-level JSON string `model` of the body.
    pub model: Option<String>,
    /// Top-level JSON `stream` is `true` or `"true"`.
    pub stream: bool,
    /// `x-provider` trimmed, else the top-level JSON string `provider`.
    pub selector: Option<String>,
    /// First present of `x-msg-id`, `x-message-id`, `x-request-id`.
    pub msg_id: Option<String>,
    /// The canonical peer, or with trusted proxy headers the first `x-forwarded-for` entry,
    /// else `cf-connecting-ip`.
    pub source_ip: IpAddr,
}

/// The top-level body fields the data path needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyFields<'a> {
    /// The `model` string.
    pub model: Option<Cow<'a, str>>,
    /// `stream` is `true` or `"true"`.
    pub stream: bool,
    /// The `provider` string.
    pub provider: Option<Cow<'a, str>>,
}

/// Inspects a request: its head, its buffered body, the socket peer and whether forwarded
/// headers are trusted.
pub fn inspect(
    head: &RequestHead,
    body: &[u8],
    peer: IpAddr,
    trust_proxy_headers: bool,
) -> Inspection {
    let fields = body_fields(body);
    let owned = |name: &str| header_text(&head.headers, name).map(Cow::into_owned);
    let selector = owned("x-provider").or_else(|| {
        let p = fields.provider.as_deref()?.trim();
        (!p.is_empty()).then(|| p.to_owned())
    });
    Inspection {
        user_agent: owned("user-agent"),
        agent: owned("x-agent-name"),
        originator: owned("originator"),
        model: fields.model.map(Cow::into_owned),
        stream: fields.stream,
        selector,
        msg_id: ["x-msg-id", "x-message-id", "x-request-id"]
            .iter()
            .find_map(|n| owned(n)),
        source_ip: source_ip(head, peer, trust_proxy_headers),
    }
}

/// Reads `model`, `stream` and `provider` from the top level of a JSON object body; any
/// other body gives the defaults.
pub fn body_fields(body: &[u8]) -> BodyFields<'_> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let Ok(fields) = de.deserialize_map(TopLevel) else {
        return BodyFields::default();
    };
    if de.end().is_err() {
        return BodyFields::default();
    }
    fields
}

fn source_ip(head: &RequestHead, peer: IpAddr, trust: bool) -> IpAddr {
    let peer = canonical_peer(peer);
    if !trust {
        return peer;
    }
    let forwarded = head
        .header_str("x-forwarded-for")
        .and_then(|v| v.split(',').next())
        .and_then(parse_ip);
    forwarded
        .or_else(|| head.header_str("cf-connecting-ip").and_then(parse_ip))
        .unwrap_or(peer)
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok().map(canonical_peer)
}

struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = BodyFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BodyFields::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Model => out.model = map.next_value::<MaybeStr<'de>>()?.0,
                Key::Provider => out.provider = map.next_value::<MaybeStr<'de>>()?.0,
                Key::Stream => out.stream = map.next_value::<StreamFlag>()?.0,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

enum Key {
    Model,
    Stream,
    Provider,
    Other,
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "model" => Key::Model,
                    "stream" => Key::Stream,
                    "provider" => Key::Provider,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// A value kept only when it is a string; any other JSON value is skipped.
struct MaybeStr<'a>(Option<Cow<'a, str>>);

/// `true` or `"true"`; any other JSON value is false.
struct StreamFlag(bool);

impl<'de> de::Deserialize<'de> for MaybeStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor).map(|v| match v {
            AnyValue::Str(s) => MaybeStr(Some(s)),
            AnyValue::Bool(_) | AnyValue::Other => MaybeStr(None),
        })
    }
}

impl<'de> de::Deserialize<'de> for StreamFlag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor).map(|v| {
            StreamFlag(match v {
                AnyValue::Bool(b) => b,
                AnyValue::Str(s) => s == "true",
                AnyValue::Other => false,
            })
        })
    }
}

/// One JSON value reduced to what the inspection cares about.
enum AnyValue<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Other,
}

/// Visits any JSON value; nested containers are drained with `IgnoredAny`.
struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = AnyValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(AnyValue::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(AnyValue::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(AnyValue::Str(Cow::Owned(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(AnyValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(AnyValue::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(AnyValue::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(AnyValue::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(AnyValue::Other)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(AnyValue::Other)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(AnyValue::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(AnyValue::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method};

    fn head(pairs: &[(&'static str, &str)]) -> RequestHead {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        RequestHead::new(Method::POST, "/v1/messages", h)
    }

    fn peer() -> IpAddr {
        "::ffff:10.1.2.3".parse().unwrap()
    }

    #[test]
    fn body_fields_table() {
        let cases: &[(&str, Option<&str>, bool, Option<&str>)] = &[
            (
                r#"{"model":"gpt-5","stream":true}"#,
                Some("gpt-5"),
                true,
                None,
            ),
            (
                r#"{"stream":"true","provider":"codex"}"#,
                None,
                true,
                Some("codex"),
            ),
            (r#"{"stream":"yes"}"#, None, false, None),
            (r#"{"stream":1}"#, None, false, None),
            (r#"{"model":42,"stream":false}"#, None, false, None),
            (
                r#"{"model":{"name":"x"},"messages":[{"model":"inner"}]}"#,
                None,
                false,
                None,
            ),
            (
                r#"{"messages":[{"model":"inner","stream":true}]}"#,
                None,
                false,
                None,
            ),
            (r#"{"model":"a","model":"b"}"#, Some("b"), false, None),
            (r#"{"model":"caf\u00e9"}"#, Some("café"), false, None),
            (r#"{"model":"x"} trailing"#, None, false, None),
            (r#"{"model":"x""#, None, false, None),
            (r#"["model","x"]"#, None, false, None),
            (r#""model""#, None, false, None),
            ("", None, false, None),
            (" \n{\"model\" : \"m\" }\n ", Some("m"), false, None),
        ];
        for (body, model, stream, provider) in cases {
            let f = body_fields(body.as_bytes());
            assert_eq!(f.model.as_deref(), *model, "{body}");
            assert_eq!(f.stream, *stream, "{body}");
            assert_eq!(f.provider.as_deref(), *provider, "{body}");
        }
    }

    #[test]
    fn model_without_escapes_is_borrowed() {
        let f = body_fields(br#"{"model":"claude-sonnet"}"#);
        assert!(matches!(f.model, Some(Cow::Borrowed("claude-sonnet"))));
    }

    #[test]
    fn headers_and_selector() {
        let h = head(&[
            ("user-agent", "claude-cli/2.0"),
            ("x-agent-name", "  jongi "),
            ("originator", "codex_cli_rs"),
            ("x-provider", " codex "),
            ("x-message-id", "m2"),
            ("x-request-id", "m3"),
        ]);
        let i = inspect(&h, br#"{"provider":"claude","model":"m"}"#, peer(), false);
        assert_eq!(i.user_agent.as_deref(), Some("claude-cli/2.0"));
        assert_eq!(i.agent.as_deref(), Some("jongi"));
        assert_eq!(i.originator.as_deref(), Some("codex_cli_rs"));
        assert_eq!(i.selector.as_deref(), Some("codex"));
        assert_eq!(i.msg_id.as_deref(), Some("m2"));
        assert_eq!(i.model.as_deref(), Some("m"));
        assert_eq!(i.source_ip, "10.1.2.3".parse::<IpAddr>().unwrap());

        let i = inspect(&head(&[]), br#"{"provider":" claude "}"#, peer(), false);
        assert_eq!(i.selector.as_deref(), Some("claude"));
        assert_eq!(i.user_agent, None);
        assert_eq!(i.msg_id, None);
    }

    #[test]
    fn source_ip_honours_trust() {
        let h = head(&[
            ("x-forwarded-for", "203.0.113.7, 10.0.0.1"),
            ("cf-connecting-ip", "198.51.100.1"),
        ]);
        assert_eq!(
            inspect(&h, b"", peer(), false).source_ip,
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            inspect(&h, b"", peer(), true).source_ip,
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        let h = head(&[
            ("x-forwarded-for", "garbage"),
            ("cf-connecting-ip", "198.51.100.1"),
        ]);
        assert_eq!(
            inspect(&h, b"", peer(), true).source_ip,
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        let h = head(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(
            inspect(&h, b"", peer(), true).source_ip,
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn large_body_is_scanned_without_building_a_tree() {
        // 25 MB of nested messages after the model; only the top level is kept.
        let mut body = String::from(r#"{"model":"big","messages":["#);
        let item =
            r#"{"role":"user","content":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},"#;
        while body.len() < 25_000_000 {
            body.push_str(item);
        }
        body.push_str(r#"{}],"stream":true}"#);
        let f = body_fields(body.as_bytes());
        assert_eq!(f.model.as_deref(), Some("big"));
        assert!(f.stream);
    }
}
