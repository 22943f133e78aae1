//! An IP network (`10.0.0.0/8`, `::1/128`, or one address): which peers are trusted proxies.

use std::{net::IpAddr, str::FromStr};

/// An address and a prefix length.
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

/// The default trusted proxies: this host only.
pub fn loopback() -> Vec<Network> {
    vec![
        Network {
            address: IpAddr::from([127, 0, 0, 0]),
            prefix: 8,
        },
        Network {
            address: IpAddr::from([0_u16, 0, 0, 0, 0, 0, 0, 1]),
            prefix: 128,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(text: &str) -> Network {
        text.parse().expect("a network")
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
}
