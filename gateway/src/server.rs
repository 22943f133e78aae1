//! The runtime model: one thread per core, each with a single-threaded tokio runtime, its own
//! `SO_REUSEPORT` listener (the kernel spreads connections across them) and its own upstream
//! pool, so a request never crosses threads and the hot path takes no locks.

use std::{net::SocketAddr, pin::Pin, rc::Rc, sync::Arc, task::Poll, time::Duration};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::watch,
};

use crate::{
    context::{Shared, ThreadContext},
    pool::Pool,
    proxy::handle,
    tracker::Tracker,
};

/// Binds `count` listeners to one address with `SO_REUSEPORT` (port 0: a free port, the same
/// for all).
pub fn bind_listeners(
    address: SocketAddr,
    count: usize,
) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(count);
    let mut address = address;
    for _ in 0..count.max(1) {
        let socket = Socket::new(
            Domain::for_address(address),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&address.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        address = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Runs one server thread until `stop` turns true, then drains.
pub fn run_thread(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    housekeeper: bool,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve(listener, shared, stop, housekeeper))
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    housekeeper: bool,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let server = &shared.server;
    let pool = Rc::new(Pool::new(
        Duration::from_millis(server.pool_idle_timeout_ms),
        server.pool_max_idle_per_host,
        server.connect_timeout(),
        shared.resolver.clone(),
    ));
    let tracker = Rc::new(Tracker::default());
    let context = Rc::new(ThreadContext {
        shared: shared.clone(),
        pool: pool.clone(),
        tracker: tracker.clone(),
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .writev(false)
        .header_read_timeout(Duration::from_millis(server.client_header_timeout_ms))
        .max_buf_size(server.max_header_bytes.max(8192) + 64 * 1024)
        // hyper answers a head over its limit with a bare 431; heads up to twice the configured
        // limit reach the handler, which answers the JSON 431 of docs/contracts.md.
        .max_header_size(server.max_header_bytes.saturating_mul(2));
    let builder = Rc::new(builder);

    if housekeeper && shared.server.health_check_interval_ms > 0 {
        let interval = Duration::from_millis(shared.server.health_check_interval_ms);
        tokio::task::spawn_local(crate::health::run(shared.clone(), interval));
    }
    let housekeeping_shared = shared.clone();
    tokio::task::spawn_local(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            pool.sweep();
            if housekeeper && let Some(limiter) = &housekeeping_shared.limiter {
                limiter.retain_recent();
            }
        }
    });

    let connection_stop = stop.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::task::spawn_local(serve_connection(stream, peer, context.clone(), builder.clone(), connection_stop.clone()));
                }
                Err(error) => {
                    // Out of file descriptors, usually: back off instead of spinning.
                    slog::warn!(shared.telemetry.logger, "accept failed"; "error" => error.to_string());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.wait_for(|stopped| *stopped) => break,
        }
    }
    drop(listener);
    let drain = Duration::from_millis(shared.server.drain_timeout_ms);
    if tokio::time::timeout(drain, tracker.wait_idle())
        .await
        .is_err()
    {
        slog::warn!(shared.telemetry.logger, "drain timeout: closing what is still open";
            "open" => tracker.open_now(), "drain_timeout_ms" => shared.server.drain_timeout_ms);
    }
    Ok(())
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    context: Rc<ThreadContext>,
    builder: Rc<http1::Builder>,
    mut stop: watch::Receiver<bool>,
) {
    let _open = context.tracker.open();
    let metrics = &context.shared.telemetry.metrics;
    metrics.open_connections.inc();
    let next = if context.shared.server.direct_path {
        crate::direct::serve(stream, peer, &context, &mut stop).await
    } else {
        crate::direct::Next::HandOver(stream, Vec::new())
    };
    if let crate::direct::Next::HandOver(stream, already_read) = next {
        let io = Prefixed {
            prefix: already_read,
            consumed: 0,
            inner: stream,
        };
        serve_with_hyper(io, peer, &context, &builder, &mut stop).await;
    }
    metrics.open_connections.dec();
}

/// Serves the rest of a connection with hyper, from the request the direct path handed over.
async fn serve_with_hyper(
    io: Prefixed<tokio::net::TcpStream>,
    peer: SocketAddr,
    context: &Rc<ThreadContext>,
    builder: &http1::Builder,
    stop: &mut watch::Receiver<bool>,
) {
    let service_context = context.clone();
    let service = service_fn(move |request| handle(request, service_context.clone(), peer));
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stop.wait_for(|stopped| *stopped) => {
            // Finish the request in flight, then close instead of keeping alive.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// A connection whose first bytes were already read: they are read again first.
pub struct Prefixed<T> {
    /// The bytes read before.
    prefix: Vec<u8>,
    /// How many of them have been read again.
    consumed: usize,
    /// The connection.
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.consumed < this.prefix.len() {
            let rest = &this.prefix[this.consumed..];
            let take = rest.len().min(buffer.remaining());
            buffer.put_slice(&rest[..take]);
            this.consumed += take;
            if this.consumed == this.prefix.len() {
                this.prefix = Vec::new();
                this.consumed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(context, buffer)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(context, bytes)
    }

    fn poll_flush(
        self: Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(context)
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(context)
    }
}
