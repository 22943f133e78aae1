//! The workspace builds actix-http from `vendor/actix-http` (vendor/README.md): a kept-alive
//! connection holds 1 KiB read and write buffers, not upstream's 8 KiB each. An actix-web
//! upgrade past the patched version would silently drop the patch (Cargo only warns); this
//! test then fails.
//!
//! Live heap bytes are counted by this test binary's allocator, so the figure is exact and
//! independent of pages and of the allocator's caching.

use std::alloc::System;

use actix_web::{App, HttpServer, web};
use cap::Cap;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The system allocator, counting the bytes live at any moment.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Connections kept open at once.
const CONNECTIONS: usize = 400;

/// Sends one keep-alive request on `stream` and reads its whole answer.
async fn exchange(stream: &mut TcpStream) {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: buffers-test\r\n\r\n")
        .await
        .expect("request sent");
    let mut answer = [0_u8; 512];
    let mut read = 0;
    while !answer[..read].ends_with(b"ok") {
        let n = stream.read(&mut answer[read..]).await.expect("answer read");
        assert!(n > 0, "the server closed the connection");
        read += n;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_holds_small_buffers() {
    let server = HttpServer::new(|| App::new().route("/", web::get().to(|| async { "ok" })))
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bound");
    let address = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);

    // The server's lazily built state exists before the count starts.
    let mut warm = TcpStream::connect(address).await.expect("connected");
    exchange(&mut warm).await;
    let mut connections = Vec::with_capacity(CONNECTIONS);
    let before = ALLOCATOR.allocated();
    for _ in 0..CONNECTIONS {
        let mut stream = TcpStream::connect(address).await.expect("connected");
        exchange(&mut stream).await;
        connections.push(stream);
    }
    // Each answer was read, so the server has written it and waits for the next request.
    let grown = ALLOCATOR.allocated().saturating_sub(before);
    let per_connection = grown / CONNECTIONS;
    eprintln!("live heap per kept-alive connection (both ends): {per_connection} bytes");
    // Upstream's 8 KiB read and 8 KiB write buffers alone are 16 384 bytes a connection; the
    // patched 1 KiB ones leave the rest of a connection's state (both ends) well under 8 KiB.
    assert!(
        per_connection < 8 * 1024,
        "{per_connection} bytes a connection: is vendor/actix-http's patch in use?"
    );
    drop(connections);
    handle.stop(false).await;
}
