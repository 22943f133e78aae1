//! End-to-end tests of the platform, through the gateway only: one binary (see the `e2e`
//! library for how the platform starts).

mod clients;
mod dashboard;
mod faults;
mod hostile_input;
mod hostile_load;
mod identity;
mod journey;
mod schemas;
mod socketio;
mod trace_context;
