//! `postCreated` across instances: each created post is published on a pub/sub channel
//! (`pubsub`: Redis when `REDIS_URL` is set, in-process otherwise), and every
//! subscription of every instance listens on it.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use pubsub::PubSub;

use crate::row::PostRow;

/// The channel every instance publishes new posts on, by default.
pub const DEFAULT_CHANNEL: &str = "graphql.post_created";

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
        let payload = match serde_json::to_vec(post) {
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
    ) -> anyhow::Result<impl Stream<Item = Option<PostRow>> + Send + 'static> {
        let subscription = self.pubsub.subscribe(&self.channel).await?;
        Ok(subscription.map(|payload| serde_json::from_slice::<PostRow>(&payload).ok()))
    }
}
