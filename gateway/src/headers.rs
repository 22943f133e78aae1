//! Header handling of RFC 9110 §7.6.1: hop-by-hop headers stay on their hop.

use http::{
    HeaderMap, HeaderName, HeaderValue,
    header::{CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE},
};

/// `X-Request-Id` (CONTRACTS.md).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Appended with the client's address.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// Set to the scheme the client used.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// Set to the `Host` the client asked for.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Whether a request asks to switch protocols (`Connection: upgrade` and an `Upgrade`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && connection_tokens(headers).any(|token| token.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

fn is_hop_by_hop(name: &HeaderName, value: &HeaderValue) -> bool {
    if name == CONNECTION
        || name == KEEP_ALIVE
        || name == TRANSFER_ENCODING
        || name == TRAILER
        || name == UPGRADE
    {
        return true;
    }
    if name == TE {
        // `TE: trailers` is the one TE value that concerns the next hop too (gRPC needs it).
        return !value.as_bytes().eq_ignore_ascii_case(b"trailers");
    }
    name.as_str().starts_with("proxy-")
}

/// Removes the hop-by-hop headers in place: the fixed ones, every `Proxy-*`, `TE` other than
/// `trailers`, and each header named in `Connection`. One pass over the headers finds them
/// (usually none or one), then only those are removed, so the common request costs no
/// allocation. For an upgrade, `Upgrade` and `Connection: upgrade` are kept, as the next hop
/// needs them.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let upgrade_protocol = if upgrade {
        headers.get(UPGRADE).cloned()
    } else {
        None
    };
    let named_in_connection: Vec<&str> = connection_tokens(headers).collect();
    let mut hop_by_hop: Vec<HeaderName> = Vec::new();
    for (name, value) in headers.iter() {
        let hop = is_hop_by_hop(name, value)
            || named_in_connection
                .iter()
                .any(|token| name.as_str().eq_ignore_ascii_case(token));
        if hop && !hop_by_hop.contains(name) {
            hop_by_hop.push(name.clone());
        }
    }
    drop(named_in_connection);
    for name in &hop_by_hop {
        headers.remove(name);
    }
    if let Some(protocol) = upgrade_protocol {
        headers.insert(UPGRADE, protocol);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_dropped() {
        let source = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("proxy-authorization", "Basic x"),
            ("proxy-connection", "keep-alive"),
            ("te", "gzip"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("accept", "a"),
            ("accept", "b"),
            ("x-custom", "kept"),
        ]);
        let mut headers = source.clone();
        strip_hop_by_hop(&mut headers, false);
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "x-custom"]);
        assert_eq!(
            headers.get_all("accept").iter().count(),
            2,
            "repeated headers keep every value"
        );
    }

    #[test]
    fn te_trailers_passes_and_upgrades_keep_their_headers() {
        let mut headers = map(&[("te", "trailers")]);
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers["te"], "trailers");
        let source = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        assert!(is_upgrade(&source));
        let mut headers = source.clone();
        strip_hop_by_hop(&mut headers, true);
        assert_eq!(headers["upgrade"], "websocket");
        assert_eq!(headers["connection"], "upgrade");
        assert_eq!(headers["sec-websocket-key"], "k");
        assert!(
            !is_upgrade(&map(&[("upgrade", "websocket")])),
            "Upgrade alone is not a request to switch"
        );
    }
}
