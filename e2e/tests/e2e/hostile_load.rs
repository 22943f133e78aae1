//! Hostile load: each attack of docs/architecture.md's failure table run against the platform
//! with a normal client alongside. The attack is refused or bounded (the attacked process's
//! resident memory, read from `/proc`, stays under the bound its test states) and the normal
//! client keeps getting 2xx.

mod chat;
mod gateway;
mod graphql;
mod media;
mod worker;
