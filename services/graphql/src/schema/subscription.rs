//! The type `Subscription`: `postCreated`, every post created by any instance, as
//! [`crate::events`] announces it.

use async_graphql::{Context, Result, Subscription};
use futures_util::{Stream, StreamExt};

use super::{
    errors::{coded_error, codes},
    state::state,
    types::Post,
};
use crate::model::PostRow;

/// The subscriptions: the type `Subscription`.
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Every post created from now on, by any instance of this service.
    async fn post_created(&self, context: &Context<'_>) -> Result<impl Stream<Item = Post>> {
        let stream = state(context).events.subscribe().await.map_err(|error| {
            slog::error!(state(context).logger, "cannot subscribe to new posts";
                "error" => format!("{error:#}"));
            coded_error(codes::UPSTREAM_UNAVAILABLE, "cannot subscribe to new posts")
        })?;
        Ok(stream
            .filter_map(|event| async move { event.map(|event| Post::from(PostRow::from(event))) }))
    }
}
