//! How an upstream's `host:port` becomes socket addresses: asked again at every new upstream
//! connection, so a name that answers with several addresses (a scaled compose service, a
//! Kubernetes headless Service) reaches every replica behind it, and replicas that come and go
//! are seen without a restart.

use std::{collections::HashMap, io, net::SocketAddr};

/// The resolution upstream connections use.
#[derive(Debug, Clone, Default)]
pub enum Resolver {
    /// The system's resolver (`/etc/hosts`, then DNS).
    #[default]
    System,
    /// Fixed addresses for some `host:port`s (as the routes spell them); any other goes to the
    /// system's resolver. For embedders and tests that put several addresses behind one name
    /// without changing the machine's resolver.
    Fixed(HashMap<String, Vec<SocketAddr>>),
}

impl Resolver {
    /// The addresses of `authority` (`host:port`), in the resolver's order; an address
    /// literal is its own answer.
    pub async fn resolve(&self, authority: &str) -> io::Result<Vec<SocketAddr>> {
        if let Self::Fixed(fixed) = self
            && let Some(addresses) = fixed.get(authority)
        {
            return Ok(addresses.clone());
        }
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host(authority).await?.collect();
        if addresses.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{authority} resolves to no address"),
            ));
        }
        Ok(addresses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fixed_names_answer_their_addresses_and_others_go_to_the_system() {
        let two: Vec<SocketAddr> = vec![
            "127.0.0.1:9".parse().expect("an address"),
            "127.0.0.2:9".parse().expect("an address"),
        ];
        let resolver = Resolver::Fixed(HashMap::from([("chat:9".to_owned(), two.clone())]));
        assert_eq!(resolver.resolve("chat:9").await.expect("fixed"), two);
        assert_eq!(
            resolver.resolve("127.0.0.3:80").await.expect("a literal"),
            ["127.0.0.3:80".parse::<SocketAddr>().expect("an address")]
        );
        assert!(resolver.resolve("no-such-host.invalid:80").await.is_err());
    }
}
