//! The gateway against real upstreams started in the test (one test binary).

mod helpers;
mod proxying;
mod resilience;
mod upstream;
