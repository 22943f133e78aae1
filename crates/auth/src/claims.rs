//! What an access token says, and what a verified one proves.

use serde::{Deserialize, Serialize};

/// A role a user holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every signed-in account.
    User,
    /// May act on anything.
    Admin,
}

impl Role {
    /// Its name in tokens and the database (`user`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who issued it.
    pub iss: String,
    /// Who it is for.
    pub aud: String,
    /// The user's id, as a decimal string.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issue time, seconds since the epoch.
    pub iat: u64,
    /// Not valid before, seconds since the epoch (absent: from `iat` on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The token's own id.
    pub jti: String,
    /// The user's roles.
    pub roles: Vec<Role>,
    /// The user's display name when the token was issued (chat names signed-in users by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The caller a verified token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user's id (`sub`).
    pub user_id: i64,
    /// The user's display name (the `name` claim), when the token carries one.
    pub name: Option<std::sync::Arc<str>>,
    /// Whether the token carries the `admin` role.
    pub admin: bool,
    /// When the token stops being valid, seconds since the epoch.
    pub expires_at: u64,
}

impl Principal {
    /// The principal of verified claims; `None` when `sub` is not a positive integer.
    pub(crate) fn from_claims(claims: &Claims) -> Option<Self> {
        let user_id: i64 = claims.sub.parse().ok().filter(|id| *id > 0)?;
        Some(Self {
            user_id,
            name: claims.name.as_deref().map(std::sync::Arc::from),
            admin: claims.roles.contains(&Role::Admin),
            expires_at: claims.exp,
        })
    }

    /// Whether this caller may act on what user `owner` owns: that user themself or an admin.
    pub fn may_act_for(&self, owner: i64) -> bool {
        self.admin || self.user_id == owner
    }
}
