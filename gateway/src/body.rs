//! What the gateway answers with: bodies of its own, and the upstream's response body on its
//! way down (which, when it ends, returns the connection to the pool and writes the access
//! line). The request body on its way up is [`crate::request_body`]'s.

use std::{
    pin::Pin,
    rc::Rc,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::{
    access::AccessRecord,
    pool::{Connection, Pool},
    request_body::RequestProgress,
};

/// A pooled connection to hand back once its response is read.
pub struct Lease {
    /// Where it goes back.
    pub pool: Rc<Pool>,
    /// The instance it is connected to.
    pub instance: Arc<str>,
    /// The connection.
    pub connection: Connection,
    /// Whether the request went out completely (else the connection is not reused).
    pub request: Rc<RequestProgress>,
}

/// What the gateway answers with.
// The upstream variant carries its access record inline: moving it costs less than the
// allocation a box would add to every request.
#[allow(clippy::large_enum_variant)]
pub enum GatewayBody {
    /// A body the gateway made itself (errors, `/metrics`…).
    Full(Option<Bytes>),
    /// An upstream's response, streamed.
    Upstream(UpstreamBody),
}

/// An upstream's response body on its way to the client.
pub struct UpstreamBody {
    /// The first frame, read before the response went out ([`first_frame`]).
    first: Option<Frame<Bytes>>,
    /// What the upstream sends.
    inner: Incoming,
    /// The connection, returned to the pool at the end of the body.
    lease: Option<Lease>,
    /// Written when the body ends or is dropped (the client went away).
    access: Option<AccessRecord>,
}

impl GatewayBody {
    /// A body made of `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::Full(None)
    }

    /// An upstream body (starting with `first`, already read from it) that returns `lease`
    /// and writes `access` when it ends.
    pub fn upstream(
        first: Option<Frame<Bytes>>,
        inner: Incoming,
        lease: Option<Lease>,
        access: AccessRecord,
    ) -> Self {
        Self::Upstream(UpstreamBody {
            first,
            inner,
            lease,
            access: Some(access),
        })
    }
}

impl UpstreamBody {
    fn finish(&mut self) {
        if let Some(lease) = self.lease.take() {
            if lease.request.completed() {
                lease.pool.checkin(&lease.instance, lease.connection);
            } else {
                // Answered before the request body ended: the rest of it is not forwarded.
                lease.request.abandon();
            }
        }
        if let Some(access) = self.access.take() {
            access.write();
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // hyper never polls a body that is empty from the start (HEAD, 204, 304, length 0): that
        // exchange is complete. Any other body dropped before its end leaves the connection
        // mid-message: never reuse it.
        if self.first.is_none() && self.inner.is_end_stream() {
            self.finish();
        }
        if let Some(lease) = self.lease.take() {
            lease.request.abandon();
        }
        if let Some(access) = self.access.take() {
            access.write();
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Self::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
            Self::Upstream(body) => {
                let polled = match body.first.take() {
                    Some(frame) => Poll::Ready(Some(Ok(frame))),
                    None => Pin::new(&mut body.inner).poll_frame(cx),
                };
                match polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let (Some(data), Some(access)) = (frame.data_ref(), body.access.as_mut())
                        {
                            access.bytes += data.len() as u64;
                        }
                        if body.inner.is_end_stream() {
                            body.finish();
                        }
                        Poll::Ready(Some(Ok(frame)))
                    }
                    Poll::Ready(None) => {
                        body.finish();
                        Poll::Ready(None)
                    }
                    Poll::Ready(Some(Err(error))) => {
                        if let Some(lease) = body.lease.take() {
                            lease.request.abandon();
                        }
                        // The upstream broke its body off after the head went out (a malformed
                        // chunk, a short body): hyper cuts the client's connection, and it is
                        // counted as the direct path counts it.
                        if let Some(access) = body.access.as_mut() {
                            access
                                .telemetry
                                .metrics
                                .upstream_errors
                                .with_label_values(&[&*access.route, "protocol"])
                                .inc();
                            let upstream = access.upstream.as_deref().unwrap_or("the upstream");
                            access.error =
                                Some(format!("{upstream} broke off the response body: {error}"));
                        }
                        Poll::Ready(Some(Err(error)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Upstream(body) => body.first.is_none() && body.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Upstream(body) => match &body.first {
                None => body.inner.size_hint(),
                Some(_) => SizeHint::default(),
            },
        }
    }
}

/// What an upstream body holds when its response head has just arrived.
pub enum FirstFrame {
    /// Nothing at hand yet: the body comes later (or slowly); the head goes out now.
    NotYet,
    /// Its first frame.
    Frame(Frame<Bytes>),
    /// It is empty.
    End,
    /// It is broken (a malformed chunk): nothing of the response has gone out, so it can
    /// still be answered with a 502.
    Failed(hyper::Error),
}

/// Reads the first frame of `body` when hyper has its bytes at hand: the ones that came with
/// the head. The client connection runs on this thread, so a few turns of yielding let it
/// decode what it has read; a body whose bytes are still on their way is not waited for, so
/// a response that streams slowly keeps its head going out at once.
pub async fn first_frame(body: &mut Incoming) -> FirstFrame {
    use futures_util::FutureExt;
    use http_body_util::BodyExt;
    if body.is_end_stream() {
        return FirstFrame::End;
    }
    let mut frame = std::pin::pin!(body.frame());
    for _ in 0..4 {
        if let Some(polled) = (&mut frame).now_or_never() {
            return match polled {
                Some(Ok(frame)) => FirstFrame::Frame(frame),
                Some(Err(error)) => FirstFrame::Failed(error),
                None => FirstFrame::End,
            };
        }
        tokio::task::yield_now().await;
    }
    FirstFrame::NotYet
}
