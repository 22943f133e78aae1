//! `postCreated` across instances: each created post is published on a pub/sub channel
//! (`pubsub`: Redis when `REDIS_URL` is set, in-process otherwise), and every
//! subscription of every instance listens on it. What travels is [`PostCreated`], this
//! service's wire format, apart from the database row and from the GraphQL type.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use pubsub::PubSub;

use crate::model::PostRow;

/// The channel every instance publishes new posts on, by default.
pub const DEFAULT_CHANNEL: &str = "graphql.post_created";

/// The announcement of a stored post on the channel: a JSON object with these fields (every
/// instance of every version reads what the others write, so they change only together).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PostCreated {
    /// The post's id.
    pub id: i64,
    /// Its title.
    pub title: String,
    /// Its text, if any.
    pub content: Option<String>,
    /// The users-service id of its author.
    pub author_id: i64,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

impl From<&PostRow> for PostCreated {
    fn from(post: &PostRow) -> Self {
        Self {
            id: post.id,
            title: post.title.clone(),
            content: post.content.clone(),
            author_id: post.author_id,
            created_at: post.created_at.clone(),
        }
    }
}

impl From<PostCreated> for PostRow {
    fn from(event: PostCreated) -> Self {
        Self {
            id: event.id,
            title: event.title,
            content: event.content,
            author_id: event.author_id,
            created_at: event.created_at,
        }
    }
}

/// Publishes and follows new posts.
#[derive(Clone)]
pub struct PostEvents {
    /// Redis or in-process.
    pubsub: PubSub,
    /// The channel name (tests use their own, so they can share one Redis).
    channel: String,
    /// For publish failures.
    logger: slog::Logger,
}

impl PostEvents {
    /// Events on `channel` of `pubsub`.
    pub fn new(pubsub: PubSub, channel: String, logger: slog::Logger) -> Self {
        Self {
            pubsub,
            channel,
            logger,
        }
    }

    /// Announces a stored post. A failure is logged, not returned: the post is stored, and a
    /// missed notification must not turn a successful mutation into an error.
    pub async fn publish(&self, post: &PostRow) {
        let payload = match serde_json::to_vec(&PostCreated::from(post)) {
            Ok(payload) => Bytes::from(payload),
            Err(error) => {
                slog::error!(self.logger, "cannot encode a post event"; "error" => %error);
                return;
            }
        };
        if let Err(error) = self.pubsub.publish(&self.channel, payload).await {
            slog::warn!(self.logger, "post event not published";
                "post_id" => post.id, "error" => format!("{error:#}"));
        }
    }

    /// Every post announced from now on (`None` for a payload that does not decode).
    pub async fn subscribe(
        &self,
    ) -> anyhow::Result<impl Stream<Item = Option<PostCreated>> + Send + 'static> {
        let subscription = self.pubsub.subscribe(&self.channel).await?;
        Ok(subscription.map(|payload| serde_json::from_slice::<PostCreated>(&payload).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_format_is_a_flat_json_object() {
        let row = PostRow {
            id: 7,
            title: "T".to_owned(),
            content: None,
            author_id: 2,
            created_at: "2026-11-28T00:00:00Z".to_owned(),
        };
        let wire = serde_json::to_value(PostCreated::from(&row)).expect("encodes");
        assert_eq!(
            wire,
            serde_json::json!({"id": 7, "title": "T", "content": null, "author_id": 2,
                "created_at": "2026-11-28T00:00:00Z"})
        );
        let back: PostCreated = serde_json::from_value(wire).expect("decodes");
        assert_eq!(PostRow::from(back), row);
        assert!(serde_json::from_str::<PostCreated>(r#"{"id":"7"}"#).is_err());
    }
}
