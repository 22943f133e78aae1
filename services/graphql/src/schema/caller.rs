//! What each request (over HTTP) or connection (over WebSocket) carries besides
//! [`super::state::AppState`]: who is asking, their token, the request id and trace context. Each operation adds
//! its own loaders ([`super::loaders`]).

use auth::Principal;

use crate::access::{Authenticated, UpstreamAuth};

/// The request's id, passed on to other services.
#[derive(Clone)]
pub struct CallerRequestId(pub String);

/// The request's trace context (this service's span of it): upstream calls continue it.
#[derive(Clone)]
pub struct CallerTrace(pub runtime::TraceContext);

/// The caller-side data of a request (HTTP) or a connection (WebSocket): who is asking and the
/// request id. Loaders are not in it: each operation gets its own
/// ([`super::loaders::operation_loaders`]), which spend that operation's budget.
pub fn request_data(
    request_id: &str,
    trace: &runtime::TraceContext,
    caller: Authenticated,
) -> RequestData {
    RequestData {
        request_id: CallerRequestId(request_id.to_owned()),
        trace: CallerTrace(trace.clone()),
        caller: caller.principal,
        upstream: caller.upstream,
    }
}

/// A request's (or a connection's) caller: no data leaks between requests or callers.
pub struct RequestData {
    /// The request's id.
    pub request_id: CallerRequestId,
    /// The request's trace context.
    pub trace: CallerTrace,
    /// Who is asking (`None`: anonymous); [`access`] reads it.
    pub caller: Option<Principal>,
    /// The caller's token, relayed to users-service and products-service.
    pub upstream: UpstreamAuth,
}

impl RequestData {
    /// Adds these to a GraphQL request.
    pub fn attach(self, request: async_graphql::Request) -> async_graphql::Request {
        request
            .data(self.request_id)
            .data(self.trace)
            .data(self.caller)
            .data(self.upstream)
    }

    /// Adds these to a WebSocket connection's data.
    pub fn into_data(self) -> async_graphql::Data {
        let mut data = async_graphql::Data::default();
        data.insert(self.request_id);
        data.insert(self.trace);
        data.insert(self.caller);
        data.insert(self.upstream);
        data
    }
}
