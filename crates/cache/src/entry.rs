//! What a look-up answers: an [`Entry`] (a value's JSON, or "missing") and whether it came
//! from the cache ([`CacheStatus`]).

use bytes::Bytes;

/// A cached answer: the serialized value, or the knowledge that there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The value's bytes (JSON, ready to send).
    Found(Bytes),
    /// The source of truth has no such key.
    Missing,
}

impl Entry {
    /// `Found` with `value` as JSON, or `Missing` for `None`.
    pub fn json<T: serde::Serialize>(value: Option<&T>) -> Self {
        match value {
            Some(value) => Self::Found(
                serde_json::to_vec(value)
                    .expect("API values serialize to JSON")
                    .into(),
            ),
            None => Self::Missing,
        }
    }
}

/// Whether a look-up was answered by the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// From the cache.
    Hit,
    /// Loaded from the source of truth (by this request or the one it waited for).
    Miss,
}

impl CacheStatus {
    /// `hit` or `miss`, for the `X-Cache` header.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
        }
    }
}
