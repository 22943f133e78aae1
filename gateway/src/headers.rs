//! Header primitives of RFC 9110 §7.6.1 and RFC 9112 §6.1: which fields stay on their hop, a
//! value's tokens, the transfer codings; the names of the forwarding fields. The rules that use
//! them are [`crate::forward`]'s.

use http::{
    HeaderMap, HeaderName, HeaderValue,
    header::{CONNECTION, UPGRADE},
};

/// `X-Request-Id` (docs/contracts.md).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Appended with the client's address.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// Set to the scheme the client used.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// Set to the `Host` the client asked for.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The transfer codings of a message's `Transfer-Encoding` fields (RFC 9112 §6.1).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TransferCodings {
    /// `chunked` is the last coding: the body is framed by its chunks.
    pub chunked: bool,
    /// The codings applied before the framing (`gzip` of `gzip, chunked`), comma-separated:
    /// a proxy that removes `chunked` announces these again, else the client would take a
    /// coded body for the content itself.
    pub below: Vec<u8>,
}

impl TransferCodings {
    /// The codings of `values` (every `Transfer-Encoding` field of a message, in order).
    pub fn of<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let all: Vec<&[u8]> = values.into_iter().flat_map(tokens).collect();
        let chunked = all
            .last()
            .is_some_and(|coding| coding.eq_ignore_ascii_case(b"chunked"));
        let below = if chunked {
            &all[..all.len() - 1]
        } else {
            &all[..]
        };
        Self {
            chunked,
            below: below.join(&b", "[..]),
        }
    }

    /// Whether `chunked` is applied once at most, and last (RFC 9112 §6.1): a sender never
    /// chunks twice, and a body whose framing is not its last coding cannot be framed.
    pub fn is_valid(&self) -> bool {
        !tokens(&self.below).any(|coding| coding.eq_ignore_ascii_case(b"chunked"))
    }

    /// The value of a `Transfer-Encoding` for a body chunked anew: the codings below, then
    /// `chunked`.
    pub fn rechunked(&self) -> Vec<u8> {
        let mut value = self.below.clone();
        if !value.is_empty() {
            value.extend_from_slice(b", ");
        }
        value.extend_from_slice(b"chunked");
        value
    }
}

/// Whether a request asks to switch protocols (`Connection: upgrade` and an `Upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && connection_tokens(headers).any(|token| token.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|value| tokens(value.as_bytes()))
        .filter_map(|token| std::str::from_utf8(token).ok())
}

/// Whether a field goes past its hop (RFC 9110 §7.6.1): not hop-by-hop
/// ([`is_hop_by_hop_field`]), and not named by any of the message's `Connection` values.
pub fn is_end_to_end(name: &str, value: &[u8], connection: &[&[u8]]) -> bool {
    !is_hop_by_hop_field(name, value)
        && !connection
            .iter()
            .any(|value| tokens(value).any(|token| token.eq_ignore_ascii_case(name.as_bytes())))
}

/// Whether a header field, by its name in any case, stays on its hop: `Connection`,
/// `Keep-Alive`, `Transfer-Encoding`, `Trailer`, `Upgrade`, every `Proxy-*`, and `TE` other
/// than `trailers`. (Headers that `Connection` names are hop-by-hop too; the caller checks
/// those.)
pub fn is_hop_by_hop_field(name: &str, value: &[u8]) -> bool {
    const ALWAYS: [&str; 5] = [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "trailer",
        "upgrade",
    ];
    if ALWAYS.iter().any(|hop| name.eq_ignore_ascii_case(hop)) {
        return true;
    }
    if name.eq_ignore_ascii_case("te") {
        // `TE: trailers` is the one TE value that concerns the next hop too (gRPC needs it).
        return !value.eq_ignore_ascii_case(b"trailers");
    }
    name.get(..6)
        .is_some_and(|start| start.eq_ignore_ascii_case("proxy-"))
}

/// The comma-separated tokens of a header value, trimmed, empty ones left out.
pub fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|byte| *byte == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

/// A header field as a path holds it: `httparse`'s on the direct path, `http`'s on hyper's.
pub trait Field<'h> {
    /// Its name, in the case it came in.
    fn name(&self) -> &'h str;
    /// Its value's bytes.
    fn value(&self) -> &'h [u8];
}

impl<'h> Field<'h> for &'h httparse::Header<'h> {
    fn name(&self) -> &'h str {
        self.name
    }

    fn value(&self) -> &'h [u8] {
        self.value
    }
}

impl<'h> Field<'h> for (&'h HeaderName, &'h HeaderValue) {
    fn name(&self) -> &'h str {
        self.0.as_str()
    }

    fn value(&self) -> &'h [u8] {
        self.1.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_asks_for_it_in_connection() {
        let mut headers = HeaderMap::new();
        headers.insert(UPGRADE, http::HeaderValue::from_static("websocket"));
        assert!(
            !is_upgrade(&headers),
            "Upgrade alone is not a request to switch"
        );
        headers.insert(
            CONNECTION,
            http::HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_upgrade(&headers));
    }

    #[test]
    fn end_to_end_fields_are_neither_hop_by_hop_nor_named_in_connection() {
        let connection: [&[u8]; 1] = [b"keep-alive, X-Hop"];
        assert!(!is_end_to_end("x-hop", b"1", &connection));
        assert!(!is_end_to_end("Proxy-Authorization", b"x", &connection));
        assert!(!is_end_to_end("te", b"gzip", &connection));
        assert!(is_end_to_end("te", b"trailers", &connection));
        assert!(is_end_to_end("x-other", b"1", &connection));
    }
}
