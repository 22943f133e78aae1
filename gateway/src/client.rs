//! Who the client is: its address, decided once per request for both paths, the access line
//! and the rate limiter.
//!
//! The gateway is the platform's trust boundary. The client is the TCP peer, unless the peer
//! is one of the configured `trusted_proxies` (a load balancer in front of the gateway): then
//! the client is the rightmost `X-Forwarded-For` entry that is not a trusted proxy itself
//! (each trusted hop appends the address it saw, so entries left of it are the client's own
//! words). Upstream, the gateway sends one `X-Forwarded-For` holding that address alone.

pub use shared::network::client_address_among as client_address;

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use shared::network::Network;

    use super::*;

    fn networks(list: &[&str]) -> Vec<Network> {
        list.iter()
            .map(|text| text.parse().expect("a network"))
            .collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_it_forwards() {
        let peer = ip("203.0.113.9");
        assert_eq!(client_address(peer, [&b"6.6.6.6"[..]], &[]), peer);
        let trusted = networks(&["10.0.0.0/8"]);
        assert_eq!(client_address(peer, [&b"6.6.6.6"[..]], &trusted), peer);
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client() {
        let trusted = networks(&["10.0.0.0/8", "127.0.0.1"]);
        let peer = ip("10.1.2.3");
        // The client wrote 6.6.6.6; the balancer saw 198.51.100.7 and appended it.
        let fields = [&b"6.6.6.6, 198.51.100.7"[..], b"10.9.9.9"];
        assert_eq!(client_address(peer, fields, &trusted), ip("198.51.100.7"));
        assert_eq!(
            client_address(peer, [], &trusted),
            peer,
            "no header: the peer"
        );
        let garbage = [&b"6.6.6.6, not-an-address"[..]];
        assert_eq!(client_address(peer, garbage, &trusted), peer);
        let mapped = [&b"::ffff:198.51.100.7"[..]];
        assert_eq!(client_address(peer, mapped, &trusted), ip("198.51.100.7"));
    }
}
