//! The differential test: a table of raw requests and raw upstream responses goes through
//! both paths (the direct path, and hyper's with the direct path turned off), and each case
//! must reach the upstream as the same bytes and reach the client with the same status and
//! framing.
//!
//! What the upstream read is compared byte for byte: the request line, every field in the
//! order written with its value as written, the body. Four things are normalised, and only
//! they:
//! - header names are compared case-folded. Hyper's client writes every name lower-case; the
//!   direct path writes a client's field under the client's spelling (and its own fields
//!   lower-case). Hyper can write a client's spelling too (`preserve_header_case` on its server
//!   and client builders), but only from a private extension of the request it parsed, keyed by
//!   name: the gateway builds each upstream head anew, and where it replaces a field the client
//!   also sent (`Host`, `X-Forwarded-For`, `X-Request-Id`) hyper would write the client's
//!   spelling for the gateway's value, so the bytes would still differ, at the cost of a case
//!   map recorded for every request;
//! - a name's field lines are moved up behind its first one ([`grouped`]): hyper's client
//!   writes from a header map, which keeps the order among one name's lines (the order with a
//!   meaning, RFC 9110 §5.3) but not other names between them, which the direct path keeps;
//! - in `traceparent`, the gateway's span id as `(span)` and a trace id it made up as
//!   `(generated)`: each run draws its own;
//! - a request id the gateway made up as `(generated)` (the heads test), for the same reason.
//!
//! What the client read is compared as [`ClientView`] says: the status line, the framing
//! fields' values, the other fields as a set, whether the body ended, and its content.
//!
//! The direct path hands some requests to hyper before answering them (an absolute-form
//! target, a chunked body, `Connection` naming `Content-Length`, no `Host`, two `Host`s,
//! `CONNECT`, `Content-Length`s that cannot frame the body): for those cases, marked
//! [`Hyper`] below, both runs are served by hyper, so they show that the direct path hands
//! them over unchanged, not that it answers them as hyper would. The others are marked
//! [`Direct`]; wherever a request reaches the upstream, the test checks the mark (see
//! [`served_by`]).

use crate::{
    framing::{on_path, split},
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

/// The request as the upstream read it: its request line, its field lines in the order
/// written, each as written but for its name, case-folded (and the `traceparent` ids as
/// [`normalized_traceparent`] writes them), lines of one name moved up behind the first of
/// them (see [`grouped`]), and its body bytes.
fn normalized_request(bytes: &[u8]) -> (String, Vec<String>, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map_or(bytes.len(), |at| at + 4);
    let head = String::from_utf8_lossy(&bytes[..end]);
    let head = head.strip_suffix("\r\n\r\n").unwrap_or(&head);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_owned();
    let fields = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let name = name.to_ascii_lowercase();
            if name == "traceparent" {
                let value = value.strip_prefix(' ').expect("one space after the colon");
                return format!("{name}: {}", normalized_traceparent(value));
            }
            format!("{name}:{value}")
        })
        .collect();
    (request_line, grouped(fields), bytes[end..].to_vec())
}

/// `fields` (`name:value` lines, names case-folded) with each name's lines together at the
/// place of its first, in their order: hyper's client writes a header map, which keeps the
/// order of one name's values (the order that has meaning, RFC 9110 §5.3) but not where other
/// names came between them; the direct path keeps the client's order.
fn grouped(fields: Vec<String>) -> Vec<String> {
    let name = |field: &String| field.split(':').next().unwrap_or("").to_owned();
    let mut names: Vec<String> = Vec::new();
    for field in &fields {
        if !names.contains(&name(field)) {
            names.push(name(field));
        }
    }
    names
        .iter()
        .flat_map(|wanted| {
            fields
                .iter()
                .filter(|field| name(field) == *wanted)
                .cloned()
        })
        .collect()
}

/// Which path serves a case's direct run: the direct path itself, or hyper's, which the direct
/// path hands the request to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// The direct path.
    Direct,
    /// Hyper's path: both runs are hyper with hyper.
    Hyper,
}
use Served::{Direct, Hyper};

/// The field every case's request carries after its request line, so the upstream's bytes
/// tell which path forwarded it: the direct path writes a client's field name as the client
/// spelled it, hyper lower-case.
const MARKER: &str = "User-Agent: differential";

