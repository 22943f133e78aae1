//! The crate's tests: the in-process fan-out, and Redis between two handles (cut and restored
//! with `testing::TcpSwitch`).

use std::time::Duration;

use bytes::Bytes;
use deadpool_redis::redis;
use futures_util::StreamExt;
use slog::Logger;

use crate::{CHANNEL_CAPACITY, Lease, PubSub, PubSubError, Subscription};

async fn next(subscription: &mut Subscription) -> Bytes {
    tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .expect("a message within 5 s")
        .expect("the subscription is open")
}

#[tokio::test]
async fn every_local_subscriber_gets_every_message_in_order() {
    let pubsub = PubSub::in_process();
    let mut first = pubsub.subscribe("a").await.expect("subscribe");
    let mut second = pubsub.subscribe("a").await.expect("subscribe");
    let mut other = pubsub.subscribe("b").await.expect("subscribe");
    for n in 0..3 {
        pubsub
            .publish("a", Bytes::from(format!("m{n}")))
            .await
            .expect("publish");
    }
    pubsub
        .publish("b", Bytes::from_static(b"b"))
        .await
        .expect("publish");
    for subscription in [&mut first, &mut second] {
        for n in 0..3 {
            assert_eq!(next(subscription).await, format!("m{n}"));
        }
    }
    assert_eq!(next(&mut other).await, "b");
}

#[tokio::test]
async fn dropping_the_last_subscriber_forgets_the_channel() {
    let pubsub = PubSub::in_process();
    let first = pubsub.subscribe("a").await.expect("subscribe");
    let second = pubsub.subscribe("a").await.expect("subscribe");
    let channels = pubsub.local_channels().expect("in-process");
    drop(first);
    assert_eq!(channels.names(), vec!["a".to_owned()]);
    drop(second);
    assert!(channels.names().is_empty());
    // Publishing to nobody is fine.
    pubsub
        .publish("a", Bytes::from_static(b"x"))
        .await
        .expect("publish");
    pubsub.check().await.expect("in-process is always ready");
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_misses_messages_and_others_do_not() {
    let pubsub = PubSub::in_process();
    let mut slow = pubsub.subscribe("a").await.expect("subscribe");
    let mut keeping_up = pubsub.subscribe("a").await.expect("subscribe");
    let total = CHANNEL_CAPACITY + 10;
    for n in 0..total {
        pubsub
            .publish("a", Bytes::from(n.to_string()))
            .await
            .expect("publish");
        assert_eq!(next(&mut keeping_up).await, n.to_string());
    }
    assert_eq!(slow.missed(), 10);
    assert_eq!(keeping_up.missed(), 0);
    for n in 0..CHANNEL_CAPACITY {
        assert_eq!(next(&mut slow).await, n.to_string());
    }
    pubsub
        .publish("a", Bytes::from_static(b"caught up"))
        .await
        .expect("publish");
    assert_eq!(next(&mut slow).await, "caught up");
}

fn logger() -> Logger {
    Logger::root(slog::Discard, slog::o!())
}

fn redis_url() -> String {
    testing::redis_url()
}

fn unique(name: &str) -> String {
    format!("test:pubsub:{}:{name}", uuid::Uuid::new_v4().simple())
}

/// How many subscribers Redis counts on `channel`.
async fn redis_subscribers(channel: &str) -> i64 {
    let client = redis::Client::open(redis_url()).expect("client");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("a Redis connection");
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut connection)
        .await
        .expect("PUBSUB NUMSUB");
    count
}

/// Polls `condition` every 20 ms for up to 5 s.
async fn eventually<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    testing::eventually(what, Duration::from_secs(5), condition).await;
}

