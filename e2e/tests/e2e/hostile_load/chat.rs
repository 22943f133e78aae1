//! Hostile load on chat.
