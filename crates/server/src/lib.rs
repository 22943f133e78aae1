//! The actix-web shell every REST service of the platform runs in.
//!
//! A service's `lib.rs` builds [`ServiceSettings`] from its [`runtime::CommonArgs`],
//! opens its [`ServiceContext`] (database, cache, metrics, logger), hands its routes to
//! [`HttpService::bind`], and runs until the shutdown future it was given resolves.
//!
//! | module | what it holds |
//! |---|---|
//! | `service` | the server, its settings and context, and [`run_binary`] |
//! | `error` | [`ApiError`] and the handlers for actix's extractor errors |
//! | `request` | the middleware: `X-Request-Id`, the trace context and server span, one access line per request, metrics, JSON-only errors |
//! | `identity` | [`Caller`]: the verified caller of a request (bearer token), and the rules' helpers |
//! | `network` | the client address of an actix request |
//! | `health` | `/healthz`, `/readyz` and `/metrics` |
//! | `crud` | the REST shape of table-backed resources: list, cached read, create, replace, delete |
//! | `pagination` | keyset pages by cursor, `Link` headers, `?ids=`, totals on request |
//! | `validate` | field checks several services make (names) |

mod crud;
mod error;
mod health;
mod identity;
mod network;
mod pagination;
mod request;
mod service;
mod validate;

pub use crud::{Resource, Table, TableService, select_page};
pub use error::ApiError;
pub use identity::{
    Admin, BearerAuth, Caller, SignedIn, authenticate, refused, sign_in_required, verifier,
};
pub use network::client_address;
pub use pagination::{
    DEFAULT_LIMIT, ListPage, ListQuery, ListRequest, MAX_LIMIT, MAX_OFFSET, Page, PageSql, Seek,
    Total, Window, decode_cursor, encode_cursor, links, list_response,
};
pub use request::{REQUEST_ID_HEADER, RequestId, RequestTrace, accepts_gzip};
pub use service::{HttpService, ServiceContext, ServiceSettings, run_binary};
pub use validate::{JsonObject, MAX_NAME_CHARS, all_valid, check_name, is_invisible};
