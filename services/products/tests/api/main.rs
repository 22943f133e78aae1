//! The products API end to end over HTTP, on SQLite and on PostgreSQL (one test binary): the
//! endpoints and their inputs (`products`), and who may call them (`access`).

mod access;
mod helpers;
mod products;
