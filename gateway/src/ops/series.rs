//! From two scrapes of an instance to one point of its charts ([`Point::between`]): request
//! rate from the `http_requests_total` delta, error rate as the 5xx share of it, p99 from the
//! histogram buckets' deltas ([`quantile`], as Prometheus' `histogram_quantile`); and the fixed
//! ring of points kept per instance ([`Ring`]).

use std::collections::VecDeque;

use serde::Serialize;

use super::exposition::Reading;

/// One point of an instance's charts, over the interval that ends at `at`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// When the interval ended, milliseconds since the Unix epoch.
    pub at: u64,
    /// Requests per second.
    pub rate: f64,
    /// The share of those requests answered 5xx (0 to 1); `None` without requests.
    pub error_rate: Option<f64>,
    /// The 99th percentile of their latency, seconds; `None` without requests.
    pub p99: Option<f64>,
    /// Resident memory at `at`, bytes, when the instance reports it.
    pub memory: Option<f64>,
}

impl Point {
    /// The point of the interval of `seconds` from `before` to `after`. A counter that went
    /// down means the instance restarted: its counts start from zero, so `after`'s values are
    /// the interval's (Prometheus' `rate` reads a reset the same way).
    pub fn between(before: &Reading, after: &Reading, seconds: f64, at: u64) -> Self {
        let reset = after.requests < before.requests
            || after.errors < before.errors
            || after.buckets.iter().any(|(le, count)| {
                before
                    .buckets
                    .iter()
                    .find(|(bound, _)| bound == le)
                    .is_some_and(|(_, earlier)| count < earlier)
            });
        let (requests, errors) = if reset {
            (after.requests, after.errors)
        } else {
            (
                after.requests - before.requests,
                after.errors - before.errors,
            )
        };
        let buckets: Vec<(f64, f64)> = after
            .buckets
            .iter()
            .map(|(le, count)| {
                let earlier = before
                    .buckets
                    .iter()
                    .find(|(bound, _)| bound == le)
                    .map_or(0.0, |(_, earlier)| *earlier);
                (*le, if reset { *count } else { count - earlier })
            })
            .collect();
        let seconds = if seconds.is_finite() && seconds > 0.0 {
            seconds
        } else {
            1.0
        };
        Self {
            at,
            rate: requests / seconds,
            error_rate: (requests > 0.0).then(|| (errors / requests).clamp(0.0, 1.0)),
            p99: if requests > 0.0 {
                quantile(0.99, &buckets)
            } else {
                None
            },
            memory: after.resident_memory,
        }
    }
}

/// The `q` quantile (0 to 1) of a histogram's cumulative `(le, count)` buckets sorted by `le`,
/// as Prometheus' `histogram_quantile`: linear within the bucket the rank falls in (from 0 for
/// the first bucket); the highest finite bound when it falls in the `+Inf` bucket; `None`
/// without a `+Inf` bucket or observations. Counts that go down are read as their maximum so
/// far (Prometheus' monotonicity fix).
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let (last_bound, total) = *buckets.last()?;
    if last_bound != f64::INFINITY || total.is_nan() || total <= 0.0 || !(0.0..=1.0).contains(&q) {
        return None;
    }
    let mut cumulative = Vec::with_capacity(buckets.len());
    let mut highest = 0.0_f64;
    for (le, count) in buckets {
        highest = highest.max(*count);
        cumulative.push((*le, highest));
    }
    let total = highest;
    let rank = q * total;
    let index = cumulative.iter().position(|(_, count)| *count >= rank)?;
    let (upper, count) = cumulative[index];
    if upper == f64::INFINITY {
        return Some(if index == 0 {
            0.0
        } else {
            cumulative[index - 1].0
        });
    }
    let (lower, below) = if index == 0 {
        (0.0_f64.min(upper), 0.0)
    } else {
        cumulative[index - 1]
    };
    let in_bucket = count - below;
    if in_bucket <= 0.0 {
        return Some(upper);
    }
    Some(lower + (upper - lower) * (rank - below) / in_bucket)
}

/// The last `capacity` points of an instance, oldest first: memory stays fixed however long
/// the gateway runs.
#[derive(Debug, Clone)]
pub struct Ring {
    /// The points.
    points: VecDeque<Point>,
    /// How many are kept.
    capacity: usize,
}

