//! Query strings and path segments, percent-decoded.
//!
//! Query decoding follows the form-urlencoded rules browsers and `URLSearchParams` use, so a
//! dashboard or `curl` user gets what they typed: `+` is a space, a malformed `%` escape is
//! kept literally, invalid UTF-8 becomes U+FFFD, and the first occurrence of a repeated key
//! wins. Path segments are decoded strictly instead (no `+` rule, a malformed escape or
//! invalid UTF-8 makes the path unknown), because they name things.

/// A parsed query string: the decoded `(key, value)` pairs in order of appearance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses the query string (without the leading `?`). `None` is an empty query.
    pub fn parse(raw: Option<&str>) -> Query {
        let Some(raw) = raw else {
            return Query::default();
        };
        let pairs = raw
            .split('&')
            .filter(|piece| !piece.is_empty())
            .map(|piece| {
                let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
                (decode_form(k), decode_form(v))
            })
            .collect();
        Query { pairs }
    }

    /// The value of the first occurrence of `key`, if present (possibly empty).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every decoded pair, in order of appearance.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// Decodes one form-urlencoded component: `+` → space, `%XY` → byte, malformed escapes kept.
pub fn decode_form(s: &str) -> String {
    let bytes = decode_bytes(s, true, false).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Decodes one path segment strictly: `None` on a malformed escape or invalid UTF-8.
pub fn decode_path_segment(s: &str) -> Option<String> {
    let bytes = decode_bytes(s, false, true)?;
    String::from_utf8(bytes).ok()
}

fn decode_bytes(s: &str, plus_as_space: bool, strict: bool) -> Option<Vec<u8>> {
    let input = s.as_bytes();
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = input.get(i + 1).copied().and_then(hex_value);
                let lo = input.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 3;
                    }
                    _ if strict => return None,
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decodes_plus_percent_and_keeps_first_duplicate() {
        let q = Query::parse(Some(
            "model=claude+opus%204&tool=a%2Bb&model=other&flag&&x=%zz",
        ));
        assert_eq!(q.get("model"), Some("claude opus 4"));
        assert_eq!(q.get("tool"), Some("a+b"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("x"), Some("%zz"));
        assert_eq!(q.get("missing"), None);
        assert_eq!(q.pairs().len(), 5);
    }

    #[test]
    fn query_invalid_utf8_is_replaced_not_rejected() {
        let q = Query::parse(Some("a=%ff"));
        assert_eq!(q.get("a"), Some("\u{fffd}"));
        assert_eq!(Query::parse(None), Query::default());
    }

    #[test]
    fn path_segments_decode_strictly() {
        assert_eq!(decode_path_segment("my%2Fprov").as_deref(), Some("my/prov"));
        assert_eq!(decode_path_segment("a+b").as_deref(), Some("a+b"));
        assert_eq!(decode_path_segment("bad%2"), None);
        assert_eq!(decode_path_segment("bad%zz"), None);
        assert_eq!(decode_path_segment("%ff"), None);
    }
}
