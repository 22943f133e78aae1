//! The bodies the gateway streams: the client's request body on its way up (with the route's
//! size limit), and the upstream's response body on its way down (which, when it ends, returns
//! the connection to the pool and writes the access line).

use std::{
    pin::Pin,
    rc::Rc,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use hyper::{
    body::{Body, Frame, Incoming, SizeHint},
    client::conn::http1::SendRequest,
};

use crate::{access::AccessRecord, pool::Pool};

/// Errors a body can yield.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body that went over its route's limit.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than {0} bytes")]
pub struct BodyTooLarge(pub u64);

/// The client's request body, streamed to the upstream.
pub struct RequestBody {
    /// What the client sends.
    inner: Incoming,
    /// The route's limit.
    limit: Option<u64>,
    /// Bytes passed on so far.
    seen: u64,
}

impl RequestBody {
    /// `inner`, cut off with [`BodyTooLarge`] past `limit` bytes.
    pub fn new(inner: Incoming, limit: Option<u64>) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.seen += data.len() as u64;
                    if let Some(limit) = self.limit.filter(|limit| self.seen > *limit) {
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge(limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(Box::new(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A pooled connection to hand back once its response is read.
pub struct Lease {
    /// Where it goes back.
    pub pool: Rc<Pool>,
    /// The instance it is connected to.
    pub instance: Arc<str>,
    /// The connection.
    pub sender: SendRequest<RequestBody>,
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

    /// An upstream body that returns `lease` and writes `access` when it ends.
    pub fn upstream(inner: Incoming, lease: Option<Lease>, access: AccessRecord) -> Self {
        Self::Upstream(UpstreamBody {
            inner,
            lease,
            access: Some(access),
        })
    }
}

impl UpstreamBody {
    fn finish(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.pool.checkin(&lease.instance, lease.sender);
        }
        if let Some(access) = self.access.take() {
            access.write();
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body dropped before its end leaves the connection mid-message: never reuse it.
        self.lease = None;
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
                let polled = Pin::new(&mut body.inner).poll_frame(cx);
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
                        body.lease = None;
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
            Self::Upstream(body) => body.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            Self::Upstream(body) => body.inner.size_hint(),
        }
    }
}
