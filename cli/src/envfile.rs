//! Writing the env file (`control.md` §11.4): key order, value quoting, `--merge`.

use std::collections::BTreeMap;

/// The keys `init` writes, in file order.
pub(crate) const KEY_ORDER: [&str; 14] = [
    "PROXY_HOST",
    "PROXY_PORT",
    "ADMIN_API_KEY",
    "CLI_PROXY_API_URL",
    "CLI_PROXY_API_KEY",
    "DB_PATH",
    "PRICING_CACHE_PATH",
    "PRICING_CACHE_TTL_MS",
    "CLIENT_NAME_MAPPING",
    "CLIPROXY_MGMT_KEY",
    "CLIPROXY_CORRELATION_INTERVAL_MS",
    "CLIPROXY_CORRELATION_LOOKBACK_MS",
    "CLIPROXY_AUTH_DIR",
    "QUOTA_REFRESH_TIMEOUT_MS",
];

/// The file text: one `KEY=value` per line, ending with a newline.
pub(crate) fn render(entries: &[(String, String)]) -> String {
    let mut out = String::new();
    for (k, v) in entries {
        out.push_str(k);
        out.push('=');
        out.push_str(&quote_value(v));
        out.push('\n');
    }
    out
}

/// Bare when made only of `A-Z a-z 0-9 _ . / : @ -` (or empty), else a JSON string.
pub(crate) fn quote_value(value: &str) -> String {
    let bare = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | ':' | '@' | '-'));
    if bare {
        value.to_owned()
    } else {
        serde_json::Value::String(value.to_owned()).to_string()
    }
}

/// `--merge`: the new keys in their order with the old file's values where it has them,
/// then the keys only the old file has, in its order.
pub(crate) fn merge(new: &[(String, String)], old: &[(String, String)]) -> Vec<(String, String)> {
    let mut old_values: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in old {
        old_values.insert(k, v);
    }
    let mut out: Vec<(String, String)> = new
        .iter()
        .map(|(k, v)| {
            let value = old_values.get(k.as_str()).map_or(v.as_str(), |o| *o);
            (k.clone(), value.to_owned())
        })
        .collect();
    for (k, _) in old {
        if !out.iter().any(|(n, _)| n == k) {
            let value = old_values.get(k.as_str()).copied().unwrap_or_default();
            out.push((k.clone(), value.to_owned()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_cli_proxy_core::config::parse_env_file;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn quoting_round_trips_through_the_parser() {
        for value in [
            "",
            "plain-value_1.2/3:4@5",
            "has space",
            "quote\"inside",
            "back\\slash",
            "new\nline",
            "#hash",
            "ünï",
        ] {
            let text = render(&[p("K", value)]);
            assert!(text.ends_with('\n'));
            assert_eq!(parse_env_file(&text), vec![p("K", value)], "{value:?}");
        }
        assert_eq!(quote_value("a b"), "\"a b\"");
        assert_eq!(quote_value("http://x:1/y"), "http://x:1/y");
    }

    #[test]
    fn merge_keeps_old_values_and_appends_old_only_keys() {
        let new = vec![p("A", "new-a"), p("B", "new-b"), p("C", "new-c")];
        let old = vec![p("X", "1"), p("B", "old-b"), p("Y", "2"), p("B", "old-b2")];
        assert_eq!(
            merge(&new, &old),
            vec![
                p("A", "new-a"),
                p("B", "old-b2"),
                p("C", "new-c"),
                p("X", "1"),
                p("Y", "2"),
            ]
        );
    }
}
