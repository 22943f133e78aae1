//! Every open connection of this instance, by id, with the switch that closes it: shutdown
//! refuses new connections and closes the open ones through it.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use uuid::Uuid;

use crate::closing::{Closer, Disconnect};

/// The open connections; once shutdown begins, none is added.
#[derive(Default)]
pub(crate) struct Registry {
    connections: Mutex<HashMap<Uuid, Closer>>,
    /// Set under the `connections` lock, so no connection is added after
    /// [`Registry::close_all`] has closed the others.
    shutting_down: AtomicBool,
}

impl Registry {
    /// Whether shutdown has begun.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Registers an open connection; false when shutting down.
    pub(crate) fn track(&self, connection: Uuid, closer: Closer) -> bool {
        let mut connections = self.connections.lock().expect("connections lock");
        if self.is_shutting_down() {
            return false;
        }
        connections.insert(connection, closer);
        true
    }

    /// Forgets a connection that ended.
    pub(crate) fn untrack(&self, connection: Uuid) {
        self.connections
            .lock()
            .expect("connections lock")
            .remove(&connection);
    }

    /// Begins shutdown: closes every open connection with 1001 and waits up to `timeout` for
    /// them to be untracked.
    pub(crate) async fn close_all(&self, timeout: Duration) {
        {
            let connections = self.connections.lock().expect("connections lock");
            self.shutting_down.store(true, Ordering::SeqCst);
            for closer in connections.values() {
                closer.close(Disconnect::Shutdown);
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while !self
            .connections
            .lock()
            .expect("connections lock")
            .is_empty()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
