//! The open client connections and tunnels of one server thread, counted so the drain can wait
//! for them.

use std::{cell::Cell, rc::Rc};

use tokio::sync::Notify;

/// Counts a thread's open client connections and tunnels, so the drain can wait for them.
#[derive(Default)]
pub struct Tracker {
    /// Open now.
    open: Cell<usize>,
    /// Woken when the count drops to zero.
    idle: Notify,
}

/// Holds one place in a [`Tracker`] until dropped.
pub struct OpenGuard(Rc<Tracker>);

impl Tracker {
    /// How many are open now.
    pub fn open_now(&self) -> usize {
        self.open.get()
    }

    /// Counts one more until the guard is dropped.
    pub fn open(self: &Rc<Self>) -> OpenGuard {
        self.open.set(self.open.get() + 1);
        OpenGuard(self.clone())
    }

    /// Resolves once nothing is open.
    pub async fn wait_idle(&self) {
        while self.open.get() > 0 {
            self.idle.notified().await;
        }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let open = self.0.open.get() - 1;
        self.0.open.set(open);
        if open == 0 {
            self.0.idle.notify_waiters();
        }
    }
}
