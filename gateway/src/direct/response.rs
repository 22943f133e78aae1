//! The upstream's side of a direct exchange: its response head, and the relay of its body in
//! whichever framing it came (length, chunked, until close).

use std::io::Write;

use http::HeaderValue;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};

use super::{MAX_RESPONSE_FIELDS, add_content_length, connection_values, named_in, push_field};
use crate::headers::{TransferCodings, is_hop_by_hop_field, tokens};

/// Most trailer fields a chunked body may end with: a parser downstream reads them into a
/// table of its own, as it does a head's fields.
const MAX_TRAILER_FIELDS: u32 = 64;

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
    /// Writes the client's head: status line, end-to-end fields, framing, the request id.
    pub(super) fn write_client_head(
        &self,
        bytes: &[u8],
        framing: &Framing,
        request_id: &HeaderValue,
        close: bool,
        out: &mut Vec<u8>,
    ) {
        out.clear();
        let _ = write!(out, "HTTP/1.1 {} ", self.status);
        out.extend_from_slice(&bytes[self.reason.clone()]);
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.fields {
            push_field(out, &bytes[name.clone()], &bytes[value.clone()]);
        }
        match framing {
            Framing::Length(length) => {
                let _ = write!(out, "content-length: {length}\r\n");
            }
            // A HEAD answer tells the length of the body it does not carry. 204 and 304 carry
            // none: hyper's path never writes one on them, and both paths answer alike.
            Framing::Empty => {
                let lengthless = self.status == 204 || self.status == 304;
                if let Some(length) = self.content_length.filter(|_| !lengthless) {
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
        push_field(out, b"x-request-id", request_id.as_bytes());
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
                Some(head) if (100..200).contains(&head.status) => {
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
    let connection_values = connection_values(parsed.headers);
    // A body that ends with the connection also ends its reuse: `relay_response` says so.
    let keep_alive = parsed.version == Some(1)
        && !connection_values
            .iter()
            .any(|value| tokens(value).any(|token| token.eq_ignore_ascii_case(b"close")));
    let mut content_length: Option<u64> = None;
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
            add_content_length(&mut content_length, field.value)
                .map_err(|()| HeadError::InvalidLength)?;
            continue;
        }
        dated |= name.eq_ignore_ascii_case("date");
        if is_hop_by_hop_field(name, field.value)
            || named_in(&connection_values, name)
            || name.eq_ignore_ascii_case("x-request-id")
        {
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

/// `next` when `byte` is the one the grammar wants here.
fn expect(byte: u8, wanted: u8, next: ChunkState) -> Result<ChunkState, ()> {
    if byte == wanted { Ok(next) } else { Err(()) }
}

/// A `tchar` of RFC 9110 §5.6.2: the bytes of a token (field names, extension names).
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Bytes of a field value or a quoted pair: visible ASCII, space, tab. No control bytes, and
/// no `obs-text` (0x80–0xFF), which no sender may generate (RFC 9110 §5.5).
fn is_field_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' '..=b'~')
}

/// Finds where a chunked body ends (RFC 9112 §7.1), fed the bytes as they come, and checks
/// every byte of the framing against the grammar: sizes, chunk extensions (token names,
/// token or quoted-string values) and trailer fields (token names, visible values). What it
/// passes, any HTTP/1.1 parser downstream frames the same way.
#[derive(Debug, Default)]
pub struct ChunkedScanner {
    /// Where in the grammar the next byte falls.
    state: ChunkState,
    /// The chunk size read so far.
    size: u64,
    /// Hex digits of the size line read so far (an empty size line is not chunked coding).
    digits: u32,
    /// Trailer fields read so far.
    trailers: u32,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Hex digits of a chunk size.
    #[default]
    Size,
    /// Whitespace after the size, before `;`.
    SizeSpace,
    /// After `;`: whitespace, then an extension name.
    ExtensionStart,
    /// An extension name.
    ExtensionName,
    /// Whitespace after a name, before `=` or `;`.
    ExtensionNameSpace,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtensionValueStart,
    /// A token value.
    ExtensionToken,
    /// Inside a quoted string.
    ExtensionQuoted,
    /// After a backslash in a quoted string.
    ExtensionQuotedPair,
    /// After a value: `;`, whitespace before one, or CR.
    ExtensionEnd,
    /// Whitespace after a value, before `;`.
    ExtensionEndSpace,
    /// LF ending the size line.
    SizeLf,
    /// Chunk data, `size` bytes left.
    Data,
    /// CR after the data.
    DataCr,
    /// LF after the data.
    DataLf,
    /// Start of a trailer line, or of the final CRLF.
    TrailerStart,
    /// A trailer field's name, until `:`.
    TrailerName,
    /// A trailer field's value, until CR.
    TrailerValue,
    /// LF ending a trailer line.
    TrailerLf,
    /// LF of the final CRLF.
    FinalLf,
}

impl ChunkedScanner {
    /// Scans `bytes`: `Ok(Some(n))` when the body ends after `n` of them, `Ok(None)` when it
    /// goes on past them, `Err(())` when they are not chunked coding.
    pub fn scan(&mut self, bytes: &[u8]) -> Result<Option<usize>, ()> {
        use ChunkState::*;
        let mut index = 0;
        while index < bytes.len() {
            let byte = bytes[index];
            let space = byte == b' ' || byte == b'\t';
            self.state = match self.state {
                Size => match byte {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = u64::from((byte as char).to_digit(16).ok_or(())?);
                        self.size = self.size.checked_mul(16).ok_or(())? + digit;
                        self.digits += 1;
                        Size
                    }
                    b';' if self.digits > 0 => ExtensionStart,
                    _ if space && self.digits > 0 => SizeSpace,
                    b'\r' if self.digits > 0 => SizeLf,
                    _ => return Err(()),
                },
                SizeSpace | ExtensionEndSpace => match byte {
                    b';' => ExtensionStart,
                    _ if space => self.state,
                    _ => return Err(()),
                },
                ExtensionStart => match byte {
                    _ if space => ExtensionStart,
                    _ if is_tchar(byte) => ExtensionName,
                    _ => return Err(()),
                },
                ExtensionName => match byte {
                    _ if is_tchar(byte) => ExtensionName,
                    b'=' => ExtensionValueStart,
                    b';' => ExtensionStart,
                    b'\r' => SizeLf,
                    _ if space => ExtensionNameSpace,
                    _ => return Err(()),
                },
                ExtensionNameSpace => match byte {
                    b'=' => ExtensionValueStart,
                    b';' => ExtensionStart,
                    _ if space => ExtensionNameSpace,
                    _ => return Err(()),
                },
                ExtensionValueStart => match byte {
                    b'"' => ExtensionQuoted,
                    _ if space => ExtensionValueStart,
                    _ if is_tchar(byte) => ExtensionToken,
                    _ => return Err(()),
                },
                ExtensionToken => match byte {
                    _ if is_tchar(byte) => ExtensionToken,
                    b';' => ExtensionStart,
                    b'\r' => SizeLf,
                    _ if space => ExtensionEndSpace,
                    _ => return Err(()),
                },
                ExtensionQuoted => match byte {
                    b'"' => ExtensionEnd,
                    b'\\' => ExtensionQuotedPair,
                    _ if is_field_byte(byte) => ExtensionQuoted,
                    _ => return Err(()),
                },
                ExtensionQuotedPair if is_field_byte(byte) => ExtensionQuoted,
                ExtensionQuotedPair => return Err(()),
                ExtensionEnd => match byte {
                    b';' => ExtensionStart,
                    b'\r' => SizeLf,
                    _ if space => ExtensionEndSpace,
                    _ => return Err(()),
                },
                SizeLf => {
                    expect(byte, b'\n', Data)?;
                    self.digits = 0;
                    if self.size == 0 { TrailerStart } else { Data }
                }
                Data => {
                    let take = usize::try_from(self.size)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - index);
                    self.size -= take as u64;
                    index += take;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                DataCr => expect(byte, b'\r', DataLf)?,
                DataLf => expect(byte, b'\n', Size)?,
                TrailerStart => match byte {
                    b'\r' => FinalLf,
                    _ if is_tchar(byte) && self.trailers < MAX_TRAILER_FIELDS => {
                        self.trailers += 1;
                        TrailerName
                    }
                    _ => return Err(()),
                },
                TrailerName => match byte {
                    b':' => TrailerValue,
                    _ if is_tchar(byte) => TrailerName,
                    _ => return Err(()),
                },
                TrailerValue => match byte {
                    b'\r' => TrailerLf,
                    _ if is_field_byte(byte) => TrailerValue,
                    _ => return Err(()),
                },
                TrailerLf => expect(byte, b'\n', TrailerStart)?,
                FinalLf => {
                    expect(byte, b'\n', FinalLf)?;
                    return Ok(Some(index + 1));
                }
            };
            index += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(pieces: &[&[u8]]) -> Result<Option<usize>, ()> {
        let mut scanner = ChunkedScanner::default();
        let mut offset = 0;
        for piece in pieces {
            if let Some(end) = scanner.scan(piece)? {
                return Ok(Some(offset + end));
            }
            offset += piece.len();
        }
        Ok(None)
    }

    #[test]
    fn a_chunked_body_ends_after_the_last_chunk_and_its_trailers() {
        let body = b"5\r\nhello\r\nA;name=value\r\n0123456789\r\n3 ; a = \"q \\\" d\" ;b;c=t\r\nxyz\r\n0\r\nX-Sum: 1\t\r\nY:\r\n\r\nNEXT";
        assert_eq!(scan_all(&[body]), Ok(Some(body.len() - 4)));
        // The same bytes fed one at a time.
        let pieces: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(scan_all(&pieces), Ok(Some(body.len() - 4)));
        assert_eq!(scan_all(&[b"0\r\n\r\n"]), Ok(Some(5)));
        assert_eq!(scan_all(&[b"5\r\nhel"]), Ok(None), "not over yet");
    }

    #[test]
    fn what_is_not_chunked_coding_is_refused() {
        for (bytes, what) in [
            (&b"zz\r\n"[..], "not hex"),
            (b"\r\n", "an empty size line"),
            (b"5;a\nb\r\n", "a bare LF in an extension"),
            (b"0\r\n\n", "a bare LF ending the trailers"),
            (b"0\r\nX: 1\n\r\n", "a bare LF in a trailer"),
            (b"3\r\nabcX", "data not followed by CRLF"),
            (b"fffffffffffffffff\r\n", "size overflow"),
            (b"5;a\0b\r\n", "NUL in an extension"),
            (b"5;a=\x01\r\n", "a control byte as an extension value"),
            (b"5;\xff\r\n", "obs-text as an extension name"),
            (b"5;a=\"b\x7f\"\r\n", "DEL in a quoted extension value"),
            (b"5 \r\n", "whitespace after the size without an extension"),
            (b"5;a b\r\n", "two words in an extension"),
            (b"0\r\nX: \x00\r\n\r\n", "NUL in a trailer value"),
            (b"0\r\nX: \xff\r\n\r\n", "obs-text in a trailer value"),
            (b"0\r\nX : 1\r\n\r\n", "whitespace before a trailer's colon"),
            (b"0\r\n: 1\r\n\r\n", "a trailer without a name"),
            (b"0\r\nX\x01: 1\r\n\r\n", "a control byte in a trailer name"),
            (b"0\r\nX: 1\rY: 2\r\n\r\n", "a bare CR in a trailer"),
        ] {
            assert_eq!(scan_all(&[bytes]), Err(()), "{what}");
        }
        let trailers = |count: usize| format!("0\r\n{}\r\n", "X: 1\r\n".repeat(count));
        let most = MAX_TRAILER_FIELDS as usize;
        assert!(scan_all(&[trailers(most).as_bytes()]).is_ok_and(|end| end.is_some()));
        assert_eq!(
            scan_all(&[trailers(most + 1).as_bytes()]),
            Err(()),
            "more trailer fields than a parser downstream takes"
        );
    }

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
