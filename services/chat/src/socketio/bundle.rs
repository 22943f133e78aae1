//! `GET /socket.io/socket.io.js`: the official client bundle (`socket.io-client`'s
//! `dist/socket.io.min.js`, vendored in `vendor/socket.io-client/`), where Socket.IO pages load
//! it from; and its source map. Gzipped once, on first use, for clients that accept gzip. Each
//! representation has its own strong `ETag` (RFC 9110 §8.8.3), a hash of its own bytes (the
//! gzip one's ends in `-gzip`), so a cache never answers a gzip request with identity bytes
//! under one tag;
//! `If-None-Match` answers 304 only when it names the tag of the representation the request
//! would get. `Cache-Control` lets it be cached for a day; `Vary: Accept-Encoding` on both.

use std::{io::Write, sync::OnceLock};

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, CacheControl, CacheDirective},
};

/// The bundle.
const SCRIPT: &[u8] = include_bytes!("../../../../vendor/socket.io-client/socket.io.min.js");
/// Its source map.
const SOURCE_MAP: &[u8] =
    include_bytes!("../../../../vendor/socket.io-client/socket.io.min.js.map");

/// One served file, encoded once.
struct Asset {
    plain: &'static [u8],
    gzipped: Vec<u8>,
    /// The identity representation's `ETag`.
    etag: String,
    /// The gzip representation's.
    gzip_etag: String,
    content_type: &'static str,
}

impl Asset {
    fn new(plain: &'static [u8], content_type: &'static str) -> Self {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let gzipped = encoder
            .write_all(plain)
            .and_then(|()| encoder.finish())
            .expect("gzip into memory does not fail");
        Self {
            plain,
            etag: format!("\"{:016x}\"", fnv1a(plain)),
            gzip_etag: format!("\"{:016x}-gzip\"", fnv1a(&gzipped)),
            gzipped,
            content_type,
        }
    }

    fn respond(&self, request: &HttpRequest) -> HttpResponse {
        let cache = CacheControl(vec![CacheDirective::Public, CacheDirective::MaxAge(86_400)]);
        let gzip = server::accepts_gzip(request);
        let etag = if gzip { &self.gzip_etag } else { &self.etag };
        // The weak comparison `If-None-Match` calls for (RFC 9110 §13.1.2).
        let revalidated = request
            .headers()
            .get_all(header::IF_NONE_MATCH)
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.trim_start_matches("W/") == etag
            });
        let mut response = if revalidated {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        response
            .insert_header(cache)
            .insert_header((header::ETAG, etag.as_str()))
            .insert_header((header::VARY, "Accept-Encoding"));
        if revalidated {
            return response.finish();
        }
        response
            .content_type(self.content_type)
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
        if gzip {
            response
                .insert_header((header::CONTENT_ENCODING, "gzip"))
                .body(self.gzipped.clone())
        } else {
            response.body(self.plain)
        }
    }
}

/// FNV-1a, 64 bits: the bytes' `ETag`, the same in every instance of one build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `GET /socket.io/socket.io.js` (and `socket.io.min.js`).
pub async fn script(request: HttpRequest) -> HttpResponse {
    static ASSET: OnceLock<Asset> = OnceLock::new();
    ASSET
        .get_or_init(|| Asset::new(SCRIPT, "application/javascript; charset=utf-8"))
        .respond(&request)
}

/// `GET /socket.io/socket.io.min.js.map`.
pub async fn source_map(request: HttpRequest) -> HttpResponse {
    static ASSET: OnceLock<Asset> = OnceLock::new();
    ASSET
        .get_or_init(|| Asset::new(SOURCE_MAP, "application/json"))
        .respond(&request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_representation_is_tagged_by_a_hash_of_its_own_bytes() {
        let asset = Asset::new(SCRIPT, "application/javascript");
        assert_eq!(asset.etag, format!("\"{:016x}\"", fnv1a(SCRIPT)));
        assert_eq!(
            asset.gzip_etag,
            format!("\"{:016x}-gzip\"", fnv1a(&asset.gzipped))
        );
    }
}