/// `request` with [`MARKER`] after its request line.
fn marked(request: &[u8]) -> Vec<u8> {
    let line_end = request
        .windows(2)
        .position(|window| window == b"\r\n")
        .map_or(request.len(), |at| at + 2);
    let mut marked = request[..line_end].to_vec();
    marked.extend_from_slice(MARKER.as_bytes());
    marked.extend_from_slice(b"\r\n");
    marked.extend_from_slice(&request[line_end..]);
    marked
}

/// Which path forwarded `received` (a request with [`MARKER`], as the upstream read it).
fn served_by(received: &[u8]) -> Served {
    let text = String::from_utf8_lossy(received);
    if text.contains(&format!("\r\n{MARKER}\r\n")) {
        Direct
    } else {
        assert!(
            text.contains(&format!("\r\n{}\r\n", MARKER.to_ascii_lowercase())),
            "the marker went upstream: {text:?}"
        );
        Hyper
    }
}

/// What the client read, as both paths are held to it:
/// - `status_line`: as written;
/// - `framing`: the values of `Content-Length`, `Transfer-Encoding` and `Connection`, in that
///   order, each its values joined (`-` for none);
/// - `fields`: the other fields, names case-folded, sorted, `Date` left out (each run has its
///   second), a request id the gateway made up as `(generated)`. A set, since hyper writes a
///   response's fields in its map's order and its names lower-case, where the direct path
///   keeps the upstream's order and spelling;
/// - `complete`: the body ended as its framing says: a chunked one with its last chunk (a body
///   cut off ends without one);
/// - `content`: the body's bytes, decoded from its chunks (chunk sizes, extensions and trailers
///   left out: hyper writes sizes in upper-case hex and drops extensions and trailers, the
///   direct path relays the upstream's chunks as they are);
///
/// and for an error the gateway made, its JSON `code` for the content and `(message)` for its
/// length (each path words its message its own way).
#[derive(Debug, PartialEq, Eq)]
struct ClientView {
    status_line: String,
    framing: [String; 3],
    fields: Vec<String>,
    complete: bool,
    content: String,
}

fn client_view(text: &str) -> ClientView {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_owned();
    let mut framing: [Vec<String>; 3] = Default::default();
    let mut fields = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let (name, value) = (name.to_ascii_lowercase(), value.trim().to_owned());
        match name.as_str() {
            "content-length" => framing[0].push(value),
            "transfer-encoding" => framing[1].push(value),
            "connection" => framing[2].push(value),
            "date" => {}
            "x-request-id" if value != "diff" => {
                assert_eq!(value.len(), 36, "a UUID: {value}");
                fields.push("x-request-id: (generated)".to_owned());
            }
            _ => fields.push(format!("{name}: {value}")),
        }
    }
    fields.sort();
    let mut framing = framing.map(|values| match values.is_empty() {
        true => "-".to_owned(),
        false => values.join(", "),
    });
    let (content, complete) = if framing[1] != "-" {
        dechunk(body)
    } else if framing[0] != "-" {
        let length: usize = framing[0].parse().expect("a length");
        (body.to_owned(), body.len() == length)
    } else {
        (body.to_owned(), true)
    };
    let error = serde_json::from_str::<serde_json::Value>(&content)
        .ok()
        .and_then(|error| error["error"]["code"].as_str().map(str::to_owned));
    let content = match error {
        Some(code) => {
            framing[0] = "(message)".to_owned();
            code
        }
        None => content,
    };
    ClientView {
        status_line,
        framing,
        fields,
        complete,
        content,
    }
}

