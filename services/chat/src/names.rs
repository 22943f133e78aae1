//! The names clients chat under: cleaned ([`clean`]: NFC, no control or invisible characters)
//! and unique in a room ([`RoomNames`]: compared by [`name_key`], caseless).
//!
//! Names come from tokens (an account's `name` claim) or from the server (`guest-xxxx`); the
//! chat never refuses a connection for its name: it shows a clean one instead.
//!
//! - **Cleaned.** Unicode NFC, so one name has one spelling; control characters and the
//!   invisible ones of [`server::is_invisible`] (zero-width characters, joiners,
//!   direction overrides and isolates, the byte-order mark) dropped, since they make a name
//!   read as another (`"\u{202E}ecilA"` shows as "Alice"); trimmed; at most
//!   [`MAX_NAME_CHARS`] characters. users-service refuses such names at sign-up; the chat
//!   strips them from whatever a token carries.
//! - **Unique in a room**, compared caseless after NFKC (`Alice`, `ALICE` and the full-width
//!   `Ａｌｉｃｅ` are one name). The connections of one account share its name (one person,
//!   several tabs). Another account whose name is taken gets the first free `"<name> (2)"`,
//!   `"<name> (3)"`, …; a guest whose drawn name is taken draws again. The first to join keeps
//!   the plain name until every connection holding it has left.
//! - **Across instances** with Redis ([`shared`]): a name is also taken in Redis, one lease per
//!   instance holding it, renewed while held and lapsing when its instance dies; a name another
//!   instance holds for another identity is taken as a local one is (a suffix, another draw).
//!   Redis failing: the local rule alone (see [`shared`]). In-process pub/sub: this instance
//!   is the only one, its registry the whole truth.

mod held;
pub mod shared;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use pubsub::Leases;
use server::{MAX_NAME_CHARS, is_invisible};
use slog::Logger;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

pub use self::held::Holder;
use self::held::{Held, Rooms};
pub use self::shared::SharedNames;

/// A name as shown: NFC, without control or invisible characters, trimmed, at most
/// [`MAX_NAME_CHARS`] characters (possibly empty: the caller picks a fallback).
pub fn clean(name: &str) -> String {
    let visible: String = name
        .nfc()
        .filter(|c| !c.is_control() && !is_invisible(*c))
        .collect();
    let bounded: String = visible.trim().chars().take(MAX_NAME_CHARS).collect();
    bounded.trim_end().to_owned()
}

/// What two names are compared by: NFKC, lowercase, NFKC again (lowercasing may leave a
/// string that is not normalised).
pub fn name_key(name: &str) -> String {
    name.nfkc().flat_map(char::to_lowercase).nfkc().collect()
}

/// The names held in each room on this instance, and in Redis with every instance's;
/// cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct RoomNames {
    local: Arc<Mutex<Rooms>>,
    /// `None`: this instance is the only one.
    shared: Option<SharedNames>,
}

/// Guests draw at most this many names before one gets a suffix (65 536 guest names: a room
/// that has taken this many draws is as good as full).
const GUEST_DRAWS: usize = 16;

impl RoomNames {
    /// Names held here and, with `leases` (Redis), across every instance on it (see
    /// [`SharedNames`]; starts the task renewing this instance's leases, within a tokio runtime):
    /// their keys under `prefix` (the chat's channel prefix), each lease lasting `lease`.
    pub fn new(leases: Option<Leases>, prefix: &str, lease: Duration, logger: Logger) -> Self {
        let local = Arc::new(Mutex::new(Rooms::new()));
        let shared = leases.map(|leases| {
            SharedNames::start(leases, prefix, lease, Arc::downgrade(&local), logger)
        });
        Self { local, shared }
    }

    /// Takes a name in `room` for `holder`, who wants `wanted` (already [`clean`]): `wanted`
    /// itself when no one else holds it, else (an account) `wanted` with the first free suffix,
    /// or (a guest) the first free name `draw` gives. Held until the claim is dropped.
    pub async fn claim(
        &self,
        room: &str,
        holder: Holder,
        wanted: &str,
        mut draw: impl FnMut() -> String,
    ) -> NameClaim {
        let mut name = wanted.to_owned();
        let mut draws = 0;
        let mut suffixed: Option<(String, u64)> = None;
        loop {
            if let Some(claim) = self.take(room, holder, &name).await {
                return claim;
            }
            name = match (&mut suffixed, holder) {
                (None, Holder::Guest(_)) if draws < GUEST_DRAWS => {
                    draws += 1;
                    draw()
                }
                (None, _) => {
                    suffixed = Some((name, 2));
                    with_suffix(&suffixed.as_ref().expect("just set").0, 2)
                }
                (Some((base, n)), _) => {
                    *n += 1;
                    with_suffix(base, *n)
                }
            };
        }
    }

