//! Hostile load on graphql.
