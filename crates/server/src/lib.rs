//! The actix-web shell every REST service of the platform runs in.
//!
//! A service's `lib.rs` builds [`ServiceSettings`] from its [`runtime::config::CommonArgs`],
//! opens its [`ServiceContext`] (database, cache, metrics, logger), hands its routes to
//! [`HttpService::bind`], and runs until the shutdown future it was given resolves.
//!
//! | module | what it holds |
//! |---|---|
//! | [`service`] | the server, its settings and context, and [`run_binary`] |
//! | [`error`] | [`ApiError`] and the handlers for actix's extractor errors |
//! | [`request`] | the middleware: `X-Request-Id`, one access line per request, metrics, JSON-only errors |
//! | [`identity`] | [`identity::Caller`]: the verified caller of a request (bearer token), and the rules' helpers |
//! | [`network`] | the client address of an actix request |
//! | [`health`] | `/healthz`, `/readyz` and `/metrics` |
//! | [`crud`] | the REST shape of table-backed resources: list, cached read, create, replace, delete |
//! | [`pagination`] | keyset pages by cursor, `Link` headers, `?ids=`, totals on request |
//! | [`validate`] | field checks several services make (names) |

pub mod crud;
pub mod error;
pub mod health;
pub mod identity;
pub mod network;
pub mod pagination;
pub mod request;
pub mod service;
pub mod validate;

pub use error::ApiError;
pub use service::{HttpService, ServiceContext, ServiceSettings, run_binary};