    /// Takes `name` for `holder` when it is free here and (with Redis) everywhere.
    async fn take(&self, room: &str, holder: Holder, name: &str) -> Option<NameClaim> {
        let key = name_key(name);
        // This holder's new lease in Redis, once taken; released unless the name is held here
        // through it (see `PendingLease`).
        let mut lease: Option<PendingLease<'_>> = None;
        loop {
            let here = self
                .local()
                .get(room)
                .and_then(|names| names.get(&key))
                .map(|held| held.holder);
            match (&self.shared, here) {
                (_, Some(other)) if other != holder => return None,
                (Some(shared), None) if lease.is_none() => {
                    let pending = PendingLease::new(shared, room, &key);
                    if !shared.take(room, &key, holder, pending.id()).await {
                        // Refused: Redis recorded nothing.
                        pending.disarm();
                        return None;
                    }
                    lease = Some(pending);
                }
                _ => {}
            }
            let mut rooms = self.local();
            let names = rooms.entry(room.to_owned()).or_default();
            match names.get_mut(&key) {
                Some(held) if held.holder == holder => held.connections += 1,
                // Another holder took it here while Redis answered.
                Some(_) => {}
                None if self.shared.is_some() && lease.is_none() => {
                    // This holder's connections let it go meanwhile: take it in Redis.
                    if names.is_empty() {
                        rooms.remove(room);
                    }
                    continue;
                }
                None => {
                    let lease = lease.take().map(PendingLease::disarm).unwrap_or_default();
                    names.insert(
                        key.clone(),
                        Held {
                            holder,
                            connections: 1,
                            lease,
                        },
                    );
                }
            }
            let held = names.get(&key).is_some_and(|held| held.holder == holder);
            drop(rooms);
            // A lease not kept (the name was held here already, or taken by another) goes back.
            drop(lease);
            return held.then(|| NameClaim {
                names: self.clone(),
                room: room.to_owned(),
                key,
                name: name.to_owned(),
            });
        }
    }

    /// Returns once the releases of names let go so far are done in Redis (or failed): for
    /// shutdown, so the names of a stopping instance are free at once, not after their lease.
    pub async fn flush(&self) {
        if let Some(shared) = &self.shared {
            shared.flush().await;
        }
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Rooms> {
        self.local.lock().expect("names lock")
    }

    /// Rooms with names held (memory: none is kept for an empty room).
    pub fn rooms(&self) -> usize {
        self.local().len()
    }

    fn release(&self, room: &str, key: &str) {
        let mut rooms = self.local();
        let Some(names) = rooms.get_mut(room) else {
            return;
        };
        if let Some(held) = names.get_mut(key) {
            held.connections -= 1;
            if held.connections == 0
                && let Some(held) = names.remove(key)
                && let Some(shared) = &self.shared
            {
                shared.release(room, key, held.lease);
            }
        }
        if names.is_empty() {
            rooms.remove(room);
        }
    }
}

/// A lease taken (or being taken) in Redis for a name not yet held here: released when dropped
/// armed, so a claim dropped while Redis answers (its client gone mid-handshake) leaves no
/// lease that no [`Held`] records, which would keep the name taken for a whole lease time.
struct PendingLease<'a> {
    shared: &'a SharedNames,
    room: &'a str,
    key: &'a str,
    /// `None` once disarmed.
    id: Option<String>,
}

impl<'a> PendingLease<'a> {
    /// A new lease id for `key` in `room`, armed before Redis is asked.
    fn new(shared: &'a SharedNames, room: &'a str, key: &'a str) -> Self {
        Self {
            shared,
            room,
            key,
            id: Some(Uuid::new_v4().simple().to_string()),
        }
    }

    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// The lease id, no longer released on drop (held here, or never recorded in Redis).
    fn disarm(mut self) -> String {
        self.id.take().unwrap_or_default()
    }
}

impl Drop for PendingLease<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.shared.release(self.room, self.key, id);
        }
    }
}

/// `"<base> (<n>)"`, the base shortened so the whole stays within [`MAX_NAME_CHARS`].
fn with_suffix(base: &str, n: u64) -> String {
    let suffix = format!(" ({n})");
    let room_for_base = MAX_NAME_CHARS.saturating_sub(suffix.chars().count());
    let base: String = base.chars().take(room_for_base).collect();
    format!("{}{suffix}", base.trim_end())
}

/// A connection's name in its room, released when dropped.
#[derive(Debug)]
pub struct NameClaim {
    names: RoomNames,
    room: String,
    key: String,
    /// The name the connection chats under.
    name: String,
}

