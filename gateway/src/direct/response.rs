//! The upstream's side of a direct exchange: its response head, and the relay of its body in
//! whichever framing it came (length, chunked, until close).

use std::io::Write;

use http::HeaderValue;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

use super::{MAX_RESPONSE_FIELDS, chunked::ChunkedScanner, push_field};
use crate::{
    cors::{Cors, Grant, passes_upstream_field},
    forward::{
        asks_to_close, body_length, carries_no_body, connection_values, is_unasked_interim,
        passes_response_field, response_request_id,
    },
    headers::TransferCodings,
};

/// Largest upstream response head accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why an upstream response head could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum HeadError {
    /// The upstream closed the connection (or reset it).
    #[error("the connection closed before the response head")]
    Closed,
    /// The head is not HTTP/1.x.
    #[error("malformed response head: {0}")]
    Malformed(httparse::Error),
    /// The head is larger than the gateway accepts.
    #[error("response head over {MAX_RESPONSE_HEAD} bytes")]
    TooLarge,
    /// `Content-Length` is not one number.
    #[error("invalid Content-Length")]
    InvalidLength,
    /// A status code below 100.
    #[error("invalid status code {0}")]
    Status(u16),
    /// An interim (1xx) response the direct path never asks for: it sends no `Expect` and no
    /// `Upgrade`, so a 100, a 103 or an unasked-for 101 means the upstream speaks another
    /// exchange than the one sent, and what follows on the connection cannot be trusted.
    #[error("an interim response {0} that was not asked for")]
    Interim(u16),
    /// `Transfer-Encoding` applies `chunked` other than last, or twice.
    #[error("invalid Transfer-Encoding")]
    InvalidCodings,
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding, relayed as it is.
    Chunked,
    /// Until the upstream closes the connection; chunked on its way to the client, so the
    /// client connection stays open and a body cut short shows.
    UntilClose,
}

/// An upstream response head, as ranges into the bytes read.
pub(super) struct ResponseHead {
    /// The status code.
    pub(super) status: u16,
    /// The reason phrase.
    pub(super) reason: std::ops::Range<usize>,
    /// The end-to-end fields (name, value) to pass on.
    pub(super) fields: Vec<(std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// How the body ends, by the head alone.
    pub(super) framing: Framing,
    /// The transfer codings below `chunked` (`gzip` of `gzip, chunked`), announced again.
    pub(super) codings: TransferCodings,
    /// The `Content-Length` it declared (written again by the gateway, never passed on as
    /// sent: a `Connection` header may have named it).
    pub(super) content_length: Option<u64>,
    /// It carried a `Date`.
    pub(super) dated: bool,
    /// The connection may carry another request afterwards.
    pub(super) keep_alive: bool,
    /// Length of the head in bytes.
    pub(super) length: usize,
}

impl ResponseHead {
    /// How its body reaches the client: none for a HEAD's answer or a status that carries none
    /// ([`carries_no_body`]), else as the head frames it.
    pub(super) fn client_framing(&self, head_method: bool) -> Framing {
        if head_method || carries_no_body(self.status) {
            Framing::Empty
        } else {
            self.framing
        }
    }

