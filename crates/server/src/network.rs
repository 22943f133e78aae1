//! The client address of an actix request: [`runtime::client_address_among`] over its
//! `X-Forwarded-For` fields, with the server's trusted proxies.

use std::net::IpAddr;

use actix_web::{HttpRequest, http::header::HeaderMap, web};
use runtime::{TrustedProxies, client_address_among};

/// [`client_address_among`] for a request with actix's `headers`.
pub fn client_address_from(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    client_address_among(
        peer,
        headers
            .get_all("x-forwarded-for")
            .map(actix_web::http::header::HeaderValue::as_bytes),
        trusted.networks(),
    )
}

/// [`client_address_from`] for an actix request, with the server's [`TrustedProxies`] (its
/// `app_data`; loopback when the server installed none).
pub fn client_address(request: &HttpRequest) -> IpAddr {
    let peer = request
        .peer_addr()
        .map_or(IpAddr::from([127, 0, 0, 1]), |address| address.ip());
    match request.app_data::<web::Data<TrustedProxies>>() {
        Some(trusted) => client_address_from(peer, request.headers(), trusted),
        None => client_address_from(peer, request.headers(), &TrustedProxies::default()),
    }
}
