//! Fuzz bodies of the `identify` module's targets.

use std::collections::BTreeMap;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::auth::{CredentialHeader, extract_credential};
use crate::gate::{admin_gate, apply_security_headers, check_cross_origin, is_secure_request};
use crate::head::{Reply, RequestHead};
use crate::identify::{Identity, Inspection, identify, inspect};
use crate::limiter::{RateDecision, RateLimiter};
use crate::route::{Route, is_llm_call, route};
use crate::secret::Secret;
use crate::time::Instant;

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PURGE",
];
const PATHS: &[&str] = &[
    "/v1/messages",
    "/v1/chat/completions",
    "/v1/responses",
    "/api/chat",
    "/api/generate",
    "/v1/models",
    "/v1/images/generations",
    "/v1/embeddings",
    "/admin/breakers",
    "/metrics",
    "/health",
    "/ready",
    "/v1",
    "/",
    "/v1/messages/count_tokens",
];
const NAMES: &[&str] = &[
    "user-agent",
    "x-agent-name",
    "originator",
    "x-provider",
    "x-msg-id",
    "x-message-id",
    "x-request-id",
    "x-forwarded-for",
    "cf-connecting-ip",
    "x-opencode-session",
    "x-initiator",
    "x-openclaw-session-id",
    "x-activity-request-id",
    "authorization",
    "x-api-key",
    "host",
    "origin",
    "x-admin-token",
    "content-type",
    "x-forwarded-proto",
    "forwarded",
    "cf-visitor",
    "x-claude-code-session-id",
    "session-id",
    "x-session-id",
];
const PEERS: &[&str] = &[
    "127.0.0.1",
    "::1",
    "::ffff:127.0.0.1",
    "10.0.0.1",
    "192.168.1.2",
    "::ffff:10.0.0.1",
];

/// Fuzz body of `identify_route`: byte 0 picks the method, byte 1 holds flags, byte 2 the
/// peer; then newline-separated lines: the path first (a line not starting with `/` picks a
/// known path and appends itself), then headers (first byte picks the name), a line starting
/// with `{` is the body, a line starting with `=` is a `CLIENT_NAME_MAPPING` entry. Routing,
/// gate, inspection, identification and rate limiting run twice and must agree (no panic,
/// deterministic), and a few invariants hold.
pub fn identify_route(data: &[u8]) {
    let Some(input) = Input::decode(data) else {
        return;
    };
    let first = run(&input);
    let second = run(&input);
    assert_eq!(first, second, "identify_route is not deterministic");
    assert!(first.identity.client_id.starts_with(first.identity.tool));
    if !crate::route::is_loopback_peer(input.peer) && first.gate.is_some() {
        let reply = first
            .gate
            .as_ref()
            .map(|r| r.body.clone())
            .unwrap_or_default();
        assert!(
            reply.windows(10).any(|w| w == b"LOCAL_ONLY"),
            "non-loopback peer passed"
        );
    }
}

struct Input {
    head: RequestHead,
    body: Vec<u8>,
    peer: IpAddr,
    flags: u8,
    mapping: BTreeMap<String, String>,
}

