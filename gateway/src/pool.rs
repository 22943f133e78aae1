//! Each server thread's own pool of keep-alive connections to the upstreams.
//!
//! A thread serves its clients on one single-threaded runtime, so its pool needs no locks: idle
//! connections wait in a `RefCell`'d list per instance. A connection goes back to the list when
//! the response body it carried has been read to the end, and is dropped instead when it has
//! been idle longer than `pool_idle_timeout_ms` (below the upstreams' own keep-alive, so the
//! gateway never picks a connection its upstream is closing).

use std::{cell::RefCell, collections::HashMap, sync::Arc, time::Duration};

use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::{body::RequestBody, upstream::Instance};

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

struct IdleConnection {
    sender: SendRequest<RequestBody>,
    idle_since: Instant,
}

/// One thread's upstream connections.
pub struct Pool {
    /// Idle connections by instance (`host:port`).
    idle: RefCell<HashMap<Arc<str>, Vec<IdleConnection>>>,
    /// Idle connections older than this are dropped.
    idle_timeout: Duration,
    /// Idle connections kept per instance.
    max_idle: usize,
    /// TCP connect timeout.
    connect_timeout: Duration,
}

impl Pool {
    /// An empty pool.
    pub fn new(idle_timeout: Duration, max_idle: usize, connect_timeout: Duration) -> Self {
        Self {
            idle: RefCell::new(HashMap::new()),
            idle_timeout,
            max_idle,
            connect_timeout,
        }
    }

    /// An idle connection to `instance` that is still open and fresh enough, if any; the caller
    /// waits for it to be ready (a closed one fails there and is dropped).
    pub fn checkout(&self, instance: &Instance) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&instance.label)?;
        while let Some(connection) = list.pop() {
            if !connection.sender.is_closed() && connection.idle_since.elapsed() < self.idle_timeout
            {
                return Some(connection.sender);
            }
        }
        None
    }

    /// Puts a connection whose exchange finished back in the pool.
    pub fn checkin(&self, label: &Arc<str>, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(label.clone()).or_default();
        if list.len() < self.max_idle {
            list.push(IdleConnection {
                sender,
                idle_since: Instant::now(),
            });
        }
    }

    /// A new connection to `instance`; its I/O runs as a task on this thread.
    pub async fn connect(
        &self,
        instance: &Instance,
    ) -> Result<SendRequest<RequestBody>, ConnectError> {
        let label = &instance.label;
        let stream = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(instance.authority.as_str()),
        )
        .await
        .map_err(|_| ConnectError::Timeout(label.clone()))?
        .map_err(|error| ConnectError::Io(label.clone(), error))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|error| ConnectError::Handshake(label.clone(), error))?;
        tokio::task::spawn_local(async move {
            // Ends when the upstream closes or the last sender is dropped.
            let _ = connection.with_upgrades().await;
        });
        Ok(sender)
    }

    /// Drops idle connections past their idle timeout (run now and then).
    pub fn sweep(&self) {
        let mut idle = self.idle.borrow_mut();
        for list in idle.values_mut() {
            list.retain(|connection| {
                !connection.sender.is_closed()
                    && connection.idle_since.elapsed() < self.idle_timeout
            });
        }
    }
}
