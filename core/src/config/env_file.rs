//! The env file (`control.md` §5.1): syntax and merging with the process environment.

use std::collections::BTreeMap;

/// Parses env-file text into `(key, value)` pairs in file order (duplicates kept).
///
/// Rules: lines are trimmed; empty lines, lines starting with `#` and lines without `=` are
/// skipped; a leading `export ` is ignored; the key is the trimmed text before the first `=`
/// (a line with an empty key is skipped); the value is the trimmed text after it. A value
/// starting with `"` is decoded as a JSON string, and if that fails the surrounding `"` are
/// stripped; any other value is kept as written.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(parse_line).collect()
}

/// The environment a command sees: every process variable, plus the file's variables that
/// the process does not set (an empty process value counts as set). For a key repeated in the
/// file, the last line wins.
pub fn merge_env(
    process: &BTreeMap<String, String>,
    file: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut merged = process.clone();
    let mut from_file: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in file {
        from_file.insert(k, v);
    }
    for (k, v) in from_file {
        if !merged.contains_key(k) {
            merged.insert(k.to_owned(), v.to_owned());
        }
    }
    merged
}

fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (key, value) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() {
        return None;
    }
    Some((key.to_owned(), decode_value(value.trim())))
}

fn decode_value(value: &str) -> String {
    if !value.starts_with('"') {
        return value.to_owned();
    }
    if let Ok(decoded) = serde_json::from_str::<String>(value) {
        return decoded;
    }
    let inner = &value[1..];
    inner.strip_suffix('"').unwrap_or(inner).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse_env_file(text)
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn syntax_rules() {
        let cases: &[(&str, Vec<(String, String)>)] = &[
            ("A=1", vec![p("A", "1")]),
            ("  A=1  ", vec![p("A", "1")]),
            ("", vec![]),
            ("   ", vec![]),
            ("# A=1", vec![]),
            ("  # A=1", vec![]),
            ("no equals sign", vec![]),
            ("export A=1", vec![p("A", "1")]),
            ("  export   B = 2", vec![p("B", "2")]),
            (" A =x=y", vec![p("A", "x=y")]),
            ("=value", vec![]),
            ("A=", vec![p("A", "")]),
            ("A=\"x\\ny\"", vec![p("A", "x\ny")]),
            ("A=\"x # not a comment\"", vec![p("A", "x # not a comment")]),
            ("A=\"bad \\q escape\"", vec![p("A", "bad \\q escape")]),
            ("A=\"unterminated", vec![p("A", "unterminated")]),
            ("A=it's \"raw\"", vec![p("A", "it's \"raw\"")]),
            ("A='single'", vec![p("A", "'single'")]),
            ("A=1 # trailing", vec![p("A", "1 # trailing")]),
            ("A=1\r\nB=2\r\n", vec![p("A", "1"), p("B", "2")]),
            ("A=1\nA=2", vec![p("A", "1"), p("A", "2")]),
            ("exportA=1", vec![p("exportA", "1")]),
        ];
        for (text, want) in cases {
            assert_eq!(&pairs(text), want, "{text:?}");
        }
    }

    #[test]
    fn file_fills_only_unset_variables() {
        let process: BTreeMap<String, String> =
            [p("A", "process"), p("EMPTY", "")].into_iter().collect();
        let file = pairs("A=file\nEMPTY=file\nB=first\nB=second\n");
        let merged = merge_env(&process, &file);
        assert_eq!(merged["A"], "process");
        assert_eq!(merged["EMPTY"], "");
        assert_eq!(merged["B"], "second");
        assert_eq!(merged.len(), 3);
    }
}
