//! The mock answers real HTTP/1.1 on a socket: JSON with a length, SSE chunked, keep-alive.

// A test file: a failed unwrap is a failed test, with the value in the message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use agent_cli_proxy_bench::{MESSAGE_JSON, SSE_EVENTS, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener));
    addr
}

/// Reads one response: the head, then a content-length body or a chunked body.
async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "eof inside the head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut rest = buf[head_end..].to_vec();
    let lower = head.to_ascii_lowercase();
    let mut fill = async |rest: &mut Vec<u8>, want: usize| {
        while rest.len() < want {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "eof inside the body");
            rest.extend_from_slice(&chunk[..n]);
        }
    };
    if let Some(line) = lower.lines().find(|l| l.starts_with("content-length:")) {
        let len: usize = line["content-length:".len()..].trim().parse().unwrap();
        fill(&mut rest, len).await;
        assert_eq!(rest.len(), len, "bytes beyond the body");
        return (head, rest);
    }
    assert!(lower.contains("transfer-encoding: chunked"), "{head}");
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let line_end = loop {
            if let Some(p) = rest[pos..].windows(2).position(|w| w == b"\r\n") {
                break pos + p;
            }
            let want = rest.len() + 1;
            fill(&mut rest, want).await;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[pos..line_end]).unwrap(), 16).unwrap();
        let data_start = line_end + 2;
        fill(&mut rest, data_start + size + 2).await;
        body.extend_from_slice(&rest[data_start..data_start + size]);
        pos = data_start + size + 2;
        if size == 0 {
            return (head, body);
        }
    }
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn json_sse_and_health_on_one_kept_alive_connection() {
    let addr = start().await;
    let mut stream = TcpStream::connect(addr).await.unwrap();

    stream
        .write_all(post("/v1/messages", r#"{"model":"claude-sonnet-4-5"}"#).as_bytes())
        .await
        .unwrap();
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    assert_eq!(body, MESSAGE_JSON.as_bytes());

    stream
        .write_all(
            post(
                "/v1/messages",
                r#"{"model":"claude-sonnet-4-5","stream":true}"#,
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream")
    );
    assert_eq!(body, SSE_EVENTS.concat().as_bytes());

    stream
        .write_all(post("/v1/messages?sse", "{}").as_bytes())
        .await
        .unwrap();
    let (_, body) = read_response(&mut stream).await;
    assert_eq!(body, SSE_EVENTS.concat().as_bytes());

    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"ok\n");

    stream
        .write_all(b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}
