//! Each server thread's own pool of keep-alive connections to the upstreams.
//!
//! A thread serves its clients on one single-threaded runtime, so its pool needs no locks: idle
//! connections wait in a `RefCell`'d list per instance. A connection goes back to the list when
//! the response it carried has been read to the end, and is dropped instead when it has been
//! idle longer than `pool_idle_timeout_ms` (below the upstreams' own keep-alive, so the gateway
//! never picks a connection its upstream is closing).
//!
//! Two kinds of connection are pooled: plain sockets for the direct path ([`crate::direct`]),
//! and hyper client connections for the exchanges hyper serves (upgrades, chunked uploads).

use std::{cell::RefCell, collections::HashMap, sync::Arc, time::Duration};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, time::Instant};

use crate::{request_body::RequestBody, upstream::Instance};

/// Why a new connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect failed (refused, unreachable…).
    #[error("connect to {0}: {1}")]
    Io(Arc<str>, #[source] std::io::Error),
    /// TCP connect took longer than the connect timeout.
    #[error("connect to {0}: timed out")]
    Timeout(Arc<str>),
    /// The HTTP/1 handshake failed.
    #[error("handshake with {0}: {1}")]
    Handshake(Arc<str>, #[source] hyper::Error),
}

/// Whether an idle connection can still carry a request.
trait Reusable {
    fn is_open(&self) -> bool;
}

impl Reusable for SendRequest<RequestBody> {
    fn is_open(&self) -> bool {
        !self.is_closed()
    }
}

impl Reusable for TcpStream {
    /// An idle socket with nothing to read is open. Closed by the upstream, it reads end of
    /// stream; bytes it holds (a 408 sent before closing, say) would be taken for the next
    /// request's response. One non-blocking peek asks the kernel itself, since the runtime
    /// may not have seen the socket's latest readiness yet.
    fn is_open(&self) -> bool {
        let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        matches!(
            socket2::SockRef::from(self).peek(&mut probe),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock
        )
    }
}

/// Idle connections to one instance, each with the moment it went idle.
type IdleList<T> = Vec<(T, Instant)>;

/// Idle connections of one kind, by instance.
struct IdleLists<T> {
    /// By instance label (`host:port`), each with the moment it went idle.
    lists: RefCell<HashMap<Arc<str>, IdleList<T>>>,
}

impl<T: Reusable> IdleLists<T> {
    fn new() -> Self {
        Self {
            lists: RefCell::new(HashMap::new()),
        }
    }

    fn take(&self, label: &Arc<str>, idle_timeout: Duration) -> Option<T> {
        let mut lists = self.lists.borrow_mut();
        let list = lists.get_mut(label)?;
        while let Some((connection, idle_since)) = list.pop() {
            if idle_since.elapsed() < idle_timeout && connection.is_open() {
                return Some(connection);
            }
        }
        None
    }

    fn put(&self, label: &Arc<str>, connection: T, max_idle: usize) {
        let mut lists = self.lists.borrow_mut();
        let list = lists.entry(label.clone()).or_default();
        if list.len() < max_idle {
            list.push((connection, Instant::now()));
        }
    }

    fn sweep(&self, idle_timeout: Duration) {
        for list in self.lists.borrow_mut().values_mut() {
            list.retain(|(connection, idle_since)| {
                idle_since.elapsed() < idle_timeout && connection.is_open()
            });
        }
    }
}

/// One thread's upstream connections.
pub struct Pool {
    /// Idle hyper client connections.
    senders: IdleLists<SendRequest<RequestBody>>,
    /// Idle sockets of the direct path.
    sockets: IdleLists<TcpStream>,
    /// Idle connections older than this are dropped.
    idle_timeout: Duration,
    /// Idle connections kept per instance, of each kind.
    max_idle: usize,
    /// TCP connect timeout.
    connect_timeout: Duration,
}

impl Pool {
    /// An empty pool.
    pub fn new(idle_timeout: Duration, max_idle: usize, connect_timeout: Duration) -> Self {
        Self {
            senders: IdleLists::new(),
            sockets: IdleLists::new(),
            idle_timeout,
            max_idle,
            connect_timeout,
        }
    }

    /// An idle hyper connection to `instance` that is still open and fresh enough, if any; the
    /// caller waits for it to be ready (a closed one fails there and is dropped).
    pub fn checkout(&self, instance: &Instance) -> Option<SendRequest<RequestBody>> {
        self.senders.take(&instance.label, self.idle_timeout)
    }

    /// Puts a hyper connection whose exchange finished back in the pool.
    pub fn checkin(&self, label: &Arc<str>, sender: SendRequest<RequestBody>) {
        if !sender.is_closed() {
            self.senders.put(label, sender, self.max_idle);
        }
    }

    /// An idle socket to `instance` that is still open and fresh enough, if any.
    pub fn take_socket(&self, instance: &Instance) -> Option<TcpStream> {
        self.sockets.take(&instance.label, self.idle_timeout)
    }

    /// Puts a socket whose exchange ended cleanly back in the pool.
    pub fn put_socket(&self, label: &Arc<str>, socket: TcpStream) {
        self.sockets.put(label, socket, self.max_idle);
    }

    /// A new TCP connection to `instance`, within the connect timeout.
    pub async fn connect_socket(&self, instance: &Instance) -> Result<TcpStream, ConnectError> {
        let label = &instance.label;
        let stream = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect(instance.authority.as_str()),
        )
        .await
        .map_err(|_| ConnectError::Timeout(label.clone()))?
        .map_err(|error| ConnectError::Io(label.clone(), error))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// A new hyper connection to `instance`; its I/O runs as a task on this thread.
    pub async fn connect(
        &self,
        instance: &Instance,
    ) -> Result<SendRequest<RequestBody>, ConnectError> {
        let stream = self.connect_socket(instance).await?;
        let (sender, connection) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|error| ConnectError::Handshake(instance.label.clone(), error))?;
        tokio::task::spawn_local(async move {
            // Ends when the upstream closes or the last sender is dropped.
            let _ = connection.with_upgrades().await;
        });
        Ok(sender)
    }

    /// Drops idle connections past their idle timeout or closed (run now and then).
    pub fn sweep(&self) {
        self.senders.sweep(self.idle_timeout);
        self.sockets.sweep(self.idle_timeout);
    }
}
