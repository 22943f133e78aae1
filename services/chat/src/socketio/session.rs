//! An Engine.IO session as its transports share it: its id, its queue's two ends (the sending
//! side for the hub and the socket, the [`Outlet`] lent to one transport at a time), the
//! channel to its socket's task, its transport (polling, probing a WebSocket, upgraded), and
//! the [`Closer`] that ends it; and the sessions of this instance by id.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use base64::Engine as _;
use tokio::sync::Notify;

use crate::{
    closing::Closer,
    queue::OutboundQueue,
    socketio::{engine_packet::Packet, outlet::Outlet},
};

/// Which transport carries a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// Long-polling, with a WebSocket probing to take over.
    Probing,
    /// The WebSocket (from the start, or upgraded): polling requests are refused.
    WebSocket,
}

/// One Engine.IO session.
pub struct EngineSession {
    /// Its id (`sid`).
    pub sid: String,
    /// Its outbound queue: the hub's deliveries and the socket's own packets.
    pub outbound: OutboundQueue,
    /// The queue's reading side, while no transport holds it.
    outlet: Mutex<Option<Outlet>>,
    /// A transport gave the outlet back.
    returned: Notify,
    /// The pending `GET` answers `noop` at once (a WebSocket is taking over).
    flush: Notify,
    /// The packets the client sent, to its socket's task.
    pub incoming: flume::Sender<Packet>,
    /// Ends the session, whatever the cause.
    pub closer: Closer,
    transport: Mutex<Transport>,
    /// A `POST` is being read.
    posting: AtomicBool,
}

impl EngineSession {
    /// A session on `transport`, its queue read by `outlet`.
    pub fn new(
        outbound: OutboundQueue,
        outlet: Outlet,
        incoming: flume::Sender<Packet>,
        transport: Transport,
    ) -> Self {
        Self {
            sid: new_sid(),
            outbound,
            outlet: Mutex::new(Some(outlet)),
            returned: Notify::new(),
            flush: Notify::new(),
            incoming,
            closer: Closer::default(),
            transport: Mutex::new(transport),
            posting: AtomicBool::new(false),
        }
    }

    /// Its transport.
    pub fn transport(&self) -> Transport {
        *self.transport.lock().expect("transport lock")
    }

    /// Moves it from `from` to `to`; false (unchanged) if it is not on `from`.
    pub fn switch(&self, from: Transport, to: Transport) -> bool {
        let mut transport = self.transport.lock().expect("transport lock");
        if *transport != from {
            return false;
        }
        *transport = to;
        true
    }

    /// Lends the outlet, if no transport holds it; given back when the loan is dropped.
    pub fn lend_outlet(self: &Arc<Self>) -> Option<OutletLoan> {
        let outlet = self.outlet.lock().expect("outlet lock").take()?;
        Some(OutletLoan {
            session: self.clone(),
            outlet: Some(outlet),
        })
    }

    /// Takes the outlet for good if no transport holds it (a session on the WebSocket from
    /// the start).
    pub fn take_outlet_now(&self) -> Option<Outlet> {
        self.outlet.lock().expect("outlet lock").take()
    }

    /// Takes the outlet for good (the WebSocket after the upgrade), waiting for the transport
    /// that holds it to give it back; `None` if the session ends first.
    pub async fn take_outlet(&self) -> Option<Outlet> {
        loop {
            let mut returned = std::pin::pin!(self.returned.notified());
            // Registered before the check, so a return between the two is not missed.
            returned.as_mut().enable();
            if let Some(outlet) = self.take_outlet_now() {
                return Some(outlet);
            }
            tokio::select! {
                () = returned => {}
                _ = self.closer.closed() => return None,
            }
        }
    }

    /// Makes the pending `GET`, if any, answer `noop` at once.
    pub fn flush(&self) {
        self.flush.notify_waiters();
    }

    /// Resolves when [`Self::flush`] is called after it was enabled (or first polled).
    pub fn flushed(&self) -> tokio::sync::futures::Notified<'_> {
        self.flush.notified()
    }

    /// Marks a `POST` in progress; `None` if one already is (the guard ends it).
    pub fn start_post(self: &Arc<Self>) -> Option<PostGuard> {
        if self.posting.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(PostGuard(self.clone()))
    }
}

/// The outlet lent to one long-polling `GET`, given back when dropped (also when the request
/// is cut off).
pub struct OutletLoan {
    session: Arc<EngineSession>,
    outlet: Option<Outlet>,
}

impl OutletLoan {
    /// The outlet.
    pub fn outlet(&mut self) -> &mut Outlet {
        self.outlet.as_mut().expect("held until dropped")
    }
}

impl Drop for OutletLoan {
    fn drop(&mut self) {
        *self.session.outlet.lock().expect("outlet lock") = self.outlet.take();
        self.session.returned.notify_waiters();
    }
}

/// A `POST` in progress, ended when dropped.
pub struct PostGuard(Arc<EngineSession>);

impl Drop for PostGuard {
    fn drop(&mut self) {
        self.0.posting.store(false, Ordering::Release);
    }
}

/// A session id: 128 random bits, base64url.
fn new_sid() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// The sessions of this instance, by id; cheap to clone.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<HashMap<String, Arc<EngineSession>>>>);

impl Sessions {
    /// Adds a session.
    pub fn insert(&self, session: Arc<EngineSession>) {
        self.0
            .lock()
            .expect("sessions lock")
            .insert(session.sid.clone(), session);
    }

    /// The session `sid`, if it is open.
    pub fn get(&self, sid: &str) -> Option<Arc<EngineSession>> {
        self.0.lock().expect("sessions lock").get(sid).cloned()
    }

    /// Forgets a session that ended.
    pub fn remove(&self, sid: &str) {
        self.0.lock().expect("sessions lock").remove(sid);
    }

    /// Open sessions.
    pub fn len(&self) -> usize {
        self.0.lock().expect("sessions lock").len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
