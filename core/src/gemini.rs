//! The Gemini API's call paths (`gemini.md` §1, §2): which paths belong to it, which of them
//! are generation calls, whether they stream, and the model a `/v1beta/models/…` path names.
//!
//! Two path families exist: the API-key mode of Gemini CLI calls
//! `/v1beta/models/<model>:<method>`, the Code Assist mode calls `/v1internal:<method>` with the
//! model in the body.
//!
//! Choices where the spec is silent:
//! * The method is the text after the last `:` of the path, compared exactly (Google's method
//!   names are case-sensitive).
//! * A malformed percent escape in the model segment is kept verbatim.
//! * An empty model segment (`/v1beta/models/:generateContent`) names no model; the row then
//!   says `unknown` like any LLM call without a model.

/// Path prefix of the API-key mode.
pub const V1BETA_PREFIX: &str = "/v1beta/";
/// Path prefix of the Code Assist mode.
pub const V1INTERNAL_PREFIX: &str = "/v1internal";

const MODELS_PREFIX: &str = "/v1beta/models/";

/// What a Gemini path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `:generateContent`: one JSON response.
    Generate,
    /// `:streamGenerateContent`: SSE with `alt=sse`, else a streamed JSON array.
    Stream,
    /// Anything else (`:countTokens`, `:embedContent`, listing models, …): not an LLM call.
    Other,
}

/// Whether the path belongs to the Gemini API (routing row 5, `gemini.md` §1).
pub fn is_gemini_path(path: &str) -> bool {
    path.starts_with(V1BETA_PREFIX) || path.starts_with(V1INTERNAL_PREFIX)
}

/// The method of a Gemini path; `None` for paths outside the Gemini API.
pub fn method(path: &str) -> Option<Method> {
    let rest = if let Some(rest) = path.strip_prefix(MODELS_PREFIX) {
        rest
    } else if let Some(rest) = path.strip_prefix(V1INTERNAL_PREFIX) {
        // `/v1internal:generateContent`: the method follows the prefix directly.
        match rest.strip_prefix(':') {
            Some(m) if !m.contains('/') => return Some(named(m)),
            _ => return Some(Method::Other),
        }
    } else if path.starts_with(V1BETA_PREFIX) {
        return Some(Method::Other);
    } else {
        return None;
    };
    Some(match rest.rsplit_once(':') {
        Some((model, m)) if !model.contains('/') => named(m),
        _ => Method::Other,
    })
}

/// Whether `POST` to this path is a Gemini generation call (`gemini.md` §2).
pub fn is_generation(path: &str) -> bool {
    matches!(method(path), Some(Method::Generate | Method::Stream))
}

/// Whether this path streams (`:streamGenerateContent`).
pub fn is_stream(path: &str) -> bool {
    method(path) == Some(Method::Stream)
}

/// The model a `/v1beta/models/<model>:<method>` path names: the segment URL-decoded, a
/// `models/` prefix inside it removed. `None` for other paths or an empty segment.
pub fn path_model(path: &str) -> Option<String> {
    let rest = path.strip_prefix(MODELS_PREFIX)?;
    let (segment, _) = rest.rsplit_once(':')?;
    let decoded = percent_decode(segment);
    let model = decoded.strip_prefix("models/").unwrap_or(&decoded);
    (!model.is_empty() && !model.contains('/')).then(|| model.to_owned())
}

fn named(m: &str) -> Method {
    match m {
        "generateContent" => Method::Generate,
        "streamGenerateContent" => Method::Stream,
        _ => Method::Other,
    }
}

