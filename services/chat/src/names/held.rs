//! Who holds which name in which room on this instance: the state [`super::RoomNames`] keeps
//! and [`super::shared`] renews the leases of.

use std::collections::HashMap;

use uuid::Uuid;

/// Who holds a name in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Holder {
    /// An account: all its connections share its name.
    Account(i64),
    /// A guest's connection.
    Guest(Uuid),
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Account(id) => write!(f, "account:{id}"),
            Self::Guest(id) => write!(f, "guest:{}", id.simple()),
        }
    }
}

/// A name held in a room.
#[derive(Debug)]
pub struct Held {
    /// Who holds it.
    pub holder: Holder,
    /// The connections holding it (several for one account).
    pub connections: usize,
    /// Its lease in Redis (with [`super::SharedNames`]): made when the name is first held here.
    pub lease: String,
}

/// The names held here: by room, by [`super::name_key`].
pub type Rooms = HashMap<String, HashMap<String, Held>>;
