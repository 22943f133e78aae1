//! The client's request body on its way up: streamed, cut off past the route's size limit,
//! its progress shared with the exchange (the response timeout starts when it is all sent, and
//! a connection is reused only after it went out whole), its framing errors told apart as the
//! client's, and abandoned when the upstream answered before it ended.

use std::{
    cell::Cell,
    pin::Pin,
    rc::Rc,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::Notify;

/// Errors a body can yield.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body that went over its route's limit.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than {0} bytes")]
pub struct BodyTooLarge(pub u64);

/// A request body the client framed wrongly (a malformed chunk, a body cut short): answered
/// 400, as the client's fault.
#[derive(Debug, thiserror::Error)]
#[error("the request body is malformed: {0}")]
pub struct ClientBodyError(#[source] pub hyper::Error);

/// A request body the upstream answered before it ended: the rest is not forwarded (the
/// upstream connection closes, which closes the client's after the answer, RFC 9112 §9.6).
#[derive(Debug, thiserror::Error)]
#[error("the upstream answered before the request body ended")]
pub struct Abandoned;

/// How far the request body has gone upstream: the response timeout starts when it is all
/// sent, and the connection may be reused only when it was sent completely.
#[derive(Default)]
pub struct RequestProgress {
    /// The upstream's answer went to the client before the body ended: stop forwarding it.
    abandoned: Cell<bool>,
    /// The task that polls the body, woken when it is abandoned.
    waker: Cell<Option<Waker>>,
    /// The body has ended (or failed).
    done: Cell<bool>,
    /// It failed (too large, or the client went away): the connection is mid-message.
    failed: Cell<bool>,
    /// Wakes [`RequestProgress::finished`].
    notify: Notify,
}

impl RequestProgress {
    fn mark(&self, failed: bool) {
        if !self.done.get() {
            self.failed.set(failed);
            self.done.set(true);
            self.notify.notify_waiters();
        }
    }

    /// Resolves once the whole body has been handed to the upstream connection.
    pub async fn finished(&self) {
        loop {
            let notified = self.notify.notified();
            if self.done.get() {
                return;
            }
            notified.await;
        }
    }

    /// Whether the body went out completely.
    pub fn completed(&self) -> bool {
        self.done.get() && !self.failed.get()
    }

    /// The upstream's answer is relayed while the body has not ended: the body yields
    /// [`Abandoned`] instead of what the client sends next, which ends the upstream connection
    /// (and so the client's, once its answer is out). A body already ended is left alone.
    pub fn abandon(&self) {
        if !self.done.get() {
            self.abandoned.set(true);
            if let Some(waker) = self.waker.take() {
                waker.wake();
            }
        }
    }
}

/// The client's request body, streamed to the upstream.
pub struct RequestBody {
    /// What the client sends.
    inner: Incoming,
    /// The route's limit.
    limit: Option<u64>,
    /// Bytes passed on so far.
    seen: u64,
    /// Shared with the exchange that sends it.
    progress: Rc<RequestProgress>,
}

impl RequestBody {
    /// `inner`, cut off with [`BodyTooLarge`] past `limit` bytes.
    pub fn new(inner: Incoming, limit: Option<u64>) -> Self {
        let progress = Rc::new(RequestProgress::default());
        if inner.is_end_stream() {
            progress.mark(false);
        }
        Self {
            inner,
            limit,
            seen: 0,
            progress,
        }
    }

    /// The body's progress, to wait for and to check before reusing the connection.
    pub fn progress(&self) -> Rc<RequestProgress> {
        self.progress.clone()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        // Dropped before its end: the exchange was abandoned mid-body.
        self.progress.mark(true);
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.progress.abandoned.get() {
            self.progress.mark(true);
            return Poll::Ready(Some(Err(Box::new(Abandoned))));
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.seen += data.len() as u64;
                    if let Some(limit) = self.limit.filter(|limit| self.seen > *limit) {
                        self.progress.mark(true);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(limit)))));
                    }
                }
                if self.inner.is_end_stream() {
                    self.progress.mark(false);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                self.progress.mark(true);
                Poll::Ready(Some(Err(Box::new(ClientBodyError(error)))))
            }
            Poll::Ready(None) => {
                self.progress.mark(false);
                Poll::Ready(None)
            }
            Poll::Pending => {
                self.progress.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