/// The data of a chunked body, and whether it ended with its last chunk and the blank line
/// after the trailers.
fn dechunk(body: &str) -> (String, bool) {
    let mut rest = body;
    let mut data = String::new();
    loop {
        let Some((line, after)) = rest.split_once("\r\n") else {
            return (data, false);
        };
        let size = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size, 16) else {
            return (data, false);
        };
        if size == 0 {
            // The trailer section: field lines, then an empty one.
            let mut trailers = after;
            loop {
                match trailers.split_once("\r\n") {
                    Some(("", "")) => return (data, true),
                    Some(("", _)) | None => return (data, false),
                    Some((_, next)) => trailers = next,
                }
            }
        }
        let Some(chunk) = after.get(..size) else {
            data.push_str(after);
            return (data, false);
        };
        data.push_str(chunk);
        match after[size..].strip_prefix("\r\n") {
            Some(next) => rest = next,
            None => return (data, false),
        }
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Up: 1\r\n\r\nok";
const GET: &[u8] =
    b"GET /a?b=c HTTP/1.1\r\nHost: h.example\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n";
const HEAD: &[u8] =
    b"HEAD /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n";

/// What a case is, which path serves its direct run, the client's request, the upstream's
/// response, and the status expected.
type Case = (&'static str, Served, &'static [u8], &'static [u8], u16);

/// Each of the direct path's framing rules has a case it serves itself.
const CASES: &[Case] = &[
    ("a plain exchange", Direct, GET, OK, 200),
    ("a HEAD", Direct, HEAD, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200),
    ("a HEAD answered with a chunked head", Direct, HEAD, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200),
    ("a 204", Direct, GET, b"HTTP/1.1 204 No Content\r\n\r\n", 204),
    ("a 304 with its length", Direct, GET, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", 304),
    ("a 304 with Transfer-Encoding", Direct, GET, b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", 304),
    ("a length of 0", Direct, GET, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200),
    ("a repeated length in the response", Direct, GET, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok", 200),
    ("a body shorter than its length", Direct, GET, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", 200),
    ("a chunked response with an extension and a trailer", Direct, GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=\"y\"\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n", 200),
    ("a chunked body cut off", Direct, GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 200),
    ("a response until close", Direct, GET, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", 200),
    ("an HTTP/1.0 response until close", Direct, GET, b"HTTP/1.0 200 OK\r\n\r\nold", 200),
    ("Content-Length beside chunked", Direct, GET, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200),
    ("gzip below chunked", Direct, GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200),
    ("gzip until close", Direct, GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", 200),
    ("a hop-by-hop field the response names", Direct, GET, b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nContent-Length: 2\r\n\r\nok", 200),
    ("a POST with a body", Direct, b"POST /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc", OK, 200),
    ("a POST with an empty body", Direct, b"POST /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", OK, 200),
    ("a repeated Content-Length", Direct, b"POST /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nContent-Length: 3\r\ncontent-length: 3\r\nConnection: close\r\n\r\nabc", OK, 200),
    ("forwarding fields the client wrote", Direct, b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n", OK, 200),
    ("hop-by-hop fields the request names", Direct, b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Authorization: x\r\n\r\n", OK, 200),
    ("an unasked 100", Direct, GET, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 502),
    ("an unasked 103", Direct, GET, b"HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 502),
    ("an unasked 101", Direct, GET, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", 502),
    ("a malformed chunk", Direct, GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 502),
    ("differing lengths", Direct, GET, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", 502),
    ("a status below 100", Direct, GET, b"HTTP/1.1 099 Odd\r\n\r\n", 502),
    ("not HTTP", Direct, GET, b"SSH-2.0-OpenSSH\r\n\r\n", 502),
    ("a Content-Length list", Hyper, b"POST /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nContent-Length: 3, 3\r\nConnection: close\r\n\r\nabc", OK, 400),
    ("no Host", Hyper, b"GET /a HTTP/1.1\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", OK, 400),
    ("two Hosts", Hyper, b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", OK, 400),
    ("CONNECT", Hyper, b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", OK, 405),
    ("an absolute-form target", Hyper, b"GET http://real.example/a HTTP/1.1\r\nHost: fake\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n", OK, 200),
    ("a malformed chunked request body", Hyper, b"POST /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nzz\r\n\r\n", OK, 400),
];

#[tokio::test]
async fn both_paths_send_the_same_request_and_give_the_same_answer() {
    for (what, served, request, reply, expected) in CASES {
        let request = marked(request);
        let mut seen = Vec::new();
        for path in ["direct", "hyper"] {
            let upstream = ScriptedUpstream::always(reply).await;
            let gateway = on_path(path, &upstream.url);
            let text = exchange_raw(&gateway.authority, &request).await;
            gateway.server.stop().await;
            let received = upstream.received();
            if path == "direct"
                && let Some(first) = received.first()
            {
                assert_eq!(served_by(first), *served, "{what}: the path that served it");
            }
            let upstream_saw: Vec<_> = received
                .iter()
                .map(|bytes| normalized_request(bytes))
                .collect();
            let client_saw = client_view(&text);
            assert_eq!(split(&text).0, *expected, "{what}, {path}: {text:?}");
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

/// (what the case is, which path serves its direct run, the client's request): every one
/// reaches the upstream.
const REQUESTS: &[(&str, Served, &[u8])] = &[
    ("a rewritten target with its query and the route's Host", Direct, b"GET /api/items?a=1&b=%20 HTTP/1.1\r\nHost: h.example\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n"),
    ("the route's prefix alone", Direct, b"GET /api HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n"),
    ("forwarding fields the client wrote, in any case, repeated", Direct, b"GET /api/x HTTP/1.1\r\nHost: h\r\nx-request-id: diff\r\nX-FORWARDED-FOR: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nx-forwarded-host: evil\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"),
    ("an unacceptable request id", Direct, b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: has spaces in it\r\nConnection: close\r\n\r\n"),
    ("no request id", Direct, b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
    ("Connection naming the gateway's own fields", Direct, b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nConnection: close, x-request-id, X-Forwarded-For, X-Other\r\nX-Other: 1\r\nX-Kept: 2\r\n\r\n"),
    ("Connection naming the body's length", Hyper, b"POST /api/x HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nContent-Length: 3\r\nConnection: close, Content-Length\r\n\r\nabc"),
    ("every hop-by-hop field", Direct, b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nConnection: close\r\nKeep-Alive: 5\r\nTE: gzip\r\nTrailer: X\r\nProxy-Authorization: x\r\nProxy-Connection: keep-alive\r\n\r\n"),
    ("TE: trailers passes", Direct, b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nTE: trailers\r\nConnection: close\r\n\r\n"),
    ("repeated and empty end-to-end fields", Direct, b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nAccept: a\r\naccept: b\r\nX-Empty:\r\nCookie: c=1\r\nConnection: close\r\n\r\n"),
    ("a body with repeated lengths through a rewrite", Direct, b"PUT /api/x HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"),
    ("an absolute-form target's authority as the host", Hyper, b"GET http://real.example/api/x?q=1 HTTP/1.1\r\nHost: fake\r\nX-Request-Id: diff\r\nConnection: close\r\n\r\n"),
    ("a chunked body", Hyper, b"POST /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("repeated fields with others between them", Direct, b"GET /a HTTP/1.1\r\nHost: h\r\nX-Request-Id: diff\r\nAccept: a\r\nX-Other: 1\r\naccept: b\r\nConnection: close\r\n\r\n"),
    ("a trusted-looking peer's X-Forwarded-For", Direct, b"DELETE /api/x HTTP/1.1\r\nHost: h:8080\r\nX-Request-Id: diff\r\nX-Forwarded-For: 10.0.0.1, 1.2.3.4\r\nConnection: close\r\n\r\n"),
];

#[tokio::test]
async fn both_paths_send_identical_upstream_heads() {
    for (what, served, request) in REQUESTS {
        let request = marked(request);
        let mut seen = Vec::new();
        for path in ["direct", "hyper"] {
            let upstream = ScriptedUpstream::always(OK).await;
            let gateway = rewriting_gateway(path, &upstream.url);
            let text = exchange_raw(&gateway.authority, &request).await;
            gateway.server.stop().await;
            assert_eq!(split(&text).0, 200, "{what}, {path}: {text:?}");
            let received = upstream.received();
            assert_eq!(received.len(), 1, "{what}, {path}");
            if path == "direct" {
                assert_eq!(
                    served_by(&received[0]),
                    *served,
                    "{what}: the path that served it"
                );
            }
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
            assert_eq!(split(&text).0, *expected, "{what}, {path}: {text:?}");
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
                assert_eq!(
                    client_saw.content, "bad_request",
                    "{what}, {path}: {text:?}"
                );
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
