//! Engine.IO session affinity (a route's `sticky = "engine.io"`): every request of a long-polling
//! session, and its WebSocket upgrade, reaches the instance that opened the session.
//!
//! Engine.IO names a session by the `sid` the instance chose and answered in its handshake
//! (`GET …?EIO=4&transport=polling` without `sid`, answered `0{"sid":"…",…}`). The gateway reads
//! that answer (bounded: [`MAX_HANDSHAKE_BYTES`]) and remembers `sid` → [`Pin`] in a cache that
//! is bounded in entries ([`MAX_SESSIONS`], least-used evicted first) and forgets a session idle
//! for [`SESSION_IDLE`]; every request that names the `sid` keeps it alive. A request whose
//! `sid` the cache does not hold (after a gateway restart, or on another gateway replica) goes
//! round-robin: an instance that does not know the session answers Engine.IO's 400
//! `Session ID unknown` and the client opens a new session. A client cannot grow the cache:
//! only an upstream's handshake answer adds to it, and it never holds more than
//! [`MAX_SESSIONS`].
//!
//! A [`Pin`] names the configured instance and the socket address its name resolved to for the
//! connection that carried the handshake: replicas behind one name (`docker compose up --scale
//! chat=2`, a Kubernetes headless Service) are told apart by address. A later request naming the
//! sid goes to a connection to that address (with the route's `Host` as ever) while the name
//! still resolves to it; when it no longer does, or the connect fails, the request is balanced
//! as any other and the replica that gets it answers `Session ID unknown`.

use std::{net::SocketAddr, time::Duration};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;

/// Sessions remembered per sticky route (a few hundred bytes each at most).
pub const MAX_SESSIONS: u64 = 65_536;
/// A session no request named for this long is forgotten (Engine.IO's own ping interval and
/// timeout, 25 s and 20 s by default, keep a live polling session far busier).
pub const SESSION_IDLE: Duration = Duration::from_secs(120);
/// Largest handshake answer read for its `sid`; a longer one is relayed unread.
pub const MAX_HANDSHAKE_BYTES: u64 = 4096;
/// Longest `sid` the gateway remembers or looks up.
pub const MAX_SID_BYTES: usize = 64;

/// Where a session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    /// The index of the route's instance (configured upstream) that opened it.
    pub instance: usize,
    /// The address of that instance's connection that carried the handshake: the replica.
    pub address: SocketAddr,
}

/// The sessions of one sticky route: `sid` → where it lives.
#[derive(Debug)]
pub struct Sessions {
    /// Bounded in entries, idle entries expire.
    cache: moka::sync::Cache<Box<str>, Pin>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::with_capacity(MAX_SESSIONS)
    }
}

impl Sessions {
    /// A cache of at most `capacity` sessions.
    pub fn with_capacity(capacity: u64) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(SESSION_IDLE)
                .build(),
        }
    }

    /// Where session `sid` lives, if remembered (and keeps it alive).
    pub fn pin_of(&self, sid: &str) -> Option<Pin> {
        self.cache.get(sid)
    }

    /// Remembers where session `sid` lives.
    pub fn remember(&self, sid: &str, pin: Pin) {
        if !sid.is_empty() && sid.len() <= MAX_SID_BYTES {
            self.cache.insert(Box::from(sid), pin);
        }
    }
}

/// The `sid` query parameter of a request target's query, when present, non-empty and at most
/// [`MAX_SID_BYTES`] long (Engine.IO's ids are URL-safe: no decoding needed).
pub fn sid_of(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("sid="))
        .filter(|sid| !sid.is_empty() && sid.len() <= MAX_SID_BYTES)
}

/// The `sid` of an Engine.IO handshake answer: v4's `0{"sid":…}`, or v3's length-prefixed
/// `96:0{"sid":…}`; the first JSON object of the body is read, what follows it ignored.
pub fn handshake_sid(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Handshake {
        sid: String,
    }
    let start = body.iter().position(|byte| *byte == b'{')?;
    let mut objects = serde_json::Deserializer::from_slice(&body[start..]).into_iter::<Handshake>();
    match objects.next() {
        Some(Ok(handshake)) => Some(handshake.sid),
        _ => None,
    }
}

/// Reads a handshake answer's whole body, of at most `limit` bytes (its `Content-Length` said
/// so): the bytes, to relay, and the `sid` they issue, if any.
pub async fn read_handshake(
    body: &mut Incoming,
    limit: u64,
) -> Result<(Bytes, Option<String>), hyper::Error> {
    let mut bytes = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes.extend_from_slice(&data);
            if bytes.len() as u64 > limit {
                break;
            }
        }
    }
    let sid = handshake_sid(&bytes);
    Ok((bytes.freeze(), sid))
}

/// Where a request of a route must go, and what its answer teaches: nothing unless the route
/// is sticky.
#[derive(Debug, Clone, Copy, Default)]
pub struct Affinity {
    /// Where the session the request names lives, when remembered.
    pub pinned: Option<Pin>,
    /// The request opens a session: its answer names the `sid` to remember.
    pub opening: bool,
}

impl Affinity {
    /// The affinity of a request with this query to a route with these `sessions` (a sticky
    /// route's).
    pub fn of(sessions: Option<&Sessions>, query: Option<&str>) -> Self {
        let Some(sessions) = sessions else {
            return Self::default();
        };
        match sid_of(query) {
            Some(sid) => Self {
                pinned: sessions.pin_of(sid),
                opening: false,
            },
            None => Self {
                pinned: None,
                opening: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sid_is_read_from_the_query() {
        assert_eq!(
            sid_of(Some("EIO=4&transport=polling&sid=abc_-1")),
            Some("abc_-1")
        );
        assert_eq!(sid_of(Some("sid=x&EIO=4")), Some("x"));
        assert_eq!(sid_of(Some("EIO=4&transport=polling")), None);
        assert_eq!(sid_of(Some("EIO=4&sid=")), None);
        assert_eq!(sid_of(Some("xsid=abc")), None, "only the sid parameter");
        assert_eq!(sid_of(Some(&format!("sid={}", "a".repeat(65)))), None);
        assert_eq!(sid_of(None), None);
    }

    #[test]
    fn the_handshake_answer_names_the_sid() {
        let v4 = br#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        assert_eq!(handshake_sid(v4).as_deref(), Some("lv_VI97HAXpY6yYWAAAC"));
        let v3 = br#"96:0{"sid":"abc","upgrades":[]}2:40"#;
        assert_eq!(handshake_sid(v3).as_deref(), Some("abc"));
        assert_eq!(handshake_sid(b"4{\"code\":1}"), None);
        assert_eq!(handshake_sid(b"not engine.io"), None);
    }

    #[test]
    fn the_cache_holds_at_most_its_capacity() {
        let sessions = Sessions::with_capacity(100);
        let pin = |n: usize| Pin {
            instance: n % 2,
            address: SocketAddr::from(([127, 0, 0, 1 + (n % 3) as u8], 3004)),
        };
        for n in 0..10_000 {
            sessions.remember(&format!("sid-{n}"), pin(n));
        }
        sessions.cache.run_pending_tasks();
        let remembered = sessions.cache.entry_count();
        assert!(remembered <= 100, "{remembered} sessions");
        sessions.remember("kept", pin(5));
        assert_eq!(sessions.pin_of("kept"), Some(pin(5)));
        sessions.remember(&"a".repeat(MAX_SID_BYTES + 1), pin(0));
        assert_eq!(sessions.pin_of(&"a".repeat(MAX_SID_BYTES + 1)), None);
    }
}
