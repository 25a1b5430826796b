//! A lazy JSON view that keeps number texts and object order.
//!
//! serde_json without `arbitrary_precision` turns numbers into `f64`, which would lose price
//! digits. Here every value stays a borrowed [`RawValue`] (its exact text) and is classified
//! one level at a time, so a number's text reaches the decimal parser untouched. Objects are
//! read in document order into a `Vec`; a repeated key replaces the earlier value in its
//! first position, as `JSON.parse` does.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// One classified JSON value whose children are still raw.
pub(crate) enum Node<'a> {
    /// An object's members in document order, keys unique.
    Object(Vec<(String, &'a RawValue)>),
    /// An array's elements.
    Array(Vec<&'a RawValue>),
    /// A number (read its text with [`number`]).
    Number,
    /// A string, unescaped.
    String(String),
    /// `true`, `false` or `null`.
    Other,
}

/// Parses a whole document into a raw value.
pub(crate) fn parse_document(text: &str) -> Result<&RawValue, serde_json::Error> {
    serde_json::from_str(text)
}

/// Classifies one raw value. The text already passed serde_json once, so errors here only
/// come from nesting limits.
pub(crate) fn classify(raw: &RawValue) -> Result<Node<'_>, serde_json::Error> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'{') => serde_json::from_str::<Members<'_>>(text).map(|m| Node::Object(m.0)),
        Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(text).map(Node::Array),
        Some(b'"') => serde_json::from_str::<String>(text).map(Node::String),
        Some(b'-' | b'0'..=b'9') => Ok(Node::Number),
        _ => Ok(Node::Other),
    }
}

/// The members of `raw` when it is an object.
pub(crate) fn object(raw: &RawValue) -> Option<Vec<(String, &RawValue)>> {
    match classify(raw) {
        Ok(Node::Object(members)) => Some(members),
        _ => None,
    }
}

/// The number text of `raw` when it is a number.
pub(crate) fn number(raw: &RawValue) -> Option<&str> {
    let text = raw.get();
    matches!(text.as_bytes().first(), Some(b'-' | b'0'..=b'9')).then_some(text)
}

/// The member `name` of an object's member list.
pub(crate) fn member<'a>(members: &[(String, &'a RawValue)], name: &str) -> Option<&'a RawValue> {
    members.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

/// Whether `raw` is the literal `null`.
pub(crate) fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: Vec<(String, &'de RawValue)> = Vec::new();
        let mut position: BTreeMap<String, usize> = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
            match position.get(&key) {
                Some(&i) => members[i].1 = value,
                None => {
                    position.insert(key.clone(), members.len());
                    members.push((key, value));
                }
            }
        }
        Ok(Members(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_document_order_and_later_duplicates_replace_in_place() {
        let raw = parse_document(r#"{"b":1,"a":2.50,"b":3e0}"#).unwrap();
        let members = object(raw).unwrap();
        let view: Vec<(&str, &str)> = members.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
        assert_eq!(view, [("b", "3e0"), ("a", "2.50")]);
    }

    #[test]
    fn classification_keeps_number_text() {
        let raw =
            parse_document(r#"[0.1000000000000000055511151231257827, "x\u0041", null]"#).unwrap();
        let Ok(Node::Array(items)) = classify(raw) else {
            panic!("not an array")
        };
        assert_eq!(
            number(items[0]),
            Some("0.1000000000000000055511151231257827")
        );
        assert!(matches!(classify(items[1]), Ok(Node::String(s)) if s == "xA"));
        assert!(is_null(items[2]));
        assert!(object(items[0]).is_none());
    }
}