#[tokio::test]
async fn redis_carries_messages_between_processes_over_one_connection_each() {
    testing::skip_unless!(Redis);
    let url = redis_url();
    let publisher = PubSub::connect(Some(&url), logger()).await.expect("A");
    let subscriber = PubSub::connect(Some(&url), logger()).await.expect("B");
    assert_eq!(subscriber.kind(), "redis");
    subscriber.check().await.expect("connected");
    let channel = unique("room");
    let mut first = subscriber.subscribe(&channel).await.expect("subscribe");
    let mut second = subscriber.subscribe(&channel).await.expect("subscribe");
    // Two local subscribers, one Redis subscription.
    assert_eq!(redis_subscribers(&channel).await, 1);
    for n in 0..3 {
        publisher
            .publish(&channel, Bytes::from(format!("m{n}")))
            .await
            .expect("publish");
    }
    for subscription in [&mut first, &mut second] {
        for n in 0..3 {
            assert_eq!(next(subscription).await, format!("m{n}"));
        }
    }
    drop(first);
    assert_eq!(redis_subscribers(&channel).await, 1, "one subscriber left");
    drop(second);
    eventually("Redis forgets the channel", || async {
        redis_subscribers(&channel).await == 0
    })
    .await;
}

#[tokio::test]
async fn an_invalid_url_is_refused() {
    let error = PubSub::connect(Some("redis://[::1"), logger())
        .await
        .expect_err("refused");
    assert!(matches!(error, PubSubError::InvalidUrl(_)), "{error}");
}

#[tokio::test]
async fn subscriptions_survive_a_lost_redis_connection() {
    testing::skip_unless!(Redis);
    let (switch, switch_url) = testing::TcpSwitch::for_url(&testing::redis_url()).await;
    let subscriber = PubSub::connect(Some(&switch_url), logger())
        .await
        .expect("through the switch");
    let publisher = PubSub::connect(Some(&redis_url()), logger())
        .await
        .expect("direct");
    let channel = unique("survivor");
    let mut subscription = subscriber.subscribe(&channel).await.expect("subscribe");
    publisher
        .publish(&channel, Bytes::from_static(b"before"))
        .await
        .expect("publish");
    assert_eq!(next(&mut subscription).await, "before");

    switch.cut();
    eventually("check reports the lost connection", || async {
        subscriber.check().await.is_err()
    })
    .await;
    // Subscribing while Redis is away still works once it is back.
    let late_channel = unique("late");
    let mut late = subscriber
        .subscribe(&late_channel)
        .await
        .expect("subscribe");
    switch.restore();
    eventually("the subscriber connection is back", || async {
        subscriber.check().await.is_ok()
    })
    .await;
    publisher
        .publish(&channel, Bytes::from_static(b"after"))
        .await
        .expect("publish");
    publisher
        .publish(&late_channel, Bytes::from_static(b"late"))
        .await
        .expect("publish");
    assert_eq!(next(&mut subscription).await, "after");
    assert_eq!(next(&mut late).await, "late");
}

