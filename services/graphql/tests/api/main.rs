//! graphql-service's integration tests: one binary (see `helpers` for how instances start).

mod access;
mod connection;
mod dataloader;
mod graphiql_browser;
mod helpers;
mod http_protocol;
mod introspection_query;
mod limits;
mod mutations;
mod pages;
mod queries;
mod readiness;
mod seed_schema;
mod subscriptions;
mod trace_context;
mod upstream_failures;
