//! The direct path's parser and relay, run on arbitrary bytes with their invariants checked:
//! the entry point of the cargo-fuzz target (`gateway/fuzz`) and of the test that replays its
//! corpus on every `cargo test`.
//!
//! One input is a client's request and an upstream's response (`Harness::run`). What must
//! hold, whatever the bytes:
//! - a request the direct path takes is written upstream as one request that an independent
//!   parser (`httparse`) reads whole, with exactly one `Host`, at most one `Content-Length`
//!   (the length it declared), no field that frames or upgrades the message, the fields the
//!   gateway vouches for written once each, and no more fields than the services take;
//! - a response it relays reaches the client as exactly one message that `httparse` frames the
//!   same way, ending where the gateway says it ends (nothing after it could be read as a
//!   second response); a body cut short never looks complete; a body refused before anything
//!   went out leaves the client with nothing written (the caller answers 502).

use std::{
    net::{IpAddr, SocketAddr},
    pin::Pin,
    task::{Context, Poll},
};

use http::HeaderValue;
use tokio::io::{AsyncRead, ReadBuf};

use super::{
    request::parse_request,
    response::{RelayError, Relayed, parse_response_head, relay_response},
};
use crate::{
    config::{GatewayConfig, RouteAuth, RouteConfig},
    context::Shared,
    forward::{SERVICE_MAX_FIELDS, carries_no_body},
};

/// What one run needs, made once per process.
pub struct Harness {
    /// Routes `/` and `/api` (rewritten to `/v2`, with its own `Host`), trusting `10.0.0.0/8`.
    shared: Shared,
    /// Runs the relay, whose reads and writes never wait here.
    runtime: tokio::runtime::Runtime,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// The harness, with its route table.
    pub fn new() -> Self {
        let route = |prefix: &str, rewrite: Option<&str>, host: Option<&str>| RouteConfig {
            prefix: prefix.to_owned(),
            upstreams: vec!["http://127.0.0.1:9".to_owned()],
            rewrite: rewrite.map(str::to_owned),
            host: host.map(str::to_owned),
            response_timeout_ms: None,
            max_body_bytes: Some(1024),
            auth: RouteAuth::Optional,
            sticky: None,
            openapi: None,
        };
        let mut config = GatewayConfig::builtin();
        config.routes = vec![
            route("/", None, None),
            route("/api", Some("/v2"), Some("internal.svc")),
        ];
        config.server.trusted_proxies = vec!["10.0.0.0/8".parse().expect("a network")];
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        Self {
            shared: Shared::new(config, logger).expect("a valid configuration"),
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("a runtime"),
        }
    }

    /// Runs one input: its first two bytes (little-endian) say how many of the rest are the
    /// request, the next one how the response trickles in (bytes per read), and the rest is the
    /// upstream's response. Panics when an invariant breaks.
    pub fn run(&self, data: &[u8]) {
        let [low, high, step, rest @ ..] = data else {
            return;
        };
        let split = usize::from(u16::from_le_bytes([*low, *high])).min(rest.len());
        let (request, response) = rest.split_at(split);
        let peer = if step % 2 == 0 {
            SocketAddr::from(([203, 0, 113, 9], 40_000))
        } else {
            SocketAddr::from(([10, 1, 2, 3], 40_000))
        };
        self.check_request(request, peer);
        self.check_response(response, usize::from(*step).max(1));
    }

