//! [`Probe`]: how a dependency says whether it answers. Each building block implements it for
//! its own handle (the database pool, the cache, pub/sub, the queue, the object store), so a
//! server lists its dependencies for `/readyz` by handle, not by closure.

use std::{future::Future, pin::Pin};

/// What a probe resolves to.
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// A dependency that can be asked whether it answers.
pub trait Probe: Send + Sync + 'static {
    /// Resolves `Ok` when the dependency answers, with the cause when it does not. The caller
    /// bounds how long it waits.
    fn probe(&self) -> ProbeFuture<'_>;
}
