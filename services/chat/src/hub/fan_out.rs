//! A room's fan-out: one task per room with clients on this instance, reading the room's
//! channel and handing its events to the members' queues in deliveries ([`deliver`]).
//!
//! A busy room coalesces: after a delivery its fan-out waits [`coalesce_window`] (10 µs a
//! member here, at most 10 ms, none under 100 members) and sends whatever came meanwhile in
//! the next one. Each delivery costs every member a wake-up and a socket write, so this trades
//! a little latency for a lot of CPU (the figures: docs/benchmarks.md, "What the chat-service
//! measurements showed"). Events already received never wait for a window.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use pubsub::Subscription;
use slog::Logger;

use super::{
    delivery::{Members, PendingEvent, deliver},
    envelope,
};
use crate::metrics::ChatMetrics;

/// At most this many events go out in one delivery.
const MAX_EVENTS_PER_DELIVERY: usize = 256;

/// The longest a room's fan-out holds events back.
const MAX_COALESCE_WINDOW: Duration = Duration::from_millis(10);

/// How long a room's fan-out waits after a delivery before the next one, given its members
/// here. A room of 1 000 clients sending one message a second each would otherwise ask a
/// million wake-ups and writes a second; spacing its deliveries by 10 ms (10 µs a member)
/// makes that 100 000, each write carrying the ten or so events that came meanwhile. Below a
/// millisecond (rooms under 100 members here) events go out as they come.
fn coalesce_window(per_member: Duration, members: usize) -> Duration {
    let window = per_member.saturating_mul(u32::try_from(members).unwrap_or(u32::MAX));
    if window < Duration::from_millis(1) {
        Duration::ZERO
    } else {
        window.min(MAX_COALESCE_WINDOW)
    }
}

/// Hands each event of a room's channel to the room's clients here (all but its origin),
/// until the subscription ends (or the task is aborted when the room's last client leaves).
/// Events that arrive while a busy room waits out its [`coalesce_window`] go out together:
/// one shared allocation, one queue slot and one write per client.
pub(crate) async fn fan_out(
    mut subscription: Subscription,
    members: Members,
    coalesce_per_member: Duration,
    metrics: ChatMetrics,
    logger: Logger,
) {
    let mut missed = 0;
    let mut last_delivery = tokio::time::Instant::now();
    let mut pending: Vec<PendingEvent> = Vec::new();
    while let Some(payload) = subscription.next().await {
        take_event(&payload, &mut pending, &logger);
        let window = coalesce_window(
            coalesce_per_member,
            members.lock().expect("members lock").len(),
        );
        let deadline = last_delivery + window;
        let mut window_ends = std::pin::pin!(tokio::time::sleep_until(deadline));
        let mut ended = false;
        while pending.len() < MAX_EVENTS_PER_DELIVERY {
            // Events already here go in the same delivery whatever the window. Without one,
            // no timer either: a timer fires on the runtime's next millisecond tick, which
            // would hold every event of a small room that long.
            let next = if window.is_zero() {
                match subscription.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            } else {
                tokio::select! {
                    biased;
                    next = subscription.next() => next,
                    () = &mut window_ends => break,
                }
            };
            match next {
                Some(payload) => take_event(&payload, &mut pending, &logger),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        // This task fell more than the pub/sub's buffer behind: events were lost here.
        let now_missed = subscription.missed();
        if now_missed > missed {
            metrics.fan_out_missed.inc_by(now_missed - missed);
            slog::warn!(logger, "room fan-out fell behind; events lost"; "missed" => now_missed - missed);
            missed = now_missed;
        }
        deliver(&members, &mut pending, &metrics);
        last_delivery = tokio::time::Instant::now();
        if ended {
            break;
        }
    }
}

/// Adds the event of one pub/sub payload to `pending`.
fn take_event(payload: &Bytes, pending: &mut Vec<PendingEvent>, logger: &Logger) {
    match envelope::open(payload) {
        Some(room_event) => pending.push(PendingEvent {
            received: Instant::now(),
            origin: room_event.origin,
            event: room_event.event,
        }),
        None => slog::warn!(logger, "unreadable room event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_big_rooms_wait_to_coalesce() {
        let per_member = Duration::from_micros(10);
        assert_eq!(coalesce_window(per_member, 1), Duration::ZERO);
        assert_eq!(coalesce_window(per_member, 99), Duration::ZERO);
        assert_eq!(coalesce_window(per_member, 100), Duration::from_millis(1));
        assert_eq!(coalesce_window(per_member, 500), Duration::from_millis(5));
        assert_eq!(coalesce_window(per_member, 100_000), MAX_COALESCE_WINDOW);
    }
}