    fn check_request(&self, inbound: &[u8], peer: SocketAddr) {
        let mut out = Vec::new();
        let Ok(Some(request)) = parse_request(inbound, peer, &self.shared, &mut out) else {
            return;
        };
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut parsed = httparse::Request::new(&mut fields);
        let head_length = match parsed.parse(&out) {
            Ok(httparse::Status::Complete(length)) => length,
            other => panic!("the upstream head does not parse: {other:?}: {out:?}"),
        };
        assert!(
            parsed.path.is_some_and(|path| path.starts_with('/')),
            "{out:?}"
        );
        assert!(parsed.headers.len() <= SERVICE_MAX_FIELDS, "{out:?}");
        let count = |name: &str| {
            parsed
                .headers
                .iter()
                .filter(|field| field.name.eq_ignore_ascii_case(name))
                .count()
        };
        for once in [
            "host",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-request-id",
        ] {
            assert_eq!(count(once), 1, "{once}: {out:?}");
        }
        for never in [
            "transfer-encoding",
            "connection",
            "upgrade",
            "expect",
            "keep-alive",
            "trailer",
        ] {
            assert_eq!(count(never), 0, "{never}: {out:?}");
        }
        let value = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|field| field.name.eq_ignore_ascii_case(name))
                .map(|field| field.value)
        };
        let forwarded_for = std::str::from_utf8(value("x-forwarded-for").unwrap_or_default())
            .expect("an address is text");
        assert_eq!(
            forwarded_for.parse::<IpAddr>().ok(),
            Some(request.client),
            "{out:?}"
        );
        let declared = match count("content-length") {
            0 => 0,
            1 => std::str::from_utf8(value("content-length").unwrap_or_default())
                .ok()
                .and_then(|length| length.parse::<u64>().ok())
                .expect("a length"),
            _ => panic!("Content-Length twice: {out:?}"),
        };
        let body_sent = (out.len() - head_length) as u64;
        assert_eq!(body_sent + request.body_left, declared, "{out:?}");
    }

    fn check_response(&self, response: &[u8], step: usize) {
        let Ok(Some(head)) = parse_response_head(response) else {
            return;
        };
        if head.status < 200 {
            return;
        }
        let framing = head.client_framing(false);
        let mut out = Vec::new();
        let request_id = HeaderValue::from_static("fuzz");
        let cors = (&self.shared.cors, crate::cors::Grant::Off);
        head.write_client_head(response, &framing, &request_id, cors, false, &mut out);
        // The first read holds the head and up to `step` bytes more; the rest trickles in.
        let first = (head.length + step).min(response.len());
        let mut upstream_bytes = response[..first].to_vec();
        let mut upstream = Trickle {
            rest: &response[first..],
            step,
        };
        let mut client = Vec::new();
        let relayed = self.runtime.block_on(relay_response(
            framing,
            head.length,
            &mut upstream,
            &mut upstream_bytes,
            &mut out,
            &mut client,
        ));
        let end = message_end(&client);
        match relayed {
            Ok(Relayed { .. }) => assert_eq!(end, Some(client.len()), "{client:?}"),
            Err(RelayError::Malformed) => assert!(client.is_empty(), "{client:?}"),
            Err(RelayError::Source | RelayError::Destination) => {
                assert_eq!(end, None, "a cut body looks whole: {client:?}");
            }
        }
    }
}

/// Where the one response in `bytes` ends by an independent reading (`httparse` for the head
/// and the chunk sizes); `None` when it does not end in them, or its framing is ambiguous.
fn message_end(bytes: &[u8]) -> Option<usize> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut parsed = httparse::Response::new(&mut fields);
    let httparse::Status::Complete(head_length) = parsed.parse(bytes).ok()? else {
        return None;
    };
    let named = |name: &str| {
        parsed
            .headers
            .iter()
            .filter(|field| field.name.eq_ignore_ascii_case(name))
            .map(|field| field.value)
            .collect::<Vec<_>>()
    };
    let (lengths, codings) = (named("content-length"), named("transfer-encoding"));
    match (lengths.as_slice(), codings.as_slice()) {
        ([], []) => {
            let status = parsed.code?;
            carries_no_body(status).then_some(head_length)
        }
        ([length], []) => {
            let length: usize = std::str::from_utf8(length).ok()?.parse().ok()?;
            let end = head_length.checked_add(length)?;
            (bytes.len() >= end).then_some(end)
        }
        ([], [coding]) if coding.ends_with(b"chunked") => {
            chunked_end(&bytes[head_length..]).map(|end| head_length + end)
        }
        _ => panic!("ambiguous framing: {bytes:?}"),
    }
}

/// Where a chunked body ends, read with `httparse`'s chunk-size parser.
fn chunked_end(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let httparse::Status::Complete((line, size)) =
            httparse::parse_chunk_size(&body[at..]).ok()?
        else {
            return None;
        };
        at += line;
        if size == 0 {
            let mut trailers = [httparse::EMPTY_HEADER; 64];
            let httparse::Status::Complete((length, _)) =
                httparse::parse_headers(&body[at..], &mut trailers).ok()?
            else {
                return None;
            };
            return Some(at + length);
        }
        at = at.checked_add(usize::try_from(size).ok()?)?;
        if body.get(at..at + 2)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
}

/// An upstream whose bytes come `step` at a time.
struct Trickle<'a> {
    /// Bytes not yet read.
    rest: &'a [u8],
    /// Most bytes per read.
    step: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let take = self.rest.len().min(self.step).min(buffer.remaining());
        buffer.put_slice(&self.rest[..take]);
        self.rest = &self.rest[take..];
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target's corpus (gateway/fuzz/corpus), replayed: every input the fuzzer kept
    /// holds the invariants on every build.
    #[test]
    fn the_fuzz_corpus_holds_the_invariants() {
        let harness = Harness::new();
        let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/direct");
        let mut inputs = 0;
        for entry in std::fs::read_dir(directory).expect("the corpus") {
            let path = entry.expect("an entry").path();
            harness.run(&std::fs::read(&path).expect("an input"));
            inputs += 1;
        }
        assert!(inputs >= 10, "the corpus holds its seeds: {inputs}");
    }
}
