//! Upstream instances: round-robin over the healthy ones, with passive health. An instance
//! whose connections fail `eject_after_failures` times in a row is left out for
//! `eject_cooldown_ms`, then tried again. An instance is a configured `host:port`; a name that
//! resolves to several addresses (replicas behind one DNS name) is balanced over them too,
//! connection by connection ([`Instance::in_turn`]).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use http::uri::Authority;

use crate::config::ServerConfig;

/// One upstream instance.
#[derive(Debug)]
pub struct Instance {
    /// `host:port`, what requests are sent to.
    pub authority: Authority,
    /// `host:port` as text, for logs and metrics.
    pub label: Arc<str>,
    /// Connect failures since the last success.
    failures: AtomicU32,
    /// Left out until this many milliseconds after `Upstreams::epoch`.
    ejected_until_ms: AtomicU64,
    /// Round-robin position over the addresses the name resolves to.
    next_address: AtomicUsize,
}

impl Instance {
    /// The addresses of one resolution of this instance's name in the order to try them for
    /// a new connection: round-robin from the next position, whatever order the resolver
    /// gave (glibc sorts its answers, which would send every connection to the first).
    pub fn in_turn<T>(&self, mut addresses: Vec<T>) -> Vec<T> {
        if addresses.len() > 1 {
            let start = self.next_address.fetch_add(1, Ordering::Relaxed) % addresses.len();
            addresses.rotate_left(start);
        }
        addresses
    }
}

/// What happened to an instance's health after a connect failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Still in rotation.
    Healthy,
    /// Just ejected.
    Ejected,
}

/// The instances of one route.
#[derive(Debug)]
pub struct Upstreams {
    /// The instances, in configuration order.
    instances: Vec<Arc<Instance>>,
    /// Round-robin position.
    next: AtomicUsize,
    /// Connect failures in a row that eject an instance.
    eject_after: u32,
    /// How long an ejection lasts.
    cooldown: Duration,
    /// Time zero of the ejection deadlines.
    epoch: Instant,
}

