//! Publish/subscribe between the instances of a service: Redis pub/sub when `REDIS_URL` is set,
//! channels inside the process otherwise. Chat rooms and GraphQL's `postCreated` run on
//! it.
//!
//! ```no_run
//! # async fn example(logger: slog::Logger) -> Result<(), pubsub::PubSubError> {
//! use futures_util::StreamExt;
//! use pubsub::PubSub;
//!
//! let pubsub = PubSub::connect(None, logger).await?; // Some("redis://…") for Redis
//! let mut subscription = pubsub.subscribe("posts").await?;
//! pubsub.publish("posts", bytes::Bytes::from_static(b"{\"id\":1}")).await?;
//! assert_eq!(subscription.next().await.as_deref(), Some(&b"{\"id\":1}"[..]));
//! # Ok(()) }
//! ```
//!
//! - [`PubSub::subscribe`] returns a [`Subscription`], a `Stream` of payloads; dropping it
//!   unsubscribes. Every subscriber of a channel in the process gets every message published
//!   on it (by this process or, with Redis, any other) after `subscribe` returned.
//! - With Redis, each process has ONE dedicated subscriber connection, whatever the number of
//!   channels and subscribers; messages are fanned out to the local subscribers. Publishing
//!   goes through a small pool of ordinary connections.
//! - When the subscriber connection breaks, it is re-established with exponential backoff
//!   (100 ms doubling to 5 s, with jitter) and every channel that still has subscribers is subscribed again.
//!   Messages published while it was down are lost (pub/sub is not a queue); `subscribe` called
//!   meanwhile returns at once and its channel is subscribed on reconnection. `check` fails
//!   while the connection is down.
//! - Each subscriber has its own queue, whose memory grows with its backlog only (an idle
//!   channel costs about a kilobyte). A subscriber more than [`CHANNEL_CAPACITY`] messages
//!   behind misses the newer ones rather than growing memory or slowing the publisher;
//!   [`Subscription::missed`] counts them.
//!
//! - [`PubSub::leases`] (Redis only): [`Leases`], keys held across instances by one holder at a
//!   time, through leases that lapse unless renewed (a chat name unique in its room). They
//!   need Redis 5 or later (their scripts read `TIME`) and one Redis, not a Cluster (their
//!   scripts touch several keys).
//! - **One Redis, several deployments**: lease keys live in the database of the URL's `/db`
//!   index, but pub/sub channels span every database of the server, so deployments sharing a
//!   Redis must use different channel names and lease keys (different prefixes), not only
//!   different `/db` indexes.
//!
//! # Modules (private; everything public is re-exported here)
//!
//! | module | holds |
//! |---|---|
//! | `handle` | [`PubSub`]: connect, publish, subscribe, check; the backend it runs on |
//! | `subscription` | [`Subscription`] and the guard that unsubscribes it on drop |
//! | `leases` | [`Leases`]: keys held across instances, taken, renewed and released by Lua scripts |
//! | `local` | the in-process fan-out: each channel's subscribers and their bounded queues, [`CHANNEL_CAPACITY`] |
//! | `redis` | the Redis backend: the one subscriber connection and its task (backoff, resubscription), the publishing pool |
//! | `error` | [`PubSubError`]; Redis errors are its boxed source, never a public type |

mod error;
mod handle;
mod leases;
mod local;
mod redis;
mod subscription;
#[cfg(test)]
mod tests;

pub use error::PubSubError;
pub use handle::PubSub;
pub use leases::{Lease, Leases};
pub use local::CHANNEL_CAPACITY;
pub use subscription::Subscription;
