//! The chat series, registered in the service's shared registry (served at `/metrics`).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Counters and gauges of the chat.
#[derive(Clone)]
pub struct ChatMetrics {
    /// `chat_open_connections`: WebSocket connections open on this instance (a gauge named
    /// `chat_connections` would share its OpenMetrics family with `chat_connections_total`).
    pub connections: IntGauge,
    /// Socket.IO long-polling `GET`s waiting for packets.
    pub polls_waiting: IntGauge,
    /// `chat_connections_total`: WebSocket connections accepted.
    pub connections_total: IntCounter,
    /// `chat_disconnects_total{reason}`: how connections ended (`client`, `heartbeat`,
    /// `slow_consumer`, `frame_too_large`, `protocol`, `shutdown`).
    pub disconnects: IntCounterVec,
    /// `chat_rooms`: rooms with at least one client on this instance.
    pub rooms: IntGauge,
    /// `chat_messages_total`: chat messages accepted (stored and published).
    pub messages: IntCounter,
    /// `chat_frames_delivered_total`: events handed to clients' outbound queues.
    pub delivered: IntCounter,
    /// `chat_client_errors_total{code}`: `error` events sent back to clients.
    pub client_errors: IntCounterVec,
    /// `chat_fan_out_missed_total`: room events lost because a room's fan-out fell more than
    /// the pub/sub buffer behind.
    pub fan_out_missed: IntCounter,
    /// `chat_connections_refused_total`: handshakes refused with 429 because their address
    /// held its cap of connections.
    pub connections_refused: IntCounter,
    /// `chat_rate_limited_total{scope}`: messages dropped over a budget (`connection`,
    /// `account`, `address`).
    pub rate_limited: IntCounterVec,
}

impl ChatMetrics {
    /// Creates the series and registers them in `registry`.
    pub fn register(registry: &Registry) -> anyhow::Result<Self> {
        let metrics = Self {
            connections: IntGauge::new("chat_open_connections", "Open WebSocket connections")?,
            polls_waiting: IntGauge::new(
                "chat_socketio_polls_waiting",
                "Socket.IO long-polling GETs waiting for packets",
            )?,
            connections_total: IntCounter::new(
                "chat_connections_total",
                "WebSocket connections accepted",
            )?,
            disconnects: IntCounterVec::new(
                Opts::new("chat_disconnects_total", "Connections ended, by reason"),
                &["reason"],
            )?,
            rooms: IntGauge::new("chat_rooms", "Rooms with clients on this instance")?,
            messages: IntCounter::new("chat_messages_total", "Chat messages accepted")?,
            delivered: IntCounter::new("chat_frames_delivered_total", "Events queued to clients")?,
            client_errors: IntCounterVec::new(
                Opts::new(
                    "chat_client_errors_total",
                    "error events sent to clients, by code",
                ),
                &["code"],
            )?,
            fan_out_missed: IntCounter::new(
                "chat_fan_out_missed_total",
                "Room events lost by a fan-out that fell behind",
            )?,
            connections_refused: IntCounter::new(
                "chat_connections_refused_total",
                "Handshakes refused because their address held its cap of connections",
            )?,
            rate_limited: IntCounterVec::new(
                Opts::new(
                    "chat_rate_limited_total",
                    "Messages dropped over a budget, by scope",
                ),
                &["scope"],
            )?,
        };
        registry.register(Box::new(metrics.connections.clone()))?;
        registry.register(Box::new(metrics.polls_waiting.clone()))?;
        registry.register(Box::new(metrics.connections_total.clone()))?;
        registry.register(Box::new(metrics.disconnects.clone()))?;
        registry.register(Box::new(metrics.rooms.clone()))?;
        registry.register(Box::new(metrics.messages.clone()))?;
        registry.register(Box::new(metrics.delivered.clone()))?;
        registry.register(Box::new(metrics.client_errors.clone()))?;
        registry.register(Box::new(metrics.fan_out_missed.clone()))?;
        registry.register(Box::new(metrics.connections_refused.clone()))?;
        registry.register(Box::new(metrics.rate_limited.clone()))?;
        Ok(metrics)
    }
}
