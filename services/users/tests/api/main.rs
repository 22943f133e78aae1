//! The users API end to end over HTTP, on SQLite and on PostgreSQL (one test binary).

mod auth;
mod binary;
mod cache;
mod concurrency;
mod helpers;
mod http_contract;
mod paging;
mod shutdown;
mod users;
