//! Who the client is: IP networks ([`Network`]), the proxies whose `X-Forwarded-For` is believed
//! ([`TrustedProxies`]), and the one rule that names a request's client address
//! ([`client_address`]).
//!
//! The gateway is the platform's trust boundary: it replaces whatever `X-Forwarded-For` a client
//! sent with one entry it vouches for. A service behind it believes that entry only when the
//! TCP peer is a trusted proxy (`TRUSTED_PROXIES`, loopback by default); any other peer is the
//! client itself, whatever its headers say.

use std::{net::IpAddr, str::FromStr};

/// An address and a prefix length (`10.0.0.0/8`, `::1/128`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The network's address.
    address: IpAddr,
    /// Leading bits that must match.
    prefix: u8,
}

impl Network {
    /// Whether `address` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = text.trim().split_once('/').unwrap_or((text.trim(), ""));
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text}: expected an address or address/prefix"))?;
        let most = if address.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            most
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|prefix| *prefix <= most)
                .ok_or_else(|| format!("{text}: the prefix must be 0–{most}"))?
        };
        Ok(Self { address, prefix })
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// The proxies whose `X-Forwarded-For` names the client (kept in a server's `app_data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// These networks; none at all means no peer is believed.
    pub fn new(networks: Vec<Network>) -> Self {
        Self(networks)
    }

    /// This host only (`127.0.0.0/8`, `::1`): the gateway on the same machine, as the stack
    /// and a single-host install run it.
    pub fn loopback() -> Self {
        Self(vec![
            Network {
                address: IpAddr::from([127, 0, 0, 0]),
                prefix: 8,
            },
            Network {
                address: IpAddr::from([0_u16, 0, 0, 0, 0, 0, 0, 1]),
                prefix: 128,
            },
        ])
    }

    /// Whether `address` is one of them.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(address))
    }

    /// The networks.
    pub fn networks(&self) -> &[Network] {
        &self.0
    }
}

impl Default for TrustedProxies {
    fn default() -> Self {
        Self::loopback()
    }
}

/// The client of a request that came from `peer` whose `X-Forwarded-For` fields are
/// `forwarded_for` (in order): the peer itself, or, when the peer is a trusted proxy, the
/// rightmost entry that is not a trusted proxy too (every trusted hop appends the address it
/// saw; entries left of the first untrusted one are the client's own words). An entry that is
/// not an address ends the walk there: the address right of it (or the peer) is the client.
/// The gateway (hyper's and its own header maps) and every service (actix's) call this one
/// rule.
pub fn client_address_among<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    trusted: &[Network],
) -> IpAddr {
    let is_trusted = |address: IpAddr| trusted.iter().any(|network| network.contains(address));
    if !is_trusted(peer) {
        return peer;
    }
    let entries: Vec<&[u8]> = forwarded_for
        .into_iter()
        .flat_map(|value| value.split(|byte| *byte == b','))
        .collect();
    let mut client = peer;
    for entry in entries.into_iter().rev() {
        let Some(address) = std::str::from_utf8(entry)
            .ok()
            .and_then(|entry| entry.trim().parse::<IpAddr>().ok())
        else {
            break;
        };
        client = address.to_canonical();
        if !is_trusted(client) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(text: &str) -> Network {
        text.parse().expect("a network")
    }

    /// The `X-Forwarded-For` field values of a request.
    fn forwarded(values: &[&'static str]) -> Vec<&'static str> {
        values.to_vec()
    }

    fn client_address_from(peer: IpAddr, fields: &[&str], trusted: &TrustedProxies) -> IpAddr {
        client_address_among(
            peer,
            fields.iter().map(|field| field.as_bytes()),
            trusted.networks(),
        )
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        assert!(network("10.0.0.0/8").contains([10, 9, 8, 7].into()));
        assert!(!network("10.0.0.0/8").contains([11, 0, 0, 1].into()));
        assert!(network("172.16.0.0/12").contains([172, 31, 255, 1].into()));
        assert!(!network("172.16.0.0/12").contains([172, 32, 0, 1].into()));
        assert!(network("192.0.2.7").contains([192, 0, 2, 7].into()));
        assert!(!network("192.0.2.7").contains([192, 0, 2, 8].into()));
        assert!(network("0.0.0.0/0").contains([8, 8, 8, 8].into()));
        assert!(network("::1").contains("::1".parse().expect("v6")));
        assert!(network("fd00::/8").contains("fd12::1".parse().expect("v6")));
        assert!(network("127.0.0.0/8").contains("::ffff:127.0.0.1".parse().expect("mapped")));
        assert!(!network("127.0.0.0/8").contains("::1".parse().expect("v6")));
    }

    #[test]
    fn bad_networks_are_refused() {
        for bad in ["", "10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x"] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let peer = IpAddr::from([203, 0, 113, 9]);
        let headers = forwarded(&["6.6.6.6"]);
        assert_eq!(
            client_address_from(peer, &headers, &TrustedProxies::loopback()),
            peer
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_entry_is_the_client() {
        let trusted = TrustedProxies::new(vec![network("127.0.0.0/8"), network("10.0.0.0/8")]);
        let peer = IpAddr::from([127, 0, 0, 1]);
        // The client wrote 6.6.6.6; the ingress (10.1.2.3) saw 198.51.100.7 and appended it;
        // the gateway appended the ingress.
        let headers = forwarded(&["6.6.6.6, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(
            client_address_from(peer, &headers, &trusted),
            IpAddr::from([198, 51, 100, 7])
        );
        assert_eq!(
            client_address_from(peer, &[], &trusted),
            peer,
            "no header: the peer"
        );
        let garbage = forwarded(&["6.6.6.6, not-an-address"]);
        assert_eq!(client_address_from(peer, &garbage, &trusted), peer);
        let mapped = forwarded(&["::ffff:198.51.100.7"]);
        assert_eq!(
            client_address_from(peer, &mapped, &trusted),
            IpAddr::from([198, 51, 100, 7]),
            "an IPv4-mapped entry is the IPv4 address"
        );
        let all_trusted = forwarded(&["10.0.0.5"]);
        assert_eq!(
            client_address_from(peer, &all_trusted, &trusted),
            IpAddr::from([10, 0, 0, 5]),
            "all hops trusted: the leftmost is as far as anyone vouches"
        );
    }

    #[test]
    fn no_trusted_proxies_believe_nobody() {
        let peer = IpAddr::from([127, 0, 0, 1]);
        let headers = forwarded(&["6.6.6.6"]);
        assert_eq!(
            client_address_from(peer, &headers, &TrustedProxies::new(Vec::new())),
            peer
        );
    }
}
