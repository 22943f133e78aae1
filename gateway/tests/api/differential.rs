//! The differential test: a table of raw requests and raw upstream responses goes through
//! both paths (the direct path, and hyper's with the direct path turned off), and each case
//! must reach the upstream as the same request and reach the client as the same answer.
//!
//! What it compares is normalised, so it holds the paths to the same meaning, not the same
//! bytes:
//! - the request as the upstream read it: its request line, its header fields as a sorted set
//!   (names lower-cased, values trimmed, since each path writes them in its own order and
//!   case; the gateway's span id in `traceparent` as `(span)` and a trace id it made up as
//!   `(generated)`, since each run draws its own) and its body bytes (the heads test counts a
//!   request id the gateway made up as `(generated)`);
//! - the answer as the client read it: the status, the framing (`Content-Length` or the
//!   `Transfer-Encoding` value), and the body's content (decoded from its chunks), or, for an
//!   error, its JSON code alone (each path's message differs).
//!
//! The direct path hands some requests to hyper before answering them (an absolute-form
//! target, a chunked body, `Connection` naming `Content-Length`, no `Host`, two `Host`s,
//! `CONNECT`, `Content-Length`s that cannot frame the body): for those cases, each marked
//! "hyper with hyper" below, both runs are served by hyper, so they show that the direct path
//! hands them over unchanged, not that it answers them as hyper would. Nothing the client or
//! the upstream sees tells which path served a request, so the test does not assert it.

use crate::{
    framing::{decode_chunked, on_path, split},
    helpers::{TestGateway, config, exchange_raw, route, spawn, spawn_logging_to},
    scripted::ScriptedUpstream,
};