impl NameClaim {
    /// The name the connection chats under.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for NameClaim {
    fn drop(&mut self) {
        self.names.release(&self.room, &self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_draws() -> String {
        panic!("an account draws no names")
    }

    #[test]
    fn names_are_nfc_without_invisible_or_control_characters() {
        // "A" and a combining ring is "Å" in NFC.
        assert_eq!(clean("A\u{30A}ngstr\u{F6}m"), "\u{C5}ngstr\u{F6}m");
        assert_eq!(clean("\u{202E}ecilA\u{200B}"), "ecilA");
        assert_eq!(clean(" Ali\u{200D}ce\u{2066} \u{7}"), "Alice");
        assert_eq!(clean("\u{FEFF}\u{200B}"), "");
        assert_eq!(clean(&"é".repeat(300)).chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn keys_are_caseless_and_compatibility_normalised() {
        assert_eq!(name_key("Alice"), name_key("aLICE"));
        assert_eq!(
            name_key("Alice"),
            name_key("\u{FF21}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}")
        );
        assert_eq!(name_key("\u{C5}sa"), name_key("a\u{30A}SA"));
        assert_ne!(name_key("Alice"), name_key("Alicia"));
    }

    #[tokio::test]
    async fn a_second_account_with_a_taken_name_gets_a_suffix() {
        let names = RoomNames::default();
        let first = names
            .claim("general", Holder::Account(1), "Alice", no_draws)
            .await;
        let second = names
            .claim("general", Holder::Account(2), "alice", no_draws)
            .await;
        let third = names
            .claim("general", Holder::Account(3), "ALICE", no_draws)
            .await;
        assert_eq!(first.name(), "Alice");
        assert_eq!(second.name(), "alice (2)");
        assert_eq!(third.name(), "ALICE (3)");
        // Another room is another namespace.
        let elsewhere = names
            .claim("other", Holder::Account(2), "alice", no_draws)
            .await;
        assert_eq!(elsewhere.name(), "alice");
        // An account named like a suffixed name does not take it from its holder.
        let sly = names
            .claim("general", Holder::Account(4), "Alice (2)", no_draws)
            .await;
        assert_eq!(sly.name(), "Alice (2) (2)");
    }

    #[tokio::test]
    async fn one_account_keeps_one_name_over_its_connections() {
        let names = RoomNames::default();
        let tab = names
            .claim("general", Holder::Account(1), "Alice", no_draws)
            .await;
        let other_tab = names
            .claim("general", Holder::Account(1), "Alice", no_draws)
            .await;
        assert_eq!(other_tab.name(), "Alice");
        drop(tab);
        // Still held by the other tab.
        let impostor = names
            .claim("general", Holder::Account(2), "Alice", no_draws)
            .await;
        assert_eq!(impostor.name(), "Alice (2)");
        drop(other_tab);
        drop(impostor);
        assert_eq!(names.rooms(), 0, "released names leave nothing behind");
        let later = names
            .claim("general", Holder::Account(2), "Alice", no_draws)
            .await;
        assert_eq!(later.name(), "Alice");
    }

    #[tokio::test]
    async fn a_guest_whose_name_is_taken_draws_another() {
        let names = RoomNames::default();
        let first = names
            .claim(
                "general",
                Holder::Guest(Uuid::new_v4()),
                "guest-0001",
                || panic!("the first guest keeps its name"),
            )
            .await;
        let mut drawn = vec!["guest-0001".to_owned(), "guest-0002".to_owned()];
        let second = names
            .claim(
                "general",
                Holder::Guest(Uuid::new_v4()),
                "guest-0001",
                || drawn.remove(0),
            )
            .await;
        assert_eq!(first.name(), "guest-0001");
        assert_eq!(second.name(), "guest-0002");
        // Two guests are two people even with one name drawn.
        let unlucky = names
            .claim(
                "general",
                Holder::Guest(Uuid::new_v4()),
                "guest-0001",
                || "guest-0001".to_owned(),
            )
            .await;
        assert_eq!(unlucky.name(), "guest-0001 (2)");
    }

    #[tokio::test]
    async fn suffixed_names_stay_within_the_limit() {
        let names = RoomNames::default();
        let long = "n".repeat(MAX_NAME_CHARS);
        let _first = names
            .claim("general", Holder::Account(1), &long, no_draws)
            .await;
        let second = names
            .claim("general", Holder::Account(2), &long, no_draws)
            .await;
        assert_eq!(second.name().chars().count(), MAX_NAME_CHARS);
        assert!(second.name().ends_with(" (2)"));
    }
}
