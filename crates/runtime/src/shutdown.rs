//! Shutdown as a future: [`signal`] resolves on SIGINT or SIGTERM, and [`Shutdown`] fans one
//! trigger out to every server of a process (the `stack` runs several).

use std::future::Future;

use tokio::sync::watch;

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// One shutdown trigger, many waiters.
#[derive(Clone, Debug)]
pub struct Shutdown {
    /// `true` once triggered.
    sender: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A trigger nobody has pulled yet.
    pub fn new() -> Self {
        Self {
            sender: watch::Sender::new(false),
        }
    }

    /// Tells every waiter to stop.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// A future that resolves once [`Shutdown::trigger`] was called (at once if it already was).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            let _ = receiver.wait_for(|triggered| *triggered).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_wakes_even_one_created_after_the_trigger() {
        let shutdown = Shutdown::new();
        let early = tokio::spawn(shutdown.wait());
        shutdown.trigger();
        early.await.expect("early waiter");
        shutdown.wait().await;
    }
}
