//! The little URL checking configuration needs: http(s) base URLs and loopback hosts.
//!
//! Not a general URL parser. "Parseable" means: a scheme (`ALPHA *(ALPHA / DIGIT / + / - / .)`)
//! followed by `:`, no whitespace or control characters anywhere, and for `http`/`https` an
//! authority `//host[:port]` with a non-empty host and a port of at most 65535.

/// Why a URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlProblem {
    /// Not a URL at all.
    Unparseable,
    /// A URL, but its scheme is not `http` or `https`.
    NotHttp,
    /// An http(s) URL with userinfo, a query or a fragment.
    CredentialsQueryFragment,
}

/// An accepted http(s) base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    /// The URL with trailing `/` removed.
    pub normalized: String,
    /// The host as written (lower-cased, brackets kept for IPv6).
    pub host: String,
}

/// Checks an http(s) base URL (trimmed) and removes trailing `/`.
pub(crate) fn parse_base_url(raw: &str) -> Result<BaseUrl, UrlProblem> {
    let text = raw.trim();
    let (scheme, rest) = split_scheme(text).ok_or(UrlProblem::Unparseable)?;
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlProblem::Unparseable);
    }
    let scheme_lc = scheme.to_ascii_lowercase();
    if scheme_lc != "http" && scheme_lc != "https" {
        return Err(UrlProblem::NotHttp);
    }
    let after = rest.strip_prefix("//").ok_or(UrlProblem::Unparseable)?;
    let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let authority = &after[..auth_end];
    let host = host_of_authority(authority).ok_or(UrlProblem::Unparseable)?;
    if authority.contains('@') || after.contains('?') || after.contains('#') {
        return Err(UrlProblem::CredentialsQueryFragment);
    }
    Ok(BaseUrl {
        normalized: text.trim_end_matches('/').to_owned(),
        host,
    })
}

/// True for the loopback host names of `control.md` §5.3 (`127.0.0.1`, `localhost`, `::1`,
/// `[::1]`), trimmed and case-insensitive.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    matches!(
        host.trim().to_ascii_lowercase().as_str(),
        "127.0.0.1" | "localhost" | "::1" | "[::1]"
    )
}

/// `file:///` followed by an absolute path (at least one byte after the third `/`).
pub(crate) fn is_file_url(text: &str) -> bool {
    let text = text.trim();
    text.get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("file:///"))
        && text.len() > 8
        && !text.chars().any(char::is_control)
}

fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let colon = text.find(':')?;
    let scheme = &text[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let ok = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    ok.then(|| (scheme, &text[colon + 1..]))
}

fn host_of_authority(authority: &str) -> Option<String> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let close = rest.find(']')?;
        let inner = &rest[..close];
        if inner.is_empty()
            || !inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'))
        {
            return None;
        }
        let after = &rest[close + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (&host_port[..close + 2], port)
    } else {
        match host_port.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    if host.is_empty() || host.contains(['<', '>', '\\', '^', '|', '%', '"', '`', '{', '}']) {
        return None;
    }
    if let Some(port) = port
        && !port.is_empty()
        && (!port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u32>().ok()? > 65_535)
    {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let ok = parse_base_url(" https://api.example.com/v1// ").unwrap();
        assert_eq!(ok.normalized, "https://api.example.com/v1");
        assert_eq!(ok.host, "api.example.com");
        assert_eq!(parse_base_url("http://[::1]:8317").unwrap().host, "[::1]");
        assert_eq!(
            parse_base_url("HTTP://LocalHost:1/").unwrap().host,
            "localhost"
        );
        for (raw, want) in [
            ("", UrlProblem::Unparseable),
            ("not a url", UrlProblem::Unparseable),
            ("/just/a/path", UrlProblem::Unparseable),
            ("http://", UrlProblem::Unparseable),
            ("http:/x", UrlProblem::Unparseable),
            ("http://h:99999", UrlProblem::Unparseable),
            ("http://h:8x", UrlProblem::Unparseable),
            ("http://[zz]:1", UrlProblem::Unparseable),
            ("ftp://h", UrlProblem::NotHttp),
            ("localhost:8317", UrlProblem::NotHttp),
            ("http://u:p@h", UrlProblem::CredentialsQueryFragment),
            ("http://h/x?q=1", UrlProblem::CredentialsQueryFragment),
            ("http://h/#f", UrlProblem::CredentialsQueryFragment),
        ] {
            assert_eq!(parse_base_url(raw), Err(want), "{raw}");
        }
    }

    #[test]
    fn loopback_and_file_urls() {
        for h in ["127.0.0.1", "LOCALHOST", " ::1 ", "[::1]"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["0.0.0.0", "127.0.0.2", "example.com", ""] {
            assert!(!is_loopback_host(h), "{h}");
        }
        assert!(is_file_url("file:///tmp/api.json"));
        assert!(!is_file_url("file:///"));
        assert!(!is_file_url("file://host/x"));
        assert!(!is_file_url("file:relative"));
    }
}
