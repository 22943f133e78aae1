//! The GraphQL errors of this service: the `extensions.code` values clients rely on, and how
//! upstream and input failures become them. An upstream failure tells the client which service
//! failed and nothing else (no URL, nothing the service answered); `crate::upstream` logs the
//! cause.

use async_graphql::{Error, ErrorExtensions};

use crate::{model::PostInputError, upstream::UpstreamError};

/// The `extensions.code` values clients can rely on.
pub mod codes {
    /// An argument is malformed or fails validation.
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    /// A named object does not exist.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// A unique value is taken (an email).
    pub const CONFLICT: &str = "CONFLICT";
    /// Another service could not be reached or failed.
    pub const UPSTREAM_UNAVAILABLE: &str = "UPSTREAM_UNAVAILABLE";
    /// Another service did not answer in time.
    pub const UPSTREAM_TIMEOUT: &str = "UPSTREAM_TIMEOUT";
    /// Our own fault; the cause is in the log.
    pub const INTERNAL: &str = "INTERNAL_SERVER_ERROR";
    /// The operation needs a signed-in caller and none is.
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// The caller may not do this (or see this field).
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// The operation selects `__schema` or `__type` and introspection is switched off.
    pub const INTROSPECTION_DISABLED: &str = "INTROSPECTION_DISABLED";
    /// The operation uses more aliases than allowed (`GRAPHQL_MAX_ALIASES`).
    pub const TOO_MANY_ALIASES: &str = "TOO_MANY_ALIASES";
    /// The operation selects more root fields than allowed (`GRAPHQL_MAX_ROOT_FIELDS`).
    pub const TOO_MANY_ROOT_FIELDS: &str = "TOO_MANY_ROOT_FIELDS";
    /// The selections nest deeper than allowed (`GRAPHQL_MAX_DEPTH`).
    pub const QUERY_TOO_DEEP: &str = "QUERY_TOO_DEEP";
    /// The operation costs more than allowed (`GRAPHQL_MAX_COMPLEXITY`).
    pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    /// The operation made all the calls to other services it may
    /// (`GRAPHQL_MAX_UPSTREAM_CALLS`).
    pub const UPSTREAM_CALLS_EXCEEDED: &str = "UPSTREAM_CALLS_EXCEEDED";
    /// The answer would be larger than allowed (`GRAPHQL_MAX_RESPONSE_BYTES`).
    pub const RESPONSE_TOO_LARGE: &str = "RESPONSE_TOO_LARGE";
    /// The WebSocket runs as many operations as it may (`GRAPHQL_MAX_SUBSCRIPTIONS`).
    pub const TOO_MANY_SUBSCRIPTIONS: &str = "TOO_MANY_SUBSCRIPTIONS";
    /// The query document is larger than allowed (`GRAPHQL_MAX_QUERY_BYTES`).
    pub const QUERY_TOO_LARGE: &str = "QUERY_TOO_LARGE";
}

/// A GraphQL error with `extensions.code`.
pub fn coded_error(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message.into()).extend_with(|_, extensions| extensions.set("code", code))
}

impl ErrorExtensions for UpstreamError {
    fn extend(&self) -> Error {
        let error = self;
        match error {
            UpstreamError::Unavailable { .. } => {
                coded_error(codes::UPSTREAM_UNAVAILABLE, error.to_string())
            }
            UpstreamError::Timeout { .. } => {
                coded_error(codes::UPSTREAM_TIMEOUT, error.to_string())
            }
            UpstreamError::Overdrawn(_) => {
                coded_error(codes::UPSTREAM_CALLS_EXCEEDED, error.to_string())
            }
            UpstreamError::Rejected {
                status,
                code,
                message,
                details,
            } => {
                let graphql_code = match *status {
                    409 => codes::CONFLICT,
                    404 => codes::NOT_FOUND,
                    401 => codes::UNAUTHENTICATED,
                    403 => codes::FORBIDDEN,
                    _ => codes::BAD_USER_INPUT,
                };
                let (code, details) = (code.clone(), details.clone());
                let message = if message.is_empty() {
                    format!("the request was refused ({status})")
                } else {
                    message.clone()
                };
                Error::new(message).extend_with(move |_, extensions| {
                    extensions.set("code", graphql_code);
                    extensions.set("upstreamCode", code.clone());
                    if let Ok(details) = async_graphql::Value::from_json(details.clone())
                        && details != async_graphql::Value::Null
                    {
                        extensions.set("details", details);
                    }
                })
            }
        }
    }
}

impl ErrorExtensions for PostInputError {
    fn extend(&self) -> Error {
        let error = self;
        let field = match error {
            PostInputError::Title(_) => "title",
            PostInputError::Content(_) => "content",
        };
        Error::new(error.to_string()).extend_with(move |_, extensions| {
            extensions.set("code", codes::BAD_USER_INPUT);
            extensions.set("field", field);
        })
    }
}
