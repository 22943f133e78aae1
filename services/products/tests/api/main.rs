//! The products API end to end over HTTP, on SQLite and on PostgreSQL (one test binary).

mod helpers;
mod products;