    /// Writes the client's head: status line, end-to-end fields (the upstream's CORS fields
    /// replaced by the gateway's, [`crate::cors`]), framing, the request id.
    pub(super) fn write_client_head(
        &self,
        bytes: &[u8],
        framing: &Framing,
        request_id: &HeaderValue,
        (cors, grant): (&Cors, Grant),
        close: bool,
        out: &mut Vec<u8>,
    ) {
        out.clear();
        let _ = write!(out, "HTTP/1.1 {} ", self.status);
        out.extend_from_slice(&bytes[self.reason.clone()]);
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.fields {
            let name = &bytes[name.clone()];
            if grant == Grant::Off
                || std::str::from_utf8(name).is_ok_and(|name| passes_upstream_field(grant, name))
            {
                push_field(out, name, &bytes[value.clone()]);
            }
        }
        for (name, value) in cors.response_fields(grant) {
            push_field(out, name.as_bytes(), value);
        }
        match framing {
            Framing::Length(length) => {
                let _ = write!(out, "content-length: {length}\r\n");
            }
            // A HEAD answer tells the length of the body it does not carry. 204 and 304 carry
            // none: hyper's path never writes one on them, and both paths answer alike.
            Framing::Empty => {
                if let Some(length) = self
                    .content_length
                    .filter(|_| !carries_no_body(self.status))
                {
                    let _ = write!(out, "content-length: {length}\r\n");
                }
            }
            Framing::Chunked | Framing::UntilClose => {
                push_field(out, b"transfer-encoding", &self.codings.rechunked());
            }
        }
        if !self.dated {
            // RFC 9110 §6.6.1: a recipient with a clock adds the `Date` the origin left out.
            out.extend_from_slice(b"date: ");
            out.extend_from_slice(super::http_date().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let (name, value) = response_request_id(request_id.as_bytes());
        push_field(out, name.as_bytes(), value);
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads until `bytes` holds a whole response head: a final one, else [`HeadError::Interim`].
pub(super) async fn read_response_head(
    upstream: &mut TcpStream,
    bytes: &mut Vec<u8>,
) -> Result<ResponseHead, HeadError> {
    loop {
        if !bytes.is_empty() {
            match parse_response_head(bytes)? {
                // The direct path takes no `Expect` (hyper's does): no interim response is asked.
                Some(head) if is_unasked_interim(head.status, false) => {
                    return Err(HeadError::Interim(head.status));
                }
                Some(head) => return Ok(head),
                None if bytes.len() > MAX_RESPONSE_HEAD => return Err(HeadError::TooLarge),
                None => {}
            }
        }
        if bytes.capacity() - bytes.len() < 1024 {
            bytes.reserve(4096);
        }
        match upstream.read_buf(bytes).await {
            Ok(0) | Err(_) => return Err(HeadError::Closed),
            Ok(_) => {}
        }
    }
}

/// Parses a response head from the start of `bytes`: `Ok(None)` while it is incomplete.
pub fn parse_response_head(bytes: &[u8]) -> Result<Option<ResponseHead>, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
    let mut parsed = httparse::Response::new(&mut fields);
    let length = match parsed.parse(bytes).map_err(HeadError::Malformed)? {
        httparse::Status::Complete(length) => length,
        httparse::Status::Partial => return Ok(None),
    };
    // httparse's slices point into `bytes`, except a reason it could not take as text (then
    // an empty one of its own).
    let range = |part: &[u8]| {
        let start = (part.as_ptr() as usize).wrapping_sub(bytes.as_ptr() as usize);
        if start <= bytes.len() && part.len() <= bytes.len() - start {
            start..start + part.len()
        } else {
            0..0
        }
    };
    let status = parsed.code.unwrap_or(0);
    if status < 100 {
        return Err(HeadError::Status(status));
    }
    let reason = parsed
        .reason
        .map_or(0..0, |reason| range(reason.as_bytes()));
    let connection = connection_values(parsed.headers.iter());
    // A body that ends with the connection also ends its reuse: `relay_response` says so.
    let keep_alive = parsed.version == Some(1) && !asks_to_close(&connection);
    let mut content_length =
        body_length(parsed.headers.iter()).map_err(|_| HeadError::InvalidLength)?;
    let mut transfer_encoding: Vec<&[u8]> = Vec::new();
    let mut dated = false;
    let mut kept = Vec::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding.push(field.value);
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        dated |= name.eq_ignore_ascii_case("date");
        if !passes_response_field(name, field.value, &connection) {
            continue;
        }
        kept.push((range(name.as_bytes()), range(field.value)));
    }
    let transfer_coded = !transfer_encoding.is_empty();
    let codings = TransferCodings::of(transfer_encoding);
    if !codings.is_valid() {
        return Err(HeadError::InvalidCodings);
    }
    let framing = if transfer_coded {
        // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, which is then dropped.
        content_length = None;
        if codings.chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        }
    } else {
        content_length.map_or(Framing::UntilClose, Framing::Length)
    };
    Ok(Some(ResponseHead {
        status,
        reason,
        fields: kept,
        framing,
        codings,
        content_length,
        dated,
        keep_alive,
        length,
    }))
}

/// A response body relayed completely.
pub(super) struct Relayed {
    /// Body bytes sent to the client (chunk framing included).
    pub(super) bytes: u64,
    /// Nothing followed the body on the upstream connection.
    pub(super) clean: bool,
}

/// Which side of a relay failed.
#[derive(Debug)]
pub(super) enum RelayError {
    /// Reading: it closed early or broke.
    Source,
    /// Writing.
    Destination,
    /// The body is not chunked coding, and nothing of the response has reached the client
    /// yet: it can still be answered with a 502.
    Malformed,
}

/// Sends `out` (the client's head, already written) and the body after it.
pub(super) async fn relay_response(
    framing: Framing,
    head_length: usize,
    upstream: &mut (impl AsyncRead + Unpin),
    upstream_bytes: &mut Vec<u8>,
    out: &mut Vec<u8>,
    client: &mut (impl AsyncWrite + Unpin),
) -> Result<Relayed, RelayError> {
    let body = &upstream_bytes[head_length..];
    match framing {
        Framing::Empty => {
            write_all(client, out).await?;
            Ok(Relayed {
                bytes: 0,
                clean: body.is_empty(),
            })
        }
        Framing::Length(length) => {
            let with_head = body
                .len()
                .min(usize::try_from(length).unwrap_or(usize::MAX));
            let clean = with_head == body.len();
            out.extend_from_slice(&body[..with_head]);
            write_all(client, out).await?;
            let rest = length - with_head as u64;
            if rest > 0 {
                relay(upstream, client, rest).await?;
            }
            Ok(Relayed {
                bytes: length,
                clean,
            })
        }
        Framing::Chunked => {
            let mut scanner = ChunkedScanner::default();
            let mut start = head_length;
            let mut bytes = 0u64;
            loop {
                let piece = &upstream_bytes[start..];
                // The client's head goes out with the first piece, once it has been checked.
                let unanswered = bytes == 0 && start == head_length;
                let end = scanner.scan(piece).map_err(|()| {
                    if unanswered {
                        RelayError::Malformed
                    } else {
                        RelayError::Source
                    }
                })?;
                let used = end.unwrap_or(piece.len());
                out.extend_from_slice(&piece[..used]);
                bytes += used as u64;
                write_all(client, out).await?;
                if end.is_some() {
                    return Ok(Relayed {
                        bytes,
                        clean: used == piece.len(),
                    });
                }
                out.clear();
                start = 0;
                if read_next(upstream, upstream_bytes).await? == 0 {
                    return Err(RelayError::Source);
                }
            }
        }
        Framing::UntilClose => {
            // Each read goes out as one chunk; the last chunk only after the upstream's clean
            // end, so a body cut short is never taken for a whole one.
            let mut bytes = 0u64;
            let mut start = head_length;
            loop {
                let piece = &upstream_bytes[start..];
                if !piece.is_empty() {
                    let _ = write!(out, "{:x}\r\n", piece.len());
                    out.extend_from_slice(piece);
                    out.extend_from_slice(b"\r\n");
                    bytes += piece.len() as u64;
                }
                write_all(client, out).await?;
                out.clear();
                start = 0;
                if read_next(upstream, upstream_bytes).await? == 0 {
                    write_all(client, b"0\r\n\r\n").await?;
                    return Ok(Relayed {
                        bytes,
                        clean: false,
                    });
                }
            }
        }
    }
}

/// Replaces `bytes` with the upstream's next read; how many (0: it closed).
async fn read_next(
    upstream: &mut (impl AsyncRead + Unpin),
    bytes: &mut Vec<u8>,
) -> Result<usize, RelayError> {
    bytes.clear();
    bytes.reserve(16 * 1024);
    upstream
        .read_buf(bytes)
        .await
        .map_err(|_| RelayError::Source)
}

/// Writes all of `bytes` to `destination`.
pub(super) async fn write_all(
    destination: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
) -> Result<(), RelayError> {
    destination
        .write_all(bytes)
        .await
        .map_err(|_| RelayError::Destination)
}

/// Copies exactly `length` bytes from `source` to `destination` through a fixed buffer, so a
/// body of any size passes in constant memory; never reads past them (what follows is the
/// next message).
pub(super) async fn relay(
    source: &mut (impl AsyncRead + Unpin),
    destination: &mut (impl AsyncWrite + Unpin),
    length: u64,
) -> Result<(), RelayError> {
    let mut buffer = vec![0u8; usize::try_from(length.min(64 * 1024)).unwrap_or(64 * 1024)];
    let mut left = length;
    while left > 0 {
        let want = usize::try_from(left).map_or(buffer.len(), |left| left.min(buffer.len()));
        let read = source
            .read(&mut buffer[..want])
            .await
            .map_err(|_| RelayError::Source)?;
        if read == 0 {
            return Err(RelayError::Source);
        }
        destination
            .write_all(&buffer[..read])
            .await
            .map_err(|_| RelayError::Destination)?;
        left -= read as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_framing_follows_rfc_9112() {
        let head = |text: &str| {
            parse_response_head(text.as_bytes())
                .expect("valid")
                .expect("complete")
        };
        let plain = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\n");
        assert_eq!(plain.framing, Framing::Length(5));
        assert!(plain.keep_alive);
        let chunked = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n",
        );
        assert_eq!(chunked.framing, Framing::Chunked);
        assert!(
            chunked.fields.is_empty(),
            "Content-Length is dropped beside Transfer-Encoding"
        );
        let closing = head(
            "HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(!closing.keep_alive);
        assert!(
            closing.fields.is_empty(),
            "Connection and the field it names are dropped; the length is written anew"
        );
        assert_eq!(closing.content_length, Some(0));
        let old = head("HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(old.framing, Framing::UntilClose);
        assert!(!old.keep_alive);
        assert!(matches!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n"),
            Err(HeadError::InvalidLength)
        ));
    }
}
