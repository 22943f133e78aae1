//! An upstream's early answer (a 413 over quota, sent after reading the head, the body left
//! unread) reaches the client while the client is still sending its body, on both paths and
//! for both body framings (RFC 9112 §9.6: the gateway then closes the connection).

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::helpers::{config, route, spawn};

const TOO_LARGE: &[u8] = b"HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\ncontent-length: 14\r\nconnection: close\r\n\r\n{\"error\":\"no\"}";

/// An upstream that reads each request's head, answers [`TOO_LARGE`] at once and then holds
/// the connection open without reading another byte.
async fn answers_early() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    let mut byte = [0u8; 1];
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = stream.write_all(TOO_LARGE).await;
                std::future::pending::<()>().await;
                drop(stream);
            });
        }
    });
    url
}

/// Sends a request whose body trickles in (`pieces` writes, 20 ms apart) and reads the
/// response: its status line, whether the head came before the body was sent whole, and
/// whether the connection ended before it was.
async fn upload_slowly(authority: &str, chunked: bool) -> (String, bool, bool) {
    const PIECES: usize = 250;
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", PIECES * 5)
    };
    let head = format!("POST /media/upload HTTP/1.1\r\nHost: a\r\n{framing}\r\n\r\n");
    writer.write_all(head.as_bytes()).await.expect("send");
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let sender = tokio::spawn(async move {
        let mut pace = tokio::time::interval(std::time::Duration::from_millis(20));
        for _ in 0..PIECES {
            pace.tick().await;
            let piece: &[u8] = if chunked { b"5\r\nhello\r\n" } else { b"hello" };
            if writer.write_all(piece).await.is_err() {
                return;
            }
        }
        if chunked && writer.write_all(b"0\r\n\r\n").await.is_err() {
            return;
        }
        done.store(true, Ordering::SeqCst);
    });
    let mut response = Vec::new();
    while !response.windows(4).any(|window| window == b"\r\n\r\n") {
        if reader.read_buf(&mut response).await.expect("read") == 0 {
            break;
        }
    }
    let answered_first = !finished.load(Ordering::SeqCst);
    // Then the gateway ends the connection (a reset counts too) without waiting for the body.
    while matches!(reader.read_buf(&mut response).await, Ok(read) if read > 0) {}
    let closed_first = !finished.load(Ordering::SeqCst);
    sender.abort();
    let text = String::from_utf8_lossy(&response);
    (
        text.lines().next().unwrap_or("").to_owned(),
        answered_first,
        closed_first,
    )
}

#[tokio::test]
async fn an_early_answer_reaches_the_client_while_its_body_is_still_coming() {
    let upstream = answers_early().await;
    let mut late = Vec::new();
    for direct_path in [true, false] {
        let mut config = config(vec![route("/media", &[&upstream])]);
        config.server.direct_path = direct_path;
        let gateway = spawn(config);
        for chunked in [true, false] {
            let (status, answered_first, closed_first) =
                upload_slowly(&gateway.authority, chunked).await;
            assert!(
                status.starts_with("HTTP/1.1 413"),
                "{status:?} (direct_path {direct_path}, chunked {chunked})"
            );
            if !answered_first || !closed_first {
                late.push(format!(
                    "direct_path {direct_path}, chunked {chunked}: answered {answered_first}, closed {closed_first}"
                ));
            }
        }
    }
    assert!(
        late.is_empty(),
        "the 413 or the close waited for the whole body: {late:?}"
    );
}

#[tokio::test]
async fn an_early_answer_reaches_a_client_whose_upload_the_upstream_no_longer_reads() {
    // 64 MiB sent as fast as the connection takes it: more than every socket buffer between
    // the client and an upstream that stopped reading, so the client's writes stall.
    const LENGTH: usize = 64 * 1024 * 1024;
    let upstream = answers_early().await;
    let gateway = spawn(config(vec![route("/media", &[&upstream])]));
    let stream = tokio::net::TcpStream::connect(&gateway.authority)
        .await
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head =
        format!("POST /media/upload HTTP/1.1\r\nHost: a\r\nContent-Length: {LENGTH}\r\n\r\n");
    writer.write_all(head.as_bytes()).await.expect("send");
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let sender = tokio::spawn(async move {
        let piece = vec![b'x'; 64 * 1024];
        for _ in 0..LENGTH / piece.len() {
            if writer.write_all(&piece).await.is_err() {
                return;
            }
        }
        done.store(true, Ordering::SeqCst);
    });
    let mut response = Vec::new();
    while !response.windows(4).any(|window| window == b"\r\n\r\n") {
        if reader.read_buf(&mut response).await.expect("read") == 0 {
            break;
        }
    }
    let finished_first = finished.load(Ordering::SeqCst);
    sender.abort();
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(!finished_first, "the 413 waited for the whole body");
}