/// The trace id of the `traceparent`s the tests send.
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The parent id of the `traceparent`s the tests send: the client's span.
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// A `traceparent` value with the gateway's span id as `(span)` and a trace id other than
/// [`CLIENT_TRACE`] as `(generated)`, after checking both are 32 and 16 lower-case hex digits.
fn normalized_traceparent(value: &str) -> String {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "a version-00 traceparent: {value}");
    let hex = |part: &str, digits: usize| {
        part.len() == digits
            && part
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    };
    assert!(hex(parts[1], 32) && hex(parts[2], 16), "{value}");
    assert_ne!(
        parts[2], CLIENT_SPAN,
        "the gateway's own span is the parent: {value}"
    );
    let trace = if parts[1] == CLIENT_TRACE {
        CLIENT_TRACE
    } else {
        "(generated)"
    };
    format!("{}-{trace}-(span)-{}", parts[0], parts[3])
}

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
            let name = name.to_lowercase();
            let value = value.trim();
            if name == "traceparent" {
                return format!("{name}: {}", normalized_traceparent(value));
            }
            format!("{name}: {value}")
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
    // hyper with hyper: the direct path hands this one over.
    ("a Content-Length list", b"POST /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nContent-Length: 3, 3\r\nConnection: close\r\n\r\nabc", OK, 400),
    // hyper with hyper: the direct path hands this one over.
    ("no Host", b"GET /a HTTP/1.1\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", OK, 400),
    // hyper with hyper: the direct path hands this one over.
    ("two Hosts", b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", OK, 400),
    // hyper with hyper: the direct path hands this one over.
    ("CONNECT", b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", OK, 405),
    // hyper with hyper: the direct path hands this one over.
    ("an absolute-form target", b"GET http://real.example/a HTTP/1.1\r\nHost: fake\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", OK, 200),
    // hyper with hyper: the direct path hands this one over.
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

/// A one-thread gateway on `path` with two routes to `upstream`: `/` as it is, and `/api`
/// rewritten to `/v2` with its own `Host`.
fn rewriting_gateway(path: &str, upstream: &str) -> TestGateway {
    let mut api = route("/api", &[upstream]);
    api.rewrite = Some("/v2".to_owned());
    api.host = Some("internal.svc".to_owned());
    let mut config = config(vec![route("/", &[upstream]), api]);
    config.server.threads = 1;
    config.server.direct_path = path == "direct";
    spawn(config)
}

/// The request as the upstream read it, with a request id the gateway made up (each path
/// makes its own) written as `(generated)`.
fn upstream_head(bytes: &[u8]) -> (String, Vec<String>, Vec<u8>) {
    let (line, mut fields, body) = normalized_request(bytes);
    for field in &mut fields {
        if let Some(id) = field.strip_prefix("x-request-id: ")
            && id != "diff"
        {
            assert_eq!(id.len(), 36, "a UUID: {id}");
            *field = "x-request-id: (generated)".to_owned();
        }
    }
    (line, fields, body)
}

/// (what the case is, the client's request): every one reaches the upstream.
const REQUESTS: &[(&str, &[u8])] = &[
    ("a rewritten target with its query and the route's Host", b"GET /api/items?a=1&b=%20 HTTP/1.1\r\nHost: h.example\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n"),
    ("the route's prefix alone", b"GET /api HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n"),
    ("forwarding fields the client wrote, in any case, repeated", b"GET /api/x HTTP/1.1\r\nHost: h\r\nx-request-id: diff\r\nX-FORWARDED-FOR: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nx-forwarded-host: evil\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"),
    ("an unacceptable request id", b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: has spaces in it\r\nConnection: close\r\n\r\n"),
    ("no request id", b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
    ("Connection naming the gateway's own fields", b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nConnection: close, x-request-id, X-Forwarded-For, X-Other\r\nX-Other: 1\r\nX-Kept: 2\r\n\r\n"),
    // hyper with hyper: the direct path hands this one over.
    ("Connection naming the body's length", b"POST /api/x HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nContent-Length: 3\r\nConnection: close, Content-Length\r\n\r\nabc"),
    ("every hop-by-hop field", b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nConnection: close\r\nKeep-Alive: 5\r\nTE: gzip\r\nTrailer: X\r\nProxy-Authorization: x\r\nProxy-Connection: keep-alive\r\n\r\n"),
    ("TE: trailers passes", b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nTE: trailers\r\nConnection: close\r\n\r\n"),
    ("repeated and empty end-to-end fields", b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nAccept: a\r\naccept: b\r\nX-Empty:\r\nCookie: c=1\r\nConnection: close\r\n\r\n"),
    ("a body with repeated lengths through a rewrite", b"PUT /api/x HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
    // hyper with hyper: the direct path hands this one over.
    ("an absolute-form target's authority as the host", b"GET http://real.example/api/x?q=1 HTTP/1.1\r\nHost: fake\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n"),
    // hyper with hyper: the direct path hands this one over.
    ("a chunked body", b"POST /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("a trusted-looking peer's X-Forwarded-For", b"DELETE /api/x HTTP/1.1\r\nHost: h:8080\r\nX-Request-Id: diff\r\nX-Forwarded-For: 10.0.0.1, 1.2.3.4\r\nConnection: close\r\n\r\n"),
];

#[tokio::test]
async fn both_paths_send_identical_upstream_heads() {
    for (what, request) in REQUESTS {
        let mut seen = Vec::new();
        for path in ["direct", "hyper"] {
            let upstream = ScriptedUpstream::always(OK).await;
            let gateway = rewriting_gateway(path, &upstream.url);
            let text = exchange_raw(&gateway.authority, request).await;
            gateway.server.stop().await;
            assert_eq!(split(&text).0, 200, "{what}, {path}: {text:?}");
            let received = upstream.received();
            assert_eq!(received.len(), 1, "{what}, {path}");
            seen.push(upstream_head(&received[0]));
        }
        assert_eq!(
            seen[0], seen[1],
            "{what}: the upstream read different heads (direct, hyper)"
        );
        let (line, fields, _) = &seen[0];
        let count = |name: &str| {
            fields
                .iter()
                .filter(|field| field.starts_with(&format!("{name}:")))
                .count()
        };
        for once in [
            "host",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-request-id",
            "traceparent",
        ] {
            assert_eq!(count(once), 1, "{what}: {once} once: {fields:?}");
        }
        assert!(
            fields.contains(&"x-forwarded-for: 127.0.0.1".to_owned()),
            "{what}: the peer's address alone: {fields:?}"
        );
        if line.contains(" /v2") {
            assert!(
                fields.contains(&"host: internal.svc".to_owned()),
                "{what}: {fields:?}"
            );
        }
    }
}

/// (what the case is, the client's request, the status expected, the `Host` the upstream reads
/// when it is forwarded): requests with `Host` problems, which both paths answer by one rule
/// (`gateway::host::request_host`).
const HOST_CASES: &[(&str, &[u8], u16, Option<&str>)] = &[
    ("one Host", b"GET /a HTTP/1.1\r\nHost: h.example:8080\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 200, Some("h.example:8080")),
    ("an IPv6 literal", b"GET /a HTTP/1.1\r\nHost: [::1]:8080\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 200, Some("[::1]:8080")),
    ("a percent-encoded name", b"GET /a HTTP/1.1\r\nHost: caf%C3%A9.example\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 200, Some("caf%C3%A9.example")),
    ("no Host", b"GET /a HTTP/1.1\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("an empty Host", b"GET /a HTTP/1.1\r\nHost:\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("two Hosts", b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("the same Host twice", b"GET /a HTTP/1.1\r\nHost: a\r\nhost: a\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("a Host and an empty one", b"GET /a HTTP/1.1\r\nHost: a\r\nHost:\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("a Host with a space", b"GET /a HTTP/1.1\r\nHost: a b\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("a Host list", b"GET /a HTTP/1.1\r\nHost: a, b\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("a Host with a path", b"GET /a HTTP/1.1\r\nHost: a/b\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("a Host with user info", b"GET /a HTTP/1.1\r\nHost: user@a\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("a Host with a port that is no number", b"GET /a HTTP/1.1\r\nHost: a:80x\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("a Host without a name", b"GET /a HTTP/1.1\r\nHost: :80\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("an unclosed IPv6 literal", b"GET /a HTTP/1.1\r\nHost: [::1\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("an absolute-form authority over the Host", b"GET http://real.example/a HTTP/1.1\r\nHost: fake\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 200, Some("real.example")),
    ("an absolute-form authority and no Host", b"GET http://real.example:81/a HTTP/1.1\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 200, Some("real.example:81")),
    ("an absolute-form authority and two Hosts", b"GET http://real.example/a HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("an absolute-form authority and an invalid Host", b"GET http://real.example/a HTTP/1.1\r\nHost: a b\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    ("an absolute-form authority with user info", b"GET http://user@real.example/a HTTP/1.1\r\nHost: real.example\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", 400, None),
    // The gateway's own paths and preflights are held to the same rule as forwarded requests.
    ("a health probe without a Host", b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", 400, None),
    ("a readiness probe without a Host", b"GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n", 400, None),
    ("the metrics without a Host", b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n", 400, None),
    ("the root page without a Host", b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", 400, None),
    ("the API docs without a Host", b"GET /api/docs HTTP/1.1\r\nConnection: close\r\n\r\n", 400, None),
    ("the operations page without a Host", b"GET /ops HTTP/1.1\r\nConnection: close\r\n\r\n", 400, None),
    ("a health probe with an empty Host", b"GET /healthz HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n", 400, None),
    ("a health probe with an invalid Host", b"GET /healthz HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n", 400, None),
    ("a CORS preflight without a Host", b"OPTIONS /a HTTP/1.1\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n", 400, None),
    ("the gateway's own probe (`--healthcheck`), HTTP/1.0 with a Host", b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n", 200, None),
    ("an HTTP/1.0 health probe without a Host", b"GET /healthz HTTP/1.0\r\n\r\n", 400, None),
    ("an HTTP/1.0 request without a Host", b"GET /a HTTP/1.0\r\nX-Request-Id: diff\r\n\r\n", 400, None),
    ("a health probe with two Hosts", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", 400, None),
];

#[tokio::test]
async fn both_paths_apply_one_host_rule() {
    for (what, request, expected, upstream_host) in HOST_CASES {
        let mut seen = Vec::new();
        for path in ["direct", "hyper"] {
            let upstream = ScriptedUpstream::always(OK).await;
            let gateway = on_path(path, &upstream.url);
            let text = exchange_raw(&gateway.authority, request).await;
            gateway.server.stop().await;
            let client_saw = client_view(&text);
            assert_eq!(client_saw.0, *expected, "{what}, {path}: {text:?}");
            let received = upstream.received();
            match upstream_host {
                Some(host) => {
                    assert_eq!(received.len(), 1, "{what}, {path}");
                    let (_, fields, _) = normalized_request(&received[0]);
                    let hosts: Vec<_> = fields
                        .iter()
                        .filter(|field| field.starts_with("host:"))
                        .collect();
                    assert_eq!(hosts, [&format!("host: {host}")], "{what}, {path}");
                }
                None => assert!(received.is_empty(), "{what}, {path}: {received:?}"),
            }
            if *expected == 400 {
                assert_eq!(client_saw.2, "\"bad_request\"", "{what}, {path}: {text:?}");
            }
            let upstream_saw: Vec<_> = received
                .iter()
                .map(|bytes| normalized_request(bytes))
                .collect();
            seen.push((upstream_saw, client_saw));
        }
        assert_eq!(seen[0], seen[1], "{what}: the paths differ (direct, hyper)");
    }
}

/// The container's `--healthcheck` probe (`runtime::probe`) sends a `Host`, so the one rule
/// above lets it through on either path.
#[tokio::test]
async fn the_healthcheck_probe_passes_the_host_rule() {
    for path in ["direct", "hyper"] {
        let upstream = ScriptedUpstream::always(OK).await;
        let gateway = on_path(path, &upstream.url);
        let port = gateway
            .authority
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .expect("a port");
        let code = tokio::task::spawn_blocking(move || runtime::probe(port))
            .await
            .expect("the probe ran");
        assert_eq!(code, std::process::ExitCode::SUCCESS, "{path}");
        gateway.server.stop().await;
    }
}

/// (what the case is, the trace fields of the client's request, the `traceparent` and the
/// `tracestate` the upstream reads, normalised as [`normalized_traceparent`] writes them).
const TRACE_CASES: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "a valid traceparent and tracestate",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\ntracestate: congo=t61rcWkgMzE\r\n",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-(span)-01",
        Some("congo=t61rcWkgMzE"),
    ),
    (
        "an unsampled trace, tracestate in two fields",
        "TraceParent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\r\ntracestate: a=1\r\nTracestate: b=2\r\n",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-(span)-00",
        Some("a=1,b=2"),
    ),
    (
        "a later version",
        "traceparent: 01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more\r\n",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-(span)-01",
        None,
    ),
    (
        "upper-case hex: a new trace, the tracestate dropped",
        "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01\r\ntracestate: congo=t61rcWkgMzE\r\n",
        "00-(generated)-(span)-01",
        None,
    ),
    (
        "an all-zero trace id",
        "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n",
        "00-(generated)-(span)-01",
        None,
    ),
    (
        "a short parent id",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902-01\r\n",
        "00-(generated)-(span)-01",
        None,
    ),
    (
        "two traceparents",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n",
        "00-(generated)-(span)-01",
        None,
    ),
    (
        "no traceparent, a tracestate",
        "tracestate: congo=t61rcWkgMzE\r\n",
        "00-(generated)-(span)-01",
        None,
    ),
    ("no trace fields", "", "00-(generated)-(span)-01", None),
];

#[tokio::test]
async fn both_paths_forward_one_trace_context_with_the_gateways_span() {
    for (what, fields, traceparent, tracestate) in TRACE_CASES {
        for target in ["/a", "/api/x"] {
            let request = format!(
                "GET {target} HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\n{fields}Connection: close\r\n\r\n"
            );
            let mut seen = Vec::new();
            for path in ["direct", "hyper"] {
                let upstream = ScriptedUpstream::always(OK).await;
                let (logger, logs) = testing::capturing_logger("gateway");
                let mut api = route("/api", &[&upstream.url]);
                api.rewrite = Some("/v2".to_owned());
                let mut config = config(vec![route("/", &[&upstream.url]), api]);
                config.server.threads = 1;
                config.server.direct_path = path == "direct";
                let gateway = spawn_logging_to(config, logger);
                let text = exchange_raw(&gateway.authority, request.as_bytes()).await;
                assert_eq!(split(&text).0, 200, "{what}, {path}: {text:?}");
                let received = upstream.received();
                assert_eq!(received.len(), 1, "{what}, {path}");
                let (_, fields, _) = normalized_request(&received[0]);
                let values = |name: &str| -> Vec<String> {
                    fields
                        .iter()
                        .filter_map(|field| field.strip_prefix(&format!("{name}: ")))
                        .map(str::to_owned)
                        .collect()
                };
                assert_eq!(values("traceparent"), [*traceparent], "{what}, {path}");
                assert_eq!(
                    values("tracestate"),
                    tracestate
                        .iter()
                        .map(|state| state.to_string())
                        .collect::<Vec<_>>(),
                    "{what}, {path}"
                );
                // The access line names the trace and the span the upstream was given as parent.
                let sent = String::from_utf8_lossy(&received[0]).into_owned();
                let sent = sent
                    .lines()
                    .find_map(|line| line.strip_prefix("traceparent: "))
                    .expect("a traceparent")
                    .to_owned();
                let ids: Vec<&str> = sent.split('-').collect();
                let logs = logs.clone();
                testing::eventually("the access line", std::time::Duration::from_secs(5), || {
                    let logs = logs.clone();
                    let (trace_id, span_id) = (ids[1].to_owned(), ids[2].to_owned());
                    async move {
                        let text =
                            String::from_utf8(logs.lock().expect("logs").clone()).expect("utf-8");
                        text.lines()
                            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                            .any(|line| {
                                line["msg"] == "request"
                                    && line["trace_id"] == trace_id.as_str()
                                    && line["span_id"] == span_id.as_str()
                            })
                    }
                })
                .await;
                gateway.server.stop().await;
                seen.push(fields);
            }
            assert_eq!(seen[0], seen[1], "{what}: the paths differ (direct, hyper)");
        }
    }
}