impl Ring {
    /// An empty ring keeping `capacity` points (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            points: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds `point`, dropping the oldest when full.
    pub fn push(&mut self, point: Point) {
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    /// The points, oldest first.
    pub fn points(&self) -> impl Iterator<Item = &Point> {
        self.points.iter()
    }

    /// How many points it holds.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    fn reading(requests: f64, errors: f64, buckets: &[(f64, f64)]) -> Reading {
        Reading {
            service: Some("users".into()),
            requests,
            errors,
            buckets: buckets.to_vec(),
            resident_memory: Some(1e6),
        }
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        // 100 observations: 50 up to 0.1 s, 40 in (0.1, 0.5], 10 in (0.5, 1].
        let buckets = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (INF, 100.0)];
        let close = |q: f64, expected: f64| {
            let value = quantile(q, &buckets).expect("a value");
            assert!(
                (value - expected).abs() < 1e-9,
                "q{q}: {value} != {expected}"
            );
        };
        close(0.5, 0.1);
        close(0.25, 0.05); // from 0 within the first bucket
        close(0.7, 0.1 + 0.4 * (20.0 / 40.0));
        close(0.99, 0.5 + 0.5 * (9.0 / 10.0));
        close(1.0, 1.0);
        // In the +Inf bucket: the highest finite bound.
        assert_eq!(
            quantile(0.99, &[(0.1, 10.0), (1.0, 50.0), (INF, 100.0)]),
            Some(1.0)
        );
        assert_eq!(quantile(0.99, &[(INF, 3.0)]), Some(0.0));
        // Nothing observed, no +Inf bucket, a q out of range: none.
        assert_eq!(quantile(0.99, &[(0.1, 0.0), (INF, 0.0)]), None);
        assert_eq!(quantile(0.99, &[(0.1, 5.0), (1.0, 5.0)]), None);
        assert_eq!(quantile(0.99, &[]), None);
        assert_eq!(quantile(1.5, &buckets), None);
        // A count that goes down is read as the maximum before it.
        assert_eq!(
            quantile(0.5, &[(0.1, 10.0), (0.5, 8.0), (1.0, 20.0), (INF, 20.0)]),
            Some(0.1)
        );
    }

    #[test]
    fn a_point_is_the_delta_of_two_scrapes() {
        let before = reading(1000.0, 10.0, &[(0.1, 900.0), (1.0, 1000.0), (INF, 1000.0)]);
        // 200 more requests in 10 s, 20 of them 5xx; their latencies: 100 up to 0.1 s, 100 in
        // (0.1, 1].
        let after = reading(1200.0, 30.0, &[(0.1, 1000.0), (1.0, 1200.0), (INF, 1200.0)]);
        let point = Point::between(&before, &after, 10.0, 42);
        assert_eq!(point.at, 42);
        assert_eq!(point.rate, 20.0);
        assert_eq!(point.error_rate, Some(0.1));
        let p99 = point.p99.expect("a p99");
        assert!((p99 - (0.1 + 0.9 * (98.0 / 100.0))).abs() < 1e-9, "{p99}");
        assert_eq!(point.memory, Some(1e6));
    }

    #[test]
    fn no_requests_no_error_rate_nor_latency() {
        let same = reading(5.0, 1.0, &[(0.1, 5.0), (INF, 5.0)]);
        let point = Point::between(&same, &same, 10.0, 1);
        assert_eq!((point.rate, point.error_rate, point.p99), (0.0, None, None));
    }

    #[test]
    fn a_restart_counts_from_zero() {
        let before = reading(1000.0, 10.0, &[(0.1, 1000.0), (INF, 1000.0)]);
        let after = reading(50.0, 5.0, &[(0.1, 50.0), (INF, 50.0)]);
        let point = Point::between(&before, &after, 5.0, 1);
        assert_eq!((point.rate, point.error_rate), (10.0, Some(0.1)));
        assert_eq!(point.p99, Some(0.1 * 0.99));
        let point = Point::between(&before, &after, 0.0, 1);
        assert_eq!(point.rate, 50.0, "a zero interval is read as a second");
    }

    #[test]
    fn the_ring_keeps_the_last_points() {
        let mut ring = Ring::new(3);
        for at in 0..10 {
            ring.push(Point {
                at,
                rate: 0.0,
                error_rate: None,
                p99: None,
                memory: None,
            });
        }
        assert_eq!(ring.points().map(|p| p.at).collect::<Vec<_>>(), [7, 8, 9]);
        assert_eq!(ring.len(), 3);
        assert!(!Ring::new(0).points().any(|_| true) && Ring::new(0).is_empty());
    }
}
