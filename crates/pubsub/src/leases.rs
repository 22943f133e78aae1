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
//!   whose own expiry is at least its newest lease's, so a key nobody renews disappears. Every
//!   step is one Lua script, atomic in Redis; lease ids must not be `=holder`.

use std::{sync::Arc, time::Duration};

use deadpool_redis::redis;

use crate::{PubSubError, redis::RedisBackend};

/// At most this many leases go in one script call (Redis runs a script without interleaving
/// others, so a long one would stall every client of that Redis).
const LEASES_PER_SCRIPT: usize = 256;

/// Takes `KEYS[i]` for holder `ARGV[2i]` through lease `ARGV[2i+1]`, for `ARGV[1]` ms; answers
/// one 1 (taken) or 0 (held by another holder through a live lease) per key.
const TAKE: &str = r"
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local ttl = tonumber(ARGV[1])
local taken = {}
for i, key in ipairs(KEYS) do
  local holder, lease = ARGV[2 * i], ARGV[2 * i + 1]
  local current = redis.call('HGET', key, '=holder')
  local free = true
  if current and current ~= holder then
    local fields = redis.call('HGETALL', key)
    for f = 1, #fields, 2 do
      if fields[f] ~= '=holder' and tonumber(fields[f + 1]) > now then
        free = false
        break
      end
    end
    if free then
      redis.call('DEL', key)
    end
  end
  if free then
    redis.call('HSET', key, '=holder', holder, lease, now + ttl)
    if redis.call('PTTL', key) < ttl then
      redis.call('PEXPIRE', key, ttl)
    end
    taken[i] = 1
  else
    taken[i] = 0
  end
end
return taken
";

/// Removes lease `ARGV[1]` of `KEYS[1]`, and the key when no live lease is left.
const RELEASE: &str = r"
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
";

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
        let mut pipe = redis::pipe();
        for chunk in leases.chunks(LEASES_PER_SCRIPT) {
            let call = pipe.cmd("EVAL").arg(TAKE).arg(chunk.len());
            for lease in chunk {
                call.arg(lease.key);
            }
            call.arg(ttl_ms);
            for lease in chunk {
                call.arg(lease.holder).arg(lease.id);
            }
        }
        let answers: Vec<Vec<i64>> = self.backend.query(&pipe).await?;
        Ok(answers
            .into_iter()
            .flatten()
            .map(|taken| taken == 1)
            .collect())
    }

    /// Removes lease `id` of `key` (the key too, when it was its last live lease).
    pub async fn release(&self, key: &str, id: &str) -> Result<(), PubSubError> {
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL").arg(RELEASE).arg(1).arg(key).arg(id);
        let _: Vec<i64> = self.backend.query(&pipe).await?;
        Ok(())
    }
}
