//! [`Leases`]: keys held across every instance on one Redis, for claims that must be unique
//! among them (a chat name in a room). A key has one holder at a time, through any number of
//! leases (one per instance holding it for that holder); each lease lapses `ttl` after it was
//! last taken, so the leases of an instance that died expire by themselves.
//!
//! - **Taking** ([`Leases::take`]) succeeds when the key is free, held by the same holder, or
//!   held only through leases that lapsed; it records the lease until `now + ttl`. Renewing a
//!   lease is taking it again (a key lost meanwhile, e.g. to a Redis restart, is taken back
//!   when still free).
//! - **Releasing** ([`Leases::release`]) removes one lease; the key goes with its last live
//!   lease. Another instance's lease of the same holder is untouched.
//! - Each key is a Redis hash (`=holder` and a field per lease: its expiry in Redis's clock)
//!   whose own expiry is at least its newest lease's, so a key nobody renews disappears; taking
//!   drops the key's lapsed leases. Every step is one Lua script, atomic in Redis, called by
//!   its SHA-1; lease ids must not be `=holder`.
//! - **Redis**: version 5 or later (the scripts read `TIME`, which needs Redis 5's script
//!   effects replication), and one Redis, not a Cluster (a script touches several keys, which
//!   need not share a slot). Keys live in the database of the URL's `/db` index, while pub/sub
//!   channels span every database of the server: two deployments on one Redis must differ by
//!   the prefixes of their channels and keys, not only by `/db`.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use deadpool_redis::redis;

use crate::{
    PubSubError,
    redis::{REDIS_TIMEOUT, RedisBackend},
};

/// At most this many leases go in one script call (Redis runs a script without interleaving
/// others, so a long one would stall every client of that Redis).
const LEASES_PER_SCRIPT: usize = 256;

/// Takes `KEYS[i]` for holder `ARGV[2i]` through lease `ARGV[2i+1]`, for `ARGV[1]` ms; answers
/// one 1 (taken) or 0 (held by another holder through a live lease) per key. Every lapsed lease
/// of a key it reads goes (renewals included), so leases of instances that died do not pile up
/// in a key held on by others.
static TAKE: Script = Script::new(
    r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local ttl = tonumber(ARGV[1])
local taken = {}
for i, key in ipairs(KEYS) do
  local holder, lease = ARGV[2 * i], ARGV[2 * i + 1]
  local current = redis.call('HGET', key, '=holder')
  local fields = redis.call('HGETALL', key)
  local live = false
  for f = 1, #fields, 2 do
    if fields[f] ~= '=holder' then
      if tonumber(fields[f + 1]) <= now then
        redis.call('HDEL', key, fields[f])
      else
        live = true
      end
    end
  end
  if current and current ~= holder and live then
    taken[i] = 0
  else
    if current and current ~= holder then
      redis.call('DEL', key)
    end
    redis.call('HSET', key, '=holder', holder, lease, now + ttl)
    if redis.call('PTTL', key) < ttl then
      redis.call('PEXPIRE', key, ttl)
    end
    taken[i] = 1
  end
end
return taken
",
);

/// Removes lease `ARGV[1]` of `KEYS[1]`, and the key when no live lease is left.
static RELEASE: Script = Script::new(
    r"
redis.call('HDEL', KEYS[1], ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local fields = redis.call('HGETALL', KEYS[1])
for f = 1, #fields, 2 do
  if fields[f] ~= '=holder' and tonumber(fields[f + 1]) > now then
    return 0
  end
end
redis.call('DEL', KEYS[1])
return 1
",
);

/// A Lua script called by its SHA-1 (`EVALSHA`); its text goes to Redis only on first use
/// (`SCRIPT LOAD`, for the SHA-1) and when Redis answers `NOSCRIPT` (restarted, or `SCRIPT
/// FLUSH`): then `EVAL`, which runs it whatever Redis lost meanwhile and caches it again.
struct Script {
    code: &'static str,
    /// Its SHA-1 as Redis computed it, once loaded.
    sha: OnceLock<String>,
}

impl Script {
    const fn new(code: &'static str) -> Self {
        Self {
            code,
            sha: OnceLock::new(),
        }
    }
}

/// Whether Redis refused a script call for not knowing the script.
fn is_noscript(error: &PubSubError) -> bool {
    matches!(error, PubSubError::Redis(source)
    if source.downcast_ref::<redis::RedisError>().is_some_and(|error| {
        error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
    }))
}

/// One lease of a key for a holder.
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    /// The key (the caller's namespace: a prefix of its own).
    pub key: &'a str,
    /// Who holds the key through it: the same holder may take it through other leases.
    pub holder: &'a str,
    /// This lease, unique to its taker (not `=holder`).
    pub id: &'a str,
}

/// Keys held across the instances on one Redis; cheap to clone. See the module docs.
#[derive(Clone)]
pub struct Leases {
    pub(crate) backend: Arc<RedisBackend>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").finish_non_exhaustive()
    }
}

impl Leases {
    /// Takes (or renews) each lease for `ttl`, in one round trip; `true` for each one taken,
    /// `false` for a key another holder holds.
    pub async fn take(
        &self,
        leases: &[Lease<'_>],
        ttl: Duration,
    ) -> Result<Vec<bool>, PubSubError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let answers: Vec<Vec<i64>> = self
            .run(&TAKE, |(eval, script)| {
                let mut pipe = redis::pipe();
                for chunk in leases.chunks(LEASES_PER_SCRIPT) {
                    let call = pipe.cmd(eval).arg(script).arg(chunk.len());
                    for lease in chunk {
                        call.arg(lease.key);
                    }
                    call.arg(ttl_ms);
                    for lease in chunk {
                        call.arg(lease.holder).arg(lease.id);
                    }
                }
                pipe
            })
            .await?;
        Ok(answers
            .into_iter()
            .flatten()
            .map(|taken| taken == 1)
            .collect())
    }

    /// Removes each lease `(key, id)` (its key too, when it was the key's last live lease), in
    /// one round trip.
    pub async fn release(&self, leases: &[(&str, &str)]) -> Result<(), PubSubError> {
        if leases.is_empty() {
            return Ok(());
        }
        let _: Vec<i64> = self
            .run(&RELEASE, |(eval, script)| {
                let mut pipe = redis::pipe();
                for (key, id) in leases {
                    pipe.cmd(eval).arg(script).arg(1).arg(*key).arg(*id);
                }
                pipe
            })
            .await?;
        Ok(())
    }

    /// The pipeline `calls` builds, each call made with `("EVALSHA", SHA-1)` or, the SHA-1
    /// unknown here or to Redis, `("EVAL", text)`; within [`REDIS_TIMEOUT`] in all. After
    /// `NOSCRIPT` every call is made again, harmlessly: taking a lease again renews it,
    /// releasing one again finds it gone.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        calls: impl Fn((&str, &str)) -> redis::Pipeline,
    ) -> Result<T, PubSubError> {
        tokio::time::timeout(REDIS_TIMEOUT, async {
            if let Some(sha) = script.sha.get() {
                match self.backend.query(&calls(("EVALSHA", sha))).await {
                    Err(error) if is_noscript(&error) => {}
                    answer => return answer,
                }
            } else {
                let mut load = redis::pipe();
                load.cmd("SCRIPT").arg("LOAD").arg(script.code);
                let (sha,): (String,) = self.backend.query(&load).await?;
                script.sha.get_or_init(|| sha);
            }
            self.backend.query(&calls(("EVAL", script.code))).await
        })
        .await
        .map_err(|_| PubSubError::Timeout(REDIS_TIMEOUT))?
    }
}
