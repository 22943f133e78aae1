//! The differential test: a table of raw requests and raw upstream responses goes through
//! both paths (the direct path, and hyper's with the direct path turned off), and each case
//! must reach the upstream as the same request and reach the client as the same answer.
//!
//! "The same request" is compared as the upstream read it: request line, header fields (names
//! lower-cased, in sorted order, since each path writes them in its own order and case) and
//! body bytes. "The same answer" is the status, the framing (`Content-Length` or the
//! `Transfer-Encoding` value), and the body's content (decoded from its chunks), or, for an
//! error, its JSON code.

use crate::{
    framing::{decode_chunked, on_path, split},
    helpers::exchange_raw,
    scripted::ScriptedUpstream,
};

/// The request as the upstream read it, in a form both paths can be held to.
fn normalized_request(bytes: &[u8]) -> (String, Vec<String>, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map_or(bytes.len(), |at| at + 4);
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = head.lines().filter(|line| !line.is_empty());
    let request_line = lines.next().unwrap_or("").to_owned();
    let mut fields: Vec<String> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            format!("{}: {}", name.to_lowercase(), value.trim())
        })
        .collect();
    fields.sort();
    (request_line, fields, bytes[end..].to_vec())
}

/// What the client saw: status, framing, and body content (or error code).
fn client_view(text: &str) -> (u16, String, String) {
    let (status, head, body) = split(text);
    let field = |name: &str| {
        head.lines().find_map(|line| {
            let (field, value) = line.split_once(':')?;
            (field == name).then(|| value.trim().to_owned())
        })
    };
    let (framing, content) = match (field("transfer-encoding"), field("content-length")) {
        (Some(codings), _) => (
            format!("transfer-encoding: {codings}"),
            decode_chunked(&body),
        ),
        (None, Some(length)) => (format!("content-length: {length}"), body),
        (None, None) => ("none".to_owned(), body),
    };
    if status >= 400 {
        // The gateway's own error: its message (and so its length) says which path made it.
        let code = serde_json::from_str::<serde_json::Value>(&content)
            .map(|error| error["error"]["code"].to_string())
            .unwrap_or(content);
        let framing = framing.split(':').next().unwrap_or("").to_owned();
        return (status, framing, code);
    }
    (status, framing, content)
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Up: 1\r\n\r\nok";
const GET: &[u8] =
    b"GET /a?b=c HTTP/1.1\r\nHost: h.example\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n";

/// (what the case is, the client's request, the upstream's response, the status expected).
const CASES: &[(&str, &[u8], &[u8], u16)] = &[
    ("a plain exchange", GET, OK, 200),
    ("a HEAD", b"HEAD /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200),
    ("a 204", GET, b"HTTP/1.1 204 No Content\r\n\r\n", 204),
    ("a 304 with its length", GET, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", 304),
    ("a chunked response with an extension and a trailer", GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=\"y\"\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n", 200),
    ("a response until close", GET, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", 200),
    ("an HTTP/1.0 response until close", GET, b"HTTP/1.0 200 OK\r\n\r\nold", 200),
    ("Content-Length beside chunked", GET, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200),
    ("gzip below chunked", GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200),
    ("gzip until close", GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", 200),
    ("a hop-by-hop field the response names", GET, b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nContent-Length: 2\r\n\r\nok", 200),
    ("a POST with a body", b"POST /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc", OK, 200),
    ("a repeated Content-Length", b"POST /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nContent-Length: 3\r\ncontent-length: 3\r\nConnection: close\r\n\r\nabc", OK, 200),
    ("forwarding fields the client wrote", b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n", OK, 200),
    ("hop-by-hop fields the request names", b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Authorization: x\r\n\r\n", OK, 200),
    ("an unasked 103", GET, b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 502),
    ("an unasked 101", GET, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", 502),
    ("a malformed chunk", GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 502),
    ("differing lengths", GET, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", 502),
    ("a status below 100", GET, b"HTTP/1.1 099 Odd\r\n\r\n", 502),
    ("not HTTP", GET, b"SSH-2.0-OpenSSH\r\n\r\n", 502),
    ("no Host", b"GET /a HTTP/1.1\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", OK, 400),
    ("two Hosts", b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", OK, 400),
    ("CONNECT", b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", OK, 405),
    ("an absolute-form target", b"GET http://real.example/a HTTP/1.1\r\nHost: fake\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", OK, 200),
    ("a malformed chunked request body", b"POST /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nzz\r\n\r\n", OK, 400),
];

#[tokio::test]
async fn both_paths_send_the_same_request_and_give_the_same_answer() {
    for (what, request, reply, expected) in CASES {
        let mut seen = Vec::new();
        for path in ["direct", "hyper"] {
            let upstream = ScriptedUpstream::always(reply).await;
            let gateway = on_path(path, &upstream.url);
            let text = exchange_raw(&gateway.authority, request).await;
            gateway.server.stop().await;
            let upstream_saw: Vec<_> = upstream
                .received()
                .iter()
                .map(|bytes| normalized_request(bytes))
                .collect();
            let client_saw = client_view(&text);
            assert_eq!(client_saw.0, *expected, "{what}, {path}: {text:?}");
            seen.push((path, upstream_saw, client_saw));
        }
        let (direct, hyper) = (&seen[0], &seen[1]);
        assert_eq!(
            direct.1, hyper.1,
            "{what}: the upstream read different requests"
        );
        assert_eq!(
            direct.2, hyper.2,
            "{what}: the clients saw different answers"
        );
    }
}
