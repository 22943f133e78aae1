//! What every resolver reaches through the context: [`AppState`] (the posts, the clients of
//! the other services, the pub/sub events), what an upstream call passes on ([`relay`]), and
//! how a database failure reaches the client (opaque, its cause logged).

use std::sync::Arc;

use async_graphql::{Context, Error};

use super::{
    caller::{CallerRequestId, CallerTrace},
    errors::{coded_error, codes},
};
use crate::{
    access::UpstreamAuth,
    budget::OperationBudget,
    events::PostEvents,
    posts::PostRepository,
    upstream::{ProductsClient, Relay, UsersClient},
};

/// What every resolver reaches through the context.
#[derive(Clone)]
pub struct AppState {
    /// Posts, in this service's database.
    pub posts: PostRepository,
    /// users-service.
    pub users: UsersClient,
    /// products-service.
    pub products: ProductsClient,
    /// `postCreated` across instances.
    pub events: PostEvents,
    /// For causes that clients must not see.
    pub logger: slog::Logger,
}

/// The state the schema was built with.
pub(crate) fn state<'a>(context: &Context<'a>) -> &'a AppState {
    context.data_unchecked::<AppState>()
}

/// What an upstream call of this operation passes on: its request id, trace context and
/// caller's token.
pub(crate) fn relay<'a>(context: &Context<'a>) -> Relay<'a> {
    Relay {
        request_id: context
            .data_opt::<CallerRequestId>()
            .map_or("", |id| id.0.as_str()),
        trace: context.data_opt::<CallerTrace>().map(|trace| &trace.0),
        authorization: context
            .data_opt::<UpstreamAuth>()
            .and_then(|upstream| upstream.0.as_deref()),
        budget: context.data_opt::<Arc<OperationBudget>>().map(Arc::as_ref),
    }
}

/// A database failure of a loader, logged; opaque to the client.
pub(crate) fn loader_database_error(context: &Context<'_>, error: &sqlx::Error) -> Error {
    slog::error!(state(context).logger, "database error"; "error" => format!("{error:#}"));
    coded_error(codes::INTERNAL, "internal error")
}

/// A database failure: logged with its cause by the caller's context, opaque to the client.
pub(crate) fn database_error(context: &Context<'_>, error: sqlx::Error) -> Error {
    if let Ok(state) = context.data::<AppState>() {
        slog::error!(state.logger, "database error"; "error" => format!("{error:#}"));
    }
    coded_error(codes::INTERNAL, "internal error")
}
