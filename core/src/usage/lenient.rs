//! Lenient JSON leaf types: they accept any JSON value and keep only what the accounting rules
//! allow, so one odd field never makes a whole event unreadable.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A token count (`accounting.md` §2): a JSON number that is a non-negative integer no larger
/// than 2^63 − 1; anything else is absent. Also remembers whether the value was a number at all,
/// for format detection ("`usage.prompt_tokens` is a number").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Count {
    /// The key held a JSON number.
    pub is_number: bool,
    /// The valid count, if it is one.
    pub value: Option<u64>,
}

/// A JSON string; anything else is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub Option<Cow<'a, str>>);

impl Text<'_> {
    /// The string, if the value was one.
    pub(crate) fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

/// A JSON boolean; anything else is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flag(pub Option<bool>);

const MAX_COUNT: u64 = i64::MAX as u64;

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LeafVisitor(|leaf: Leaf<'de>| match leaf {
            Leaf::U64(v) => Count {
                is_number: true,
                value: (v <= MAX_COUNT).then_some(v),
            },
            Leaf::I64(v) => Count {
                is_number: true,
                value: u64::try_from(v).ok(),
            },
            Leaf::F64 => Count {
                is_number: true,
                value: None,
            },
            _ => Count::default(),
        }))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LeafVisitor(|leaf: Leaf<'de>| match leaf {
            Leaf::Str(s) => Text(Some(s)),
            _ => Text(None),
        }))
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LeafVisitor(|leaf: Leaf<'de>| match leaf {
            Leaf::Bool(b) => Flag(Some(b)),
            _ => Flag(None),
        }))
    }
}

enum Leaf<'de> {
    U64(u64),
    I64(i64),
    F64,
    Bool(bool),
    Str(Cow<'de, str>),
    Other,
}

struct LeafVisitor<F>(F);

impl<'de, T, F: FnOnce(Leaf<'de>) -> T> Visitor<'de> for LeafVisitor<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        Ok((self.0)(Leaf::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Ok((self.0)(Leaf::I64(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok((self.0)(Leaf::U64(v)))
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<T, E> {
        Ok((self.0)(Leaf::F64))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<T, E> {
        Ok((self.0)(Leaf::Str(Cow::Borrowed(v))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.0)(Leaf::Str(Cow::Owned(v.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
        Ok((self.0)(Leaf::Str(Cow::Owned(v))))
    }

    fn visit_bytes<E: de::Error>(self, _v: &[u8]) -> Result<T, E> {
        Ok((self.0)(Leaf::Other))
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok((self.0)(Leaf::Other))
    }

    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        Ok((self.0)(Leaf::Other))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok((self.0)(Leaf::Other))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok((self.0)(Leaf::Other))
    }
}

/// Parses the JSON object `raw` as `T`; absent when it is not an object or does not fit
/// (duplicate keys, …). Arrays are refused explicitly because derived structs would otherwise
/// accept them positionally.
pub(crate) fn object<'a, T: Deserialize<'a>>(raw: Option<&'a RawValue>) -> Option<T> {
    object_str(raw?.get())
}

/// [`object`] over text.
pub(crate) fn object_str<'a, T: Deserialize<'a>>(text: &'a str) -> Option<T> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(text).ok()
}
