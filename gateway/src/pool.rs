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
//!
//! A new connection resolves its instance's name anew ([`Resolver`]) and takes the addresses in
//! turn ([`Instance::in_turn`]), so replicas behind one name share the load. Each connection
//! knows the address it reached, and a request pinned to an address (a sticky session's
//! replica, [`crate::sticky::Pin`]) takes or makes a connection to that address only.

use std::{cell::RefCell, collections::HashMap, io, net::SocketAddr, sync::Arc, time::Duration};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, time::Instant};

use crate::{request_body::RequestBody, resolve::Resolver, upstream::Instance};

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

/// A hyper client connection and the address its socket reached.
pub struct Connection {
    /// Sends requests on it.
    pub sender: SendRequest<RequestBody>,
    /// The upstream's address (one of those its name resolved to).
    pub address: SocketAddr,
    /// It came from the pool: it carried an exchange before and sat idle since.
    pub reused: bool,
}

/// An idle connection: whether it can still carry a request, and where it goes.
trait Reusable {
    fn is_open(&self) -> bool;
    fn reaches(&self, address: SocketAddr) -> bool;
}

impl Reusable for Connection {
    fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    fn reaches(&self, address: SocketAddr) -> bool {
        self.address == address
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

    fn reaches(&self, address: SocketAddr) -> bool {
        self.peer_addr().is_ok_and(|peer| peer == address)
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

    /// The most recently idle connection (to `address`, when given) that is still usable;
    /// the unusable ones met on the way are dropped.
    fn take(
        &self,
        label: &Arc<str>,
        address: Option<SocketAddr>,
        idle_timeout: Duration,
    ) -> Option<T> {
        let mut lists = self.lists.borrow_mut();
        let list = lists.get_mut(label)?;
        let usable = |(connection, idle_since): &(T, Instant)| {
            idle_since.elapsed() < idle_timeout && connection.is_open()
        };
        match address {
            None => {
                while let Some(entry) = list.pop() {
                    if usable(&entry) {
                        return Some(entry.0);
                    }
                }
                None
            }
            Some(address) => {
                list.retain(usable);
                let at = list
                    .iter()
                    .rposition(|(connection, _)| connection.reaches(address))?;
                Some(list.remove(at).0)
            }
        }
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
    senders: IdleLists<Connection>,
    /// Idle sockets of the direct path.
    sockets: IdleLists<TcpStream>,
    /// Idle connections older than this are dropped.
    idle_timeout: Duration,
    /// Idle connections kept per instance, of each kind.
    max_idle: usize,
    /// TCP connect timeout.
    connect_timeout: Duration,
    /// Turns instance names into addresses.
    resolver: Arc<Resolver>,
}

impl Pool {
    /// An empty pool whose new connections resolve names with `resolver`.
    pub fn new(
        idle_timeout: Duration,
        max_idle: usize,
        connect_timeout: Duration,
        resolver: Arc<Resolver>,
    ) -> Self {
        Self {
            senders: IdleLists::new(),
            sockets: IdleLists::new(),
            idle_timeout,
            max_idle,
            connect_timeout,
            resolver,
        }
    }

    /// An idle hyper connection to `instance` (to `address` only, when given) that is still
    /// open and fresh enough, if any; the caller waits for it to be ready (a closed one fails
    /// there and is dropped).
    pub fn checkout(&self, instance: &Instance, address: Option<SocketAddr>) -> Option<Connection> {
        self.senders
            .take(&instance.label, address, self.idle_timeout)
    }

    /// Puts a hyper connection whose exchange finished back in the pool.
    pub fn checkin(&self, label: &Arc<str>, connection: Connection) {
        if !connection.sender.is_closed() {
            self.senders.put(label, connection, self.max_idle);
        }
    }

    /// An idle socket to `instance` that is still open and fresh enough, if any.
    pub fn take_socket(&self, instance: &Instance) -> Option<TcpStream> {
        self.sockets.take(&instance.label, None, self.idle_timeout)
    }

    /// Puts a socket whose exchange ended cleanly back in the pool.
    pub fn put_socket(&self, label: &Arc<str>, socket: TcpStream) {
        self.sockets.put(label, socket, self.max_idle);
    }

    /// A new TCP connection to `instance`, within the connect timeout, and the address it
    /// reached: its name is resolved anew; with `address`, to that address only, if the name
    /// still resolves to it; else to its addresses in turn, the next one after a failure.
    pub async fn connect_socket_to(
        &self,
        instance: &Instance,
        address: Option<SocketAddr>,
    ) -> Result<(TcpStream, SocketAddr), ConnectError> {
        let label = &instance.label;
        let (stream, reached) = tokio::time::timeout(self.connect_timeout, async {
            let resolved = self.resolver.resolve(instance.authority.as_str()).await?;
            let order = match address {
                Some(address) if resolved.contains(&address) => vec![address],
                Some(address) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("{label} no longer resolves to {address}"),
                    ));
                }
                None => instance.in_turn(resolved),
            };
            let mut failure = None;
            for address in order {
                match TcpStream::connect(address).await {
                    Ok(stream) => return Ok((stream, address)),
                    Err(error) => failure = Some(error),
                }
            }
            Err(failure.unwrap_or_else(|| io::ErrorKind::NotFound.into()))
        })
        .await
        .map_err(|_| ConnectError::Timeout(label.clone()))?
        .map_err(|error| ConnectError::Io(label.clone(), error))?;
        let _ = stream.set_nodelay(true);
        Ok((stream, reached))
    }

