//! Hostile load on media.
