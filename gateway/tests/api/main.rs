//! The gateway against real upstreams started in the test (one test binary).

mod authorization;
mod direct;
mod helpers;
mod proxying;
mod resilience;
mod upstream;
