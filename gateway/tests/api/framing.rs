//! Message framing at the trust boundary, through both paths (the direct path and hyper's,
//! the second by turning the first off): what reaches an upstream is one well-framed request
//! the gateway vouches for, and what reaches a client is one well-framed response or a JSON
//! error. A scripted upstream answers with exact bytes and keeps the exact bytes it read.

use std::sync::atomic::Ordering;

use gateway::config::GatewayConfig;

use crate::{
    direct::one_thread,
    helpers::{TestGateway, exchange_raw, spawn},
    scripted::ScriptedUpstream,
};

/// The two ways through the gateway.
pub const PATHS: [&str; 2] = ["direct", "hyper"];

/// A one-thread gateway in front of `upstream` on `path` (`"direct"` or `"hyper"`).
pub fn on_path(path: &str, upstream: &str) -> TestGateway {
    let mut config: GatewayConfig = one_thread(upstream);
    config.server.direct_path = path == "direct";
    spawn(config)
}

/// The status, the lower-cased head and the raw body of the first response in `text`.
pub fn split(text: &str) -> (u16, String, String) {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let status = head
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_owned())
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn an_interim_response_nobody_asked_for_is_a_502_and_its_connection_is_dropped() {
    const EARLY_HINTS: &[u8] = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    const SWITCHED: &[u8] =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    for path in PATHS {
        for reply in [EARLY_HINTS, SWITCHED] {
            let upstream =
                ScriptedUpstream::start(vec![vec![Some(reply), Some(OK)], vec![Some(OK)]]).await;
            let gateway = on_path(path, &upstream.url);
            let (status, head, _) = split(&exchange_raw(&gateway.authority, GET).await);
            assert_eq!(status, 502, "{path}: {head}");
            // The socket is closed: the next request takes a new connection.
            let (status, _, body) = split(&exchange_raw(&gateway.authority, GET).await);
            assert_eq!((status, body.as_str()), (200, "ok"), "{path}");
            assert_eq!(upstream.connections.load(Ordering::SeqCst), 2, "{path}");
            gateway.server.stop().await;
        }
    }
}

#[tokio::test]
async fn a_100_to_an_expect_is_passed_over() {
    const CONTINUE: &[u8] =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let upstream = ScriptedUpstream::always(CONTINUE).await;
    let gateway = on_path("direct", &upstream.url);
    let request = b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
    let text = exchange_raw(&gateway.authority, request).await;
    assert!(text.ends_with("\r\n\r\nok"), "{text}");
    assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
    gateway.server.stop().await;
}

#[tokio::test]
async fn control_bytes_in_chunk_extensions_and_trailers_never_reach_the_client() {
    for (reply, what) in [
        (
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;a\x00b\r\nok\r\n0\r\n\r\n"[..],
            "NUL in an extension",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;\xff\r\nok\r\n0\r\n\r\n",
            "0xFF in an extension",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX: \x01\r\n\r\n",
            "a control byte in a trailer",
        ),
    ] {
        for path in PATHS {
            let upstream = ScriptedUpstream::always(reply).await;
            let gateway = on_path(path, &upstream.url);
            let text = exchange_raw(&gateway.authority, GET).await;
            for bad in ["\0", "\u{1}", "\u{fffd}"] {
                assert!(!text.contains(bad), "{path}, {what}: {text:?}");
            }
            gateway.server.stop().await;
        }
    }
}

