//! The rooms' message history in the service's database (SQLite or PostgreSQL, one SQL for
//! both), capped per room, read a page at a time by `seq` (the order the server accepted the
//! messages in).
//!
//! Every statement here seeks the index `chat_messages (room, seq)`: a page, the newest page
//! and the cap-delete cost the same however many messages the table holds.

use db::Database;
use server::{ListPage, PageSql, Seek, Window};
use sqlx::Row;

use crate::protocol::ChatMessage;

/// The key column pages are cut on.
pub const KEY: &str = "seq";

/// Deletes a room's messages older than its cap-th newest (`$1`, `$2`: the room; `$3`: the cap
/// minus one). With fewer rows the sub-query is NULL and nothing is deleted.
pub const CAP_DELETE: &str = "DELETE FROM chat_messages WHERE room = $1 AND seq < \
     (SELECT seq FROM chat_messages WHERE room = $2 ORDER BY seq DESC LIMIT 1 OFFSET $3)";

/// The SQL of one page of a room's messages (`$1`: the room) and the values of its further
/// placeholders, in order.
pub fn page_query(page: &ListPage) -> (String, Vec<i64>) {
    let PageSql {
        condition,
        tail,
        binds,
    } = page.sql(KEY, 2);
    let condition = condition.map_or_else(String::new, |condition| format!(" AND {condition}"));
    (
        format!(
            "SELECT seq, id, room, user_name, user_id, text, created_at FROM chat_messages \
             WHERE room = $1{condition} {tail}"
        ),
        binds,
    )
}

/// Stores and reads chat messages.
#[derive(Clone, Debug)]
pub struct History {
    /// The database.
    database: Database,
    /// How many messages a room keeps; older ones are deleted as new ones arrive.
    cap: i64,
}

impl History {
    /// History on `database`, keeping at most `cap` messages per room.
    pub fn new(database: Database, cap: usize) -> Self {
        Self {
            database,
            cap: i64::try_from(cap.max(1)).unwrap_or(i64::MAX),
        }
    }

    /// Stores `message`, then deletes the room's messages beyond the cap ([`CAP_DELETE`]).
    pub async fn store(&self, message: &ChatMessage) -> Result<(), sqlx::Error> {
        let pool = self.database.pool();
        sqlx::query(
            "INSERT INTO chat_messages (id, room, user_name, user_id, text, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&message.id)
        .bind(&message.room)
        .bind(&message.user)
        .bind(message.user_id)
        .bind(&message.text)
        .bind(&message.timestamp)
        .execute(pool)
        .await?;
        sqlx::query(CAP_DELETE)
            .bind(&message.room)
            .bind(&message.room)
            .bind(self.cap - 1)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// The room's last `limit` messages, oldest first (what a joining client is sent).
    pub async fn recent(&self, room: &str, limit: usize) -> Result<Vec<ChatMessage>, sqlx::Error> {
        let page = ListPage {
            limit: i64::try_from(limit.min(server::MAX_LIMIT as usize)).unwrap_or(1),
            seek: Seek::End,
        };
        Ok(self.page(room, &page).await?.items)
    }

    /// One page of the room's messages, oldest first, with the `seq` keys the pages beside it
    /// start from.
    pub async fn page(
        &self,
        room: &str,
        page: &ListPage,
    ) -> Result<Window<ChatMessage>, sqlx::Error> {
        let (sql, binds) = page_query(page);
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(room);
        for value in binds {
            query = query.bind(value);
        }
        let rows = query
            .fetch_all(self.database.pool())
            .await?
            .iter()
            .map(|row| {
                let message = ChatMessage {
                    id: row.try_get("id")?,
                    room: row.try_get("room")?,
                    user: row.try_get("user_name")?,
                    user_id: row.try_get("user_id")?,
                    text: row.try_get("text")?,
                    timestamp: row.try_get("created_at")?,
                };
                Ok((row.try_get::<i64, _>("seq")?, message))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let window = page.window(rows, |(seq, _)| *seq);
        Ok(Window {
            items: window
                .items
                .into_iter()
                .map(|(_, message)| message)
                .collect(),
            next: window.next,
            prev: window.prev,
        })
    }
}
