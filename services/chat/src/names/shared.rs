//! Names unique in a room across the instances on one Redis: each name held here is also a
//! [`pubsub::Leases`] key, `<channel prefix>:name:<room length>:<room>:<name key>`, held for its
//! holder (`account:<id>` or `guest:<id>`) through one lease per instance.
//!
//! - **Taken** when first held here, before the name is given: a name another instance holds
//!   for another identity is refused, and the claim moves on to the next candidate as it does
//!   for a name held here.
//! - **Renewed** every third of [`Settings::name_lease`](crate::Settings::name_lease), all of
//!   this instance's names in one round trip, by one task; renewing takes a name back when its
//!   key was lost (a Redis restart). A name another identity took meanwhile (only possible
//!   after Redis lost it, or this instance could not renew for a whole lease) stays with the
//!   connections holding it here and is logged.
//! - **Released** by the same task, in order with the renewals (so a renewal never brings a
//!   released lease back), when the last connection here holding it leaves, or when a claim
//!   is dropped while Redis takes its lease (a client gone mid-handshake). The releases waiting
//!   go in one round trip; at shutdown [`SharedNames::flush`] sends the last ones. An instance
//!   that dies releases nothing: its leases lapse after one lease time.
//! - **Redis failing** (error or 2 s timeout): the name is given by the local rule alone
//!   (logged), and taken in Redis by the next renewal that reaches it. Failing open keeps the
//!   chat's semantics when Redis is down: clients still connect and read their room (readiness
//!   reports the `pubsub` check as failing), and while Redis is down no event
//!   crosses instances, so the only names a client sees side by side are its instance's, which
//!   stay unique; refusing every join instead would turn a Redis outage into a chat outage for
//!   a guarantee nobody could observe meanwhile.

use std::{
    sync::{Mutex, Weak},
    time::Duration,
};

use pubsub::{Lease, Leases};
use slog::Logger;
use tokio::sync::{mpsc, oneshot};

use super::held::{Holder, Rooms};

/// What the keeper task is handed, done in order.
#[derive(Debug)]
enum Chore {
    /// Release lease `.1` of Redis key `.0`.
    Release(String, String),
    /// Answer once every release handed over before is done (or failed).
    Flush(oneshot::Sender<()>),
}

/// This instance's names in Redis; cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedNames {
    leases: Leases,
    /// `<channel prefix>:name:`.
    prefix: String,
    ttl: Duration,
    /// To the keeper task, which releases in order with its renewals.
    chores: mpsc::UnboundedSender<Chore>,
    logger: Logger,
}

impl SharedNames {
    /// Starts the keeper task, renewing the leases of the names in `local` every `ttl / 3`
    /// and releasing what [`SharedNames::release`] hands it; it ends with the names.
    pub(super) fn start(
        leases: Leases,
        channel_prefix: &str,
        ttl: Duration,
        local: Weak<Mutex<Rooms>>,
        logger: Logger,
    ) -> Self {
        let (chores, pending) = mpsc::unbounded_channel();
        let shared = Self {
            leases,
            prefix: format!("{channel_prefix}:name:"),
            ttl,
            chores,
            logger,
        };
        tokio::spawn(shared.clone().keep(local, pending));
        shared
    }

    /// The Redis key of a name in a room (the room's length first, so no two pairs meet).
    fn key(&self, room: &str, name_key: &str) -> String {
        format!("{}{}:{room}:{name_key}", self.prefix, room.len())
    }

    /// Takes `name_key` in `room` for `holder` through `lease`: false when another identity
    /// holds it on another instance; true when Redis fails (the local rule alone, logged).
    pub(super) async fn take(
        &self,
        room: &str,
        name_key: &str,
        holder: Holder,
        lease: &str,
    ) -> bool {
        let key = self.key(room, name_key);
        let holder = holder.to_string();
        let lease = Lease {
            key: &key,
            holder: &holder,
            id: lease,
        };
        match self.leases.take(&[lease], self.ttl).await {
            Ok(taken) => taken.first().copied().unwrap_or(true),
            Err(error) => {
                slog::warn!(self.logger, "name not checked across instances (Redis failed)";
                    "room" => room, "error" => %error);
                true
            }
        }
    }

    /// Hands `lease` of `name_key` in `room` to the keeper task, which releases it.
    pub(super) fn release(&self, room: &str, name_key: &str, lease: String) {
        // The keeper ends only once every handle is gone; a send cannot fail before.
        let _ = self
            .chores
            .send(Chore::Release(self.key(room, name_key), lease));
    }

    /// Returns once every release handed over before is done or failed (each round trip
    /// within 2 s), so a stopping instance leaves none of its names behind.
    pub(super) async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.chores.send(Chore::Flush(done)).is_ok() {
            let _ = flushed.await;
        }
    }

    /// The keeper task: releases in the order they come (those waiting together in one round
    /// trip), renews every `ttl / 3`.
    async fn keep(self, local: Weak<Mutex<Rooms>>, mut pending: mpsc::UnboundedReceiver<Chore>) {
        let mut renew = tokio::time::interval(self.ttl / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.tick().await;
        loop {
            tokio::select! {
                chore = pending.recv() => {
                    let Some(chore) = chore else { return };
                    let mut chores = vec![chore];
                    while let Ok(chore) = pending.try_recv() {
                        chores.push(chore);
                    }
                    self.do_chores(chores).await;
                }
                _ = renew.tick() => {
                    let Some(local) = local.upgrade() else { return };
                    let held = self.held(&local);
                    drop(local);
                    self.renew(&held).await;
                }
            }
        }
    }

    /// Every release of `chores` in one round trip, then answers their flushes.
    async fn do_chores(&self, chores: Vec<Chore>) {
        let mut releases = Vec::new();
        let mut flushes = Vec::new();
        for chore in chores {
            match chore {
                Chore::Release(key, lease) => releases.push((key, lease)),
                Chore::Flush(done) => flushes.push(done),
            }
        }
        let releases: Vec<(&str, &str)> = releases
            .iter()
            .map(|(key, lease)| (key.as_str(), lease.as_str()))
            .collect();
        if let Err(error) = self.leases.release(&releases).await {
            // They lapse by themselves within one lease time.
            slog::warn!(self.logger, "name leases not released";
                "names" => releases.len(), "error" => %error);
        }
        for done in flushes {
            let _ = done.send(());
        }
    }

    /// (Redis key, holder, lease) of every name held here.
    fn held(&self, local: &Mutex<Rooms>) -> Vec<(String, String, String)> {
        let rooms = local.lock().expect("names lock");
        rooms
            .iter()
            .flat_map(|(room, names)| {
                names.iter().map(move |(name_key, held)| {
                    (
                        self.key(room, name_key),
                        held.holder.to_string(),
                        held.lease.clone(),
                    )
                })
            })
            .collect()
    }

    async fn renew(&self, held: &[(String, String, String)]) {
        let leases: Vec<Lease<'_>> = held
            .iter()
            .map(|(key, holder, id)| Lease { key, holder, id })
            .collect();
        match self.leases.take(&leases, self.ttl).await {
            Ok(taken) => {
                for (lease, _) in leases.iter().zip(taken).filter(|(_, taken)| !taken) {
                    slog::warn!(self.logger, "a name held here is held by another identity elsewhere";
                        "key" => lease.key, "holder" => lease.holder);
                }
            }
            Err(error) => {
                slog::warn!(self.logger, "name leases not renewed"; "names" => leases.len(), "error" => %error);
            }
        }
    }
}