#[tokio::test]
async fn a_lease_holds_a_key_for_its_holder_until_released_or_lapsed() {
    testing::skip_unless!(Redis);
    assert!(
        PubSub::in_process().leases().is_none(),
        "one process: no leases"
    );
    let url = redis_url();
    let a = PubSub::connect(Some(&url), logger()).await.expect("A");
    let b = PubSub::connect(Some(&url), logger()).await.expect("B");
    let (a, b) = (a.leases().expect("Redis"), b.leases().expect("Redis"));
    let key = unique("name");
    let ttl = Duration::from_secs(30);
    let lease = |holder, id| Lease {
        key: &key,
        holder,
        id,
    };
    assert_eq!(
        a.take(&[lease("alice", "a1")], ttl).await.expect("take"),
        [true]
    );
    // Another holder is refused; the same holder shares it through its own lease.
    assert_eq!(
        b.take(&[lease("mallory", "b1")], ttl).await.expect("take"),
        [false]
    );
    assert_eq!(
        b.take(&[lease("alice", "b2")], ttl).await.expect("take"),
        [true]
    );
    a.release(&[(&key, "a1")]).await.expect("release");
    assert_eq!(
        a.take(&[lease("mallory", "a3")], ttl).await.expect("take"),
        [false]
    );
    b.release(&[(&key, "b2")]).await.expect("release");
    assert_eq!(
        a.take(&[lease("mallory", "a3")], ttl).await.expect("take"),
        [true]
    );
    // A lease nobody renews lapses, and with it the holder's claim.
    let short = unique("short");
    let lapsing = Lease {
        key: &short,
        holder: "alice",
        id: "a4",
    };
    // Long enough that the refusal below comes well before the lapse, on a loaded machine.
    let short_ttl = Duration::from_secs(3);
    let taken_at = tokio::time::Instant::now();
    assert_eq!(a.take(&[lapsing], short_ttl).await.expect("take"), [true]);
    let thief = Lease {
        key: &short,
        holder: "mallory",
        id: "b5",
    };
    assert_eq!(b.take(&[thief], ttl).await.expect("take"), [false]);
    testing::eventually(
        "the unrenewed lease lapses",
        Duration::from_secs(10),
        || async { b.take(&[thief], ttl).await.expect("take") == [true] },
    )
    .await;
    assert!(
        taken_at.elapsed() >= short_ttl - Duration::from_millis(100),
        "taken back only once the lease lapsed"
    );
    b.release(&[(&short, "b5")]).await.expect("release");
    a.release(&[(&key, "a3")]).await.expect("release");
}

/// The lease ids recorded in `key` (its fields but `=holder`).
async fn lease_ids(key: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url()).expect("URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis");
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(key)
        .query_async(&mut connection)
        .await
        .expect("HKEYS");
    let mut ids: Vec<String> = fields.into_iter().filter(|f| f != "=holder").collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn taking_a_key_drops_its_lapsed_leases_even_for_the_same_holder() {
    testing::skip_unless!(Redis);
    let a = PubSub::connect(Some(&redis_url()), logger())
        .await
        .expect("A");
    let a = a.leases().expect("Redis");
    let key = unique("pile");
    let lease = |id| Lease {
        key: &key,
        holder: "alice",
        id,
    };
    let long = Duration::from_secs(30);
    // Long enough to outlive the next TAKE and HKEYS on a loaded machine; `eventually` waits
    // out its lapse.
    a.take(&[lease("dead")], Duration::from_secs(3))
        .await
        .expect("take");
    a.take(&[lease("live")], long).await.expect("take");
    assert_eq!(lease_ids(&key).await, ["dead", "live"]);
    // Renewing the live lease, once the other lapsed, drops it.
    testing::eventually(
        "the lapsed lease is dropped",
        Duration::from_secs(10),
        || async {
            a.take(&[lease("live")], long).await.expect("take");
            lease_ids(&key).await == ["live"]
        },
    )
    .await;
    a.release(&[(&key, "live")]).await.expect("release");
    assert!(
        lease_ids(&key).await.is_empty(),
        "the key went with its last lease"
    );
}

#[tokio::test]
async fn leases_work_on_after_redis_forgets_their_scripts() {
    testing::skip_unless!(Redis);
    let a = PubSub::connect(Some(&redis_url()), logger())
        .await
        .expect("A");
    let a = a.leases().expect("Redis");
    let key = unique("flushed");
    let lease = Lease {
        key: &key,
        holder: "alice",
        id: "a1",
    };
    let ttl = Duration::from_secs(30);
    assert_eq!(a.take(&[lease], ttl).await.expect("take"), [true]);
    // What a Redis restart does to the script cache (calls by SHA-1 answer NOSCRIPT).
    let client = redis::Client::open(redis_url()).expect("URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis");
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut connection)
        .await
        .expect("SCRIPT FLUSH");
    assert_eq!(a.take(&[lease], ttl).await.expect("take"), [true]);
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut connection)
        .await
        .expect("SCRIPT FLUSH");
    a.release(&[(&key, "a1")]).await.expect("release");
    assert!(lease_ids(&key).await.is_empty());
}
