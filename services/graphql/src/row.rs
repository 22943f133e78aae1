//! A stored post as the database, the page cache and the `postCreated` announcements carry it.

use serde::{Deserialize, Serialize};

/// A stored post (docs/contracts.md's Post resource).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PostRow {
    /// Its id.
    pub id: i64,
    /// Its title (1–300 characters).
    pub title: String,
    /// Its text (at most 100 000 characters), if any.
    pub content: Option<String>,
    /// The users-service id of its author.
    pub author_id: i64,
    /// When it was created (RFC 3339).
    pub created_at: String,
}
