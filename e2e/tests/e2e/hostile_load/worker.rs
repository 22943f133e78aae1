//! Hostile load on worker.