#[tokio::test]
async fn a_repeated_content_length_goes_upstream_once() {
    for (path, request) in [
        ("direct", &b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"[..]),
        ("hyper", b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"),
        ("direct", b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nabc"),
    ] {
        let upstream = ScriptedUpstream::always(OK).await;
        let gateway = on_path(path, &upstream.url);
        let text = exchange_raw(&gateway.authority, request).await;
        assert!(text.contains("HTTP/1.1 200 OK\r\n"), "{path}: {text}");
        let received = String::from_utf8_lossy(&upstream.received()[0]).to_lowercase();
        assert_eq!(received.matches("content-length:").count(), 1, "{path}: {received}");
        assert!(received.ends_with("\r\n\r\nabc"), "{received}");
        gateway.server.stop().await;
    }
}

/// A request with `count` fields of its own besides `Host`.
fn with_fields(count: usize) -> Vec<u8> {
    let mut request = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n".to_vec();
    for n in 0..count - 1 {
        request.extend_from_slice(format!("X-Field-{n}: {n}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    request
}

#[tokio::test]
async fn every_request_the_gateway_forwards_fits_in_actix_field_limit() {
    const ACTIX_MAX_FIELDS: usize = 96;
    for path in PATHS {
        let upstream = ScriptedUpstream::always(OK).await;
        let gateway = on_path(path, &upstream.url);
        let most = gateway::forward::MAX_REQUEST_FIELDS;
        // `Host` and `Connection` are two of the most.
        let (status, _, _) = split(&exchange_raw(&gateway.authority, &with_fields(most - 1)).await);
        assert_eq!(status, 200, "{path}");
        let received = String::from_utf8_lossy(&upstream.received()[0]).into_owned();
        let fields = received.trim_end().lines().count() - 1;
        assert!(
            fields <= ACTIX_MAX_FIELDS,
            "{path}: {fields} fields went upstream"
        );
        for over in [most, 98, 99] {
            let text = exchange_raw(&gateway.authority, &with_fields(over)).await;
            let (status, _, body) = split(&text);
            assert_eq!(status, 431, "{path}, {over}: {text}");
            assert!(body.contains("\"bad_request\""), "{body}");
        }
        assert_eq!(
            upstream.received().len(),
            1,
            "{path}: none of those went upstream"
        );
        gateway.server.stop().await;
    }
}

#[tokio::test]
async fn content_length_beside_transfer_encoding_is_dropped_and_the_body_arrives_whole() {
    const BOTH: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    for path in PATHS {
        let upstream = ScriptedUpstream::always(BOTH).await;
        let gateway = on_path(path, &upstream.url);
        let (status, head, body) = split(&exchange_raw(&gateway.authority, GET).await);
        assert_eq!(status, 200, "{path}");
        assert!(!head.contains("content-length"), "{path}: {head}");
        assert!(
            head.contains("transfer-encoding: chunked"),
            "{path}: {head}"
        );
        assert_eq!(decode_chunked(&body), "hello world", "{path}: {body:?}");
        gateway.server.stop().await;
    }
}

/// The data of a chunked body (extensions and trailers left out).
pub fn decode_chunked(body: &str) -> String {
    let mut rest = body;
    let mut data = String::new();
    loop {
        let Some((line, after)) = rest.split_once("\r\n") else {
            return data;
        };
        let size =
            usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 {
            return data;
        }
        data.push_str(&after[..size.min(after.len())]);
        rest = after.get(size + 2..).unwrap_or("");
    }
}

#[tokio::test]
async fn connect_is_refused_and_the_host_is_one_field_or_the_target_authority() {
    for path in PATHS {
        let upstream = ScriptedUpstream::always(OK).await;
        let gateway = on_path(path, &upstream.url);
        for (request, expected) in [
            (
                &b"CONNECT internal:22 HTTP/1.1\r\nHost: internal:22\r\nConnection: close\r\n\r\n"
                    [..],
                405,
            ),
            (
                b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
                400,
            ),
            (b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n", 400),
            (
                b"GET /x HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
                400,
            ),
        ] {
            let text = exchange_raw(&gateway.authority, request).await;
            assert_eq!(
                split(&text).0,
                expected,
                "{path}: {}: {text}",
                String::from_utf8_lossy(request)
            );
        }
        assert!(
            upstream.received().is_empty(),
            "{path}: {:?}",
            upstream.requests()
        );
        let text = exchange_raw(
            &gateway.authority,
            b"GET http://real.example/x?q=1 HTTP/1.1\r\nHost: fake.example\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(split(&text).0, 200, "{path}: {text}");
        let received = String::from_utf8_lossy(&upstream.received()[0]).to_lowercase();
        assert!(
            received.starts_with("get /x?q=1 http/1.1\r\n"),
            "{path}: {received}"
        );
        assert!(
            received.contains("\r\nhost: real.example\r\n"),
            "{path}: {received}"
        );
        assert!(
            received.contains("\r\nx-forwarded-host: real.example\r\n"),
            "{path}: {received}"
        );
        assert!(!received.contains("fake"), "{path}: {received}");
        gateway.server.stop().await;
    }
}

#[tokio::test]
async fn a_malformed_chunked_request_body_is_the_clients_400() {
    for path in PATHS {
        let upstream = ScriptedUpstream::always(OK).await;
        let gateway = on_path(path, &upstream.url);
        let request = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n\r\n";
        let (status, _, body) = split(&exchange_raw(&gateway.authority, request).await);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("\"bad_request\""), "{path}: {body}");
        assert_eq!(
            gateway.metric("gateway_upstream_errors_total", &[]).await,
            0.0,
            "{path}: not the upstream's fault"
        );
        gateway.server.stop().await;
    }
}

#[tokio::test]
async fn a_malformed_chunked_response_is_a_502() {
    const BROKEN: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n";
    for path in PATHS {
        let upstream = ScriptedUpstream::always(BROKEN).await;
        let gateway = on_path(path, &upstream.url);
        let text = exchange_raw(&gateway.authority, GET).await;
        let (status, _, body) = split(&text);
        assert_eq!(status, 502, "{path}: {text:?}");
        assert!(body.contains("\"upstream_unavailable\""), "{path}: {body}");
        gateway.server.stop().await;
    }
}

#[tokio::test]
async fn transfer_codings_below_chunked_are_announced_again() {
    const GZIP_CHUNKED: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4\r\nGZIP\r\n0\r\n\r\n";
    const GZIP_UNTIL_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nGZIP";
    for path in PATHS {
        for reply in [GZIP_CHUNKED, GZIP_UNTIL_CLOSE] {
            let upstream = ScriptedUpstream::always(reply).await;
            let gateway = on_path(path, &upstream.url);
            let (status, head, body) = split(&exchange_raw(&gateway.authority, GET).await);
            assert_eq!(status, 200, "{path}");
            assert!(
                head.contains("\r\ntransfer-encoding: gzip, chunked"),
                "{path}: {head}"
            );
            assert_eq!(decode_chunked(&body), "GZIP", "{path}");
            gateway.server.stop().await;
        }
    }
}

#[tokio::test]
async fn after_an_http_1_0_answer_the_next_request_is_still_http_1_1() {
    const OLD: &[u8] = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok";
    for path in PATHS {
        let upstream =
            ScriptedUpstream::start(vec![vec![Some(OLD), Some(OK)], vec![Some(OK)]]).await;
        let gateway = on_path(path, &upstream.url);
        for _ in 0..2 {
            let (status, _, body) = split(&exchange_raw(&gateway.authority, GET).await);
            assert_eq!((status, body.as_str()), (200, "ok"), "{path}");
        }
        let lines = upstream.requests();
        assert_eq!(lines, ["GET /x HTTP/1.1", "GET /x HTTP/1.1"], "{path}");
        gateway.server.stop().await;
    }
}

/// Reads from `stream` into `seen` until `seen` holds `wanted`; fails after five seconds.
async fn read_until(stream: &mut tokio::net::TcpStream, seen: &mut Vec<u8>, wanted: &[u8]) {
    use tokio::io::AsyncReadExt;
    let reading = async {
        while !seen.windows(wanted.len()).any(|window| window == wanted) {
            assert_ne!(stream.read_buf(seen).await.expect("read"), 0, "{seen:?}");
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), reading)
        .await
        .unwrap_or_else(|_| panic!("no {wanted:?} in {:?}", String::from_utf8_lossy(seen)));
}

/// The client's head and first chunk have gone out when the upstream's next chunk size turns
/// out to be no number: too late for a 502, so the client keeps the head and the chunk it has,
/// the connection is cut before any last chunk (a client never takes the body for whole), the
/// upstream connection is closed, not pooled, and the failure is counted.
#[tokio::test]
async fn a_chunked_response_broken_after_its_head_went_out_is_cut_off_and_counted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const HEAD_AND_CHUNK: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    const BROKEN: &[u8] = b"zz\r\nworld\r\n0\r\n\r\n";
    for path in PATHS {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let gateway = on_path(path, &url);
        let (head_seen, head_seen_rx) = tokio::sync::oneshot::channel::<()>();
        let upstream = tokio::spawn(async move {
            let (mut first, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            read_until(&mut first, &mut request, b"\r\n\r\n").await;
            first.write_all(HEAD_AND_CHUNK).await.expect("head");
            head_seen_rx.await.expect("the client read the head");
            first.write_all(BROKEN).await.expect("the bad chunk");
            // The gateway closes this connection without another request on it.
            let mut after = Vec::new();
            let ended = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                first.read_to_end(&mut after),
            )
            .await;
            assert!(
                matches!(ended, Ok(Ok(0))),
                "the broken connection is closed, never reused: {ended:?}, {after:?}"
            );
            let (mut second, _) = listener.accept().await.expect("accept");
            let mut request = Vec::new();
            read_until(&mut second, &mut request, b"\r\n\r\n").await;
            second.write_all(OK).await.expect("answer");
        });

        // A keep-alive request: the gateway, not the client, ends the connection.
        let mut client = tokio::net::TcpStream::connect(&gateway.authority)
            .await
            .expect("connect");
        client
            .write_all(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("send");
        let mut seen = Vec::new();
        read_until(&mut client, &mut seen, b"hello\r\n").await;
        head_seen.send(()).expect("the upstream waits");
        let ended = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            client.read_to_end(&mut seen),
        )
        .await;
        assert!(
            matches!(ended, Ok(Ok(_))),
            "{path}: the connection is closed: {ended:?}"
        );
        let text = String::from_utf8_lossy(&seen).into_owned();
        let (status, head, body) = split(&text);
        assert_eq!(status, 200, "{path}: {text:?}");
        assert!(
            head.contains("transfer-encoding: chunked"),
            "{path}: {head}"
        );
        assert_eq!(body, "5\r\nhello\r\n", "{path}: the chunk, and no last one");
        testing::eventually(
            "the broken body counted",
            std::time::Duration::from_secs(5),
            || async {
                gateway
                    .metric("gateway_upstream_errors_total", &[("kind", "protocol")])
                    .await
                    == 1.0
            },
        )
        .await;

        let (status, _, body) = split(&exchange_raw(&gateway.authority, GET).await);
        assert_eq!((status, body.as_str()), (200, "ok"), "{path}");
        upstream.await.expect("the upstream's script");
        gateway.server.stop().await;
    }
}