impl Upstreams {
    /// The instances of `urls` (`http://host:port`).
    pub fn new(urls: &[String], server: &ServerConfig) -> anyhow::Result<Self> {
        let instances = urls
            .iter()
            .map(|url| {
                let uri: http::Uri = url.parse().with_context(|| format!("upstream {url}"))?;
                let authority = uri
                    .authority()
                    .cloned()
                    .context("an upstream needs host:port")?;
                Ok(Arc::new(Instance {
                    label: Arc::from(authority.as_str()),
                    authority,
                    failures: AtomicU32::new(0),
                    ejected_until_ms: AtomicU64::new(0),
                    next_address: AtomicUsize::new(0),
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            instances,
            next: AtomicUsize::new(0),
            eject_after: server.eject_after_failures.max(1),
            cooldown: Duration::from_millis(server.eject_cooldown_ms),
            epoch: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether `instance` is in rotation now.
    pub fn is_healthy(&self, instance: &Instance) -> bool {
        instance.ejected_until_ms.load(Ordering::Relaxed) <= self.now_ms()
    }

    /// The instances to try for one request, in order: the healthy ones round-robin from the
    /// next position, then (if every one is ejected) the one whose ejection ends first.
    pub fn candidates(&self) -> impl Iterator<Item = &Arc<Instance>> {
        let count = self.instances.len();
        let start = if count > 1 {
            self.next.fetch_add(1, Ordering::Relaxed) % count
        } else {
            0
        };
        let now = self.now_ms();
        let healthy = (0..count)
            .map(move |offset| &self.instances[(start + offset) % count])
            .filter(move |instance| instance.ejected_until_ms.load(Ordering::Relaxed) <= now);
        let fallback = self
            .instances
            .iter()
            .min_by_key(|instance| instance.ejected_until_ms.load(Ordering::Relaxed))
            .filter(|instance| instance.ejected_until_ms.load(Ordering::Relaxed) > now);
        let any_healthy = self
            .instances
            .iter()
            .any(|instance| instance.ejected_until_ms.load(Ordering::Relaxed) <= now);
        healthy.chain(fallback.filter(|_| !any_healthy))
    }

    /// [`Upstreams::candidates`], with the instance at `pinned` first when it is in rotation
    /// (a sticky session's instance; the others follow, as they would after a connect failure).
    pub fn candidates_pinned(&self, pinned: Option<usize>) -> impl Iterator<Item = &Arc<Instance>> {
        let pinned = pinned
            .and_then(|index| self.instances.get(index))
            .filter(|instance| self.is_healthy(instance));
        pinned.into_iter().chain(
            self.candidates().filter(move |instance| {
                !pinned.is_some_and(|pinned| Arc::ptr_eq(pinned, instance))
            }),
        )
    }

    /// The position of `instance` in the route's configuration order.
    pub fn index_of(&self, instance: &Instance) -> Option<usize> {
        self.instances
            .iter()
            .position(|candidate| std::ptr::eq(&**candidate, instance))
    }

    /// A connection to `instance` worked.
    pub fn record_success(&self, instance: &Instance) {
        if instance.failures.load(Ordering::Relaxed) != 0 {
            instance.failures.store(0, Ordering::Relaxed);
        }
    }

    /// A connection to `instance` failed; ejects it after enough failures in a row.
    pub fn record_failure(&self, instance: &Instance) -> Health {
        let failures = instance.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.eject_after {
            instance.failures.store(0, Ordering::Relaxed);
            instance.ejected_until_ms.store(
                self.now_ms() + self.cooldown.as_millis() as u64,
                Ordering::Relaxed,
            );
            Health::Ejected
        } else {
            Health::Healthy
        }
    }

    /// The active health probe found `instance` failing: out of rotation for the cool-down
    /// (again at every failed probe). `true` when it was in rotation until now.
    pub fn mark_down(&self, instance: &Instance) -> bool {
        let was_healthy = self.is_healthy(instance);
        instance.ejected_until_ms.store(
            self.now_ms() + self.cooldown.as_millis() as u64,
            Ordering::Relaxed,
        );
        was_healthy
    }

    /// The active health probe found `instance` answering: back in rotation at once.
    pub fn mark_up(&self, instance: &Instance) {
        instance.failures.store(0, Ordering::Relaxed);
        instance.ejected_until_ms.store(0, Ordering::Relaxed);
    }

    /// Every instance.
    pub fn instances(&self) -> &[Arc<Instance>] {
        &self.instances
    }

    /// How many instances are ejected now.
    pub fn ejected(&self) -> usize {
        self.instances
            .iter()
            .filter(|instance| !self.is_healthy(instance))
            .count()
    }

    /// Whether no instance is in rotation (the route answers 502): what `/readyz` and the
    /// operations page call degraded.
    pub fn none_in_rotation(&self) -> bool {
        self.ejected() == self.instances.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams(count: usize) -> Upstreams {
        let urls: Vec<String> = (0..count)
            .map(|n| format!("http://127.0.0.1:{}", 1000 + n))
            .collect();
        let server = ServerConfig {
            eject_after_failures: 2,
            eject_cooldown_ms: 60_000,
            ..ServerConfig::default()
        };
        Upstreams::new(&urls, &server).expect("upstreams")
    }

    fn first(upstreams: &Upstreams) -> String {
        upstreams
            .candidates()
            .next()
            .expect("a candidate")
            .label
            .to_string()
    }

    #[test]
    fn new_connections_take_the_resolved_addresses_in_turn() {
        let upstreams = upstreams(1);
        let instance = &upstreams.instances()[0];
        let firsts: Vec<char> = (0..4)
            .map(|_| instance.in_turn(vec!['a', 'b'])[0])
            .collect();
        assert_eq!(firsts, ['a', 'b', 'a', 'b']);
        assert_eq!(
            instance.in_turn(vec!['a', 'b', 'c']).len(),
            3,
            "every one, in order"
        );
    }

    #[test]
    fn health_checks_take_instances_out_and_back() {
        let upstreams = upstreams(2);
        let probed = upstreams.instances()[1].clone();
        assert!(upstreams.mark_down(&probed), "it was in rotation");
        assert!(!upstreams.mark_down(&probed), "already out");
        assert_eq!(upstreams.ejected(), 1);
        upstreams.mark_up(&probed);
        assert_eq!(upstreams.ejected(), 0);
    }

    #[test]
    fn round_robin_over_instances() {
        let upstreams = upstreams(2);
        let picks: Vec<String> = (0..4).map(|_| first(&upstreams)).collect();
        assert_eq!(
            picks,
            [
                "127.0.0.1:1000",
                "127.0.0.1:1001",
                "127.0.0.1:1000",
                "127.0.0.1:1001"
            ]
        );
    }

    #[test]
    fn failures_in_a_row_eject_and_success_resets() {
        let upstreams = upstreams(2);
        let dead = upstreams.instances()[0].clone();
        assert_eq!(upstreams.record_failure(&dead), Health::Healthy);
        upstreams.record_success(&dead);
        assert_eq!(
            upstreams.record_failure(&dead),
            Health::Healthy,
            "the count restarted"
        );
        assert_eq!(upstreams.record_failure(&dead), Health::Ejected);
        assert_eq!(upstreams.ejected(), 1);
        for _ in 0..4 {
            assert_eq!(
                first(&upstreams),
                "127.0.0.1:1001",
                "the ejected one is left out"
            );
        }
        let live = upstreams.instances()[1].clone();
        upstreams.record_failure(&live);
        upstreams.record_failure(&live);
        let all: Vec<String> = upstreams
            .candidates()
            .map(|i| i.label.to_string())
            .collect();
        assert_eq!(
            all.len(),
            1,
            "with every instance ejected, the first to come back is tried: {all:?}"
        );
    }
}