/// Decodes `%XX` escapes (UTF-8 with replacement); a malformed escape stays as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemini_generation_paths_and_the_rest() {
        let cases: &[(&str, Option<Method>)] = &[
            (
                "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                Some(Method::Stream),
            ),
            (
                "/v1beta/models/gemini-2.5-pro:generateContent",
                Some(Method::Generate),
            ),
            (
                "/v1beta/models/gemini-2.5-pro:countTokens",
                Some(Method::Other),
            ),
            (
                "/v1beta/models/text-embedding-004:embedContent",
                Some(Method::Other),
            ),
            ("/v1beta/models", Some(Method::Other)),
            ("/v1beta/models/gemini-2.5-pro", Some(Method::Other)),
            ("/v1beta/tunedModels/x:generateContent", Some(Method::Other)),
            ("/v1internal:generateContent", Some(Method::Generate)),
            ("/v1internal:streamGenerateContent", Some(Method::Stream)),
            ("/v1internal:countTokens", Some(Method::Other)),
            ("/v1internal:loadCodeAssist", Some(Method::Other)),
            ("/v1internal/x:generateContent", Some(Method::Other)),
            ("/v1/messages", None),
            ("/v1betax:generateContent", None),
        ];
        for (path, want) in cases {
            assert_eq!(method(path), *want, "{path}");
        }
        assert!(is_gemini_path("/v1internal:generateContent"));
        assert!(!is_gemini_path("/v1beta"));
        assert!(is_stream("/v1internal:streamGenerateContent"));
        assert!(!is_generation("/v1beta/models/m:countTokens"));
    }

    #[test]
    fn only_a_2xx_json_answer_to_a_stream_call_is_a_streamed_json_array() {
        use crate::exchange::relay::BodyKind;
        let kind = BodyKind::for_response;
        let stream = "/v1beta/models/gemini-2.5-pro:streamGenerateContent";
        let json = Some("application/json; charset=UTF-8");
        assert_eq!(kind(stream, 200, json), BodyKind::JsonArray);
        assert_eq!(
            kind("/v1internal:streamGenerateContent", 200, json),
            BodyKind::JsonArray
        );
        assert_eq!(
            kind(stream, 429, json),
            BodyKind::Plain,
            "errors keep a snippet"
        );
        assert_eq!(kind(stream, 200, Some("text/event-stream")), BodyKind::Sse);
        assert_eq!(kind(stream, 200, Some("text/plain")), BodyKind::Plain);
        assert_eq!(
            kind("/v1beta/models/gemini-2.5-pro:generateContent", 200, json),
            BodyKind::Plain
        );
        assert_eq!(kind("/v1/messages", 200, json), BodyKind::Plain);
        assert!(BodyKind::JsonArray.is_stream() && !BodyKind::Plain.is_stream());
    }

    #[test]
    fn path_model_is_decoded_and_loses_a_models_prefix() {
        let m = |p: &str| path_model(p);
        assert_eq!(
            m("/v1beta/models/gemini-2.5-flash:streamGenerateContent").as_deref(),
            Some("gemini-2.5-flash")
        );
        assert_eq!(
            m("/v1beta/models/models%2Fgemini-2.5-pro:generateContent").as_deref(),
            Some("gemini-2.5-pro")
        );
        assert_eq!(
            m("/v1beta/models/gemini%2D2.5%zz:generateContent").as_deref(),
            Some("gemini-2.5%zz")
        );
        assert_eq!(m("/v1beta/models/:generateContent"), None);
        assert_eq!(m("/v1internal:generateContent"), None);
    }
}

#[cfg(test)]
mod identify_tests {
    use http::HeaderMap;

    use crate::identify::detect_tool;

    fn tool(ua: &str) -> &'static str {
        let mut h = HeaderMap::new();
        h.insert(http::header::USER_AGENT, ua.parse().unwrap());
        detect_tool(&h).tool
    }

    #[test]
    fn every_gemini_cli_user_agent_is_gemini_cli() {
        for ua in [
            "GeminiCLI/0.61.0/gemini-2.5-flash (linux; x64)",
            "GeminiCLI-tui/0.61.0/gemini-2.5-flash (linux; x64)",
            "GeminiCLI-cli-command/0.61.0 (darwin; arm64)",
            "GeminiCLI-acp-zed/0.61.0",
            "geminicli/1",
        ] {
            assert_eq!(tool(ua), "gemini-cli", "{ua}");
        }
        // The rule is a prefix, not a substring.
        assert_eq!(tool("curl/8 GeminiCLI/1"), "unknown");
    }
}
