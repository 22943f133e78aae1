//! Hostile load on gateway.