impl Input {
    fn decode(data: &[u8]) -> Option<Input> {
        let (&[m, flags, p], rest) = data.split_first_chunk::<3>()?;
        let method = Method::from_bytes(METHODS[usize::from(m) % METHODS.len()].as_bytes()).ok()?;
        let peer: IpAddr = PEERS[usize::from(p) % PEERS.len()].parse().ok()?;
        let mut lines = rest.split(|b| *b == b'\n');
        let path_line = String::from_utf8_lossy(lines.next().unwrap_or(b""));
        let target = match path_line.strip_prefix('/') {
            Some(_) => path_line.into_owned(),
            None => {
                let pick = path_line.bytes().next().map_or(0, usize::from) % PATHS.len();
                format!(
                    "{}{}",
                    PATHS[pick],
                    path_line.chars().skip(1).collect::<String>()
                )
            }
        };
        let mut headers = HeaderMap::new();
        let mut body = Vec::new();
        let mut mapping = BTreeMap::new();
        for line in lines {
            match line.split_first() {
                Some((b'{', _)) => body = line.to_vec(),
                Some((b'=', entry)) => {
                    let entry = String::from_utf8_lossy(entry);
                    if let Some((k, v)) = entry.split_once('=') {
                        mapping.insert(k.to_owned(), v.to_owned());
                    }
                }
                Some((&n, value)) => {
                    let name = HeaderName::from_static(NAMES[usize::from(n) % NAMES.len()]);
                    if let Ok(value) = HeaderValue::from_bytes(value) {
                        headers.append(name, value);
                    }
                }
                None => {}
            }
        }
        Some(Input {
            head: RequestHead::new(method, &target, headers),
            body,
            peer,
            flags,
            mapping,
        })
    }
}

#[derive(Debug, PartialEq)]
struct Output {
    route: Route,
    llm: bool,
    gate: Option<Reply>,
    cross_origin: Option<Reply>,
    secure: bool,
    response_headers: HeaderMap,
    credential: Option<(String, CredentialHeader)>,
    inspection: Inspection,
    identity: Identity,
    limits: Vec<RateDecision>,
}

fn run(input: &Input) -> Output {
    let flag = |bit: u8| input.flags & (1 << bit) != 0;
    let head = &input.head;
    let admin_key = if flag(0) {
        Secret::new("admin-secret")
    } else {
        Secret::default()
    };
    let inspection = inspect(head, &input.body, input.peer, flag(1));
    let identity = identify(&head.headers, &input.mapping);
    let mut limiter = RateLimiter::new(u32::from(input.flags >> 5));
    let limits = (0..3)
        .map(|i| {
            limiter.check(
                identity.tool,
                &identity.client_id,
                Instant::from_millis(i * 10_000),
            )
        })
        .collect();
    let mut response_headers = HeaderMap::new();
    let secure = is_secure_request(&head.headers, flag(2), flag(1));
    apply_security_headers(&mut response_headers, secure);
    Output {
        route: route(&head.method, &head.path),
        llm: is_llm_call(&head.method, &head.path, inspection.model.as_deref()),
        gate: admin_gate(head, input.peer, flag(3), 3100, &admin_key).err(),
        cross_origin: check_cross_origin(&head.headers, flag(4)).err(),
        secure,
        response_headers,
        credential: extract_credential(&head.headers).map(|c| (c.token.to_owned(), c.header)),
        inspection,
        identity,
        limits,
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "the test replays committed fixture files; reading them is the test's IO, not the core's"
)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Vec<u8> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/corpus/identify_route/"
        );
        std::fs::read(format!("{dir}{name}")).unwrap()
    }

    #[test]
    fn corpus_replays_and_decodes_as_intended() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/identify_route");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|f| f != ".keep") {
                identify_route(&std::fs::read(&path).unwrap());
                n += 1;
            }
        }
        assert!(n >= 5);

        let out = run(&Input::decode(&corpus("claude_code_mapped")).unwrap());
        assert_eq!(out.identity.client_id, "claude-code-alice");
        assert_eq!(out.route, Route::Proxy);
        assert!(out.llm && out.inspection.stream);

        let out = run(&Input::decode(&corpus("admin_gate_remote")).unwrap());
        assert_eq!(out.route, Route::Admin);
        assert!(
            out.gate
                .is_some_and(|r| r.body.windows(10).any(|w| w == b"LOCAL_ONLY"))
        );

        let out = run(&Input::decode(&corpus("trusted_forwarded")).unwrap());
        assert!(out.secure);
        assert_eq!(
            out.inspection.source_ip,
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(11);
        for len in 0..400 {
            let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            identify_route(&data);
        }
    }
}
