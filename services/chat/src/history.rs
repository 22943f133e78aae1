//! The rooms' message history in the service's database (SQLite or PostgreSQL, one SQL for
//! both), capped per room.

use shared::db::Database;
use sqlx::Row;

use crate::protocol::ChatMessage;

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

    /// Stores `message`, then deletes the room's messages beyond the cap.
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
        // The newest `cap` rows stay: everything before the cap-th newest goes. With fewer
        // rows the sub-query is NULL and nothing is deleted.
        sqlx::query(
            "DELETE FROM chat_messages WHERE room = $1 AND seq < \
             (SELECT seq FROM chat_messages WHERE room = $2 ORDER BY seq DESC LIMIT 1 OFFSET $3)",
        )
        .bind(&message.room)
        .bind(&message.room)
        .bind(self.cap - 1)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// The room's last `limit` messages, oldest first.
    pub async fn recent(&self, room: &str, limit: usize) -> Result<Vec<ChatMessage>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, room, user_name, user_id, text, created_at FROM chat_messages \
             WHERE room = $1 ORDER BY seq DESC LIMIT $2",
        )
        .bind(room)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.database.pool())
        .await?;
        let mut messages = rows
            .iter()
            .map(|row| {
                Ok(ChatMessage {
                    id: row.try_get("id")?,
                    room: row.try_get("room")?,
                    user: row.try_get("user_name")?,
                    user_id: row.try_get("user_id")?,
                    text: row.try_get("text")?,
                    timestamp: row.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        messages.reverse();
        Ok(messages)
    }
}
