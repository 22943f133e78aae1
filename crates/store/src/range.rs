//! Reads: [`ByteRange`] (HTTP `Range` semantics) and [`ObjectRead`], the streamed answer.

use std::{io, pin::Pin};

use bytes::Bytes;
use futures_util::Stream;

/// A byte range of a read (HTTP `Range: bytes=…` semantics, end inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=start-`.
    From(u64),
    /// `bytes=start-end` (inclusive).
    FromTo(u64, u64),
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses one `Range` header value; `None` for anything but a single valid bytes range
    /// (callers then serve the whole object, as RFC 9110 allows).
    pub fn parse_header(value: &str) -> Option<Self> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (start, end) = spec.split_once('-')?;
        let (start, end) = (start.trim(), end.trim());
        match (start.is_empty(), end.is_empty()) {
            (true, false) => end.parse().ok().map(Self::Suffix),
            (false, true) => start.parse().ok().map(Self::From),
            (false, false) => {
                let (start, end) = (start.parse().ok()?, end.parse().ok()?);
                (start <= end).then_some(Self::FromTo(start, end))
            }
            (true, true) => None,
        }
    }

    /// The inclusive `(first, last)` byte positions within an object of `size` bytes, or
    /// `None` when the range is not satisfiable.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            Self::From(start) if start < size => Some((start, size - 1)),
            Self::FromTo(start, end) if start < size => Some((start, end.min(size - 1))),
            Self::Suffix(n) if n > 0 && size > 0 => Some((size.saturating_sub(n), size - 1)),
            _ => None,
        }
    }
}

/// A stream of an object's bytes.
pub type ByteStreamBox = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// An object being read.
pub struct ObjectRead {
    /// The whole object's size.
    pub size: u64,
    /// The inclusive byte positions being sent, when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// The bytes.
    pub body: ByteStreamBox,
}

impl ObjectRead {
    /// How many bytes [`ObjectRead::body`] yields.
    pub fn content_length(&self) -> u64 {
        self.range
            .map_or(self.size, |(first, last)| last - first + 1)
    }
}

impl std::fmt::Debug for ObjectRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRead")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_resolve_like_http() {
        assert_eq!(
            ByteRange::parse_header("bytes=0-9"),
            Some(ByteRange::FromTo(0, 9))
        );
        assert_eq!(
            ByteRange::parse_header("bytes=5-"),
            Some(ByteRange::From(5))
        );
        assert_eq!(
            ByteRange::parse_header("bytes=-3"),
            Some(ByteRange::Suffix(3))
        );
        for ignored in [
            "bytes=0-1,3-4",
            "bytes=9-1",
            "items=0-1",
            "bytes=-",
            "bytes=a-b",
        ] {
            assert_eq!(ByteRange::parse_header(ignored), None, "{ignored}");
        }
        assert_eq!(ByteRange::FromTo(0, 99).resolve(10), Some((0, 9)));
        assert_eq!(ByteRange::From(10).resolve(10), None);
        assert_eq!(ByteRange::Suffix(20).resolve(10), Some((0, 9)));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(ByteRange::From(0).resolve(0), None);
    }
}
