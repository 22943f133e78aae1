//! The gateway against real upstreams started in the test (one test binary).

mod authorization;
mod browser;
mod cors;
mod differential;
mod direct;
mod docs;
mod early;
mod framing;
mod helpers;
mod ops;
mod proxying;
mod resilience;
mod scripted;
mod sticky;
mod trust;
mod upstream;
