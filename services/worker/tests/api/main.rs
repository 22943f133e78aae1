//! worker's integration tests: one binary, against the embedded queue (SQLite and PostgreSQL)
//! and the machine's RabbitMQ.

mod dead_letters;
mod health;
mod helpers;
mod jobs;
mod orphans;
mod producer;
mod resilience;
mod seed_clients;
mod seed_messages;
mod thumbnails;