    /// A new TCP connection to one of `instance`'s addresses ([`Pool::connect_socket_to`]).
    pub async fn connect_socket(&self, instance: &Instance) -> Result<TcpStream, ConnectError> {
        Ok(self.connect_socket_to(instance, None).await?.0)
    }

    /// A new hyper connection to `instance` (to `address` only, when given:
    /// [`Pool::connect_socket_to`]); its I/O runs as a task on this thread.
    pub async fn connect(
        &self,
        instance: &Instance,
        address: Option<SocketAddr>,
    ) -> Result<Connection, ConnectError> {
        let (stream, address) = self.connect_socket_to(instance, address).await?;
        let (sender, connection) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|error| ConnectError::Handshake(instance.label.clone(), error))?;
        tokio::task::spawn_local(async move {
            // Ends when the upstream closes or the last sender is dropped.
            let _ = connection.with_upgrades().await;
        });
        Ok(Connection {
            sender,
            address,
            reused: false,
        })
    }

    /// A pooled connection to `instance` (to `address` only, when given) that is ready, if any.
    async fn ready(&self, instance: &Instance, address: Option<SocketAddr>) -> Option<Connection> {
        while let Some(mut connection) = self.checkout(instance, address) {
            // A pooled connection is idle, so it is ready at once or closed; never wait long on
            // one.
            if matches!(
                tokio::time::timeout(Duration::from_secs(1), connection.sender.ready()).await,
                Ok(Ok(()))
            ) {
                connection.reused = true;
                return Some(connection);
            }
        }
        None
    }

    /// A connection to `instance` for one request, pooled and ready or new (only new when
    /// `fresh`: the retry after a stale pooled connection). With `address` (a sticky session's
    /// replica) one to that address; when there is none and none can be made (the name no
    /// longer resolves to it, or it refuses), one to any address, as for every other request:
    /// the replica that gets it answers that it does not know the session.
    pub async fn for_request(
        &self,
        instance: &Instance,
        address: Option<SocketAddr>,
        fresh: bool,
    ) -> Result<Connection, ConnectError> {
        if let Some(address) = address {
            if !fresh && let Some(connection) = self.ready(instance, Some(address)).await {
                return Ok(connection);
            }
            if let Ok(connection) = self.connect(instance, Some(address)).await {
                return Ok(connection);
            }
        }
        if !fresh && let Some(connection) = self.ready(instance, None).await {
            return Ok(connection);
        }
        self.connect(instance, None).await
    }

    /// Drops idle connections past their idle timeout or closed (run now and then).
    pub fn sweep(&self) {
        self.senders.sweep(self.idle_timeout);
        self.sockets.sweep(self.idle_timeout);
    }
}
