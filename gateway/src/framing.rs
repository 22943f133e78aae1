//! The framing rules of hyper's path that hyper itself does not apply, so both paths frame
//! alike (the direct path applies them in `direct/request.rs` and `direct/response.rs`):
//! which requests are never forwarded, which host a request is for (by [`crate::host`]'s
//! rule), the interim responses nobody asked for, and the framing fields of a response hyper
//! has decoded.

use std::sync::{
    Arc,
    atomic::{AtomicU16, Ordering},
};

use http::{
    HeaderValue, Method, Request, StatusCode,
    header::{CONTENT_LENGTH, EXPECT, HOST, TRANSFER_ENCODING},
};

use crate::{
    forward::is_unasked_interim,
    headers::TransferCodings,
    host::{HostError, request_host},
    request_body::RequestBody,
};

/// Refuses what the gateway never forwards: `CONNECT` (405: it is a reverse proxy, not a
/// tunnel).
pub fn check_target<B>(request: &Request<B>) -> Result<(), (StatusCode, &'static str)> {
    if request.method() == Method::CONNECT {
        return Err((
            StatusCode::METHOD_NOT_ALLOWED,
            "CONNECT is not served: the gateway is no tunnel",
        ));
    }
    Ok(())
}

/// The host a request is for, by [`request_host`]'s rule: an absolute-form target's authority,
/// which wins over the `Host` field, else its one `Host`.
pub fn client_host<B>(request: &Request<B>) -> Result<HeaderValue, HostError> {
    let host = request_host(
        request
            .headers()
            .get_all(HOST)
            .iter()
            .map(HeaderValue::as_bytes),
        request.uri().authority().map(http::uri::Authority::as_str),
    )?;
    HeaderValue::from_bytes(host).map_err(|_| HostError::Invalid)
}

/// Notes the status of an interim (1xx) response the request did not ask for: any but a 100
/// to an `Expect: 100-continue` (a 101 comes as the response itself). hyper would skip it and
/// read on; the gateway answers 502 instead, as the direct path does, since an upstream that
/// sends one is not answering the request that was sent.
pub fn watch_interim(request: &mut Request<RequestBody>) -> Arc<AtomicU16> {
    let expects_continue = request
        .headers()
        .get(EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let unasked = Arc::new(AtomicU16::new(0));
    let seen = unasked.clone();
    hyper::ext::on_informational(request, move |response| {
        let status = response.status().as_u16();
        if is_unasked_interim(status, expects_continue) {
            seen.store(status, Ordering::Relaxed);
        }
    });
    unasked
}

/// Makes the framing fields of an upstream response hyper has decoded true for the body it
/// passes on (RFC 9112 §6.3): beside `Transfer-Encoding`, a `Content-Length` is no length of
/// anything and goes. Returns, when codings lie below `chunked` (`gzip`), the value to
/// announce again after the hop-by-hop fields are gone: those codings, then `chunked`, which
/// hyper's encoder honours as it is. Left to add `chunked` itself, hyper 1.x also appends
/// `, chunked` to the next field it writes with more than one value (`Connection: close,
/// chunked`), which the direct path never writes.
pub fn reframe(headers: &mut http::HeaderMap) -> Option<HeaderValue> {
    if !headers.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    headers.remove(CONTENT_LENGTH);
    let codings = TransferCodings::of(
        headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    (!codings.below.is_empty())
        .then(|| HeaderValue::from_bytes(&codings.rechunked()).ok())
        .flatten()
}
