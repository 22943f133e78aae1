//! How a connection ends: why ([`Disconnect`], and the close frame each reason sends), and the
//! one switch every cause goes through ([`Closer`]).

use std::sync::{Arc, Mutex};

use actix_ws::{CloseCode, CloseReason};
use tokio::sync::Notify;

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// The client sent a close frame (answered with 1000).
    ClientClosed,
    /// The connection dropped without a close frame.
    ClientGone,
    /// No pong (or anything else) within the pong timeout (closed with 1008).
    Heartbeat,
    /// The outbound queue overflowed (closed with 1013).
    SlowConsumer,
    /// A frame or message over the size limit (closed with 1009).
    FrameTooLarge,
    /// A WebSocket protocol violation (closed with 1002).
    Protocol,
    /// The room could not be joined: pub/sub is down (closed with 1011).
    Unavailable,
    /// The server is shutting down (closed with 1001).
    Shutdown,
}

impl Disconnect {
    /// The close frame sent for it.
    pub fn close_reason(self) -> CloseReason {
        let (code, description) = match self {
            Self::ClientClosed | Self::ClientGone => (CloseCode::Normal, "bye"),
            Self::Heartbeat => (CloseCode::Policy, "no pong within the heartbeat timeout"),
            Self::SlowConsumer => (CloseCode::Again, "too slow: outbound queue full"),
            Self::FrameTooLarge => (CloseCode::Size, "frame over 64 KiB"),
            Self::Protocol => (CloseCode::Protocol, "protocol error"),
            Self::Unavailable => (CloseCode::Error, "chat unavailable, try again"),
            Self::Shutdown => (CloseCode::Away, "server shutting down"),
        };
        CloseReason {
            code,
            description: Some(description.to_owned()),
        }
    }

    /// The `reason` label of `chat_disconnects_total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::ClientClosed | Self::ClientGone => "client",
            Self::Heartbeat => "heartbeat",
            Self::SlowConsumer => "slow_consumer",
            Self::FrameTooLarge => "frame_too_large",
            Self::Protocol => "protocol",
            Self::Unavailable => "unavailable",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Ends a connection: the first reason given wins; the connection's task waits for it.
/// A mutex and a `Notify`, not a `watch`: every open connection holds one, and a watch
/// channel's state is several times larger (docs/benchmarks.md, "What the chat-service measurements showed").
#[derive(Clone, Debug, Default)]
pub struct Closer(Arc<CloserState>);

#[derive(Debug, Default)]
struct CloserState {
    reason: Mutex<Option<Disconnect>>,
    closing: Notify,
}

impl Closer {
    /// Asks the connection to close for `reason` (ignored if it is already closing).
    pub fn close(&self, reason: Disconnect) {
        {
            let mut current = self.0.reason.lock().expect("close reason lock");
            if current.is_some() {
                return;
            }
            *current = Some(reason);
        }
        self.0.closing.notify_waiters();
    }

    /// The reason, once there is one.
    pub fn reason(&self) -> Option<Disconnect> {
        *self.0.reason.lock().expect("close reason lock")
    }

    /// Resolves with the reason once there is one.
    pub async fn closed(&self) -> Disconnect {
        loop {
            let mut notified = std::pin::pin!(self.0.closing.notified());
            // Registered before the check, so a close between the two is not missed.
            notified.as_mut().enable();
            if let Some(reason) = self.reason() {
                return reason;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn the_first_close_reason_wins_and_wakes_the_waiter() {
        let closer = Closer::default();
        assert_eq!(closer.closed().now_or_never(), None);
        let waiter = tokio::spawn({
            let closer = closer.clone();
            async move { closer.closed().await }
        });
        tokio::task::yield_now().await;
        closer.close(Disconnect::SlowConsumer);
        closer.close(Disconnect::Shutdown);
        assert_eq!(closer.reason(), Some(Disconnect::SlowConsumer));
        assert_eq!(waiter.await.expect("waiter"), Disconnect::SlowConsumer);
        assert_eq!(
            closer.closed().now_or_never(),
            Some(Disconnect::SlowConsumer)
        );
        assert_eq!(
            u16::from(Disconnect::SlowConsumer.close_reason().code),
            1013
        );
        assert_eq!(u16::from(Disconnect::Shutdown.close_reason().code), 1001);
        assert_eq!(
            u16::from(Disconnect::FrameTooLarge.close_reason().code),
            1009
        );
    }
}
