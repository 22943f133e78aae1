//! GraphQL over HTTP (the GraphQL-over-HTTP specification), GraphiQL, and subscriptions over
//! WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws`), all on `/graphql`.
//!
//! - `POST` with `Content-Type: application/json` runs any operation; other content types → 415.
//! - `GET ?query=…&variables=…&operationName=…` runs queries; a mutation over GET → 405 with
//!   `Allow: POST`.
//! - The response is `application/graphql-response+json` or `application/json`, as `Accept`
//!   asks (plain JSON when it is absent or `*/*`); nothing acceptable → 406. With
//!   `application/graphql-response+json`, a request that could not be executed (parse or
//!   validation errors, limits) is a 400; with `application/json` it is a 200, as the
//!   specification says for legacy clients. A request that is not well-formed (bad JSON, no
//!   `query`) is a 400 either way.
//! - `GET` from a browser (`Accept: text/html`, no `query`) gets GraphiQL.
//! - Every request's caller is its `Authorization: Bearer` token's ([`crate::access`]): none is
//!   anonymous; one that does not verify is refused with 401, the JSON error body and
//!   `WWW-Authenticate` before anything runs.
//!
//! | module | what it holds |
//! |---|---|
//! | `routes` | one route per transport (WebSocket upgrade, `GET`, `POST`, other methods → 405) |
//! | `negotiation` | the response type `Accept` asks for, and request-error bodies in it |
//! | `request` | a GraphQL request read from a query string or a JSON body |
//! | `execution` | the [`Endpoint`] and how one request runs against it |
//! | `websocket` | subscriptions over WebSocket, the caller of each connection |
//! | `socket_operations` | the operations one WebSocket runs, and the refusal of one too many |

pub(crate) mod execution;
pub(crate) mod negotiation;
pub(crate) mod request;
pub(crate) mod routes;
pub(crate) mod socket_operations;
pub(crate) mod websocket;

pub use execution::{Endpoint, document_cache};
pub use negotiation::{GRAPHQL_RESPONSE_JSON, JSON, ResponseType, negotiate};
pub use routes::configure;
